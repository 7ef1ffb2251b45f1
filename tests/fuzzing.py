"""Shared parts of the loader fuzz tests (issue 16): how files are mutated, the fixed budget, and a tally of
what every target was fed and how it answered, printed at the end of the run by ``tests/conftest.py``.

The property every target checks is the same: a loader given any bytes either returns or raises one of
the project's typed errors (a :class:`~engine.errors.DermViewerError` naming the file); anything else
escaping is a bug in the loader, and a per-example deadline stands in for "never hangs".

Budget: ``max_examples`` per test is fixed (times ``DERMVIEWER_FUZZ_SCALE``, default 1, for a longer local
hunt), the example database is off (no ``.hypothesis/`` in the checkout) and a failure prints the seed and
the blob that reproduce it. At the default scale (``make test``, CI) the inputs are derandomised: the same
inputs every run, so a submission fails for what it changed and not for the draw (a random draw once found
``"model": []`` in CI, a bug older than the change it failed). A hunt (scale above 1) draws new inputs each
run; what it finds becomes a plain regression test.
"""

from __future__ import annotations

import copy
import json
import os
import random
from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from engine.errors import DermViewerError

__all__ = ["TALLY", "Blob", "Edited", "budget", "check_loader", "json_values", "mutated_bytes", "mutated_json",
           "report_lines"]

SCALE = float(os.environ.get("DERMVIEWER_FUZZ_SCALE", "1"))
DEADLINE = timedelta(seconds=10)  # per input; generous for a 2-core machine shared with training runs

TALLY: dict[str, Counter[str]] = {}
"""Target name -> outcome ("ok" or the typed error's class name) -> how many inputs ended that way."""


class Blob(bytes):
    """A seed file's bytes whose repr is its length: hypothesis prints its test's arguments on a failure, and
    a 3 MB bundle would print as 8 MB of text."""

    def __repr__(self) -> str:
        if len(self) <= 160:
            return bytes.__repr__(self)
        return f"<{len(self)} bytes: {bytes(self[:48])!r}...{bytes(self[-16:])!r}>"


def budget(max_examples: int) -> settings:
    return settings(
        max_examples=max(1, round(max_examples * SCALE)),
        derandomize=SCALE <= 1,
        deadline=DEADLINE,
        database=None,
        print_blob=True,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
    )


def check_loader(target: str, load: Callable[[], Any], path: Path | None = None,
                 known: tuple[type[BaseException], ...] = ()) -> Any:
    """Run ``load``; a typed error is a fine answer (and must name ``path``); anything else escapes.

    ``known``: untyped escapes already reported against code this test may not change, each pinned by a
    strict-xfail reproduction beside the fuzz test; they are tallied as "known bug", and anything else still
    fails the test."""
    tally = TALLY.setdefault(target, Counter())
    try:
        result = load()
    except known as exc:
        tally[f"known bug {type(exc).__name__}"] += 1
        return None
    except DermViewerError as exc:
        tally[type(exc).__name__] += 1
        named = exc.path
    else:
        tally["ok"] += 1
        return result
    if path is not None and named != path:
        raise AssertionError(f"the error names {named}, not the file it read ({path})")
    return None


def report_lines() -> list[str]:
    lines = []
    for target, tally in sorted(TALLY.items()):
        outcomes = ", ".join(f"{n} {name}" for name, n in tally.most_common())
        lines.append(f"{target}: {sum(tally.values())} inputs tried ({outcomes})")
    return lines


# --- byte-level mutations -------------------------------------------------------------------------

MUTATIONS = ("truncate", "flip", "overwrite", "splice", "random", "header_garbage", "stack")


@st.composite
def mutated_bytes(draw: st.DrawFn, seed: bytes, header: int = 512, tail: int = 0) -> Blob:
    """``seed`` truncated, bit-flipped, overwritten, spliced, replaced by random bytes, or its first bytes
    kept with a garbage body; positions favour the first ``header`` bytes, where parsers decide most, and
    the last ``tail`` bytes (where a format keeps its metadata, e.g. ONNX's ``metadata_props``)."""
    kind = draw(st.sampled_from(MUTATIONS))
    if kind == "random":
        return Blob(draw(st.binary(max_size=4096)))
    if kind == "header_garbage":
        keep = draw(st.integers(1, min(header, len(seed))))
        rnd = random.Random(draw(st.integers(0, 2**32 - 1)))
        body = rnd.randbytes(draw(st.integers(0, max(1, len(seed) - keep))))
        return Blob(seed[:keep] + body)
    ops = [kind] if kind != "stack" else draw(st.lists(st.sampled_from(MUTATIONS[:4]), min_size=2, max_size=4))
    blob = bytearray(seed)
    for op in ops:
        if not blob:
            break
        n = len(blob)
        pos = draw(st.one_of(st.integers(0, min(header, n) - 1), st.integers(max(0, n - max(tail, 1)), n - 1),
                             st.integers(0, n - 1)))
        if op == "truncate":
            del blob[pos:]
        elif op == "flip":
            blob[pos] ^= 1 << draw(st.integers(0, 7))
        elif op == "overwrite":
            chunk = draw(st.binary(min_size=1, max_size=64))
            blob[pos : pos + len(chunk)] = chunk
        else:  # splice: delete a run, or insert bytes
            if draw(st.booleans()):
                del blob[pos : pos + draw(st.integers(1, 4096))]
            else:
                blob[pos:pos] = draw(st.binary(min_size=1, max_size=256))
    return Blob(blob)


# --- structured (JSON) mutations ------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63) | st.floats() | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=6,
)


def _paths(obj: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix]
    if isinstance(obj, dict):
        for k, v in obj.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            out += _paths(v, (*prefix, i))
    return out


class Edited:
    """The edited object (``.value``); its repr lists only the edits, so a failing example prints in a few
    lines instead of the whole (possibly megabytes of) JSON."""

    def __init__(self, value: Any, edits: list[str]) -> None:
        self.value, self.edits = value, edits

    def __repr__(self) -> str:
        return f"Edited({'; '.join(self.edits)})"


@st.composite
def mutated_json(draw: st.DrawFn, obj: Any, max_edits: int = 3) -> Edited:
    """A deep copy of ``obj`` with 1..``max_edits`` values replaced by arbitrary JSON, removed, wrapped in a
    list or a string, or their keys renamed: what a hand-edited or foreign file holds, past the byte checks."""
    out = copy.deepcopy(obj)
    edits: list[str] = []
    for _ in range(draw(st.integers(1, max_edits))):
        path = draw(st.sampled_from(_paths(out)))
        op = draw(st.sampled_from(("replace", "delete", "rename", "wrap")))
        if not path:
            if op == "replace":
                out = draw(json_values)
                edits.append(f"root = {out!r:.200}")
            continue
        parent = out
        for key in path[:-1]:
            parent = parent[key]
        last = path[-1]
        if op == "replace":
            parent[last] = draw(json_values)
            edits.append(f"{list(path)} = {parent[last]!r:.200}")
        elif op == "wrap":
            parent[last] = [parent[last]] if draw(st.booleans()) else json.dumps(parent[last])
            edits.append(f"{list(path)} wrapped as {type(parent[last]).__name__}")
        elif op == "delete":
            del parent[last]
            edits.append(f"{list(path)} deleted")
        elif isinstance(parent, dict):
            new = draw(st.text(max_size=8))
            parent[new] = parent.pop(last)
            edits.append(f"{list(path)} renamed {new!r}")
    return Edited(out, edits)

"""Fuzzing the dataset readers (issue 16) for a fixed budget: ``read_manifest`` through the shipped PAD-UFES-20
spec on mutated copies of the real manifest, and ``load_spec`` on mutated copies of that spec.

The manifest is mutated as bytes (invalid UTF-8, truncation, NULs) and as CSV (cells replaced by text with
quotes, commas and line breaks, cells added or dropped so rows are ragged, header names duplicated or
removed, rows written with or without quoting). The property: the reader returns a manifest or raises
:class:`~training.data.spec.SpecError` naming the file; nothing else escapes, nothing hangs.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from engine.taxonomy import Taxonomy, load_taxonomy
from tests.fuzzing import Blob, budget, check_loader, mutated_bytes, mutated_json
from training.data.manifest import read_manifest
from training.data.spec import load_spec

REPO = Path(__file__).resolve().parents[2]
DATA = REPO.parent / "shared" / "data" / "pad_ufes_20"
SPEC = REPO / "configs" / "data" / "pad_ufes_20.yaml"
ROWS = 25

CELL_TEXT = st.text(alphabet=st.sampled_from(list(',"\n\r\t\x00 ;ÿé') + list("ACKBCMELNVSE01ab")), max_size=12)


@pytest.fixture(scope="module")
def manifest_rows() -> list[list[str]]:
    if not (DATA / "manifest.csv").is_file():
        pytest.fail(f"PAD-UFES-20 manifest not found at {DATA}")
    with (DATA / "manifest.csv").open(newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    return rows[: ROWS + 1]  # header and the first rows: every column, every kind of cell


@pytest.fixture(scope="module")
def taxonomy() -> Taxonomy:
    return load_taxonomy("pad_ufes_20")


def _csv_text(rows: list[list[str]], quoting: int) -> str:
    buf = io.StringIO()
    csv.writer(buf, quoting=quoting, lineterminator="\n").writerows(rows)
    return buf.getvalue()


@st.composite
def mutated_csv(draw: st.DrawFn, rows: list[list[str]]) -> Blob:
    if draw(st.booleans()):  # bytes: encodings, truncation, stray bytes anywhere
        return Blob(draw(mutated_bytes(_csv_text(rows, csv.QUOTE_MINIMAL).encode(), header=600)))
    out = [list(r) for r in rows]
    for _ in range(draw(st.integers(1, 6))):
        r = draw(st.integers(0, len(out) - 1))
        if not out[r]:
            continue
        c = draw(st.integers(0, len(out[r]) - 1))
        op = draw(st.sampled_from(("cell", "drop_cell", "add_cell", "dup_header", "drop_row", "blank_row")))
        if op == "cell":
            out[r][c] = draw(CELL_TEXT)
        elif op == "drop_cell":
            del out[r][c]
        elif op == "add_cell":
            out[r].insert(c, draw(CELL_TEXT))
        elif op == "dup_header" and out[0]:
            out[0][min(c, len(out[0]) - 1)] = out[0][draw(st.integers(0, len(out[0]) - 1))]
        elif op == "drop_row" and len(out) > 1:
            del out[r]
        else:
            out[r] = []
    quoting = draw(st.sampled_from((csv.QUOTE_MINIMAL, csv.QUOTE_ALL, csv.QUOTE_NONE)))
    # QUOTE_NONE: no quoting at all, so a comma or line break in a cell breaks the row
    text = "\n".join(",".join(r) for r in out) + "\n" if quoting == csv.QUOTE_NONE else _csv_text(out, quoting)
    return Blob(text.encode("utf-8", "surrogatepass"))


@budget(150)
@given(data=st.data())
def test_fuzz_read_manifest_raises_only_spec_error(manifest_rows: list[list[str]], taxonomy: Taxonomy,
                                                   tmp_path_factory: pytest.TempPathFactory,
                                                   data: st.DataObject) -> None:
    root = tmp_path_factory.getbasetemp() / "fuzz_manifest"
    root.mkdir(exist_ok=True)
    (root / "manifest.csv").write_bytes(data.draw(mutated_csv(manifest_rows), label="manifest.csv"))
    spec = load_spec(SPEC, root=root)
    manifest = check_loader("training.data.manifest.read_manifest", lambda: read_manifest(spec, taxonomy),
                            spec.manifest)
    if manifest is not None:  # whatever was kept is consistent
        n = len(manifest)
        assert len(manifest.ids) == len(manifest.groups) == n and manifest.eval_exclude.shape == (n,)
        assert all(len(v) == n for v in manifest.labels.values())


@pytest.fixture(scope="module")
def spec_dict() -> dict:
    return yaml.safe_load(SPEC.read_text(encoding="utf-8"))


@budget(100)
@given(data=st.data())
def test_fuzz_load_spec_raises_only_spec_error(spec_dict: dict, tmp_path_factory: pytest.TempPathFactory,
                                               data: st.DataObject) -> None:
    path = tmp_path_factory.getbasetemp() / "fuzz_spec.yaml"
    if data.draw(st.booleans(), label="as YAML text"):
        text = yaml.safe_dump(data.draw(mutated_json(spec_dict), label="spec").value, allow_unicode=True)
        path.write_text(text, encoding="utf-8")
    else:
        path.write_bytes(data.draw(mutated_bytes(SPEC.read_bytes(), header=400), label="spec bytes"))
    check_loader("training.data.spec.load_spec", lambda: load_spec(path, root=path.parent), path)

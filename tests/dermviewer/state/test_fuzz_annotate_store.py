"""Fuzzing the annotation project loader (issue 16) for a fixed budget: ``open_store`` on mutated copies of a
real project file (six PAD-UFES-20 photos imported with their labels and mask outlines, one label set by an
annotator), as a crash, a bad disk or a half-copied file leaves it.

SQLite files are mutated as bytes (the 100-byte file header and the first pages favoured, where the schema
lives). The property: ``open_store`` returns a project or raises
:class:`~dermviewer.state.annotate.ProjectError` naming the file; nothing else escapes, nothing hangs.
Two escapes it found (a non-UTF-8 schema, damaged label-schema JSON) are fixed and pinned by the tests below.
"""

from __future__ import annotations

import csv
import itertools
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dermviewer.state.annotate import Edit, ProjectError, import_manifest, open_store
from engine.taxonomy import load_taxonomy
from tests.dermviewer.conftest import DATA
from tests.fuzzing import Blob, budget, check_loader, mutated_bytes

_names = itertools.count()
KNOWN_ESCAPES: tuple[type[BaseException], ...] = ()  # the two escapes it found are fixed (tests below)


def _small_manifest(folder: Path, n: int = 6) -> Path:
    with (DATA / "manifest.csv").open(newline="") as f:
        reader = csv.DictReader(f)
        rows, cols = list(reader)[:n], list(reader.fieldnames or [])
    for r in rows:
        r["image"] = str(DATA / r["image"])
    out = folder / "manifest.csv"
    with out.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=cols)
        w.writeheader()
        w.writerows(rows)
    (folder / "masks").symlink_to(DATA / "masks")
    return out


@pytest.fixture(scope="module")
def project_blob(tmp_path_factory: pytest.TempPathFactory) -> Blob:
    if not (DATA / "manifest.csv").is_file():
        pytest.fail(f"PAD-UFES-20 manifest not found at {DATA}")
    folder = tmp_path_factory.mktemp("fuzz_project")
    path = folder / "seed.dvproj"
    store = open_store(path, load_taxonomy("pad_ufes_20"), create=True)
    report = import_manifest(store, _small_manifest(folder))
    assert report.added == 6 and report.outlines >= 1
    key = store.photos()[0].key
    store.apply([Edit(key, "disease", "MEL")], "fuzzer")
    store.close()
    assert not Path(f"{path}-wal").exists() or Path(f"{path}-wal").stat().st_size == 0  # all in the main file
    reopened = open_store(path)
    assert reopened.value(key, "disease", "fuzzer") == "MEL"
    reopened.close()
    return Blob(path.read_bytes())


@budget(80)
@given(data=st.data())
def test_fuzz_open_store_raises_only_project_error(project_blob: Blob, tmp_path_factory: pytest.TempPathFactory,
                                                   data: st.DataObject) -> None:
    blob = data.draw(mutated_bytes(project_blob, header=8192), label="mutated")
    path = tmp_path_factory.getbasetemp() / f"fuzz_{next(_names)}.dvproj"  # a fresh name: no -wal/-shm left over
    path.write_bytes(blob)
    store = check_loader("dermviewer.state.annotate.open_store", lambda: open_store(path), path,
                         known=KNOWN_ESCAPES)
    if store is not None:
        store.close()


def test_a_project_whose_schema_text_is_not_utf8_raises_project_error(project_blob: Blob, tmp_path: Path) -> None:
    """One byte of the stored CREATE TABLE statement made invalid UTF-8, as a bad sector or bit rot leaves it.
    Found by the fuzz test above: the UnicodeDecodeError escaped the SQLite engine's connect listener."""
    blob = bytearray(project_blob)
    blob[blob.index(b"CREATE TABLE photos") + 2] = 0xC5
    path = tmp_path / "damaged.dvproj"
    path.write_bytes(bytes(blob))
    with pytest.raises(ProjectError) as info:
        open_store(path)
    assert info.value.path == path


def test_a_project_whose_label_schema_is_not_json_raises_project_error(project_blob: Blob, tmp_path: Path) -> None:
    """The stored choices of the disease field damaged (``[[`` -> ``{[``), the pages still consistent.
    Found by the fuzz test above: the integrity check passes (pages are fine) and the JSON did not parse."""
    blob = bytearray(project_blob)
    blob[blob.index(b'[["ACK"')] = ord("{")
    path = tmp_path / "damaged.dvproj"
    path.write_bytes(bytes(blob))
    with pytest.raises(ProjectError) as info:
        open_store(path)
    assert info.value.path == path

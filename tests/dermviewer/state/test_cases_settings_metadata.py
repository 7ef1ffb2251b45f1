from __future__ import annotations

from pathlib import Path

from dermviewer.state.cases import CaseList, CaseStatus, expand_sources
from dermviewer.state.metadata import photo_metadata
from dermviewer.state.settings import MAX_RECENT, Settings


def test_expand_sources_reads_folders_sorted_and_keeps_named_files(tmp_path: Path) -> None:
    for name in ("b.jpg", "a.PNG", "notes.txt"):
        (tmp_path / name).write_bytes(b"x")
    odd = tmp_path / "named.xyz"
    odd.write_bytes(b"x")
    assert [p.name for p in expand_sources([tmp_path])] == ["a.PNG", "b.jpg"]
    assert [p.name for p in expand_sources([tmp_path, odd])] == ["a.PNG", "b.jpg", "named.xyz"]


def test_case_list_skips_duplicates_navigates_and_announces(tmp_path: Path) -> None:
    cl = CaseList()
    seen: list[object] = []
    cl.added.connect(lambda first, new: seen.append(("added", first, len(new))))
    cl.current_changed.connect(lambda i: seen.append(("current", i)))
    paths = [tmp_path / f"{i}.jpg" for i in range(3)]
    assert len(cl.add(paths)) == 3
    assert cl.add(paths[:1]) == []
    cl.set_current(0)
    cl.next()
    cl.next()
    cl.next()  # clamps at the end
    cl.previous()
    assert cl.current_index == 1
    assert seen == [("added", 0, 3), ("current", 0), ("current", 1), ("current", 2), ("current", 1)]
    cl[0].set_result(None, "x.jpg: broken")
    assert cl[0].status is CaseStatus.FAILED


def test_case_list_signal_can_be_blocked(tmp_path: Path) -> None:
    cl = CaseList()
    calls: list[int] = []
    cl.current_changed.connect(calls.append)
    cl.add([tmp_path / "a.jpg"])
    with cl.current_changed.blocked():
        cl.set_current(0)
    assert calls == []


def test_settings_round_trip_and_survive_a_corrupt_file(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    s = Settings(device="cpu", backend="onnx", top_k=3)
    for i in range(MAX_RECENT + 3):
        s.add_recent(tmp_path / f"{i}.jpg")
    s.save(path)
    back = Settings.load(path)
    assert (back.device, back.backend, back.top_k) == ("cpu", "onnx", 3)
    assert len(back.recent_files) == MAX_RECENT
    assert back.recent_files[0].endswith(f"{MAX_RECENT + 2}.jpg")
    path.write_text("{not json")
    assert Settings.load(path) == Settings()
    path.write_text('{"device": "tpu", "unknown": 1, "overlay_opacity": 7}')
    repaired = Settings.load(path)
    assert repaired.device == "auto"
    assert repaired.overlay_opacity == 1.0


def test_metadata_comes_from_the_manifest_beside_the_photo(photo: Path) -> None:
    meta = photo_metadata(photo)
    assert set(meta) <= {"Age", "Sex", "Fitzpatrick type", "Region"}
    assert "Age" in meta
    assert "diagnosis" not in " ".join(meta).lower()


def test_metadata_is_empty_without_a_manifest(tmp_path: Path) -> None:
    (tmp_path / "x.jpg").write_bytes(b"")
    assert photo_metadata(tmp_path / "x.jpg") == {}

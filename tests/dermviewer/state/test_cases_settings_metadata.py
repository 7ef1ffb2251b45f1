from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from dermviewer.state.cases import CaseList, CaseStatus, expand_sources
from dermviewer.state.metadata import photo_metadata
from dermviewer.state.settings import MAX_RECENT, Settings, cache_dir, settings_path


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


def test_settings_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    s = Settings(device="cpu", backend="onnx", top_k=3, colormap="viridis")
    for i in range(MAX_RECENT + 3):
        s.add_recent(tmp_path / f"{i}.jpg")
    s.save(path)
    back, notes = Settings.load_with_messages(path)
    assert notes == []
    assert back == s
    assert len(back.recent_files) == MAX_RECENT
    assert back.recent_files[0].endswith(f"{MAX_RECENT + 2}.jpg")


def test_a_missing_settings_file_gives_the_defaults_quietly(tmp_path: Path) -> None:
    assert Settings.load_with_messages(tmp_path / "none.json") == (Settings(), [])


@pytest.mark.parametrize("text", ["{not json", "[1, 2]", "\udcff\xff garbage", ""])
def test_an_unreadable_settings_file_is_kept_aside_with_a_message(tmp_path: Path, text: str) -> None:
    path = tmp_path / "settings.json"
    path.write_text(text, encoding="utf-8", errors="surrogateescape")
    original = path.read_bytes()
    s, notes = Settings.load_with_messages(path)
    assert s == Settings()
    kept = list(tmp_path.glob("settings.json.bad-*"))
    assert len(kept) == 1 and kept[0].read_bytes() == original
    assert not path.exists()
    assert len(notes) == 1 and str(path) in notes[0] and kept[0].name in notes[0]
    s.top_k = 7
    s.save(path)  # closing the window writes fresh settings; the unreadable file stays where it was put
    assert kept[0].read_bytes() == original
    assert Settings.load(path).top_k == 7


def test_an_unreadable_settings_file_that_cannot_be_moved_is_never_overwritten(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "settings.json"
    path.write_text("{truncated", encoding="utf-8")

    def refuse(self: Path, target: Path) -> Path:
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "rename", refuse)
    s, notes = Settings.load_with_messages(path)
    assert s == Settings() and len(notes) == 1 and "Permission denied" in notes[0]
    with pytest.raises(OSError, match="not overwritten"):
        s.save(path)
    assert path.read_text(encoding="utf-8") == "{truncated"


@pytest.mark.parametrize(("field", "bad"), [
    ("device", "tpu"), ("backend", "tensorrt"), ("colormap", "rainbowz"), ("colormap", 3),
    ("overlay_opacity", 7), ("overlay_opacity", "half"), ("top_k", 0), ("top_k", 2.5), ("top_k", True),
    ("recent_files", "a.jpg"), ("model_path", 12), ("last_dir", ["x"]), ("window_geometry", {"a": 1}),
])
def test_each_bad_field_falls_back_to_its_default_with_a_message(tmp_path: Path, field: str, bad: object) -> None:
    path = tmp_path / "settings.json"
    good = {"device": "cpu", "backend": "onnx", "colormap": "magma", "overlay_opacity": 0.25, "top_k": 4,
            "recent_files": ["/x/a.jpg"], "model_path": "/m.dmvb", "last_dir": "/x", "window_geometry": "AAA="}
    path.write_text(json.dumps({**good, field: bad}), encoding="utf-8")
    s, notes = Settings.load_with_messages(path)
    assert getattr(s, field) == getattr(Settings(), field)
    for k, v in good.items():  # every other field keeps its value
        if k != field:
            assert getattr(s, k) == v, k
    assert len(notes) == 1 and field in notes[0] and repr(bad) in notes[0]
    assert path.exists() and not list(tmp_path.glob("*.bad-*"))


def test_a_loaded_colormap_always_draws(tmp_path: Path) -> None:
    """A colormap that passes validation is one the overlay code can render (the old bug: every redraw raised)."""
    import numpy as np

    from dermviewer.state.overlays import colorize

    path = tmp_path / "settings.json"
    for name in ("rainbowz", "magma", "JET"):
        path.write_text(json.dumps({"colormap": name}), encoding="utf-8")
        s = Settings.load(path)
        rgba = colorize(np.linspace(0, 1, 16, dtype=np.float32).reshape(4, 4), (8, 8), s.colormap)
        assert rgba.shape == (8, 8, 4)


def test_an_unknown_key_is_reported_and_dropped(tmp_path: Path) -> None:
    path = tmp_path / "settings.json"
    path.write_text(json.dumps({"top_k": 3, "future_option": 1}), encoding="utf-8")
    s, notes = Settings.load_with_messages(path)
    assert s.top_k == 3 and len(notes) == 1 and "future_option" in notes[0]


def test_settings_and_cache_folders_follow_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DERMVIEWER_CONFIG_DIR", str(tmp_path / "cfg"))
    monkeypatch.setenv("DERMVIEWER_CACHE_DIR", str(tmp_path / "cache"))
    assert settings_path() == tmp_path / "cfg" / "settings.json"
    assert cache_dir() == tmp_path / "cache"
    monkeypatch.delenv("DERMVIEWER_CONFIG_DIR")
    monkeypatch.delenv("DERMVIEWER_CACHE_DIR")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdgc"))
    if sys.platform.startswith("linux"):  # platformdirs honours XDG on Linux
        assert settings_path() == tmp_path / "xdg" / "dermviewer" / "settings.json"
        assert cache_dir() == tmp_path / "xdgc" / "dermviewer"


def test_metadata_comes_from_the_manifest_beside_the_photo(photo: Path) -> None:
    meta = photo_metadata(photo)
    assert set(meta) <= {"Age", "Sex", "Fitzpatrick type", "Region"}
    assert "Age" in meta
    assert "diagnosis" not in " ".join(meta).lower()


def test_metadata_is_empty_without_a_manifest(tmp_path: Path) -> None:
    (tmp_path / "x.jpg").write_bytes(b"")
    assert photo_metadata(tmp_path / "x.jpg") == {}


def test_update_takes_usable_values_and_names_the_refused_ones() -> None:
    s = Settings()
    notes = s.update(device="cpu", backend="tensorrt", top_k=0, colormap="magma", nonsense=1)
    assert (s.device, s.backend, s.top_k, s.colormap) == ("cpu", "onnx", 5, "magma")  # backend: its default
    assert len(notes) == 3 and "'tensorrt'" in notes[0] and "top_k" in notes[1] and "nonsense" in notes[2]

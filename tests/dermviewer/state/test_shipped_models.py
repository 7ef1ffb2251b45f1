"""The bundled-models list read from bundle headers only, and ``dermviewer --model <name>``."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

import resources
from dermviewer.__main__ import parse_args
from dermviewer.state import model as model_mod
from dermviewer.state.model import resolve_model_choice, shipped_models
from engine.bundle import load_bundle, read_bundle_header
from engine.errors import BundleError


@pytest.fixture(scope="module")
def default_name() -> str:
    """The name the full loader (weights and checksum verified) reads from the shipped default bundle."""
    return load_bundle(resources.default_model_path()).name


@pytest.fixture
def models_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A models folder holding a copy of the default bundle, a copy named student, another bundle
    and two files that only look like bundles."""
    folder = tmp_path / "models"
    folder.mkdir()
    for stem in ("default", "student", "aardvark"):
        shutil.copyfile(resources.default_model_path(), folder / f"{stem}.dmvb")
    (folder / "broken.dmvb").write_bytes(b"this is not a safetensors file" * 10)
    (folder / "empty.dmvb").write_bytes(b"")
    (folder / "default.md").write_text("not a bundle", encoding="utf-8")
    monkeypatch.setattr(model_mod, "_models_dir", lambda: folder)
    return folder


def test_shipped_folder_lists_default_first_with_its_header_name(default_name: str) -> None:
    models = shipped_models()
    assert models, "resources/models ships at least default.dmvb"
    first = models[0]
    assert first.stem == "default"
    assert first.path.resolve() == resources.default_model_path().resolve()
    assert first.name == default_name
    assert first.label == f"Default — {default_name}"
    assert all(m.path.suffix == ".dmvb" for m in models)


def test_order_labels_and_corrupt_bundles_skipped(models_dir: Path, default_name: str) -> None:
    models = shipped_models()
    assert [m.stem for m in models] == ["default", "student", "aardvark"]  # broken/empty skipped, .md ignored
    assert [m.label for m in models] == [f"Default — {default_name}", f"Student, faster — {default_name}",
                                         "aardvark"]
    assert {m.name for m in models} == {default_name}
    assert models[0].path == models_dir / "default.dmvb"


def test_header_reader_skips_the_weights_and_names_the_file(models_dir: Path) -> None:
    bundle = read_bundle_header(models_dir / "default.dmvb")
    assert bundle.state_dict == {}
    assert bundle.taxonomy.heads
    with pytest.raises(BundleError) as err:
        read_bundle_header(models_dir / "broken.dmvb")
    assert err.value.path == models_dir / "broken.dmvb"


def test_missing_folder_lists_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(model_mod, "_models_dir", lambda: tmp_path / "nowhere")
    assert shipped_models() == []


def test_model_choice_resolves_stems_and_keeps_files(models_dir: Path, tmp_path: Path) -> None:
    assert resolve_model_choice("student") == models_dir / "student.dmvb"
    assert resolve_model_choice("default") == models_dir / "default.dmvb"
    other = tmp_path / "mine.onnx"
    other.write_bytes(b"x")
    assert resolve_model_choice(str(other)) == other  # an existing file is taken as it is
    with pytest.raises(BundleError, match="broken"):  # a skipped bundle is not offered by name
        resolve_model_choice("broken")


def test_cli_model_accepts_a_bundled_name(models_dir: Path) -> None:
    args = parse_args(["photo.jpg", "--model", "student"])
    assert args.model == str(models_dir / "student.dmvb")
    assert args.photos == ["photo.jpg"]
    assert parse_args([]).model is None


def test_cli_unknown_model_names_the_value_and_the_bundled_models(models_dir: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        parse_args(["--model", "nonesuch"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "--model" in err
    assert "'nonesuch'" in err
    assert "bundled: default, student, aardvark" in err

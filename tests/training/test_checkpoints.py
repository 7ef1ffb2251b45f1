"""Checkpoints: last.pt and best.pt are written by one atomic writer, hold only tensors and plain values,
and ``load_weights`` never unpickles a user-supplied file (``weights_only=True`` or safetensors)."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from trainhelp import tiny_config

from training.config import ConfigError
from training.data.pack import PackData
from training.run import build_loss, build_model_from_config, load_weights, make_dataset
from training.trainer import Trainer

_real_save = torch.save


class _DiskFull:
    """torch.save that writes part of the file and fails, as a full disk or a kill would, on chosen names."""

    def __init__(self, name: str, after: int = 0) -> None:
        self.name, self.after, self.seen = name, after, 0

    def __call__(self, obj: object, f: object, *args: object, **kwargs: object) -> None:
        if self.name in str(getattr(f, "name", f)):
            self.seen += 1
            if self.seen > self.after:
                if isinstance(f, str | Path):
                    Path(f).write_bytes(b"PK\x03\x04 half a checkpoint")
                else:
                    f.write(b"PK\x03\x04 half a checkpoint")  # type: ignore[attr-defined]
                raise OSError(28, "No space left on device")
        _real_save(obj, f, *args, **kwargs)


def _trainer(cfg, data: PackData, run: Path, val: bool = False) -> Trainer:
    torch.manual_seed(0)
    model, mcfg = build_model_from_config(cfg, data.taxonomy)
    rows = np.arange(len(data))
    metric = cfg.train.select_metric
    val_fn = (lambda _m: {metric: np.float64(0.25), "loss": np.float64(1.5)}) if val else None  # numpy values
    return Trainer(model, build_loss(cfg, data, mcfg.heads, rows), make_dataset(cfg, data, rows, mcfg, train=True),
                   cfg, run, val_fn=val_fn)


def test_a_crash_while_writing_best_pt_leaves_the_previous_best_whole(
        tiny_pack: PackData, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tiny_config(tmp_path, tiny_pack.path, train={"epochs": 2, "max_steps_per_epoch": 1})
    t = _trainer(cfg, tiny_pack, tmp_path / "run")
    monkeypatch.setattr(torch, "save", _DiskFull("best", after=1))  # epoch 1's best.pt is fine, epoch 2's fails
    with pytest.raises(OSError, match="No space left"):
        t.fit()
    best = torch.load(tmp_path / "run" / "best.pt", weights_only=True)
    assert best["epoch"] == 1  # the previous best, still whole
    assert sorted(p.name for p in (tmp_path / "run").iterdir() if "tmp" in p.name) == []


def test_a_crash_while_writing_last_pt_leaves_the_previous_one_whole(
        tiny_pack: PackData, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tiny_config(tmp_path, tiny_pack.path, train={"epochs": 2, "max_steps_per_epoch": 1})
    t = _trainer(cfg, tiny_pack, tmp_path / "run")
    monkeypatch.setattr(torch, "save", _DiskFull("last", after=1))
    with pytest.raises(OSError, match="No space left"):
        t.fit()
    assert torch.load(tmp_path / "run" / "last.pt", weights_only=True)["epoch"] == 1
    assert [p.name for p in (tmp_path / "run").iterdir() if "tmp" in p.name] == []


def test_checkpoints_hold_only_tensors_and_plain_values(tiny_pack: PackData, tmp_path: Path) -> None:
    cfg = tiny_config(tmp_path, tiny_pack.path, train={"epochs": 1, "max_steps_per_epoch": 1})
    t = _trainer(cfg, tiny_pack, tmp_path / "run", val=True)
    t.fit()
    for name in ("last.pt", "best.pt"):
        state = torch.load(tmp_path / "run" / name, weights_only=True)  # raises on any pickled object
        assert state["epoch"] == 1
    resumed = _trainer(cfg, tiny_pack, tmp_path / "again")
    resumed.load_checkpoint(tmp_path / "run" / "last.pt")
    assert np.random.get_state()[1].dtype == np.uint32 and resumed.epoch == 1


# -- load_weights ------------------------------------------------------------------------------------

class _RunsCode:
    """A pickle payload: unpickling it creates a file (a harmless stand-in for arbitrary code)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


@pytest.fixture(scope="module")
def trained(tiny_pack: PackData, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    tmp = tmp_path_factory.mktemp("w")
    cfg = tiny_config(tmp, tiny_pack.path, train={"epochs": 1, "max_steps_per_epoch": 1})
    t = _trainer(cfg, tiny_pack, tmp / "run")
    t.fit()
    return tmp / "run", {k: v.detach().clone() for k, v in t.model.state_dict().items()}


def _fresh(tiny_pack: PackData, tmp_path: Path):
    cfg = tiny_config(tmp_path, tiny_pack.path)
    torch.manual_seed(123)
    return build_model_from_config(cfg, tiny_pack.taxonomy)[0]


@pytest.mark.parametrize("source", ["best.pt", "last.pt", "plain state dict", "safetensors"])
def test_load_weights_reads_checkpoints_and_safetensors(tiny_pack: PackData, tmp_path: Path, trained,
                                                        source: str) -> None:
    run, weights = trained
    if source == "plain state dict":
        path = tmp_path / "sd.pt"
        torch.save(weights, path)
    elif source == "safetensors":
        path = tmp_path / "w.safetensors"
        save_file({k: v.contiguous() for k, v in weights.items()}, str(path))
    else:
        path = run / source
    model = _fresh(tiny_pack, tmp_path)
    load_weights(model, path)
    got = model.state_dict()
    assert all(torch.equal(got[k], weights[k]) for k in weights)


def test_load_weights_never_unpickles_code(tiny_pack: PackData, tmp_path: Path, trained) -> None:
    _run, weights = trained
    marker = tmp_path / "code-ran"
    path = tmp_path / "evil.pt"
    with path.open("wb") as f:
        pickle.dump({"model": weights, "payload": _RunsCode(marker)}, f, protocol=2)  # torch.load reads pickles
    with pytest.raises(ConfigError, match=r"evil\.pt: refused.*weights_only.*best\.pt"):
        load_weights(_fresh(tiny_pack, tmp_path), path)
    assert not marker.exists()


def test_load_weights_refuses_an_old_checkpoint_with_numpy_state(tiny_pack: PackData, tmp_path: Path,
                                                                 trained) -> None:
    _run, weights = trained
    path = tmp_path / "old_last.pt"
    torch.save({"model": weights, "rng": {"numpy": np.random.get_state()}}, path)
    with pytest.raises(ConfigError, match=r"old_last\.pt: refused"):
        load_weights(_fresh(tiny_pack, tmp_path), path)


@pytest.mark.parametrize("bad", ["truncated", "no tensors", "wrong shapes", "missing"])
def test_load_weights_names_the_file_and_the_reason(tiny_pack: PackData, tmp_path: Path, trained, bad: str) -> None:
    _run, weights = trained
    path = tmp_path / f"{bad.replace(' ', '_')}.pt"
    if bad == "truncated":
        path.write_bytes((trained[0] / "best.pt").read_bytes()[:500])
    elif bad == "no tensors":
        torch.save({"epoch": 3}, path)
    elif bad == "wrong shapes":
        torch.save({k: torch.zeros(1) if v.ndim else v for k, v in weights.items()}, path)
    with pytest.raises(ConfigError, match=rf"{path.name}: \w"):
        load_weights(_fresh(tiny_pack, tmp_path), path)


"""Helpers for the training tests: a tiny pack of real PAD-UFES-20 photos and a tiny experiment config."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from training.config import ExperimentConfig, load_config
from training.data.manifest import read_manifest
from training.data.pack import PackData, pack, read_pack_labels
from training.data.spec import load_spec

REPO = Path(__file__).resolve().parents[2]
SPEC = REPO / "configs" / "data" / "pad_ufes_20.yaml"
DATA = REPO.parent / "shared" / "data" / "pad_ufes_20"

if not (DATA / "manifest.csv").is_file():  # pragma: no cover - CI always has the shared data
    pytest.fail("PAD-UFES-20 development data not found at ../shared/data/pad_ufes_20", pytrace=False)


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


def pick_rows(n_per_class: int = 3) -> np.ndarray:
    """A handful of rows covering every diagnosis, with a few unknown attributes among them."""
    m = read_manifest(load_spec(SPEC))
    rows: list[int] = []
    for c in range(6):
        rows.extend(np.flatnonzero(m.labels["disease"] == c)[:n_per_class].tolist())
    unknown = np.flatnonzero(m.masks["attributes"].min(axis=1) == 0)[:2]
    rows.extend(int(r) for r in unknown if r not in rows)
    return np.array(sorted(rows))


@pytest.fixture(scope="session")
def tiny_pack(tmp_path_factory: pytest.TempPathFactory) -> PackData:
    m = read_manifest(load_spec(SPEC))
    path = tmp_path_factory.mktemp("pack") / "tiny.h5"
    pack(m.subset(pick_rows()), path, size=112)
    return read_pack_labels(path)


def tiny_config(tmp_path: Path, pack_path: Path, **sections: dict) -> ExperimentConfig:
    base = {
        "name": "tiny",
        "output_dir": str(tmp_path / "runs"),
        "model": {"name": "dermimitformer_tiny"},
        "data": {"pack": str(pack_path), "pack_size": 112, "batch_size": 8, "eval_batch_size": 16},
        "optim": {"name": "adamw", "lr": 1e-3, "weight_decay": 0.0, "schedule": "constant"},
        "train": {"epochs": 1, "amp": "none", "threads": 1, "progress": False, "export_onnx": False,
                  "log_every": 1},
        "cv": {"folds": 2},
    }
    for k, v in sections.items():
        base[k] = {**base.get(k, {}), **v}
    return load_config(None, base)


def ddp_worker(rank: int, world: int, init_file: str, pack_path: str, rows: list[int], out_dir: str) -> None:
    """One rank of the DDP test: train_step on its half of the batch, save the resulting weights."""
    import torch.distributed as dist

    from training.data.dataset import collate
    from training.distributed import DistInfo
    from training.run import build_loss, build_model_from_config, make_dataset

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        cfg, data = ddp_setup(pack_path, out_dir)
        torch.manual_seed(0)
        model, mcfg = build_model_from_config(cfg, data.taxonomy)
        ds = make_dataset(cfg, data, np.asarray(rows), mcfg, train=False)
        from training.trainer import Trainer

        trainer = Trainer(model, build_loss(cfg, data, mcfg.heads, np.asarray(rows)), ds, cfg, None,
                          dist=DistInfo(rank, world, rank))
        half = len(rows) // world
        batch = collate([ds[i] for i in range(rank * half, (rank + 1) * half)])
        trainer.train_mode()
        trainer.train_step(batch)
        if rank == 0:
            torch.save(trainer.model.state_dict(), Path(out_dir) / "ddp.pt")
    finally:
        dist.destroy_process_group()


def ddp_setup(pack_path: str, out_dir: str) -> tuple[ExperimentConfig, PackData]:
    cfg = tiny_config(Path(out_dir), Path(pack_path),
                      optim={"name": "sgd", "lr": 0.05, "momentum": 0.9, "schedule": "constant"},
                      augment={"cutmix_p": 0.0}, train={"freeze_bn_stats": True})
    return cfg, read_pack_labels(pack_path)

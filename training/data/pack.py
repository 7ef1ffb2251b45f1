"""One HDF5 file per dataset: resized uint8 images + labels, masks, groups, metadata, source hashes.

Training reads from the pack so epochs are not bound by JPEG decoding. Images are squashed to a
fixed square (``size``, default 256) with ``cv2.INTER_AREA`` from :func:`engine.imageio.load_image`
output -- the same squash the bundle's preprocessing applies (``engine.preprocess``), so eval on the
pack sees what the app sees, up to one extra resize. Unreadable images are skipped and reported.

Layout::

    images        (N, S, S, 3) uint8, one chunk per image
    ids, paths, groups            variable-length UTF-8 strings
    labels/<head>, masks/<head>   see training.data.manifest.Manifest
    eval_exclude  (N,) bool
    metadata/<column>             strings
    source_sha256 (N,) strings    SHA-256 of the source file bytes
    source_size   (N, 2) int32    (height, width) of the decoded photo
    attrs: spec, taxonomy (JSON), size, skipped (JSON), created
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

from engine.errors import ImageLoadError
from engine.imageio import load_image
from engine.preprocess import resize_square
from engine.taxonomy import Taxonomy
from training.data.manifest import Manifest, Problem

__all__ = ["PackData", "PackReport", "pack", "read_pack_labels"]

_STR = h5py.string_dtype(encoding="utf-8")


@dataclass
class PackReport:
    path: Path
    written: int
    skipped: list[Problem] = field(default_factory=list)
    seconds: float = 0.0


def _load(path: Path, size: int) -> tuple[np.ndarray, str, tuple[int, int]]:
    data = path.read_bytes() if path.is_file() else b""
    rgb = load_image(path)
    return resize_square(rgb, size, "area"), hashlib.sha256(data).hexdigest(), (rgb.shape[0], rgb.shape[1])


def pack(
    manifest: Manifest,
    out: str | Path,
    *,
    size: int = 256,
    workers: int = 2,
    progress: Callable[[int, int], None] | None = None,
) -> PackReport:
    """Decode, resize and write every manifest row; rows whose image cannot be read are skipped."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    n = len(manifest)
    images = np.zeros((n, size, size, 3), dtype=np.uint8)
    hashes = [""] * n
    sizes = np.zeros((n, 2), dtype=np.int32)
    ok = np.zeros(n, dtype=bool)
    skipped: list[Problem] = []

    def job(i: int) -> tuple[int, tuple[np.ndarray, str, tuple[int, int]] | ImageLoadError]:
        try:
            return i, _load(manifest.paths[i], size)
        except ImageLoadError as exc:
            return i, exc

    with ThreadPoolExecutor(max_workers=max(1, workers)) as ex:
        for done, (i, res) in enumerate(ex.map(job, range(n)), 1):
            if isinstance(res, ImageLoadError):
                skipped.append(Problem(int(manifest.rows[i]), manifest.spec.image_column,
                                       f"unreadable image skipped: {res}"))
            else:
                images[i], hashes[i], sizes[i] = res[0], res[1], res[2]
                ok[i] = True
            if progress is not None:
                progress(done, n)
    kept = manifest.subset(ok)
    idx = np.flatnonzero(ok)
    tmp = out.with_suffix(out.suffix + ".tmp")
    with h5py.File(tmp, "w") as f:
        f.create_dataset("images", data=images[idx], chunks=(1, size, size, 3) if len(idx) else None)
        f.create_dataset("ids", data=np.array(kept.ids, dtype=object), dtype=_STR)
        rel = [str(p.relative_to(manifest.spec.root)) if p.is_relative_to(manifest.spec.root) else str(p)
               for p in kept.paths]
        f.create_dataset("paths", data=np.array(rel, dtype=object), dtype=_STR)
        f.create_dataset("groups", data=np.array(kept.groups, dtype=object), dtype=_STR)
        for head in kept.labels:
            f.create_dataset(f"labels/{head}", data=kept.labels[head])
            f.create_dataset(f"masks/{head}", data=kept.masks[head])
        f.create_dataset("eval_exclude", data=kept.eval_exclude)
        for col, values in kept.metadata.items():
            f.create_dataset(f"metadata/{col}", data=np.array(values, dtype=object), dtype=_STR)
        f.create_dataset("source_sha256", data=np.array([hashes[i] for i in idx], dtype=object), dtype=_STR)
        f.create_dataset("source_size", data=sizes[idx])
        f.create_dataset("source_row", data=kept.rows.astype(np.int64))
        f.attrs["spec"] = json.dumps(manifest.spec.to_dict())
        f.attrs["taxonomy"] = json.dumps(manifest.taxonomy.to_dict())
        f.attrs["size"] = size
        f.attrs["skipped"] = json.dumps([str(p) for p in (*manifest.problems, *skipped)])
        f.attrs["created"] = time.strftime("%Y-%m-%dT%H:%M:%S")
    tmp.replace(out)
    return PackReport(out, int(ok.sum()), skipped, time.perf_counter() - t0)


@dataclass
class PackData:
    """Everything in a pack except the pixels (small; kept in memory by datasets and evaluators)."""

    path: Path
    size: int
    ids: list[str]
    groups: list[str]
    labels: dict[str, np.ndarray]
    masks: dict[str, np.ndarray]
    eval_exclude: np.ndarray
    metadata: dict[str, list[str]]
    taxonomy: Taxonomy

    def __len__(self) -> int:
        return len(self.ids)


def _strings(ds: h5py.Dataset) -> list[str]:
    return [v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in ds[()]]


def read_pack_labels(path: str | Path) -> PackData:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: HDF5 pack not found; run `dermviewer-train pack` first")
    with h5py.File(path, "r") as f:
        return PackData(
            path=path,
            size=int(f.attrs["size"]),
            ids=_strings(f["ids"]),
            groups=_strings(f["groups"]),
            labels={k: f[f"labels/{k}"][()] for k in f["labels"]},
            masks={k: f[f"masks/{k}"][()] for k in f["masks"]},
            eval_exclude=f["eval_exclude"][()].astype(bool),
            metadata={k: _strings(f[f"metadata/{k}"]) for k in f.get("metadata", {})},
            taxonomy=Taxonomy.from_dict(json.loads(f.attrs["taxonomy"])),
        )

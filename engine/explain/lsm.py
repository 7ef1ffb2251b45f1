"""The Lesion Selection Module's scores as an image-space explanation (DermImitFormer §2 Eq. 1, Fig. 4a).

``s_n`` lives on the model's token grid (row-major, one score per 16-px patch of the squashed
input). Preprocessing resizes the whole photo to the square input, so token (r, c) covers the
same *fraction* of the original photo, whatever its aspect ratio: boxes scale per axis.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from engine.errors import ModelConfigError
from engine.prediction import Prediction

__all__ = ["Box", "lsm_map", "normalize_map", "selected_boxes", "token_box"]

Box = tuple[int, int, int, int]
"""``(x0, y0, x1, y1)`` in image pixels, end-exclusive: ``image[y0:y1, x0:x1]`` is the region."""


def normalize_map(values: np.ndarray) -> np.ndarray:
    """Min-max to [0, 1] as float32; a constant (or empty) map becomes zeros, NaN/inf become 0."""
    m = np.nan_to_num(np.asarray(values, dtype=np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    if m.size == 0:
        return m
    lo, hi = float(m.min()), float(m.max())
    if hi - lo <= 1e-12:
        return np.zeros_like(m)
    return (m - lo) / (hi - lo)


def lsm_map(
    source: Prediction | np.ndarray | torch.Tensor | Sequence[float],
    grid: tuple[int, int] | None = None,
    head: str = "disease",
    normalize: bool = True,
) -> np.ndarray:
    """The LSM token scores ``s_n`` of one photo as a ``(rows, cols)`` float32 map.

    ``source`` is a :class:`~engine.prediction.Prediction` (its ``lsm[head]`` and ``grid_size``
    are used) or the raw scores of one photo, ``(N,)`` or already ``(rows, cols)``. With
    ``normalize`` the map is min-max scaled to [0, 1] (the argmax is unchanged), which is what an
    overlay needs; ``normalize=False`` keeps the raw mutual-attention scores.
    """
    if isinstance(source, Prediction):
        if head not in source.lsm:
            raise ModelConfigError(f"this prediction has no LSM scores for head {head!r} (heads: {sorted(source.lsm)})")
        scores = np.asarray(source.lsm[head], dtype=np.float32)
        grid = grid or source.grid_size
    elif isinstance(source, torch.Tensor):
        scores = source.detach().float().cpu().numpy()
    else:
        scores = np.asarray(source, dtype=np.float32)
    if grid is None:
        if scores.ndim != 2:
            raise ValueError(f"scores of shape {scores.shape} need a grid (rows, cols)")
        grid = (int(scores.shape[0]), int(scores.shape[1]))
    gh, gw = int(grid[0]), int(grid[1])
    if scores.size != gh * gw:
        raise ValueError(f"{scores.size} scores do not fill a {gh}x{gw} token grid")
    m = scores.reshape(gh, gw).astype(np.float32)
    return normalize_map(m) if normalize else m


def token_box(index: int, grid: tuple[int, int], image_size: tuple[int, int]) -> Box:
    """Pixel box of row-major token ``index``; ``image_size`` is ``(height, width)`` like ``Prediction.image_size``."""
    gh, gw = int(grid[0]), int(grid[1])
    h, w = int(image_size[0]), int(image_size[1])
    if not 0 <= index < gh * gw:
        raise ValueError(f"token index {index} is outside a {gh}x{gw} grid")
    r, c = divmod(int(index), gw)
    return (round(c * w / gw), round(r * h / gh), round((c + 1) * w / gw), round((r + 1) * h / gh))


def selected_boxes(
    indices: Sequence[int] | np.ndarray | torch.Tensor, grid: tuple[int, int], image_size: tuple[int, int]
) -> list[Box]:
    """Boxes of the LSM-selected tokens (the model's "zoom-in"), in the order given."""
    if isinstance(indices, torch.Tensor):
        indices = indices.detach().cpu().numpy()
    flat = np.asarray(indices).reshape(-1)
    return [token_box(int(i), grid, image_size) for i in flat]

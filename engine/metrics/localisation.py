"""Does the explanation point at the lesion? Localisation metrics against lesion masks (issue 11).

- LSM hit rate: share of the LSM-selected disease tokens (DermImitFormer §2 Eq. 1) whose grid cell
  overlaps the lesion, beside its chance level, the share of *all* cells that overlap it (what a
  random selection of cells would score).
- Grad-CAM pointing game (Zhang et al., "Top-down neural attention by excitation backprop", ECCV
  2016): is the map's maximum inside the lesion mask dilated by 2 % of the image side? Beside it the
  centre prior: is the centre pixel inside the *same dilated* mask? PAD-UFES-20 photos are
  lesion-centred, so an explanation that does not beat a fixed dot in the middle adds nothing.
- CAM energy inside the lesion as a multiple of the lesion's area share (1 = no better than uniform).

Frames. The model's input is the whole photo squash-resized to a square (``engine.preprocess``: no
crop, no letterbox; the training packs squash too, at most one extra resize), so token (r, c) of a
``rows x cols`` grid covers the fraction ``[r/rows, (r+1)/rows) x [c/cols, (c+1)/cols)`` of the photo
whatever its aspect ratio, and a Grad-CAM map is in that squashed frame. :func:`lesion_coverage`
maps a mask of any resolution into such a frame with the same cv2 resize geometry as the pixels
(pixel-centre aligned), as the area share of each target pixel that is lesion. Cell overlaps are
counted on the mask at its own resolution, so nothing is lost to resampling.

Masks: a boolean array, or integers (> 0 is lesion, e.g. 0/255 PNGs), or floats (>= 0.5 is lesion;
a float mask is taken as a coverage map where a fraction is needed). numpy/cv2 only.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from engine.metrics._util import BoolArray, to_jsonable

__all__ = [
    "DILATION_FRACTION",
    "STATUSES",
    "CamEnergy",
    "LocalisationSummary",
    "LsmHit",
    "PhotoLocalisation",
    "Pointing",
    "cam_energy_ratio",
    "cell_lesion_overlap",
    "dilate_mask",
    "lesion_coverage",
    "lesion_in_frame",
    "lsm_hit_rate",
    "photo_localisation",
    "pointing_game",
    "summarize_localisation",
]

DILATION_FRACTION = 0.02
"""The pointing game's tolerance: the mask is dilated by 2 % of the image side (issue 11)."""

_FLAT = 1e-6  # a map whose range is below this has no maximum to point with


def _as_bool(mask: npt.ArrayLike) -> BoolArray:
    m = np.asarray(mask)
    if m.ndim != 2 or m.size == 0:
        raise ValueError(f"a lesion mask must be a non-empty 2-D array, got shape {m.shape}")
    if m.dtype == np.bool_:
        return m
    if np.issubdtype(m.dtype, np.floating):
        return np.asarray(m >= 0.5)
    return np.asarray(m > 0)


def _as_coverage(mask: npt.ArrayLike) -> np.ndarray:
    m = np.asarray(mask)
    if m.ndim != 2 or m.size == 0:
        raise ValueError(f"a lesion mask must be a non-empty 2-D array, got shape {m.shape}")
    if np.issubdtype(m.dtype, np.floating):
        return np.clip(np.nan_to_num(m.astype(np.float32)), 0.0, 1.0)
    return _as_bool(m).astype(np.float32)


def lesion_coverage(mask: npt.ArrayLike, shape: tuple[int, int]) -> np.ndarray:
    """``(h, w)`` float32 in [0, 1]: the share of each pixel of a squashed ``shape`` frame that is lesion.

    ``cv2.resize`` to the frame's size, as :func:`engine.preprocess.resize_square` does with the photo
    (the same pixel-centre geometry for every cv2 interpolation); INTER_AREA on the 0/1 mask turns
    each target pixel into its exact lesion fraction when shrinking.
    """
    h, w = int(shape[0]), int(shape[1])
    cov = _as_coverage(mask)
    if cov.shape == (h, w):
        return cov
    return np.clip(cv2.resize(cov, (w, h), interpolation=cv2.INTER_AREA), 0.0, 1.0)


def lesion_in_frame(mask: npt.ArrayLike, shape: tuple[int, int]) -> BoolArray:
    """The lesion as a boolean mask of a squashed ``shape`` frame: pixels that are at least half lesion."""
    m = np.asarray(mask)
    if m.shape == tuple(shape):
        return _as_bool(m)
    return np.asarray(lesion_coverage(m, shape) >= 0.5)


def dilate_mask(mask: npt.ArrayLike, fraction: float = DILATION_FRACTION) -> BoolArray:
    """Every pixel within ``fraction`` x the longer image side (Euclidean) of a lesion pixel.

    A distance transform, not a pixel-kernel dilation, so a fractional radius (3.2 px at 160 px) is
    honoured exactly. An empty mask stays empty.
    """
    m = _as_bool(mask)
    radius = float(fraction) * max(m.shape)
    if radius <= 0 or not m.any():
        return m.copy()
    dist = cv2.distanceTransform((~m).astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    return np.asarray(dist <= radius)


def _cell_edges(n_cells: int, n_pixels: int) -> np.ndarray:
    # the same rounding as engine.explain.lsm.token_box: a cell's box in this mask's pixels
    return np.array([round(i * n_pixels / n_cells) for i in range(n_cells + 1)], dtype=np.int64)


def cell_lesion_overlap(mask: npt.ArrayLike, grid: tuple[int, int], min_fraction: float = 0.0) -> BoolArray:
    """``(rows, cols)``: does cell (r, c) of the token grid hold more than ``min_fraction`` lesion?

    With the default 0, one lesion pixel in the cell's box makes it overlap. The boxes are the
    token boxes of :func:`engine.explain.token_box` at the mask's own resolution (the squash maps the
    grid onto the same fractions of the photo and of its mask).
    """
    m = _as_bool(mask)
    gh, gw = int(grid[0]), int(grid[1])
    if gh < 1 or gw < 1:
        raise ValueError(f"a token grid needs at least one cell, got {grid}")
    h, w = m.shape
    if gh > h or gw > w:
        raise ValueError(f"a {h}x{w} mask is too small for a {gh}x{gw} grid")
    integral = np.zeros((h + 1, w + 1), dtype=np.int64)
    integral[1:, 1:] = m.astype(np.int64).cumsum(0).cumsum(1)
    ys, xs = _cell_edges(gh, h), _cell_edges(gw, w)
    y0, y1 = ys[:-1, None], ys[1:, None]
    x0, x1 = xs[None, :-1], xs[None, 1:]
    count = integral[y1, x1] - integral[y0, x1] - integral[y1, x0] + integral[y0, x0]
    area = (y1 - y0) * (x1 - x0)
    return np.asarray(count > min_fraction * area) & (count > 0)


@dataclass(frozen=True)
class LsmHit:
    hit_rate: float  # share of the selected tokens whose cell overlaps the lesion
    chance: float  # share of all cells that overlap it
    n_selected: int
    n_hit: int


def lsm_hit_rate(
    indices: npt.ArrayLike,
    grid: tuple[int, int],
    mask: npt.ArrayLike,
    *,
    num_prefix_tokens: int = 0,
    min_fraction: float = 0.0,
) -> LsmHit:
    """LSM hit rate of one photo's selected tokens against its lesion mask (any resolution).

    ``indices`` are row-major cells of ``grid``. DermImitFormer's ``selected_disease`` output already
    counts patch tokens only (its LSM scores ``attn[:, :, 0, 1:]``), so the default offset is 0; pass
    the model's ``num_prefix_tokens`` for indices into the full token sequence (class token first).
    """
    idx = np.asarray(indices).reshape(-1).astype(np.int64) - int(num_prefix_tokens)
    gh, gw = int(grid[0]), int(grid[1])
    if idx.size == 0:
        raise ValueError("no selected tokens")
    if idx.min() < 0 or idx.max() >= gh * gw:
        raise ValueError(f"token indices {idx.min()}..{idx.max()} fall outside a {gh}x{gw} grid "
                         f"(after removing {num_prefix_tokens} prefix tokens)")
    cells = cell_lesion_overlap(mask, (gh, gw), min_fraction).reshape(-1)
    hits = int(cells[idx].sum())
    return LsmHit(hit_rate=hits / idx.size, chance=float(cells.mean()), n_selected=int(idx.size), n_hit=hits)


@dataclass(frozen=True)
class Pointing:
    hit: bool  # the map's maximum lies in the dilated lesion
    centre_hit: bool  # the frame's centre pixel lies in the same dilated lesion
    peak: tuple[int, int]  # (y, x) of the maximum in the map's frame (first in row-major order)
    flat: bool  # the map has no maximum (constant): counted as a miss


def pointing_game(cam: npt.ArrayLike, mask: npt.ArrayLike, dilation: float = DILATION_FRACTION) -> Pointing:
    """Pointing game of one map against one lesion mask, with the centre prior on the same terms.

    ``cam`` is in the squashed input frame (e.g. Grad-CAM's ``(S, S)``); ``mask`` is at any resolution
    and is brought into that frame by :func:`lesion_in_frame`, then dilated by ``dilation`` x the side
    (:func:`dilate_mask`). The centre prior asks whether the centre pixel ``(h // 2, w // 2)`` is inside
    that same *dilated* mask, so the two figures are comparable. A constant map cannot point: a miss.
    """
    m = np.nan_to_num(np.asarray(cam, dtype=np.float32), nan=-np.inf)
    if m.ndim != 2 or m.size == 0:
        raise ValueError(f"expected a 2-D map, got shape {m.shape}")
    lesion = dilate_mask(lesion_in_frame(mask, (m.shape[0], m.shape[1])), dilation)
    finite = m[np.isfinite(m)]
    flat = finite.size == 0 or float(finite.max() - finite.min()) <= _FLAT
    y, x = (int(v) for v in np.unravel_index(int(np.argmax(m)), m.shape))
    centre = bool(lesion[m.shape[0] // 2, m.shape[1] // 2])
    return Pointing(hit=bool(lesion[y, x]) and not flat, centre_hit=centre, peak=(y, x), flat=flat)


@dataclass(frozen=True)
class CamEnergy:
    energy_share: float  # share of the map's total inside the lesion
    area_share: float  # share of the frame that is lesion
    ratio: float  # energy_share / area_share; 1 for a uniform map, NaN for a zero map or no lesion


def cam_energy_ratio(cam: npt.ArrayLike, mask: npt.ArrayLike) -> CamEnergy:
    """CAM energy in the lesion as a multiple of the lesion's area share (no dilation).

    The mask is taken as its per-pixel lesion coverage in the map's frame (:func:`lesion_coverage`),
    so a uniform map gives exactly 1 at any mask resolution. Negative map values are clipped to 0.
    """
    m = np.clip(np.nan_to_num(np.asarray(cam, dtype=np.float64)), 0.0, None)
    if m.ndim != 2 or m.size == 0:
        raise ValueError(f"expected a 2-D map, got shape {m.shape}")
    cov = lesion_coverage(mask, (m.shape[0], m.shape[1])).astype(np.float64)
    total, area = float(m.sum()), float(cov.mean())
    energy = float((m * cov).sum() / total) if total > 0 else math.nan
    ratio = energy / area if area > 0 and math.isfinite(energy) else math.nan
    return CamEnergy(energy_share=energy, area_share=area, ratio=ratio)


STATUSES = ("ok", "no_mask", "empty_mask")


@dataclass(frozen=True)
class PhotoLocalisation:
    """One photo's figures; NaN where a figure does not apply (no mask, no CAM, a model without LSM)."""

    image: str
    status: str = "ok"  # "ok", "no_mask" (skipped, counted) or "empty_mask" (a mask with no lesion)
    class_index: int = -1  # the class the CAM explains (the top predicted disease)
    pointing: float = math.nan  # 1.0 hit, 0.0 miss
    centre_prior: float = math.nan
    cam_flat: float = math.nan
    peak_y: float = math.nan  # the CAM's maximum as a fraction of the frame (0..1), for cards and plots
    peak_x: float = math.nan
    lsm_hit_rate: float = math.nan
    lsm_chance: float = math.nan
    energy_share: float = math.nan
    area_share: float = math.nan
    energy_ratio: float = math.nan

    def to_dict(self) -> dict[str, Any]:
        result: dict[str, Any] = to_jsonable(self)
        return result

    @staticmethod
    def columns() -> list[str]:
        return [f.name for f in fields(PhotoLocalisation)]


def photo_localisation(
    image: str,
    mask: npt.ArrayLike | None,
    *,
    cam: npt.ArrayLike | None = None,
    selected: npt.ArrayLike | None = None,
    grid: tuple[int, int] | None = None,
    num_prefix_tokens: int = 0,
    class_index: int = -1,
    dilation: float = DILATION_FRACTION,
) -> PhotoLocalisation:
    """Every figure of one photo: ``cam`` in the input frame, ``selected`` tokens on ``grid``, ``mask`` any size."""
    if mask is None:
        return PhotoLocalisation(image, "no_mask", class_index)
    lesion = _as_bool(mask)
    if not lesion.any():
        return PhotoLocalisation(image, "empty_mask", class_index)
    figures: dict[str, float] = {}
    if cam is not None:
        c = np.asarray(cam, dtype=np.float32)
        p = pointing_game(c, lesion, dilation)
        e = cam_energy_ratio(c, lesion)
        figures |= {"pointing": float(p.hit), "centre_prior": float(p.centre_hit), "cam_flat": float(p.flat),
                    "peak_y": (p.peak[0] + 0.5) / c.shape[0], "peak_x": (p.peak[1] + 0.5) / c.shape[1],
                    "energy_share": e.energy_share, "area_share": e.area_share, "energy_ratio": e.ratio}
    if selected is not None:
        if grid is None:
            raise ValueError("selected tokens need the model's token grid")
        h = lsm_hit_rate(selected, grid, lesion, num_prefix_tokens=num_prefix_tokens)
        figures |= {"lsm_hit_rate": h.hit_rate, "lsm_chance": h.chance}
    return PhotoLocalisation(image, "ok", int(class_index), **figures)


@dataclass(frozen=True)
class LocalisationSummary:
    """Means over the photos that have a mask with a lesion in it; skipped photos are counted."""

    n_photos: int  # every photo looked at
    n_scored: int  # photos with a non-empty mask
    n_no_mask: int  # skipped: no mask for the photo
    n_empty_mask: int  # skipped: a mask without lesion pixels
    n_cam_flat: int  # constant CAMs (scored as pointing misses)
    pointing_game: float
    centre_prior: float
    lsm_hit_rate: float
    lsm_chance: float
    energy_ratio: float  # mean over photos of energy share / area share
    energy_ratio_median: float
    energy_share: float
    area_share: float

    def to_dict(self) -> dict[str, Any]:
        result: dict[str, Any] = to_jsonable(self)
        return result


def _mean(values: Sequence[float]) -> float:
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    return float(v.mean()) if v.size else math.nan


def summarize_localisation(records: Iterable[PhotoLocalisation]) -> LocalisationSummary:
    """Aggregate many photos' figures (NaN figures, e.g. a model without LSM, are left out of the means)."""
    rows = list(records)
    ok = [r for r in rows if r.status == "ok"]
    ratios = np.asarray([r.energy_ratio for r in ok], dtype=np.float64)
    ratios = ratios[np.isfinite(ratios)]
    return LocalisationSummary(
        n_photos=len(rows),
        n_scored=len(ok),
        n_no_mask=sum(r.status == "no_mask" for r in rows),
        n_empty_mask=sum(r.status == "empty_mask" for r in rows),
        n_cam_flat=sum(r.cam_flat == 1.0 for r in ok),
        pointing_game=_mean([r.pointing for r in ok]),
        centre_prior=_mean([r.centre_prior for r in ok]),
        lsm_hit_rate=_mean([r.lsm_hit_rate for r in ok]),
        lsm_chance=_mean([r.lsm_chance for r in ok]),
        energy_ratio=_mean(list(ratios)),
        energy_ratio_median=float(np.median(ratios)) if ratios.size else math.nan,
        energy_share=_mean([r.energy_share for r in ok]),
        area_share=_mean([r.area_share for r in ok]),
    )

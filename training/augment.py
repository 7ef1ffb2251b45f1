"""Train-time augmentation and CutMix.

Per-image: random resized crop or the multitask-lesion paper's scale jittering (short side drawn
from [256, 480] for a 224 crop, i.e. x1.14-2.14), flips, rotation, colour jitter, and optionally an
``engine.corrupt`` corruption (robustness paper: train on corrupted data). Random parameters come
from a NumPy generator seeded by (seed, epoch, index), so an epoch's augmentations are identical
whatever the worker count and after a resume.

Batch: CutMix (Yun et al. 2019) as in DermImitFormer §3 (p = 0.5, lambda ~ Beta(0.3, 0.3)). Every
task's soft target is mixed by the pasted area; a label is known after mixing only where it was
known in both images (an unknown attribute pasted into a known one gives an unknown mixture).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torchvision.transforms.v2.functional as TF
from torchvision.transforms import InterpolationMode

from training.config import AugmentConfig

__all__ = ["CutMixResult", "TrainTransform", "cutmix", "normalize"]


def normalize(img: torch.Tensor, mean: tuple[float, ...], std: tuple[float, ...]) -> torch.Tensor:
    """uint8 (3,H,W) -> float32 normalised."""
    x = img.float().div_(255.0)
    m = torch.tensor(mean, dtype=x.dtype).view(3, 1, 1)
    s = torch.tensor(std, dtype=x.dtype).view(3, 1, 1)
    return (x - m) / s


class TrainTransform:
    """``(rgb HxWx3 uint8, rng) -> (3, S, S) float32`` with the augmentations of :class:`AugmentConfig`."""

    def __init__(self, cfg: AugmentConfig, img_size: int, mean: tuple[float, ...], std: tuple[float, ...]) -> None:
        self.cfg = cfg
        self.size = img_size
        self.mean, self.std = mean, std

    def __call__(self, rgb: np.ndarray, rng: np.random.Generator) -> torch.Tensor:
        return self.with_lesion(rgb, None, rng)[0]

    def with_lesion(self, rgb: np.ndarray, lesion: np.ndarray | None,
                    rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The augmented photo and, when ``lesion`` (an ``(H, W)`` coverage in [0, 1] of ``rgb``'s frame) is
        given, the lesion warped by the *same* rotation, crop and flips: ``(S, S)`` float32 in [0, 1].

        The mask rides as a 4th uint8 channel through the geometry and leaves before the colour jitter and
        normalisation; every random draw is the same with and without it, so the photo is identical either
        way (the frozen-prefix cache and the LSM-to-mask loss's lesion grids stay in step).
        """
        cfg = self.cfg
        if cfg.corruptions and cfg.corruption_p > 0 and rng.random() < cfg.corruption_p:
            from engine.corrupt import corrupt

            name = cfg.corruptions[int(rng.integers(len(cfg.corruptions)))]
            level = int(cfg.corruption_levels[int(rng.integers(len(cfg.corruption_levels)))])
            rgb = corrupt(rgb, name, level=level, seed=int(rng.integers(2**31)))
        img = torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1).contiguous()
        if lesion is not None:
            if tuple(lesion.shape) != tuple(rgb.shape[:2]):
                raise ValueError(f"lesion {tuple(lesion.shape)} is not of the photo's frame {tuple(rgb.shape[:2])}")
            m = torch.from_numpy(np.round(np.clip(lesion, 0.0, 1.0) * 255.0).astype(np.uint8))
            img = torch.cat([img, m[None]], dim=0)
        if cfg.rotation > 0:
            angle = float(rng.uniform(-cfg.rotation, cfg.rotation))
            img = TF.rotate(img, angle, interpolation=InterpolationMode.BILINEAR)
        img = self._crop(img, rng)
        if rng.random() < cfg.hflip:
            img = TF.horizontal_flip(img)
        if rng.random() < cfg.vflip:
            img = TF.vertical_flip(img)
        warped = img[3].float().div_(255.0) if lesion is not None else None
        img = self._colour(img[:3].contiguous(), rng)
        return normalize(img, self.mean, self.std), warped

    def _crop(self, img: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
        cfg, s = self.cfg, self.size
        h, w = img.shape[-2:]
        if cfg.crop == "none":
            return TF.resize(img, [s, s], antialias=True)
        if cfg.crop == "scale_jitter":
            short = round(s * float(rng.uniform(*cfg.scale_jitter)))
            short = max(short, s)
            nh, nw = (short, round(w * short / h)) if h <= w else (round(h * short / w), short)
            img = TF.resize(img, [nh, nw], antialias=True)
            top = int(rng.integers(0, nh - s + 1))
            left = int(rng.integers(0, nw - s + 1))
            return TF.crop(img, top, left, s, s)
        if cfg.crop != "rrc":
            raise ValueError(f"augment.crop must be rrc, scale_jitter or none, got {cfg.crop!r}")
        area = h * w
        for _ in range(10):
            target = area * float(rng.uniform(*cfg.rrc_scale))
            log_r = (math.log(cfg.rrc_ratio[0]), math.log(cfg.rrc_ratio[1]))
            ratio = math.exp(float(rng.uniform(*log_r)))
            cw = round(math.sqrt(target * ratio))
            ch = round(math.sqrt(target / ratio))
            if 0 < cw <= w and 0 < ch <= h:
                top = int(rng.integers(0, h - ch + 1))
                left = int(rng.integers(0, w - cw + 1))
                return TF.resized_crop(img, top, left, ch, cw, [s, s], antialias=True)
        return TF.resize(img, [s, s], antialias=True)

    def _colour(self, img: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
        cfg = self.cfg
        if cfg.brightness > 0:
            img = TF.adjust_brightness(img, float(rng.uniform(1 - cfg.brightness, 1 + cfg.brightness)))
        if cfg.contrast > 0:
            img = TF.adjust_contrast(img, float(rng.uniform(1 - cfg.contrast, 1 + cfg.contrast)))
        if cfg.saturation > 0:
            img = TF.adjust_saturation(img, float(rng.uniform(1 - cfg.saturation, 1 + cfg.saturation)))
        if cfg.hue > 0:
            img = TF.adjust_hue(img, float(rng.uniform(-cfg.hue, cfg.hue)))
        return img


@dataclass
class CutMixResult:
    images: torch.Tensor
    targets: dict[str, torch.Tensor]
    masks: dict[str, torch.Tensor]
    lam: float  # fraction of each image that is still its own (1.0: not applied)
    perm: torch.Tensor | None
    box: tuple[int, int, int, int] | None  # (top, left, height, width) of the pasted region


def cutmix(
    images: torch.Tensor,
    targets: dict[str, torch.Tensor],
    masks: dict[str, torch.Tensor],
    *,
    p: float,
    alpha: float,
    generator: torch.Generator,
) -> CutMixResult:
    """Paste a box from a shuffled copy of the batch; mix each head's soft target by the true pasted area.

    ``targets[h]`` is (B, C) soft; ``masks[h]`` is (B,) for single-label heads, (B, C) for multi-label.
    """
    b, _, h, w = images.shape
    if b < 2 or p <= 0 or float(torch.rand((), generator=generator)) >= p:
        return CutMixResult(images, targets, masks, 1.0, None, None)
    lam = _beta(alpha, generator)
    cut = math.sqrt(1.0 - lam)
    ch, cw = round(h * cut), round(w * cut)
    cy = int(torch.randint(0, h, (), generator=generator))
    cx = int(torch.randint(0, w, (), generator=generator))
    top, bottom = max(cy - ch // 2, 0), min(cy + ch - ch // 2, h)
    left, right = max(cx - cw // 2, 0), min(cx + cw - cw // 2, w)
    perm = torch.randperm(b, generator=generator)
    mixed = images.clone()
    mixed[:, :, top:bottom, left:right] = images[perm, :, top:bottom, left:right]
    lam_area = 1.0 - (bottom - top) * (right - left) / float(h * w)
    new_t = {k: lam_area * t + (1.0 - lam_area) * t[perm] for k, t in targets.items()}
    new_m = {k: m * m[perm] for k, m in masks.items()}
    return CutMixResult(mixed, new_t, new_m, lam_area, perm, (top, left, bottom - top, right - left))


def _beta(alpha: float, generator: torch.Generator) -> float:
    """Beta(alpha, alpha) seeded from ``generator`` (torch's Beta distribution takes no generator)."""
    seed = int(torch.randint(0, 2**62, (), generator=generator))
    return float(np.random.default_rng(seed).beta(alpha, alpha))

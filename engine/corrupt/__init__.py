"""Corruptions for robustness testing (Mishra et al., "Assessing Robustness of Deep learning Methods in
Dermatological Workflow", §2.3): the paper's salt-and-pepper noise and 5x5 Gaussian blur, plus motion
blur, Gaussian noise, JPEG and brightness/contrast, at severity levels 1-5 or explicit parameters,
seeded, composable and never in place. The severity table is in :mod:`engine.corrupt.registry`.
"""

from engine.corrupt.errors import CorruptionError
from engine.corrupt.ops import (
    Image,
    brightness_contrast,
    gaussian_blur,
    gaussian_noise,
    jpeg,
    motion_blur,
    motion_kernel,
    salt_and_pepper,
)
from engine.corrupt.pipeline import Compose, Step, derive_seed
from engine.corrupt.registry import CORRUPTIONS, LEVELS, Corruption, corrupt, get_corruption, list_corruptions

__all__ = [
    "CORRUPTIONS",
    "LEVELS",
    "Compose",
    "Corruption",
    "CorruptionError",
    "Image",
    "Step",
    "brightness_contrast",
    "corrupt",
    "derive_seed",
    "gaussian_blur",
    "gaussian_noise",
    "get_corruption",
    "jpeg",
    "list_corruptions",
    "motion_blur",
    "motion_kernel",
    "salt_and_pepper",
]

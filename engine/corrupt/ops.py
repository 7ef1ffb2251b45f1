"""Image corruptions with explicit, continuous parameters (Mishra et al., "Assessing Robustness of Deep
learning Methods in Dermatological Workflow", §2.3 Adversarial tests).

The paper simulates shot noise with salt-and-pepper pixels (at most 5 % of the pixels, black:white 3:1)
and blur with a 5x5 Gaussian kernel. Motion blur, Gaussian noise, JPEG compression and
brightness/contrast extend it to the other defects user-submitted photos carry.

Contract shared by every function here, so the GUI sliders and the robustness benchmark can chain them
freely: the input is a uint8 RGB ``(H, W, 3)`` array; the output is a *new* array of the same shape and
dtype; the input is never written to. The stochastic ones take a non-negative integer ``seed`` and are
deterministic given it. Parameters are in pixels and 8-bit intensity units of the array they are given.
Severity levels 1-5 live in :mod:`engine.corrupt.registry`.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
from numpy.typing import NDArray

from engine.corrupt.errors import CorruptionError

__all__ = [
    "Image",
    "brightness_contrast",
    "check_image",
    "check_seed",
    "gaussian_blur",
    "gaussian_noise",
    "jpeg",
    "motion_blur",
    "motion_kernel",
    "salt_and_pepper",
]

Image = NDArray[np.uint8]


def check_image(img: object, name: str) -> Image:
    """Return ``img`` as a C-contiguous uint8 RGB array (a view when it already is one), else raise."""
    if not isinstance(img, np.ndarray):
        raise CorruptionError(name, f"expected a numpy array, got {type(img).__name__}")
    if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3 or 0 in img.shape:
        raise CorruptionError(name, f"expected a uint8 RGB (H, W, 3) array, got {img.dtype} {img.shape}")
    return np.ascontiguousarray(img)


def check_seed(seed: object, name: str | None) -> int:
    """Seeds are plain non-negative ints so a run can log them and replay it exactly."""
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise CorruptionError(name, f"seed must be a non-negative integer, got {seed!r}")
    return int(seed)


def _real(value: object, name: str, param: str, lo: float, hi: float) -> float:
    """A finite number in ``[lo, hi]``; NaN and strings fail here instead of deep inside OpenCV."""
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise CorruptionError(name, f"{param} must be a number, got {value!r}")
    number = float(value)
    if not lo <= number <= hi:
        raise CorruptionError(name, f"{param} must be in [{lo}, {hi}], got {value!r}")
    return number


def _integer(value: object, name: str, param: str, lo: int, hi: int) -> int:
    """An integer in ``[lo, hi]``; integral floats are accepted because sliders sometimes send them."""
    number = _real(value, name, param, lo, hi)
    if not number.is_integer():
        raise CorruptionError(name, f"{param} must be an integer, got {value!r}")
    return int(number)


def _u8(result: object) -> Image:
    return np.asarray(result, dtype=np.uint8)


def salt_and_pepper(img: Image, amount: float = 0.03, black_ratio: float = 0.75, seed: int = 0) -> Image:
    """Shot noise: exactly ``round(amount*H*W)`` distinct pixels set to black or white on all channels.

    Positions are drawn without replacement so the corrupted fraction is exact, not just expected;
    ``round(n*black_ratio)`` of them are pepper (0), the rest salt (255). The paper uses up to 5 % of
    the pixels with a 3:1 black:white ratio (``black_ratio=0.75``). ``round`` is Python's (half to even).
    """
    name = "salt_and_pepper"
    src = check_image(img, name)
    amount = _real(amount, name, "amount", 0.0, 1.0)
    black_ratio = _real(black_ratio, name, "black_ratio", 0.0, 1.0)
    rng = np.random.default_rng(check_seed(seed, name))
    h, w = src.shape[:2]
    n = round(amount * h * w)
    n_black = round(n * black_ratio)
    # choice(..., replace=False) returns the positions in random order, so the first n_black are a
    # uniformly random subset: no second draw is needed to assign colours.
    positions = rng.choice(h * w, size=n, replace=False)
    out = src.copy()
    flat = out.reshape(-1, 3)
    flat[positions[:n_black]] = 0
    flat[positions[n_black:]] = 255
    return out


def gaussian_blur(img: Image, ksize: int = 5, sigma: float | None = None) -> Image:
    """Defocus: a ``ksize x ksize`` Gaussian kernel (reflected borders).

    ``sigma=None`` lets OpenCV choose, which for 5x5 is its fixed binomial kernel [1 4 6 4 1]/16, i.e.
    exactly the paper's plain "5x5 Gaussian kernel" (equivalent to sigma ~ 1.0).
    """
    name = "gaussian_blur"
    src = check_image(img, name)
    k = _integer(ksize, name, "ksize", 1, 255)
    if k % 2 == 0:
        raise CorruptionError(name, f"ksize must be odd, got {ksize!r}")
    s = 0.0 if sigma is None else _real(sigma, name, "sigma", 1e-3, 100.0)
    return _u8(cv2.GaussianBlur(src, (k, k), sigmaX=s, sigmaY=s, borderType=cv2.BORDER_REFLECT_101))


def motion_kernel(length: float, angle: float) -> NDArray[np.float32]:
    """A normalised line kernel ``length`` pixels long at ``angle`` degrees.

    The line is rasterised horizontally with fractional end pixels (so non-integer and even lengths
    are honest), then rotated about the kernel centre. Angles are counter-clockwise from the
    horizontal as the photo is displayed: 0 smears left-right, 90 up-down, 45 bottom-left to top-right.
    """
    size = 2 * math.ceil((length - 1) / 2) + 1  # smallest odd square that holds the line
    centre = size // 2
    half = length / 2
    x = np.arange(size, dtype=np.float64)
    coverage = np.clip(x + 0.5, centre - half, centre + half) - np.clip(x - 0.5, centre - half, centre + half)
    kernel = np.zeros((size, size), np.float32)
    kernel[centre] = coverage
    rotation = cv2.getRotationMatrix2D((float(centre), float(centre)), angle, 1.0)
    kernel = np.asarray(cv2.warpAffine(kernel, rotation, (size, size), flags=cv2.INTER_LINEAR), np.float32)
    return kernel / kernel.sum()


def motion_blur(img: Image, length: float = 9.0, angle: float = 0.0) -> Image:
    """Camera shake: averages each pixel with its neighbours along a ``length``-pixel line at ``angle``.

    See :func:`motion_kernel` for the angle convention; ``length=1`` is the identity.
    """
    name = "motion_blur"
    src = check_image(img, name)
    length = _real(length, name, "length", 1.0, 255.0)
    angle = _real(angle, name, "angle", -360.0, 360.0)
    kernel = motion_kernel(length, angle)
    return _u8(cv2.filter2D(src, -1, kernel, borderType=cv2.BORDER_REFLECT_101))


def gaussian_noise(img: Image, sigma: float = 10.0, seed: int = 0) -> Image:
    """Sensor noise: i.i.d. N(0, sigma^2) per pixel and channel, sigma in 8-bit units, then clipped."""
    name = "gaussian_noise"
    src = check_image(img, name)
    sigma = _real(sigma, name, "sigma", 0.0, 255.0)
    rng = np.random.default_rng(check_seed(seed, name))
    noise = rng.standard_normal(src.shape, dtype=np.float32) * np.float32(sigma)
    return _u8(np.clip(np.rint(src + noise), 0, 255))


def jpeg(img: Image, quality: int = 50) -> Image:
    """Re-compression by a messenger app or web form: a JPEG round trip at ``quality`` (1-100).

    The array is swapped to BGR for the codec and back, so chroma subsampling hits the real chroma
    channels rather than a red/blue-swapped image.
    """
    name = "jpeg"
    src = check_image(img, name)
    q = _integer(quality, name, "quality", 1, 100)
    bgr = cv2.cvtColor(src, cv2.COLOR_RGB2BGR)
    ok, buffer = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, q])
    if not ok:
        raise CorruptionError(name, "OpenCV could not encode the image as JPEG")
    decoded = cv2.imdecode(buffer, cv2.IMREAD_COLOR)
    if decoded is None:
        raise CorruptionError(name, "OpenCV could not decode its own JPEG")
    return _u8(cv2.cvtColor(decoded, cv2.COLOR_BGR2RGB))


def brightness_contrast(img: Image, brightness: float = 0.0, contrast: float = 1.0) -> Image:
    """Exposure: ``(x - 128) * contrast + 128 + brightness``, rounded and clipped to 0-255.

    Contrast pivots on mid-grey so changing it alone does not also shift brightness. Applied as a
    256-entry lookup table, which is exact and cheap on full-size photos.
    """
    name = "brightness_contrast"
    src = check_image(img, name)
    b = _real(brightness, name, "brightness", -255.0, 255.0)
    c = _real(contrast, name, "contrast", 0.0, 10.0)
    levels = np.arange(256, dtype=np.float64)
    lut = np.clip(np.rint((levels - 128.0) * c + 128.0 + b), 0, 255).astype(np.uint8)
    return lut[src]

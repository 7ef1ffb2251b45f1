"""Tests for engine.corrupt: the robustness protocol of Mishra et al. §2.3 and its extensions."""

from __future__ import annotations

from itertools import pairwise
from pathlib import Path

import cv2
import numpy as np
import pytest

from engine.corrupt import (
    CORRUPTIONS,
    LEVELS,
    Compose,
    CorruptionError,
    Step,
    brightness_contrast,
    corrupt,
    derive_seed,
    gaussian_blur,
    gaussian_noise,
    get_corruption,
    jpeg,
    list_corruptions,
    motion_blur,
    motion_kernel,
    salt_and_pepper,
)

PHOTO_DIR = Path("/work/shared/data/pad_ufes_20/images")
NAMES = list_corruptions()
STOCHASTIC = [name for name in NAMES if CORRUPTIONS[name].stochastic]
DETERMINISTIC = [name for name in NAMES if not CORRUPTIONS[name].stochastic]
ALL_LEVELS = [(name, level) for name in NAMES for level in LEVELS]


@pytest.fixture
def textured() -> np.ndarray:
    """Non-square random texture: full of high frequencies and catches H/W mix-ups."""
    return np.random.default_rng(123).integers(0, 256, size=(60, 44, 3), dtype=np.uint8)


@pytest.fixture
def grey() -> np.ndarray:
    """Mid-grey, so every salt or pepper pixel is a visible change."""
    return np.full((90, 70, 3), 128, np.uint8)


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    paths = sorted(PHOTO_DIR.glob("*.jpg"))
    if not paths:
        pytest.fail(f"no PAD-UFES-20 photos under {PHOTO_DIR}; tests run with ../shared beside the repo")
    bgr = cv2.imread(str(paths[0]), cv2.IMREAD_COLOR)
    assert bgr is not None, paths[0]
    rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    rgb.setflags(write=False)  # shared by the module: any in-place write would raise
    return rgb


def _mad(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


def _laplacian_variance(img: np.ndarray) -> float:
    return float(cv2.Laplacian(cv2.cvtColor(img, cv2.COLOR_RGB2GRAY), cv2.CV_64F).var())


# --- registry and severity table -------------------------------------------------------------------


def test_registry_lists_the_six_corruptions_paper_first() -> None:
    assert NAMES == [
        "salt_and_pepper",
        "gaussian_blur",
        "motion_blur",
        "gaussian_noise",
        "jpeg",
        "brightness_contrast",
    ]
    assert all(CORRUPTIONS[name].name == name for name in NAMES)
    assert STOCHASTIC == ["salt_and_pepper", "gaussian_noise"]


@pytest.mark.parametrize("level", LEVELS)
def test_salt_and_pepper_level_k_is_k_percent_at_3_to_1(level: int) -> None:
    params = CORRUPTIONS["salt_and_pepper"].params_for_level(level)
    assert params == {"amount": pytest.approx(level / 100), "black_ratio": 0.75}


def test_blur_table_is_5x5_with_growing_sigma() -> None:
    rows = [CORRUPTIONS["gaussian_blur"].params_for_level(level) for level in LEVELS]
    assert {row["ksize"] for row in rows} == {5}
    sigmas = [row["sigma"] for row in rows]
    assert sigmas == sorted(sigmas)
    assert len(set(sigmas)) == len(sigmas)


def test_params_for_level_returns_a_copy() -> None:
    row = CORRUPTIONS["jpeg"].params_for_level(1)
    row["quality"] = 1
    assert CORRUPTIONS["jpeg"].params_for_level(1)["quality"] == 80


def test_explicit_params_override_the_level_row(textured: np.ndarray) -> None:
    length = CORRUPTIONS["motion_blur"].params_for_level(2)["length"]
    out = corrupt(textured, "motion_blur", 2, angle=90)
    assert np.array_equal(out, motion_blur(textured, length=length, angle=90))


# --- salt and pepper (paper §2.3) --------------------------------------------------------------------


@pytest.mark.parametrize("level", LEVELS)
def test_salt_and_pepper_hits_exact_fraction_and_ratio(grey: np.ndarray, level: int) -> None:
    out = corrupt(grey, "salt_and_pepper", level, seed=3)
    changed = np.any(out != grey, axis=2)
    black = np.all(out == 0, axis=2)
    white = np.all(out == 255, axis=2)
    n = round(level / 100 * grey.shape[0] * grey.shape[1])
    assert changed.sum() == n
    assert (black | white)[changed].all(), "a corrupted pixel must be black or white on all channels"
    assert black.sum() == round(n * 0.75)
    assert white.sum() == n - round(n * 0.75)
    assert black.sum() / n == pytest.approx(0.75, abs=0.01)


def test_salt_and_pepper_explicit_params(grey: np.ndarray) -> None:
    out = salt_and_pepper(grey, amount=0.2, black_ratio=0.5, seed=0)
    n = round(0.2 * 90 * 70)
    assert np.all(out == 0, axis=2).sum() == n // 2
    assert np.all(out == 255, axis=2).sum() == n - n // 2
    assert np.array_equal(salt_and_pepper(grey, amount=0.0), grey)
    assert np.all((salt_and_pepper(grey, amount=1.0) % 255) == 0)


def test_salt_and_pepper_positions_depend_only_on_the_seed(grey: np.ndarray) -> None:
    first = salt_and_pepper(grey, amount=0.05, seed=1)
    assert np.array_equal(first, salt_and_pepper(grey, amount=0.05, seed=1))
    other = salt_and_pepper(grey, amount=0.05, seed=2)
    mask_first = np.any(first != grey, axis=2)
    mask_other = np.any(other != grey, axis=2)
    assert mask_first.sum() == mask_other.sum()
    assert (mask_first & mask_other).sum() < 0.5 * mask_first.sum()


# --- contract shared by every corruption ---------------------------------------------------------------


@pytest.mark.parametrize(("name", "level"), ALL_LEVELS)
def test_every_corruption_keeps_dtype_shape_and_input(textured: np.ndarray, name: str, level: int) -> None:
    before = textured.copy()
    out = corrupt(textured, name, level, seed=0)
    assert out.dtype == np.uint8
    assert out.shape == textured.shape
    assert np.array_equal(textured, before), "input modified in place"
    assert not np.shares_memory(out, textured)
    assert not np.array_equal(out, textured), "the corruption changed nothing"


@pytest.mark.parametrize("name", NAMES)
def test_read_only_and_strided_views_are_accepted(textured: np.ndarray, name: str) -> None:
    view = textured[:, ::-1]
    view.setflags(write=False)
    expected = corrupt(np.ascontiguousarray(view), name, 3, seed=5)
    assert np.array_equal(corrupt(view, name, 3, seed=5), expected)


@pytest.mark.parametrize("name", NAMES)
def test_same_seed_same_output(textured: np.ndarray, name: str) -> None:
    assert np.array_equal(corrupt(textured, name, 4, seed=9), corrupt(textured, name, 4, seed=9))


@pytest.mark.parametrize("name", STOCHASTIC)
def test_stochastic_corruptions_change_with_the_seed(textured: np.ndarray, name: str) -> None:
    assert not np.array_equal(corrupt(textured, name, 4, seed=9), corrupt(textured, name, 4, seed=10))


@pytest.mark.parametrize("name", DETERMINISTIC)
def test_deterministic_corruptions_ignore_the_seed(textured: np.ndarray, name: str) -> None:
    assert np.array_equal(corrupt(textured, name, 4, seed=9), corrupt(textured, name, 4, seed=10))


# --- blur ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["gaussian_blur", "motion_blur"])
def test_blur_removes_more_high_frequency_energy_at_each_level(textured: np.ndarray, name: str) -> None:
    energy = [_laplacian_variance(textured)]
    energy += [_laplacian_variance(corrupt(textured, name, level)) for level in LEVELS]
    assert all(a > b for a, b in pairwise(energy)), energy


def test_default_gaussian_blur_is_the_papers_plain_5x5_and_level_3_is_close(photo: np.ndarray) -> None:
    plain = cv2.GaussianBlur(photo, (5, 5), 0)
    assert np.array_equal(gaussian_blur(photo), plain)
    assert _mad(corrupt(photo, "gaussian_blur", 3), plain) < 0.5


def test_motion_blur_at_angle_0_smears_horizontally_not_vertically() -> None:
    dot = np.zeros((31, 31, 3), np.uint8)
    dot[15, 15] = 255
    lit = np.argwhere(motion_blur(dot, length=9, angle=0)[..., 0] > 0)
    assert set(lit[:, 0].tolist()) == {15}
    assert sorted(lit[:, 1].tolist()) == list(range(11, 20))

    horizontal = np.zeros((31, 31, 3), np.uint8)
    horizontal[15] = 255
    assert np.array_equal(motion_blur(horizontal, length=9, angle=0), horizontal)
    vertical = np.zeros((31, 31, 3), np.uint8)
    vertical[:, 15] = 255
    smeared = motion_blur(vertical, length=9, angle=0)
    assert np.all(smeared[:, 11:20] > 0)
    assert np.all(smeared == smeared[0]), "every row must be smeared the same way"


def test_motion_blur_angles_are_counter_clockwise_as_displayed() -> None:
    dot = np.zeros((31, 31, 3), np.uint8)
    dot[15, 15] = 255
    up_down = np.argwhere(motion_blur(dot, length=9, angle=90)[..., 0] > 0)
    assert set(up_down[:, 1].tolist()) == {15}
    assert len(up_down) == 9
    diagonal = motion_blur(dot, length=9, angle=45)[..., 0]
    assert diagonal[12, 18] > 0  # up and to the right
    assert diagonal[18, 12] > 0
    assert diagonal[12, 12] == 0
    assert diagonal[18, 18] == 0


@pytest.mark.parametrize(("length", "angle"), [(1, 0), (2, 0), (4.5, 30), (9, 45), (15, 100)])
def test_motion_kernel_is_normalised(length: float, angle: float) -> None:
    kernel = motion_kernel(length, angle)
    assert kernel.shape[0] == kernel.shape[1]
    assert kernel.shape[0] % 2 == 1
    assert float(kernel.sum()) == pytest.approx(1.0, abs=1e-5)


# --- noise, JPEG, exposure -----------------------------------------------------------------------------


def test_gaussian_noise_has_the_requested_sigma(grey: np.ndarray) -> None:
    diff = gaussian_noise(grey, sigma=10, seed=0).astype(np.float64) - grey
    assert diff.mean() == pytest.approx(0, abs=0.3)
    assert diff.std() == pytest.approx(10, rel=0.05)


def test_jpeg_low_quality_differs_and_quality_100_is_close(photo: np.ndarray) -> None:
    low, high = jpeg(photo, quality=5), jpeg(photo, quality=100)
    assert _mad(low, photo) > 2.0
    assert _mad(high, photo) < 1.0
    assert _mad(low, photo) > 3 * _mad(high, photo)


def test_jpeg_keeps_the_channel_order() -> None:
    red = np.zeros((32, 32, 3), np.uint8)
    red[..., 0] = 255
    out = jpeg(red, quality=90)
    assert out[..., 0].min() > 240
    assert out[..., 1:].max() < 15


def test_brightness_contrast_formula() -> None:
    img = np.array([[[0, 100, 255]]], np.uint8)
    assert np.array_equal(brightness_contrast(img), img)
    assert brightness_contrast(img, brightness=50).tolist() == [[[50, 150, 255]]]
    assert brightness_contrast(img, contrast=0.5).tolist() == [[[64, 114, 192]]]
    assert brightness_contrast(img, brightness=-10, contrast=0).tolist() == [[[118, 118, 118]]]


# --- composition ---------------------------------------------------------------------------------------


def test_compose_applies_in_order_with_derived_seeds(textured: np.ndarray) -> None:
    noise, blur = Step("salt_and_pepper", level=3), Step("gaussian_blur", level=2)
    out = Compose([noise, blur])(textured, seed=7)
    assert np.array_equal(out, blur(noise(textured, derive_seed(7, 0)), derive_seed(7, 1)))
    by_hand = gaussian_blur(salt_and_pepper(textured, 0.03, 0.75, seed=derive_seed(7, 0)), 5, 0.75)
    assert np.array_equal(out, by_hand)
    assert not np.array_equal(out, Compose([blur, noise])(textured, seed=7))


def test_compose_is_deterministic_per_seed(textured: np.ndarray) -> None:
    pipeline = Compose([Step("gaussian_noise", level=2), Step("jpeg", params={"quality": 30})])
    assert np.array_equal(pipeline(textured, seed=1), pipeline(textured, seed=1))
    assert not np.array_equal(pipeline(textured, seed=1), pipeline(textured, seed=2))


def test_derive_seed_is_seed_sequence_spawn() -> None:
    children = np.random.SeedSequence(7).spawn(3)
    expected = [int(child.generate_state(1, np.uint64)[0]) for child in children]
    assert [derive_seed(7, index) for index in range(3)] == expected
    assert len(set(expected)) == 3


def test_repeated_stochastic_steps_hit_different_pixels(grey: np.ndarray) -> None:
    step = Step("salt_and_pepper", level=5)
    once = np.any(step(grey, seed=0) != grey, axis=2).sum()
    twice = np.any(Compose([step, step])(grey, seed=0) != grey, axis=2).sum()
    assert twice > 1.8 * once


def test_empty_compose_returns_a_copy(textured: np.ndarray) -> None:
    out = Compose([])(textured, seed=0)
    assert np.array_equal(out, textured)
    assert not np.shares_memory(out, textured)


def test_compose_config_round_trip() -> None:
    pipeline = Compose([Step("salt_and_pepper", 5), Step("motion_blur", 2, {"angle": 0.0})])
    assert Compose.from_config(pipeline.to_config()) == pipeline
    assert pipeline.to_config()[1] == {"name": "motion_blur", "level": 2, "params": {"angle": 0.0}}


# --- errors ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("level", [0, 6, -1, 2.5, True, "3"])
@pytest.mark.parametrize("name", NAMES)
def test_bad_level_raises_naming_the_corruption(textured: np.ndarray, name: str, level: object) -> None:
    with pytest.raises(CorruptionError, match=name):
        corrupt(textured, name, level)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="level"):
        CORRUPTIONS[name].params_for_level(level)  # type: ignore[arg-type]
    with pytest.raises(CorruptionError, match=name):
        Step(name, level)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("name", "params"),
    [
        ("salt_and_pepper", {"amount": 1.5}),
        ("salt_and_pepper", {"amount": float("nan")}),
        ("salt_and_pepper", {"black_ratio": -0.1}),
        ("gaussian_blur", {"ksize": 4}),
        ("gaussian_blur", {"sigma": 0}),
        ("motion_blur", {"length": 0}),
        ("motion_blur", {"angle": "left"}),
        ("gaussian_noise", {"sigma": -1}),
        ("jpeg", {"quality": 0}),
        ("jpeg", {"quality": 50.5}),
        ("jpeg", {"qualty": 50}),
        ("brightness_contrast", {"contrast": -1}),
    ],
)
def test_bad_params_raise_naming_the_corruption(textured: np.ndarray, name: str, params: dict) -> None:
    with pytest.raises(CorruptionError, match=name):
        corrupt(textured, name, **params)
    with pytest.raises(CorruptionError, match=name):
        Step(name, params=params)


@pytest.mark.parametrize(
    "bad",
    [
        np.zeros((8, 8, 3), np.float32),
        np.zeros((8, 8), np.uint8),
        np.zeros((8, 8, 4), np.uint8),
        np.zeros((0, 8, 3), np.uint8),
        [[[0, 0, 0]]],
    ],
)
@pytest.mark.parametrize("name", NAMES)
def test_non_rgb_uint8_input_is_refused(bad: object, name: str) -> None:
    with pytest.raises(CorruptionError, match=name):
        corrupt(bad, name, 1)  # type: ignore[arg-type]


def test_unknown_corruption_and_bad_seed(textured: np.ndarray) -> None:
    with pytest.raises(CorruptionError, match="unknown corruption"):
        corrupt(textured, "fog", 1)
    with pytest.raises(CorruptionError, match="seed"):
        corrupt(textured, "jpeg", 1, seed=-1)
    with pytest.raises(CorruptionError, match="Step"):
        Compose(["jpeg"])  # type: ignore[list-item]
    assert issubclass(CorruptionError, ValueError)
    assert get_corruption("jpeg") is CORRUPTIONS["jpeg"]


# --- one real photo through everything ------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_real_photo_every_level_distorts_more(photo: np.ndarray, name: str) -> None:
    distortion = []
    for level in LEVELS:
        out = corrupt(photo, name, level, seed=level)
        assert out.dtype == np.uint8
        assert out.shape == photo.shape
        distortion.append(_mad(out, photo))
    assert distortion[0] > 0
    assert all(a < b for a, b in pairwise(distortion)), distortion

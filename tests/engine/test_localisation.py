"""Localisation metrics (engine.metrics.localisation) and the mask loader (engine.masks), on hand-made masks
and maps whose answers are known, and on real PAD-UFES-20 photos and masks through the real preprocessing."""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import pytest

from engine.imageio import load_image
from engine.masks import MaskError, MaskSource, load_mask, mask_key
from engine.metrics import (
    PhotoLocalisation,
    cam_energy_ratio,
    cell_lesion_overlap,
    lesion_coverage,
    lesion_in_frame,
    lsm_hit_rate,
    photo_localisation,
    pointing_game,
    summarize_localisation,
)
from engine.preprocess import PreprocessConfig, preprocess


def _square_lesion(size: int = 100, lo: int = 40, hi: int = 60) -> np.ndarray:
    m = np.zeros((size, size), dtype=np.uint8)
    m[lo:hi, lo:hi] = 255  # rows and columns 40..59
    return m


def _peak(y: int, x: int, size: int = 100) -> np.ndarray:
    cam = np.full((size, size), 0.1, dtype=np.float32)
    cam[y, x] = 1.0
    return cam


# --- pointing game and centre prior ------------------------------------------------------------

def test_a_peak_inside_the_lesion_hits_and_one_outside_misses() -> None:
    mask = _square_lesion()
    inside = pointing_game(_peak(50, 45), mask)
    assert inside.hit and inside.peak == (50, 45) and not inside.flat
    outside = pointing_game(_peak(10, 85), mask)
    assert not outside.hit and outside.peak == (10, 85)
    assert inside.centre_hit and outside.centre_hit  # (50, 50) is in the lesion whatever the map says


def test_the_2_percent_dilation_rescues_a_peak_just_outside_the_edge() -> None:
    mask = _square_lesion()  # 100 px side: the tolerance is 2 px; the last lesion column is 59
    assert pointing_game(_peak(50, 61), mask).hit  # 2 px outside the edge
    assert not pointing_game(_peak(50, 61), mask, dilation=0.0).hit
    assert not pointing_game(_peak(50, 62), mask).hit  # 3 px outside: beyond the tolerance
    diagonal = pointing_game(_peak(61, 61), mask)  # sqrt(8) = 2.83 px from the corner: Euclidean, not a box
    assert not diagonal.hit


def test_the_centre_prior_uses_the_same_dilated_mask() -> None:
    mask = np.zeros((100, 100), dtype=bool)
    mask[10:30, 52:70] = True  # lesion starts 2 px right of the centre column (50)
    res = pointing_game(_peak(20, 60), mask)
    assert res.hit and res.centre_hit is False  # (50, 50) is 20 rows away
    mask[20:49, 52:70] = True  # the centre is 2 rows and 2 columns from the lesion's corner: sqrt(8) > 2
    assert not pointing_game(_peak(20, 60), mask).centre_hit
    mask[20:50, 51:70] = True  # 1 row and 1 column: sqrt(2) <= 2, inside the dilated mask only
    assert pointing_game(_peak(20, 60), mask).centre_hit
    assert not pointing_game(_peak(20, 60), mask, dilation=0.0).centre_hit


def test_a_flat_map_cannot_point() -> None:
    res = pointing_game(np.zeros((100, 100), np.float32), np.ones((100, 100), bool))
    assert res.flat and not res.hit


def test_pointing_brings_a_mask_of_another_resolution_into_the_maps_frame() -> None:
    mask = cv2.resize(_square_lesion(), (300, 300), interpolation=cv2.INTER_NEAREST)  # same lesion, 3x finer
    assert pointing_game(_peak(50, 45), mask).hit
    assert not pointing_game(_peak(10, 85), mask).hit


# --- CAM energy ---------------------------------------------------------------------------------

def test_energy_ratio_of_a_uniform_map_is_one_at_any_mask_resolution() -> None:
    for mask in (_square_lesion(), cv2.resize(_square_lesion(), (317, 233), interpolation=cv2.INTER_NEAREST)):
        e = cam_energy_ratio(np.full((100, 100), 0.3, np.float32), mask)
        assert e.ratio == pytest.approx(1.0, abs=1e-6)


def test_energy_all_inside_the_lesion_is_the_inverse_of_its_area_share() -> None:
    mask = _square_lesion()
    cam = np.where(mask > 0, 1.0, 0.0).astype(np.float32)
    e = cam_energy_ratio(cam, mask)
    assert e.area_share == pytest.approx(0.04) and e.energy_share == pytest.approx(1.0)
    assert e.ratio == pytest.approx(25.0)
    assert math.isnan(cam_energy_ratio(np.zeros((100, 100)), mask).ratio)


# --- LSM hit rate -------------------------------------------------------------------------------

def _border(grid: int) -> list[int]:
    return [r * grid + c for r in range(grid) for c in range(grid) if r in (0, grid - 1) or c in (0, grid - 1)]


def test_a_border_only_selection_has_hit_rate_zero_and_a_lesion_selection_one() -> None:
    mask = _square_lesion()  # a 10x10 grid of 10-px cells: the lesion is cells (4..5, 4..5)
    border = lsm_hit_rate(_border(10), (10, 10), mask)
    assert border.hit_rate == 0.0 and border.n_selected == 36 and border.n_hit == 0
    assert border.chance == pytest.approx(4 / 100)
    full = lsm_hit_rate([44, 45, 54, 55], (10, 10), mask)
    assert full.hit_rate == 1.0 and full.chance == pytest.approx(0.04)
    half = lsm_hit_rate([44, 45, 0, 99], (10, 10), mask)
    assert half.hit_rate == 0.5


def test_lsm_cells_are_fractions_of_the_photo_for_any_mask_resolution_and_prefix_offset() -> None:
    coarse = cell_lesion_overlap(_square_lesion(), (10, 10))
    fine = cell_lesion_overlap(cv2.resize(_square_lesion(), (400, 250), interpolation=cv2.INTER_NEAREST), (10, 10))
    assert np.array_equal(coarse, fine) and coarse.sum() == 4
    with_cls = lsm_hit_rate([45, 46, 55, 56], (10, 10), _square_lesion(), num_prefix_tokens=1)
    assert with_cls.hit_rate == 1.0  # indices counting the class token at 0 are shifted back
    with pytest.raises(ValueError, match="outside a 10x10 grid"):
        lsm_hit_rate([100], (10, 10), _square_lesion())


def test_a_cell_touching_the_lesion_with_one_pixel_overlaps() -> None:
    mask = np.zeros((100, 100), bool)
    mask[39, 39] = True  # the last pixel of cell (3, 3)
    assert np.flatnonzero(cell_lesion_overlap(mask, (10, 10))).tolist() == [33]
    assert not cell_lesion_overlap(mask, (10, 10), min_fraction=0.05).any()


# --- per photo and aggregate --------------------------------------------------------------------

def test_photos_without_a_mask_are_counted_not_dropped() -> None:
    mask = _square_lesion()
    rows = [
        photo_localisation("a", mask, cam=_peak(50, 45), selected=[44, 0], grid=(10, 10), class_index=2),
        photo_localisation("b", mask, cam=_peak(10, 85), selected=[0, 1], grid=(10, 10)),
        photo_localisation("c", None, cam=_peak(50, 45)),
        photo_localisation("d", np.zeros((100, 100), bool), cam=_peak(50, 45)),
    ]
    assert [r.status for r in rows] == ["ok", "ok", "no_mask", "empty_mask"]
    assert rows[0].peak_y == pytest.approx(50.5 / 100) and rows[0].class_index == 2
    s = summarize_localisation(rows)
    assert (s.n_photos, s.n_scored, s.n_no_mask, s.n_empty_mask) == (4, 2, 1, 1)
    assert s.pointing_game == 0.5 and s.centre_prior == 1.0
    assert s.lsm_hit_rate == pytest.approx(0.25) and s.lsm_chance == pytest.approx(0.04)
    assert s.to_dict()["n_no_mask"] == 1
    assert set(PhotoLocalisation.columns()) >= {"pointing", "lsm_hit_rate", "energy_ratio"}


def test_a_model_without_lsm_leaves_the_lsm_figures_out() -> None:
    row = photo_localisation("a", _square_lesion(), cam=_peak(50, 45))
    assert math.isnan(row.lsm_hit_rate)
    assert math.isnan(summarize_localisation([row]).lsm_hit_rate)


# --- real masks through the real preprocessing --------------------------------------------------

NON_SQUARE = "PAT_1349_1229_828"  # 512 x 501 in the shared data


def test_the_mask_is_mapped_into_the_input_frame_exactly_as_the_photo_is(data_dir: Path) -> None:
    photo = load_image(data_dir / "images" / f"{NON_SQUARE}.jpg")
    mask = load_mask(data_dir / "masks" / f"{NON_SQUARE}.png", photo.shape[:2])
    assert photo.shape[:2] == (501, 512) and mask.any()
    ys = np.nonzero(mask)[0]
    # a strongly non-square frame around the lesion, so a crop or letterbox mapping would be far off
    y0, y1 = max(0, ys.min() - 40), min(501, ys.max() + 40)
    photo, mask = photo[y0:y1], mask[y0:y1]
    assert photo.shape[1] / photo.shape[0] > 1.3
    cfg = PreprocessConfig(img_size=160, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0), interpolation="area")
    painted = photo.copy()
    painted[mask] = 255  # the lesion painted white, the skin black: the model input then *shows* the mask
    painted[~mask] = 0
    seen = preprocess(painted, cfg)[0]  # (S, S) in [0, 1]: what the model is shown of the lesion
    cov = lesion_coverage(mask, (160, 160))
    assert np.abs(seen - cov).max() <= 1 / 255 + 1e-6  # uint8 rounding of the resized photo only
    differ = lesion_in_frame(mask, (160, 160)) != (seen >= 0.5)
    assert not differ[np.abs(cov - 0.5) > 1 / 255].any()
    # a letterboxed mapping of the same mask would put the lesion elsewhere: the check above can fail
    h, w = mask.shape
    side = max(h, w)
    box = np.zeros((side, side), np.float32)
    box[(side - h) // 2 : (side - h) // 2 + h, :w] = mask
    assert np.abs(seen - lesion_coverage(box, (160, 160))).max() > 0.5


# --- the mask loader ----------------------------------------------------------------------------

def test_a_folder_and_the_csv_find_the_same_mask_for_any_spelling_of_the_photo(data_dir: Path) -> None:
    folder = MaskSource.open(data_dir / "masks")
    table = MaskSource.open(data_dir / "masks" / "masks.csv")
    assert len(folder) == len(table) == 640
    for key in (f"{NON_SQUARE}.png", f"images/{NON_SQUARE}.jpg", NON_SQUARE, data_dir / "images" / f"{NON_SQUARE}.jpg"):
        assert folder.path_for(key) == table.path_for(key) == data_dir / "masks" / f"{NON_SQUARE}.png"
    assert mask_key("x/PAT_1_2_3_mask.png") == "PAT_1_2_3"
    m = table.load(NON_SQUARE)
    assert m is not None and m.dtype == bool and m.shape == (501, 512)
    frac = float(m.mean())
    import csv

    with (data_dir / "masks" / "masks.csv").open() as fh:
        listed = {r["image"]: float(r["area_fraction"]) for r in csv.DictReader(fh)}
    assert frac == pytest.approx(listed[f"images/{NON_SQUARE}.jpg"], abs=1e-4)
    missing = [p.stem for p in (data_dir / "images").glob("*.jpg") if p.stem not in folder]
    assert len(missing) == 26 and table.load(missing[0]) is None


def test_a_mask_is_returned_at_its_photos_size(data_dir: Path) -> None:
    stem = "PAT_1278_965_701"  # a 2352 x 2352 original whose mask is drawn on the 512 px JPEG
    small = load_mask(data_dir / "masks" / f"{stem}.png")
    big = load_mask(data_dir / "masks" / f"{stem}.png", (2352, 2352))
    assert big.shape == (2352, 2352) and big.dtype == bool
    assert float(big.mean()) == pytest.approx(float(small.mean()), abs=0.005)
    with pytest.raises(MaskError, match=r"not the same frame") as err:
        load_mask(data_dir / "masks" / f"{stem}.png", (512, 300))
    assert err.value.path == data_dir / "masks" / f"{stem}.png"


def test_bad_masks_and_tables_raise_a_typed_error_naming_the_file(tmp_path: Path) -> None:
    with pytest.raises(MaskError, match="no such mask file") as err:
        load_mask(tmp_path / "absent.png")
    assert err.value.path == tmp_path / "absent.png"
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"not a png at all")
    with pytest.raises(MaskError, match="not a readable image") as err:
        load_mask(junk)
    assert err.value.path == junk
    table = tmp_path / "t.csv"
    table.write_text("image,segmentation\na.jpg,a.png\n")
    with pytest.raises(MaskError, match="no column 'mask'") as err:
        MaskSource.open(table)
    assert err.value.path == table
    with pytest.raises(MaskError, match="no such masks folder"):
        MaskSource.from_folder(tmp_path / "nowhere")
    assert MaskSource.open(table, mask_column="segmentation").path_for("a") == tmp_path / "a.png"
    cv2.imwrite(str(tmp_path / "b.png"), np.zeros((10, 10), np.uint8))
    assert not load_mask(tmp_path / "b.png").any()  # a valid mask with no lesion

"""The plate's fill (background.fill): what the person always covers, filled from the plate's own pixels."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from edn.background.plate import FILLS, build_plate, fill_unseen
from edn.core.errors import EdnError
from edn.core.options import BackgroundOptions
from helpers import run_edn

PLATE_OPTIONS = dict(grow_px=1, min_observations=3, max_frames=200, max_camera_residual=6.0)


def _striped(size: tuple[int, int] = (48, 40), seed: int = 0) -> np.ndarray:
    """float32 [H, W, 3]: vertical stripes 3 px wide, two colours, with a little noise, all in 40..220."""
    width, height = size
    columns = (np.arange(width) // 3) % 2
    image = np.where(columns[None, :, None] == 1, [200.0, 60.0, 90.0], [50.0, 160.0, 190.0])
    image = np.broadcast_to(image, (height, width, 3)).astype(np.float32)
    noise = np.random.default_rng(seed).normal(0, 4, image.shape)
    return np.clip(image + noise, 40, 220).astype(np.float32)


def _hole(shape: tuple[int, int]) -> np.ndarray:
    """bool [H, W]: where a person always stood, a block in the middle."""
    unseen = np.zeros(shape, bool)
    unseen[12:30, 18:30] = True
    return unseen


@pytest.mark.parametrize("method", FILLS)
def test_the_fill_changes_only_unseen_pixels_and_leaves_none_unfilled(method: str) -> None:
    plate = _striped()
    unseen = _hole(plate.shape[:2])
    holed = plate.copy()
    holed[unseen] = np.nan
    filled = fill_unseen(holed, unseen, method)
    assert filled.dtype == np.uint8 and filled.shape == plate.shape
    np.testing.assert_array_equal(filled[~unseen], plate[~unseen].round().astype(np.uint8))
    # Filled from the plate itself: every filled pixel within the colours around it, none left black.
    inside = filled[unseen].astype(np.float32)
    low, high = plate[~unseen].min(axis=0) - 2, plate[~unseen].max(axis=0) + 2
    assert ((inside >= low) & (inside <= high)).all(), (inside.min(axis=0), inside.max(axis=0))


def test_shiftmap_copies_the_texture_where_telea_smears_it() -> None:
    plate = _striped()
    unseen = _hole(plate.shape[:2])
    holed = plate.copy()
    holed[unseen] = np.nan

    def contrast(image: np.ndarray) -> float:  # mean |horizontal step| inside the hole, stripes make it large
        steps = np.abs(np.diff(image.astype(np.float32), axis=1)).sum(axis=-1)
        return float(steps[unseen[:, 1:] & unseen[:, :-1]].mean())

    seen = contrast(plate)
    telea, shiftmap = contrast(fill_unseen(holed, unseen, "telea")), contrast(fill_unseen(holed, unseen, "shiftmap"))
    assert shiftmap > 0.6 * seen and telea < 0.5 * shiftmap, (seen, shiftmap, telea)


@pytest.mark.parametrize("method", FILLS)
def test_pixels_nobody_saw_are_never_copied_into_the_hole(method: str) -> None:
    plate = _striped((64, 40))
    unseen = _hole(plate.shape[:2])
    blank = np.zeros(unseen.shape, bool)
    blank[:, 52:] = True  # outside a moving camera's mosaic: black, blanked afterwards
    holed = plate.copy()
    holed[unseen | blank] = np.nan
    filled = fill_unseen(holed, unseen, method, blank=blank)
    np.testing.assert_array_equal(filled[~(unseen | blank)], plate[~(unseen | blank)].round().astype(np.uint8))
    assert filled[unseen].min() >= 20, filled[unseen].min(axis=0)


def test_a_plate_that_needs_no_fill_is_the_same_whichever_fill() -> None:
    width, height, count = 48, 32, 20
    background = np.random.default_rng(1).integers(0, 256, (height, width, 3), dtype=np.uint8)
    frames = np.repeat(background[None], count, axis=0)
    masks = np.zeros((count, height, width), np.uint8)
    for t in range(count):  # a square crossing the frame: every pixel is seen in most frames
        x = round(t * (width - 8) / (count - 1))
        frames[t, 12:20, x:x + 8] = (250, 20, 20)
        masks[t, 12:20, x:x + 8] = 255
    plates = [build_plate(frames, masks, None, subject="square", fill=method, **PLATE_OPTIONS) for method in FILLS]
    for made in plates:
        assert made.report.filled_fraction == 0
        np.testing.assert_array_equal(made.plate, background)


def test_an_unknown_fill_is_a_one_line_error(tmp_path) -> None:
    plate, unseen = _striped(), _hole((40, 48))
    with pytest.raises(EdnError, match="background fill 'patchmatch': unknown"):
        fill_unseen(plate, unseen, "patchmatch")
    with pytest.raises(EdnError, match="fill"):
        BackgroundOptions(fill="patchmatch")
    result = run_edn("background", "--subject", "x", "--frames", tmp_path / "frames.npy", "--labels",
                     tmp_path / "labels.npy", "--plate", tmp_path / "p.png", "--coverage", tmp_path / "c.png",
                     "--report", tmp_path / "r.json", "--masks", tmp_path / "m.npy", "--fill", "patchmatch")
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("edn background: ") and "fill 'patchmatch'" in lines[0], result.stderr
    assert not list(tmp_path.iterdir())


def _dancing_on_one_spot(count: int = 24, size: tuple[int, int] = (48, 40)):
    """A textured background and a red block (the person, its mask exact) that sways 2 px either way
    about one spot: frames uint8 [T, H, W, 3], masks uint8 [T, H, W], the background, and where the
    block stood in at least one frame (bool [H, W])."""
    width, height = size
    background = np.random.default_rng(2).integers(30, 226, (height, width, 3), dtype=np.uint8)
    frames = np.repeat(background[None], count, axis=0)
    masks = np.zeros((count, height, width), np.uint8)
    ever = np.zeros((height, width), bool)
    for t in range(count):
        x = 20 + (-2, 0, 2)[t % 3]
        frames[t, 10:30, x:x + 8] = (250, 20, 20)
        masks[t, 10:30, x:x + 8] = 255
        ever[10:30, x:x + 8] = True
    return frames, masks, background, ever


def test_the_ring_beside_someone_on_one_spot_is_the_background_not_a_fill() -> None:
    frames, masks, background, ever = _dancing_on_one_spot()
    options = dict(PLATE_OPTIONS, grow_px=6)
    grown = build_plate(frames, masks, None, subject="spot", near_grow_px=6, **options)  # the ring: off
    near = build_plate(frames, masks, None, subject="spot", near_grow_px=1, **options)
    always = np.logical_and.reduce(masks > 0)  # where the block stood in every frame
    around_always = cv2.dilate(always.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0  # and 1 px around
    # Grown by 6 px, the sway never uncovers the pixels beside the spot: they are filled.
    ring = ~ever & (grown.coverage == 0) & ~around_always
    assert ring.sum() > 200, ring.sum()
    # Grown by 1 px, the frames where the block stands away show them: the background itself, seen in
    # enough frames; only where the block always stood (and 1 px around) is still filled.
    np.testing.assert_array_equal(near.plate[ring], background[ring])
    assert (near.coverage[ring] >= PLATE_OPTIONS["min_observations"]).all()
    still_filled = near.coverage == 0
    assert still_filled[always].all() and not (still_filled & ~around_always).any()
    assert near.report.filled_fraction < 0.5 * grown.report.filled_fraction, (near.report, grown.report)
    # The person's red never leaks into the plate.
    assert not (np.abs(near.plate.astype(int) - (250, 20, 20)).sum(axis=-1) < 30).any()

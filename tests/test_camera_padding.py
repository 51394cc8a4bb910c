"""Decoding's padding bars under a camera that moves (issue 25): the bars belong to the working frame, not to
the background, so the plate in every frame's camera (edn.background.camera.FramePlates), the reference view's
plate and the nearest-neighbour baseline of a registered target are black over them, as every real frame is."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from edn.background.camera import FramePlates, blank_outside, read_camera, read_frame_plates
from edn.background.plate import PlateReport, content_box_of, padding_pixels, read_plate_report
from edn.evaluation.registered import read_target_view, registered_nearest_neighbours
from edn.pose.keypoints import PoseSequence
from edn.training.loop import Background, frame_plates
from training_data import build_and_write_plate

SIZE = (96, 64)
BAR = 8  # px of black padding at the left and right of every frame (a pillarboxed video)
BOX = (BAR, 0, SIZE[0] - BAR, SIZE[1])
PLATE_OPTIONS = dict(grow_px=1, min_observations=2, max_frames=200, max_camera_residual=6.0)


def _texture(height: int, width: int, seed: int, blur: float) -> np.ndarray:
    """Blurred colour noise in 40-255: detail everywhere, and never black, so black means padding."""
    noise = np.random.default_rng(seed).integers(0, 256, (height, width, 3)).astype(np.uint8)
    return cv2.normalize(cv2.GaussianBlur(noise, (0, 0), blur), None, 40, 255, cv2.NORM_MINMAX)


def _padded(frames: np.ndarray) -> np.ndarray:
    frames = frames.copy()
    frames[:, :, :BAR] = 0
    frames[:, :, SIZE[0] - BAR:] = 0
    return frames


def _target(offsets: list[tuple[float, float]], person_x: list[int], seed: int = 5, blur: float = 3.0):
    """A still scene filmed through cameras shifted by ``offsets`` (x, y; sub-pixel ones resampled), a red
    person (masked) with their left edge at scene column ``person_x[t]``, then padded (``blur``: the scene's
    detail, smooth enough to resample at 3 px): (frames, masks, scene,
    keypoints in each frame's pixels)."""
    from synthetic_poses import standing_pose

    width, height = SIZE
    scene = _texture(height + 40, width + 40, seed, blur)
    frames = np.stack([cv2.warpAffine(scene, np.float32([[1, 0, -(20 + dx)], [0, 1, -(20 + dy)]]), SIZE,
                                      flags=cv2.INTER_LINEAR) for dx, dy in offsets])
    masks = np.zeros(frames.shape[:3], np.uint8)
    keypoints = np.zeros((len(frames), *standing_pose(0, 0, 1).shape), np.float32)
    for t, ((dx, dy), x) in enumerate(zip(offsets, person_x)):
        left, top = int(round(x - (20 + dx))), int(round(14 - dy))
        frames[t, top:top + 36, left:left + 12] = (220, 30, 30)
        masks[t, top:top + 36, left:left + 12] = 255
        keypoints[t] = standing_pose(left + 6, top + 34, 30, face=False, hands=False)
    return _padded(frames), masks, scene, keypoints


PAN = [(-5.0 + 1.7 * t, -1.2 + 0.55 * t) for t in range(7)]  # sub-pixel steps, 10.2 px right, 3.3 px down
PAN_PERSON_X = [10 + 11 * t for t in range(7)]


def test_the_content_box_is_the_picture_inside_the_bars() -> None:
    frames = np.zeros((3, 10, 12, 3), np.uint8)
    frames[1, 2:7, 3, 0] = 9  # lit in one frame only: still picture
    frames[2, 4, 3:9] = 200
    padding = padding_pixels(frames)
    assert content_box_of(padding) == (3, 2, 9, 7)
    assert content_box_of(np.zeros((10, 12), bool)) == (0, 0, 12, 10)
    assert content_box_of(np.ones((10, 12), bool)) is None
    image = np.arange(10 * 12).reshape(10, 12) + 1
    blanked = blank_outside(image, (3, 2, 9, 7))
    assert (blanked[2:7, 3:9] == image[2:7, 3:9]).all() and blanked.sum() == image[2:7, 3:9].sum()
    assert blank_outside(image, None) is image and blank_outside(image, (0, 0, 12, 10)) is image


def test_a_moving_cameras_plates_are_black_over_the_bars_as_every_frame_is(tmp_path: Path) -> None:
    frames, masks, _, _ = _target(PAN, PAN_PERSON_X)
    made, paths = build_and_write_plate(tmp_path, frames, masks, "pan", PLATE_OPTIONS)
    report = read_plate_report(paths["report"])
    assert report.motion_model != "identity" and not report.background_moves
    assert report.content_box == made.report.content_box == BOX
    x0, y0, x1, y1 = BOX
    bars = ~blank_outside(np.ones(SIZE[::-1], bool), BOX)
    assert bars.sum() == 2 * BAR * SIZE[1]
    # The reference view's plate: black over the bars, the mosaic's reference view inside them.
    ox, oy = report.reference_origin
    assert (made.plate[bars] == 0).all()
    np.testing.assert_array_equal(made.plate[y0:y1, x0:x1], made.mosaic[oy + y0:oy + y1, ox + x0:ox + x1])
    camera = read_camera(paths["camera"], SIZE)
    boxed = read_frame_plates(paths["mosaic"], paths["camera"], report.reference_origin, report.frame_size,
                              report.content_box)
    unboxed = FramePlates(made.mosaic, report.reference_origin, camera)  # the whole frame, as old reports read
    for t in range(len(frames)):
        plate, before = boxed(t), unboxed(t)
        # The mosaic is filled where no frame's picture reached: without the box the bars got background.
        assert before[bars].astype(np.float32).mean() > 40
        assert (plate[bars] == 0).all() and (frames[t][bars] == 0).all()
        np.testing.assert_array_equal(plate[~bars], before[~bars])
        assert not boxed.valid(t)[bars].any()
        np.testing.assert_array_equal(boxed.valid(t)[~bars], unboxed.valid(t)[~bars])
    # Training draws over the same plates: the plate report's box reaches it.
    trained = frame_plates(Background(paths["plate"], paths["report"], tmp_path / "masks.npy", paths["mosaic"],
                                      paths["camera"]), report)
    assert trained.content_box == BOX and (trained(3)[bars] == 0).all()


def test_a_still_camera_plate_is_its_median_as_filmed_and_records_its_box(tmp_path: Path) -> None:
    frames, masks, _, _ = _target([(0.0, 0.0)] * 7, PAN_PERSON_X)
    made, paths = build_and_write_plate(tmp_path, frames, masks, "still", PLATE_OPTIONS, grow_px=0)
    report = read_plate_report(paths["report"])
    assert report.motion_model == "identity" and report.content_box == BOX
    # The per-pixel median of the frames outside the person, rounded: the bars the median of black.
    values = frames.astype(np.float32)
    values[masks >= 128] = np.nan
    expected = np.nanmedian(values, axis=0).round().astype(np.uint8)
    np.testing.assert_array_equal(made.plate, expected)
    assert (made.plate[:, :BAR] == 0).all() and (made.plate[:, SIZE[0] - BAR:] == 0).all()


def test_a_report_without_a_box_reads_as_the_whole_frame() -> None:
    values = dict(subject="old", frame_size=[96, 64], frames_used=7, camera_residual=1.0, max_camera_residual=6.0,
                  static=True, filled_fraction=0.0, person_fraction=0.1)
    assert PlateReport.from_json(values).content_box is None
    report = PlateReport.from_json({**values, "content_box": [8, 0, 88, 64]})
    assert report.content_box == (8, 0, 88, 64) and PlateReport.from_json(report.to_json()) == report


#: Whole-pixel offsets of a pan that jumps at the held-out end: frame 8 shows the person where training frame 3
#: had them in the scene, 14 px further left in the picture, so frame 3's left bar would land inside frame 8's.
OFFSETS = [(float(t - 4), 0.0) for t in range(8)] + [(-15.0, 1.0), (6.0, 0.0)]
PERSON_X = [30 + 8 * t for t in range(8)] + [30 + 8 * 3, 30 + 8 * 6]
FIRST_HELDOUT = 8


def test_the_nearest_neighbour_of_a_padded_moving_target_is_black_over_the_bars_only(tmp_path: Path) -> None:
    frames, masks, scene, keypoints = _target(OFFSETS, PERSON_X, seed=11, blur=1.5)
    _, paths = build_and_write_plate(tmp_path, frames, masks, "pan", PLATE_OPTIONS, min_observations=1)
    view = read_target_view(paths["mosaic"], paths["camera"], paths["report"], frames)
    assert not view.still and view.content_box == BOX
    drawn, chosen = registered_nearest_neighbours(PoseSequence(keypoints, SIZE, "synthetic"), frames,
                                                  FIRST_HELDOUT, view)
    assert chosen.tolist() == [3, 6]
    width, height = SIZE
    x0, _, x1, _ = BOX
    for i, source in enumerate(chosen):
        t = FIRST_HELDOUT + i
        assert (drawn[i][:, :x0] == 0).all() and (drawn[i][:, x1:] == 0).all()
        assert (view.plate(t)[:, :x0] == 0).all() and (view.plate(t)[:, x1:] == 0).all()
        # Inside the picture: frame t's background with the person where frame `source` had them, and none of
        # the training frame's black bars (the plate stands in where that frame showed padding).
        (dx, dy), x = OFFSETS[t], PERSON_X[source]
        expected = scene[20 + int(dy):20 + int(dy) + height, 20 + int(dx):20 + int(dx) + width].copy()
        expected[14 - int(dy):50 - int(dy), x - 20 - int(dx):x - 8 - int(dx)] = (220, 30, 30)
        inside = drawn[i][3:-3, x0:x1]
        assert inside.max(axis=-1).min() > 0
        assert np.abs(inside.astype(np.float32) - expected[3:-3, x0:x1]).mean() < 1.5

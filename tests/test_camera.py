"""The one rule between a frame's camera and the reference view (edn.background.camera), at tiny sizes."""

from __future__ import annotations

import cv2
import numpy as np

from edn.background.camera import (Camera, camera_from, keypoints_to_frame, keypoints_to_reference, plate_in_frame,
                                   points_to_frame, points_to_reference, read_camera, seen_area, still_camera)
from edn.background.plate import build_plate, write_plate

SIZE = (96, 64)
PLATE_OPTIONS = dict(grow_px=1, min_observations=3, max_frames=200, max_camera_residual=6.0)


def _texture(height: int, width: int, seed: int) -> np.ndarray:
    noise = np.random.default_rng(seed).integers(0, 256, (height, width, 3)).astype(np.uint8)
    return cv2.normalize(cv2.GaussianBlur(noise, (0, 0), 3.0), None, 0, 255, cv2.NORM_MINMAX)


def _shift(dx: float, dy: float) -> np.ndarray:
    """A frame's pixel to the scene's: the frame's (0, 0) at the scene's (24 + dx, 16 + dy)."""
    return np.array([[1, 0, 24 + dx], [0, 1, 16 + dy], [0, 0, 1]], np.float64)


def _filmed(scene: np.ndarray, cameras: list[np.ndarray]) -> np.ndarray:
    return np.stack([cv2.warpPerspective(scene, camera, SIZE, flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP)
                     for camera in cameras])


PAN = [(-5.0 + 1.7 * t, -1.2 + 0.55 * t) for t in range(7)]  # 10.2 px right, 3.3 px down, sub-pixel steps


def _panning_target(tmp_path):
    """A panning camera over a still textured scene, a red square walking across (masked): the plate
    stage's outputs written and the frames, the cameras and the scene."""
    width, height = SIZE
    scene = _texture(2 * height, 2 * width, 3)
    cameras = [_shift(dx, dy) for dx, dy in PAN]
    frames = _filmed(scene, cameras)
    masks = np.zeros(frames.shape[:3], np.uint8)
    for t in range(len(frames)):
        masks[t, 16:48, 8 + 11 * t:24 + 11 * t] = 255
        frames[t, 16:48, 8 + 11 * t:24 + 11 * t] = (230, 40, 40)
    made = build_plate(frames, masks, None, subject="pan", **PLATE_OPTIONS)
    paths = {name: tmp_path / name for name in ("plate.png", "mosaic.png", "coverage.png", "camera.csv", "r.json")}
    write_plate(made, plate_out=paths["plate.png"], coverage_out=paths["coverage.png"], report_out=paths["r.json"],
                mosaic_out=paths["mosaic.png"], camera_out=paths["camera.csv"])
    return made, paths, frames, masks


def test_the_mosaic_warped_into_each_frame_is_that_frames_background(tmp_path) -> None:
    made, paths, frames, masks = _panning_target(tmp_path)
    report = made.report
    assert not report.background_moves and report.motion_model != "identity"
    camera = read_camera(paths["camera.csv"], SIZE)
    assert not camera.still and camera.registered.all() and len(camera) == len(frames)
    means = []
    observed = made.coverage > 0  # seen by the median (the rest, at the pan's ends, is inpainted or black)
    for t in range(len(frames)):
        plate, valid = plate_in_frame(made.mosaic, report.reference_origin, camera.transform(t), SIZE, observed)
        background = valid & (masks[t] == 0)
        assert background.mean() > 0.6
        difference = np.abs(plate.astype(np.float32) - frames[t].astype(np.float32))[background]
        assert difference.mean() < 1.5 and np.percentile(difference, 99) < 6, (t, difference.mean())
        means.append(difference.mean())
        assert (plate[~valid] == 0).all()
    assert np.mean(means) < 1.0, means  # within a gray level: what resampling the median costs
    # The reference frame's camera is the identity: its plate is the plate, bit for bit.
    reference, _ = plate_in_frame(made.mosaic, report.reference_origin, camera.transform(report.reference_frame),
                                  SIZE)
    np.testing.assert_array_equal(reference, made.plate)


def test_pixels_the_mosaic_never_saw_are_invalid() -> None:
    mosaic = _texture(40, 60, 1)
    seen = np.ones((40, 60), bool)
    seen[:, :10] = False
    # A camera shifted 5.5 px left of the mosaic's left edge: its first columns lie outside the mosaic, the
    # next ones on pixels never seen. Lanczos reads 3 pixels before and 4 after: column 18 samples mosaic
    # column 12.5 and so reads column 9, never seen; column 19 reads 10 to 17. The top 3 rows read above the
    # mosaic's edge.
    plate, valid = plate_in_frame(mosaic, (0, 0), np.array([[1, 0, -5.5], [0, 1, 0], [0, 0, 1]]), (30, 20), seen)
    assert not valid[:, :19].any() and not valid[:3].any() and valid[3:, 19:].all()
    assert (plate[~valid] == 0).all()
    # A whole-pixel shift is a crop; it agrees with the warp.
    crop, crop_valid = plate_in_frame(mosaic, (3, 2), np.array([[1, 0, 4.0], [0, 1, -1.0], [0, 0, 1]]), (30, 20))
    np.testing.assert_array_equal(crop, mosaic[1:21, 7:37])
    assert crop_valid.all()
    warped = cv2.warpPerspective(mosaic, np.array([[1, 0, 7.0], [0, 1, 1.0], [0, 0, 1]]), (30, 20),
                                 flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP)
    np.testing.assert_array_equal(crop, warped)


def test_points_round_trip_and_nan_stays_nan() -> None:
    transform = np.array([[1.03, -0.05, 4.2], [0.04, 0.98, -2.7], [1e-4, -2e-4, 1.0]])
    points = np.array([[0.0, 0.0], [95.0, 63.0], [40.5, 12.25], [np.nan, np.nan]])
    there = points_to_reference(points, transform)
    assert np.isnan(there[3]).all() and np.isfinite(there[:3]).all()
    np.testing.assert_allclose(there[:3, 0], (1.03 * points[:3, 0] - 0.05 * points[:3, 1] + 4.2)
                               / (1e-4 * points[:3, 0] - 2e-4 * points[:3, 1] + 1.0))
    back = points_to_frame(there, transform)
    np.testing.assert_allclose(back[:3], points[:3], atol=1e-9)
    assert np.isnan(back[3]).all()
    # The identity returns the points as they are.
    np.testing.assert_array_equal(points_to_reference(points, np.eye(3)), points)


def test_keypoints_follow_their_frames_camera_and_missing_ones_stay_missing() -> None:
    shifts = [(0.0, 0.0), (3.5, -2.0), (-1.25, 4.0)]
    camera = Camera(np.stack([np.array([[1, 0, dx], [0, 1, dy], [0, 0, 1]], np.float64) for dx, dy in shifts]),
                    np.ones(3, bool), SIZE)
    keypoints = np.zeros((5, 4, 3), np.float32)
    keypoints[..., 0], keypoints[..., 1], keypoints[..., 2] = 10.0, 20.0, 0.9
    keypoints[2, 1] = 0.0  # missing
    moved = keypoints_to_reference(keypoints, camera)
    for row in range(5):
        dx, dy = shifts[row % 3]  # past the video's end the path goes round
        present = keypoints[row, :, 2] > 0
        np.testing.assert_allclose(moved[row, present, :2], [[10 + dx, 20 + dy]] * int(present.sum()))
    np.testing.assert_array_equal(moved[2, 1], 0.0)
    np.testing.assert_allclose(keypoints_to_frame(moved, camera), keypoints, atol=1e-5)
    np.testing.assert_array_equal(keypoints_to_frame(keypoints, camera, frames=[0, 0, 0, 0, 0]), keypoints)
    # A still camera changes nothing, bit for bit.
    np.testing.assert_array_equal(keypoints_to_reference(keypoints, still_camera(5, SIZE)), keypoints)


def test_an_unregistered_frame_takes_its_nearest_registered_neighbours_camera() -> None:
    transforms = np.stack([np.array([[1, 0, t], [0, 1, 0], [0, 0, 1]], np.float64) for t in range(6)])
    transforms[[0, 3, 4]] = np.nan
    camera = camera_from(transforms, None, SIZE)
    assert camera.registered.tolist() == [False, True, True, False, False, True]
    assert [camera.transform(t)[0, 2] for t in range(6)] == [1, 1, 2, 2, 5, 5]
    nothing = camera_from(np.full((3, 3, 3), np.nan), None, SIZE)
    assert nothing.still and not nothing.registered.any()


def test_the_seen_area_is_what_the_plate_stage_could_fill(tmp_path) -> None:
    made, paths, _, _ = _panning_target(tmp_path)
    camera = read_camera(paths["camera.csv"], SIZE)
    area = seen_area(camera, made.report.mosaic_size, made.report.reference_origin)
    assert area.shape == made.mosaic.shape[:2]
    assert not made.mosaic[~area].any()  # never seen: black
    assert area.mean() > 0.9

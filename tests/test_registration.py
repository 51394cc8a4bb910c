"""Camera registration (edn.background.registration) and the plate in the reference view (edn.background.plate)."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from edn.background.plate import PlateReport, build_plate, read_camera_table, read_plate, read_plate_report, write_plate
from edn.background.registration import STILL_PX, corner_error, register_frames
from helpers import run_edn

SIZE = (128, 80)
PLATE_OPTIONS = dict(grow_px=1, min_observations=3, max_frames=200, max_camera_residual=6.0)


def _texture(height: int, width: int, seed: int) -> np.ndarray:
    """Blurred colour noise stretched to 0-255: detail at every place, smooth enough to interpolate."""
    noise = np.random.default_rng(seed).integers(0, 256, (height, width, 3)).astype(np.uint8)
    return cv2.normalize(cv2.GaussianBlur(noise, (0, 0), 1.2), None, 0, 255, cv2.NORM_MINMAX)


def _filmed(scene: np.ndarray, cameras: list[np.ndarray], size=SIZE) -> np.ndarray:
    """uint8 [T, H, W, 3]: ``scene`` seen by cameras that map a frame's pixel to the scene's (3x3)."""
    return np.stack([cv2.warpPerspective(scene, camera, size, flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP)
                     for camera in cameras])


def _camera(dx: float, dy: float, *, angle_deg: float = 0.0, zoom: float = 1.0, size=SIZE) -> np.ndarray:
    """A frame's pixel to the scene's: rotated and zoomed about the frame's centre, shifted by (dx, dy), the
    frame's centre on the scene's (the scene is twice the frame's size)."""
    width, height = size
    angle = np.deg2rad(angle_deg)
    camera = np.eye(3)
    camera[:2, :2] = zoom * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    centre = (np.array(size) - 1) / 2
    camera[:2, 2] = centre + [width / 2 + dx, height / 2 + dy] - camera[:2, :2] @ centre
    return camera


def _truth(cameras: list[np.ndarray], reference: int) -> list[np.ndarray]:
    """Each frame's true transform to the reference frame's pixels."""
    return [np.linalg.inv(cameras[reference]) @ camera for camera in cameras]


def _nobody(count: int, size=SIZE) -> np.ndarray:
    return np.zeros((count, size[1], size[0]), bool)


OFFSETS = [(0.0, 0.0), (1.3, -0.7), (-2.6, 1.9), (3.45, 2.2), (-1.15, -3.3), (2.8, 0.35), (-3.7, -1.6)]


def test_known_subpixel_translations_are_registered_within_half_a_pixel() -> None:
    cameras = [_camera(dx, dy) for dx, dy in OFFSETS]
    frames = _filmed(_texture(2 * SIZE[1], 2 * SIZE[0], 0), cameras)
    registration = register_frames(frames, _nobody(len(frames)))
    assert registration.reference == len(frames) // 2 and registration.registered.all()
    assert not registration.still and registration.model == "similarity"
    errors = [corner_error(h, truth, SIZE) for h, truth in zip(registration.transforms,
                                                                _truth(cameras, registration.reference))]
    assert max(errors) < 0.5, errors
    assert np.all(registration.gains == 1.0)


def test_a_similarity_is_registered_and_auto_keeps_it() -> None:
    motions = [(0, 0, 0, 1.0), (2.3, -1.4, 2.0, 1.04), (-3.1, 0.8, -2.5, 0.96), (1.7, 2.9, 1.2, 1.02),
               (-0.6, -2.2, -1.8, 0.97), (3.3, 1.1, 3.0, 1.05)]
    cameras = [_camera(dx, dy, angle_deg=a, zoom=z) for dx, dy, a, z in motions]
    frames = _filmed(_texture(2 * SIZE[1], 2 * SIZE[0], 1), cameras)
    registration = register_frames(frames, _nobody(len(frames)))
    assert registration.model == "similarity"  # an affine or a homography fits no better: auto stays
    errors = [corner_error(h, truth, SIZE) for h, truth in zip(registration.transforms,
                                                                _truth(cameras, registration.reference))]
    assert max(errors) < 0.5, errors


def test_a_tilting_camera_takes_a_homography() -> None:
    rng = np.random.default_rng(2)
    cameras = []
    for _ in range(7):
        tilt = np.eye(3)
        tilt[2, :2] = rng.uniform(-6e-4, 6e-4, 2)
        cameras.append(_camera(*rng.uniform(-3, 3, 2)) @ tilt)
    frames = _filmed(_texture(2 * SIZE[1], 2 * SIZE[0], 3), cameras)
    automatic = register_frames(frames, _nobody(len(frames)))
    assert automatic.model == "homography"
    truths = _truth(cameras, automatic.reference)
    assert max(corner_error(h, t, SIZE) for h, t in zip(automatic.transforms, truths)) < 0.5
    # The negative control: a similarity cannot follow the tilt.
    similarity = register_frames(frames, _nobody(len(frames)), motion_model="similarity")
    assert max(corner_error(h, t, SIZE) for h, t in zip(similarity.transforms, truths)) > 1.0


def _square_in_front(count: int = 8):
    """A still background and a large textured square (a third of the frame) moving 8 px a frame in front
    of it, masked as the person: (frames, person masks uint8, background)."""
    width, height = SIZE
    background, square = _texture(height, width, 4), _texture(56, 56, 5)
    frames = np.repeat(background[None], count, axis=0)
    masks = np.zeros((count, height, width), np.uint8)
    for t in range(count):
        x = 4 + 8 * t
        frames[t, 12:68, x:x + 56] = square
        masks[t, 12:68, x:x + 56] = 255
    return frames, masks, background


def test_the_persons_pixels_do_not_pull_the_estimate() -> None:
    frames, masks, background = _square_in_front()
    registration = register_frames(frames, masks > 0)
    assert registration.still and registration.model == "identity"
    assert np.nanmax(registration.displacement) < 0.05
    assert all(np.array_equal(h, np.eye(3)) for h in registration.transforms)
    # The negative control: the same frames with the square not masked are pulled along with it.
    unmasked = register_frames(frames, np.zeros_like(masks, bool))
    assert not unmasked.still and np.nanmax(unmasked.displacement) > 10 * STILL_PX
    # A still camera's plate is the background exactly where seen, its mosaic the plate, as without registration.
    made = build_plate(frames, masks, None, subject="square", **PLATE_OPTIONS)
    seen = made.coverage > 0
    assert seen.mean() > 0.7
    np.testing.assert_array_equal(made.plate[seen], background[seen])
    np.testing.assert_array_equal(made.mosaic, made.plate)
    report = made.report
    assert report.static and report.method == "composite" and report.motion_model == "identity"
    assert report.camera_residual == report.registered_residual < 2.0  # off only where the plate was filled
    assert report.mosaic_size == SIZE and report.reference_origin == (0, 0)


def test_a_panning_camera_gives_a_mosaic_in_the_reference_view(tmp_path) -> None:
    width, height = SIZE
    pan = [(-6.0 + 2.05 * t, 0.4 * t) for t in range(7)]  # 12.3 px left to right, 2.4 px down
    cameras = [_camera(dx, dy) for dx, dy in pan]
    scene = _texture(2 * height, 2 * width, 6)
    frames = _filmed(scene, cameras)
    masks = np.zeros((len(frames), height, width), np.uint8)
    for t in range(len(frames)):  # someone walking across, masked
        masks[t, 20:60, 10 + 14 * t:30 + 14 * t] = 255
        frames[t, 20:60, 10 + 14 * t:30 + 14 * t] = (230, 40, 40)
    made = build_plate(frames, masks, None, subject="pan", **PLATE_OPTIONS)
    report = made.report
    reference = report.reference_frame
    # The mosaic holds what the camera saw: wider than the frame by the pan, the reference view inside it.
    mosaic_width, mosaic_height = report.mosaic_size
    assert mosaic_width >= width + 12 and mosaic_height >= height + 2
    ox, oy = report.reference_origin
    np.testing.assert_array_equal(made.mosaic[oy:oy + height, ox:ox + width], made.plate)
    # The plate is the scene as the reference camera saw it, the person gone.
    expected = _filmed(scene, [cameras[reference]])[0].astype(np.float32)
    seen = made.coverage[oy:oy + height, ox:ox + width] > 0
    assert seen.mean() > 0.9
    assert np.abs(made.plate.astype(np.float32) - expected)[seen].mean() < 3.0
    assert not (made.plate == (230, 40, 40)).all(axis=-1).any()
    # Before registration the frames differ from the plate by far more than the limit, after by little:
    # the background holds still, the camera moves; the composite method draws over the plate warped into
    # each frame's camera (edn.background.camera).
    assert report.camera_residual > 3 * report.max_camera_residual
    assert report.registered_residual < report.max_camera_residual / 2
    assert not report.background_moves and not report.static and report.method == "composite"
    assert report.camera_motion > 5 and report.motion_model == "similarity"
    assert report.registered_frames == len(frames)
    # The camera table and the report, written and read back.
    paths = {name: tmp_path / name for name in ("plate.png", "mosaic.png", "coverage.png", "camera.csv", "r.json")}
    write_plate(made, plate_out=paths["plate.png"], coverage_out=paths["coverage.png"], report_out=paths["r.json"],
                mosaic_out=paths["mosaic.png"], camera_out=paths["camera.csv"])
    table = read_camera_table(paths["camera.csv"])
    np.testing.assert_allclose(table.transforms, made.registration.transforms, rtol=1e-8, atol=1e-8)
    truths = _truth(cameras, reference)
    assert max(corner_error(h, t, SIZE) for h, t in zip(table.transforms, truths)) < 0.5
    np.testing.assert_allclose(table.residual_after, made.residual_after, atol=1e-4)
    assert read_plate_report(paths["r.json"]) == report
    assert json.loads(paths["r.json"].read_text())["method"] == "composite"
    np.testing.assert_array_equal(read_plate(paths["mosaic.png"]), made.mosaic)
    assert read_plate(paths["coverage.png"]).shape[:2] == (mosaic_height, mosaic_width)


def test_an_exposure_change_is_a_gain_not_a_moving_background() -> None:
    frames, masks, background = _square_in_front()
    brighter = frames.copy()
    brighter[1::2] = np.clip(frames[1::2].astype(np.float32) * 0.8, 0, 255).round().astype(np.uint8)
    made = build_plate(brighter, masks, None, subject="clouds", **PLATE_OPTIONS)
    gains = made.registration.gains
    assert made.registration.still and made.registration.reference == 4  # the middle one: unchanged
    assert np.all(gains[0::2] == 1.0) and np.all(np.abs(gains[1::2] - 1.25) < 0.02), gains
    report = made.report
    assert report.registered_residual < 2.0 < report.camera_residual
    assert report.static and not report.background_moves


def _wind(count: int = 8, blocks: int = 4, seed: int = 7) -> np.ndarray:
    """A background whose every block moves its own way each frame (leaves in the wind), the camera still."""
    width, height = SIZE
    scene = _texture(height + 16, width + 16, seed)
    rng = np.random.default_rng(seed)
    frames = np.empty((count, height, width, 3), np.uint8)
    bw, bh = width // blocks, height // blocks
    for t in range(count):
        for by in range(blocks):
            for bx in range(blocks):
                dx, dy = rng.integers(-5, 6, 2)
                y0, x0 = 8 + by * bh + dy, 8 + bx * bw + dx
                frames[t, by * bh:(by + 1) * bh, bx * bw:(bx + 1) * bw] = scene[y0:y0 + bh, x0:x0 + bw]
    return frames


@pytest.mark.parametrize("kind", ["wind", "noise"])
def test_a_background_that_moves_by_itself_falls_back(kind) -> None:
    frames = _wind() if kind == "wind" else np.random.default_rng(8).integers(0, 256, (8, SIZE[1], SIZE[0], 3),
                                                                               dtype=np.uint8)
    report = build_plate(frames, np.zeros(frames.shape[:3], np.uint8), None, subject=kind, **PLATE_OPTIONS).report
    assert report.background_moves and not report.static and report.method == "paper"
    assert report.registered_residual > 2 * report.max_camera_residual


def test_a_report_written_before_registration_still_reads(tmp_path) -> None:
    old = {"subject": "juggler", "frame_size": [512, 256], "frames_used": 200, "camera_residual": 1.098,
           "max_camera_residual": 6.0, "static": True, "filled_fraction": 0.01971, "person_fraction": 0.1062}
    (tmp_path / "old.json").write_text(json.dumps(old))
    report = read_plate_report(tmp_path / "old.json")
    assert report.static and report.method == "composite" and report.registered_residual is None
    assert report == PlateReport.from_json(report.to_json())


@pytest.mark.slow  # MediaPipe segments the frames
def test_a_moving_background_through_the_cli_says_so_in_one_line(tmp_path) -> None:
    frames = _wind(count=10)
    np.save(tmp_path / "frames.npy", frames)
    np.save(tmp_path / "labels.npy", np.zeros_like(frames))
    outputs = {name: tmp_path / f"wind{suffix}" for name, suffix in
               (("plate", ".png"), ("mosaic", ".mosaic.png"), ("coverage", ".coverage.png"),
                ("camera", ".camera.csv"), ("report", ".json"), ("masks", ".masks.npy"))}
    result = run_edn("background", "--subject", "wind", "--frames", tmp_path / "frames.npy",
                     "--labels", tmp_path / "labels.npy", "--workers", "1",
                     *[f"--{key}={value}" for key, value in outputs.items()])
    assert result.returncode == 0, result.stderr
    report = read_plate_report(outputs["report"])
    assert report.background_moves and report.method == "paper"
    lines = [line for line in result.stderr.splitlines() if "target wind" in line]
    assert len(lines) == 1, result.stderr
    assert (f"target wind: the background moves (residual {report.registered_residual:.1f} above 6.0 "
            "with the camera still" in lines[0]) or \
        (f"target wind: the background moves (residual {report.registered_residual:.1f} above 6.0 after "
         "registering" in lines[0])
    assert "raise background.max_camera_residual" in lines[0] and "trained on the whole frame" in lines[0]
    table = read_camera_table(outputs["camera"])
    assert len(table.transforms) == len(frames)
    assert read_plate(outputs["plate"]).shape == frames.shape[1:]


def test_the_reference_is_the_middle_frame_or_the_one_with_most_background() -> None:
    frames, masks, _ = _square_in_front(count=7)
    masks[2] = 0  # nobody in frame 2
    person = masks > 0
    assert register_frames(frames, person).reference == 3
    registration = register_frames(frames, person, reference="most_background")
    assert registration.reference == 2 and registration.still

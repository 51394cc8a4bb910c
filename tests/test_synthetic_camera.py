"""Issue 25's footage maker (benchmarks/synthetic_camera.py) and registration scorer
(benchmarks/registration_accuracy.py): the known camera path is where the crop put the pixels, at the
working size as well as in the video's own pixels, and the scorer measures a real registration against it."""

from __future__ import annotations

import sys

import cv2
import numpy as np
import pytest

from helpers import DEMO, ROOT, ffmpeg

sys.path.insert(0, str(ROOT))
from benchmarks.registration_accuracy import corner_errors, true_to_reference  # noqa: E402
from benchmarks.synthetic_camera import (  # noqa: E402
    crop_frame, crop_size, crop_transform, decoding_geometry, known_path, make_loop, make_pan, pan_windows,
    read_truth, working_transform)
from edn.background.registration import apply_transform, register_frames, warp_into  # noqa: E402
from edn.ingest.decode import decode_video  # noqa: E402
from edn.ingest.frames import load_frames  # noqa: E402
from edn.ingest.media import count_frames  # noqa: E402

SOURCE = (640, 360)
#: Blob centres in the original video's pixels (x, y): spread over the frame, off the pixel grid.
BLOBS = np.array([[150.3, 90.7], [480.6, 100.2], [320.0, 180.5], [140.8, 270.1], [500.2, 260.9]])


def _blobs(size: tuple[int, int], centres: np.ndarray, sigma: float = 6.0) -> np.ndarray:
    """uint8 [H, W, 3]: a bright Gaussian blob at each centre on black."""
    ys, xs = np.mgrid[0:size[1], 0:size[0]].astype(np.float64)
    image = np.zeros((size[1], size[0]))
    for x, y in centres:
        image += np.exp(-((xs - x) ** 2 + (ys - y) ** 2) / (2 * sigma ** 2))
    return np.repeat((255 * np.clip(image, 0, 1)).round().astype(np.uint8)[..., None], 3, axis=-1)


def _fit(frame: np.ndarray, geometry) -> np.ndarray:
    """``edn decode``'s resampling and padding of one frame (area averaging, as its ffmpeg graph shrinks)."""
    (width, height), (sw, sh), (ox, oy) = geometry.working_size, geometry.scaled_size, geometry.offset
    out = np.zeros((height, width, 3), np.uint8)
    out[oy:oy + sh, ox:ox + sw] = cv2.resize(frame, (sw, sh), interpolation=cv2.INTER_AREA)
    return out


def _centroid(image: np.ndarray, near: np.ndarray, radius: int) -> np.ndarray:
    """The intensity-weighted centre (x, y) of ``image`` within ``radius`` pixels of ``near``."""
    gray = image[..., 0].astype(np.float64)
    x0, y0 = np.round(near).astype(int)
    window = gray[y0 - radius:y0 + radius + 1, x0 - radius:x0 + radius + 1]
    ys, xs = np.mgrid[y0 - radius:y0 + radius + 1, x0 - radius:x0 + radius + 1]
    return np.array([(window * xs).sum(), (window * ys).sum()]) / window.sum()


def test_known_path_puts_the_synthetic_pixels_where_the_original_shows_them():
    """Blobs at known places: each frame of the pan, made and fitted to the working frame as the pipeline
    decodes, shows every blob where the known path maps the original working frame's blob, within 0.5 px."""
    original = _blobs(SOURCE, BLOBS)
    windows = pan_windows(5, SOURCE, window=0.9, pan_px=30, pan_y_px=10, zoom=0.05)
    output_size = crop_size(windows[0])
    working = (256, 128)
    original_geometry = decoding_geometry(SOURCE, working, "pad", "auto")
    synthetic_geometry = decoding_geometry(output_size, working, "pad", "auto")
    truths = known_path(windows, output_size, original_geometry, synthetic_geometry)
    original_working = _fit(original, original_geometry)
    reference = np.array([_centroid(original_working, p, 8) for p in
                          apply_transform(working_transform(original_geometry), BLOBS)])
    moved = []
    for box, truth in zip(windows, truths):
        synthetic = crop_frame(original, box, output_size)
        assert synthetic.shape == (output_size[1], output_size[0], 3)
        # In the video's own pixels: the crop's transform maps each blob back to where it was.
        full = np.linalg.inv(crop_transform(box, output_size))
        for centre, seen in zip(BLOBS, apply_transform(full, BLOBS)):
            assert np.linalg.norm(_centroid(synthetic, seen, 20) - seen) < 0.5, (box, centre)
        # At the working size: the known path maps the blob seen in the synthetic frame onto the original's.
        synthetic_working = _fit(synthetic, synthetic_geometry)
        expected_there = apply_transform(np.linalg.inv(truth), reference)
        found = np.array([_centroid(synthetic_working, p, 8) for p in expected_there])
        error = np.linalg.norm(apply_transform(truth, found) - reference, axis=1)
        assert error.max() < 0.5, error
        moved.append(found)
    # The camera did move: the blobs travel across the synthetic working frames, well beyond the tolerance.
    assert np.linalg.norm(moved[-1] - moved[0], axis=1).min() > 3


def test_windows_stay_in_the_frame_and_the_first_is_an_exact_crop():
    """The first window of a whole-pixel pan is the frame's pixels as they are; a window leaving the frame
    is refused before anything is written."""
    from edn.core.errors import EdnError

    frame = np.random.default_rng(0).integers(0, 256, (360, 640, 3), dtype=np.uint8)
    windows = pan_windows(10, SOURCE, window=0.9, pan_px=40, pan_y_px=0, zoom=0.05)
    first = crop_frame(frame, windows[0], crop_size(windows[0]))
    np.testing.assert_array_equal(first, frame[18:18 + 324, 12:12 + 576])
    assert windows[-1].width == pytest.approx(576 / 1.05)
    with pytest.raises(EdnError, match="leaves the 640x360 frame"):
        pan_windows(10, SOURCE, window=0.9, pan_px=200, pan_y_px=0, zoom=0.0)


def test_scorer_measures_a_real_registration_of_a_synthetic_pan():
    """A textured scene cropped along a known pan and zoom, registered by the project's registration: the
    scorer's mean corner error against the known path is under 0.5 px, and a path off by 2 px is seen."""
    rng = np.random.default_rng(1)
    scene = cv2.GaussianBlur(rng.integers(0, 256, (270, 480, 3), dtype=np.uint8), (0, 0), 2.0)
    scene = cv2.normalize(scene, None, 0, 255, cv2.NORM_MINMAX)
    windows = pan_windows(5, (480, 270), window=0.9, pan_px=24, pan_y_px=6, zoom=0.05)
    size = crop_size(windows[0])
    frames = np.stack([crop_frame(scene, box, size) for box in windows])
    truth = np.stack([crop_transform(box, size) for box in windows])  # the frames are the working frames here
    registration = register_frames(frames, np.zeros(frames.shape[:3], bool), motion_model="similarity")
    assert registration.registered.all() and not registration.still
    true = true_to_reference(truth, registration.reference)
    errors = corner_errors(registration.transforms, registration.registered, true, size)
    assert np.nanmean(errors) < 0.5, errors
    off = truth.copy()
    off[:, 0, 2] += 2.0 * np.arange(len(off)) / (len(off) - 1)  # a path drifting 2 px more than the crop's
    off_errors = corner_errors(registration.transforms, registration.registered,
                               true_to_reference(off, registration.reference), size)
    assert np.nanmean(off_errors) > np.nanmean(errors) + 0.4


@pytest.mark.slow
def test_pan_video_and_its_known_path_match_the_decoded_frames(tmp_path):
    """The pan made from a 1 s cut of the demo juggler and decoded as the pipeline does: each synthetic
    working frame warped by its known path onto the original's working frame matches it closely, much
    better than by a path shifted by one pixel; the looped source has ten times the frames."""
    clip = tmp_path / "juggler_1s.mp4"
    ffmpeg("-i", DEMO / "target_juggler.mp4", "-t", "1", "-an", "-c:v", "libx264", "-crf", "12", clip)
    made = make_pan(clip, tmp_path / "out", name="pan", window=0.9, pan_px=40, pan_y_px=0, zoom=0.05,
                    working_size=(256, 128), fit="pad", orientation="auto", crf=16)
    truth = read_truth(tmp_path / "out" / "pan.truth.csv")
    assert count_frames(made) == count_frames(clip) == len(truth)
    decode_video(clip, tmp_path / "o.npy", tmp_path / "o.json", working_size=(256, 128), orientation="auto")
    decode_video(made, tmp_path / "s.npy", tmp_path / "s.json", working_size=(256, 128), orientation="auto")
    original, synthetic = load_frames(tmp_path / "o.npy"), load_frames(tmp_path / "s.npy")
    for t in (0, len(truth) // 2, len(truth) - 1):
        inside = warp_into(np.full(synthetic.shape[1:3], 255, np.uint8), truth[t], (256, 128)) == 255
        inside &= original[t].any(axis=-1)

        def difference(dx: float, dy: float, t: int = t, inside: np.ndarray = inside) -> float:
            shifted = np.array([[1, 0, dx], [0, 1, dy], [0, 0, 1]], np.float64) @ truth[t]
            warped = warp_into(synthetic[t], shifted, (256, 128)).astype(float)
            return float(np.abs(warped - original[t])[inside].mean())

        # The known path fits better than the same path moved by half a pixel or more in any direction.
        right = difference(0, 0)
        for dx, dy in [(dx, dy) for dx in (-1, -0.5, 0, 0.5, 1) for dy in (-1, -0.5, 0, 0.5, 1) if dx or dy]:
            assert right < difference(dx, dy), (t, dx, dy)
    looped = make_loop(clip, tmp_path / "out", name="loop", times=10)
    assert count_frames(looped) == 10 * count_frames(clip)


def test_scorer_reads_the_plate_stages_camera_table(tmp_path, capsys):
    """A camera table as the plate stage writes it (``plate.camera_table``) for a textured scene panned along
    a known path, with its report's reference frame and size beside it: the scorer prints a mean corner
    error under 0.5 px; a camera table without its report is a one-line error."""
    import json
    from types import SimpleNamespace

    from benchmarks import registration_accuracy
    from benchmarks.synthetic_camera import MATRIX_COLUMNS, _write_csv
    from edn.background.plate import camera_table

    rng = np.random.default_rng(2)
    scene = cv2.normalize(cv2.GaussianBlur(rng.integers(0, 256, (270, 480, 3), dtype=np.uint8), (0, 0), 2.0),
                          None, 0, 255, cv2.NORM_MINMAX)
    windows = pan_windows(5, (480, 270), window=0.9, pan_px=24, pan_y_px=0, zoom=0.05)
    size = crop_size(windows[0])
    frames = np.stack([crop_frame(scene, box, size) for box in windows])
    registration = register_frames(frames, np.zeros(frames.shape[:3], bool), motion_model="similarity")
    unmeasured = np.full(len(frames), np.nan)
    (tmp_path / "pan.camera.csv").write_text(camera_table(SimpleNamespace(
        registration=registration, residual_before=unmeasured, residual_after=unmeasured)))
    (tmp_path / "pan.json").write_text(json.dumps({"reference_frame": registration.reference,
                                                   "frame_size": list(registration.frame_size),
                                                   "motion_model": registration.model}))
    truth = tmp_path / "pan.truth.csv"
    _write_csv(truth, ("frame", *MATRIX_COLUMNS),
               [[t, *crop_transform(box, size).ravel()] for t, box in enumerate(windows)])
    assert registration_accuracy.main(["--truth", str(truth), "--camera", str(tmp_path / "pan.camera.csv")]) == 0
    summary = capsys.readouterr().out.splitlines()[-1]
    assert summary.startswith("corner error: mean ")
    assert float(summary.split()[3]) < 0.5, summary
    (tmp_path / "pan.json").unlink()
    assert registration_accuracy.main(["--truth", str(truth), "--camera", str(tmp_path / "pan.camera.csv")]) == 1
    error = capsys.readouterr().err.strip()
    assert error.startswith("edn: plate report ") and "file not found" in error and "\n" not in error


def test_footage_effect_moves_a_still_frame_into_the_pans_camera(tmp_path):
    """benchmarks/footage_effect.py: still frame i seen by the pan's camera at frame first + i is the still
    frame sampled where the known path S_t (pan pixel -> still pixel) points, and black over the pan's bars."""
    import json

    from benchmarks.footage_effect import content_mask, moved_into_pan

    size = (64, 32)
    still = _blobs(size, np.array([[20.0, 12.0], [44.0, 20.0]]), sigma=2.0)
    shifts = [(0.0, 0.0), (3.0, 1.0), (5.0, -2.0)]
    truth = np.stack([np.array([[1.0, 0, dx], [0, 1.0, dy], [0, 0, 1.0]]) for dx, dy in shifts])
    geometry = tmp_path / "pan.truth.json"
    geometry.write_text(json.dumps({"synthetic_working": {"offset": [4, 0], "scaled": [56, 32]}}))
    inside = content_mask(geometry, size)
    assert inside.shape == (32, 64) and inside[:, 4:60].all() and not inside[:, :4].any() and not inside[:, 60:].any()
    first = 1
    moved = moved_into_pan(np.stack([still, still]), truth, first, inside)
    assert moved.shape == (2, 32, 64, 3)
    assert not moved[:, :, :4].any() and not moved[:, :, 60:].any()  # the bars stay black
    for i, (dx, dy) in enumerate(shifts[first:]):
        near = moved[i, :24, 8:32, 0]  # around the first blob only
        peak = np.unravel_index(np.argmax(near), near.shape)
        # The blob at (20, 12) of the still frame shows at (20 - dx, 12 - dy) in the pan's camera.
        assert abs(peak[1] + 8 - (20 - dx)) <= 1 and abs(peak[0] - (12 - dy)) <= 1


def test_footage_effect_measures_a_panned_backgrounds_change_after_registration():
    """benchmarks/footage_effect.py: a textured scene seen by a camera that pans whole pixels, registered
    exactly, does not change from frame to frame; the same frames with one frame brightened change by that
    much, and the person's pixels (a square that moves on its own) are left out of both."""
    from benchmarks.footage_effect import background_change, grown_person
    from edn.background.camera import camera_from
    from edn.evaluation.registered import TargetView

    rng = np.random.default_rng(0)
    scene = rng.integers(0, 256, (40, 100, 3), np.uint8)
    size, count = (64, 32), 6
    frames, masks, transforms = [], [], []
    for t in range(count):
        frame = scene[4:36, 3 * t:3 * t + 64].copy()
        mask = np.zeros((32, 64), bool)
        mask[8:20, 10 + 5 * t:22 + 5 * t] = True
        frame[mask] = 255  # the person: a white square walking faster than the pan
        frames.append(frame)
        masks.append(mask)
        transforms.append(np.array([[1.0, 0, 3 * t], [0, 1.0, 0], [0, 0, 1.0]]))  # frame pixel -> frame 0's
    frames, masks = np.stack(frames), np.stack(masks)
    view = TargetView(scene[4:36, :64], (0, 0), camera_from(np.stack(transforms), None, size))
    person = grown_person(masks, 1)
    assert background_change(frames, person, view, first=3, lag=1) == 0.0
    assert background_change(frames, person, view, first=3, lag=3) == 0.0
    brighter = frames.copy()
    brighter[4] = np.clip(brighter[4].astype(int) + 10, 0, 255).astype(np.uint8)
    change = background_change(brighter, person, view, first=4, lag=1)
    # Frames 4 and 5 are each one pair apart from a brighter frame: 10 levels, less where 255 clipped.
    assert 8.0 < change <= 10.0

"""The fake detector on a target whose camera moves (edn.fake_detector.pairs, edn.fake_detector.data): with the
target's camera table, a pan between two frames is not a scene cut, and a real cut still is."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from edn.background.plate import build_plate, write_plate
from edn.core.errors import EdnError
from edn.fake_detector.data import load_subject
from edn.fake_detector.pairs import frame_changes, scene_cuts
from edn.labels.label_store import LabelIndex, write_label_index

SIZE = (96, 64)


def _pan(step: int = 5, count: int = 8, cut_at: int | None = None):
    """A scene with blobs of some size panned ``step`` px a frame, and a different scene from frame ``cut_at``
    on (a real cut): (frames, transforms from each frame's pixel to frame 0's)."""
    width, height = SIZE

    def scene(seed: int) -> np.ndarray:
        noise = np.random.default_rng(seed).integers(0, 256, (height + 40, width + step * count + 40, 3))
        return cv2.normalize(cv2.GaussianBlur(noise.astype(np.uint8), (0, 0), 3.0), None, 0, 255, cv2.NORM_MINMAX)

    first, second = scene(21), scene(22)
    frames, transforms = [], []
    for t in range(count):
        shown = second if cut_at is not None and t >= cut_at else first
        frames.append(shown[20:20 + height, 20 + step * t:20 + step * t + width])
        transforms.append(np.array([[1, 0, step * t], [0, 1, 0], [0, 0, 1]], np.float64))
    return np.stack(frames), np.stack(transforms)


def test_a_panning_camera_is_not_a_scene_cut_but_a_cut_still_is() -> None:
    frames, transforms = _pan(cut_at=5)
    threshold = 5.0  # the pan changes the blocks by about 9, the cut by about 23
    as_filmed = scene_cuts(frames, threshold)
    registered = scene_cuts(frames, threshold, transforms)
    assert as_filmed.all()  # without the camera, every step of the pan looks like a cut
    assert registered.tolist() == [False, False, False, False, True, False, False]
    changes = frame_changes(frames, transforms=transforms)
    assert changes[[0, 1, 2, 3, 5, 6]].max() < 0.5 and changes[4] > 4 * threshold
    # A still camera's transforms change nothing, bit for bit.
    still = np.repeat(np.eye(3)[None], len(frames), axis=0)
    assert np.array_equal(frame_changes(frames, transforms=still), frame_changes(frames))


def test_the_detector_reads_the_camera_table_of_its_subject(tmp_path) -> None:
    frames, _ = _pan(count=10)
    made = build_plate(frames, np.zeros(frames.shape[:3], np.uint8), None, subject="pan3", grow_px=1,
                       min_observations=2, max_frames=200, max_camera_residual=6.0)
    camera = tmp_path / "pan3.camera.csv"
    write_plate(made, plate_out=tmp_path / "pan3.png", coverage_out=tmp_path / "pan3.coverage.png",
                report_out=tmp_path / "pan3.json", camera_out=camera)
    np.save(tmp_path / "frames.npy", frames)
    np.save(tmp_path / "generated.npy", frames[:, ::-1].copy())
    index = LabelIndex(has_body=np.ones(len(frames), bool), face_boxes=np.zeros((len(frames), 4), np.int32),
                       has_face=np.zeros(len(frames), bool))
    write_label_index(tmp_path / "index.csv", index)
    files = (tmp_path / "frames.npy", tmp_path / "generated.npy", tmp_path / "index.csv")
    without = load_subject("pan3", *files, 0.2, 5.0)
    with_camera = load_subject("pan3", *files, 0.2, 5.0, camera_path=camera)
    assert len(with_camera.pairs.training) == 7 and len(with_camera.pairs.heldout) == 1
    assert len(without.pairs.training) == len(without.pairs.heldout) == 0  # every step "a cut"
    with pytest.raises(EdnError) as error:
        np.save(tmp_path / "short.npy", frames[:6])
        np.save(tmp_path / "short_generated.npy", frames[:6])
        write_label_index(tmp_path / "short.csv", index.select(slice(0, 6)))
        load_subject("pan3", tmp_path / "short.npy", tmp_path / "short_generated.npy", tmp_path / "short.csv", 0.2,
                     5.0, camera_path=camera)
    assert "pan3.camera.csv" in str(error.value) and "10 frames for 6 frames" in str(error.value)

"""Transfer onto a target whose camera moves (issue 25 item 4): the reference view by default, synthesis.camera:
replay to replay the target's camera path; the target's statistics in its reference view (edn.background.camera)."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch

from edn.background.camera import FramePlates, camera_from, read_frame_plates
from edn.core.presets import PRESETS
from edn.core.runtime import Runtime
from edn.labels.label_store import LabelIndex
from edn.models import build_generator
from edn.models.generation import FrameGenerator, plate_tensor
from edn.normalize.subject_stats import compute_stats, write_stats
from edn.pose.keypoints import PoseSequence, read_pose_table, write_pose_table
from edn.transfer.synthesize import synthesize_sequence
from helpers import run_edn, run_snakemake
from synthetic_poses import standing_pose
from test_workflow import demo_config
from training_data import write_camera_table, write_moving_subject

SIZE = (256, 128)
#: The target's camera: frame t seen shifted by (dx, dy) from the reference view (frame 3): the camera pans
#: left and up, and zooms a little at the end (the last two frames).
SHIFTS = [(-9, 4), (-6, 3), (-3, 1), (0, 0), (2, -1), (5, -2), (8, -3)]


def _poses(xs, ys, heights) -> PoseSequence:
    keypoints = np.stack([standing_pose(x, y, h) for x, y, h in zip(xs, ys, heights)]).astype(np.float32)
    keypoints[1, 3:5] = 0.0  # two keypoints missing in frame 1
    return PoseSequence(keypoints=keypoints, frame_size=SIZE, detector="synthetic")


def _camera_table(path: Path) -> np.ndarray:
    """A camera table of SHIFTS, the last two frames also zoomed 4% about the reference's centre; returns the
    transforms [T, 3, 3] (frame pixel to reference pixel)."""
    transforms = []
    for t, (dx, dy) in enumerate(SHIFTS):
        zoom = 1.04 if t >= 5 else 1.0
        centre = (np.array(SIZE) - 1) / 2
        h = np.eye(3)
        h[:2, :2] *= zoom
        h[:2, 2] = (1 - zoom) * centre + [dx, dy]
        transforms.append(h)
    rows = ["frame,registered,h00,h01,h02,h10,h11,h12,h20,h21,h22,gain,displacement_px,residual_before,"
            "residual_after"]
    for t, h in enumerate(transforms):
        rows.append(",".join(str(v) for v in (t, 1, *h.ravel(), 1, 5.0, 20.0, 0.5)))
    path.write_text("\n".join(rows) + "\n")
    return np.stack(transforms)


def _target(tmp_path: Path):
    """A target filmed by the camera of SHIFTS: its poses in the reference view (the person walking towards
    the camera), the same poses as each frame's camera saw them, both written with its statistics."""
    count = len(SHIFTS)
    reference = _poses(np.linspace(100, 150, count), np.linspace(90, 110, count), np.linspace(60, 70, count))
    transforms = _camera_table(tmp_path / "camera.csv")
    filmed = reference.keypoints.copy()
    for t, h in enumerate(transforms):
        present = filmed[t, :, 2] > 0
        xy = np.c_[filmed[t, present, :2], np.ones(int(present.sum()))] @ np.linalg.inv(h).T
        filmed[t, present, :2] = xy[:, :2] / xy[:, 2:]
    filmed = reference.replace(filmed)
    write_pose_table(tmp_path / "target.parquet", filmed)
    write_stats(tmp_path / "target.json", compute_stats(filmed, "target"))  # as edn stats measures it
    write_stats(tmp_path / "target_reference.json", compute_stats(reference, "target"))
    source = _poses(np.linspace(60, 200, 10), np.linspace(80, 120, 10), np.full(10, 50.0))
    write_pose_table(tmp_path / "source.parquet", source)
    write_stats(tmp_path / "source.json", compute_stats(source, "source"))
    return reference, filmed, transforms


def _normalize(tmp_path: Path, output: str, *extra) -> PoseSequence:
    result = run_edn("normalize", "--source-poses", tmp_path / "source.parquet", "--source-stats",
                     tmp_path / "source.json", "--output", tmp_path / output, *extra)
    assert result.returncode == 0, result.stderr
    return read_pose_table(tmp_path / output)


def test_the_targets_statistics_are_measured_in_its_reference_view(tmp_path: Path) -> None:
    reference, filmed, _ = _target(tmp_path)
    camera = ["--target-poses", tmp_path / "target.parquet", "--target-camera", tmp_path / "camera.csv"]
    moved = _normalize(tmp_path, "moved.parquet", "--target-stats", tmp_path / "target.json", *camera)
    # The same as normalising onto the statistics of the poses as the reference view sees them.
    expected = _normalize(tmp_path, "expected.parquet", "--target-stats", tmp_path / "target_reference.json")
    np.testing.assert_allclose(moved.keypoints, expected.keypoints, atol=1e-3)
    # Not the same as onto the frames as filmed (the camera's zoom and pan changed the target's depths).
    as_filmed = _normalize(tmp_path, "filmed.parquet", "--target-stats", tmp_path / "target.json")
    assert np.abs(as_filmed.keypoints[..., 1] - moved.keypoints[..., 1]).max() > 1.0


def test_replay_moves_each_normalised_pose_into_its_target_frames_camera(tmp_path: Path) -> None:
    _, _, transforms = _target(tmp_path)
    camera = ["--target-stats", tmp_path / "target.json", "--target-poses", tmp_path / "target.parquet",
              "--target-camera", tmp_path / "camera.csv"]
    held = _normalize(tmp_path, "held.parquet", *camera, "--camera", "reference")
    replayed = _normalize(tmp_path, "replayed.parquet", *camera, "--camera", "replay")
    assert replayed.frame_count == held.frame_count == 10
    for i in range(10):
        h = transforms[i % len(SHIFTS)]  # 10 source frames over a 7-frame camera path: it goes round
        present = held.keypoints[i, :, 2] > 0
        back = np.c_[replayed.keypoints[i, present, :2], np.ones(int(present.sum()))] @ h.T
        np.testing.assert_allclose(back[:, :2] / back[:, 2:], held.keypoints[i, present, :2], atol=1e-3)
        np.testing.assert_array_equal(replayed.keypoints[i, ~present], 0.0)
    # Replay needs the camera table: one line.
    result = run_edn("normalize", "--source-poses", tmp_path / "source.parquet", "--source-stats",
                     tmp_path / "source.json", "--target-stats", tmp_path / "target.json", "--output",
                     tmp_path / "x.parquet", "--camera", "replay")
    assert result.returncode != 0 and not (tmp_path / "x.parquet").exists()
    assert result.stderr.strip().splitlines()[-1].startswith("edn normalize: error: --camera replay replays the "
                                                               "target's camera path")


def test_a_still_camera_changes_nothing(tmp_path: Path) -> None:
    _, _, _ = _target(tmp_path)
    write_camera_table(tmp_path / "still.csv", [(0, 0)] * len(SHIFTS))
    plain = _normalize(tmp_path, "plain.parquet", "--target-stats", tmp_path / "target.json")
    for view in ("reference", "replay"):
        still = _normalize(tmp_path, f"still_{view}.parquet", "--target-stats", tmp_path / "target.json",
                           "--target-poses", tmp_path / "target.parquet", "--target-camera", tmp_path / "still.csv",
                           "--camera", view)
        np.testing.assert_array_equal(still.keypoints, plain.keypoints)


def _synthesized(plate: np.ndarray, count: int, plates=None) -> tuple[np.ndarray, list]:
    """A tiny untrained compositing generator's frames of random labels, windows moving right."""
    torch.manual_seed(0)
    height, width = plate.shape[:2]
    models = FrameGenerator(generator=build_generator(PRESETS["tiny"], "global", compositing=True).eval(),
                            plate=plate_tensor(plate))
    labels = np.random.default_rng(2).integers(0, 256, (count, height, width, 3), dtype=np.uint8)
    windows = np.array([(2 * t, 0, 2 * t + 32, 32) for t in range(count)], np.int32)
    index = LabelIndex(has_body=np.ones(count, bool), face_boxes=np.zeros((count, 4), np.int32),
                       has_face=np.zeros(count, bool), windows=windows)
    out = np.zeros_like(labels)
    synthesize_sequence(models, labels, index, out, Runtime(torch.device("cpu")), progress=False, plates=plates)
    return out, [tuple(w) for w in windows]


def test_replayed_synthesis_draws_each_frame_over_its_cameras_plate(tmp_path: Path) -> None:
    paths = write_moving_subject(tmp_path, frames=6)
    from edn.background.plate import read_plate, read_plate_report

    report = read_plate_report(paths["plate_report"])
    plates = read_frame_plates(paths["mosaic"], paths["camera"], report.reference_origin, report.frame_size)
    plate = read_plate(paths["plate"])
    height, width = plate.shape[:2]
    held, windows = _synthesized(plate, 9)
    replayed, _ = _synthesized(plate, 9, plates)
    for i, (x0, y0, x1, y1) in enumerate(windows):
        outside = np.ones((height, width), bool)
        outside[y0:y1, x0:x1] = False
        np.testing.assert_array_equal(held[i][outside], plate[outside])  # the reference view, held still
        np.testing.assert_array_equal(replayed[i][outside], plates(i % 6)[outside])  # target frame i mod 6's
    assert not np.array_equal(plates(0), plate)
    # A camera path of identity transforms replays the plate itself, bit for bit.
    still = FramePlates(plate, (0, 0), camera_from(np.repeat(np.eye(3)[None], 6, axis=0), None, (width, height)))
    np.testing.assert_array_equal(_synthesized(plate, 9, still)[0], held)


@pytest.mark.parametrize("view", ["reference", "replay"])
def test_the_workflow_passes_the_camera(tmp_path: Path, view: str) -> None:
    config = copy.deepcopy(demo_config())
    config["synthesis"]["camera"] = view
    result = run_snakemake(tmp_path, config, "--dry-run", "--printshellcmds", "results/transfer/dancer_to_juggler.mp4")
    assert result.returncode == 0, result.output
    normalize = next(line for line in result.output.splitlines() if " normalize --source-poses" in line)
    assert "--target-camera results/background/juggler.camera.csv" in normalize and f"--camera {view}" in normalize
    synthesize = next(line for line in result.output.splitlines() if " synthesize --labels" in line)
    assert f"--camera {view}" in synthesize
    assert ("--mosaic results/background/juggler.mosaic.png" in synthesize) == (view == "replay")

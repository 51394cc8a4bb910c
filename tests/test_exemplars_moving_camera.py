"""Warped exemplars on a target whose camera moves (issue 25 with issue 24's exemplars): the person warped from
training frame s to a pose of target frame t is drawn over the plate in frame t's own camera (the mosaic warped
into it, edn.background.camera.FramePlates), by ``edn pose-warp --heldout-only`` (the pose_warp method's held-out
frames) and ``edn training-exemplars``, as training and evaluation draw that frame. A still camera, or no camera
files, draws over the one plate as before; a transfer's poses in the reference view too."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from edn.background.camera import FramePlates, read_camera
from edn.background.plate import PlateReport, read_plate
from edn.core.atomic import write_json
from edn.core.options import first_heldout_frame
from edn.labels.preview import write_png
from edn.pose.keypoints import PoseSequence, read_pose_table, write_pose_table
from edn.pose.skeleton import Body
from helpers import run_edn
from test_exemplars import RIGHT_FOREARM_AND_HAND, SIZE, draw_figure, figure_pose, turned
from training_data import write_camera_table, write_moving_background

FRAMES = 10
HOLDOUT = "0.3"  # frames 7, 8 and 9 held out
REFERENCE = 5


def _shift(t: int) -> tuple[int, int]:
    """Frame t's pixel (x, y) is the reference view's (x + dx, y + dy): a pan of 3 px a frame, 1 px down every
    other frame."""
    return 3 * (t - REFERENCE), t // 2 - REFERENCE // 2


def _panning_target(directory: Path) -> dict[str, Path]:
    """The figure of tests/test_exemplars.py waving its forearm, filmed by a camera panning over a textured
    wall (the mosaic), with what the plate stage writes for it: the reference view's plate, the mosaic, the
    camera table and a report of a camera that moves over a background that holds still."""
    width, height = SIZE
    shifts = [_shift(t) for t in range(FRAMES)]
    low, high = np.min(shifts, axis=0), np.max(shifts, axis=0)
    origin = (int(-low[0]), int(-low[1]))
    mosaic_size = (width + int(high[0] - low[0]), height + int(high[1] - low[1]))
    rng = np.random.default_rng(3)
    wall = cv2.GaussianBlur(rng.uniform(0, 255, (mosaic_size[1], mosaic_size[0], 3)).astype(np.float32), (0, 0), 2.0)
    wall = np.clip((wall - wall.mean()) * 4 + 128, 0, 255).astype(np.uint8)  # every pixel of the pan shows
    poses = np.stack([turned(figure_pose(), Body.R_ELBOW, RIGHT_FOREARM_AND_HAND, 12.0 * t) for t in range(FRAMES)])
    frames = np.empty((FRAMES, height, width, 3), np.uint8)
    masks = np.empty((FRAMES, height, width), np.uint8)
    for t, (dx, dy) in enumerate(shifts):
        person, masks[t] = draw_figure(poses[t])
        seen = wall[origin[1] + dy:origin[1] + dy + height, origin[0] + dx:origin[0] + dx + width]
        frames[t] = np.where(masks[t][..., None] > 0, person, seen)
    paths = {name: directory / f"{name}.npy" for name in ("frames", "masks")}
    np.save(paths["frames"], frames)
    np.save(paths["masks"], masks)
    paths["poses"] = directory / "poses.parquet"
    write_pose_table(paths["poses"], PoseSequence(poses.astype(np.float32), SIZE, "synthetic"))
    paths.update(write_moving_background(directory, wall, origin, SIZE, shifts, reference=REFERENCE,
                                         camera_residual=30.0))
    return paths


def _camera_args(paths: dict[str, Path]) -> list:
    return ["--mosaic", paths["mosaic"], "--camera", paths["camera"], "--plate-report", paths["plate_report"]]


def _frame_plates(paths: dict[str, Path]) -> FramePlates:
    report = PlateReport.from_json(json.loads(paths["plate_report"].read_text()))
    return FramePlates(read_plate(paths["mosaic"]), report.reference_origin, read_camera(paths["camera"], SIZE),
                       report.content_box)


def _away_from_person(mask: np.ndarray, margin: int = 15) -> np.ndarray:
    """bool [H, W]: farther than ``margin`` px from the person of ``mask``, where the warped person (drawn on
    that frame's own pose) cannot reach: the background alone."""
    return cv2.dilate(mask, np.ones((2 * margin + 1, 2 * margin + 1), np.uint8)) == 0


def _pose_warp(paths: dict[str, Path], output: Path, *extra) -> None:
    result = run_edn("pose-warp", "--frames", paths["frames"], "--masks", paths["masks"], "--poses", paths["poses"],
                     "--plate", paths["plate"], "--holdout-fraction", HOLDOUT, "--output", output,
                     "--validity", output.with_suffix(".validity.npy"), "--exemplars", output.with_suffix(".csv"),
                     *extra)
    assert result.returncode == 0, result.stderr


def test_held_out_frames_are_drawn_over_the_plate_in_their_own_camera(tmp_path: Path) -> None:
    paths = _panning_target(tmp_path)
    plates, plate = _frame_plates(paths), read_plate(paths["plate"])
    real, masks = np.load(paths["frames"]), np.load(paths["masks"])
    moving, still = tmp_path / "moving.npy", tmp_path / "still.npy"
    _pose_warp(paths, moving, "--requested", paths["poses"], "--heldout-only", *_camera_args(paths))
    _pose_warp(paths, still, "--requested", paths["poses"], "--heldout-only")
    first = first_heldout_frame(FRAMES, float(HOLDOUT))
    drawn, before = np.load(moving), np.load(still)
    assert drawn.shape == before.shape == (FRAMES - first, SIZE[1], SIZE[0], 3)
    # The same exemplars, the same validity: only the background under the person changes.
    assert pd.read_csv(moving.with_suffix(".csv")).equals(pd.read_csv(still.with_suffix(".csv")))
    assert (pd.read_csv(moving.with_suffix(".csv"))["exemplar"] < first).all()
    np.testing.assert_array_equal(np.load(moving.with_suffix(".validity.npy")),
                                  np.load(still.with_suffix(".validity.npy")))
    for i, t in enumerate(range(first, FRAMES)):
        away = _away_from_person(masks[t])
        assert away.mean() > 0.4
        # Away from the person: the plate in frame t's camera, which is frame t's own background ...
        np.testing.assert_array_equal(drawn[i][away], plates(t)[away])
        assert np.abs(drawn[i][away].astype(int) - real[t][away]).mean() < 2.0
        # ... where the one plate of the reference view (what was drawn before) is another part of the wall.
        np.testing.assert_array_equal(before[i][away], plate[away])
        assert np.abs(before[i][away].astype(int) - real[t][away]).mean() > 20.0
        # Inside the person: the exemplar's own pixels, whatever the background (but for the soft edges of
        # parts that moved, where the plate shows through).
        inside = cv2.erode(masks[t], np.ones((5, 5), np.uint8)) > 0
        assert inside.sum() > 100
        assert (drawn[i][inside] == before[i][inside]).all(axis=-1).mean() > 0.95
        assert np.abs(drawn[i][inside].astype(int) - plates(t)[inside]).mean() > 20.0


def test_a_still_camera_draws_byte_for_byte_as_without_the_camera_files(tmp_path: Path) -> None:
    paths = _panning_target(tmp_path)
    write_camera_table(paths["camera"], [(0, 0)] * FRAMES)
    write_png(paths["mosaic"], read_plate(paths["plate"]))
    write_json(paths["plate_report"], PlateReport(
        subject="still", frame_size=SIZE, frames_used=FRAMES, camera_residual=1.0, max_camera_residual=6.0,
        static=True, filled_fraction=0.0, person_fraction=0.1, registered_residual=1.0, motion_model="identity",
        reference_frame=REFERENCE, registered_frames=FRAMES, mosaic_size=SIZE).to_json())
    for command, extra in (("pose-warp", ("--requested", paths["poses"], "--heldout-only")),
                           ("training-exemplars", ("--no-progress",))):
        outputs = {}
        for name, camera in (("with", _camera_args(paths)), ("without", [])):
            out = tmp_path / f"{command}-{name}.npy"
            result = run_edn(command, "--frames", paths["frames"], "--masks", paths["masks"], "--poses",
                             paths["poses"], "--plate", paths["plate"], "--holdout-fraction", HOLDOUT, *extra,
                             "--output", out, "--validity", out.with_suffix(".validity.npy"), *camera)
            assert result.returncode == 0, result.stderr
            outputs[name] = out
        for suffix in (".npy", ".validity.npy"):
            assert outputs["with"].with_suffix(suffix).read_bytes() == \
                outputs["without"].with_suffix(suffix).read_bytes(), (command, suffix)
        # And that is the one plate of every frame, away from the person.
        masks, plate = np.load(paths["masks"]), read_plate(paths["plate"])
        drawn = np.load(outputs["without"])
        first = first_heldout_frame(FRAMES, float(HOLDOUT)) if command == "pose-warp" else 0
        for i in range(len(drawn)):  # training exemplars: row c * T + t is frame t's choice c
            away = _away_from_person(masks[(first + i) % FRAMES])
            np.testing.assert_array_equal(drawn[i][away], plate[away])


def test_training_exemplars_are_drawn_over_each_frames_own_plate(tmp_path: Path) -> None:
    paths = _panning_target(tmp_path)
    plates, real, masks = _frame_plates(paths), np.load(paths["frames"]), np.load(paths["masks"])
    out = tmp_path / "training.npy"
    result = run_edn("training-exemplars", "--frames", paths["frames"], "--masks", paths["masks"], "--poses",
                     paths["poses"], "--plate", paths["plate"], "--holdout-fraction", HOLDOUT, "--exemplar-gap", "1",
                     "--exemplar-choices", "2", "--output", out, "--validity", tmp_path / "validity.npy",
                     "--exemplars", tmp_path / "table.csv", "--no-progress", *_camera_args(paths))
    assert result.returncode == 0, result.stderr
    drawn, table = np.load(out), pd.read_csv(tmp_path / "table.csv")
    assert len(drawn) == 2 * FRAMES and (np.abs(table["exemplar"] - table["frame"]) > 1).all()
    for row in range(len(drawn)):  # choice c of frame t is row c * T + t, over frame t's own plate
        t = row % FRAMES
        away = _away_from_person(masks[t])
        np.testing.assert_array_equal(drawn[row][away], plates(t)[away])
        assert np.abs(drawn[row][away].astype(int) - real[t][away]).mean() < 2.0


def test_a_transfer_is_drawn_in_the_reference_view_unless_it_replays_the_camera(tmp_path: Path) -> None:
    paths = _panning_target(tmp_path)
    plates, plate, masks = _frame_plates(paths), read_plate(paths["plate"]), np.load(paths["masks"])
    own = read_pose_table(paths["poses"])
    rows = np.concatenate([own.keypoints, own.keypoints[:2]])  # past the video's end: round again
    for view in ("reference", "replay"):
        requested = tmp_path / f"{view}.parquet"
        extra = {"camera": "replay"} if view == "replay" else {}
        write_pose_table(requested, PoseSequence(rows, SIZE, "synthetic", extra=extra))
        out = tmp_path / f"{view}.npy"
        _pose_warp(paths, out, "--requested", requested, *_camera_args(paths))
        drawn = np.load(out)
        assert len(drawn) == len(rows) == FRAMES + 2
        for i in range(len(rows)):
            away = _away_from_person(masks[i % FRAMES])
            expected = plates(i % FRAMES) if view == "replay" else plate
            np.testing.assert_array_equal(drawn[i][away], expected[away])


def test_the_camera_files_are_checked_in_one_line(tmp_path: Path) -> None:
    paths = _panning_target(tmp_path)
    out = tmp_path / "out.npy"
    common = ("pose-warp", "--frames", paths["frames"], "--masks", paths["masks"], "--poses", paths["poses"],
              "--plate", paths["plate"], "--requested", paths["poses"], "--heldout-only", "--output", out)
    alone = run_edn(*common, "--mosaic", paths["mosaic"])
    assert alone.returncode == 1
    assert alone.error_lines == ["edn pose-warp: error: --mosaic, --camera and --plate-report go together (the "
                                 "outputs of edn background)"]
    short = tmp_path / "short.csv"
    write_camera_table(short, [_shift(t) for t in range(FRAMES - 2)])
    wrong = run_edn(*common, "--mosaic", paths["mosaic"], "--camera", short, "--plate-report", paths["plate_report"])
    assert wrong.returncode == 1
    assert wrong.error_lines == [f"edn pose-warp: error: camera table {str(short)!r}: {FRAMES - 2} frames, the "
                                 f"target has {FRAMES} (made for another video?)"]
    other = tmp_path / "other.parquet"
    own = read_pose_table(paths["poses"])
    write_pose_table(other, own.replace(own.keypoints[:6]))
    fewer = run_edn(*common[:-5], "--requested", other, "--heldout-only", "--output", out, *_camera_args(paths))
    assert fewer.returncode == 1
    assert fewer.error_lines == [f"edn pose-warp: error: requested poses {str(other)!r}: 6 frames, the target has "
                                 f"{FRAMES}: with a camera that moves, --heldout-only draws the target's own poses, "
                                 "each over the plate in its frame's camera"]
    assert not out.exists()

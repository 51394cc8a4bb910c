"""A registered camera in what the user reads: the one-line fallback message (edn.background.plate), the camera
section of the evaluation page (edn.evaluation.report) and evaluation on a moving camera's held-out frames."""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np
import pytest

from edn.background.plate import PlateReport, fallback_message, plate_message, read_plate_report
from edn.background.plate import read_plate
from edn.core.errors import EdnError
from edn.core.html_page import Item, write_page
from edn.evaluation.evaluate import nearest_neighbour_frames
from edn.evaluation.registered import read_target_view, registered_nearest_neighbours
from edn.evaluation.report import camera_markdown, drawn_by, write_camera_summary
from edn.labels.label_store import LabelIndex, write_label_index
from edn.pose.keypoints import PoseSequence
from helpers import run_edn
from training_data import build_and_write_plate


def _report(**changes) -> PlateReport:
    """A tiny plate report: a target whose registered frames still differ from the mosaic by 9.4."""
    values = dict(subject="fountain", frame_size=(128, 80), frames_used=40, camera_residual=14.25,
                  max_camera_residual=6.0, static=False, filled_fraction=0.01, person_fraction=0.1,
                  registered_residual=9.43, background_moves=True, camera_motion=7.5, motion_model="similarity",
                  reference_frame=20, registered_frames=40, mosaic_size=(140, 84), reference_origin=(6, 2))
    return PlateReport(**{**values, **changes})


def test_the_fallback_is_one_line_naming_the_target_the_residual_and_what_to_do() -> None:
    line = fallback_message(_report())
    assert "\n" not in line
    assert line.startswith("target fountain: the background moves (residual 9.4 above 6.0 after registering 40 "
                           "frames to frame 20 by a similarity, 14.2 before)")
    for remedy in ("holds still", "raise background.max_camera_residual", "training.method: paper"):
        assert remedy in line
    # The plate stage logs the same line, as a warning; a still camera says so instead of the registration.
    assert plate_message(_report()) == (logging.WARNING, line)
    still = fallback_message(_report(motion_model="identity", registered_residual=12.0, camera_residual=12.0))
    assert "(residual 12.0 above 6.0 with the camera still, 12.0 before)" in still


@pytest.mark.parametrize("residual", [2.5, float("inf")])
def test_too_few_registered_frames_is_said_as_such(residual) -> None:
    line = fallback_message(_report(registered_residual=residual, registered_frames=3))
    assert "\n" not in line and line.startswith("target fountain: the background moves (only 3 frames could be "
                                                "registered to frame 20: ")
    assert ("residual 2.5" in line) == (residual == 2.5) and "against the limit 6.0" in line and "inf" not in line


def test_a_background_that_holds_still_is_no_fallback() -> None:
    level, line = plate_message(_report(background_moves=False, static=True, registered_residual=1.2))
    assert level == logging.INFO and "the camera moves up to 7.5 px" in line and "whole frame" not in line


# -- the camera section of the evaluation page --

SIZE = (96, 64)
PLATE_OPTIONS = dict(grow_px=1, min_observations=2, max_frames=200, max_camera_residual=6.0)


def _texture(height: int, width: int, seed: int) -> np.ndarray:
    """Blurred colour noise stretched to 0-255: detail everywhere, smooth enough to interpolate."""
    noise = np.random.default_rng(seed).integers(0, 256, (height, width, 3)).astype(np.uint8)
    return cv2.normalize(cv2.GaussianBlur(noise, (0, 0), 1.2), None, 0, 255, cv2.NORM_MINMAX)


def translated_scene(offsets: list[tuple[int, int]], seed: int = 3):
    """A still scene filmed by a camera shifted by whole pixels ``offsets`` (x, y), with a red square (the
    person, masked) walking across: (frames uint8 [T, H, W, 3], masks uint8 [T, H, W], scene)."""
    width, height = SIZE
    scene = _texture(height + 40, width + 40, seed)
    count = len(offsets)
    frames = np.stack([scene[20 + dy:20 + dy + height, 20 + dx:20 + dx + width] for dx, dy in offsets])
    masks = np.zeros((count, height, width), np.uint8)
    for t in range(count):
        x = 4 + 9 * t
        frames[t, 16:48, x:x + 16] = (220, 30, 30)
        masks[t, 16:48, x:x + 16] = 255
    return frames, masks, scene


PAN = [(-4 + t, t // 2) for t in range(9)]  # 8 px right, 4 px down


def _cells(markdown: str) -> dict[str, str]:
    rows = [line.strip("|").split("|") for line in markdown.splitlines() if line.startswith("| ")]
    return {name.strip(): value.strip() for name, value in rows[1:]}


def test_the_camera_section_of_a_panning_camera(tmp_path) -> None:
    frames, masks, _ = translated_scene(PAN)
    _, paths = build_and_write_plate(tmp_path, frames, masks, "pan", PLATE_OPTIONS)
    report = read_plate_report(paths["report"])
    write_camera_summary(paths["report"], paths["camera"], "composite", markdown_out=tmp_path / "camera.md",
                         plot_out=tmp_path / "camera.png")
    cells = _cells((tmp_path / "camera.md").read_text())
    assert report.motion_model != "identity" and cells["motion model"] == report.motion_model
    assert cells["camera moved"].startswith("yes, up to ")
    assert cells["residual before registration"] == f"{report.camera_residual:.2f}"
    assert cells["residual after registration"] == f"{report.registered_residual:.2f}"
    assert report.registered_residual < report.max_camera_residual < report.camera_residual
    assert cells["background moves"] == "no"
    assert cells["drawn by"].startswith(f"{report.method}: ")
    image = cv2.imread(str(tmp_path / "camera.png"))
    assert image is not None and image.shape[0] > 100 and image.shape[1] > 300
    # The evaluation page embeds the table and the plot.
    write_page(tmp_path / "page.html", "pan", [Item("table", tmp_path / "camera.md"),
                                               Item("image", tmp_path / "camera.png")])
    page = (tmp_path / "page.html").read_text()
    assert "<td>residual after registration</td>" in page and "data:image/png;base64," in page


def test_which_method_drew_the_target_and_why() -> None:
    moving = _report(background_moves=False, static=True, registered_residual=1.2)
    assert drawn_by(moving, "composite") == ("composite", "the person drawn over the plate, the plate warped into "
                                                          "each frame's camera")
    still = _report(background_moves=False, static=True, registered_residual=1.2, motion_model="identity")
    assert drawn_by(still, "composite") == ("composite", "the person drawn over the plate")
    method, why = drawn_by(_report(), "composite")
    assert method == "paper" and why.startswith("the paper's whole frame, as a fallback: the background moves after "
                                                "registration (residual 9.43 above the limit 6.00)")
    assert drawn_by(_report(), "paper")[1].endswith("as configured (training.method: paper)")
    # A fallback puts its one line under the table; a target drawn as configured has no note.
    assert f"- {fallback_message(_report())}" in camera_markdown(_report(), "composite")
    assert "\n- " not in camera_markdown(moving, "composite") + camera_markdown(_report(), "paper")


def test_the_camera_summary_command_and_its_bad_input(tmp_path) -> None:
    frames, masks, _ = translated_scene([(0, 0)] * 6)
    _, paths = build_and_write_plate(tmp_path, frames, masks, "still", PLATE_OPTIONS)
    outputs = ["--output-markdown", tmp_path / "c.md", "--output-plot", tmp_path / "c.png"]
    result = run_edn("camera-summary", "--plate-report", paths["report"], "--camera", paths["camera"],
                     "--method", "composite", *outputs)
    assert result.returncode == 0, result.stderr
    cells = _cells((tmp_path / "c.md").read_text())
    assert cells["motion model"] == "identity" and cells["camera moved"] == "no"
    assert cells["drawn by"] == "composite: the person drawn over the plate"
    (tmp_path / "c.md").unlink()
    missing = run_edn("camera-summary", "--plate-report", tmp_path / "none.json", "--camera", paths["camera"],
                      *outputs)
    assert missing.returncode != 0 and len(missing.error_lines) == 1
    assert "none.json" in missing.error_lines[0] and "file not found" in missing.error_lines[0]
    assert not (tmp_path / "c.md").exists()


# -- evaluation on a registered target: everything seen from each held-out frame's own camera --

#: Whole-pixel camera offsets (x, y) of a pan with a jump at the held-out end, the person's left edge in the
#: scene, and the frames held out. Frame 8 shows the person where training frame 3 had them in the scene,
#: but where training frame 5 had them in the picture; frame 9 likewise frame 6 and frame 5.
OFFSETS = [(t - 4, 0) for t in range(8)] + [(-15, 1), (6, 0)]
PERSON_X = [30 + 8 * t for t in range(8)] + [30 + 8 * 3, 30 + 8 * 6]
FIRST_HELDOUT = 8


def registered_target(tmp_path: Path):
    """The scene filmed through OFFSETS with a red person (masked) at PERSON_X: (frames, masks, scene, paths of
    the plate stage's outputs, poses in each frame's pixels)."""
    from synthetic_poses import standing_pose

    width, height = SIZE
    scene = _texture(height + 40, width + 40, 11)
    frames = np.stack([scene[20 + dy:20 + dy + height, 20 + dx:20 + dx + width] for dx, dy in OFFSETS])
    masks = np.zeros(frames.shape[:3], np.uint8)
    keypoints = np.zeros((len(frames), *standing_pose(0, 0, 1).shape), np.float32)
    for t, ((dx, dy), x) in enumerate(zip(OFFSETS, PERSON_X)):
        left, top = x - (20 + dx), 14 - dy  # the person's box in frame t's pixels
        frames[t, top:top + 36, left:left + 12] = (220, 30, 30)
        masks[t, top:top + 36, left:left + 12] = 255
        keypoints[t] = standing_pose(left + 6, top + 34, 30, face=False, hands=False)
    # One observation is enough: the held-out jump shows a strip of the scene that no other frame saw.
    _, paths = build_and_write_plate(tmp_path, frames, masks, "pan", PLATE_OPTIONS, min_observations=1)
    return frames, masks, scene, paths, PoseSequence(keypoints, SIZE, "synthetic")


def _background(scene: np.ndarray, t: int) -> np.ndarray:
    """Frame t's true background: the scene through its camera, nobody in front."""
    (dx, dy), (width, height) = OFFSETS[t], SIZE
    return scene[20 + dy:20 + dy + height, 20 + dx:20 + dx + width]


def test_the_background_baseline_is_the_plate_seen_from_each_heldout_frames_camera(tmp_path) -> None:
    frames, masks, scene, paths, _ = registered_target(tmp_path)
    report = read_plate_report(paths["report"])
    assert not report.background_moves and report.motion_model != "identity"
    view = read_target_view(paths["mosaic"], paths["camera"], paths["report"], frames)
    assert not view.still
    plate = read_plate(paths["plate"])
    inner = np.s_[3:-3, 3:-3]  # the border, where a warp interpolates with what no frame saw
    for t in range(FIRST_HELDOUT, len(frames)):
        truth = _background(scene, t).astype(np.float32)
        seen = view.plate(t).astype(np.float32)
        assert np.abs(seen - truth)[inner].mean() < 1.0
        # The reference view's plate is not this frame's background: the camera jumped.
        assert np.abs(plate.astype(np.float32) - truth)[inner].mean() > 20.0


def test_the_nearest_neighbour_of_a_registered_target_is_chosen_and_seen_in_the_reference_view(tmp_path) -> None:
    frames, masks, scene, paths, poses = registered_target(tmp_path)
    view = read_target_view(paths["mosaic"], paths["camera"], paths["report"], frames)
    drawn, chosen = registered_nearest_neighbours(poses, frames, FIRST_HELDOUT, view)
    assert chosen.tolist() == [3, 6]  # the same place in the scene
    # The negative control: poses compared in each frame's pixels pick where the person sits in the picture.
    as_filmed = nearest_neighbour_frames(poses, frames, FIRST_HELDOUT)
    assert np.array_equal(as_filmed[0], frames[5]) and np.array_equal(as_filmed[1], frames[5])
    inner = np.s_[3:-3, 3:-3]
    for i, source in enumerate(chosen):
        t = FIRST_HELDOUT + i
        # What frame t's camera would have seen with the person where frame `source` had them.
        expected = _background(scene, t).copy()
        (dx, dy), x = OFFSETS[t], PERSON_X[source]
        expected[14 - dy:50 - dy, x - 20 - dx:x - 8 - dx] = (220, 30, 30)
        assert np.abs(drawn[i].astype(np.float32) - expected)[inner].mean() < 1.0
        assert np.array_equal(drawn[i][masks[t] > 0][:, 0] > 150, np.ones(int((masks[t] > 0).sum()), bool))


def test_a_still_camera_is_evaluated_as_before_and_a_wrong_camera_table_is_one_line(tmp_path) -> None:
    frames, masks, _ = translated_scene([(0, 0)] * 6)
    _, paths = build_and_write_plate(tmp_path, frames, masks, "still", PLATE_OPTIONS)
    view = read_target_view(paths["mosaic"], paths["camera"], paths["report"], frames)
    assert view.still
    with pytest.raises(EdnError) as error:
        read_target_view(paths["mosaic"], paths["camera"], paths["report"], frames[:4])
    assert "still.camera.csv" in str(error.value) and "6 frames, the target has 4" in str(error.value)


@pytest.mark.slow  # edn evaluate end to end, three times (torch and the metrics' networks each time)
def test_edn_evaluate_draws_and_scores_a_moving_camera_in_each_frames_own_camera(tmp_path) -> None:
    import torch

    from edn.core.checkpoint import Checkpoint, save_checkpoint
    from edn.core.presets import PRESETS
    from edn.ingest.frames import load_frames
    from edn.models import build_generator
    from edn.pose.keypoints import write_pose_table

    frames, masks, scene, paths, poses = registered_target(tmp_path)
    count, (width, height) = len(frames), SIZE
    np.save(tmp_path / "frames.npy", frames)
    np.save(tmp_path / "labels.npy", np.zeros_like(frames))
    write_pose_table(tmp_path / "poses.parquet", poses)
    windows = np.array([[40, 0, 72, 64]] * count, np.int32)  # where the generator draws: the rest is the plate
    write_label_index(tmp_path / "index.csv", LabelIndex(
        has_body=np.ones(count, bool), face_boxes=np.zeros((count, 4), np.int32), has_face=np.zeros(count, bool),
        windows=windows))
    torch.manual_seed(0)
    tiny = PRESETS["tiny"]
    save_checkpoint(tmp_path / "global.pt", Checkpoint(
        stage="global", step=0, preset=tiny, options={"image_size": [width, height], "compositing": True},
        models={"generator": build_generator(tiny, "global", compositing=True).state_dict()}))
    camera = ["--mosaic", paths["mosaic"], "--camera", paths["camera"], "--plate-report", paths["report"]]

    def evaluate(name: str, *method: str, with_camera: bool = True) -> np.ndarray:
        result = run_edn("evaluate", "--method", name, *method, "--frames", tmp_path / "frames.npy",
                         "--poses", tmp_path / "poses.parquet", "--labels", tmp_path / "labels.npy",
                         "--index", tmp_path / "index.csv", "--holdout-fraction", "0.2", "--plate", paths["plate"],
                         *(camera if with_camera else []), "--no-pose-fidelity", "--threads", "1",
                         "--generated", tmp_path / f"{name}.npy", "--output", tmp_path / f"{name}.csv", timeout=900)
        assert result.returncode == 0, result.stderr
        return load_frames(tmp_path / f"{name}.npy")

    view = read_target_view(paths["mosaic"], paths["camera"], paths["report"], frames)
    plates = np.stack([view.plate(t) for t in range(FIRST_HELDOUT, count)])
    outside = np.ones((height, width), bool)
    outside[:, 40:72] = False
    drawn = evaluate("ts", "--generator", tmp_path / "global.pt")
    np.testing.assert_array_equal(drawn[:, outside], plates[:, outside])  # over each frame's own plate
    as_reference = evaluate("ts_reference", "--generator", tmp_path / "global.pt", with_camera=False)
    plate = read_plate(paths["plate"])
    assert np.array_equal(as_reference[0][outside], plate[outside])  # without the camera: the reference plate
    assert not np.array_equal(as_reference[0][outside], drawn[0][outside])
    np.testing.assert_array_equal(evaluate("background", "--baseline", "background"), plates)
    np.testing.assert_array_equal(evaluate("nearest_neighbour", "--baseline", "nearest_neighbour"),
                                  registered_nearest_neighbours(poses, frames, FIRST_HELDOUT, view)[0])

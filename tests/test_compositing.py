"""The composite method: the background plate, the person's window, compositing, unrolled temporal smoothing."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from edn.background.plate import make_plate, read_plate_report
from edn.models.generation import FrameGenerator, generate_frames, label_tensor, plate_tensor, to_uint8_hwc
from edn.labels.label_store import LabelIndex, read_label_index
from edn.models import build_face_generator, build_generator
from edn.models.compositing import composite
from edn.labels.person_window import clamp_boxes_into, person_windows, window_size
from edn.core.presets import PRESETS
from edn.core.runtime import Runtime
from edn.training.data import Split, history_for_step
from helpers import DEMO, ffmpeg, run_edn
from edn.pose.keypoints import PoseSequence
from synthetic_poses import standing_pose

PLATE_OPTIONS = dict(grow_px=1, min_observations=3, max_frames=200, max_camera_residual=6.0)


def _scene(frames: int = 20, size: tuple[int, int] = (48, 32), seed: int = 0):
    """A static textured background and a 10x10 square moving across it: (frames, masks, background)."""
    width, height = size
    background = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    video = np.repeat(background[None], frames, axis=0)
    masks = np.zeros((frames, height, width), np.uint8)
    for t in range(frames):
        x = round(t * (width - 10) / (frames - 1))
        video[t, 11:21, x:x + 10] = (250, 20, 20)
        masks[t, 11:21, x:x + 10] = 255
    return video, masks, background


def test_the_plate_of_a_moving_square_is_the_background_behind_it() -> None:
    video, masks, background = _scene()
    plate, coverage, report = make_plate(video, masks, None, subject="square", **PLATE_OPTIONS)
    np.testing.assert_array_equal(plate, background)  # every pixel was seen without the square often enough
    assert report.static and report.camera_residual == 0.0 and report.filled_fraction == 0.0
    assert coverage.min() >= 3 and coverage.max() == len(video)


def test_pixels_the_person_always_covers_are_filled_and_marked() -> None:
    video, masks, background = _scene()
    video[:, 2:6, 2:6] = (0, 0, 255)  # something in front of one spot in every frame
    masks[:, 2:6, 2:6] = 255
    plate, coverage, report = make_plate(video, masks, None, subject="square", **PLATE_OPTIONS)
    near = np.zeros(coverage.shape, bool)
    near[1:7, 1:7] = True  # the spot and the pixels grow_px (1) around it
    hole = coverage == 0
    assert hole[2:6, 2:6].all() and hole[near].mean() > 0.8 and not hole[~near].any()
    assert report.filled_fraction == pytest.approx(hole.mean(), abs=1e-5)
    assert not (plate[hole] == (0, 0, 255)).all(axis=-1).any()  # inpainted from the background, not the blue
    np.testing.assert_array_equal(plate[~hole], background[~hole])


def test_a_moving_camera_is_detected() -> None:
    video, masks, background = _scene()
    panned = np.stack([np.roll(frame, 2 * t, axis=1) for t, frame in enumerate(video)])
    report = make_plate(panned, masks, None, subject="pan", **PLATE_OPTIONS)[2]
    assert not report.static and report.camera_residual > 20 * report.max_camera_residual / 6


def test_a_moving_camera_through_the_cli_says_so_and_the_target_draws_over_its_plate(tmp_path) -> None:
    from edn.core.options import TrainingOptions
    from edn.training.loop import Background, uses_compositing

    video = tmp_path / "pan.mp4"  # the juggler with the camera panning 3 px a frame (real MediaPipe segments him)
    ffmpeg("-i", DEMO / "target_juggler.mp4", "-t", "1.5", "-vf", "crop=960:540:'min(3*n,320)':90,scale=128:64",
           "-c:v", "libx264", "-pix_fmt", "yuv420p", video)
    assert run_edn("decode", "--video", video, "--frames", tmp_path / "f.npy", "--meta", tmp_path / "m.json",
                   "--width", "128", "--height", "64").returncode == 0
    labels = np.zeros_like(np.load(tmp_path / "f.npy"))
    np.save(tmp_path / "l.npy", labels)
    outputs = {name: tmp_path / f"plate{suffix}" for name, suffix in
               (("plate", ".png"), ("coverage", ".coverage.png"), ("report", ".json"), ("masks", ".masks.npy"))}
    result = run_edn("background", "--subject", "pan", "--frames", tmp_path / "f.npy", "--labels", tmp_path / "l.npy",
                     *[f"--{k}={v}" for k, v in outputs.items()])
    assert result.returncode == 0, result.stderr
    report = read_plate_report(outputs["report"])
    assert not report.static
    said = [line for line in result.stderr.splitlines() if "camera moves" in line]
    assert len(said) == 1 and "background plate of pan: the camera moves up to" in said[0]
    assert f"residual {report.camera_residual:.2f} before" in said[0] and "whole frame" not in said[0]
    options = TrainingOptions(stage="global", iterations=1)
    # Registered, the background holds still: the composite method draws over the plate in each frame's camera.
    assert not report.background_moves and report.method == "composite"
    assert uses_compositing(options, None, Background(outputs["plate"], outputs["report"], outputs["masks"]))
    assert not uses_compositing(options.replace(method="paper"), None, None)


def test_a_composite_with_mask_0_is_the_plate() -> None:
    generator_input = torch.Generator().manual_seed(0)
    person, plate = (torch.rand(1, 3, 8, 8, generator=generator_input) * 2 - 1 for _ in range(2))
    assert torch.equal(composite(person, torch.zeros(1, 1, 8, 8), plate), plate)
    assert torch.equal(composite(person, torch.ones(1, 1, 8, 8), plate), person)
    # The generator's own mask: its last bias pushed far negative, the mask channel is 0.
    torch.manual_seed(0)
    generator = build_generator(PRESETS["tiny"], "global", compositing=True)
    last = generator.body.to_image[1]
    with torch.no_grad():
        last.bias[3] = -100.0
    frame, mask = generator(torch.rand(1, 3, 16, 16), torch.zeros(1, 3, 16, 16), plate.repeat(1, 1, 2, 2))
    assert torch.equal(mask, torch.zeros_like(mask)) and torch.equal(frame, plate.repeat(1, 1, 2, 2))


def test_outside_the_window_every_frame_is_the_plate_exactly() -> None:
    torch.manual_seed(0)
    preset = PRESETS["tiny"]
    width, height, count = 64, 32, 6
    plate = np.random.default_rng(1).integers(0, 256, (height, width, 3), dtype=np.uint8)
    models = FrameGenerator(generator=build_generator(preset, "global", compositing=True).eval(),
                            face_generator=build_face_generator(preset).eval(), plate=plate_tensor(plate))
    labels = np.random.default_rng(2).integers(0, 256, (count, height, width, 3), dtype=np.uint8)
    windows = [(4 * t, 0, 4 * t + 32, 32) for t in range(count)]
    boxes = [(4 * t + 8, 4, 4 * t + 16, 12) if t % 2 else None for t in range(count)]
    frames = [to_uint8_hwc(f) for f in generate_frames(models, [label_tensor(x) for x in labels], boxes,
                                                   Runtime(torch.device("cpu")), windows=windows)]
    for frame, (x0, y0, x1, y1) in zip(frames, windows):
        outside = np.ones((height, width), bool)
        outside[y0:y1, x0:x1] = False
        np.testing.assert_array_equal(frame[outside], plate[outside])
        assert not np.array_equal(frame[y0:y1, x0:x1], plate[y0:y1, x0:x1])  # something is drawn inside
    with pytest.raises(ValueError, match="draws in the person's windows"):
        next(generate_frames(models, [label_tensor(labels[0])], [None], Runtime(torch.device("cpu"))))


def _poses_at(xs, ys, height=60.0, size=(256, 128)):
    keypoints = np.stack([standing_pose(x, y, height) for x, y in zip(xs, ys)]).astype(np.float32)
    return PoseSequence(keypoints=keypoints, frame_size=size, detector="synthetic")


def test_windows_follow_the_body_inside_the_frame() -> None:
    assert window_size(80.0, (256, 128), height_factor=1.25, aspect=0.625) == (96, 128)  # 100 -> 128, 80 -> 96
    assert window_size(300.0, (256, 128), height_factor=1.25, aspect=2.0) == (256, 128)  # never beyond the frame
    poses = _poses_at([40.0, 128.0, 250.0, 128.0], [100.0, 100.0, 100.0, 100.0])
    keypoints = poses.keypoints.copy()
    keypoints[3] = 0  # nobody in the last frame: it keeps the nearest body frame's window
    windows = person_windows(poses.replace(keypoints), (96, 96))
    body = poses.keypoints[0, :25]
    middle_y = (body[:, 1].min() + body[:, 1].max()) / 2
    assert windows[0].tolist() == [0, round(middle_y - 48), 96, round(middle_y - 48) + 96]  # moved inside, not shrunk
    assert windows[2, [0, 2]].tolist() == [256 - 96, 256]
    centre = (windows[1, 0] + windows[1, 2]) / 2
    assert abs(centre - 128) <= 1 and windows[3].tolist() == windows[2].tolist()
    boxes = clamp_boxes_into(np.array([[-10, 5, 6, 21], [250, 0, 266, 16], [100, 50, 116, 66]], np.int32),
                             np.array([[0, 10, 96, 106], [160, 0, 256, 96], [100, 40, 110, 50]], np.int32))
    assert boxes.tolist() == [[0, 10, 16, 26], [240, 0, 256, 16], [100, 40, 110, 50]]  # the last shrunk to fit


def test_training_and_transfer_labels_place_the_window_by_one_rule(tmp_path) -> None:
    """The target's labels and a transfer's are rendered by the same command with the target's statistics:
    the same window size, each placed on its own poses by the same rule."""
    from edn.pose.keypoints import write_pose_table
    from edn.normalize.subject_stats import compute_stats, write_stats

    target = _poses_at(np.linspace(60, 200, 12), np.linspace(100, 120, 12), height=80.0)
    source = _poses_at(np.linspace(200, 40, 9), np.full(9, 110.0), height=75.0)
    write_pose_table(tmp_path / "target.parquet", target)
    write_pose_table(tmp_path / "transfer.parquet", source)
    write_stats(tmp_path / "target.json", compute_stats(target, "target"))
    stats = compute_stats(target, "target")
    expected_size = window_size(stats.h_close, target.frame_size, height_factor=1.25, aspect=0.625)
    for name, poses in (("target", target), ("transfer", source)):
        result = run_edn("render", "--poses", tmp_path / f"{name}.parquet", "--labels", tmp_path / f"{name}.npy",
                         "--index", tmp_path / f"{name}.csv", "--window-stats", tmp_path / "target.json")
        assert result.returncode == 0, result.stderr
        index = read_label_index(tmp_path / f"{name}.csv")
        np.testing.assert_array_equal(index.windows, person_windows(poses, expected_size))
        inside = ((index.face_boxes[:, :2] >= index.windows[:, :2])
                  & (index.face_boxes[:, 2:] <= index.windows[:, 2:])).all()
        assert inside
    whole = run_edn("render", "--poses", tmp_path / "target.parquet", "--labels", tmp_path / "w.npy",
                    "--index", tmp_path / "w.csv")
    assert whole.returncode == 0 and (read_label_index(tmp_path / "w.csv").windows == [0, 0, 256, 128]).all()


def test_the_frames_drawn_before_a_pair_are_seeded_bodies_before_it() -> None:
    index = LabelIndex(has_body=np.array([True] * 6 + [False] + [True] * 13), face_boxes=np.zeros((20, 4), np.int32),
                       has_face=np.ones(20, bool))
    split = Split(pairs=np.arange(7, 15), first_heldout=16, frame_count=20)
    drawn = [history_for_step(split, index, 10, step, seed=0, most=3) for step in range(50)]
    assert {len(h) for h in drawn} == {0, 1, 2, 3}  # 0 included: some pairs start from the zero image
    assert all(h.stop == 10 for h in drawn)
    assert drawn == [history_for_step(split, index, 10, step, seed=0, most=3) for step in range(50)]  # resumable
    after_gap = {len(history_for_step(split, index, 8, step, seed=0, most=3)) for step in range(50)}
    assert after_gap == {0, 1}  # frame 6 has no body: nothing is drawn across it
    assert {len(history_for_step(split, index, 10, step, seed=0, most=0)) for step in range(9)} == {0}  # the paper


def test_a_composite_training_step_starts_the_pair_from_the_frames_drawn_before_it(tmp_path, perceptual_weights):
    from edn.background.plate import read_plate
    from edn.training.losses import PerceptualLoss
    from edn.training.perceptual import load_perceptual
    from edn.training.data import TrainingFrames
    from edn.training.main_stage import MainStageTrainer
    from training_data import write_subject

    paths = write_subject(tmp_path / "subject", size=(64, 32))
    data = TrainingFrames(paths["frames"], paths["labels"], paths["index"], downsample=1, size_multiple=4,
                          plate=read_plate(paths["plate"]), masks_path=paths["masks"])
    torch.manual_seed(0)
    trainer = MainStageTrainer("global", PRESETS["tiny"], PerceptualLoss(load_perceptual(perceptual_weights,
                               "vgg16_hed")), Runtime(torch.device("cpu")), 2e-4, plate=data.plate, mask_weight=10.0)
    previous = []  # the previous-frame channels of every generator call (the plate follows them)
    trainer.generator.body.register_forward_pre_hook(lambda module, inputs: previous.append(inputs[1][:, :3].clone()))
    losses = trainer.step(data.sample(5), data.sample(6), [data.sample(3), data.sample(4)])
    assert len(previous) == 4  # two frames drawn before the pair, then the pair
    assert not previous[0].any() and all(p.any() for p in previous[1:])  # zeros only at the very start
    assert losses["g_mask"] > 0 and np.isfinite(losses["g_total"])
    assert "g_colour" not in losses  # colour_weight 0: no such term
    previous.clear()
    trainer.step(data.sample(5), data.sample(6))
    assert len(previous) == 2 and not previous[0].any()  # no history: the paper's pair from the zero image
    torch.manual_seed(0)
    coloured = MainStageTrainer("global", PRESETS["tiny"], trainer.perceptual, Runtime(torch.device("cpu")), 2e-4,
                                plate=data.plate, mask_weight=10.0, colour_weight=20.0)
    losses = coloured.step(data.sample(5), data.sample(6))
    assert losses["g_colour"] > 0
    weighted = {"g_gan": 1, "g_feature_matching": 10, "g_perceptual": 10, "g_mask": 10, "g_colour": 20}
    assert losses["g_total"] == pytest.approx(sum(w * losses[k] for k, w in weighted.items()), rel=1e-5)

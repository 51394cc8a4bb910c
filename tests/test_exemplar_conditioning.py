"""The composite generator conditioned on the warped exemplar (option training.exemplar): its
input, the exemplars training pairs get, the checkpoint that records it, synthesis that rebuilds
it, and a resumed run that is still bit-equal to a straight one."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from edn.background.plate import read_plate
from edn.core.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from edn.core.options import first_heldout_frame
from edn.core.presets import PRESETS
from edn.exemplars.for_training import training_exemplars
from edn.ingest.frames import load_frames, load_masks
from edn.models import build_face_generator, build_generator
from edn.models.generation import load_frame_generator
from edn.pose.keypoints import PoseSequence, write_pose_table
from helpers import run_edn
from synthetic_poses import standing_pose
from test_training import _train_args
from training_data import resume_after_a_kill, write_subject

TINY = PRESETS["tiny"]


@pytest.mark.parametrize("kind", ["global", "local"])
def test_the_conditioned_generator_takes_four_more_channels_and_draws_the_requested_shape(kind: str) -> None:
    torch.manual_seed(0)
    conditioned = build_generator(TINY, kind, compositing=True, upsampling="resize", exemplar=True)
    plain = build_generator(TINY, kind, compositing=True, upsampling="resize")
    first = next(m for m in conditioned.modules() if isinstance(m, torch.nn.Conv2d))
    assert first.in_channels == 13
    assert next(m for m in plain.modules() if isinstance(m, torch.nn.Conv2d)).in_channels == 9
    height, width = 32, 48
    label = torch.rand(2, 3, height, width)
    previous, plate = torch.rand(2, 3, height, width) * 2 - 1, torch.rand(2, 3, height, width) * 2 - 1
    exemplar = torch.cat([torch.rand(2, 3, height, width) * 2 - 1, torch.rand(2, 1, height, width)], dim=1)
    with torch.no_grad():
        frame, mask = conditioned(label, previous, plate, exemplar)
        other, _ = conditioned(label, previous, plate, exemplar.flip(0))
    assert frame.shape == (2, 3, height, width) and mask.shape == (2, 1, height, width)
    assert not torch.equal(frame, other)  # the exemplar reaches the output
    with pytest.raises(ValueError, match="needs the warped exemplar"):
        conditioned(label, previous, plate)
    with pytest.raises(ValueError, match="takes no exemplar"):
        plain(label, previous, plate, exemplar)


def test_the_conditioned_face_generator_sees_the_exemplars_face_and_keeps_the_rest_of_the_frame() -> None:
    torch.manual_seed(0)
    face = build_face_generator(TINY, "resize", exemplar=True)
    assert next(m for m in face.modules() if isinstance(m, torch.nn.Conv2d)).in_channels == 10
    images, labels = torch.rand(2, 3, 32, 48) * 2 - 1, torch.rand(2, 3, 32, 48)
    exemplar = torch.cat([torch.rand(2, 3, 32, 48) * 2 - 1, torch.ones(2, 1, 32, 48)], dim=1)
    boxes = [(4, 4, 20, 20), (20, 10, 36, 26)]
    with torch.no_grad():
        out = face(images, labels, boxes, exemplar)
        changed = exemplar.clone()
        changed[1, :, 10:26, 20:36] = -changed[1, :, 10:26, 20:36]  # another face in item 1's box
        other = face(images, labels, boxes, changed)
    assert out.shape == images.shape
    inside = torch.zeros_like(images, dtype=torch.bool)
    for i, (x0, y0, x1, y1) in enumerate(boxes):
        inside[i, :, y0:y1, x0:x1] = True
    assert torch.equal(out[~inside], images[~inside])  # outside the boxes, bit for bit
    assert torch.equal(other[0], out[0]) and not torch.equal(other[1], out[1])  # the exemplar's face counts
    with pytest.raises(ValueError, match="needs the warped exemplar"):
        face(images, labels, boxes)


def _blob_poses(count: int, size: tuple[int, int]) -> np.ndarray:
    """A standing figure over each frame's blob of :func:`training_data.write_subject`."""
    width, height = size
    return np.stack([standing_pose(int(width * (0.25 + 0.5 * t / max(count - 1, 1))), height * 0.75, height * 0.5)
                     for t in range(count)]).astype(np.float32)


def test_a_training_frames_exemplar_is_never_itself_its_neighbours_or_held_out() -> None:
    count, gap = 40, 3
    rng = np.random.default_rng(0)
    keypoints = _blob_poses(count, (128, 64))
    keypoints[:, :, :2] += rng.normal(0, 0.5, size=(count, keypoints.shape[1], 2))  # ties broken
    keypoints[count - 8] = keypoints[3]  # a held-out frame identical to a training frame
    first_heldout = first_heldout_frame(count, 0.2)
    chosen = training_exemplars(keypoints, first_heldout, gap)
    frames = np.arange(count)
    assert (chosen >= 0).all()
    assert (chosen < first_heldout).all()  # held-out frames are never exemplars
    assert (np.abs(chosen - frames) > gap).all()  # never the frame itself nor its close neighbours
    # The nearest admissible frame: the figure walks right, so the exemplar is the first frame past the gap
    # on a training frame's side (ties in eq. 6 aside, it is within two frames of it).
    assert (np.abs(np.abs(chosen[:first_heldout] - frames[:first_heldout]) - (gap + 1)) <= 1).all()
    # Frame 3's twin, held out, takes frame 3 (it is far from it in time); frame 3 itself never does.
    assert chosen[count - 8] == 3 and chosen[3] != 3
    # A frame without a body gets none.
    keypoints[5, :, 2] = 0
    assert training_exemplars(keypoints, first_heldout, gap)[5] == -1


def _subject_with_exemplars(directory: Path, perceptual: Path, size=(64, 32), frames=24) -> dict:
    data = {**write_subject(directory, size=size, frames=frames), "perceptual": perceptual}
    data["poses"] = directory / "poses.parquet"
    write_pose_table(data["poses"], PoseSequence(_blob_poses(frames, size), size, "synthetic"))
    data["exemplars"], data["validity"] = directory / "exemplars.npy", directory / "validity.npy"
    made = run_edn("training-exemplars", "--frames", data["frames"], "--masks", data["masks"], "--poses",
                   data["poses"], "--plate", data["plate"], "--exemplar-gap", "2", "--output", data["exemplars"],
                   "--validity", data["validity"], "--exemplars", directory / "exemplars.csv", "--no-progress")
    assert made.returncode == 0, made.stderr
    return data


def _exemplar_args(data: dict) -> tuple:
    return ("--exemplar", "--exemplars", data["exemplars"], "--exemplar-validity", data["validity"])


@pytest.mark.slow
def test_training_with_exemplars_through_the_cli_is_rebuilt_at_synthesis(tmp_path: Path,
                                                                         perceptual_weights: Path) -> None:
    data = _subject_with_exemplars(tmp_path / "subject", perceptual_weights, size=(128, 64))  # faces of 16 px
    # The exemplars the pairs train with: none is its own frame, a neighbour within the gap, or held out.
    table = pd.read_csv(tmp_path / "subject" / "exemplars.csv")
    first_heldout = first_heldout_frame(len(table), 0.1)
    assert ((table.exemplar >= 0) & (table.exemplar < first_heldout)
            & ((table.exemplar - table.frame).abs() > 2)).all()
    exemplars, validity = load_frames(data["exemplars"]), load_masks(data["validity"])
    assert exemplars.shape == load_frames(data["frames"]).shape and validity.shape == exemplars.shape[:3]
    assert "ms per frame" in run_edn("training-exemplars", "--frames", data["frames"], "--masks", data["masks"],
                                     "--poses", data["poses"], "--plate", data["plate"], "--output",
                                     tmp_path / "again.npy", "--validity", tmp_path / "again_v.npy",
                                     "--no-progress").stderr

    trained = run_edn(*_train_args(data, tmp_path, "conditioned", *_exemplar_args(data), iterations=5))
    assert trained.returncode == 0, trained.stderr
    assert "correcting warped exemplars" in trained.stderr
    missing = run_edn(*_train_args(data, tmp_path, "missing", "--exemplar", iterations=5))
    assert missing.returncode != 0 and "--exemplars and --exemplar-validity" in missing.stderr
    assert not (tmp_path / "missing" / "global.pt").exists()

    checkpoint = load_checkpoint(tmp_path / "conditioned" / "global.pt")
    assert checkpoint.options["exemplar"] is True and checkpoint.step == 5
    plate, cpu = read_plate(data["plate"]), torch.device("cpu")
    models = load_frame_generator(tmp_path / "conditioned" / "global.pt", None, cpu, plate)
    assert models.exemplar and models.generator.exemplar and "conditioned on the warped exemplar" in models.description

    # The face stage follows the generator it starts from.
    face = run_edn(*_train_args(data, tmp_path, "conditioned", "--init", tmp_path / "conditioned" / "global.pt",
                                *_exemplar_args(data)[1:], stage="face", iterations=2))
    assert face.returncode == 0, face.stderr
    assert load_checkpoint(tmp_path / "conditioned" / "face.pt").options["exemplar"] is True
    models = load_frame_generator(tmp_path / "conditioned" / "global.pt", tmp_path / "conditioned" / "face.pt", cpu,
                                  plate)
    assert models.face_generator.exemplar  # the face GAN sees the exemplar's face too

    # Synthesis through the CLI: with the exemplars it draws, without them it says what is missing.
    synthesis = ["synthesize", "--labels", data["labels"], "--index", data["index"], "--generator",
                 tmp_path / "conditioned" / "global.pt", "--face", tmp_path / "conditioned" / "face.pt",
                 "--plate", data["plate"], "--threads", "1"]
    drawn = run_edn(*synthesis, "--exemplars", data["exemplars"], "--exemplar-validity", data["validity"],
                    "--output", tmp_path / "drawn.npy")
    assert drawn.returncode == 0, drawn.stderr
    assert load_frames(tmp_path / "drawn.npy").shape == load_frames(data["frames"]).shape
    refused = run_edn(*synthesis, "--output", tmp_path / "refused.npy")
    assert refused.returncode != 0 and "trained with the exemplar option" in refused.stderr
    assert not (tmp_path / "refused.npy").exists()

    # Evaluation on the held-out frames: their exemplars are the held-out end of the target's own.
    evaluation = ["evaluate", "--method", "ts_exemplar", "--frames", data["frames"], "--poses", data["poses"],
                  "--labels", data["labels"], "--index", data["index"], "--generator",
                  tmp_path / "conditioned" / "global.pt", "--plate", data["plate"], "--no-pose-fidelity",
                  "--threads", "1", "--generated", tmp_path / "eval.npy", "--output", tmp_path / "eval.csv"]
    evaluated = run_edn(*evaluation, "--exemplars", data["exemplars"], "--exemplar-validity", data["validity"])
    assert evaluated.returncode == 0, evaluated.stderr
    assert len(load_frames(tmp_path / "eval.npy")) == len(table) - first_heldout
    assert "ts_exemplar" in (tmp_path / "eval.csv").read_text()

    # The composite method without it, and a checkpoint written before the option, load unconditioned.
    plain = run_edn(*_train_args(data, tmp_path, "plain", iterations=2))
    assert plain.returncode == 0, plain.stderr
    assert load_checkpoint(tmp_path / "plain" / "global.pt").options["exemplar"] is False
    old = load_checkpoint(tmp_path / "plain" / "global.pt")
    save_checkpoint(tmp_path / "old.pt", Checkpoint(old.stage, old.step, old.preset,
                                                    {k: v for k, v in old.options.items() if k != "exemplar"},
                                                    old.models))
    models = load_frame_generator(tmp_path / "old.pt", None, cpu, plate)
    assert not models.exemplar and not models.generator.exemplar


@pytest.mark.slow
def test_a_resumed_conditioned_run_is_bit_equal_to_a_straight_one(tmp_path: Path, perceptual_weights: Path) -> None:
    """20 iterations straight, then the same run as a kill after the step-10 checkpoint leaves it, resumed."""
    data = _subject_with_exemplars(tmp_path / "subject", perceptual_weights)
    args = _exemplar_args(data)
    a, b = resume_after_a_kill(data, tmp_path, *args)
    assert a.options["exemplar"] is b.options["exemplar"] is True

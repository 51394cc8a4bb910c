"""The composite generator conditioned on the warped exemplar (option training.exemplar): its
input, the exemplars training pairs get, the checkpoint that records it, synthesis that rebuilds
it, and a resumed run that is still bit-equal to a straight one; the residual mode, which starts
as the exemplar and learns a correction of it, and the option's older values false and true."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from edn.background.plate import read_plate
from edn.core.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from edn.core.options import TrainingOptions, first_heldout_frame
from edn.core.runtime import Runtime
from edn.core.presets import PRESETS
from edn.exemplars.for_training import training_exemplars
from edn.exemplars.select import candidate_distances
from edn.core.errors import EdnError
from edn.ingest.frames import create_image_store, load_frames, load_masks
from edn.models import build_face_generator, build_generator
from edn.models.compositing import RESIDUAL_SCALE, last_convolution, residual_person_and_mask
from edn.models.generation import draw_in_window, load_frame_generator
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


def test_a_face_generator_behind_a_residual_one_starts_unchanged_and_learns() -> None:
    """Behind a residual main generator (the face stage's start_unchanged), G_f's residual starts at 0:
    the frame comes back as it went in; its last convolution still gets gradients. From pix2pixHD's
    random start (the default) the face box changes."""
    torch.manual_seed(0)
    images, labels = torch.rand(2, 3, 32, 48) * 2 - 1, torch.rand(2, 3, 32, 48)
    exemplar = torch.cat([torch.rand(2, 3, 32, 48) * 2 - 1, torch.ones(2, 1, 32, 48)], dim=1)
    boxes = [(4, 4, 20, 20), (20, 10, 36, 26)]
    unchanged = build_face_generator(TINY, "transposed", exemplar=True, start_unchanged=True)
    out = unchanged(images, labels, boxes, exemplar)
    assert torch.equal(out, images)
    out[:, :, 10:20, 10:20].sum().backward()
    assert last_convolution(unchanged.body, channels=3).weight.grad.abs().sum() > 0
    with torch.no_grad():
        random_start = build_face_generator(TINY, "transposed", exemplar=True)(images, labels, boxes, exemplar)
    assert not torch.equal(random_start, images)


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
    chosen = training_exemplars(keypoints, first_heldout, gap)[0]
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
    assert training_exemplars(keypoints, first_heldout, gap)[0, 5] == -1


def test_several_exemplars_per_frame_are_different_moments_never_held_out_or_near_the_frame() -> None:
    count, gap, choices = 60, 3, 4
    rng = np.random.default_rng(1)
    keypoints = _blob_poses(count, (128, 64))
    keypoints[:, :, :2] += rng.normal(0, 0.5, size=(count, keypoints.shape[1], 2))
    first_heldout = first_heldout_frame(count, 0.2)
    chosen = training_exemplars(keypoints, first_heldout, gap, choices=choices)
    assert chosen.shape == (choices, count)
    # Choice 0 is the one exemplar of choices=1.
    assert (chosen[0] == training_exemplars(keypoints, first_heldout, gap)[0]).all()
    frames = np.arange(count)
    assert ((chosen >= 0) & (chosen < first_heldout) & (np.abs(chosen - frames) > gap)).all()
    # A frame's choices are more than the gap apart from one another: other moments, not neighbours.
    apart = np.abs(chosen[:, None, :] - chosen[None, :, :])
    assert (apart[~np.eye(choices, dtype=bool)] > gap).all()
    # Each later choice is at least as far from the pose as the one before it (eq. 6, nearest first).
    candidates, distances = candidate_distances(keypoints, keypoints, first_heldout)
    ranked = np.stack([distances[frames, np.searchsorted(candidates, choice)] for choice in chosen])
    assert (np.diff(ranked, axis=0) >= 0).all()
    # Too few frames for four choices more than the gap apart: the later ones repeat the nearest.
    few = training_exemplars(keypoints[:12], 10, gap, choices=choices)
    assert ((few == few[0]) | (np.abs(few - few[0]) > gap)).all() and (few[-1] == few[0]).any()
    with pytest.raises(ValueError, match="choices 0"):
        training_exemplars(keypoints, first_heldout, gap, choices=0)


def _subject_with_exemplars(directory: Path, perceptual: Path, size=(64, 32), frames=24) -> dict:
    data = {**write_subject(directory, size=size, frames=frames), "perceptual": perceptual}
    data["poses"] = directory / "poses.parquet"
    write_pose_table(data["poses"], PoseSequence(_blob_poses(frames, size), size, "synthetic"))
    data["exemplars"], data["validity"] = directory / "exemplars.npy", directory / "validity.npy"
    made = run_edn("training-exemplars", "--frames", data["frames"], "--masks", data["masks"], "--poses",
                   data["poses"], "--plate", data["plate"], "--exemplar-gap", "2", "--exemplar-choices", "2",
                   "--output", data["exemplars"], "--validity", data["validity"], "--exemplars",
                   directory / "exemplars.csv", "--no-progress")
    assert made.returncode == 0, made.stderr
    return data


def test_a_sample_trains_with_the_exemplar_choice_drawn_for_it(tmp_path: Path, perceptual_weights: Path) -> None:
    from edn.training.data import TrainingFrames, exemplar_choice

    data = _subject_with_exemplars(tmp_path / "subject", perceptual_weights)
    made, count = load_frames(data["exemplars"]), len(load_frames(data["frames"]))
    assert len(made) == 2 * count
    # The synthetic figure looks the same in every frame, so both choices warp to the same image: mark
    # choice 1's rows (row c * T + t holds choice c of frame t) to tell them apart.
    marked = tmp_path / "marked.npy"
    with create_image_store(marked, len(made), (made.shape[2], made.shape[1])) as store:
        store[:] = made
        store[count:] = 255 - store[count:]
    frames = TrainingFrames(data["frames"], data["labels"], data["index"], downsample=1, size_multiple=4,
                            plate=read_plate(data["plate"]), masks_path=data["masks"], exemplars_path=marked,
                            validity_path=data["validity"])
    assert frames.exemplar_choices == 2
    stored = load_frames(marked)
    drawn = []
    for choice in (0, 1):
        exemplar = frames.sample(10, exemplar_choice=choice).exemplar
        expected = torch.from_numpy(np.asarray(stored[choice * count + 10])).permute(2, 0, 1).float() / 127.5 - 1
        assert torch.allclose(exemplar[0, :3], expected, atol=1e-6)
        drawn.append(exemplar)
    assert not torch.equal(drawn[0], drawn[1])
    with pytest.raises(ValueError, match="exemplar choice 2: frame 10 has 2"):
        frames.sample(10, exemplar_choice=2)
    # The draw depends on the seed, the sample's number and the frame only, and reaches every choice.
    draws = [exemplar_choice(0, n, 10, 4) for n in range(200)]
    assert draws == [exemplar_choice(0, n, 10, 4) for n in range(200)] and set(draws) == {0, 1, 2, 3}
    assert draws != [exemplar_choice(1, n, 10, 4) for n in range(200)]
    assert {exemplar_choice(0, n, 10, 1) for n in range(20)} == {0}


def _exemplar_args(data: dict) -> tuple:
    return ("--exemplar", "input", "--exemplars", data["exemplars"], "--exemplar-validity", data["validity"])


@pytest.mark.slow
def test_training_with_exemplars_through_the_cli_is_rebuilt_at_synthesis(tmp_path: Path,
                                                                         perceptual_weights: Path) -> None:
    data = _subject_with_exemplars(tmp_path / "subject", perceptual_weights, size=(128, 64))  # faces of 16 px
    # The exemplars the pairs train with: none is its own frame, a neighbour within the gap, or held out.
    table = pd.read_csv(tmp_path / "subject" / "exemplars.csv")
    count = len(load_frames(data["frames"]))
    first_heldout = first_heldout_frame(count, 0.1)
    assert table.choice.tolist() == [0] * count + [1] * count and table.frame.tolist() == list(range(count)) * 2
    assert ((table.exemplar >= 0) & (table.exemplar < first_heldout)
            & ((table.exemplar - table.frame).abs() > 2)).all()
    exemplars, validity = load_frames(data["exemplars"]), load_masks(data["validity"])
    assert exemplars.shape == (2 * count, *load_frames(data["frames"]).shape[1:])
    assert validity.shape == exemplars.shape[:3]
    assert "ms per exemplar" in run_edn("training-exemplars", "--frames", data["frames"], "--masks", data["masks"],
                                     "--poses", data["poses"], "--plate", data["plate"], "--output",
                                     tmp_path / "again.npy", "--validity", tmp_path / "again_v.npy",
                                     "--no-progress").stderr

    trained = run_edn(*_train_args(data, tmp_path, "conditioned", *_exemplar_args(data), iterations=5))
    assert trained.returncode == 0, trained.stderr
    assert "correcting warped exemplars" in trained.stderr
    missing = run_edn(*_train_args(data, tmp_path, "missing", "--exemplar", "input", iterations=5))
    assert missing.returncode != 0 and "--exemplars and --exemplar-validity" in missing.stderr
    assert not (tmp_path / "missing" / "global.pt").exists()

    checkpoint = load_checkpoint(tmp_path / "conditioned" / "global.pt")
    assert checkpoint.options["exemplar"] == "input" and checkpoint.step == 5
    plate, cpu = read_plate(data["plate"]), torch.device("cpu")
    models = load_frame_generator(tmp_path / "conditioned" / "global.pt", None, cpu, plate)
    assert models.exemplar and models.generator.exemplar and "conditioned on the warped exemplar" in models.description

    # The face stage follows the generator it starts from.
    face = run_edn(*_train_args(data, tmp_path, "conditioned", "--init", tmp_path / "conditioned" / "global.pt",
                                *_exemplar_args(data)[2:], stage="face", iterations=2))
    assert face.returncode == 0, face.stderr
    assert load_checkpoint(tmp_path / "conditioned" / "face.pt").options["exemplar"] == "input"
    models = load_frame_generator(tmp_path / "conditioned" / "global.pt", tmp_path / "conditioned" / "face.pt", cpu,
                                  plate)
    assert models.face_generator.exemplar  # the face GAN sees the exemplar's face too

    # Synthesis through the CLI: with the exemplars it draws (edn pose-warp's, one per requested pose, as a
    # transfer's), without them it says what is missing.
    posed, posed_validity = tmp_path / "posed.npy", tmp_path / "posed.validity.npy"
    warped = run_edn("pose-warp", "--frames", data["frames"], "--masks", data["masks"], "--poses", data["poses"],
                     "--plate", data["plate"], "--requested", data["poses"], "--output", posed,
                     "--validity", posed_validity)
    assert warped.returncode == 0, warped.stderr
    synthesis = ["synthesize", "--labels", data["labels"], "--index", data["index"], "--generator",
                 tmp_path / "conditioned" / "global.pt", "--face", tmp_path / "conditioned" / "face.pt",
                 "--plate", data["plate"], "--threads", "1"]
    drawn = run_edn(*synthesis, "--exemplars", posed, "--exemplar-validity", posed_validity,
                    "--output", tmp_path / "drawn.npy")
    assert drawn.returncode == 0, drawn.stderr
    assert load_frames(tmp_path / "drawn.npy").shape == load_frames(data["frames"]).shape
    refused = run_edn(*synthesis, "--output", tmp_path / "refused.npy")
    assert refused.returncode != 0 and "trained with the exemplar option" in refused.stderr
    assert not (tmp_path / "refused.npy").exists()

    # Evaluation on the held-out frames: the generator corrects the pose_warp method's frames (edn pose-warp
    # --heldout-only: training frames chosen as a transfer chooses them), not the training pairs' end.
    heldout, heldout_validity = tmp_path / "heldout.npy", tmp_path / "heldout.validity.npy"
    warped = run_edn("pose-warp", "--frames", data["frames"], "--masks", data["masks"], "--poses", data["poses"],
                     "--plate", data["plate"], "--requested", data["poses"], "--heldout-only", "--output", heldout,
                     "--validity", heldout_validity)
    assert warped.returncode == 0, warped.stderr
    evaluation = ["evaluate", "--method", "ts_exemplar", "--frames", data["frames"], "--poses", data["poses"],
                  "--labels", data["labels"], "--index", data["index"], "--generator",
                  tmp_path / "conditioned" / "global.pt", "--plate", data["plate"], "--no-pose-fidelity",
                  "--threads", "1", "--generated", tmp_path / "eval.npy", "--output", tmp_path / "eval.csv"]
    evaluated = run_edn(*evaluation, "--exemplars", heldout, "--exemplar-validity", heldout_validity)
    assert evaluated.returncode == 0, evaluated.stderr
    assert len(load_frames(tmp_path / "eval.npy")) == count - first_heldout
    assert "ts_exemplar" in (tmp_path / "eval.csv").read_text()
    # One per frame of the video (the training pairs) is refused, naming the file, and nothing is left behind.
    whole = run_edn(*evaluation[:-4], "--generated", tmp_path / "whole.npy", "--output", tmp_path / "whole.csv",
                    "--exemplars", data["exemplars"], "--exemplar-validity", data["validity"])
    assert whole.returncode != 0 and f"warped exemplars {str(data['exemplars'])!r}" in whole.stderr
    assert not (tmp_path / "whole.csv").exists() and not (tmp_path / "whole.npy").exists()

    # The composite method without it, and a checkpoint written before the option, load unconditioned.
    plain = run_edn(*_train_args(data, tmp_path, "plain", iterations=2))
    assert plain.returncode == 0, plain.stderr
    assert load_checkpoint(tmp_path / "plain" / "global.pt").options["exemplar"] == "none"
    old = load_checkpoint(tmp_path / "plain" / "global.pt")
    save_checkpoint(tmp_path / "old.pt", Checkpoint(old.stage, old.step, old.preset,
                                                    {k: v for k, v in old.options.items() if k != "exemplar"},
                                                    old.models))
    models = load_frame_generator(tmp_path / "old.pt", None, cpu, plate)
    assert not models.exemplar and not models.generator.exemplar
    # A checkpoint from when the option was a switch: true was the input mode, false none.
    for name, conditioned in (("conditioned", True), ("plain", False)):
        saved = tmp_path / name / "global.pt"
        checkpoint = load_checkpoint(saved)
        save_checkpoint(tmp_path / "switch.pt", Checkpoint(checkpoint.stage, checkpoint.step, checkpoint.preset,
                                                           {**checkpoint.options, "exemplar": conditioned},
                                                           checkpoint.models))
        models = load_frame_generator(tmp_path / "switch.pt", None, cpu, plate)
        assert models.exemplar is models.generator.exemplar is conditioned and not models.generator.residual


@pytest.mark.slow
def test_a_resumed_conditioned_run_is_bit_equal_to_a_straight_one(tmp_path: Path, perceptual_weights: Path) -> None:
    """20 iterations straight, then the same run as a kill after the step-10 checkpoint leaves it, resumed."""
    data = _subject_with_exemplars(tmp_path / "subject", perceptual_weights)
    args = _exemplar_args(data)
    a, b = resume_after_a_kill(data, tmp_path, *args)
    assert a.options["exemplar"] == b.options["exemplar"] == "input"


# -- the residual mode ---------------------------------------------------------------------------------


def test_the_option_takes_a_mode_and_its_older_values_false_and_true() -> None:
    def mode(value):
        return TrainingOptions(stage="global", iterations=1, exemplar=value).exemplar

    assert [mode(v) for v in ("none", "input", "residual")] == ["none", "input", "residual"]
    assert [mode(v) for v in (False, True, "false", "true")] == ["none", "input", "none", "input"]
    assert TrainingOptions(stage="global", iterations=1).exemplar == "none"
    assert not TrainingOptions(stage="global", iterations=1, exemplar="none").conditioned
    assert TrainingOptions(stage="global", iterations=1, exemplar="residual").conditioned
    with pytest.raises(EdnError, match="option exemplar 'copy': must be one of none, input, residual"):
        mode("copy")


def _frame_with_a_person(height: int, width: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A textured plate [1, 3, H, W] and a warped exemplar [1, 4, H, W] over it: a textured person
    in an ellipse, the plate elsewhere, valid everywhere but a hole in the person."""
    generator = torch.Generator().manual_seed(seed)
    plate = torch.rand(1, 3, height, width, generator=generator) * 2 - 1
    yy, xx = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    person = ((xx - width / 2) ** 2 / (width / 6) ** 2 + (yy - height / 2) ** 2 / (height / 3) ** 2) < 1
    image = torch.where(person, torch.rand(1, 3, height, width, generator=generator) * 2 - 1, plate)
    validity = torch.ones(1, 1, height, width)
    validity[..., height // 2 - 2: height // 2 + 2, width // 2 - 2: width // 2 + 2] = 0
    return plate, torch.cat([image, validity], dim=1)


@pytest.mark.parametrize(("kind", "upsampling"), [("global", "transposed"), ("global", "resize"),
                                                   ("local", "transposed")])
def test_a_residual_generator_starts_as_the_exemplar_and_its_mask_still_learns(kind: str, upsampling: str) -> None:
    height, width, window = 64, 96, (24, 0, 72, 64)  # a 48x64 person window inside the frame
    torch.manual_seed(0)
    residual = build_generator(TINY, kind, compositing=True, upsampling=upsampling, exemplar="residual")
    assert residual.exemplar and residual.residual
    plate, exemplar = _frame_with_a_person(height, width, seed=1)
    label, previous = torch.rand(1, 3, height, width), torch.rand(1, 3, height, width) * 2 - 1
    frame, mask = draw_in_window(residual, label, previous, plate, [window], exemplar)
    x0, y0, x1, y1 = window
    inside = torch.zeros(1, 1, height, width, dtype=torch.bool)
    inside[..., y0:y1, x0:x1] = True
    inside = inside.expand(1, 3, height, width)
    # At initialisation the frame in the window is the exemplar to within 2% of the range, whatever the
    # label and the previous frame; where the exemplar shows the plate, the plate times 1 - sigmoid(-4)
    # (the person drawn there starts mid-grey, the mask at sigmoid(-4)); outside, the plate exactly.
    assert (frame - exemplar[:, :3])[inside].abs().max() <= 0.02 * 2
    shows_plate = inside & (exemplar[:, :3] == plate)
    low = torch.sigmoid(torch.tensor(-4.0)).item()
    assert shows_plate.any() and torch.allclose(frame[shows_plate], (1 - low) * plate[shows_plate], atol=1e-6)
    assert torch.equal(frame[~inside], plate[~inside])
    # The mask starts as the exemplar's silhouette: sigmoid(4) where it is not the plate, sigmoid(-4) elsewhere.
    silhouette = (exemplar[:, :3] != plate).any(dim=1, keepdim=True)[..., y0:y1, x0:x1]
    high, low = torch.sigmoid(torch.tensor(4.0)).item(), torch.sigmoid(torch.tensor(-4.0)).item()
    assert torch.allclose(mask[..., y0:y1, x0:x1], torch.where(silhouette, high, low), atol=1e-6)
    # Another exemplar, another frame: the person is the exemplar's, not drawn from the label.
    _, other = _frame_with_a_person(height, width, seed=2)
    assert (draw_in_window(residual, label, previous, plate, [window], other)[0] - other[:, :3])[inside].abs().max() \
        <= 0.02 * 2
    # The mask is not stuck: an L1 loss towards a real frame reaches every output's weights and biases.
    real = torch.rand(1, 3, height, width) * 2 - 1
    target_mask = torch.zeros(1, 1, height, width)
    (torch.nn.functional.l1_loss(frame, real) + torch.nn.functional.l1_loss(mask, target_mask)).backward()
    last = last_convolution(residual.body)
    assert all(last.weight.grad[c].abs().sum() > 0 for c in range(4)) and (last.bias.grad != 0).all()


def test_a_residual_generator_draws_off_the_exemplars_person_without_the_plate_beneath() -> None:
    """Where the warp drew no person (the exemplar shows the plate) the correction is a colour of its own,
    not an offset from the plate: the same output over two plates draws the same person there (from the
    plate, a white shirt drawn over foliage kept the foliage's texture and came out yellow), and on the
    exemplar's person it stays a correction of the exemplar's pixels."""
    plate_a, exemplar = _frame_with_a_person(32, 48, seed=3)
    plate_b = torch.rand(plate_a.shape, generator=torch.Generator().manual_seed(4)) * 2 - 1
    on_person = (exemplar[:, :3] != plate_a).any(dim=1, keepdim=True)
    exemplar_b = torch.cat([torch.where(on_person, exemplar[:, :3], plate_b), exemplar[:, 3:]], dim=1)
    out = torch.tanh(torch.randn(1, 4, 32, 48, generator=torch.Generator().manual_seed(5)))
    person_a, mask_a = residual_person_and_mask(out, exemplar, plate_a)
    person_b, mask_b = residual_person_and_mask(out, exemplar_b, plate_b)
    off = ~on_person.expand_as(person_a)
    assert off.any() and torch.equal(person_a[off], person_b[off]) and torch.equal(mask_a, mask_b)
    assert torch.equal(person_a[off], (RESIDUAL_SCALE * out[:, :3]).clamp(-1, 1)[off])
    assert not torch.equal(plate_a[off], plate_b[off])
    on = on_person.expand_as(person_a)
    assert torch.equal(person_a[on], (exemplar[:, :3] + RESIDUAL_SCALE * out[:, :3]).clamp(-1, 1)[on])


def test_a_residual_generator_is_the_input_one_but_for_its_zeroed_last_convolution() -> None:
    """Same seed, same layers and weights, the same random numbers drawn: only the last convolution,
    set to start as the exemplar, differs (so the input and none modes are built as before)."""
    built = {}
    for mode in ("input", "residual"):
        torch.manual_seed(0)
        generator = build_generator(TINY, "global", compositing=True, exemplar=mode)
        built[mode] = (generator, torch.rand(4))
    (conditioned, after_input), (residual, after_residual) = built["input"], built["residual"]
    assert torch.equal(after_input, after_residual)
    last = {name for name, parameter in residual.named_parameters()
            if parameter is last_convolution(residual.body).weight or parameter is last_convolution(residual.body).bias}
    assert len(last) == 2
    a, b = conditioned.state_dict(), residual.state_dict()
    assert a.keys() == b.keys()
    assert all(torch.equal(a[name], b[name]) for name in a if name not in last)
    assert not last_convolution(residual.body).weight.any() and last_convolution(conditioned.body).weight.any()
    assert not conditioned.residual and conditioned.exemplar


def _exemplars_from_other_frames(paths: dict, directory: Path, shift: int) -> tuple[Path, Path]:
    """Each frame's 'warped exemplar': the frame ``shift`` frames on (the blob elsewhere), valid everywhere."""
    frames = load_frames(paths["frames"])
    images, validity = directory / "exemplars.npy", directory / "validity.npy"
    with create_image_store(images, len(frames), frames.shape[2:0:-1]) as store:
        store[:] = np.roll(np.asarray(frames), -shift, axis=0)
    with create_image_store(validity, len(frames), frames.shape[2:0:-1], channels=None) as store:
        store[:] = 255
    return images, validity


@pytest.mark.slow
def test_a_few_training_steps_of_a_residual_generator_on_one_pair_reduce_its_l1_loss(tmp_path: Path,
                                                                                    perceptual_weights: Path) -> None:
    """The project's trainer (MainStageTrainer.step: GAN, feature matching, perceptual, mask and temporal
    terms, Adam) on one fixed pair, the exemplars a few frames off: the drawn window's L1 distance to
    the real one goes down, and so does the mask's."""
    from edn.background.plate import read_plate
    from edn.training.data import TrainingFrames
    from edn.training.losses import PerceptualLoss
    from edn.training.main_stage import MainStageTrainer
    from edn.training.perceptual import load_perceptual
    from training_data import write_subject

    paths = write_subject(tmp_path / "subject", size=(64, 32))
    images, validity = _exemplars_from_other_frames(paths, tmp_path, shift=3)
    data = TrainingFrames(paths["frames"], paths["labels"], paths["index"], downsample=1, size_multiple=4,
                          plate=read_plate(paths["plate"]), masks_path=paths["masks"], exemplars_path=images,
                          validity_path=validity)
    torch.manual_seed(0)
    trainer = MainStageTrainer("global", TINY, PerceptualLoss(load_perceptual(perceptual_weights, "vgg16_hed")),
                               Runtime(torch.device("cpu")), 5e-4, plate=data.plate, mask_weight=10.0,
                               temporal_change_weight=20.0, exemplar="residual")
    assert trainer.generator.residual
    first, second = data.sample(8), data.sample(9)
    l1, mask = [], []
    for _ in range(16):
        losses = trainer.step(first, second)
        _, _, fake0, _, real0, _ = trainer.last_pair  # drawn before this step's update
        l1.append(torch.nn.functional.l1_loss(fake0, real0).item())
        mask.append(losses["g_mask"])
    # Step 0 draws the exemplar, which is off: the blob is 3 frames away.
    assert l1[0] > 0.05
    assert max(l1[-3:]) < 0.85 * l1[0] and max(mask[-3:]) < 0.9 * mask[0], (l1, mask)


@pytest.mark.slow
def test_a_residual_run_through_the_cli_is_recorded_and_rebuilt(tmp_path: Path, perceptual_weights: Path) -> None:
    data = _subject_with_exemplars(tmp_path / "subject", perceptual_weights, size=(128, 64))  # faces of 16 px
    args = ("--exemplar", "residual", *_exemplar_args(data)[2:])
    trained = run_edn(*_train_args(data, tmp_path, "residual", *args, iterations=3))
    assert trained.returncode == 0, trained.stderr
    assert "correcting warped exemplars (as a residual)" in trained.stderr
    assert load_checkpoint(tmp_path / "residual" / "global.pt").options["exemplar"] == "residual"
    models = load_frame_generator(tmp_path / "residual" / "global.pt", None, torch.device("cpu"),
                                  read_plate(data["plate"]))
    assert models.exemplar and models.generator.residual and "as a residual" in models.description
    # The base off the exemplar's person is recorded (grey), and a checkpoint from before it was
    # recorded is rebuilt as it was trained: its correction added to the plate there.
    checkpoint = load_checkpoint(tmp_path / "residual" / "global.pt")
    assert checkpoint.options["residual_base"] == "grey" and models.generator.residual_base == "grey"
    older = {key: value for key, value in checkpoint.options.items() if key != "residual_base"}
    save_checkpoint(tmp_path / "older.pt", Checkpoint(checkpoint.stage, checkpoint.step, checkpoint.preset, older,
                                                      checkpoint.models))
    rebuilt = load_frame_generator(tmp_path / "older.pt", None, torch.device("cpu"), read_plate(data["plate"]))
    assert rebuilt.generator.residual_base == "plate"
    # The face stage on top follows the generator it starts from.
    face = run_edn(*_train_args(data, tmp_path, "older", *args, "--init", tmp_path / "older.pt", stage="face",
                                iterations=1))
    assert face.returncode == 0, face.stderr
    assert load_checkpoint(tmp_path / "older" / "face.pt").residual_base == "plate"
    # The option's older value false is the mode none.
    plain = run_edn(*_train_args(data, tmp_path, "plain", "--exemplar", "false", iterations=1))
    assert plain.returncode == 0, plain.stderr
    assert load_checkpoint(tmp_path / "plain" / "global.pt").options["exemplar"] == "none"


def test_a_targets_training_exemplars_give_each_frame_its_first_choice(tmp_path) -> None:
    """The fake detector regenerates the target's own video from its training exemplars, stored choice by
    choice (training.exemplar_choices per frame): synthesis reads the first, each frame's nearest."""
    from edn.transfer.synthesize import load_exemplars

    rng = np.random.default_rng(0)
    labels = np.zeros((3, 8, 16, 3), np.uint8)
    stored = rng.integers(0, 256, (2 * 3, 8, 16, 3), dtype=np.uint8)
    validity = rng.integers(0, 256, (2 * 3, 8, 16), dtype=np.uint8)
    np.save(tmp_path / "training.npy", stored)
    np.save(tmp_path / "training.validity.npy", validity)
    images, masks = load_exemplars(str(tmp_path / "training.npy"), str(tmp_path / "training.validity.npy"), labels,
                                   "global.pt", choices=2)
    np.testing.assert_array_equal(images, stored[:3])
    np.testing.assert_array_equal(masks, validity[:3])
    with pytest.raises(EdnError, match=r"\[6, 8, 16, 3\] for labels \[3, 8, 16, 3\] \(one per label, at their size\)"):
        load_exemplars(str(tmp_path / "training.npy"), str(tmp_path / "training.validity.npy"), labels, "global.pt")
    with pytest.raises(EdnError, match=r"\(3 per label, at their size\)"):
        load_exemplars(str(tmp_path / "training.npy"), str(tmp_path / "training.validity.npy"), labels, "global.pt",
                       choices=3)
    with pytest.raises(EdnError, match="--exemplar-choices 0"):
        load_exemplars(str(tmp_path / "training.npy"), str(tmp_path / "training.validity.npy"), labels, "global.pt",
                       choices=0)

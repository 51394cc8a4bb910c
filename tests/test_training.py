"""Training: the pairs trained on, the schedule, strict checkpoints, resuming after a real
kill, bad input, and a tiny end-to-end run of the three stages through Snakemake."""

from __future__ import annotations

import csv
import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from edn.core.checkpoint import Checkpoint, load_checkpoint, load_state, save_checkpoint
from edn.core.errors import EdnError
from edn.labels.label_store import LabelIndex
from edn.models import build_generator
from edn.core.presets import PRESETS
from edn.training.data import pair_for_step, split_pairs
from edn.core.options import TrainingOptions
from edn.training.loop import learning_rate
from helpers import DEMO, ROOT, leftovers, run_edn, run_snakemake
from training_data import background_args, write_subject


def _index(has_body: list[int]) -> LabelIndex:
    n = len(has_body)
    return LabelIndex(has_body=np.array(has_body, bool), face_boxes=np.zeros((n, 4), np.int32),
                      has_face=np.array(has_body, bool))


def test_pairs_skip_frames_without_a_body_and_the_held_out_end() -> None:
    #              0  1  2  3  4  5  6  7  8  9
    index = _index([1, 1, 1, 0, 1, 1, 1, 1, 1, 1])
    split = split_pairs(index, 0.2, need_face=False, source="x")
    assert split.first_heldout == 8 and list(split.heldout) == [8, 9]
    assert list(split.pairs) == [0, 1, 4, 5, 6]  # no pair touches frame 3 or frames 8, 9


def test_every_pair_once_per_epoch_in_a_seeded_order() -> None:
    split = split_pairs(_index([1] * 11), 0.0, need_face=False, source="x")
    epoch = [pair_for_step(split, step, seed=3) for step in range(10)]
    assert sorted(epoch) == list(range(10)) and epoch != list(range(10))
    assert epoch == [pair_for_step(split, step, seed=3) for step in range(10)]
    assert epoch != [pair_for_step(split, step, seed=3) for step in range(10, 20)]


def test_empty_training_set_is_an_error() -> None:
    with pytest.raises(EdnError, match="no training pair"):
        split_pairs(_index([1, 0, 1, 0, 1, 1]), 1 / 3, need_face=False, source="frames.npy")


def test_learning_rate_is_constant_then_decays_linearly_to_zero() -> None:
    options = TrainingOptions(stage="global", iterations=100, decay_fraction=0.5)
    rates = [learning_rate(step, options) for step in range(100)]
    assert rates[:50] == [2e-4] * 50
    assert rates[50] == pytest.approx(2e-4) and rates[75] == pytest.approx(1e-4) and rates[99] == pytest.approx(4e-6)
    assert all(a > b for a, b in zip(rates[50:], rates[51:]))


def test_checkpoint_round_trip_is_strict(tmp_path: Path) -> None:
    preset = PRESETS["tiny"]
    torch.manual_seed(0)
    generator = build_generator(preset, "global")
    path = tmp_path / "global.pt"
    save_checkpoint(path, Checkpoint(stage="global", step=7, preset=preset, options={"image_size": [64, 32]},
                                     models={"generator": generator.state_dict()}))
    assert not leftovers(tmp_path)
    loaded = load_checkpoint(path, stages=("global",), preset=preset)
    assert (loaded.stage, loaded.step, loaded.preset, loaded.options) == ("global", 7, preset, {"image_size": [64, 32]})
    other = build_generator(preset, "global")
    load_state(other, loaded, "generator", path)
    for key, value in generator.state_dict().items():
        assert torch.equal(other.state_dict()[key], value)

    with pytest.raises(EdnError, match="does not fit the network"):
        load_state(build_generator(PRESETS["small"], "global"), loaded, "generator", path)
    with pytest.raises(EdnError, match="does not fit the network"):  # a missing key is not ignored
        state = dict(loaded.models["generator"])
        state.pop(next(iter(state)))
        load_state(other, Checkpoint("global", 7, preset, {}, {"generator": state}), "generator", path)
    with pytest.raises(EdnError, match="trained with preset 'tiny', not 'small'"):
        load_checkpoint(path, preset=PRESETS["small"])
    with pytest.raises(EdnError, match="a global stage checkpoint, expected face"):
        load_checkpoint(path, stages=("face",))
    (tmp_path / "junk.pt").write_text("junk")
    with pytest.raises(EdnError, match="not readable as an edn"):
        load_checkpoint(tmp_path / "junk.pt")


def _train_args(data: dict, tmp: Path, name: str, *extra: str, stage: str = "global", iterations: int = 40) -> list:
    """``edn train`` of the synthetic subject with the composite method (the default: over its plate)."""
    return ["train", "--stage", stage, "--frames", data["frames"], "--labels", data["labels"], "--index",
            data["index"], "--perceptual", data["perceptual"], "--output", tmp / name / f"{stage}.pt",
            "--run-dir", tmp / name / "run", "--preset", "tiny", "--iterations", str(iterations),
            "--checkpoint-every", "10", "--sample-every", "20", "--deterministic", "--threads", "1",
            "--no-progress", *background_args(data), *extra]


def _losses(run_dir: Path) -> list[dict]:
    with open(run_dir / "losses.csv", newline="") as file:
        return [{k: v for k, v in row.items() if k != "seconds"} for row in csv.DictReader(file)]


@pytest.fixture(scope="module")
def straight_run(tmp_path_factory, perceptual_weights: Path) -> tuple[dict, Path]:
    """A synthetic subject and 40 iterations of the global stage trained without interruption."""
    tmp = tmp_path_factory.mktemp("straight")
    data = {**write_subject(tmp / "subject"), "perceptual": perceptual_weights}
    result = run_edn(*_train_args(data, tmp, "straight"))
    assert result.returncode == 0, result.stderr
    return data, tmp / "straight"


@pytest.mark.slow
@pytest.mark.parametrize("kill", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_killed_training_resumes_to_the_same_weights(straight_run, tmp_path: Path, kill: int) -> None:
    data, straight = straight_run
    command = [sys.executable, "-m", "edn", *map(str, _train_args(data, tmp_path, "killed"))]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    checkpoints = tmp_path / "killed" / "run" / "checkpoints"
    deadline = time.monotonic() + 120
    while not list(checkpoints.glob("step_*.pt")) and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    process.send_signal(kill)
    stderr = process.communicate()[1]
    assert not (tmp_path / "killed" / "global.pt").exists(), "training finished before it could be killed"
    done_before_kill = max(int(p.stem.split("_")[1]) for p in checkpoints.glob("step_*.pt"))
    assert 10 <= done_before_kill < 40
    if kill == signal.SIGKILL:
        assert process.returncode == -signal.SIGKILL
    else:  # the iteration running at SIGTERM finishes and is saved: nothing trained is lost
        assert process.returncode == 1
        assert f"stopped at step {done_before_kill} of 40" in stderr
        assert len(_losses(tmp_path / "killed" / "run")) == done_before_kill

    resumed = run_edn(*_train_args(data, tmp_path, "killed"))
    assert resumed.returncode == 0, resumed.stderr
    assert f"(step {done_before_kill})" in resumed.stderr and "resuming" in resumed.stderr
    a = load_checkpoint(straight / "global.pt")
    b = load_checkpoint(tmp_path / "killed" / "global.pt")
    assert a.step == b.step == 40
    for network in ("generator", "discriminator"):
        for key, value in a.models[network].items():
            assert torch.equal(value, b.models[network][key]), f"{network}.{key}"
    assert _losses(straight / "run") == _losses(tmp_path / "killed" / "run")  # one row per step, none twice
    assert len(_losses(tmp_path / "killed" / "run")) == 40
    assert (tmp_path / "killed" / "run" / "samples" / "heldout_final.png").stat().st_size > 0
    assert not leftovers(tmp_path / "killed" / "run" / "samples")


@pytest.mark.slow
def test_repeated_sigterms_still_save_a_checkpoint(tmp_path: Path, perceptual_weights: Path) -> None:
    # At a time limit SLURM signals every process of the job step, and srun forwards
    # the signal to the step again: training gets SIGTERM twice, milliseconds apart.
    data = {**write_subject(tmp_path / "subject"), "perceptual": perceptual_weights}
    command = [sys.executable, "-m", "edn", *map(str, _train_args(data, tmp_path, "run", iterations=400))]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    losses = tmp_path / "run" / "run" / "losses.csv"
    deadline = time.monotonic() + 120
    while not (losses.exists() and len(losses.read_text().splitlines()) > 2) and time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()[1]
        time.sleep(0.005)
    process.send_signal(signal.SIGTERM)
    time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    stderr = process.communicate(timeout=120)[1]
    # Stopped (the exit status depends on whether the second signal came before
    # or after the checkpoint was written), but the iterations done are saved.
    assert process.returncode != 0 and not (tmp_path / "run" / "global.pt").exists()
    assert stderr.count("SIGTERM: stopping after this iteration") == 1, stderr
    step = len(_losses(tmp_path / "run" / "run"))
    assert step >= 2, stderr  # none is due before step 10 (--checkpoint-every)
    assert [p.name for p in (tmp_path / "run" / "run" / "checkpoints").glob("step_*.pt")] == [f"step_{step:08d}.pt"]


@pytest.mark.slow
def test_bad_input_is_a_one_line_error_and_leaves_no_model(tmp_path: Path, perceptual_weights: Path) -> None:
    data = {**write_subject(tmp_path / "subject"), "perceptual": perceptual_weights}
    face = run_edn(*_train_args(data, tmp_path, "face", "--init", tmp_path / "nowhere" / "global.pt", stage="face"))
    assert face.returncode == 1
    assert face.error_lines == [f"edn train: error: previous-stage checkpoint "
                                f"'{tmp_path / 'nowhere' / 'global.pt'}': file not found (train the global stage first)"]

    trained = run_edn(*_train_args(data, tmp_path, "tiny", iterations=2))
    assert trained.returncode == 0, trained.stderr
    other = run_edn(*_train_args(data, tmp_path, "local", "--init", tmp_path / "tiny" / "global.pt",
                                 stage="local"), "--preset", "small")
    assert other.returncode == 1 and len(other.error_lines) == 1
    assert "trained with preset 'tiny', not 'small'" in other.error_lines[0]
    assert not (tmp_path / "local" / "local.pt").exists()

    empty = {**write_subject(tmp_path / "nobody", has_body=np.zeros(24, bool)), "perceptual": perceptual_weights}
    result = run_edn(*_train_args(empty, tmp_path, "nobody"))
    assert result.returncode == 1 and len(result.error_lines) == 1 and "no training pair" in result.error_lines[0]
    assert not (tmp_path / "nobody" / "global.pt").exists()
    assert not leftovers(tmp_path)


@pytest.mark.slow
def test_the_three_stages_through_snakemake(tmp_path: Path) -> None:
    data = write_subject(tmp_path / "results" / "labels" / "subject", size=(128, 64))
    frames = tmp_path / "results" / "frames" / "subject" / "frames.npy"
    frames.parent.mkdir(parents=True)
    data["frames"].rename(frames)
    config = {
        "subjects": {"subject": {"video": str(DEMO / "target_juggler.mp4")}},
        "frames": {"width": 128, "height": 64},
        "training": {"preset": "tiny", "iterations": {"global": 4, "local": 3, "face": 3}, "use_local": True,
                     "checkpoint_every": 2, "sample_every": 2, "threads": 2, "precision": "fp32"},
    }
    result = run_snakemake(tmp_path, config, "results/models/subject/face.pt")
    assert result.returncode == 0, result.output
    for stage in ("global", "local", "face"):
        assert f"train_{stage}" in result.output
        checkpoint = load_checkpoint(tmp_path / "results" / "models" / "subject" / f"{stage}.pt", stages=(stage,))
        assert checkpoint.step == config["training"]["iterations"][stage] and checkpoint.optimizers == {}
        run = tmp_path / "results" / "runs" / "subject" / stage
        assert len(_losses(run)) == checkpoint.step
        assert (run / "samples" / "heldout_final.png").is_file()
        assert (tmp_path / "results" / "benchmarks" / f"train_{stage}" / "subject.tsv").is_file()
    assert load_checkpoint(tmp_path / "results/models/subject/global.pt").options["image_size"] == [64, 32]
    face = load_checkpoint(tmp_path / "results/models/subject/face.pt")
    assert face.options["base_stage"] == "local" and face.options["image_size"] == [128, 64]
    again = run_snakemake(tmp_path, config, "results/models/subject/face.pt")
    assert again.returncode == 0 and "Nothing to be done" in again.output


def test_face_stage_trains_only_the_face_networks(tmp_path: Path, perceptual_weights: Path) -> None:
    from edn.training.losses import PerceptualLoss
    from edn.training.perceptual import load_perceptual
    from edn.training.data import TrainingFrames
    from edn.core.runtime import Runtime
    from edn.training.face_stage import FaceStageTrainer

    preset = PRESETS["tiny"]
    torch.manual_seed(0)
    main = build_generator(preset, "global")
    init = Checkpoint(stage="global", step=1, preset=preset, options={"generator_kind": "global"},
                      models={"generator": main.state_dict()})
    trainer = FaceStageTrainer(preset, init, "global.pt", PerceptualLoss(load_perceptual(perceptual_weights,
                               "vgg16_hed")), Runtime(torch.device("cpu")), 2e-4)
    for name, module in (("generator", trainer.face_generator), ("discriminator", trainer.face_discriminator)):
        optimised = [p for group in trainer.optimizers[name].param_groups for p in group["params"]]
        assert len({id(p) for p in optimised}) == len(optimised)  # no parameter twice
        assert {id(p) for p in optimised} == {id(p) for p in module.parameters()}
    paths = write_subject(tmp_path / "subject", size=(128, 64))
    frames = TrainingFrames(paths["frames"], paths["labels"], paths["index"], downsample=1, size_multiple=4)
    face_before = [p.detach().clone() for p in trainer.face_generator.parameters()]
    losses = trainer.step(frames.sample(3), frames.sample(4))
    assert {"g_face_gan", "g_face_perceptual", "g_total", "d_total"} <= set(losses)
    for key, value in main.state_dict().items():  # the main generator is frozen
        assert torch.equal(trainer.generator.state_dict()[key], value)
    assert any(not torch.equal(a, b) for a, b in zip(face_before, trainer.face_generator.parameters()))


@pytest.mark.slow
def test_a_finished_run_trains_again_from_the_start(straight_run, tmp_path: Path) -> None:
    # `--forcerun train_global` after a finished run: the same options, but the stage
    # is asked to run again, so it trains from step 0 instead of rewriting the model.
    data, straight = straight_run
    shutil.copytree(straight, tmp_path / "again")
    (tmp_path / "again" / "global.pt").unlink()  # Snakemake deletes the output before the job
    assert json.loads((tmp_path / "again" / "run" / "finished.json").read_text())["step"] == 40
    again = run_edn(*_train_args(data, tmp_path, "again"))
    assert again.returncode == 0, again.stderr
    assert "finished" in again.stderr and "training again from the start" in again.stderr
    assert "resuming" not in again.stderr
    assert _losses(tmp_path / "again" / "run") == _losses(straight / "run")  # 40 rows, trained again, deterministic
    a, b = load_checkpoint(straight / "global.pt"), load_checkpoint(tmp_path / "again" / "global.pt")
    for key, value in a.models["generator"].items():
        assert torch.equal(value, b.models["generator"][key]), key


def _recording_previous_frames(generator: torch.nn.Module) -> list[torch.Tensor]:
    """Record the previous-frame input of every call of ``generator``."""
    seen: list[torch.Tensor] = []
    generator.register_forward_pre_hook(lambda module, inputs: seen.append(inputs[1].detach().clone()))
    return seen


@pytest.mark.parametrize("temporal", [True, False], ids=["temporal", "frame-by-frame"])
def test_frame_by_frame_training_never_feeds_a_previous_frame(tmp_path: Path, perceptual_weights: Path,
                                                              temporal: bool) -> None:
    from edn.training.losses import PerceptualLoss
    from edn.training.perceptual import load_perceptual
    from edn.training.data import TrainingFrames
    from edn.models.generation import generate_frames
    from edn.core.runtime import Runtime
    from edn.training.main_stage import MainStageTrainer

    torch.manual_seed(0)
    trainer = MainStageTrainer("global", PRESETS["tiny"], PerceptualLoss(load_perceptual(perceptual_weights,
                               "vgg16_hed")), Runtime(torch.device("cpu")), 2e-4, temporal=temporal)
    # The paper's temporal PatchGAN judges a pair (12 channels); pix2pixHD's judges one frame (6).
    first_conv = next(m for m in trainer.discriminator.modules() if isinstance(m, torch.nn.Conv2d))
    assert first_conv.in_channels == (12 if temporal else 6)
    paths = write_subject(tmp_path / "subject", size=(64, 32))
    frames = TrainingFrames(paths["frames"], paths["labels"], paths["index"], downsample=1, size_multiple=4)
    seen = _recording_previous_frames(trainer.generator)
    losses = trainer.step(frames.sample(3), frames.sample(4))
    assert np.isfinite(losses["g_total"]) and np.isfinite(losses["d_total"])
    # pix2pixHD's discriminator loss: half the sum of the real and fake LSGAN terms, halved once.
    assert losses["d_total"] == pytest.approx(0.5 * (losses["d_real"] + losses["d_fake"]), rel=1e-6)
    assert len(seen) == 2 and not seen[0].any()
    assert seen[1].any() == temporal  # I1 = G(label1, I0) vs G(label1, zeros)
    seen.clear()
    list(generate_frames(trainer.frame_generator(), [frames.sample(t).label for t in range(3)], [None] * 3,
                         trainer.runtime))
    assert [bool(p.any()) for p in seen] == [False, temporal, temporal]


def test_a_frame_by_frame_generator_synthesizes_each_frame_on_its_own(tmp_path: Path) -> None:
    from edn.labels.label_store import read_label_index
    from edn.models.generation import FrameGenerator
    from edn.core.runtime import Runtime
    from edn.transfer.synthesize import synthesize_sequence

    paths = write_subject(tmp_path / "subject", frames=6, size=(64, 32))
    labels = np.load(paths["labels"])
    index = read_label_index(paths["index"])
    torch.manual_seed(0)
    generator = build_generator(PRESETS["tiny"], "global").eval()
    runtime = Runtime(torch.device("cpu"))

    def synthesize(order: np.ndarray, temporal: bool) -> np.ndarray:
        models = FrameGenerator(generator=generator, size=(64, 32), description="test", temporal=temporal)
        out = np.zeros_like(labels)
        synthesize_sequence(models, labels[order], index, out, runtime, progress=False)
        return out

    forward, backward = np.arange(6), np.arange(6)[::-1]
    # Frame by frame, the order of the frames does not matter; with temporal smoothing it does.
    assert np.array_equal(synthesize(forward, False), synthesize(backward, False)[::-1])
    assert not np.array_equal(synthesize(forward, True), synthesize(backward, True)[::-1])


@pytest.mark.slow
def test_no_temporal_through_the_cli(straight_run, tmp_path: Path) -> None:
    data, _ = straight_run
    trained = run_edn(*_train_args(data, tmp_path, "fbf", "--no-temporal", iterations=4))
    assert trained.returncode == 0, trained.stderr
    checkpoint = load_checkpoint(tmp_path / "fbf" / "global.pt")
    assert checkpoint.options["temporal"] is False
    assert checkpoint.models["discriminator"]["scales.0.groups.0.0.weight"].shape[1] == 6
    face = run_edn(*_train_args(data, tmp_path, "face", "--no-temporal", "--init", tmp_path / "fbf" / "global.pt",
                                stage="face"))
    assert face.returncode == 1 and len(face.error_lines) == 1
    assert "face stage: frame by frame applies to the global and local stages" in face.error_lines[0]
    local = run_edn(*_train_args(data, tmp_path, "local", "--init", tmp_path / "fbf" / "global.pt", stage="local"))
    assert local.returncode == 1 and len(local.error_lines) == 1
    assert "trained frame by frame, the local stage is asked to train with temporal smoothing" in local.error_lines[0]

"""Reliability of the training stage: a target out of the frame most of the time (pairs
drawn only from the frames that show the person), rolling checkpoints and run files that
cannot be resumed from, damaged perceptual and torchvision weights, and a run killed twice
at seeded random steps that resumes each time.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import DEMO, ROOT, Completed, leftovers, run_edn, run_snakemake
from reliability_support import assert_clean_failure, first_bytes, pose_chain, run_killed, train_args
from training_data import background_args, write_subject

# -- a target out of the frame most of the time -------------------------------------------


#: people_one_by_one's first 9 s (90 frames at 10 fps): the empty room until frame 54
#: (tests/test_pose_detect.py), then a first person walking in and standing.
MOSTLY_EMPTY = (DEMO / "people_one_by_one.mp4", ("--end", "9"))


def _check_trained_on_the_person_only(poses_path: Path, index_path: Path, losses_path: Path) -> None:
    """The person is out of the frame for most of the video; training draws its pairs
    from the frames that show them, never from the empty room."""
    from edn.pose.keypoints import read_pose_table
    from edn.labels.label_store import read_label_index
    from edn.pose.skeleton import BODY

    poses, index = read_pose_table(poses_path), read_label_index(index_path)
    body = (poses.confidence[:, BODY] > 0).any(axis=1)
    assert poses.frame_count == index.frame_count == 90
    assert not body[:55].any() and 15 <= body.sum() < 45, body.nonzero()  # out of the frame most of the time
    assert (index.has_body == body).all()
    trained = [int(row.split(",")[1]) for row in losses_path.read_text().splitlines()[1:]]
    assert trained and all(body[t] and body[t + 1] for t in trained), trained


@pytest.mark.slow
def test_a_target_out_of_the_frame_most_of_the_time_trains_on_the_frames_that_show_them(
        tmp_path: Path, perceptual_weights: Path) -> None:
    target = pose_chain(MOSTLY_EMPTY[0], tmp_path / "target", *MOSTLY_EMPTY[1])
    result = run_edn(*train_args(target, tmp_path / "model", perceptual_weights))
    assert result.returncode == 0, result.stderr[-3000:]
    _check_trained_on_the_person_only(target["poses"], target["index"], tmp_path / "model" / "global.losses.csv")


@pytest.mark.slow
def test_a_target_out_of_the_frame_most_of_the_time_through_snakemake(tmp_path: Path) -> None:
    config = {"subjects": {"a": {"video": str(MOSTLY_EMPTY[0]), "end": 9.0}},
              "training": {"preset": "tiny", "method": "paper", "iterations": {"global": 3, "local": 3, "face": 3},
                           "checkpoint_every": 2, "sample_every": 2}}
    result = run_snakemake(tmp_path, config, "results/models/a/global.pt")
    assert result.returncode == 0, result.output[-3000:]
    _check_trained_on_the_person_only(tmp_path / "results/poses/a.filtered.parquet",
                                      tmp_path / "results/labels/a/index.csv",
                                      tmp_path / "results/models/a/global.losses.csv")


# -- artifacts reused across runs: checked before reuse, or made again ---------------------------


def _rolling(step: int, *, options: dict | None = None, weight: float = 1.0, optimizers: bool = True):
    import torch

    from edn.core.checkpoint import Checkpoint
    from edn.core.presets import PRESETS

    return Checkpoint(stage="global", step=step, preset=PRESETS["tiny"], options=options or {"seed": 0},
                      models={"generator": {"weight": torch.full((4,), weight)}},
                      optimizers={"generator": {"state": {}, "param_groups": []}} if optimizers else {})


def _damage(kind: str, path: Path) -> None:
    """Write a newest rolling checkpoint at ``path`` (step 4's name) that must not be resumed from."""
    import torch

    from edn.core.checkpoint import save_checkpoint

    if kind == "cut short":
        save_checkpoint(path, _rolling(4))
        first_bytes(path, path, 0.5)
    elif kind == "another format version":
        save_checkpoint(path, _rolling(4))
        data = torch.load(path, weights_only=True)
        torch.save({**data, "version": 99}, path)
    elif kind == "step not its name":
        save_checkpoint(path, _rolling(3))
    elif kind == "weights not finite":
        save_checkpoint(path, _rolling(4, weight=float("nan")))
    elif kind == "no optimizer states":
        save_checkpoint(path, _rolling(4, optimizers=False))
    else:  # "another run's options"
        save_checkpoint(path, _rolling(4, options={"seed": 1}))


ROLLING_DAMAGE = ["cut short", "another format version", "step not its name", "weights not finite",
                  "no optimizer states", "another run's options"]


@pytest.mark.parametrize("kind", ROLLING_DAMAGE)
def test_a_rolling_checkpoint_that_cannot_be_resumed_from_is_removed(kind: str, tmp_path: Path, caplog) -> None:
    from edn.core.presets import PRESETS
    from edn.training.run_directory import RunDirectory

    options = {"seed": 0, "inputs": {"frames.npy": [1, 2]}}
    run = RunDirectory(tmp_path / "run")
    assert run.start(options, PRESETS["tiny"], "global") is None
    run.save(_rolling(2))
    run.append_losses({"step": 1, "loss": 0.5})
    run.append_losses({"step": 2, "loss": 0.4})
    run.append_losses({"step": 3, "loss": 0.3})
    newest = run.checkpoints / "step_00000004.pt"
    _damage(kind, newest)
    with caplog.at_level("WARNING"):
        resumed = run.start(options, PRESETS["tiny"], "global")
    assert resumed is not None and resumed.step == 2  # the older checkpoint, whole
    assert not newest.exists() and run.checkpoint_files() == [run.checkpoints / "step_00000002.pt"]
    assert f"rolling checkpoint {newest} is not usable" in caplog.text
    assert [row.split(",")[0] for row in run.losses_file.read_text().splitlines()] == ["step", "1", "2"]

    _damage(kind, newest)  # the only one left damaged too: start over
    (run.checkpoints / "step_00000002.pt").unlink()
    with caplog.at_level("WARNING"):
        assert run.start(options, PRESETS["tiny"], "global") is None
    assert "training global from the start" in caplog.text
    assert not run.checkpoints.exists() and not run.losses_file.exists()
    assert json.loads(run.options_file.read_text()) == options


def test_a_rolling_checkpoint_that_does_not_fit_the_network_says_what_to_remove(tmp_path: Path) -> None:
    """Weights of another shape (the code changed since the run): the trainer's strict load
    fails, and the error names the files to remove; a final model's error stays as it was."""
    import torch

    from edn.core.checkpoint import load_state
    from edn.core.errors import EdnError

    rolling = tmp_path / "runs" / "juggler" / "global" / "checkpoints" / "step_00000004.pt"
    with pytest.raises(EdnError) as error:
        load_state(torch.nn.Linear(3, 2), _rolling(4), "generator", rolling)
    assert str(error.value).startswith(f"checkpoint {str(rolling)!r}: generator does not fit the network")
    assert str(error.value).endswith(f"; remove it to resume from an older checkpoint, or remove "
                                     f"{str(rolling.parent.parent)!r} to train from the start")
    with pytest.raises(EdnError) as error:
        load_state(torch.nn.Linear(3, 2), _rolling(4), "generator", tmp_path / "models" / "global.pt")
    assert "remove" not in str(error.value)


def test_unreadable_run_files_start_the_run_over_or_lose_their_bad_rows(tmp_path: Path, caplog) -> None:
    from edn.core.presets import PRESETS
    from edn.training.run_directory import RunDirectory

    options = {"seed": 0}
    run = RunDirectory(tmp_path / "run")
    run.start(options, PRESETS["tiny"], "global")
    run.save(_rolling(2))
    run.losses_file.write_text("step,loss\n1,0.5\nnot a step,0.4\n2,0.3\n3,0.2\n")
    assert run.start(options, PRESETS["tiny"], "global").step == 2
    assert run.losses_file.read_text().splitlines() == ["step,loss", "1,0.5", "2,0.3"]
    run.losses_file.write_bytes(b"\x00\xff garbage")
    with caplog.at_level("WARNING"):
        assert run.start(options, PRESETS["tiny"], "global").step == 2
    assert "cannot be read" in caplog.text and run.losses_file.read_text() == ""
    run.options_file.write_text("{ half written")
    with caplog.at_level("WARNING"):
        assert run.start(options, PRESETS["tiny"], "global") is None
    assert f"{run.options_file} cannot be read" in caplog.text and not run.checkpoints.exists()


@pytest.mark.slow
def test_training_resumes_from_the_newest_whole_checkpoint(tmp_path: Path, perceptual_weights: Path) -> None:
    """Through the CLI: a run's newest rolling checkpoint is damaged; the rerun says so,
    removes it, resumes from the one before and trains the steps after it again."""
    from edn.core.checkpoint import load_checkpoint

    data = write_subject(tmp_path / "subject")
    run_dir, output = tmp_path / "run", tmp_path / "global.pt"
    args = ["train", "--stage", "global", "--method", "paper", "--frames", data["frames"], "--labels", data["labels"],
            "--index", data["index"], "--perceptual", perceptual_weights, "--output", output, "--run-dir", run_dir,
            "--preset", "tiny", "--iterations", 4, "--checkpoint-every", 2, "--sample-every", 10, "--threads", 1,
            "--no-progress"]
    first = run_edn(*args)
    assert first.returncode == 0, first.stderr[-3000:]
    newest = run_dir / "checkpoints" / "step_00000004.pt"
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == ["step_00000002.pt", newest.name]
    (run_dir / "finished.json").unlink()  # as if killed after its last checkpoint
    output.unlink()
    first_bytes(newest, newest, 0.6)
    second = run_edn(*args)
    assert second.returncode == 0, second.stderr[-3000:]
    assert f"rolling checkpoint {newest} is not usable (not readable as an edn checkpoint" in second.stderr
    assert f"resuming global from {run_dir / 'checkpoints' / 'step_00000002.pt'} (step 2)" in second.stderr
    steps = [int(line.split(",")[0]) for line in (run_dir / "losses.csv").read_text().splitlines()[1:]]
    assert steps == [1, 2, 3, 4]
    assert load_checkpoint(output).step == 4 and load_checkpoint(newest).step == 4
    assert not leftovers(tmp_path)


def test_a_damaged_vgg19_in_the_torch_hub_cache_is_never_loaded(tmp_path: Path) -> None:
    """torchvision checks a weights file's hash only while downloading it."""
    hub = tmp_path / "torch" / "hub" / "checkpoints"
    hub.mkdir(parents=True)
    (hub / "vgg19-dcbb9e9d.pth").write_bytes(b"PK\x03\x04 a download cut short")
    output = tmp_path / "out" / "vgg19_imagenet.pt"
    result = subprocess.run([sys.executable, "-m", "edn", "perceptual-weights", "--network", "vgg19_imagenet",
                             "--output", str(output)], cwd=ROOT, capture_output=True, text=True, timeout=300,
                            env=dict(os.environ, TORCH_HOME=str(tmp_path / "torch")))
    assert_clean_failure(Completed(result.returncode, result.stdout, result.stderr), [output],
                         (str(hub / "vgg19-dcbb9e9d.pth"), "not the dcbb9e9d its name says", "remove it"), tmp_path)


def test_torchvision_weights_files_are_checked_against_the_hash_in_their_name(tmp_path: Path, monkeypatch) -> None:
    import hashlib

    from edn.core.errors import EdnError
    from edn.fake_detector.model import RESNET18_FILE, find_backbone_weights
    from edn.core.torch_file import hub_file_problem

    data = b"weights"
    whole = tmp_path / f"net-{hashlib.sha256(data).hexdigest()[:8]}.pth"
    whole.write_bytes(data)
    assert hub_file_problem(whole) is None
    (tmp_path / "plain.pth").write_bytes(b"anything")
    assert hub_file_problem(tmp_path / "plain.pth") is None  # no hash in its name: not checked
    whole.write_bytes(data[:-1])
    assert "the file is damaged or incomplete" in hub_file_problem(whole)

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    (tmp_path / "torch" / "hub" / "checkpoints").mkdir(parents=True)
    (tmp_path / "torch" / "hub" / "checkpoints" / RESNET18_FILE).write_bytes(b"cut short")
    with pytest.raises(EdnError, match=f"{RESNET18_FILE}.*not the f37072fd its name says.*remove it"):
        find_backbone_weights(None)


# -- a run killed twice ----------------------------------------------------------------------


def _loss_rows(run_dir: Path) -> int:
    try:
        return max(0, len((run_dir / "losses.csv").read_text().splitlines()) - 1)
    except FileNotFoundError:
        return 0


def _checkpoint_steps(run_dir: Path) -> list[int]:
    return sorted(int(p.stem.split("_")[1]) for p in (run_dir / "checkpoints").glob("step_*.pt"))


@pytest.mark.slow
def test_training_killed_twice_at_random_steps_resumes_each_time(tmp_path: Path, perceptual_weights: Path) -> None:
    """tests/test_training.py checks that a run killed once resumes to the very weights of
    an uninterrupted one; here one run is killed at seeded random steps, by SIGKILL and
    then by SIGTERM, and must resume from the newest checkpoint each time."""
    from edn.core.checkpoint import load_checkpoint
    from edn.core.presets import PRESETS

    data = write_subject(tmp_path / "subject")
    run_dir, output = tmp_path / "run", tmp_path / "global.pt"
    iterations, every = 30, 5
    args = ["train", "--stage", "global", "--frames", data["frames"], "--labels", data["labels"], "--index",
            data["index"], *background_args(data), "--perceptual", perceptual_weights, "--output", output,
            "--run-dir", run_dir, "--preset", "tiny", "--iterations", iterations, "--checkpoint-every", every,
            "--sample-every", 10, "--deterministic", "--threads", 1, "--no-progress"]
    rng = random.Random("train")
    first = rng.randint(every + 1, 14)  # steps done when SIGKILL arrives: at least one checkpoint written
    killed = run_killed(args, kill=signal.SIGKILL, when=lambda: _loss_rows(run_dir) >= first, log=tmp_path / "1.log")
    assert killed.returncode == -signal.SIGKILL and not killed.survivors and not output.exists()
    saved = _checkpoint_steps(run_dir)[-1]
    assert every <= saved <= _loss_rows(run_dir)

    second = rng.randint(saved + 2, iterations - 4)
    stopped = run_killed(args, kill=signal.SIGTERM, when=lambda: _loss_rows(run_dir) >= second,
                         log=tmp_path / "2.log")
    assert f"resuming global from {run_dir / 'checkpoints' / f'step_{saved:08d}.pt'} (step {saved})" in stopped.stderr
    # SIGTERM: the iteration running finishes and is saved as a checkpoint; exit 1 with one error line.
    assert stopped.returncode == 1 and not stopped.survivors and not output.exists(), stopped.stderr[-2000:]
    at = _checkpoint_steps(run_dir)[-1]
    assert at >= second and f"stopped at step {at} of {iterations}" in stopped.stderr
    for step in _checkpoint_steps(run_dir):
        assert load_checkpoint(run_dir / "checkpoints" / f"step_{step:08d}.pt").step == step

    done = run_edn(*args)
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"(step {at})" in done.stderr
    final = load_checkpoint(output, stages=("global",), preset=PRESETS["tiny"])
    assert final.step == iterations and final.optimizers == {}
    steps = [int(line.split(",")[0]) for line in (run_dir / "losses.csv").read_text().splitlines()[1:]]
    assert steps == list(range(1, iterations + 1))  # every step once: none lost, none twice
    assert not leftovers(tmp_path)

"""The training loop of one stage: resume, iterate, checkpoint, sample, finish."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from edn.checkpoint import Checkpoint, load_checkpoint, save_checkpoint, training_mode
from edn.errors import EdnError
from edn.losses import PerceptualLoss
from edn.perceptual import load_perceptual
from edn.presets import Preset
from edn.training.data import Split, TrainingFrames, pair_for_step, split_pairs
from edn.training.run_directory import RunDirectory
from edn.training.samples import evenly_spaced, to_uint8, write_grid
from edn.training.stages import Runtime, StageTrainer

log = logging.getLogger(__name__)

class TrainingStopped(EdnError):
    """Training was asked to stop (SIGTERM); its progress is saved."""


#: The stage each stage starts from.
INIT_STAGES = {"global": (), "local": ("global",), "face": ("global", "local")}
HELDOUT_GRID_ROWS = 6


@dataclass(frozen=True)
class StageOptions:
    """What a stage trains and how. Everything here but the three bookkeeping
    intervals decides the result, so a run resumes only when these match.

    ``temporal``: False trains the global or local stage frame by frame (the
    paper's FBF ablation). ``iterations``: pairs trained on (batch 1), the learning rate constant for
    the first ``1 - decay_fraction`` of them, then linearly decayed to 0 (Adam,
    2e-4, betas 0.5/0.999 in the paper). ``downsample``: train at the working
    size divided by this (1 or 2). ``holdout_fraction``: the last part of the
    video never trained on.
    """

    stage: str
    iterations: int
    learning_rate: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999
    decay_fraction: float = 0.5
    holdout_fraction: float = 0.1
    seed: int = 0
    downsample: int = 1
    perceptual_network: str = "vgg16_hed"
    temporal: bool = True
    checkpoint_every: int = 100
    sample_every: int = 100
    keep_checkpoints: int = 2

    def __post_init__(self) -> None:
        if self.stage not in INIT_STAGES:
            raise EdnError(f"stage {self.stage!r}: must be one of {', '.join(INIT_STAGES)}")
        if self.iterations < 1:
            raise EdnError(f"iterations {self.iterations}: must be at least 1")
        if not 0.0 <= self.decay_fraction <= 1.0:
            raise EdnError(f"decay fraction {self.decay_fraction}: must be in [0, 1]")
        if self.stage == "face" and not self.temporal:
            raise EdnError("face stage: frame by frame applies to the global and local stages "
                           "(the face stage follows the generator it starts from)")
        if self.checkpoint_every < 1 or self.sample_every < 1:
            raise EdnError("checkpoint and sample intervals must be at least 1 step")

    def identity(self) -> dict:
        """The options that decide the result (a run resumes only if they are unchanged)."""
        data = asdict(self)
        for bookkeeping in ("checkpoint_every", "sample_every", "keep_checkpoints"):
            del data[bookkeeping]
        return data


def learning_rate(step: int, options: StageOptions) -> float:
    """Constant, then linear decay to 0 over the last ``decay_fraction`` of the iterations (pix2pixHD)."""
    decay_steps = round(options.iterations * options.decay_fraction)
    decay_start = options.iterations - decay_steps
    if step < decay_start or decay_steps == 0:
        return options.learning_rate
    return options.learning_rate * (options.iterations - step) / decay_steps


def _fingerprint(*paths: str | os.PathLike) -> dict:
    # Size and modification time: a re-rendered input restarts the run instead of resuming it.
    return {str(p): [os.stat(p).st_size, os.stat(p).st_mtime_ns] for p in paths}


def train_stage(*, options: StageOptions, preset: Preset, frames: str | os.PathLike, labels: str | os.PathLike,
                index: str | os.PathLike, perceptual_weights: str | os.PathLike, output: str | os.PathLike,
                run_dir: str | os.PathLike, init: str | os.PathLike | None, runtime: Runtime,
                progress: bool = True, stop_requested: Callable[[], bool] = lambda: False) -> Path:
    """Train one stage to ``options.iterations`` and write the final model to ``output``.

    Resumes from the newest rolling checkpoint in ``run_dir`` when the run there
    was started with the same options, inputs and previous-stage checkpoint.
    Returns the path of the held-out sample grid (or of the last training grid
    when nothing is held out). ``stop_requested`` is asked after every
    iteration (the CLI sets it on SIGTERM, e.g. a cluster's time limit): when
    true, a rolling checkpoint of the finished iterations is saved and
    :class:`TrainingStopped` raised, so a rerun loses nothing.
    """
    stage = options.stage
    init_checkpoint = None
    if INIT_STAGES[stage]:
        if init is None:
            raise EdnError(f"{stage} stage: needs the previous stage's checkpoint (--init)")
        if not Path(init).is_file():
            needed = Path(init).stem if Path(init).stem in INIT_STAGES[stage] else " or ".join(INIT_STAGES[stage])
            raise EdnError(f"previous-stage checkpoint {str(init)!r}: file not found (train the {needed} stage first)")
        init_checkpoint = load_checkpoint(init, stages=INIT_STAGES[stage], preset=preset,
                                          what="previous-stage checkpoint")
        if stage == "local" and options.downsample != 1:
            raise EdnError(f"local stage: trains at the working size (downsample 1, not {options.downsample})")
        if stage == "face" and init_checkpoint.options["downsample"] != options.downsample:
            raise EdnError(f"previous-stage checkpoint {str(init)!r}: trained at 1/{init_checkpoint.options['downsample']}"
                           f" of the working size, the face stage asks for 1/{options.downsample}")
        if stage == "local" and init_checkpoint.temporal != options.temporal:
            raise EdnError(f"previous-stage checkpoint {str(init)!r}: trained {training_mode(init_checkpoint.temporal)}"
                           f", the local stage is asked to train {training_mode(options.temporal)}")
    generator_kind = stage if stage != "face" else init_checkpoint.options["generator_kind"]
    multiple = preset.size_multiple * (2 if generator_kind == "local" else 1)
    data = TrainingFrames(frames, labels, index, downsample=options.downsample, size_multiple=multiple)
    split = split_pairs(data.index, options.holdout_fraction, need_face=stage == "face", source=str(frames))
    if stage == "face":
        _check_face_boxes(data, split)
    perceptual = PerceptualLoss(load_perceptual(perceptual_weights, options.perceptual_network))

    torch.manual_seed(options.seed)  # network initialisation
    trainer = StageTrainer(stage, preset, init_checkpoint, str(init) if init else None, perceptual, runtime,
                           options.learning_rate, (options.beta1, options.beta2), temporal=options.temporal)
    run_options = {
        **options.identity(), "temporal": trainer.temporal, "preset": preset.to_dict(), "generator_kind": generator_kind,
        "base_stage": init_checkpoint.stage if init_checkpoint else None,
        "image_size": list(data.size), "inputs": _fingerprint(frames, labels, index, perceptual_weights,
                                                              *([init] if init else [])),
    }
    run = RunDirectory(run_dir, keep=options.keep_checkpoints)
    resume = run.start(run_options, preset, stage)
    step = 0
    if resume is not None:
        trainer.load(resume, str(run.checkpoint_files()[-1]))
        step = resume.step
    log.info("%s stage: %d pairs (frames 0..%d), %d held out, %dx%d, %s, %d of %d iterations done",
             stage, len(split.pairs), split.first_heldout - 1, len(split.heldout), *data.size, runtime.device,
             step, options.iterations)

    def checkpoint(with_optimizers: bool) -> Checkpoint:
        return Checkpoint(stage=stage, step=step, preset=preset,
                          options={key: value for key, value in run_options.items() if key != "inputs"},
                          models=trainer.model_states(),
                          optimizers=trainer.optimizer_states() if with_optimizers else {})

    from tqdm import tqdm

    bar = tqdm(total=options.iterations, initial=step, desc=f"train {stage}", unit="it", disable=not progress,
               mininterval=1.0, dynamic_ncols=True)
    started, start_step = time.perf_counter(), step
    last_grid = None
    while step < options.iterations:
        lr = learning_rate(step, options)
        trainer.set_learning_rate(lr)
        t = pair_for_step(split, step, options.seed)
        tick = time.perf_counter()
        losses = trainer.step(data.sample(t), data.sample(t + 1))
        step += 1
        run.append_losses({"step": step, "frame": t, "lr": lr, **{k: round(v, 6) for k, v in losses.items()},
                           "seconds": round(time.perf_counter() - tick, 4)})
        bar.update(1)
        bar.set_postfix(G=f"{losses['g_total']:.3f}", D=f"{losses['d_total']:.3f}", refresh=False)
        if step % options.sample_every == 0 or step == options.iterations:
            last_grid = run.samples / f"step_{step:08d}.png"
            _write_pair_grid(last_grid, trainer.last_pair)
        if step % options.checkpoint_every == 0 and step < options.iterations:
            run.save(checkpoint(with_optimizers=True))
            log.info("step %d: G %.4f D %.4f (%.2f it/s)", step, losses["g_total"], losses["d_total"],
                     (step - start_step) / max(time.perf_counter() - started, 1e-9))
        if stop_requested() and step < options.iterations:
            bar.close()
            path = run.save(checkpoint(with_optimizers=True))
            raise TrainingStopped(f"{stage} stage: stopped at step {step} of {options.iterations}; "
                                  f"checkpoint {str(path)!r} saved, rerun to resume")
    bar.close()
    run.save(checkpoint(with_optimizers=True))
    grid = _write_heldout_grid(run.samples / "heldout_final.png", trainer, data, split.heldout)
    save_checkpoint(output, checkpoint(with_optimizers=False))
    run.finish(step, output)
    shown = grid or last_grid
    log.info("%s stage done: model %s; samples %s", stage, output, shown)
    return shown


#: The perceptual network pools 4 times before relu5_1: crops need 16 px.
MIN_FACE_BOX_PX = 16


def _check_face_boxes(data: TrainingFrames, split: Split) -> None:
    sides = data.index.face_boxes[:, 2:] - data.index.face_boxes[:, :2]
    used = np.concatenate([split.pairs, split.pairs + 1])
    smallest = int(sides[used].min()) // data.downsample
    if smallest < MIN_FACE_BOX_PX:
        raise EdnError(f"label index {str(data.index_path)!r}: face boxes of {smallest} px at the training size; "
                       f"the face stage needs at least {MIN_FACE_BOX_PX} (use larger frames)")


def _write_pair_grid(path: Path, pair: tuple[torch.Tensor, ...] | None) -> None:
    if pair is None:
        return
    label0, label1, fake0, fake1, real0, real1 = (x[0] for x in pair)
    write_grid(path, [[to_uint8(label0, signed=False), to_uint8(fake0, signed=True), to_uint8(real0, signed=True)],
                      [to_uint8(label1, signed=False), to_uint8(fake1, signed=True), to_uint8(real1, signed=True)]])


def _write_heldout_grid(path: Path, trainer: StageTrainer, data: TrainingFrames, heldout: range) -> Path | None:
    """Render the held-out frames in order (each fed the previous output) and show a few:
    label | generated | real per row. None when nothing is held out."""
    if not len(heldout):
        return None
    samples = [data.sample(t) for t in heldout]
    generated = trainer.render_sequence(samples)
    rows = [[to_uint8(samples[i].label[0], signed=False), to_uint8(generated[i][0], signed=True),
             to_uint8(samples[i].image[0], signed=True)] for i in evenly_spaced(len(samples), HELDOUT_GRID_ROWS)]
    write_grid(path, rows)
    return path

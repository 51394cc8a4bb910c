"""The training loop of one stage: resume, iterate, checkpoint, sample, finish."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from edn.core.atomic import copy_file
from edn.background.plate import read_plate, read_plate_report
from edn.core.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from edn.training.distributed import SINGLE, Group
from edn.core.errors import EdnError
from edn.models.generation import generate_frames
from edn.training.losses import PerceptualLoss
from edn.core.options import TrainingOptions
from edn.training.perceptual import load_perceptual
from edn.core.presets import Preset, get_preset
from edn.core.runtime import Runtime
from edn.training.data import Batch, TrainingFrames, history_for_step, pair_for_step, samples_of_step, split_pairs
from edn.training.face_stage import FaceStageTrainer
from edn.training.main_stage import MainStageTrainer
from edn.training.run_directory import RunDirectory
from edn.training.samples import evenly_spaced, to_uint8, write_grid
from edn.training.trainer import Trainer

log = logging.getLogger(__name__)


class TrainingStopped(EdnError):
    """Training was asked to stop (SIGTERM); its progress is saved."""


#: The stages each stage can start from.
INIT_STAGES = {"global": (), "local": ("global",), "face": ("global", "local")}
#: The trainer of each stage.
TRAINERS = {"global": MainStageTrainer, "local": MainStageTrainer, "face": FaceStageTrainer}
HELDOUT_GRID_ROWS = 6


def learning_rate(step: int, options: TrainingOptions) -> float:
    """Constant, then linear decay to 0 over the last ``decay_fraction`` of the iterations (pix2pixHD)."""
    decay_steps = round(options.iterations * options.decay_fraction)
    decay_start = options.iterations - decay_steps
    if step < decay_start or decay_steps == 0:
        return options.learning_rate
    return options.learning_rate * (options.iterations - step) / decay_steps


def _fingerprint(*paths: str | os.PathLike) -> dict:
    # Size and modification time: a re-rendered input restarts the run instead of resuming it.
    return {str(p): [os.stat(p).st_size, os.stat(p).st_mtime_ns] for p in paths}


def generator_kind(stage: str, init: Checkpoint | None) -> str:
    """The main generator a stage trains or starts from: global or local (the face stage: its init's)."""
    return init.options["generator_kind"] if stage == "face" else stage


def load_init(stage: str, init: str | os.PathLike | None, preset: Preset) -> Checkpoint | None:
    """The previous stage's checkpoint a stage starts from (None for the global stage)."""
    if not INIT_STAGES[stage]:
        return None
    if init is None:
        raise EdnError(f"{stage} stage: needs the previous stage's checkpoint (--init)")
    if not Path(init).is_file():
        needed = Path(init).stem if Path(init).stem in INIT_STAGES[stage] else " or ".join(INIT_STAGES[stage])
        raise EdnError(f"previous-stage checkpoint {str(init)!r}: file not found (train the {needed} stage first)")
    return load_checkpoint(init, stages=INIT_STAGES[stage], preset=preset, what="previous-stage checkpoint")


@dataclass(frozen=True)
class Background:
    """A target's background files (``edn background``): the plate, its report, the person's masks."""

    plate: str | os.PathLike
    report: str | os.PathLike
    masks: str | os.PathLike

    def paths(self) -> list[str | os.PathLike]:
        return [self.plate, self.report, self.masks]


def uses_compositing(options: TrainingOptions, init: Checkpoint | None, background: Background | None) -> bool:
    """Whether this stage draws the person over the plate: the composite method on a target whose camera
    is static (a moving camera falls back to the paper's whole frame); later stages follow their init."""
    if init is not None:
        return init.compositing
    if options.method != "composite":
        return False
    if background is None:
        raise EdnError("the composite method needs the target's background plate, report and person masks "
                       "(--plate, --plate-report, --masks)")
    report = read_plate_report(background.report)
    if not report.static:
        log.warning("target %s: the camera moves (residual %.1f above %.1f): trained on the whole frame, as in "
                    "the paper", report.subject, report.camera_residual, report.max_camera_residual)
    return report.static


def train_stage(*, options: TrainingOptions, frames: str | os.PathLike, labels: str | os.PathLike,
                index: str | os.PathLike, perceptual_weights: str | os.PathLike, output: str | os.PathLike,
                run_dir: str | os.PathLike, init: str | os.PathLike | None, runtime: Runtime,
                background: Background | None = None, losses_output: str | os.PathLike | None = None,
                progress: bool = True, stop_requested: Callable[[], bool] = lambda: False,
                group: Group = SINGLE) -> Path | None:
    """Train one stage to ``options.iterations`` and write the final model to ``output``
    (and, when given, a copy of the run's losses.csv to ``losses_output``).

    ``background``: the target's plate files, which the composite method draws over.

    Resumes from the newest rolling checkpoint in ``run_dir`` when the run there
    was started with the same options, inputs and previous-stage checkpoint.
    Returns the path of the held-out sample grid (or of the last training grid
    when nothing is held out). ``stop_requested`` is asked after every
    iteration (the CLI sets it on SIGTERM, e.g. a cluster's time limit): when
    true, a rolling checkpoint of the finished iterations is saved and
    :class:`TrainingStopped` raised, so a rerun loses nothing.

    ``group``: the data-parallel processes this one trains with
    (:mod:`edn.training.distributed`): each trains on its own ``batch_size`` pairs of every
    step, the gradients averaged over all; rank 0 alone writes the run directory,
    the model and the losses (the others return None). A stop asked of any process
    stops all of them after the same step.
    """
    stage = options.stage
    preset = get_preset(options.preset)
    trainer_class = TRAINERS[stage]
    init_checkpoint = load_init(stage, init, preset)
    init_path = str(init) if init else None
    trainer_class.check_init(options, init_checkpoint, init_path)
    kind = generator_kind(stage, init_checkpoint)
    compositing = uses_compositing(options, init_checkpoint, background)
    if not compositing:
        options = options.replace(temporal_unroll_frames=0)  # the paper's pair from the zero image
    multiple = preset.size_multiple * (2 if kind == "local" else 1)
    plate = read_plate(background.plate) if compositing else None
    data = TrainingFrames(frames, labels, index, downsample=options.downsample, size_multiple=multiple,
                          plate=plate, masks_path=background.masks if compositing else None)
    split = split_pairs(data.index, options.holdout_fraction, need_face=trainer_class.needs_face, source=str(frames))
    if trainer_class.needs_face:
        trainer_class.check_data(data, split)
    perceptual = PerceptualLoss(load_perceptual(perceptual_weights, options.perceptual_network))
    torch.manual_seed(options.seed)  # network initialisation
    trainer = trainer_class.for_stage(options, preset, init_checkpoint, init_path, perceptual, runtime,
                                      data.plate)
    trainer.group = group
    group.broadcast_modules(trainer.saved.values())
    window_size = data.window_size
    run_options = {
        **options.identity(), "temporal": trainer.temporal, "preset": preset.to_dict(), "generator_kind": kind,
        "base_stage": init_checkpoint.stage if init_checkpoint else None, "compositing": compositing,
        "image_size": list(data.size), "window_size": list(window_size) if window_size else None,
        "inputs": _fingerprint(frames, labels, index, perceptual_weights, *([init] if init else []),
                               *(background.paths() if compositing else [])),
    }
    run = RunDirectory(run_dir, keep=options.keep_checkpoints)
    resume = run.start(run_options, preset, stage) if group.is_main else None
    resume_file = group.broadcast_object(str(run.checkpoint_files()[-1]) if resume is not None else None)
    step = 0
    if resume_file is not None:
        resume = resume or load_checkpoint(resume_file, stages=(stage,), preset=preset, what="rolling checkpoint")
        trainer.load(resume, resume_file)
        step = resume.step
    drawn = (f"the person in {window_size[0]}x{window_size[1]} windows over the plate" if compositing
             else "the whole frame")
    if group.is_main:
        shared = f", {group.world_size} processes" if group.active else ""
        log.info("%s stage: %d pairs (frames 0..%d), %d held out, %dx%d, %s, %s, batch %d%s, "
                 "%d of %d iterations done",
                 stage, len(split.pairs), split.first_heldout - 1, len(split.heldout), *data.size, drawn,
                 runtime.device, options.batch_size, shared, step, options.iterations)

    def checkpoint(with_optimizers: bool) -> Checkpoint:
        return Checkpoint(stage=stage, step=step, preset=preset,
                          options={key: value for key, value in run_options.items() if key != "inputs"},
                          models=trainer.model_states(),
                          optimizers=trainer.optimizer_states() if with_optimizers else {})

    from tqdm import tqdm

    bar = tqdm(total=options.iterations, initial=step, desc=f"train {stage}", unit="it",
               disable=not (progress and group.is_main), mininterval=1.0, dynamic_ncols=True)
    started, start_step = time.perf_counter(), step
    last_grid = None
    unroll = options.temporal_unroll_frames if trainer.temporal else 0
    while step < options.iterations:
        lr = learning_rate(step, options)
        trainer.set_learning_rate(lr)
        numbers = samples_of_step(step, options.batch_size, group.rank, group.world_size)
        firsts = [pair_for_step(split, n, options.seed) for n in numbers]
        histories = [[data.sample(h) for h in history_for_step(split, data.index, t, n, options.seed, unroll)]
                     for t, n in zip(firsts, numbers)]
        tick = time.perf_counter()
        losses = trainer.step(Batch.of([data.sample(t) for t in firsts]),
                              Batch.of([data.sample(t + 1) for t in firsts]), histories)
        losses = group.mean(losses, runtime.device)
        step += 1
        stopping = group.any(stop_requested(), runtime.device) and step < options.iterations
        if not group.is_main:
            if stopping:
                raise TrainingStopped(f"{stage} stage: stopped at step {step} of {options.iterations}")
            continue
        run.append_losses({"step": step, "frame": firsts[0], "lr": lr,
                           **{k: round(v, 6) for k, v in losses.items()},
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
        if stopping:
            bar.close()
            path = run.save(checkpoint(with_optimizers=True))
            raise TrainingStopped(f"{stage} stage: stopped at step {step} of {options.iterations}; "
                                  f"checkpoint {str(path)!r} saved, rerun to resume")
    bar.close()
    if not group.is_main:
        return None
    run.save(checkpoint(with_optimizers=True))
    grid = _write_heldout_grid(run.samples / "heldout_final.png", trainer, data, split.heldout)
    if losses_output is not None:
        copy_file(run.losses_file, losses_output)
    save_checkpoint(output, checkpoint(with_optimizers=False))
    run.finish(step, output)
    shown = grid or last_grid
    log.info("%s stage done: model %s; samples %s", stage, output, shown)
    return shown


def _write_pair_grid(path: Path, pair: tuple[torch.Tensor, ...] | None) -> None:
    if pair is None:
        return
    label0, label1, fake0, fake1, real0, real1 = (x[0] for x in pair)
    write_grid(path, [[to_uint8(label0, signed=False), to_uint8(fake0, signed=True), to_uint8(real0, signed=True)],
                      [to_uint8(label1, signed=False), to_uint8(fake1, signed=True), to_uint8(real1, signed=True)]])


def _write_heldout_grid(path: Path, trainer: Trainer, data: TrainingFrames, heldout: range) -> Path | None:
    """Render the held-out frames in order (each fed the previous output) and show a few:
    label | generated | real per row. None when nothing is held out."""
    if not len(heldout):
        return None
    samples = [data.sample(t) for t in heldout]
    frames = generate_frames(trainer.frame_generator(), [s.label for s in samples],
                             [s.box if s.has_face else None for s in samples], trainer.runtime,
                             windows=[s.window for s in samples] if data.plate is not None else None)
    generated = [frame.cpu() for frame in frames]
    rows = [[to_uint8(samples[i].label[0], signed=False), to_uint8(generated[i][0], signed=True),
             to_uint8(samples[i].image[0], signed=True)] for i in evenly_spaced(len(samples), HELDOUT_GRID_ROWS)]
    write_grid(path, rows)
    return path

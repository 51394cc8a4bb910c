"""The training loop of one stage: set up, then train step by step, then finish.

:func:`train_stage` reads as a run goes: :func:`set_up_stage` checks the inputs,
loads the training set, constructs the networks and finds the resume point, and
hands back one :class:`StageSetup`; each iteration is :func:`train_step`, then
rank 0's bookkeeping (:func:`record_step`: the loss log, sample grids, rolling
checkpoints); :func:`finish_stage` writes the final model.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import torch

from edn.background.camera import FramePlates, camera_moves, read_frame_plates
from edn.background.plate import PlateReport, fallback_message, read_plate, read_plate_report
from edn.core.atomic import copy_file
from edn.core.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from edn.core.errors import EdnError
from edn.core.options import TrainingOptions, exemplar_mode
from edn.core.presets import Preset, get_preset
from edn.core.runtime import Runtime
from edn.training.data import (Batch, Split, TrainingFrames, exemplar_choice, history_for_step, pair_for_step,
                               samples_of_step, split_pairs)
from edn.training.distributed import SINGLE, Group
from edn.training.face_stage import FaceStageTrainer
from edn.training.losses import PerceptualLoss
from edn.training.main_stage import MainStageTrainer
from edn.training.perceptual import load_perceptual
from edn.training.run_directory import RunDirectory
from edn.training.samples import write_heldout_grid, write_pair_grid
from edn.training.trainer import Trainer

log = logging.getLogger(__name__)


class TrainingStopped(EdnError):
    """Training was asked to stop (SIGTERM); its progress is saved."""


#: The stages each stage can start from.
INIT_STAGES = {"global": (), "local": ("global",), "face": ("global", "local")}
#: The trainer of each stage.
TRAINERS = {"global": MainStageTrainer, "local": MainStageTrainer, "face": FaceStageTrainer}


def learning_rate(step: int, options: TrainingOptions) -> float:
    """Constant, then linear decay to 0 over the last ``decay_fraction`` of the iterations (pix2pixHD)."""
    decay_steps = round(options.iterations * options.decay_fraction)
    decay_start = options.iterations - decay_steps
    if step < decay_start or decay_steps == 0:
        return options.learning_rate
    return options.learning_rate * (options.iterations - step) / decay_steps


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
    """A target's background files (``edn background``): the plate, its report, the person's masks, and
    for a camera that moves the mosaic and the camera table (the plate is then warped into each frame's
    camera, :mod:`edn.background.camera`)."""

    plate: str | os.PathLike
    report: str | os.PathLike
    masks: str | os.PathLike
    mosaic: str | os.PathLike | None = None
    camera: str | os.PathLike | None = None

    def paths(self, camera_moves: bool = False) -> list[str | os.PathLike]:
        """The files training reads: the mosaic and camera table only when the camera moves."""
        return [self.plate, self.report, self.masks, *([self.mosaic, self.camera] if camera_moves else [])]


def frame_plates(background: Background, report: PlateReport) -> FramePlates | None:
    """The plate in each frame's camera when the camera moves (None for a still camera, whose one plate is
    drawn over as it is); EdnError when the mosaic or camera table is not given."""
    if not camera_moves(report):
        return None
    if background.mosaic is None or background.camera is None:
        raise EdnError(f"target {report.subject}: the camera moves ({report.motion_model}, up to "
                       f"{report.camera_motion:.1f} px), so the composite method draws over the plate warped into "
                       "each frame's camera: give the mosaic and the camera table (--mosaic, --camera, from edn "
                       "background)")
    return read_frame_plates(background.mosaic, background.camera, report.reference_origin, report.frame_size,
                             report.content_box)


@dataclass(frozen=True)
class Exemplars:
    """A target's warped exemplars, one or more per frame (``edn training-exemplars``): the images over the plate
    and their validity masks, which a generator conditioned on them (``training.exemplar``) is fed."""

    images: str | os.PathLike
    validity: str | os.PathLike

    def paths(self) -> list[str | os.PathLike]:
        return [self.images, self.validity]


def uses_exemplar(options: TrainingOptions, init: Checkpoint | None, compositing: bool,
                  exemplars: Exemplars | None) -> str:
    """How this stage's generator is conditioned on the warped exemplar (none, input or residual):
    ``options.exemplar`` for the composite method (the local and face stages follow their init;
    an init without the option was not conditioned, one that saved it as true was fed it as input);
    the files must then be given."""
    wanted = exemplar_mode(init.options.get("exemplar")) if init is not None else options.exemplar
    if wanted != "none" and not compositing:
        if init is None:
            log.warning("exemplar: the generator draws the whole frame here, it is not conditioned on exemplars")
        return "none"
    if wanted != "none" and exemplars is None:
        raise EdnError(f"{options.stage} stage: the generator is conditioned on the warped exemplars; give them "
                       "(--exemplars and --exemplar-validity, from edn training-exemplars)")
    return wanted


def uses_compositing(options: TrainingOptions, init: Checkpoint | None, background: Background | None) -> bool:
    """Whether this stage draws the person over the plate: the composite method on a target whose background
    holds still after registration (the camera may move: the plate is then warped into each frame's camera);
    a background that moves by itself falls back to the paper's whole frame. Later stages follow their init."""
    if init is not None:
        return init.compositing
    if options.method != "composite":
        return False
    if background is None:
        raise EdnError("the composite method needs the target's background plate, report and person masks "
                       "(--plate, --plate-report, --masks)")
    report = read_plate_report(background.report)
    if report.method != "composite":
        log.warning("%s", fallback_message(report) if report.registered_residual is not None else
                    f"target {report.subject}: the camera moves (residual {report.camera_residual:.1f} above "
                    f"{report.max_camera_residual:.1f}): trained on the whole frame, as in the paper")
    return report.method == "composite"


@dataclass(frozen=True)
class StageInputs:
    """The files one stage trains from: the target's frames, labels and label index, the
    perceptual network, the previous stage's checkpoint (None for the global stage) and
    the background files the composite method draws over (None for the paper's method)."""

    frames: str | os.PathLike
    labels: str | os.PathLike
    index: str | os.PathLike
    perceptual_weights: str | os.PathLike
    init: str | os.PathLike | None = None
    background: Background | None = None
    exemplars: Exemplars | None = None

    def fingerprint(self, compositing: bool, exemplar: bool = False, camera_moves: bool = False) -> dict:
        """Size and modification time of every input: a re-rendered input restarts the run instead of resuming it."""
        paths = [self.frames, self.labels, self.index, self.perceptual_weights, *([self.init] if self.init else []),
                 *(self.background.paths(camera_moves) if compositing else []),
                 *(self.exemplars.paths() if exemplar else [])]
        return {str(p): [os.stat(p).st_size, os.stat(p).st_mtime_ns] for p in paths}


@dataclass(frozen=True)
class StageSetup:
    """One stage ready to train (:func:`set_up_stage`).

    ``options``: as trained (the paper's method draws no history before a pair).
    ``run_options``: the run's identity, written to options.json and, but for the
    input fingerprints, into every checkpoint. ``start_step``: the iterations done
    before this process started (the resume point; 0 for a new run).
    """

    options: TrainingOptions
    preset: Preset
    compositing: bool
    data: TrainingFrames
    split: Split
    trainer: Trainer
    run: RunDirectory
    run_options: dict
    start_step: int
    runtime: Runtime
    group: Group

    @property
    def stage(self) -> str:
        return self.options.stage

    def checkpoint(self, step: int, *, with_optimizers: bool) -> Checkpoint:
        return Checkpoint(stage=self.stage, step=step, preset=self.preset,
                          options={key: value for key, value in self.run_options.items() if key != "inputs"},
                          models=self.trainer.model_states(),
                          optimizers=self.trainer.optimizer_states() if with_optimizers else {})


def train_stage(*, options: TrainingOptions, frames: str | os.PathLike, labels: str | os.PathLike,
                index: str | os.PathLike, perceptual_weights: str | os.PathLike, output: str | os.PathLike,
                run_dir: str | os.PathLike, init: str | os.PathLike | None, runtime: Runtime,
                background: Background | None = None, exemplars: Exemplars | None = None,
                losses_output: str | os.PathLike | None = None,
                progress: bool = True, stop_requested: Callable[[], bool] = lambda: False,
                group: Group = SINGLE) -> Path | None:
    """Train one stage to ``options.iterations`` and write the final model to ``output``
    (and, when given, a copy of the run's losses.csv to ``losses_output``).

    ``background``: the target's plate files, which the composite method draws over;
    ``exemplars``: the target's warped exemplars, which a conditioned generator corrects.

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
    # Set up: check the inputs, load the training set, construct the networks, resume.
    inputs = StageInputs(frames, labels, index, perceptual_weights, init, background, exemplars)
    setup = set_up_stage(options, inputs, run_dir, runtime, group)
    iterations = setup.options.iterations

    # Train.
    from tqdm import tqdm

    bar = tqdm(total=iterations, initial=setup.start_step, desc=f"train {setup.stage}", unit="it",
               disable=not (progress and group.is_main), mininterval=1.0, dynamic_ncols=True)
    started, step, last_grid = time.perf_counter(), setup.start_step, None
    while step < iterations:
        losses, row = train_step(setup, step)
        step += 1
        stopping = group.any(stop_requested(), runtime.device) and step < iterations
        if group.is_main:
            last_grid = record_step(setup, step, losses, row, bar, started) or last_grid
        if stopping:
            bar.close()
            stop(setup, step)
    bar.close()

    # Finish.
    if not group.is_main:
        return None
    return finish_stage(setup, step, output, losses_output, last_grid)


def set_up_stage(options: TrainingOptions, inputs: StageInputs, run_dir: str | os.PathLike, runtime: Runtime,
                 group: Group = SINGLE) -> StageSetup:
    """Check the inputs, load the training set, construct the networks (seeded) and resume
    them from the run in ``run_dir`` where it can be; every EdnError of bad input is raised
    here, before the first iteration."""
    # Check the inputs.
    stage, preset = options.stage, get_preset(options.preset)
    trainer_class = TRAINERS[stage]
    init = load_init(stage, inputs.init, preset)
    init_path = str(inputs.init) if inputs.init else None
    trainer_class.check_init(options, init, init_path)
    kind = generator_kind(stage, init)
    compositing = uses_compositing(options, init, inputs.background)
    # auto resolved, so that options.json and every checkpoint record the network built.
    options = options.replace(upsampling=options.generator_upsampling(init.upsampling if init else None))
    options = options.replace(exemplar=uses_exemplar(options, init, compositing, inputs.exemplars))
    if not compositing:
        options = options.replace(temporal_unroll_frames=0)  # the paper's pair from the zero image

    # Load training set (a camera that moves: the plate warped into each frame's camera).
    multiple = preset.size_multiple * (2 if kind == "local" else 1)
    plates = frame_plates(inputs.background, read_plate_report(inputs.background.report)) if compositing else None
    data = TrainingFrames(inputs.frames, inputs.labels, inputs.index, downsample=options.downsample,
                          size_multiple=multiple, plate=read_plate(inputs.background.plate) if compositing else None,
                          masks_path=inputs.background.masks if compositing else None,
                          exemplars_path=inputs.exemplars.images if options.conditioned else None,
                          validity_path=inputs.exemplars.validity if options.conditioned else None,
                          frame_plates=plates)
    split = split_pairs(data.index, options.holdout_fraction, need_face=trainer_class.needs_face,
                        source=str(inputs.frames))
    if trainer_class.needs_face:
        trainer_class.check_data(data, split)

    # Construct networks.
    perceptual = PerceptualLoss(load_perceptual(inputs.perceptual_weights, options.perceptual_network))
    torch.manual_seed(options.seed)  # network initialisation
    trainer = trainer_class.for_stage(options, preset, init, init_path, perceptual, runtime, data.plate)
    trainer.group = group
    group.broadcast_modules(trainer.saved.values())

    # Resume.
    window_size = data.window_size
    run_options = {
        **options.identity(), "temporal": trainer.temporal, "preset": preset.to_dict(), "generator_kind": kind,
        "base_stage": init.stage if init else None, "compositing": compositing,
        "residual_base": trainer.generator.residual_base if compositing else None,
        "image_size": list(data.size), "window_size": list(window_size) if window_size else None,
        "inputs": inputs.fingerprint(compositing, options.conditioned, plates is not None),
    }
    run = RunDirectory(run_dir, keep=options.keep_checkpoints)
    start_step = resume(run, run_options, trainer, preset, stage, group)

    setup = StageSetup(options=options, preset=preset, compositing=compositing, data=data, split=split,
                       trainer=trainer, run=run, run_options=run_options, start_step=start_step, runtime=runtime,
                       group=group)
    if group.is_main:
        log_start(setup)
    return setup


def resume(run: RunDirectory, run_options: dict, trainer: Trainer, preset: Preset, stage: str, group: Group) -> int:
    """The step to start from: that of the newest usable rolling checkpoint of ``run`` when
    the run was started with ``run_options`` (loaded into ``trainer``), else 0 (a new run).
    Rank 0 reads the directory; every process loads the checkpoint it chose."""
    checkpoint = run.start(run_options, preset, stage) if group.is_main else None
    path = group.broadcast_object(str(run.checkpoint_files()[-1]) if checkpoint is not None else None)
    if path is None:
        return 0
    checkpoint = checkpoint or load_checkpoint(path, stages=(stage,), preset=preset, what="rolling checkpoint")
    trainer.load(checkpoint, path)
    return checkpoint.step


def log_start(setup: StageSetup) -> None:
    data, split, options, group = setup.data, setup.split, setup.options, setup.group
    window = data.window_size
    drawn = f"the person in {window[0]}x{window[1]} windows over the plate" if setup.compositing else "the whole frame"
    if data.frame_plates is not None:
        drawn += " warped into each frame's camera"
    if options.conditioned:
        drawn += ", correcting warped exemplars" + (" (as a residual)" if options.exemplar == "residual" else "")
    shared = f", {group.world_size} processes" if group.active else ""
    log.info("%s stage: %d pairs (frames 0..%d), %d held out, %dx%d, %s, %s, batch %d%s, %d of %d iterations done",
             setup.stage, len(split.pairs), split.first_heldout - 1, len(split.heldout), *data.size, drawn,
             setup.runtime.device, options.batch_size, shared, setup.start_step, options.iterations)


def train_step(setup: StageSetup, step: int) -> tuple[dict[str, float], dict]:
    """Iteration ``step`` (0-based): the scheduled learning rate, this process's pairs of
    the step (each with the frames drawn before it), one update. Returns the losses
    (each the mean over the processes) and the step's losses.csv row."""
    options, data, split, trainer, group = setup.options, setup.data, setup.split, setup.trainer, setup.group
    lr = learning_rate(step, options)
    trainer.set_learning_rate(lr)
    numbers = samples_of_step(step, options.batch_size, group.rank, group.world_size)
    firsts = [pair_for_step(split, n, options.seed) for n in numbers]
    unroll = options.temporal_unroll_frames if trainer.temporal else 0

    def sample(t: int, n: int):  # frame t for sample number n, with the exemplar drawn for them
        return data.sample(t, exemplar_choice=exemplar_choice(options.seed, n, t, data.exemplar_choices))

    histories = [[sample(h, n) for h in history_for_step(split, data.index, t, n, options.seed, unroll)]
                 for t, n in zip(firsts, numbers)]
    tick = time.perf_counter()
    losses = trainer.step(Batch.of([sample(t, n) for t, n in zip(firsts, numbers)]),
                          Batch.of([sample(t + 1, n) for t, n in zip(firsts, numbers)]), histories)
    losses = group.mean(losses, setup.runtime.device)
    row = {"step": step + 1, "frame": firsts[0], "lr": lr, **{k: round(v, 6) for k, v in losses.items()},
           "seconds": round(time.perf_counter() - tick, 4)}
    return losses, row


def record_step(setup: StageSetup, step: int, losses: dict[str, float], row: dict, bar, started: float) -> Path | None:
    """Rank 0 after ``step`` iterations: the losses.csv row, the progress bar, a sample grid
    every ``sample_every`` iterations and at the last (its path returned), a rolling
    checkpoint every ``checkpoint_every`` (the last is saved by :func:`finish_stage`)."""
    options, run = setup.options, setup.run
    run.append_losses(row)
    bar.update(1)
    bar.set_postfix(G=f"{losses['g_total']:.3f}", D=f"{losses['d_total']:.3f}", refresh=False)
    grid = None
    if step % options.sample_every == 0 or step == options.iterations:
        grid = run.samples / f"step_{step:08d}.png"
        write_pair_grid(grid, setup.trainer.last_pair)
    if step % options.checkpoint_every == 0 and step < options.iterations:
        run.save(setup.checkpoint(step, with_optimizers=True))
        log.info("step %d: G %.4f D %.4f (%.2f it/s)", step, losses["g_total"], losses["d_total"],
                 (step - setup.start_step) / max(time.perf_counter() - started, 1e-9))
    return grid


def stop(setup: StageSetup, step: int) -> NoReturn:
    """A stop was asked: rank 0 saves a rolling checkpoint of the ``step`` iterations done;
    every process raises :class:`TrainingStopped`."""
    stopped = f"{setup.stage} stage: stopped at step {step} of {setup.options.iterations}"
    if not setup.group.is_main:
        raise TrainingStopped(stopped)
    path = setup.run.save(setup.checkpoint(step, with_optimizers=True))
    raise TrainingStopped(f"{stopped}; checkpoint {str(path)!r} saved, rerun to resume")


def finish_stage(setup: StageSetup, step: int, output: str | os.PathLike, losses_output: str | os.PathLike | None,
                 last_grid: Path | None) -> Path | None:
    """Rank 0 after the last iteration: the last rolling checkpoint, the held-out grid, the
    losses copy, the final model (without optimisers), then the run marked finished.
    Returns the held-out grid, or ``last_grid`` when nothing is held out."""
    run = setup.run
    run.save(setup.checkpoint(step, with_optimizers=True))
    grid = write_heldout_grid(run.samples / "heldout_final.png", setup.trainer, setup.data, setup.split.heldout)
    if losses_output is not None:
        copy_file(run.losses_file, losses_output)
    save_checkpoint(output, setup.checkpoint(step, with_optimizers=False))
    run.finish(step, output)
    shown = grid or last_grid
    log.info("%s stage done: model %s; samples %s", setup.stage, output, shown)
    return shown

"""A stage's run directory: rolling checkpoints, the loss log and sample grids.

``results/runs/{target}/{stage}/`` is not a Snakemake output, so a rerun after a
kill finds it and resumes (Snakemake deletes declared outputs before a job
starts; only the final model is declared)::

    options.json            the options the run was started with
    checkpoints/step_00001200.pt   the newest ``keep`` rolling checkpoints
    losses.csv              one row per step: step, lr, every loss term
    samples/                PNG grids (label | generated | real)
    finished.json           written once the final model is: the run is complete

A run resumes only when its options are the ones asked for now and it has not
finished; otherwise it is cleared and starts over (the config changed, or the
stage was asked to run again, e.g. ``--forcerun``, after it finished).

Nothing broken is resumed from. A rolling checkpoint is used only when it loads
as a checkpoint of this stage and preset, its step is the one its name says, the
options it records agree with the run's, it holds the optimizers' states and its
weights are finite; one that fails is removed (with a warning naming it and why)
and the next older one is tried, and with none left the run starts over. An
``options.json`` that cannot be read starts the run over too, and rows of
``losses.csv`` that cannot be read are dropped.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import re
import shutil
from pathlib import Path

import torch

from edn.core.atomic import atomic_path, write_json
from edn.core.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from edn.core.errors import EdnError
from edn.core.presets import Preset

log = logging.getLogger(__name__)


class RunDirectory:
    def __init__(self, path: str | os.PathLike, keep: int = 2) -> None:
        self.path = Path(path)
        self.keep = max(1, keep)
        self.options_file = self.path / "options.json"
        self.checkpoints = self.path / "checkpoints"
        self.losses_file = self.path / "losses.csv"
        self.samples = self.path / "samples"
        self.finished_file = self.path / "finished.json"

    def checkpoint_files(self) -> list[Path]:
        """Complete rolling checkpoints, oldest first (temporaries of a killed write are ignored)."""
        return sorted(self.checkpoints.glob("step_*.pt"))

    def start(self, options: dict, preset: Preset, stage: str) -> Checkpoint | None:
        """Prepare the directory for a run with ``options``; return the checkpoint to resume from, if any."""
        for partial in self.checkpoints.glob(".*.partial*"):  # a write a SIGKILL interrupted
            partial.unlink(missing_ok=True)
        if self.finished_file.is_file():
            log.info("the run in %s finished (%s): training again from the start", self.path,
                     self.finished_file.read_text().strip())
        elif self.options_file.is_file():
            previous = self._previous_options()
            if previous == options:
                checkpoint = self._newest_usable_checkpoint(options, preset, stage)
                if checkpoint is not None:
                    self._truncate_losses(checkpoint.step)
                    log.info("resuming %s from %s (step %d)", stage, self.checkpoint_files()[-1], checkpoint.step)
                    return checkpoint
            elif previous is not None:
                changed = sorted(k for k in set(previous) | set(options) if previous.get(k) != options.get(k))
                log.warning("options changed since the run in %s (%s): starting over", self.path, ", ".join(changed))
        self._clear()
        self.path.mkdir(parents=True, exist_ok=True)
        write_json(self.options_file, options)
        return None

    def _previous_options(self) -> dict | None:
        """The options the run in this directory was started with; None (and a warning) when unreadable."""
        try:
            previous = json.loads(self.options_file.read_text())
        except (OSError, ValueError) as error:
            previous = error
        if not isinstance(previous, dict):
            log.warning("%s cannot be read (%s): starting the run in %s over", self.options_file,
                        previous if isinstance(previous, Exception) else "not a JSON object", self.path)
            return None
        return previous

    def _newest_usable_checkpoint(self, options: dict, preset: Preset, stage: str) -> Checkpoint | None:
        """The newest rolling checkpoint that passes :meth:`_problem`, after removing the newer ones
        that do not (so that it is the newest file left); None when none does."""
        for path in reversed(self.checkpoint_files()):
            try:
                checkpoint = load_checkpoint(path, stages=(stage,), preset=preset, what="rolling checkpoint")
                problem = _problem(path, checkpoint, options)
            except EdnError as error:
                checkpoint, problem = None, str(error).removeprefix(f"rolling checkpoint {str(path)!r}: ")
            if problem is None:
                return checkpoint
            log.warning("rolling checkpoint %s is not usable (%s): removed", path, problem)
            path.unlink(missing_ok=True)
        if self.checkpoints.is_dir():
            log.warning("no usable rolling checkpoint in %s: training %s from the start", self.checkpoints, stage)
        return None

    def _clear(self) -> None:
        for child in (self.checkpoints, self.samples):
            shutil.rmtree(child, ignore_errors=True)
        for child in (self.finished_file, self.losses_file, self.options_file):
            child.unlink(missing_ok=True)

    def finish(self, step: int, model: str | os.PathLike) -> None:
        """Mark the run complete once its final model is written: a later run starts over."""
        write_json(self.finished_file, {"step": step, "model": str(model)})

    def save(self, checkpoint: Checkpoint) -> Path:
        """Write a rolling checkpoint atomically, then drop all but the newest ``keep``."""
        path = self.checkpoints / f"step_{checkpoint.step:08d}.pt"
        save_checkpoint(path, checkpoint)
        for old in self.checkpoint_files()[:-self.keep]:
            old.unlink(missing_ok=True)
        return path

    def append_losses(self, row: dict) -> None:
        """Append one step's row to losses.csv (header written with the first row)."""
        new = not self.losses_file.exists() or self.losses_file.stat().st_size == 0
        with open(self.losses_file, "a", newline="") as file:
            writer = csv.DictWriter(file, fieldnames=list(row))
            if new:
                writer.writeheader()
            writer.writerow(row)

    def _truncate_losses(self, step: int) -> None:
        """Keep the rows of steps up to ``step``: those after the checkpoint are trained again."""
        if not self.losses_file.exists():
            return
        try:
            with open(self.losses_file, newline="") as file:
                rows = list(csv.DictReader(file))
        except (OSError, ValueError, csv.Error) as error:
            log.warning("%s cannot be read (%s): its rows are dropped", self.losses_file, error)
            rows = []
        # A row cut short by a kill misses fields (DictReader fills None): drop it, and any other
        # row whose step is no number.
        kept = [row for row in rows if None not in row.values() and _step(row) is not None and _step(row) <= step]
        with atomic_path(self.losses_file) as temporary, open(temporary, "w", newline="") as file:
            if kept:
                writer = csv.DictWriter(file, fieldnames=list(kept[0]))
                writer.writeheader()
                writer.writerows(kept)


def _step(row: dict) -> int | None:
    try:
        return int(row.get("step"))
    except (TypeError, ValueError):
        return None


def _problem(path: Path, checkpoint: Checkpoint, options: dict) -> str | None:
    """Why a rolling checkpoint that loaded cannot be resumed from, or None."""
    named = re.fullmatch(r"step_(\d+)\.pt", path.name)
    if named is None or int(named[1]) != checkpoint.step:
        return f"it holds step {checkpoint.step}, not the step its name says"
    differing = sorted(key for key, value in checkpoint.options.items() if key in options and options[key] != value)
    if differing:
        return f"it was written by a run with other options ({', '.join(differing)})"
    if not checkpoint.optimizers:
        return "it holds no optimizer states"
    for name, state in checkpoint.models.items():
        for key, tensor in state.items():
            if torch.is_tensor(tensor) and tensor.is_floating_point() and not torch.isfinite(tensor).all():
                return f"{name}.{key} holds values that are not finite"
    return None

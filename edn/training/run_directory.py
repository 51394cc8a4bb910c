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
"""

from __future__ import annotations

import csv
import json
import logging
import os
import shutil
from pathlib import Path

from edn.atomic import atomic_path, write_json
from edn.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from edn.presets import Preset

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
            previous = json.loads(self.options_file.read_text())
            if previous == options:
                files = self.checkpoint_files()
                if files:
                    checkpoint = load_checkpoint(files[-1], stages=(stage,), preset=preset,
                                                 what="rolling checkpoint")
                    self._truncate_losses(checkpoint.step)
                    log.info("resuming %s from %s (step %d)", stage, files[-1], checkpoint.step)
                    return checkpoint
            else:
                changed = sorted(k for k in set(previous) | set(options) if previous.get(k) != options.get(k))
                log.warning("options changed since the run in %s (%s): starting over", self.path, ", ".join(changed))
        self._clear()
        self.path.mkdir(parents=True, exist_ok=True)
        write_json(self.options_file, options)
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
        with open(self.losses_file, newline="") as file:
            rows = list(csv.DictReader(file))
        # A row cut short by a kill misses fields (DictReader fills None): drop it.
        kept = [row for row in rows if None not in row.values() and int(row["step"]) <= step]
        with atomic_path(self.losses_file) as temporary, open(temporary, "w", newline="") as file:
            if kept:
                writer = csv.DictWriter(file, fieldnames=list(kept[0]))
                writer.writeheader()
                writer.writerows(kept)

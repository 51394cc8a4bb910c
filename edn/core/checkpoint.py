"""Self-describing training checkpoints: weights, the preset, the options, the step.

A checkpoint is one ``torch.save`` file holding plain data only (loaded with
``weights_only=True``, so opening one never runs code)::

    format     "edn-checkpoint"        version   CHECKPOINT_VERSION
    edn        the edn version that wrote it
    stage      "global" | "local" | "face"
    step       training iterations done
    preset     the Preset's fields (architecture)
    options    the training options (stage options, image size, generator kind, upsampling...)
    models     {name: state dict}  e.g. generator, discriminator, face_generator
    optimizers {name: state dict}  (rolling checkpoints only; empty in final models)

Loading is strict: a file that is not a checkpoint, of another format version,
another stage or another preset is an EdnError naming the file, and so is a
state dict that does not fit its network exactly (:func:`load_state`) and a
file whose contents fail the checksum written with them
(:mod:`edn.core.torch_file`), whose error says how to make it again.
"""

from __future__ import annotations

import os
import shlex
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from edn import __version__
from edn.core.errors import EdnError
from edn.core.presets import Preset, preset_from_dict
from edn.core.torch_file import load_strict, load_torch_file, save_torch_file

FORMAT = "edn-checkpoint"
CHECKPOINT_VERSION = 1
STAGES = ("global", "local", "face")


@dataclass(frozen=True)
class Checkpoint:
    stage: str
    step: int
    preset: Preset
    options: dict
    models: dict[str, dict[str, torch.Tensor]]
    optimizers: dict[str, dict] = field(default_factory=dict)
    edn_version: str = __version__

    @property
    def temporal(self) -> bool:
        """Whether the main generator was trained with temporal smoothing (fed its previous
        frame), or frame by frame; checkpoints from before the option are temporal."""
        return self.options.get("temporal", True)

    @property
    def compositing(self) -> bool:
        """Whether the main generator draws the person over the background plate (the composite method)
        or the whole frame (the paper's); checkpoints from before the option draw the whole frame."""
        return self.options.get("compositing", False)

    @property
    def upsampling(self) -> str:
        """How the checkpoint's generators double their resolution: "transposed" (pix2pixHD's
        transposed convolutions) or "resize" (upsample, then convolve); checkpoints from
        before the option used transposed convolutions."""
        return self.options.get("upsampling", "transposed")

    @property
    def residual_base(self) -> str:
        """What a generator correcting warped exemplars adds its correction to off the exemplar's person
        (:data:`edn.models.compositing.RESIDUAL_BASES`); checkpoints from before it was recorded: "plate"."""
        return self.options.get("residual_base", "plate")

    def payload(self) -> dict:
        return {"stage": self.stage, "step": self.step, "preset": self.preset.to_dict(), "options": self.options,
                "models": self.models, "optimizers": self.optimizers}


def training_mode(temporal: bool) -> str:
    """How a main generator was trained, for messages."""
    return "with temporal smoothing" if temporal else "frame by frame"


def save_checkpoint(path: str | os.PathLike, checkpoint: Checkpoint) -> None:
    """Write ``checkpoint`` to ``path`` atomically (complete or absent, never truncated)."""
    save_torch_file(path, FORMAT, CHECKPOINT_VERSION, checkpoint.payload())


def load_checkpoint(path: str | os.PathLike, *, stages: tuple[str, ...] = STAGES,
                    preset: Preset | None = None, what: str = "checkpoint") -> Checkpoint:
    """Read a checkpoint; it must be of one of ``stages`` and, if given, of ``preset``.

    ``what`` names the file's role in error messages ("previous-stage checkpoint").
    """
    label = f"{what} {str(path)!r}"
    data = load_torch_file(path, FORMAT, CHECKPOINT_VERSION, what=what, kind="an edn checkpoint",
                           remake="" if _is_rolling(path) else remake_hint(path))
    if data["stage"] not in stages:
        raise EdnError(f"{label}: a {data['stage']} stage checkpoint, expected {' or '.join(stages)}")
    try:
        stored = preset_from_dict(data["preset"])
    except TypeError as error:
        raise EdnError(f"{label}: preset not understood ({error})") from None
    if preset is not None and stored != preset:
        ours, theirs = preset.to_dict(), stored.to_dict()
        differences = ", ".join(f"{key} {theirs[key]} vs {ours[key]}" for key in ours if ours[key] != theirs[key])
        raise EdnError(f"{label}: trained with preset {stored.name!r}, not {preset.name!r} ({differences})")
    return Checkpoint(stage=data["stage"], step=int(data["step"]), preset=stored, options=data["options"],
                      models=data["models"], optimizers=data.get("optimizers", {}), edn_version=data["edn"])


def remake_hint(path: str | os.PathLike) -> str:
    """How to make a damaged model file again, for its error: Snakemake reruns the job that
    wrote it when asked for the file (``--forcerun`` takes output files as well as rules)."""
    return (f"; make it again with `snakemake --forcerun {shlex.quote(str(path))}` (reruns the rule that wrote "
            f"it; by hand, rerun the edn command that wrote it)")


def _is_rolling(path: str | os.PathLike) -> bool:
    """A run's rolling checkpoint (``.../checkpoints/step_*.pt``): removed when damaged, never remade."""
    return Path(path).parent.name == "checkpoints" and Path(path).name.startswith("step_")


def load_state(module: nn.Module, checkpoint: Checkpoint, name: str, path: str | os.PathLike) -> None:
    """Load ``checkpoint.models[name]`` into ``module`` strictly; EdnError if it does not fit.

    For a run's rolling checkpoint (``.../checkpoints/step_*.pt``) the error says what
    to remove: that file, to resume from an older one, or the run's directory.
    """
    try:
        if name not in checkpoint.models:
            raise EdnError(f"checkpoint {str(path)!r}: has no {name} "
                           f"(it holds {', '.join(sorted(checkpoint.models))})")
        load_strict(module, checkpoint.models[name], f"checkpoint {str(path)!r}: {name}")
    except EdnError as error:
        if not _is_rolling(path):
            raise
        raise EdnError(f"{error}; remove it to resume from an older checkpoint, or remove "
                       f"{str(Path(path).parent.parent)!r} to train from the start") from None

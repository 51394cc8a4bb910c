"""Detector checkpoints, self-describing like the GAN's (:mod:`edn.checkpoint`).

One ``torch.save`` file of plain data, loaded with ``weights_only=True``::

    format        "edn-fake-detector"     version   DETECTOR_CHECKPOINT_VERSION
    edn           the edn version that wrote it
    step          training iterations done
    architecture  DetectorArchitecture fields
    options       training options and the data's facts (working size, fit, fps,
                  subjects, pair counts, held-out split)
    model         the classifier's state dict

Loading is strict: another format, another version, or a state dict that does
not fit the architecture exactly is an EdnError naming the file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from edn import __version__
from edn.atomic import atomic_path
from edn.errors import EdnError
from edn.fake_detector.model import DetectorArchitecture, build_detector

FORMAT = "edn-fake-detector"
DETECTOR_CHECKPOINT_VERSION = 1


@dataclass(frozen=True)
class DetectorCheckpoint:
    step: int
    architecture: DetectorArchitecture
    options: dict
    model: dict[str, torch.Tensor]
    edn_version: str = __version__

    def to_dict(self) -> dict:
        return {"format": FORMAT, "version": DETECTOR_CHECKPOINT_VERSION, "edn": self.edn_version,
                "step": self.step, "architecture": self.architecture.to_dict(), "options": self.options,
                "model": self.model}


def save_detector(path: str | os.PathLike, checkpoint: DetectorCheckpoint) -> None:
    """Write ``checkpoint`` atomically (complete or absent)."""
    with atomic_path(path) as temporary:
        torch.save(checkpoint.to_dict(), temporary)


def load_detector_checkpoint(path: str | os.PathLike) -> DetectorCheckpoint:
    """Read and check a detector checkpoint (see the module docstring)."""
    path = Path(path)
    label = f"detector {str(path)!r}"
    if not path.is_file():
        raise EdnError(f"{label}: file not found")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # unpickling raises many types for a file that is not a checkpoint
        raise EdnError(f"{label}: not readable as a checkpoint ({type(error).__name__})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise EdnError(f"{label}: not an edn fake-detector checkpoint")
    if data.get("version") != DETECTOR_CHECKPOINT_VERSION:
        raise EdnError(f"{label}: detector format version {data.get('version')}, "
                       f"this edn reads version {DETECTOR_CHECKPOINT_VERSION}")
    try:
        architecture = DetectorArchitecture(**data["architecture"])
    except TypeError as error:
        raise EdnError(f"{label}: architecture not understood ({error})") from None
    return DetectorCheckpoint(step=int(data["step"]), architecture=architecture, options=data["options"],
                              model=data["model"], edn_version=data["edn"])


def load_detector(path: str | os.PathLike, device: torch.device | str = "cpu") -> tuple[nn.Module, DetectorCheckpoint]:
    """The trained classifier in eval mode on ``device``, and its checkpoint."""
    checkpoint = load_detector_checkpoint(path)
    model = build_detector(checkpoint.architecture)
    try:
        model.load_state_dict(checkpoint.model, strict=True)
    except RuntimeError as error:
        detail = " ".join(str(error).split())[:300]
        raise EdnError(f"detector {str(path)!r}: weights do not fit its architecture ({detail})") from None
    return model.to(device).eval(), checkpoint

"""Detector checkpoints, self-describing like the GAN's (:mod:`edn.core.checkpoint`).

One ``torch.save`` file of plain data, loaded with ``weights_only=True``::

    format        "edn-fake-detector"     version   DETECTOR_CHECKPOINT_VERSION
    edn           the edn version that wrote it
    step          training iterations done
    architecture  DetectorArchitecture fields
    options       training options and the data's facts (working size, fit, fps,
                  subjects, pair counts, held-out split)
    model         the classifier's state dict

Loading is strict: another format, another version, contents that fail their
checksum (:mod:`edn.core.torch_file`) or a state dict that does not fit the
architecture exactly is an EdnError naming the file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
import torch
from torch import nn

from edn import __version__
from edn.core.errors import EdnError
from edn.fake_detector.model import DetectorArchitecture, build_detector
from edn.core.checkpoint import remake_hint
from edn.core.torch_file import load_strict, load_torch_file, save_torch_file

FORMAT = "edn-fake-detector"
DETECTOR_CHECKPOINT_VERSION = 1


@dataclass(frozen=True)
class DetectorCheckpoint:
    step: int
    architecture: DetectorArchitecture
    options: dict
    model: dict[str, torch.Tensor]
    edn_version: str = __version__

    def payload(self) -> dict:
        return {"step": self.step, "architecture": self.architecture.to_dict(), "options": self.options,
                "model": self.model}


def save_detector(path: str | os.PathLike, checkpoint: DetectorCheckpoint) -> None:
    """Write ``checkpoint`` atomically (complete or absent)."""
    save_torch_file(path, FORMAT, DETECTOR_CHECKPOINT_VERSION, checkpoint.payload())


def load_detector_checkpoint(path: str | os.PathLike) -> DetectorCheckpoint:
    """Read and check a detector checkpoint (see the module docstring)."""
    data = load_torch_file(path, FORMAT, DETECTOR_CHECKPOINT_VERSION, what="detector",
                           kind="an edn fake-detector checkpoint", remake=remake_hint(path))
    try:
        architecture = DetectorArchitecture(**data["architecture"])
    except TypeError as error:
        raise EdnError(f"detector {str(path)!r}: architecture not understood ({error})") from None
    return DetectorCheckpoint(step=int(data["step"]), architecture=architecture, options=data["options"],
                              model=data["model"], edn_version=data["edn"])


def load_detector(path: str | os.PathLike, device: torch.device | str = "cpu") -> tuple[nn.Module, DetectorCheckpoint]:
    """The trained classifier in eval mode on ``device``, and its checkpoint."""
    checkpoint = load_detector_checkpoint(path)
    model = build_detector(checkpoint.architecture)
    load_strict(model, checkpoint.model, f"detector {str(path)!r}: the classifier")
    return model.to(device).eval(), checkpoint

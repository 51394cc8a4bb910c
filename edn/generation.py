"""The one path that generates frames from stick figures.

Training samples, synthesis, evaluation and the fake detector's generated
frames all call :func:`generate_frames`: each frame is drawn from its label and
the previous output (temporal smoothing, :mod:`edn.temporal_smoothing`), the
face residual is added inside its face box, and the frame is clamped to
[-1, 1] before it is fed back and returned. :func:`to_uint8` quantises it.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from edn.checkpoint import load_checkpoint, load_state, training_mode
from edn.errors import EdnError
from edn.models import build_face_generator, build_generator
from edn.runtime import Runtime
from edn.temporal_smoothing import previous_frame

Box = tuple[int, int, int, int]


@dataclass
class FrameGenerator:
    """The networks that draw frames: the main generator and, optionally, the face GAN's residual.

    ``temporal``: the main generator was trained with temporal smoothing (fed its
    previous frame) or frame by frame (always fed the zero image). ``size``:
    (width, height) it was trained at, when known.
    """

    generator: nn.Module
    face_generator: nn.Module | None = None
    temporal: bool = True
    size: tuple[int, int] | None = None
    description: str = ""

    def draw(self, label: torch.Tensor, previous: torch.Tensor, box: Box | None) -> torch.Tensor:
        """One frame ``[1, 3, H, W]`` from ``label`` [1, 3, H, W] in [0, 1] and the previous frame,
        face-corrected inside ``box`` when there is a face GAN and a box."""
        frame = self.generator(label, previous).float()
        if self.face_generator is not None and box is not None:
            frame = self.face_generator(frame, label, [box]).float()
        return frame


@torch.no_grad()
def generate_frames(models: FrameGenerator, labels: Iterable[torch.Tensor], boxes: Iterable[Box | None],
                    runtime: Runtime) -> Iterator[torch.Tensor]:
    """Frames ``[1, 3, H, W]`` in [-1, 1] on ``runtime``'s device, one per label, in order.

    ``labels``: [1, 3, H, W] in [0, 1] (any device); ``boxes``: each frame's face
    box, None where the frame has no face. Frame t is drawn from label t and
    frame t - 1 (the zero image first, and always for a generator trained frame
    by frame).

    One autocast region spans the whole sequence: autocast casts each fp32 weight
    to bf16 once and reuses it until the region ends (its cast cache is off in
    inference mode, and a region per frame cast every weight again at every frame:
    a fifth of a paper-preset frame on a CPU). The caller's code between frames
    runs inside that region and under no_grad.
    """
    if runtime.channels_last:
        models.generator.to(memory_format=torch.channels_last)
    generated = None
    with runtime.autocast():
        for label, box in zip(labels, boxes, strict=True):
            label = runtime.place(label)
            frame = models.draw(label, previous_frame(generated, label, models.temporal), box).clamp_(-1.0, 1.0)
            generated = runtime.place(frame)
            yield frame


def to_uint8(frame: torch.Tensor) -> np.ndarray:
    """A generated frame ``[1, 3, H, W]`` in [-1, 1] as uint8 [H, W, 3]."""
    return ((frame[0].permute(1, 2, 0).float() + 1.0) * 127.5).round_().clamp_(0, 255).to(torch.uint8).cpu().numpy()


def label_tensor(label: np.ndarray) -> torch.Tensor:
    """A stick figure uint8 [H, W, 3] as the generator's input [1, 3, H, W] in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(label)).permute(2, 0, 1)[None].float().div_(255.0)


def load_frame_generator(generator_path: str | os.PathLike, face_path: str | os.PathLike | None,
                         device: torch.device) -> FrameGenerator:
    """The main generator of the last trained stage (global or local) and, optionally, the face GAN,
    in eval mode on ``device``.

    Both checkpoints must come from one preset; the face GAN must have been trained
    on top of this generator's stage and training mode.
    """
    main = load_checkpoint(generator_path, stages=("global", "local"), what="generator checkpoint")
    generator = build_generator(main.preset, main.stage)
    load_state(generator, main, "generator", generator_path)
    face_generator = None
    description = f"{main.stage} generator ({main.preset.name}, {training_mode(main.temporal)}, step {main.step})"
    if face_path is not None:
        face = load_checkpoint(face_path, stages=("face",), preset=main.preset, what="face checkpoint")
        base_stage = face.options.get("base_stage")
        if base_stage is not None and base_stage != main.stage:
            raise EdnError(f"face checkpoint {str(face_path)!r}: trained on the {base_stage} generator, "
                           f"but synthesis uses the {main.stage} generator {str(generator_path)!r}")
        if face.temporal != main.temporal:
            raise EdnError(f"face checkpoint {str(face_path)!r}: trained on a generator trained "
                           f"{training_mode(face.temporal)}, but {str(generator_path)!r} was trained "
                           f"{training_mode(main.temporal)}")
        face_generator = build_face_generator(main.preset)
        load_state(face_generator, face, "face_generator", face_path)
        face_generator = face_generator.to(device).eval()
        description += f" + face GAN (step {face.step})"
    size = tuple(main.options.get("image_size", ())) or None
    return FrameGenerator(generator=generator.to(device).eval(), face_generator=face_generator,
                          temporal=main.temporal, size=size, description=description)

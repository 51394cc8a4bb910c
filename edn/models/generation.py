"""The one path that generates frames from stick figures.

Training samples, synthesis, evaluation and the fake detector's generated
frames all call :func:`generate_frames`: each frame is drawn from its label and
the previous output (temporal smoothing, :mod:`edn.models.temporal_smoothing`), the
face residual is added inside its face box, and the frame is clamped to
[-1, 1] before it is fed back and returned. :func:`to_uint8_hwc` quantises it.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from edn.core.checkpoint import load_checkpoint, load_state, training_mode
from edn.core.errors import EdnError
from edn.core.options import exemplar_mode
from edn.models import UPSAMPLINGS, build_face_generator, build_generator
from edn.models.compositing import silhouette
from edn.core.runtime import Runtime
from edn.models.temporal_smoothing import previous_frame

Box = tuple[int, int, int, int]
#: (x0, y0, x1, y1) of the person's window, half-open pixels.
Window = tuple[int, int, int, int]


def crop(images: torch.Tensor, window: Window) -> torch.Tensor:
    """``images[..., y0:y1, x0:x1]``."""
    x0, y0, x1, y1 = window
    return images[..., y0:y1, x0:x1]


def crop_each(images: torch.Tensor, windows: Sequence[Window]) -> torch.Tensor:
    """Each batch item's own window, stacked ``[B, C, h, w]`` (one window size per batch;
    an image batch of 1, such as the plate, is cropped once per window)."""
    if len(windows) == 1:
        return crop(images, windows[0])
    return torch.stack([crop(images[min(i, len(images) - 1)], window) for i, window in enumerate(windows)])


def paste(background: torch.Tensor, window: Window, inside: torch.Tensor) -> torch.Tensor:
    """A copy of ``background`` with ``inside`` in ``window`` (differentiable in ``inside``)."""
    x0, y0, x1, y1 = window
    out = background.clone()
    out[..., y0:y1, x0:x1] = inside
    return out


def paste_each(background: torch.Tensor, windows: Sequence[Window], inside: torch.Tensor) -> torch.Tensor:
    """``[B, C, H, W]``: ``background`` (batch 1 or B) with item i of ``inside`` in ``windows[i]``."""
    if len(windows) == 1:
        return paste(background, windows[0], inside)
    out = background.expand(len(windows), *background.shape[1:]).clone()
    for i, (x0, y0, x1, y1) in enumerate(windows):
        out[i, :, y0:y1, x0:x1] = inside[i]
    return out


def draw_in_window(generator: nn.Module, label: torch.Tensor, previous: torch.Tensor, plate: torch.Tensor,
                   windows: Sequence[Window], exemplar: torch.Tensor | None = None
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """The compositing generator's frames and masks at the working size ``[B, C, H, W]``:
    item i drawn in ``windows[i]`` from the crops of ``label``, ``previous``, ``plate`` and,
    for a generator conditioned on it, the warped ``exemplar`` ``[B, 4, H, W]`` (RGB and
    validity), and pasted into the plate (the frame) and into zeros (the mask). Outside
    its window each frame is the plate exactly."""
    crops = [crop_each(x, windows) for x in (label, previous, plate)]
    if exemplar is not None:
        crops.append(crop_each(exemplar, windows))
    frame, mask = generator(*crops)
    return paste_each(plate, windows, frame), paste_each(torch.zeros_like(plate[:, :1]), windows, mask)


def scale_box(box: Box, factor: int) -> Box:
    """A box at the working size, at the working size divided by ``factor``."""
    if factor == 1:
        return box
    x0, y0, x1, y1 = box
    return (x0 // factor, y0 // factor, x0 // factor + (x1 - x0) // factor, y0 // factor + (y1 - y0) // factor)


def downsample_area(images: torch.Tensor, factor: int) -> torch.Tensor:
    """Area average by ``factor`` (stick-figure lines keep their colour instead of breaking up)."""
    return images if factor == 1 else nn.functional.avg_pool2d(images, factor)


@dataclass
class FrameGenerator:
    """The networks that draw frames, and how.

    ``generator``: the main generator; ``face_generator``: the face GAN's residual,
    optional. ``temporal``: trained with temporal smoothing (fed its previous
    frame) or frame by frame (always fed the zero image). ``plate``: the target's
    background plate ``[1, 3, H, W]`` in [-1, 1] for a compositing generator, which
    draws in each frame's person window; None for the paper's whole-frame
    generator, which was trained at the working size divided by ``downsample``
    (its frames are upsampled to the working size). ``size``: (width, height) of
    the working frames it was trained on, when known. ``exemplar``: the generator is
    conditioned on the warped exemplar; ``residual``: it draws a correction of it.
    """

    generator: nn.Module
    face_generator: nn.Module | None = None
    temporal: bool = True
    size: tuple[int, int] | None = None
    description: str = ""
    plate: torch.Tensor | None = None
    downsample: int = 1
    exemplar: bool = False
    residual: bool = False

    def draw(self, label: torch.Tensor, previous: torch.Tensor | None, box: Box | None,
             window: Window | None, exemplar: torch.Tensor | None = None,
             plate: torch.Tensor | None = None, face: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """One frame at the working size ``[1, 3, H, W]`` (clamped to [-1, 1]) from ``label``
        [1, 3, H, W] in [0, 1] (and, for a generator conditioned on it, the warped
        ``exemplar`` [1, 4, H, W], :func:`exemplar_tensor`) and what the previous step
        returned as the state to feed back (None for the first frame), face-corrected
        inside ``box`` when there is a face GAN and a box. A compositing generator draws over
        ``plate`` when given (this frame's camera's, :mod:`edn.background.camera`), else over
        :attr:`plate`. ``face`` [1, 1, H, W] in [0, 1], for a generator correcting the exemplar: where the
        frame keeps the exemplar's own pixels instead, on the exemplar's silhouette (where it is not the
        plate; :mod:`edn.exemplars.own_face`), before the face GAN. Returns (frame, state for the next frame)."""
        if self.plate is not None:
            if self.exemplar and exemplar is None:
                raise ValueError("this generator is conditioned on the warped exemplar: pass it")
            previous = previous_frame(previous, label, self.temporal)
            plate = self.plate if plate is None else plate
            frame, _ = draw_in_window(self.generator, label, previous, plate, [window],
                                      exemplar if self.exemplar else None)
            if face is not None:
                if not self.residual:
                    raise ValueError("only a generator correcting the warped exemplar keeps the exemplar's face")
                keep = face.float() * silhouette(exemplar[:, :3], plate).float()
                frame = torch.lerp(frame.float(), exemplar[:, :3].float(), keep)
            if self.face_generator is not None and box is not None:
                frame = self.face_generator(frame, label, [box],
                                            exemplar if getattr(self.face_generator, "exemplar", False)
                                            else None).float()
            frame = frame.clamp(-1.0, 1.0)
            return frame, frame
        small = downsample_area(label, self.downsample)
        frame = self.generator(small, previous_frame(previous, small, self.temporal)).float()
        if self.face_generator is not None and box is not None:
            frame = self.face_generator(frame, small, [scale_box(box, self.downsample)]).float()
        frame = frame.clamp(-1.0, 1.0)
        if self.downsample == 1:
            return frame, frame
        full = nn.functional.interpolate(frame, size=label.shape[-2:], mode="bilinear", align_corners=False)
        return full.clamp(-1.0, 1.0), frame


@torch.no_grad()
def generate_frames(models: FrameGenerator, labels: Iterable[torch.Tensor], boxes: Iterable[Box | None],
                    runtime: Runtime, windows: Iterable[Window] | None = None,
                    exemplars: Iterable[torch.Tensor] | None = None,
                    plates: Iterable[torch.Tensor] | None = None,
                    faces: Iterable[torch.Tensor | None] | None = None) -> Iterator[torch.Tensor]:
    """Frames ``[1, 3, H, W]`` in [-1, 1] on ``runtime``'s device, one per label, in order.

    ``labels``: [1, 3, H, W] in [0, 1] (any device); ``boxes``: each frame's face
    box, None where the frame has no face; ``windows``: each frame's person
    window (a compositing generator needs them); ``exemplars``: each frame's warped
    exemplar [1, 4, H, W] (a generator conditioned on it needs them); ``plates``: each frame's own
    plate [1, 3, H, W] for a compositing generator whose camera moves (None: :attr:`FrameGenerator.plate`
    for every frame); ``faces``: each frame's kept face [1, 1, H, W] or None (:meth:`FrameGenerator.draw`).
    Frame t is drawn from label t
    and frame t - 1 (the zero image first, and always for a generator trained
    frame by frame).

    One autocast region spans the whole sequence: autocast casts each fp32 weight
    to bf16 once and reuses it until the region ends (its cast cache is off in
    inference mode, and a region per frame cast every weight again at every frame:
    a fifth of a paper-preset frame on a CPU). The caller's code between frames
    runs inside that region and under no_grad.
    """
    if models.plate is not None and windows is None:
        raise ValueError("a compositing generator draws in the person's windows: pass them")
    if models.exemplar and exemplars is None:
        raise ValueError("a generator conditioned on the warped exemplar needs one per frame: pass them")
    if runtime.channels_last:
        models.generator.to(memory_format=torch.channels_last)
    if models.plate is not None:
        models.plate = runtime.place(models.plate)
    state = None
    with runtime.autocast():
        for (label, box), window, exemplar, plate, face in zip(
                zip(labels, boxes, strict=True), *(itertools.repeat(None) if inputs is None else inputs
                                                   for inputs in (windows, exemplars, plates, faces))):
            frame, state = models.draw(runtime.place(label), state, box, window,
                                       *(None if x is None else runtime.place(x) for x in (exemplar, plate, face)))
            state = runtime.place(state)
            yield frame


def to_uint8_hwc(frame: torch.Tensor) -> np.ndarray:
    """A generated frame ``[1, 3, H, W]`` in [-1, 1] as a numpy uint8 [H, W, 3], a row of a frame store."""
    return ((frame[0].permute(1, 2, 0).float() + 1.0) * 127.5).round_().clamp_(0, 255).to(torch.uint8).cpu().numpy()


def label_tensor(label: np.ndarray) -> torch.Tensor:
    """A stick figure uint8 [H, W, 3] as the generator's input [1, 3, H, W] in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(label)).permute(2, 0, 1)[None].float().div_(255.0)


def plate_tensor(plate: np.ndarray) -> torch.Tensor:
    """A background plate uint8 [H, W, 3] as ``[1, 3, H, W]`` in [-1, 1]."""
    return label_tensor(plate) * 2.0 - 1.0


def exemplar_tensor(image: np.ndarray, validity: np.ndarray) -> torch.Tensor:
    """A warped exemplar uint8 [H, W, 3] (over the plate, as ``edn pose-warp`` writes it) and its
    validity uint8 [H, W] (0-255) as a conditioned generator's input ``[1, 4, H, W]``: RGB in
    [-1, 1], validity in [0, 1]."""
    valid = torch.from_numpy(np.ascontiguousarray(validity))[None, None].float().div_(255.0)
    return torch.cat([plate_tensor(image), valid], dim=1)


def load_frame_generator(generator_path: str | os.PathLike, face_path: str | os.PathLike | None,
                         device: torch.device, plate: np.ndarray | None = None) -> FrameGenerator:
    """The main generator of the last trained stage (global or local) and, optionally, the face GAN,
    in eval mode on ``device``.

    Both checkpoints must come from one preset; the face GAN must have been trained
    on top of this generator's stage and training mode. A compositing generator
    needs its target's background ``plate`` (uint8 [H, W, 3]).
    """
    main = load_checkpoint(generator_path, stages=("global", "local"), what="generator checkpoint")
    if main.upsampling not in UPSAMPLINGS:
        raise EdnError(f"generator checkpoint {str(generator_path)!r}: upsampling {main.upsampling!r} not understood "
                       f"(this edn builds {' or '.join(UPSAMPLINGS)})")
    mode = exemplar_mode(main.options.get("exemplar"))  # older checkpoints: none (absent), false or true
    exemplar = mode != "none"
    generator = build_generator(main.preset, main.stage, compositing=main.compositing, upsampling=main.upsampling,
                                exemplar=mode, residual_base=main.residual_base)
    load_state(generator, main, "generator", generator_path)
    face_generator = None
    description = (f"{main.stage} generator ({main.preset.name}, {'compositing' if main.compositing else 'whole frame'}"
                   f"{', conditioned on the warped exemplar' if exemplar else ''}"
                   f"{' as a residual' if mode == 'residual' else ''}"
                   f", {training_mode(main.temporal)}, {main.upsampling} upsampling, step {main.step})")
    if face_path is not None:
        face = load_checkpoint(face_path, stages=("face",), preset=main.preset, what="face checkpoint")
        base_stage = face.options.get("base_stage")
        if base_stage is not None and base_stage != main.stage:
            raise EdnError(f"face checkpoint {str(face_path)!r}: trained on the {base_stage} generator, "
                           f"but synthesis uses the {main.stage} generator {str(generator_path)!r}")
        if (face.temporal, face.compositing, face.upsampling) != (main.temporal, main.compositing, main.upsampling):
            raise EdnError(f"face checkpoint {str(face_path)!r}: trained on another generator than "
                           f"{str(generator_path)!r} ({training_mode(face.temporal)}, "
                           f"{'compositing' if face.compositing else 'whole frame'}, "
                           f"{face.upsampling} upsampling)")
        face_generator = build_face_generator(main.preset, main.upsampling, exemplar=exemplar)
        load_state(face_generator, face, "face_generator", face_path)
        face_generator = face_generator.to(device).eval()
        description += f" + face GAN (step {face.step})"
    size = tuple(main.options.get("image_size", ())) or None
    downsample = int(main.options.get("downsample", 1))
    plate_input = None
    if main.compositing:
        if downsample != 1:
            raise EdnError(f"generator checkpoint {str(generator_path)!r}: a compositing global stage trained at "
                           f"1/{downsample} of the working size draws through its local stage (use local.pt)")
        if plate is None:
            raise EdnError(f"generator checkpoint {str(generator_path)!r}: draws over its target's background "
                           "plate; give the plate (--plate results/background/{target}.png)")
        if size is not None and tuple(plate.shape[1::-1]) != tuple(size):
            raise EdnError(f"background plate: {plate.shape[1]}x{plate.shape[0]}, the generator was trained on "
                           f"{size[0]}x{size[1]} frames")
        plate_input = plate_tensor(plate).to(device)
    elif downsample > 1 and size is not None:
        size = (size[0] * downsample, size[1] * downsample)  # trained at a fraction of these working frames
    return FrameGenerator(generator=generator.to(device).eval(), face_generator=face_generator,
                          temporal=main.temporal, size=size, description=description, plate=plate_input,
                          downsample=1 if main.compositing else downsample, exemplar=exemplar,
                          residual=mode == "residual")

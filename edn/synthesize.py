"""Synthesis: the target drawn doing the source's moves, one frame after the other.

Paper section 3.2: the generator sees each frame's stick figure and the frame
it generated just before (the zero image, i.e. mid-grey, for the first frame),
so the sequence must be generated in order. With the face GAN (section 3.3) the
face residual is added inside each frame's face box, and the corrected frame is
what the next frame sees, as in training.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from edn.checkpoint import load_checkpoint, load_state, training_mode
from edn.errors import EdnError
from edn.frames import create_image_store
from edn.labels import LabelIndex
from edn.models import build_face_generator, build_generator
from edn.training.stages import Runtime

log = logging.getLogger(__name__)


@dataclass
class TransferModels:
    """The trained networks synthesis needs, in eval mode on one device."""

    generator: nn.Module
    face_generator: nn.Module | None
    size: tuple[int, int]  # (width, height) the generator was trained at
    description: str
    temporal: bool = True  # False: trained frame by frame, always fed the zero image


def load_transfer_models(generator_path: str | os.PathLike, face_path: str | os.PathLike | None,
                         device: torch.device) -> TransferModels:
    """The main generator of the last trained stage (global or local) and, optionally, the face GAN.

    Both checkpoints must come from one preset; the face GAN must have been trained
    on top of this generator's stage.
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
    return TransferModels(generator=generator.to(device).eval(), face_generator=face_generator,
                          size=size, description=description, temporal=main.temporal)


def _prefetch(labels: np.ndarray, depth: int = 4) -> Iterator[np.ndarray]:
    """Yield copies of ``labels[t]`` in order, read ahead in a background thread
    so that disk reads overlap the model's work."""
    slots: queue.Queue = queue.Queue(maxsize=depth)
    done = object()

    def reader() -> None:
        for label in labels:
            slots.put(np.array(label))
        slots.put(done)

    threading.Thread(target=reader, daemon=True).start()
    while (item := slots.get()) is not done:
        yield item


@torch.no_grad()
def synthesize_sequence(models: TransferModels, labels: np.ndarray, index: LabelIndex, out: np.ndarray,
                        runtime: Runtime, *, progress: bool = True) -> None:
    """Generate frame t of ``out`` (uint8 [N, H, W, 3]) from ``labels[t]`` and frame t - 1
    (the zero image for a generator trained frame by frame).

    ``labels``: uint8 [N, H, W, 3] stick figures; ``index``: their face boxes.
    """
    from tqdm import tqdm

    count, height, width = labels.shape[:3]
    if out.shape != labels.shape:
        raise ValueError(f"output {list(out.shape)} does not match labels {list(labels.shape)}")
    if models.size is not None and tuple(models.size) != (width, height):
        raise EdnError(f"labels are {width}x{height} but the generator was trained at "
                       f"{models.size[0]}x{models.size[1]}; render and train at one working size")
    if runtime.channels_last:
        models.generator.to(memory_format=torch.channels_last)
    previous = runtime.place(torch.zeros(1, 3, height, width))
    bar = tqdm(total=count, unit="frame", desc="synthesize", leave=False, disable=not progress or None)
    # One autocast region for the whole sequence, under no_grad: autocast rounds each
    # fp32 weight to bf16 once and reuses it until the region ends. (Its cast cache is
    # off in inference mode, and a region per frame emptied it: every weight was cast
    # again at every frame, a fifth of a paper-preset frame's time on a CPU.) The
    # frames are the same bit for bit.
    with runtime.autocast():
        for t, label_array in enumerate(_prefetch(labels)):
            label = runtime.place(torch.from_numpy(label_array).permute(2, 0, 1)[None].float().div_(255.0))
            frame = models.generator(label, previous).float()
            if models.face_generator is not None and index.has_face[t]:
                box = tuple(int(v) for v in index.face_boxes[t])
                frame = models.face_generator(frame, label, [box]).float()
            frame = frame.clamp_(-1.0, 1.0)
            out[t] = ((frame[0].permute(1, 2, 0) + 1.0) * 127.5).round_().to(torch.uint8).cpu().numpy()
            if models.temporal:
                previous = runtime.place(frame)
            bar.update(1)
    bar.close()


def write_synthesis(models: TransferModels, labels: np.ndarray, index: LabelIndex, output: str | os.PathLike,
                    runtime: Runtime) -> Path:
    """Synthesize every frame into ``output`` (frames .npy), atomically."""
    count, height, width = labels.shape[:3]
    log.info("synthesizing %d frames at %dx%d with the %s on %s%s", count, width, height, models.description,
             runtime.device, " (bf16)" if runtime.bf16 else "")
    with create_image_store(output, count, (width, height)) as store:
        synthesize_sequence(models, labels, index, store, runtime)
    return Path(output)

"""The face stage (Chan et al. 2019, section 3.3): the face residual generator G_f and its PatchGAN D_f.

The main generator G is frozen. Each frame of the pair is drawn by G and
face-corrected by G_f before it is fed back (as at synthesis time); G_f's loss
is the face GAN term plus the perceptual loss on the face crops (the paper's
face objective), each the mean over the two frames. On the composite path G
draws over the background plate, G_f corrects the composite, and the face's
change from the first frame to the second is pulled towards the real change
(``temporal_change_weight``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from edn.core.checkpoint import Checkpoint, load_state
from edn.core.errors import EdnError
from edn.models.generation import FrameGenerator
from edn.training.losses import PerceptualLoss, compose_loss, lsgan_discriminator, lsgan_generator, temporal_change
from edn.models import build_face_discriminator, build_face_generator, build_generator
from edn.models.face import crop
from edn.core.options import TrainingOptions, exemplar_mode
from edn.core.presets import Preset
from edn.core.runtime import Runtime
from edn.models.temporal_smoothing import unroll_pair
from edn.training.data import Batch, Sample, Split, TrainingFrames
from edn.training.trainer import Trainer, as_batches

#: The perceptual network pools 4 times before relu5_1: crops need 16 px.
MIN_FACE_BOX_PX = 16


class FaceStageTrainer(Trainer):
    """G_f and D_f on top of the frozen main generator of ``init`` (a global or local checkpoint)."""

    needs_face = True

    def __init__(self, preset: Preset, init: Checkpoint, init_path: str, perceptual: PerceptualLoss,
                 runtime: Runtime, learning_rate: float, plate: torch.Tensor | None = None,
                 temporal_change_weight: float = 0.0) -> None:
        self.runtime = runtime
        self.temporal_change_weight = temporal_change_weight
        self.temporal = init.temporal  # the face stage follows the generator it starts from
        self.perceptual = runtime.place_module(perceptual)
        self.plate = None if plate is None else runtime.place(plate)
        self.generator = build_generator(preset, init.options["generator_kind"], compositing=init.compositing,
                                         upsampling=init.upsampling,
                                         exemplar=exemplar_mode(init.options.get("exemplar")),
                                         residual_base=init.residual_base)
        load_state(self.generator, init, "generator", init_path)
        self.generator.requires_grad_(False)  # frozen for the whole face stage
        self.face_generator = build_face_generator(preset, init.upsampling,
                                                   exemplar=getattr(self.generator, "exemplar", False),
                                                   start_unchanged=getattr(self.generator, "residual", False))
        self.face_discriminator = build_face_discriminator(preset)
        self.saved = {"generator": self.generator, "face_generator": self.face_generator,
                      "face_discriminator": self.face_discriminator}
        self.make_optimizers(self.face_generator, self.face_discriminator, learning_rate)

    @staticmethod
    def check_init(options: TrainingOptions, init: Checkpoint, init_path: str) -> None:
        """The face stage trains at the size its main generator was trained at."""
        if init.options["downsample"] != options.downsample:
            raise EdnError(f"previous-stage checkpoint {init_path!r}: trained at 1/{init.options['downsample']}"
                           f" of the working size, the face stage asks for 1/{options.downsample}")

    @classmethod
    def for_stage(cls, options: TrainingOptions, preset: Preset, init: Checkpoint, init_path: str,
                  perceptual: PerceptualLoss, runtime: Runtime, plate: torch.Tensor | None) -> FaceStageTrainer:
        if init.compositing and plate is None:
            raise EdnError(f"previous-stage checkpoint {init_path!r}: draws over the background plate; "
                           "the face stage needs it")
        return cls(preset, init, init_path, perceptual, runtime, options.learning_rate,
                   plate=plate if init.compositing else None, temporal_change_weight=options.temporal_change_weight)

    @staticmethod
    def check_data(data: TrainingFrames, split: Split) -> None:
        """The face boxes of every training pair are large enough for the perceptual loss."""
        sides = data.index.face_boxes[:, 2:] - data.index.face_boxes[:, :2]
        used = np.concatenate([split.pairs, split.pairs + 1])
        smallest = int(sides[used].min()) // data.downsample
        if smallest < MIN_FACE_BOX_PX:
            raise EdnError(f"label index {str(data.index_path)!r}: face boxes of {smallest} px at the training "
                           f"size; the face stage needs at least {MIN_FACE_BOX_PX} (use larger frames)")

    def frame_generator(self) -> FrameGenerator:
        return FrameGenerator(generator=self.generator, face_generator=self.face_generator, temporal=self.temporal,
                              plate=self.plate, exemplar=getattr(self.generator, "exemplar", False))

    def _draw(self, frames: Batch, label: torch.Tensor, previous: torch.Tensor) -> torch.Tensor:
        """The frozen G's frames for the batch ``frames`` (over the plate on the composite path),
        face-corrected by G_f inside their face boxes."""
        if self.plate is None:
            frame = self.generator(label, previous)
        else:
            frame, _ = self.draw_over_plate(frames, label, previous)
        exemplar = self.runtime.place(frames.exemplar) if self.face_generator.exemplar else None
        return self.face_generator(frame, label, frames.boxes, exemplar)

    def step(self, first: Sample | Batch, second: Sample | Batch,
             history: Sequence[Sample] | Sequence[Sequence[Sample]] = ()) -> dict[str, float]:
        """Train on the pairs (first, second), a batch of them or one, the networks having drawn
        each pair's history before it; return every logged loss term (each a mean over the batch)."""
        first, second, histories = as_batches(first, second, history)
        place = self.runtime.place
        label0, label1, real0, real1 = place(first.label), place(second.label), place(first.image), place(second.image)
        boxes, frames = (first.boxes, second.boxes), (first, second)
        d_f = self.face_discriminator
        with self.runtime.autocast():
            previous = self.draw_histories(histories, label0)
            fake0, fake1 = unroll_pair(lambda label, before, index: self._draw(frames[index], label, before),
                                       label0, label1, temporal=self.temporal, first_previous=previous)
            d_real = d_fake = face_gan = face_perceptual = 0.0
            for label, real, fake, box in ((label0, real0, fake0, boxes[0]), (label1, real1, fake1, boxes[1])):
                label_crop, real_crop, fake_crop = crop(label, box), crop(real, box), crop(fake, box)
                real_term, fake_term = lsgan_discriminator([d_f(label_crop, real_crop)],
                                                           [d_f(label_crop, fake_crop.detach())])
                d_real, d_fake = d_real + 0.5 * real_term, d_fake + 0.5 * fake_term
                d_f.requires_grad_(False)
                face_gan = face_gan + 0.5 * lsgan_generator([d_f(label_crop, fake_crop)])
                d_f.requires_grad_(True)
                face_perceptual = face_perceptual + 0.5 * self.perceptual(fake_crop, real_crop)
            terms = {"face_gan": face_gan, "face_perceptual": face_perceptual}
            weights = None
            if self.plate is not None and self.temporal:  # the composite method: the face's change too
                box = boxes[0]
                terms["temporal_change"] = temporal_change(crop(fake0, box), crop(fake1, box),
                                                           crop(real0, box), crop(real1, box))
                weights = {"temporal_change": self.temporal_change_weight}
            g_total, g_logged = compose_loss(terms, extra_weights=weights)
        self.last_pair = (label0, label1, fake0.detach(), fake1.detach(), real0, real1)
        return self.update(g_total, g_logged, d_real, d_fake)

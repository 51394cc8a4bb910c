"""The global and local stages (Chan et al. 2019, section 3.2): the main generator G and its PatchGAN D.

One iteration trains on a pair of consecutive frames with temporal smoothing
(:func:`edn.models.temporal_smoothing.unroll_pair`): I0 = G(label_t, previous),
I1 = G(label_t+1, I0); D judges (label_t, label_t+1, I0, I1) against the real
pair. G's loss: LSGAN + feature matching + perceptual (mean over the two frames).
In the paper the previous frame of I0 is the zero image; with ``history``, G
first draws the frames before the pair (without gradients), so that I0 is fed
G's own previous frame, as at synthesis time.

Frame by frame (``temporal=False``, the paper's FBF ablation): the same two
frames, each generated from the zero image and judged on its own by a per-frame
PatchGAN (pix2pixHD), so training sees as many frames for the same budget.

Compositing (``plate`` given): G draws the person and a mask in the person's
window over the background plate (:mod:`edn.models.compositing`). Every loss
sees the composite, cropped to the window of the pair's first frame, against the
real frame's person over the plate; the mask is also pulled towards the
person's segmentation mask (``mask_weight``), the window's colours over blocks
of 8x8 pixels towards the real ones (``colour_weight``), and with temporal
smoothing the change from the first frame to the second towards the real change
(``temporal_change_weight``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from edn.core.checkpoint import Checkpoint, training_mode
from edn.core.errors import EdnError
from edn.models.generation import FrameGenerator, crop_each
from edn.training.losses import (PerceptualLoss, colour_difference, compose_loss, feature_matching,
                                 lsgan_discriminator, lsgan_generator, temporal_change)
from edn.models import build_discriminator, build_generator
from edn.models.compositing import RESIDUAL_BASE
from edn.models.residual_conv import weight_casts_reused
from edn.core.options import TrainingOptions
from edn.core.presets import Preset
from edn.core.runtime import Runtime
from edn.models.temporal_smoothing import discriminator_input, unroll_pair
from edn.training.data import Batch, Sample
from edn.training.trainer import Trainer, as_batches

#: What a step's loss computation hands to :meth:`Trainer.update`: G's total, G's logged
#: terms, D's real term and D's fake term.
Losses = tuple[torch.Tensor, dict[str, float], torch.Tensor, torch.Tensor]


class MainStageTrainer(Trainer):
    """G and D of the global stage, or of the local stage (the enhancer around the global stage's G).

    ``init``: the global stage's checkpoint for the local stage; None for the global stage.
    ``plate``: ``[1, 3, H, W]`` in [-1, 1] for a compositing generator, None for the whole frame.
    """

    needs_face = False

    def __init__(self, kind: str, preset: Preset, perceptual: PerceptualLoss, runtime: Runtime,
                 learning_rate: float, *, temporal: bool = True, init: Checkpoint | None = None,
                 init_path: str | None = None, plate: torch.Tensor | None = None, mask_weight: float = 0.0,
                 temporal_change_weight: float = 0.0, colour_weight: float = 0.0, upsampling: str = "transposed",
                 exemplar: bool | str = False) -> None:
        self.kind = kind
        self.runtime = runtime
        self.temporal = temporal
        self.mask_weight = mask_weight
        self.temporal_change_weight = temporal_change_weight
        self.colour_weight = colour_weight
        self.plate = None if plate is None else runtime.place(plate)
        self.perceptual = runtime.place_module(perceptual)
        self.generator = build_generator(preset, kind, compositing=plate is not None, upsampling=upsampling,
                                         exemplar=exemplar, residual_base=init.residual_base if init else RESIDUAL_BASE)
        if kind == "local":
            # Stage-1 weights go into the enhancer's global branch (pix2pixHD's load_pretrain).
            body = self.generator.body if plate is not None else self.generator
            weights = {key.removeprefix("body."): value for key, value in init.models["generator"].items()}
            body.load_global_weights(weights, source=f"global checkpoint {init_path!r}")
        self.discriminator = build_discriminator(preset, kind, temporal)
        self.saved = {"generator": self.generator, "discriminator": self.discriminator}
        self.make_optimizers(self.generator, self.discriminator, learning_rate)

    @staticmethod
    def check_init(options: TrainingOptions, init: Checkpoint | None, init_path: str | None) -> None:
        """The local stage trains at the working size, in the global stage's mode."""
        if options.stage != "local":
            return
        if options.downsample != 1:
            raise EdnError(f"local stage: trains at the working size (downsample 1, not {options.downsample})")
        if init.temporal != options.temporal:
            raise EdnError(f"previous-stage checkpoint {init_path!r}: trained {training_mode(init.temporal)}"
                           f", the local stage is asked to train {training_mode(options.temporal)}")

    @classmethod
    def for_stage(cls, options: TrainingOptions, preset: Preset, init: Checkpoint | None, init_path: str | None,
                  perceptual: PerceptualLoss, runtime: Runtime, plate: torch.Tensor | None) -> MainStageTrainer:
        if init is not None and init.compositing != (plate is not None):
            raise EdnError(f"previous-stage checkpoint {init_path!r}: draws "
                           f"{'over the plate' if init.compositing else 'the whole frame'}, the local stage would not")
        return cls(options.stage, preset, perceptual, runtime, options.learning_rate, temporal=options.temporal,
                   init=init, init_path=init_path, plate=plate, mask_weight=options.mask_weight,
                   temporal_change_weight=options.temporal_change_weight, colour_weight=options.colour_weight,
                   upsampling=options.generator_upsampling(init.upsampling if init else None),
                   exemplar=options.exemplar if plate is not None else "none")

    def frame_generator(self) -> FrameGenerator:
        return FrameGenerator(generator=self.generator, temporal=self.temporal, plate=self.plate,
                              exemplar=getattr(self.generator, "exemplar", False))

    def step(self, first: Sample | Batch, second: Sample | Batch,
             history: Sequence[Sample] | Sequence[Sequence[Sample]] = ()) -> dict[str, float]:
        """Train on the pairs (first, second), a batch of them or one, G having drawn each pair's
        history before it; return every loss term (each a mean over the batch)."""
        first, second, histories = as_batches(first, second, history)
        with self.runtime.autocast(), weight_casts_reused(self.generator):
            if self.plate is None:
                g_total, g_logged, d_real, d_fake = self._whole_frame_step(first, second, histories)
            else:
                g_total, g_logged, d_real, d_fake = self._composite_step(first, second, histories)
        return self.update(g_total, g_logged, d_real, d_fake)

    def _whole_frame_step(self, first: Batch, second: Batch, histories: list[list[Sample]]) -> Losses:
        """The paper's: G draws the whole frame, every loss on the whole frame."""
        label0, label1, real0, real1 = self._placed(first, second)
        previous = self.draw_histories(histories, label0)
        fake0, fake1 = unroll_pair(lambda label, before, _: self.generator(label, before), label0, label1,
                                   temporal=self.temporal, first_previous=previous)
        return self._losses((label0, label1, fake0, fake1, real0, real1))

    def _composite_step(self, first: Batch, second: Batch, histories: list[list[Sample]]) -> Losses:
        """G draws the person and a mask in each frame's window over the plate; every loss on
        the window of the pair's first frame, where the person is, and two more terms: the
        masks against the segmentation, the generated change against the real one."""
        label0, label1, real0, real1 = self._placed(first, second)
        previous = self.draw_histories(histories, label0)
        frames, masks = (first, second), []

        def draw(label: torch.Tensor, before: torch.Tensor, index: int) -> torch.Tensor:
            frame, mask = self.draw_over_plate(frames[index], label, before)
            masks.append(mask)
            return frame

        fake0, fake1 = unroll_pair(draw, label0, label1, temporal=self.temporal, first_previous=previous)
        # Every loss on the window of the pair's first frame, where the person is.
        windows = first.windows
        label0, label1, fake0, fake1, real0, real1 = (crop_each(x, windows) for x in
                                                      (label0, label1, fake0, fake1, real0, real1))
        terms = {"mask": 0.5 * sum(torch.nn.functional.l1_loss(crop_each(mask, windows),
                                                               crop_each(self.runtime.place(batch.mask), windows))
                                   for mask, batch in zip(masks, frames))}
        if self.colour_weight:
            terms["colour"] = 0.5 * (colour_difference(fake0, real0) + colour_difference(fake1, real1))
        if self.temporal:
            terms["temporal_change"] = temporal_change(fake0, fake1, real0, real1)
        return self._losses((label0, label1, fake0, fake1, real0, real1), terms,
                            {"mask": self.mask_weight, "colour": self.colour_weight,
                             "temporal_change": self.temporal_change_weight})

    def _placed(self, first: Batch, second: Batch) -> tuple[torch.Tensor, ...]:
        """(label0, label1, real0, real1) on the device."""
        place = self.runtime.place
        return place(first.label), place(second.label), place(first.image), place(second.image)

    def _losses(self, pair: tuple[torch.Tensor, ...], extra_terms: dict[str, torch.Tensor] | None = None,
                extra_weights: dict[str, float] | None = None) -> Losses:
        """D's terms and G's total on ``pair`` (label0, label1, fake0, fake1, real0, real1):
        the LSGAN terms, feature matching and the perceptual loss (the mean over the two
        frames), then the path's ``extra_terms`` weighted by ``extra_weights``. Keeps ``pair`` as
        :attr:`last_pair`. Returns (G's total, G's logged terms, D's real term, D's fake term)."""
        label0, label1, fake0, fake1, real0, real1 = pair
        d, d_input = self.discriminator, discriminator_input(self.temporal)
        real_input = d_input(label0, label1, real0, real1)
        fake_input = d_input(label0, label1, fake0, fake1)
        real_out = d(real_input)
        fake_out_detached = d(fake_input.detach())
        d_real, d_fake = lsgan_discriminator([o[-1] for o in real_out], [o[-1] for o in fake_out_detached])
        d.requires_grad_(False)  # G's terms need gradients through D, not for D
        fake_out = d(fake_input)
        d.requires_grad_(True)
        terms = {
            "gan": lsgan_generator([o[-1] for o in fake_out]),
            "feature_matching": feature_matching(fake_out, real_out),
            "perceptual": 0.5 * (self.perceptual(fake0, real0) + self.perceptual(fake1, real1)),
            **(extra_terms or {}),
        }
        g_total, g_logged = compose_loss(terms, extra_weights=extra_weights)
        self.last_pair = (label0, label1, fake0.detach(), fake1.detach(), real0, real1)
        return g_total, g_logged, d_real, d_fake

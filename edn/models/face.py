"""The face GAN (Chan et al. 2019, section 3.3): a residual for the face box.

G_f is a global generator (fewer downsamplings and blocks, and the main
generator's upsampling layers) on the 6-channel (label crop, generated crop) input; its tanh output is added to the generated
crop, and only the pixels inside the face box change. D_f is a single-scale
PatchGAN on (label crop, face crop).

Face boxes are ``(x0, y0, x1, y1)`` integer pixels, half-open, inside the
frame (``edn.labels.label_store``), one per batch item.

Behind a main generator conditioned on the warped exemplar
(:mod:`edn.models.compositing`), G_f is conditioned on it too: the exemplar's face
crop (RGB and validity, 4 more input channels) beside the label and generated
crops, so that the face is corrected towards the target's own warped face. Behind
a residual one (which starts as the exemplar and draws the real face from the
first step), G_f starts unchanged too: its last convolution at zero, so that its
residual is 0 until it learns one. From pix2pixHD's random start its residual
painted a checkerboard over the real face at the demo's 300 iterations.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from edn.models.compositing import EXEMPLAR_CHANNELS, zero_last_convolution
from edn.models.discriminator import PatchDiscriminator
from edn.models.generator import GlobalGenerator

Box = Sequence[int]


def crop(images: torch.Tensor, boxes: Sequence[Box]) -> torch.Tensor:
    """Stack the box of each batch item: ``[B, C, h, w]``; every box must have the same size."""
    crops = [images[i, :, y0:y1, x0:x1] for i, (x0, y0, x1, y1) in enumerate(boxes)]
    if len({c.shape for c in crops}) != 1:
        raise ValueError(f"face boxes of one batch must have one size, got {[tuple(c.shape[1:]) for c in crops]}")
    return torch.stack(crops)


def _pad_to_multiple(x: torch.Tensor, multiple: int) -> torch.Tensor:
    height, width = x.shape[-2:]
    bottom, right = -height % multiple, -width % multiple
    return nn.functional.pad(x, (0, right, 0, bottom), mode="replicate") if bottom or right else x


class FaceGenerator(nn.Module):
    """G_f: ``forward(images, labels, boxes)`` returns the images with a learned
    residual added inside each face box, clamped to [-1, 1] there; every pixel
    outside the boxes is returned unchanged (bit for bit)."""

    def __init__(self, ngf: int, n_downsampling: int, n_blocks: int, upsampling: str = "transposed",
                 exemplar: bool = False, start_unchanged: bool = False) -> None:
        super().__init__()
        channels = {"input_channels": 3 + 3 + EXEMPLAR_CHANNELS} if exemplar else {}
        self.body = GlobalGenerator(ngf, n_downsampling, n_blocks, upsampling=upsampling, **channels)
        self.exemplar = exemplar
        if start_unchanged:  # a zero residual: the face starts as the main generator drew it
            zero_last_convolution(self.body, channels=3)

    def residual(self, label_crops: torch.Tensor, image_crops: torch.Tensor,
                 exemplar_crops: torch.Tensor | None = None) -> torch.Tensor:
        """The residual ``[B, 3, h, w]`` in [-1, 1] for crops of any size (padded internally)."""
        height, width = image_crops.shape[-2:]
        multiple = self.body.size_multiple
        if exemplar_crops is not None:
            image_crops = torch.cat([image_crops, exemplar_crops.to(image_crops.dtype)], dim=1)
        out = self.body(_pad_to_multiple(label_crops, multiple), _pad_to_multiple(image_crops, multiple))
        return out[..., :height, :width]

    def forward(self, images: torch.Tensor, labels: torch.Tensor, boxes: Sequence[Box],
                exemplar: torch.Tensor | None = None) -> torch.Tensor:
        """``exemplar`` ``[B, 4, H, W]``: the warped exemplar and its validity, which a conditioned G_f needs."""
        if self.exemplar != (exemplar is not None):
            raise ValueError("this face generator " + ("needs the warped exemplar" if self.exemplar
                                                       else "takes no exemplar"))
        image_crops = crop(images, boxes)
        exemplar_crops = None if exemplar is None else crop(exemplar, boxes)
        corrected = (image_crops + self.residual(crop(labels, boxes), image_crops, exemplar_crops)).clamp(-1.0, 1.0)
        # Add (corrected - original) padded with zeros: outside the box the sum is exact.
        height, width = images.shape[-2:]
        change = [nn.functional.pad(corrected[i] - image_crops[i], (x0, width - x1, y0, height - y1))
                  for i, (x0, y0, x1, y1) in enumerate(boxes)]
        return images + torch.stack(change)


class FaceDiscriminator(nn.Module):
    """D_f: one PatchGAN on the 6-channel (label crop, face crop); returns its patch predictions."""

    def __init__(self, ndf: int, n_layers: int) -> None:
        super().__init__()
        self.patches = PatchDiscriminator(6, ndf, n_layers)

    def forward(self, label_crops: torch.Tensor, face_crops: torch.Tensor) -> torch.Tensor:
        return self.patches(torch.cat([label_crops, face_crops], dim=1))[-1]

"""The compositing generator: it draws the person, the background plate gives the rest.

A pix2pixHD generator (global or local) with 9 input channels, the stick figure
``label`` [B, 3, h, w] in [0, 1], the previous frame ``previous`` and the plate
``plate`` [B, 3, h, w] in [-1, 1] (all in the person's window), and 4 output
channels: the person's RGB and a soft mask. The frame is the matting composite

    frame = mask * person + (1 - mask) * plate

so where the mask is 0 the frame is the plate exactly. The mask is the fourth
tanh output mapped to [0, 1].

Conditioned on an exemplar (``exemplar=True``, option ``training.exemplar``): 4 more
input channels, the target's own training frame warped to the requested pose
(:mod:`edn.exemplars`, RGB in [-1, 1]) and its validity mask (in [0, 1]: 1 where
the warp drew a part or left the plate, 0 where a requested part could not be
drawn), in the same window. The network then corrects a real image of the
person instead of drawing every pixel from the stick figure (PoseWarp,
Balakrishnan et al. 2018, refines its warped parts the same way).
"""

from __future__ import annotations

import torch
from torch import nn

#: label, previous frame, plate
INPUT_CHANNELS = 9
#: person RGB and mask
OUTPUT_CHANNELS = 4
#: the warped exemplar's RGB and its validity mask
EXEMPLAR_CHANNELS = 4


def composite(person: torch.Tensor, mask: torch.Tensor, plate: torch.Tensor) -> torch.Tensor:
    """``mask * person + (1 - mask) * plate``; ``mask`` [B, 1, h, w] in [0, 1]."""
    return mask * person + (1.0 - mask) * plate


def input_channels(exemplar: bool) -> int:
    """The body's input channels: label, previous frame, plate, and with ``exemplar`` the warped exemplar."""
    return INPUT_CHANNELS + (EXEMPLAR_CHANNELS if exemplar else 0)


class CompositingGenerator(nn.Module):
    """``forward(label, previous, plate, exemplar=None) -> (frame, mask)``: ``body`` draws person and mask.

    ``exemplar``: whether the body takes the warped exemplar ``[B, 4, h, w]`` (RGB in
    [-1, 1], validity in [0, 1]); it must then be given at every call."""

    def __init__(self, body: nn.Module, exemplar: bool = False) -> None:
        super().__init__()
        self.body = body
        self.exemplar = exemplar
        self.size_multiple = body.size_multiple

    def forward(self, labels: torch.Tensor, previous: torch.Tensor, plate: torch.Tensor,
                exemplar: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        if self.exemplar != (exemplar is not None):
            raise ValueError("this compositing generator " + ("needs the warped exemplar" if self.exemplar
                                                              else "takes no exemplar"))
        extra = [previous, plate] + ([exemplar.to(plate.dtype)] if exemplar is not None else [])
        out = self.body(labels, torch.cat(extra, dim=1))
        person, mask = out[:, :3], (out[:, 3:] + 1.0) * 0.5
        return composite(person.float(), mask.float(), plate.float()), mask.float()

"""The compositing generator: it draws the person, the background plate gives the rest.

A pix2pixHD generator (global or local) with 9 input channels, the stick figure
``label`` [B, 3, h, w] in [0, 1], the previous frame ``previous`` and the plate
``plate`` [B, 3, h, w] in [-1, 1] (all in the person's window), and 4 output
channels: the person's RGB and a soft mask. The frame is the matting composite

    frame = mask * person + (1 - mask) * plate

so where the mask is 0 the frame is the plate exactly. The mask is the fourth
tanh output mapped to [0, 1].
"""

from __future__ import annotations

import torch
from torch import nn

#: label, previous frame, plate
INPUT_CHANNELS = 9
#: person RGB and mask
OUTPUT_CHANNELS = 4


def composite(person: torch.Tensor, mask: torch.Tensor, plate: torch.Tensor) -> torch.Tensor:
    """``mask * person + (1 - mask) * plate``; ``mask`` [B, 1, h, w] in [0, 1]."""
    return mask * person + (1.0 - mask) * plate


class CompositingGenerator(nn.Module):
    """``forward(label, previous, plate) -> (frame, mask)``: ``body`` draws person and mask."""

    def __init__(self, body: nn.Module) -> None:
        super().__init__()
        self.body = body
        self.size_multiple = body.size_multiple

    def forward(self, labels: torch.Tensor, previous: torch.Tensor, plate: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.body(labels, torch.cat([previous, plate], dim=1))
        person, mask = out[:, :3], (out[:, 3:] + 1.0) * 0.5
        return composite(person.float(), mask.float(), plate.float()), mask.float()

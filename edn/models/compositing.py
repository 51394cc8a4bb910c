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

As a residual (``exemplar="residual"``): the same input, but the network starts
as the exemplar and learns a correction of it. pix2pixHD's generator has no
skip connections, so in the input mode it redraws the exemplar's texture
through its bottleneck and blurs it; here the texture passes untouched unless
the network learns to change it. The first three outputs correct the
exemplar's RGB,

    person = clamp(base + 2 * tanh(z_rgb), -1, 1)

where ``base`` is the exemplar's RGB on its own silhouette, the pixels where it
is not the plate (by more than :data:`SILHOUETTE_THRESHOLD`), and mid-grey (0)
off it (the factor 2 so that any colour can be reached from any exemplar pixel).
Off the silhouette the warp drew no person, so what the network draws there
(a part the exemplar lacks, a back bent further than the exemplar's) is a
colour of its own and not an offset from the plate beneath: pix2pixHD's
generator has no skip connections, so it cannot cancel the plate's texture
pixel by pixel, and a white shirt drawn as a correction of foliage kept the
foliage's texture and came out yellow (docs/training.md; models trained before
keep the plate as their base, ``residual_base="plate"``). The mask's logit is
the body's plus a prior from the same silhouette:

    mask = sigmoid(2 * z_mask + 4 * (1 if on the silhouette else -1))

((tanh(z) + 1) / 2 = sigmoid(2 z), so the body keeps its tanh and is built as
in the other modes: same layers, and for a seed the same weights but for its
last convolution). That convolution starts at zero, weights and biases, so at
initialisation the person is the base exactly and the mask is sigmoid(4) =
0.982 on the exemplar's silhouette and 0.018 off it: the frame in the window is
the exemplar to within 2% (off the silhouette the exemplar is the plate, and the
frame 0.982 times it). A prior of 0.982 over the whole window (a bias alone)
would also start as the exemplar, but on a tiny synthetic target its mask loss did not fall in
150 steps (0.82, the mask near 1 everywhere, the correction painting the
background), whereas from the silhouette it fell from 0.13 to 0.10 in 60: the
mask and the frame losses then agree where the warp went wrong (a pasted limb
the pose does not have: the mask falls to show the plate exactly; a missing
one: it rises while the correction draws it). The warped exemplar is drawn over
the plate the generator is given (over a moving camera too: the plate in the
frame's own camera, edn.exemplars.pose_warp.plate_of), so its silhouette is the
person's.
"""

from __future__ import annotations

import torch
from torch import nn

from edn.core.options import EXEMPLAR_MODES, exemplar_mode

#: label, previous frame, plate
INPUT_CHANNELS = 9
#: person RGB and mask
OUTPUT_CHANNELS = 4
#: the warped exemplar's RGB and its validity mask
EXEMPLAR_CHANNELS = 4
#: Residual mode: the correction is this times the body's tanh output.
RESIDUAL_SCALE = 2.0
#: Residual mode: the mask's prior logit, + on the exemplar's silhouette, - off it (sigmoid(4) = 0.982).
RESIDUAL_MASK_LOGIT = 4.0
#: Residual mode: what the correction is added to off the exemplar's silhouette: "grey" (0, since
#: the colour round) or "plate" (the exemplar there, as models trained before it do; edn.core.checkpoint
#: reads which from a checkpoint).
RESIDUAL_BASES = ("grey", "plate")
#: Residual mode: the base a generator trained now has (:data:`RESIDUAL_BASES`).
RESIDUAL_BASE = "grey"
#: Residual mode: an exemplar pixel is on its silhouette where it differs from the plate by more than
#: this in some channel (in [-1, 1]: 1.5 levels of 8 bits; both come from 8-bit images).
SILHOUETTE_THRESHOLD = 3.0 / 255.0


def composite(person: torch.Tensor, mask: torch.Tensor, plate: torch.Tensor) -> torch.Tensor:
    """``mask * person + (1 - mask) * plate``; ``mask`` [B, 1, h, w] in [0, 1]."""
    return mask * person + (1.0 - mask) * plate


def input_channels(exemplar: bool | str) -> int:
    """The body's input channels: label, previous frame, plate, and, conditioned on it (``exemplar``
    input or residual, or True), the warped exemplar."""
    return INPUT_CHANNELS + (EXEMPLAR_CHANNELS if exemplar_mode(exemplar) != "none" else 0)


def shift_logit(probability: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """``sigmoid(logit(probability) + shift)``, computed without the logit (finite at 0 and 1)."""
    gain = torch.exp(shift)
    return probability * gain / (probability * gain + (1.0 - probability))


def silhouette(exemplar_rgb: torch.Tensor, plate: torch.Tensor) -> torch.Tensor:
    """bool [B, 1, h, w]: where the warped exemplar's RGB [B, 3, h, w] is not the ``plate`` (by more than
    :data:`SILHOUETTE_THRESHOLD` in some channel), the person the warp drew."""
    return (exemplar_rgb.float() - plate.float()).abs().amax(dim=1, keepdim=True) > SILHOUETTE_THRESHOLD


def residual_person_and_mask(out: torch.Tensor, exemplar: torch.Tensor, plate: torch.Tensor,
                             base: str = RESIDUAL_BASE) -> tuple[torch.Tensor, torch.Tensor]:
    """The residual mode's person and mask from the body's output ``out`` [B, 4, h, w] (tanh),
    the warped ``exemplar`` [B, 4, h, w] and the ``plate`` [B, 3, h, w] (module docstring); ``base``:
    one of :data:`RESIDUAL_BASES`, what the correction is added to off the exemplar's silhouette."""
    rgb = exemplar[:, :3].float()
    on_person = silhouette(rgb, plate)
    start = rgb if base == "plate" else torch.where(on_person, rgb, torch.zeros_like(rgb))
    person = (start + RESIDUAL_SCALE * out[:, :3].float()).clamp(-1.0, 1.0)
    prior = torch.where(on_person, RESIDUAL_MASK_LOGIT, -RESIDUAL_MASK_LOGIT)
    return person, shift_logit((out[:, 3:].float() + 1.0) * 0.5, prior)


def last_convolution(body: nn.Module, channels: int = OUTPUT_CHANNELS) -> nn.Conv2d:
    """The convolution that makes the body's ``channels`` output channels (the one before its final tanh)."""
    convolutions = [m for m in body.modules() if isinstance(m, nn.Conv2d)]
    if not convolutions or convolutions[-1].out_channels != channels:
        raise ValueError(f"the generator's body does not end in a convolution to {channels} channels")
    return convolutions[-1]


def zero_last_convolution(body: nn.Module, channels: int = OUTPUT_CHANNELS) -> None:
    """Zero the weights and biases of :func:`last_convolution`, so that the body's output starts at
    tanh(0) = 0 whatever its input (gradients still reach those weights)."""
    last = last_convolution(body, channels)
    with torch.no_grad():
        last.weight.zero_()
        last.bias.zero_()


class CompositingGenerator(nn.Module):
    """``forward(label, previous, plate, exemplar=None) -> (frame, mask)``: ``body`` draws person and mask.

    ``exemplar``: one of :data:`edn.core.options.EXEMPLAR_MODES` (True and False: input and
    none); conditioned (input or residual), the body takes the warped exemplar ``[B, 4, h, w]``
    (RGB in [-1, 1], validity in [0, 1]), which must then be given at every call; residual, it
    draws a correction of the exemplar's RGB and its last convolution is set so that it starts
    as the exemplar (see the module docstring). :attr:`exemplar` says whether it is conditioned,
    :attr:`residual` whether it corrects, :attr:`residual_base` what a correction off the exemplar's
    person is added to (:data:`RESIDUAL_BASES`)."""

    def __init__(self, body: nn.Module, exemplar: bool | str = False, residual_base: str = RESIDUAL_BASE) -> None:
        super().__init__()
        mode = exemplar_mode(exemplar)
        if mode not in EXEMPLAR_MODES:
            raise ValueError(f"exemplar {exemplar!r}: must be one of {', '.join(EXEMPLAR_MODES)}")
        if residual_base not in RESIDUAL_BASES:
            raise ValueError(f"residual base {residual_base!r}: must be one of {', '.join(RESIDUAL_BASES)}")
        self.residual_base = residual_base
        self.body = body
        self.mode = mode
        self.exemplar = mode != "none"
        self.residual = mode == "residual"
        self.size_multiple = body.size_multiple
        if self.residual:
            zero_last_convolution(body)

    def forward(self, labels: torch.Tensor, previous: torch.Tensor, plate: torch.Tensor,
                exemplar: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        if self.exemplar != (exemplar is not None):
            raise ValueError("this compositing generator " + ("needs the warped exemplar" if self.exemplar
                                                              else "takes no exemplar"))
        extra = [previous, plate] + ([exemplar.to(plate.dtype)] if exemplar is not None else [])
        out = self.body(labels, torch.cat(extra, dim=1))
        if self.residual:
            person, mask = residual_person_and_mask(out, exemplar, plate, self.residual_base)
        else:
            person, mask = out[:, :3], (out[:, 3:] + 1.0) * 0.5
        return composite(person.float(), mask.float(), plate.float()), mask.float()

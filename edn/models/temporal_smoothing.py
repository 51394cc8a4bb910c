"""The paper's temporal smoothing (Chan et al. 2019, section 3.2), in one place.

Not to be confused with filtering keypoints over time (:mod:`edn.pose.keypoint_filter`).

Temporal smoothing makes the generator draw each frame from its stick figure
*and the frame it drew just before*, and makes the discriminator judge two
consecutive frames at once, so that the video is coherent over time:

- training (:func:`unroll_pair`): I0 = G(label_t, zeros), I1 = G(label_t+1, I0),
  gradients flowing through both passes;
- the discriminator (:func:`discriminator_input`) sees (label_t, label_t+1, I0, I1),
  12 channels, against the real pair;
- synthesis (:func:`edn.models.generation.generate_frames`) feeds every generated frame
  to the next, the zero image (mid-grey) first.

Frame by frame (``temporal=False``, the paper's FBF ablation): every frame is
drawn from the zero image, and pix2pixHD's per-frame discriminator judges
(label, image), 6 channels, the two frames of a pair as a batch of two.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

#: Channels the discriminator sees: (label_t, label_t+1, image_t, image_t+1), or (label, image).
TEMPORAL_CHANNELS = 12
FRAME_CHANNELS = 6

#: ``draw(label, previous, frame_index) -> frame``: one generator step (with the face
#: residual where there is one); frame_index 0 or 1 within the pair.
DrawStep = Callable[[torch.Tensor, torch.Tensor, int], torch.Tensor]


def first_previous_frame(label: torch.Tensor) -> torch.Tensor:
    """The "previous frame" of a sequence's first frame: the zero image (mid-grey in [-1, 1])."""
    return torch.zeros_like(label)


def previous_frame(generated: torch.Tensor | None, label: torch.Tensor, temporal: bool) -> torch.Tensor:
    """What the generator is fed beside ``label``: the frame it drew before, or the zero
    image (the first frame, and every frame when trained frame by frame)."""
    if generated is None or not temporal:
        return first_previous_frame(label)
    return generated


def unroll_pair(draw: DrawStep, label0: torch.Tensor, label1: torch.Tensor, *, temporal: bool,
                first_previous: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The training pair: I0 = draw(label0, zeros), I1 = draw(label1, I0); nothing detached.
    Frame by frame: I1 = draw(label1, zeros).

    ``first_previous``: what I0 is fed instead of the zero image: the generator's
    own frame before the pair, drawn without gradients (the unrolled sequence the
    composite method trains on; the paper always starts from the zero image).
    """
    fake0 = draw(label0, previous_frame(first_previous, label0, temporal), 0)
    fake1 = draw(label1, previous_frame(fake0, label1, temporal), 1)
    return fake0, fake1


def temporal_input(label_t: torch.Tensor, label_next: torch.Tensor,
                   image_t: torch.Tensor, image_next: torch.Tensor) -> torch.Tensor:
    """The temporal discriminator's 12-channel input, in the authors' order:
    (label_t, label_t+1, image_t, image_t+1), each ``[B, 3, H, W]``."""
    return torch.cat([label_t, label_next, image_t, image_next], dim=1)


def frame_input(label_t: torch.Tensor, label_next: torch.Tensor,
                image_t: torch.Tensor, image_next: torch.Tensor) -> torch.Tensor:
    """The frame-by-frame discriminator's input for the same two frames: each frame
    judged on its own, (label, image) as 6 channels, the two frames as a batch of
    ``2B``: the pix2pixHD conditional discriminator (the paper's FBF ablation)."""
    return torch.cat([torch.cat([label_t, image_t], dim=1), torch.cat([label_next, image_next], dim=1)], dim=0)


def discriminator_input(temporal: bool):
    """:func:`temporal_input` with temporal smoothing, else :func:`frame_input`."""
    return temporal_input if temporal else frame_input


def discriminator_channels(temporal: bool) -> int:
    return TEMPORAL_CHANNELS if temporal else FRAME_CHANNELS

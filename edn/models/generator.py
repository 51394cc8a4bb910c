"""The main generator: pix2pixHD's global generator and local enhancer (Chan et al. 2019, section 3.2).

Inputs are the stick figure ``labels: [B, 3, H, W]`` in [0, 1] and the previous
generated frame ``previous: [B, 3, H, W]`` in [-1, 1] (zeros, i.e. mid-grey, for
the first frame of a sequence); they are concatenated to the 6-channel input.
Output: the frame ``[B, 3, H, W]`` in [-1, 1] (tanh). H and W must be multiples of
``2 ** n_downsampling`` (twice that for the local enhancer).

``upsampling`` says how the generators double their resolution on the way back up:
``"transposed"``, pix2pixHD's 3x3 stride-2 transposed convolutions (the paper's
networks), or ``"resize"``, a nearest-neighbour upsampling by 2 followed by a 3x3
convolution (:class:`ResizeConv`). A 3x3 kernel at stride 2 overlaps itself unevenly,
so a transposed convolution paints a checkerboard into its output unless its weights
learn to cancel it; resizing first gives every output pixel the same number of
contributions (Odena, Dumoulin and Olah, "Deconvolution and Checkerboard Artifacts",
Distill 2016). Both have the same parameters, so a network has the same size either way.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from edn.core.errors import EdnError
from edn.models.blocks import ResidualBlock, downsample, init_weights, norm

LABEL_CHANNELS = 3
IMAGE_CHANNELS = 3
#: How a generator doubles its resolution (see the module docstring).
UPSAMPLINGS = ("transposed", "resize")


class ResizeConv(nn.Conv2d):
    """Nearest-neighbour upsampling by 2, reflect-pad 1, 3x3 convolution: ``[B, C_in, h, w]``
    to ``[B, C_out, 2h, 2w]``, as the transposed convolution it replaces, with as many
    parameters (``C_out x C_in x 3 x 3`` and ``C_out`` biases) and the state-dict keys of
    a convolution (``weight``, ``bias``), so that :func:`init_weights` draws it as one."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(in_channels, out_channels, 3, padding=1, padding_mode="reflect")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(nn.functional.interpolate(x, scale_factor=2, mode="nearest"))


def upsampling_layer(in_channels: int, out_channels: int, upsampling: str) -> nn.Module:
    """The layer that doubles H and W on the way back up: ``upsampling`` one of :data:`UPSAMPLINGS`."""
    if upsampling == "transposed":
        return nn.ConvTranspose2d(in_channels, out_channels, 3, stride=2, padding=1, output_padding=1)
    if upsampling == "resize":
        return ResizeConv(in_channels, out_channels)
    raise ValueError(f"upsampling {upsampling!r}: must be one of {', '.join(UPSAMPLINGS)}")


def generator_trunk(input_channels: int, ngf: int, n_downsampling: int, n_blocks: int,
                    upsampling: str = "transposed") -> nn.Sequential:
    """Everything of the global generator but its last 7x7 convolution and tanh.

    7x7 conv to ``ngf`` filters, ``n_downsampling`` stride-2 3x3 convs doubling
    the filters, ``n_blocks`` residual blocks, as many upsampling layers (transposed
    or resize convolutions, :func:`upsampling_layer`) back to ``ngf`` filters at the
    input resolution. Output ``[B, ngf, H, W]``.
    """
    layers: list[nn.Module] = [nn.ReflectionPad2d(3), nn.Conv2d(input_channels, ngf, 7), norm(ngf), nn.ReLU(True)]
    for i in range(n_downsampling):
        channels = ngf * 2 ** i
        layers += [nn.Conv2d(channels, 2 * channels, 3, stride=2, padding=1), norm(2 * channels), nn.ReLU(True)]
    bottleneck = ngf * 2 ** n_downsampling
    layers += [ResidualBlock(bottleneck) for _ in range(n_blocks)]
    for i in range(n_downsampling, 0, -1):
        channels = ngf * 2 ** i
        layers += [upsampling_layer(channels, channels // 2, upsampling), norm(channels // 2), nn.ReLU(True)]
    return nn.Sequential(*layers)


def to_image(ngf: int, output_channels: int = IMAGE_CHANNELS) -> nn.Sequential:
    """The generator's last layers: reflect-pad, 7x7 conv to RGB, tanh."""
    return nn.Sequential(nn.ReflectionPad2d(3), nn.Conv2d(ngf, output_channels, 7), nn.Tanh())


class GlobalGenerator(nn.Module):
    """pix2pixHD's global generator G1 on (labels, previous) -> frame; also the face generator's body."""

    def __init__(self, ngf: int, n_downsampling: int, n_blocks: int,
                 input_channels: int = LABEL_CHANNELS + IMAGE_CHANNELS, output_channels: int = IMAGE_CHANNELS,
                 upsampling: str = "transposed") -> None:
        super().__init__()
        self.size_multiple = 2 ** n_downsampling
        self.upsampling = upsampling
        self.trunk = generator_trunk(input_channels, ngf, n_downsampling, n_blocks, upsampling)
        self.to_image = to_image(ngf, output_channels)
        self.apply(init_weights)

    def forward(self, labels: torch.Tensor, previous: torch.Tensor) -> torch.Tensor:
        return self.to_image(self.trunk(torch.cat([labels, previous], dim=1)))


class LocalEnhancer(nn.Module):
    """pix2pixHD's local enhancer G2 around a global generator G1 (Wang et al. 2018, section 3.2).

    The global branch is G1 without its last layers, run on the input
    downsampled by 2; its ``2 * local_ngf`` feature maps are added to the front
    end's (7x7 conv to ``local_ngf``, stride-2 conv to ``2 * local_ngf``), then
    ``local_blocks`` residual blocks, an upsampling layer back to full size and
    the 7x7 conv + tanh; both branches upsample the same way (``upsampling``).
    G1's weights come from the global stage (:meth:`load_global_weights`).
    """

    def __init__(self, local_ngf: int, local_blocks: int, global_n_downsampling: int, global_n_blocks: int,
                 input_channels: int = LABEL_CHANNELS + IMAGE_CHANNELS, output_channels: int = IMAGE_CHANNELS,
                 upsampling: str = "transposed") -> None:
        super().__init__()
        global_ngf = 2 * local_ngf
        self.size_multiple = 2 ** (global_n_downsampling + 1)
        self.upsampling = upsampling
        self.global_trunk = generator_trunk(input_channels, global_ngf, global_n_downsampling, global_n_blocks,
                                            upsampling)
        self.front = nn.Sequential(
            nn.ReflectionPad2d(3), nn.Conv2d(input_channels, local_ngf, 7), norm(local_ngf), nn.ReLU(True),
            nn.Conv2d(local_ngf, global_ngf, 3, stride=2, padding=1), norm(global_ngf), nn.ReLU(True),
        )
        self.back = nn.Sequential(
            *[ResidualBlock(global_ngf) for _ in range(local_blocks)],
            upsampling_layer(global_ngf, local_ngf, upsampling), norm(local_ngf), nn.ReLU(True),
            *to_image(local_ngf, output_channels),
        )
        self.apply(init_weights)

    def forward(self, labels: torch.Tensor, previous: torch.Tensor) -> torch.Tensor:
        x = torch.cat([labels, previous], dim=1)
        return self.back(self.front(x) + self.global_trunk(downsample(x)))

    def load_global_weights(self, global_state_dict: Mapping[str, torch.Tensor], source: str = "global generator") -> None:
        """Copy a :class:`GlobalGenerator`'s trunk weights into the global branch.

        Strict: every trunk weight must be present with the same shape, and the
        only weights left over are the global generator's ``to_image`` layers,
        which the enhancer drops. ``source`` names the checkpoint in errors.
        """
        trunk = {key.removeprefix("trunk."): value for key, value in global_state_dict.items()
                 if key.startswith("trunk.")}
        leftover = sorted(key for key in global_state_dict if not key.startswith(("trunk.", "to_image.")))
        if leftover:
            raise EdnError(f"{source}: not a global generator (unexpected weights {', '.join(leftover[:3])})")
        try:
            self.global_trunk.load_state_dict(trunk, strict=True)
        except RuntimeError as error:
            first_line = str(error).strip().splitlines()[0]
            raise EdnError(f"{source}: does not fit the local enhancer's global branch ({first_line})") from None

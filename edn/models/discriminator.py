"""The temporal multi-scale PatchGAN (Chan et al. 2019, section 3.2) and the face PatchGAN.

Every discriminator returns its intermediate features (for feature matching)
with the patch predictions last; it has no sigmoid (LSGAN).
"""

from __future__ import annotations

import torch
from torch import nn

from edn.models.blocks import downsample, init_weights, norm

KERNEL = 4
PADDING = 2  # ceil((KERNEL - 1) / 2), as pix2pixHD
MAX_FILTERS = 512


class PatchDiscriminator(nn.Module):
    """pix2pixHD's N-layer PatchGAN.

    4x4 convs: ``ndf`` filters at stride 2 (no norm), ``n_layers - 1`` more at
    stride 2 doubling the filters (at most 512), one at stride 1, then a 1-filter
    conv giving a patch map. LeakyReLU 0.2, instance norm. ``forward`` returns
    the ``n_layers + 2`` outputs of these groups, the prediction last.
    """

    def __init__(self, input_channels: int, ndf: int, n_layers: int) -> None:
        super().__init__()
        groups: list[nn.Module] = [nn.Sequential(nn.Conv2d(input_channels, ndf, KERNEL, 2, PADDING),
                                                 nn.LeakyReLU(0.2, True))]
        filters = ndf
        for layer in range(1, n_layers + 1):
            previous, filters = filters, min(filters * 2, MAX_FILTERS)
            stride = 2 if layer < n_layers else 1
            groups.append(nn.Sequential(nn.Conv2d(previous, filters, KERNEL, stride, PADDING), norm(filters),
                                        nn.LeakyReLU(0.2, True)))
        groups.append(nn.Sequential(nn.Conv2d(filters, 1, KERNEL, 1, PADDING)))
        self.groups = nn.ModuleList(groups)
        self.apply(init_weights)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        features = []
        for group in self.groups:
            x = group(x)
            features.append(x)
        return features


class MultiscaleDiscriminator(nn.Module):
    """``n_scales`` PatchGANs; scale ``i`` sees the input downsampled ``i`` times.

    ``forward`` returns one feature list per scale, full resolution first.
    """

    def __init__(self, input_channels: int, ndf: int, n_layers: int, n_scales: int) -> None:
        super().__init__()
        self.n_layers = n_layers
        self.scales = nn.ModuleList(PatchDiscriminator(input_channels, ndf, n_layers) for _ in range(n_scales))

    def forward(self, x: torch.Tensor) -> list[list[torch.Tensor]]:
        outputs = []
        for i, scale in enumerate(self.scales):
            if i:
                x = downsample(x)
            outputs.append(scale(x))
        return outputs

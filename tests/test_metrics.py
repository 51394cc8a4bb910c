"""Evaluation metrics with known answers, and the nearest-neighbour baseline (eq. 6)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

from edn.evaluation.baseline import nearest_neighbours, pose_distances
from edn.ingest.frames import load_frames
from edn.ingest.decode import decode_video
from edn.evaluation.metrics import METRICS, MetricUnavailable, compare_regions, frame_changes, temporal_stability
from edn.pose.skeleton import BODY, Body, KEYPOINT_COUNT
from helpers import DEMO
from standin_alexnet import torch_hub  # noqa: F401 (a fixture)


@pytest.fixture(scope="module")
def real_frames(tmp_path_factory) -> np.ndarray:
    """Eight real frames of the juggler at 256x128."""
    directory = tmp_path_factory.mktemp("juggler")
    decode_video(DEMO / "target_juggler.mp4", directory / "f.npy", directory / "m.json", working_size=(256, 128))
    return np.array(load_frames(directory / "f.npy")[40:48])


def blurred(images: np.ndarray, sigma: float) -> np.ndarray:
    return np.stack([gaussian_filter(i.astype(np.float64), (sigma, sigma, 0)) for i in images]).round().astype(np.uint8)


def shifted(images: np.ndarray, pixels: int) -> np.ndarray:
    return np.roll(images, pixels, axis=2)


def test_ssim_known_answers(real_frames) -> None:
    ssim = METRICS["ssim"].compute
    assert ssim(real_frames, real_frames) == pytest.approx(np.ones(8))
    assert np.all(ssim(real_frames, 255 - real_frames) < 0.2)
    soft, softer = ssim(blurred(real_frames, 1.0), real_frames), ssim(blurred(real_frames, 3.0), real_frames)
    assert np.all(softer < soft) and np.all(soft < 1.0)
    assert np.all(ssim(shifted(real_frames, 6), real_frames) < ssim(shifted(real_frames, 1), real_frames))


def test_stlpips_known_answers(real_frames) -> None:
    stlpips = METRICS["stlpips_alex"].compute
    assert stlpips(real_frames, real_frames) == pytest.approx(np.zeros(8), abs=1e-6)
    soft, softer = stlpips(blurred(real_frames, 1.0), real_frames), stlpips(blurred(real_frames, 3.0), real_frames)
    assert np.all(soft > 0) and np.all(softer > soft)
    noise = np.random.default_rng(0).integers(0, 256, real_frames.shape, dtype=np.uint8)
    assert np.all(stlpips(noise, real_frames) > softer)
    # Shift tolerance is its point: a 1-pixel shift costs less than a blur.
    assert np.mean(stlpips(shifted(real_frames, 1), real_frames)) < np.mean(soft)


def test_lpips_alex_is_unavailable_without_its_backbone_weights(torch_hub, real_frames) -> None:
    assert not torch_hub.alexnet_weights.exists()
    with pytest.raises(MetricUnavailable) as why:
        METRICS["lpips_alex"].compute(real_frames[:1], real_frames[:1])
    assert str(why.value) == (f"torchvision's ImageNet AlexNet weights are not at {torch_hub.alexnet_weights} "
                              "(download them once, e.g. with torchvision.models.alexnet(weights='DEFAULT'))")


def test_lpips_alex_refuses_a_file_that_is_not_torchvision_s(torch_hub, real_frames) -> None:
    """A file under the real name whose content is not the real file's (its SHA-256 does not begin
    with the hash in the name) is never loaded: LPIPS-Alex is reported unavailable."""
    import torch

    from standin_alexnet import standin_alexnet_state_dict

    torch_hub.alexnet_weights.parent.mkdir(parents=True)
    torch.save(standin_alexnet_state_dict(), torch_hub.alexnet_weights)  # not through install_standin_alexnet
    with pytest.raises(MetricUnavailable, match="its SHA-256 begins [0-9a-f]{8}, not the 7be5be79 its name says"):
        METRICS["lpips_alex"].compute(real_frames[:1], real_frames[:1])


def test_lpips_alex_with_standin_alexnet_weights(torch_hub, real_frames) -> None:
    """LPIPS-Alex through its real loading and computing path, with STAND-IN AlexNet weights.

    The backbone file is random AlexNet weights (fixed seed) saved under the name
    of torchvision's ImageNet file, since the real one cannot be downloaded here:
    the values are not the paper's LPIPS, only the code around them is tested.
    The linear layers are the lpips package's real ones.
    """
    import lpips
    import torch
    import torchvision

    from edn.evaluation import metrics
    # edn checks for the file torchvision loads (it would try to download any other name).
    assert torchvision.models.AlexNet_Weights.IMAGENET1K_V1.url.endswith("/" + metrics.ALEXNET_WEIGHTS)
    standin = torch_hub.install_standin_alexnet()
    lpips_alex = METRICS["lpips_alex"].compute
    same = lpips_alex(real_frames, real_frames)
    assert same.shape == (8,) and same.dtype == np.float64
    assert same == pytest.approx(np.zeros(8), abs=1e-6)

    # The model that computed it has the stand-in backbone and the package's linear layers.
    model = metrics._lpips_alex_model()
    backbone = model.net.state_dict()
    assert len(backbone) == 10  # five convolutions, weight and bias each
    for name, tensor in backbone.items():  # "slice2.3.weight" is AlexNet's "features.3.weight"
        assert torch.equal(tensor, standin["features." + name.split(".", 1)[1]]), name
    linear = torch.load(Path(lpips.__file__).parent / "weights" / "v0.1" / "alex.pth", map_location="cpu")
    assert len(linear) == 5
    for name, tensor in linear.items():
        assert torch.equal(model.state_dict()[name], tensor), name

    soft = lpips_alex(blurred(real_frames, 1.0), real_frames)
    softer = lpips_alex(blurred(real_frames, 3.0), real_frames)
    assert soft.shape == softer.shape == (8,)
    assert np.all(soft > 1e-3) and np.all(softer > soft)
    noise = np.random.default_rng(0).integers(0, 256, real_frames.shape, dtype=np.uint8)
    assert np.all(lpips_alex(noise, real_frames) > softer)

    # One value per pair, in order, across the batches of 16.
    mixed = np.concatenate([real_frames, blurred(real_frames, 3.0), blurred(real_frames, 1.0)])[:20]
    reference = np.concatenate([real_frames, real_frames, real_frames])[:20]
    values = lpips_alex(mixed, reference)
    assert values.shape == (20,)
    assert values == pytest.approx(np.concatenate([same, softer, soft])[:20], rel=1e-5, abs=1e-7)


def test_regions_compare_the_boxes_only(real_frames) -> None:
    damaged = real_frames.copy()
    damaged[:, :, 200:] = 0  # ruin the right side only
    boxes = np.tile([10, 10, 90, 100], (8, 1))
    assert compare_regions(METRICS["ssim"], damaged, real_frames, boxes) == pytest.approx(np.ones(8))
    assert np.all(compare_regions(METRICS["ssim"], damaged, real_frames) < 0.99)


def test_temporal_stability_known_answers(real_frames) -> None:
    same = temporal_stability(real_frames, real_frames)
    assert same == {"temporal_change_ratio": pytest.approx(1.0), "temporal_change_error": 0.0}
    flicker = real_frames.astype(np.int16)
    flicker[::2] += 20
    flicker = np.clip(flicker, 0, 255).astype(np.uint8)
    worse = temporal_stability(flicker, real_frames)
    assert worse["temporal_change_ratio"] > 1.5 and worse["temporal_change_error"] > 10
    frozen = np.repeat(real_frames[:1], 8, axis=0)
    assert temporal_stability(frozen, real_frames)["temporal_change_ratio"] == 0.0
    assert frame_changes(np.zeros((3, 2, 2, 3), np.uint8)).tolist() == [0.0, 0.0]


def _poses(points: dict[int, tuple[float, float]], frames: int = 1) -> np.ndarray:
    poses = np.zeros((frames, KEYPOINT_COUNT, 3), np.float32)
    for joint, (x, y) in points.items():
        poses[:, joint] = (x, y, 1.0)
    return poses


def test_pose_distance_is_eq_6() -> None:
    a = _poses({Body.NOSE: (0, 0), Body.NECK: (0, 10), Body.R_ANKLE: (5, 50)})
    b = _poses({Body.NOSE: (3, 4), Body.NECK: (0, 10), Body.L_ANKLE: (9, 9)})
    # Shared joints: nose (distance 5) and neck (0): mean 2.5; ankles are not shared.
    assert pose_distances(a, b)[0, 0] == pytest.approx(2.5)
    nobody = np.zeros((1, KEYPOINT_COUNT, 3), np.float32)
    assert pose_distances(a, nobody)[0, 0] == np.inf
    # Only body joints count: a far-away face point changes nothing.
    c = b.copy()
    c[0, BODY.stop + 3] = (900, 900, 1.0)
    d = a.copy()
    d[0, BODY.stop + 3] = (0, 0, 1.0)
    assert pose_distances(d, c)[0, 0] == pytest.approx(2.5)


def test_nearest_neighbour_on_a_tiny_set_with_a_known_answer() -> None:
    rng = np.random.default_rng(3)
    reference = np.zeros((6, KEYPOINT_COUNT, 3), np.float32)
    reference[:, BODY, :2] = rng.uniform(0, 200, (6, BODY.stop, 2))
    reference[:, BODY, 2] = 1.0
    # Queries: reference poses 4, 0 and 2, each moved by under a pixel, in that order.
    query = reference[[4, 0, 2]].copy()
    query[..., :2] += rng.uniform(-0.5, 0.5, query[..., :2].shape)
    assert nearest_neighbours(query, reference).tolist() == [4, 0, 2]
    # A query missing most joints is matched on the joints it has.
    partial = reference[[5]].copy()
    partial[0, 3:BODY.stop] = 0
    assert nearest_neighbours(partial, reference).tolist() == [5]

"""Speed fixes in hot paths change no result: each is compared with the straightforward version it replaced."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from edn.labels.label_store import LabelIndex
from edn.models import build_face_generator, build_generator
from edn.core.presets import PRESETS
from edn.labels.render import face_box_side
from edn.models.generation import FrameGenerator
from edn.core.runtime import Runtime
from edn.transfer.synthesize import synthesize_sequence
from edn.training.trainer import adam

SIZE = (64, 32)  # the tiny preset's test size (width, height)


def _models() -> FrameGenerator:
    torch.manual_seed(0)
    preset = PRESETS["tiny"]
    return FrameGenerator(generator=build_generator(preset, "global").eval(),
                          face_generator=build_face_generator(preset).eval(), size=SIZE, description="random tiny")


def _labels(frames: int) -> tuple[np.ndarray, LabelIndex]:
    width, height = SIZE
    labels = np.random.default_rng(1).integers(0, 256, (frames, height, width, 3), dtype=np.uint8)
    side = face_box_side(width)
    boxes = np.tile(np.array([20, 4, 20 + side, 4 + side], np.int32), (frames, 1))
    has_face = np.arange(frames) % 3 != 2  # some frames without a face
    return labels, LabelIndex(has_body=np.ones(frames, bool), face_boxes=boxes, has_face=has_face)


@torch.inference_mode()
def _one_region_per_frame(models: FrameGenerator, labels: np.ndarray, index: LabelIndex, runtime: Runtime):
    """Synthesis as it was written before: an autocast region per frame, in inference mode."""
    height, width = labels.shape[1:3]
    out = np.empty_like(labels)
    if runtime.channels_last:
        models.generator.to(memory_format=torch.channels_last)
    previous = runtime.place(torch.zeros(1, 3, height, width))
    for t in range(len(labels)):
        label = runtime.place(torch.from_numpy(labels[t].copy()).permute(2, 0, 1)[None].float().div_(255.0))
        with runtime.autocast():
            frame = models.generator(label, previous).float()
            if index.has_face[t]:
                frame = models.face_generator(frame, label, [tuple(int(v) for v in index.face_boxes[t])]).float()
        frame = frame.clamp_(-1.0, 1.0)
        out[t] = ((frame[0].permute(1, 2, 0) + 1.0) * 127.5).round_().to(torch.uint8).numpy()
        previous = runtime.place(frame)
    return out


#: bf16 autocast on a CPU without bf16 units is several times fp32's time: the fast lane keeps
#: one bf16 case (make test-fast), the whole suite all three.
BF16_ON_A_CPU = pytest.mark.slow


@pytest.mark.parametrize("bf16,channels_last", [(False, False), (True, False),
                                                pytest.param(True, True, marks=BF16_ON_A_CPU)])
def test_synthesis_frames_unchanged_by_one_autocast_region(bf16, channels_last):
    models, (labels, index) = _models(), _labels(6)
    runtime = Runtime(device=torch.device("cpu"), bf16=bf16, channels_last=channels_last)
    expected = _one_region_per_frame(models, labels, index, runtime)
    out = np.empty_like(labels)
    synthesize_sequence(models, labels, index, out, runtime, progress=False)
    np.testing.assert_array_equal(out, expected)
    assert len(np.unique(out)) > 10  # real pictures, not a constant frame


@BF16_ON_A_CPU
def test_synthesis_casts_the_weights_to_bf16_once_not_every_frame():
    models = _models()
    runtime = Runtime(device=torch.device("cpu"), bf16=True)
    weights = sum(1 for _ in models.generator.parameters()) + sum(1 for _ in models.face_generator.parameters())

    def synthesize(labels, index):
        synthesize_sequence(models, labels, index, np.empty_like(labels), runtime, progress=False)

    def casts_per_frame(synthesis) -> float:
        """Casts (aten::_to_copy) each frame adds: weights and activations."""
        counts = []
        for frames in (2, 6):
            labels, index = _labels(frames)
            with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as profile:
                synthesis(labels, LabelIndex(index.has_body, index.face_boxes, np.ones(frames, bool)))
            counts.append(sum(event.count for event in profile.key_averages() if event.key == "aten::_to_copy"))
        return (counts[1] - counts[0]) / 4

    before = casts_per_frame(lambda labels, index: _one_region_per_frame(models, labels, index, runtime))
    after = casts_per_frame(synthesize)
    assert after <= before - weights, f"{after} casts per frame, {before} with a region per frame, {weights} weights"


def test_training_adam_is_fused_and_makes_the_reference_update():
    torch.manual_seed(0)
    generator = build_generator(PRESETS["tiny"], "global")
    reference = build_generator(PRESETS["tiny"], "global")
    reference.load_state_dict(generator.state_dict())
    fused = adam(generator.parameters(), 2e-4)
    plain = torch.optim.Adam(reference.parameters(), lr=2e-4, betas=(0.5, 0.999), foreach=False, fused=False)
    assert fused.defaults["fused"]
    for step in range(3):
        for a, b in zip(generator.parameters(), reference.parameters()):
            a.grad = torch.randn_like(a) * 10.0 ** -step
            b.grad = a.grad.clone()
        fused.step()
        plain.step()
    for a, b in zip(generator.parameters(), reference.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-8)
    moved = sum(float((a - b).detach().abs().sum()) for a, b in zip(generator.parameters(), _models().generator.parameters()))
    assert moved > 0  # the update did something

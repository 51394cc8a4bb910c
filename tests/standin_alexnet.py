"""A torch hub cache that the tests control, for LPIPS-Alex (``edn.evaluation.metrics.lpips_alex``).

LPIPS-Alex needs torchvision's ImageNet AlexNet weights
(``alexnet-owt-7be5be79.pth``) in ``torch.hub.get_dir()/checkpoints/``; this
machine has no network, so the real file cannot be had. ``TorchHub`` points the
hub at an empty temporary directory and can put STAND-IN weights there: a
``torchvision.models.alexnet(weights=None)`` built with a fixed seed (random,
not ImageNet-trained), saved under the real file's name. lpips and torchvision
then load it through their real path: ``tv.alexnet(pretrained=True)`` calls
``load_state_dict_from_url(..., check_hash=True)``, and torch.hub checks the
hash prefix in the name only while downloading a missing file, never for a file
already in the cache. edn checks that hash prefix itself
(:func:`edn.core.torch_file.hub_file_problem`), and a stand-in cannot have it: the
check is told to accept this one file, and only it. Distances computed with the
stand-in test the loading and computing code, not the paper's LPIPS values.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from edn.evaluation import metrics
#: Seed of the stand-in (random) AlexNet weights.
STANDIN_ALEXNET_SEED = 20180111


def standin_alexnet_state_dict() -> dict:
    """Random AlexNet weights with a fixed seed: a stand-in for the ImageNet ones, never the real thing."""
    import torch
    import torchvision

    generator_state = torch.random.get_rng_state()
    try:
        torch.manual_seed(STANDIN_ALEXNET_SEED)
        return torchvision.models.alexnet(weights=None).state_dict()
    finally:
        torch.random.set_rng_state(generator_state)


class TorchHub:
    """The torch hub directory of one test: empty until ``install_standin_alexnet``."""

    def __init__(self, hub: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.hub = hub
        self.alexnet_weights = hub / "checkpoints" / metrics.ALEXNET_WEIGHTS
        self.monkeypatch = monkeypatch

    def install_standin_alexnet(self) -> dict:
        """Save the stand-in AlexNet weights under the real file's name; returns them. The hash
        check accepts this file (a stand-in cannot carry torchvision's hash) and no other."""
        import torch

        from edn.core import torch_file
        state = standin_alexnet_state_dict()
        self.alexnet_weights.parent.mkdir(parents=True, exist_ok=True)
        torch.save(state, self.alexnet_weights)
        real_check, standin = torch_file.hub_file_problem, self.alexnet_weights.resolve()
        self.monkeypatch.setattr(torch_file, "hub_file_problem",
                                 lambda path: None if Path(path).resolve() == standin else real_check(path))
        return state


@pytest.fixture
def torch_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Point torch hub at ``<tmp>/torch/hub`` (through ``$TORCH_HOME``) with a fresh LPIPS-Alex model cache."""
    import torch

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    # A torch.hub.set_dir() elsewhere would win over $TORCH_HOME; undo it for this test.
    monkeypatch.setattr(torch.hub, "_hub_dir", None)
    hub = TorchHub(tmp_path / "torch" / "hub", monkeypatch)
    assert Path(torch.hub.get_dir()) == hub.hub
    metrics._lpips_alex_model.cache_clear()
    try:
        yield hub
    finally:
        metrics._lpips_alex_model.cache_clear()

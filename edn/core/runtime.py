"""Where and how tensors are computed: the one place that looks at the hardware.

Entry points (the CLI handlers) turn :class:`edn.core.options.RuntimeOptions` into a
:class:`Runtime` with :func:`choose_runtime`; library code takes the Runtime.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch
from torch import nn

from edn.core.errors import EdnError
from edn.core.options import RuntimeOptions


@dataclass(frozen=True)
class Runtime:
    """Where and how tensors are computed: device, bf16 autocast, channels_last memory layout."""

    device: torch.device
    bf16: bool = False
    channels_last: bool = False

    def autocast(self) -> contextlib.AbstractContextManager:
        return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16, enabled=self.bf16)

    def place(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(self.device)
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def place_module(self, module: nn.Module) -> nn.Module:
        module = module.to(self.device)
        return module.to(memory_format=torch.channels_last) if self.channels_last else module

    def describe(self) -> str:
        return (f"device {self.device}, {'bf16 autocast' if self.bf16 else 'fp32'}, "
                f"{'channels_last' if self.channels_last else 'contiguous'}")


def cpu_runs_bf16() -> bool:
    """Whether oneDNN runs bf16 convolutions natively here (AVX-512 BF16 or AMX)."""
    try:
        return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def choose_device(device: str) -> torch.device:
    """``auto``: the first CUDA device when there is one, else the CPU; ``cuda`` or ``cuda:N`` must exist."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    chosen = torch.device(device)
    if chosen.type == "cuda":
        if not torch.cuda.is_available():
            raise EdnError(f"device {device!r}: no CUDA device is available")
        count = torch.cuda.device_count()
        if chosen.index is not None and chosen.index >= count:
            raise EdnError(f"device {device!r}: this machine has {count} CUDA device(s), cuda:0..cuda:{count - 1}")
    return chosen


def choose_runtime(options: RuntimeOptions, *, deterministic: bool = False) -> Runtime:
    """The device and numeric settings ``options`` ask for, on this machine.

    ``precision`` auto: bf16 where the device runs it natively (on a CPU:
    AVX-512 BF16 or AMX). ``channels_last`` auto: on CUDA only. On a CPU
    (oneDNN, bf16) instance norm hands back contiguous tensors and weight
    gradients come back contiguous, so NHWC costs conversions: `make bench`
    measured the contiguous layout 5-14% faster for the paper preset on a
    2-core AMD EPYC (docs/performance.md). ``deterministic``: fp32, whatever
    ``precision`` says (tests).
    """
    device = choose_device(options.device)
    if device.type == "cuda":
        bf16_supported = torch.cuda.is_bf16_supported()
    else:
        bf16_supported = cpu_runs_bf16()
    if deterministic:
        bf16 = False
    elif options.precision == "auto":
        bf16 = bf16_supported
    else:
        bf16 = options.precision == "bf16"
    channels_last = {"auto": device.type == "cuda", "true": True, "false": False}[options.channels_last]
    return Runtime(device=device, bf16=bf16, channels_last=channels_last)


def fp32_on_cpu_without_bf16(options: RuntimeOptions, runtime: Runtime) -> bool:
    """Whether ``precision`` auto fell back to fp32 on a CPU without native bf16, where training runs at
    about half the rate of a CPU that has it (docs/performance.md). ``runtime`` is
    :func:`choose_runtime`'s for ``options`` (not deterministic), so auto left it in fp32 on a CPU
    only where that CPU has no native bf16."""
    return options.precision == "auto" and not runtime.bf16 and runtime.device.type == "cpu"


def fp32_cpu_note(options: RuntimeOptions, runtime: Runtime) -> str | None:
    """The log's line where :func:`fp32_on_cpu_without_bf16`; None otherwise."""
    if not fp32_on_cpu_without_bf16(options, runtime):
        return None
    return ("this CPU has no native bf16 (AVX-512 BF16 or AMX), so training runs in fp32, about half as "
            "fast as on one that has it (docs/performance.md); fewer iterations (--iterations; config "
            "training.iterations) make a shorter run")


def set_threads(threads: int | None) -> None:
    """CPU threads for torch (None: torch's own choice)."""
    if threads:
        torch.set_num_threads(threads)

"""Plots for people and for the report: one matplotlib set-up, every figure written atomically."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from edn.core.atomic import atomic_path
from edn.core.errors import EdnError

#: Columns of losses.csv that are bookkeeping, not loss terms.
NOT_LOSSES = ("step", "frame", "lr", "seconds")


@contextlib.contextmanager
def png_figure(path: str | os.PathLike, *, rows: int = 1, columns: int = 1, size: tuple[float, float],
               **subplots) -> Iterator[tuple[object, object]]:
    """``(figure, axes)`` of a new figure (headless backend), saved as a PNG at ``path``
    atomically when the block ends without an error, and closed in any case."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(rows, columns, figsize=size, **subplots)
    try:
        yield figure, axes
        figure.tight_layout()
        with atomic_path(path) as temporary:
            figure.savefig(temporary, dpi=100, format="png")
    finally:
        plt.close(figure)


def plot_losses(losses_csv: str | os.PathLike, output: str | os.PathLike, *, title: str,
                smoothing_window: int = 25) -> None:
    """Every loss term of a training run against the step, generator terms above and
    discriminator terms below, each as its raw values (faint) and a running mean."""
    import pandas as pd

    path = Path(losses_csv)
    if not path.is_file():
        raise EdnError(f"losses {str(path)!r}: file not found (has this stage been trained here?)")
    losses = pd.read_csv(path)
    if "step" not in losses.columns or losses.empty:
        raise EdnError(f"losses {str(path)!r}: no 'step' column or no rows")
    terms = [c for c in losses.columns if c not in NOT_LOSSES]
    groups = {"generator": [t for t in terms if t.startswith("g_")], "discriminator": [t for t in terms if t.startswith("d_")]}
    window = max(1, min(smoothing_window, len(losses) // 5 or 1))
    with png_figure(output, rows=2, size=(8, 6), sharex=True) as (_, axes):
        for axis, (name, columns) in zip(axes, groups.items()):
            for column in columns:
                values = losses[column].to_numpy(dtype=float)
                smooth = np.convolve(values, np.ones(window) / window, mode="valid")
                line, = axis.plot(losses["step"].to_numpy()[window - 1:], smooth,
                                  label=column.removeprefix(f"{name[0]}_"))
                axis.plot(losses["step"], values, color=line.get_color(), alpha=0.2, linewidth=0.8)
            axis.set_ylabel(f"{name} loss")
            axis.set_yscale("log")
            axis.legend(loc="upper right", fontsize=8)
            axis.grid(True, alpha=0.3)
        axes[-1].set_xlabel("iteration")
        axes[0].set_title(title)

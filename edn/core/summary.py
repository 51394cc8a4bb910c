"""What a pipeline run has produced, for a person to open next."""

from __future__ import annotations

from pathlib import Path

#: Final artifacts first: glob patterns under the results directory with what they are.
ARTIFACTS = (
    ("transfer/*_to_*.mp4", "transfer video"),
    ("report/report.html", "report"),
    ("eval/*/metrics.csv", "evaluation"),
    ("frames/*/frames.npy", "decoded frames"),
)


def list_results(results_dir: str | Path) -> list[tuple[str, Path]]:
    """(kind, path) of every final artifact present, most final first."""
    root = Path(results_dir)
    found = []
    for pattern, kind in ARTIFACTS:
        found.extend((kind, path) for path in sorted(root.glob(pattern)))
    return found

"""The evaluation table (like the paper's Table 1) and a picture of held-out samples."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from edn.core.atomic import write_text
from edn.core.errors import EdnError
from edn.ingest.frames import load_frames, load_image_store
from edn.labels.preview import write_png

#: Wide-table columns: (metric, region, header). Arrows: which way is better
#: (the change ratio is best at 1, the real video's own frame-to-frame change).
#: The pose columns are the paper's pose tables: keypoint error and missed
#: detections for the body, the face and the hands (both hands: 0 to 2 missed a frame).
TABLE_COLUMNS = (
    ("ssim", "full", "SSIM ↑"),
    ("ssim", "body", "SSIM body ↑"),
    ("ssim", "face", "SSIM face ↑"),
    ("lpips_alex", "full", "LPIPS ↓"),
    ("lpips_alex", "body", "LPIPS body ↓"),
    ("lpips_alex", "face", "LPIPS face ↓"),
    ("stlpips_alex", "full", "ST-LPIPS ↓"),
    ("stlpips_alex", "body", "ST-LPIPS body ↓"),
    ("stlpips_alex", "face", "ST-LPIPS face ↓"),
    ("temporal_change_error", "full", "temporal error ↓"),
    ("temporal_change_ratio", "full", "change ratio (real: 1)"),
    ("pose_detected_fraction", "body", "pose found ↑"),
    ("pose_error_px", "body", "pose error px ↓"),
    ("pose_error_height_fraction", "body", "pose error / height ↓"),
    ("pose_error_height_fraction", "face", "face error / height ↓"),
    ("pose_error_height_fraction", "hands", "hands error / height ↓"),
    ("pose_missed_per_frame", "body", "body missed / frame ↓"),
    ("pose_missed_per_frame", "face", "face missed / frame ↓"),
    ("pose_missed_per_frame", "hands", "hands missed / frame ↓"),
)


def read_metrics(paths: list[str | os.PathLike]):
    import pandas as pd

    tables = []
    for path in paths:
        if not Path(path).is_file():
            raise EdnError(f"metrics {str(path)!r}: file not found")
        tables.append(pd.read_csv(path, keep_default_na=False, na_values=["nan", "NaN", ""]))
    return pd.concat(tables, ignore_index=True)


def markdown_table(metrics) -> str:
    """One row per method, one column per (metric, region); "n/a" where a metric was unavailable."""
    methods = list(dict.fromkeys(metrics["method"]))
    header = "| method | " + " | ".join(h for _, _, h in TABLE_COLUMNS) + " |"
    lines = [header, "|---" * (len(TABLE_COLUMNS) + 1) + "|"]
    for method in methods:
        cells = []
        for metric, region, _ in TABLE_COLUMNS:
            match = metrics[(metrics["method"] == method) & (metrics["metric"] == metric)
                            & (metrics["region"] == region)]
            value = match["value"].iloc[0] if len(match) else float("nan")
            cells.append("n/a" if not np.isfinite(value) else f"{value:.4g}")
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    unavailable = metrics[metrics["note"].astype(str).str.startswith("unavailable")]
    notes = sorted(set(f"{m}: {n}" for m, n in zip(unavailable["metric"], unavailable["note"])))
    return "\n".join(lines + ([""] + [f"- {note}" for note in notes] if notes else [])) + "\n"


def _captioned(image: np.ndarray, caption: str) -> np.ndarray:
    band = np.full((14, image.shape[1], 3), 255, np.uint8)
    cv2.putText(band, caption, (2, 11), cv2.FONT_HERSHEY_SIMPLEX, 0.35, (0, 0, 0), 1, cv2.LINE_AA)
    return np.concatenate([band, image], axis=0)


def samples_image(real: np.ndarray, generated: dict[str, np.ndarray], rows: int = 3) -> np.ndarray:
    """Held-out frames evenly spread over the clip: real, then each method, left to right."""
    picks = np.linspace(0, len(real) - 1, rows).round().astype(int)
    gap = np.full((real.shape[1] + 14, 3, 3), 255, np.uint8)
    lines = []
    for t in picks:
        cells = [_captioned(np.asarray(real[t]), f"real, held-out frame {t}")]
        cells += [_captioned(np.asarray(frames[t]), name) for name, frames in generated.items()]
        lines.append(np.concatenate([c for cell in cells for c in (cell, gap)][:-1], axis=1))
    return np.concatenate(lines, axis=0)


def write_eval_table(metrics_paths: list[str], generated_paths: list[str], frames_path: str,
                     holdout_fraction: float, *, csv_out: str, markdown_out: str, samples_out: str) -> None:
    from edn.core.atomic import atomic_path
    from edn.core.options import first_heldout_frame

    metrics = read_metrics(metrics_paths)
    with atomic_path(csv_out) as temporary:
        metrics.to_csv(temporary, index=False, float_format="%.6g")
    write_text(markdown_out, markdown_table(metrics))
    frames = load_frames(frames_path)
    real = frames[first_heldout_frame(len(frames), holdout_fraction):]
    generated = {}
    for metrics_path, generated_path in zip(metrics_paths, generated_paths):
        method = read_metrics([metrics_path])["method"].iloc[0]
        store = load_image_store(generated_path, "generated frames")
        if store.shape != real.shape:
            raise EdnError(f"generated frames {generated_path!r}: {list(store.shape)}, held-out real frames "
                           f"are {list(real.shape)}")
        generated[method] = store
    write_png(samples_out, samples_image(real, generated))

"""The evaluation table (like the paper's Table 1), a picture of held-out samples, and the target's camera:
how it was registered and which method drew the target."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from edn.background.plate import CameraTable, PlateReport, fallback_message, read_camera_table, read_plate_report
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


def drawn_by(report: PlateReport, training_method: str) -> tuple[str, str]:
    """Which method drew the target and why: (``composite`` or ``paper``, the reason in words), from the
    plate report and the configured ``training.method``."""
    if training_method == "paper":
        return "paper", "the paper's whole frame, as configured (training.method: paper)"
    if report.method == "composite":
        moved = report.registered_residual is not None and report.motion_model != "identity"
        return "composite", ("the person drawn over the plate" + (", the plate warped into each frame's camera"
                                                                 if moved else ""))
    if report.background_moves:
        after = report.registered_residual
        return "paper", ("the paper's whole frame, as a fallback: the background moves after registration "
                         f"(residual {after:.2f} above the limit {report.max_camera_residual:.2f})")
    return "paper", ("the paper's whole frame, as a fallback: the camera moves (residual "
                     f"{report.camera_residual:.2f} above the limit {report.max_camera_residual:.2f} before "
                     "registration)")


def camera_markdown(report: PlateReport, training_method: str) -> str:
    """The camera section of a target's evaluation page: a table of how the camera was registered (the
    residuals are medians over the frames of the mean |frame - plate| outside the person, 0-255 units),
    which method drew the target and why; a note with the fallback's one line when it fell back."""
    method, why = drawn_by(report, training_method)
    registered = report.registered_residual is not None
    moved = registered and report.motion_model != "identity"
    rows = [
        ("motion model", report.motion_model if registered else "not registered (a report made before registration)"),
        ("camera moved", f"yes, up to {report.camera_motion:.1f} px at the frame's corners" if moved else "no"),
        ("frames registered", f"{report.registered_frames} to frame {report.reference_frame}" if registered else "n/a"),
        ("residual before registration", f"{report.camera_residual:.2f}"),
        ("residual after registration", f"{report.registered_residual:.2f}" if registered else "n/a"),
        ("limit (background.max_camera_residual)", f"{report.max_camera_residual:.2f}"),
        ("background moves", "yes" if report.background_moves else "no"),
        ("mosaic", "x".join(str(v) for v in (report.mosaic_size or report.frame_size))
         + f" (the frame {report.frame_size[0]}x{report.frame_size[1]})"),
        ("drawn by", f"{method}: {why}"),
    ]
    lines = [f"| {report.subject}'s camera | |", "|---|---|"]
    lines += [f"| {name} | {value} |" for name, value in rows]
    if training_method != "paper" and method == "paper" and report.background_moves:
        lines += ["", f"- {fallback_message(report)}"]
    return "\n".join(lines) + "\n"


def plot_camera_residuals(table: CameraTable, report: PlateReport, output: str | os.PathLike) -> None:
    """Each frame's residual before and after registration (the camera table's), and the limit, as a PNG."""
    from edn.core.plots import png_figure

    frames = np.arange(len(table.residual_before))
    with png_figure(output, size=(7.0, 2.8)) as (_, axes):
        axes.plot(frames, table.residual_before, label="before registration", color="tab:orange", linewidth=1.2)
        axes.plot(frames, table.residual_after, label="after registration", color="tab:blue", linewidth=1.2)
        axes.axhline(report.max_camera_residual, color="tab:red", linestyle="--", linewidth=1.0,
                     label="limit (background.max_camera_residual)")
        axes.set_xlabel("frame")
        axes.set_ylabel("mean |frame - plate|, 0-255")
        axes.set_title(f"{report.subject}: the background's residual per frame ({report.motion_model})")
        axes.set_ylim(bottom=0)
        axes.legend(fontsize=8, loc="best")


def write_camera_summary(report_path: str | os.PathLike, camera_path: str | os.PathLike, training_method: str, *,
                         markdown_out: str | os.PathLike, plot_out: str | os.PathLike) -> None:
    """The camera section of a target's evaluation page: its table (Markdown) and the residual plot (PNG)."""
    report = read_plate_report(report_path)
    table = read_camera_table(camera_path)
    if report.registered_residual is not None and report.registered_frames is not None \
            and len(table.residual_before) < report.registered_frames:
        raise EdnError(f"camera table {str(camera_path)!r}: {len(table.residual_before)} frames, the report "
                       f"{str(report_path)!r} registered {report.registered_frames} (another target's?)")
    plot_camera_residuals(table, report, plot_out)
    write_text(markdown_out, camera_markdown(report, training_method))

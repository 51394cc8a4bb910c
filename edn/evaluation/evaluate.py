"""Evaluation as in the paper (section 4): reconstruct the target's held-out frames.

The last ``holdout_fraction`` of the target's video is never trained on. Its
frames' own poses go through a method, and the result is compared with the real
frames:

- ``ssim``, ``lpips_alex``, ``stlpips_alex`` (see :mod:`edn.evaluation.metrics`) on the full
  frame, the body box (the detected body joints' bounding box grown by 10% of its
  size on each side) and the face box (frames with a face only);
- temporal stability of the whole held-out clip (:func:`edn.evaluation.metrics.temporal_stability`);
- pose fidelity: MediaPipe runs on the generated frames and the distance of its
  body keypoints to the input pose is averaged as in eq. 6, in pixels and as a
  fraction of the input's median standing height (nose to ankles).

Methods: ``nearest_neighbour`` (the paper's baseline, eq. 6: the training frame
whose pose is closest), ``background`` (the target's background plate with
nobody drawn: the floor a compositing model must clear, and what SSIM rewards
when a person is misplaced), and trained models (``fbf``, ``ts``, ``fg``,
``paper_ts``, ``paper_fg`` in the ablation, generated sequentially like a
transfer).
"""

from __future__ import annotations

import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edn.evaluation.baseline import nearest_neighbours, pose_distances
from edn.core.errors import EdnError
from edn.pose.keypoints import PoseSequence
from edn.labels.label_store import LabelIndex
from edn.evaluation.metrics import METRICS, MetricUnavailable, compare_regions, temporal_stability
from edn.pose.skeleton import BODY
from edn.normalize.subject_stats import ankle_measures, head_points

log = logging.getLogger(__name__)

METRICS_COLUMNS = ("method", "region", "metric", "value", "frames", "note")
#: Body boxes grow by this fraction of their width and height on each side.
BODY_BOX_MARGIN = 0.1


def body_boxes(poses: PoseSequence) -> tuple[np.ndarray, np.ndarray]:
    """Per frame: the body box (x0, y0, x1, y1) int [T, 4] inside the frame, and whether a body was found [T]."""
    width, height = poses.frame_size
    xy, present = poses.xy[:, BODY], poses.confidence[:, BODY] > 0
    found = present.any(axis=1)
    big = np.where(present[..., None], xy, np.inf)
    low = np.where(found[:, None], big.min(axis=1), 0.0)
    high = np.where(found[:, None], np.where(present[..., None], xy, -np.inf).max(axis=1), 0.0)
    margin = (high - low) * BODY_BOX_MARGIN + 2.0
    x0 = np.clip(np.floor(low[:, 0] - margin[:, 0]), 0, width - 1)
    y0 = np.clip(np.floor(low[:, 1] - margin[:, 1]), 0, height - 1)
    x1 = np.clip(np.ceil(high[:, 0] + margin[:, 0]), x0 + 1, width)
    y1 = np.clip(np.ceil(high[:, 1] + margin[:, 1]), y0 + 1, height)
    return np.stack([x0, y0, x1, y1], axis=1).astype(np.int64), found


def nearest_neighbour_frames(poses: PoseSequence, frames: np.ndarray, first_heldout: int) -> np.ndarray:
    """The baseline's output for every held-out frame: the closest training frame (eq. 6)."""
    training = np.flatnonzero((poses.confidence[:first_heldout, BODY] > 0).any(axis=1))
    if len(training) == 0:
        raise EdnError("nearest-neighbour baseline: no training frame has a body")
    chosen = training[nearest_neighbours(poses.keypoints[first_heldout:], poses.keypoints[training])]
    return np.stack([np.asarray(frames[t]) for t in chosen])


def standing_height(poses: PoseSequence) -> float:
    """Median nose-to-ankles distance over frames that show both, in pixels."""
    _, ankle_mid, has_ankles = ankle_measures(poses.keypoints)
    head, has_head = head_points(poses.keypoints)
    valid = has_ankles & has_head
    if not valid.any():
        return float("nan")
    return float(np.median(np.linalg.norm(head[valid] - ankle_mid[valid], axis=1)))


def pose_fidelity(generated: np.ndarray, input_poses: PoseSequence) -> dict[str, float]:
    """Detect poses on ``generated`` frames with MediaPipe and compare with the input poses (eq. 6).

    Returns the mean distance in pixels over frames where both have body joints,
    that distance as a fraction of the input's standing height, and the share of
    the frames whose input pose has a body in which a body was detected.
    """
    from edn.pose.detect import DEFAULT_MIN_CONFIDENCE, apply_threshold
    from edn.pose.mediapipe_holistic import detect_mediapipe

    with tempfile.TemporaryDirectory(prefix="edn-fidelity-") as scratch:
        path = Path(scratch) / "generated.npy"
        np.save(path, generated)
        detected, _ = detect_mediapipe(path, workers=2, show_progress=False)
    detected = apply_threshold(detected, DEFAULT_MIN_CONFIDENCE["mediapipe"])
    distances = np.diagonal(pose_distances(detected, input_poses.keypoints))
    finite = np.isfinite(distances)
    shown = (input_poses.confidence[:, BODY] > 0).any(axis=1)
    pixels = float(distances[finite].mean()) if finite.any() else float("nan")
    return {"pose_error_px": pixels, "pose_error_height_fraction": pixels / standing_height(input_poses),
            "pose_detected_fraction": float(finite[shown].mean()) if shown.any() else float("nan")}


@dataclass(frozen=True)
class HeldOutClip:
    """The held-out span of a target: real frames, their poses and label index, and where the body and face are."""

    real: np.ndarray
    poses: PoseSequence
    index: LabelIndex
    body_boxes: np.ndarray
    has_body: np.ndarray

    @classmethod
    def from_target(cls, frames: np.ndarray, poses: PoseSequence, index: LabelIndex, first: int) -> HeldOutClip:
        if not len(frames) == poses.frame_count == index.frame_count:
            raise EdnError(f"evaluation: {len(frames)} frames, {poses.frame_count} poses and "
                           f"{index.frame_count} labels do not match")
        if first >= len(frames) - 1:
            raise EdnError(f"evaluation: fewer than two held-out frames (of {len(frames)}); "
                           "raise training.holdout_fraction")
        clip_poses = poses.replace(poses.keypoints[first:])
        boxes, found = body_boxes(clip_poses)
        clip_index = index.select(slice(first, None))
        return cls(real=np.asarray(frames[first:]), poses=clip_poses, index=clip_index, body_boxes=boxes,
                   has_body=found)


def score(method: str, generated: np.ndarray, clip: HeldOutClip, *, with_pose_fidelity: bool = True) -> list[dict]:
    """Every metric of ``generated`` against the clip's real frames, as table rows."""
    if generated.shape != clip.real.shape:
        raise ValueError(f"generated {list(generated.shape)} and real {list(clip.real.shape)} differ")
    rows = []
    selections = {
        "full": (np.ones(len(generated), bool), None),
        "body": (clip.has_body, clip.body_boxes),
        "face": (clip.index.has_face, clip.index.face_boxes),
    }
    for name, metric in METRICS.items():
        for region, (chosen, boxes) in selections.items():
            if not chosen.any():
                rows.append(_row(method, region, name, float("nan"), 0, f"no frame with a {region}"))
                continue
            try:
                values = compare_regions(metric, generated[chosen], clip.real[chosen],
                                         None if boxes is None else boxes[chosen])
            except MetricUnavailable as why:
                rows.append(_row(method, region, name, float("nan"), 0, f"unavailable: {why}"))
                log.warning("%s: %s unavailable (%s)", method, name, why)
                break
            rows.append(_row(method, region, name, float(values.mean()), int(chosen.sum())))
    for name, value in temporal_stability(generated, clip.real).items():
        rows.append(_row(method, "full", name, value, len(generated)))
    if with_pose_fidelity:
        for name, value in pose_fidelity(generated, clip.poses).items():
            rows.append(_row(method, "body", name, value, len(generated)))
    return rows


def _row(method: str, region: str, metric: str, value: float, frames: int, note: str = "") -> dict:
    return {"method": method, "region": region, "metric": metric, "value": value, "frames": frames, "note": note}


def write_metrics(path: str | os.PathLike, rows: list[dict]) -> None:
    """Write metric rows as CSV, atomically."""
    import pandas as pd

    from edn.core.atomic import atomic_path

    with atomic_path(path) as temporary:
        pd.DataFrame(rows, columns=list(METRICS_COLUMNS)).to_csv(temporary, index=False, float_format="%.6g")

"""Evaluation as in the paper (section 4): reconstruct the target's held-out frames.

The last ``holdout_fraction`` of the target's video is never trained on. Its
frames' own poses go through a method, and the result is compared with the real
frames:

- ``ssim``, ``lpips_alex``, ``stlpips_alex`` (see :mod:`edn.evaluation.metrics`) on the full
  frame, the body box (the detected body joints' bounding box grown by 10% of its
  size on each side) and the face box (frames with a face only);
- temporal stability of the whole held-out clip (:func:`edn.evaluation.metrics.temporal_stability`);
- pose fidelity, as the paper's pose tables measure it: MediaPipe runs on the
  generated frames, and for the body, the face and the hands separately the
  distance of the keypoints it finds to the input pose is averaged as in eq. 6,
  in pixels and as a fraction of the input's median standing height (nose to
  ankles), and the parts it misses are counted per frame (:func:`pose_fidelity`).

Methods: ``nearest_neighbour`` (the paper's baseline, eq. 6: the training frame
whose pose is closest), ``background`` (the target's background plate with
nobody drawn: the floor a compositing model must clear, and what SSIM rewards
when a person is misplaced), ``pose_warp`` (the target's training frames warped
part by part to each held-out pose over the plate, PoseWarp's idea without
learning: :mod:`edn.exemplars.pose_warp`), and trained models (``fbf``, ``ts``, ``fg``,
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

from edn.evaluation.baseline import nearest_neighbours
from edn.core.errors import EdnError
from edn.pose.keypoints import PoseSequence
from edn.labels.label_store import LabelIndex
from edn.evaluation.metrics import METRICS, MetricUnavailable, compare_regions, temporal_stability
from edn.pose.skeleton import BODY, FACE, KEYPOINT_COUNT, LEFT_HAND, RIGHT_HAND
from edn.normalize.subject_stats import ankle_measures, head_points

log = logging.getLogger(__name__)

METRICS_COLUMNS = ("method", "region", "metric", "value", "frames", "note")
#: Body boxes grow by this fraction of their width and height on each side.
BODY_BOX_MARGIN = 0.1
#: The parts pose fidelity measures separately, as the paper's pose tables do (body 25,
#: face 70, hands 2 x 21 keypoints): each part's keypoint slices, one per instance.
POSE_PARTS = {"body": (BODY,), "face": (FACE,), "hands": (LEFT_HAND, RIGHT_HAND)}


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


def part_distances(detected: np.ndarray, reference: np.ndarray, part: str) -> np.ndarray:
    """Eq. 6 restricted to one part of :data:`POSE_PARTS`, frame by frame: the mean distance
    between the part's keypoints present in both ``detected`` and ``reference`` [T, K, 3]
    (both hands' keypoints pooled), in pixels; NaN where they share none. For the body it
    is the paper's pose distance."""
    indices = np.concatenate([np.arange(KEYPOINT_COUNT)[s] for s in POSE_PARTS[part]])
    a, b = detected[:, indices].astype(np.float64), reference[:, indices].astype(np.float64)
    both = (a[..., 2] > 0) & (b[..., 2] > 0)
    distance = np.linalg.norm(a[..., :2] - b[..., :2], axis=-1)
    shared = both.sum(axis=1)
    with np.errstate(invalid="ignore"):
        return np.where(shared > 0, np.where(both, distance, 0.0).sum(axis=1) / np.maximum(shared, 1), np.nan)


def missed_parts(detected: np.ndarray, reference: np.ndarray, part: str) -> np.ndarray:
    """Per frame [T]: how many instances of ``part`` (the body, the face, each hand) have a
    keypoint in ``reference`` and none in ``detected``."""
    return sum(((reference[:, s, 2] > 0).any(axis=1) & ~(detected[:, s, 2] > 0).any(axis=1)).astype(int)
               for s in POSE_PARTS[part])


def pose_measures(detected: np.ndarray, input_poses: PoseSequence) -> dict[tuple[str, str], tuple[float, int]]:
    """Pose fidelity of the poses ``detected`` [T, K, 3] on generated frames against the input
    poses, as ``{(metric, region): (value, frames measured)}``, region one of :data:`POSE_PARTS`:

    - ``pose_error_px``: the mean over frames of :func:`part_distances` (frames where the
      detected and the input pose share a keypoint of the part);
    - ``pose_error_height_fraction``: that, over the input's standing height, for every part
      (the body's scale, so that a part's error does not shrink with its size);
    - ``pose_missed_per_frame``: instances of the part the input has and the detection
      lacks (:func:`missed_parts`), per frame (the hands: 0 to 2);
    - ``pose_detected_fraction`` (body only): the share of the frames whose input pose has
      a body in which a body was detected.
    """
    keypoints, frames = input_poses.keypoints, len(detected)
    height = standing_height(input_poses)
    measures = {}
    for part in POSE_PARTS:
        distances = part_distances(detected, keypoints, part)
        finite = np.isfinite(distances)
        pixels = float(distances[finite].mean()) if finite.any() else float("nan")
        measures[("pose_error_px", part)] = (pixels, int(finite.sum()))
        measures[("pose_error_height_fraction", part)] = (pixels / height, int(finite.sum()))
        measures[("pose_missed_per_frame", part)] = (float(missed_parts(detected, keypoints, part).mean()), frames)
        if part == "body":
            shown = (keypoints[:, BODY, 2] > 0).any(axis=1)
            measures[("pose_detected_fraction", part)] = (float(finite[shown].mean()) if shown.any()
                                                          else float("nan"), int(shown.sum()))
    return measures


def detect_generated(generated: np.ndarray, workers: int = 2) -> np.ndarray:
    """MediaPipe Holistic's poses [T, K, 3] on ``generated`` uint8 frames, with the default threshold:
    the detector the pose stage runs (body, face and hands), run over the frames as a video by
    ``workers`` processes."""
    from edn.pose.detect import DEFAULT_MIN_CONFIDENCE, apply_threshold
    from edn.pose.mediapipe_holistic import detect_mediapipe

    with tempfile.TemporaryDirectory(prefix="edn-fidelity-") as scratch:
        path = Path(scratch) / "generated.npy"
        np.save(path, generated)
        detected, _ = detect_mediapipe(path, workers=workers, show_progress=False)
    return apply_threshold(detected, DEFAULT_MIN_CONFIDENCE["mediapipe"])


def pose_fidelity(generated: np.ndarray, input_poses: PoseSequence,
                  workers: int = 2) -> dict[tuple[str, str], tuple[float, int]]:
    """Detect poses on ``generated`` frames with MediaPipe (``workers`` processes) and compare them
    with the input poses part by part (:func:`pose_measures`)."""
    return pose_measures(detect_generated(generated, workers), input_poses)


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


def score(method: str, generated: np.ndarray, clip: HeldOutClip, *, with_pose_fidelity: bool = True,
          pose_workers: int = 2) -> list[dict]:
    """Every metric of ``generated`` against the clip's real frames, as table rows (the poses on
    the generated frames found by ``pose_workers`` MediaPipe processes)."""
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
        for (name, region), (value, frames) in pose_fidelity(generated, clip.poses, pose_workers).items():
            rows.append(_row(method, region, name, value, frames, "" if frames else f"no {region} to measure"))
    return rows


def _row(method: str, region: str, metric: str, value: float, frames: int, note: str = "") -> dict:
    return {"method": method, "region": region, "metric": metric, "value": value, "frames": frames, "note": note}


def write_metrics(path: str | os.PathLike, rows: list[dict]) -> None:
    """Write metric rows as CSV, atomically."""
    import pandas as pd

    from edn.core.atomic import atomic_path

    with atomic_path(path) as temporary:
        pd.DataFrame(rows, columns=list(METRICS_COLUMNS)).to_csv(temporary, index=False, float_format="%.6g")

"""Pictures for people: label sequences as videos, a normalized pose over a target frame."""

from __future__ import annotations

import os

import cv2
import numpy as np

from edn.core.atomic import atomic_path
from edn.core.errors import EdnError
from edn.pose.keypoints import PoseSequence
from edn.labels.label_store import load_labels, read_label_index
from edn.ingest.media import encode_video
from edn.labels.render import render_pose
from edn.pose.skeleton import Body
from edn.normalize.subject_stats import ankle_measures

#: Face boxes are outlined in a grey no label uses.
BOX_COLOUR = (128, 128, 128)


def write_label_preview(labels_path: str | os.PathLike, index_path: str | os.PathLike,
                        output: str | os.PathLike, *, fps: str) -> None:
    """Encode a label sequence as mp4, each frame's face box outlined in grey."""
    labels = load_labels(labels_path)
    index = read_label_index(index_path)
    if index.frame_count != len(labels):
        raise EdnError(f"label index {str(index_path)!r}: {index.frame_count} rows for {len(labels)} labels")

    def frames():
        for label, box, has_face in zip(labels, index.face_boxes, index.has_face):
            frame = np.array(label)
            if has_face:
                x0, y0, x1, y1 = (int(v) for v in box)
                cv2.rectangle(frame, (x0, y0), (x1 - 1, y1 - 1), BOX_COLOUR, 1, lineType=cv2.LINE_8)
            yield frame

    height, width = labels.shape[1:3]
    encode_video(frames(), output, fps=fps, size=(width, height), frame_count=len(labels))


def overlay(frame: np.ndarray, label: np.ndarray) -> np.ndarray:
    """The frame with the label's drawn (non-black) pixels on top."""
    drawn = label.any(axis=-1, keepdims=True)
    return np.where(drawn, label, frame)


def write_png(path: str | os.PathLike, image: np.ndarray) -> None:
    """Write an RGB uint8 image as PNG, atomically."""
    ok, data = cv2.imencode(".png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    if not ok:
        raise EdnError(f"image {str(path)!r}: PNG encoding failed")
    with atomic_path(path) as temporary:
        temporary.write_bytes(data.tobytes())


def matching_frames(normalized: PoseSequence, target: PoseSequence) -> tuple[int, int]:
    """A (target frame, normalized source frame) pair at about the same depth.

    The target frame is the one whose lower ankle is nearest the target's
    median depth; the source frame the one whose normalized lower ankle is
    nearest to that frame's.
    """
    a_t, _, valid_t = ankle_measures(target.keypoints)
    a_s, _, valid_s = ankle_measures(normalized.keypoints)
    if not valid_t.any() or not valid_s.any():
        raise EdnError("normalization figure: no frame with both ankles in the target or the source")
    median = np.median(a_t[valid_t])
    target_frame = int(np.flatnonzero(valid_t)[np.argmin(np.abs(a_t[valid_t] - median))])
    source_frame = int(np.flatnonzero(valid_s)[np.argmin(np.abs(a_s[valid_s] - a_t[target_frame]))])
    return target_frame, source_frame


def write_normalization_figure(normalized: PoseSequence, target: PoseSequence, target_frames: np.ndarray,
                               output: str | os.PathLike) -> None:
    """Side by side: a target frame with its own pose, and with the matching normalized source pose.

    Grey horizontal lines mark the target frame's lower ankle and head height so
    that a reader can compare the two figures' placement and size.
    """
    if tuple(normalized.frame_size) != tuple(target.frame_size):
        raise EdnError("normalization figure: source and target poses are at different working sizes")
    t, s = matching_frames(normalized, target)
    frame = np.asarray(target_frames[t])
    left = overlay(frame, render_pose(target.keypoints[t], target.frame_size))
    right = overlay(frame, render_pose(normalized.keypoints[s], target.frame_size))
    ankle_y = int(max(target.keypoints[t, Body.R_ANKLE, 1], target.keypoints[t, Body.L_ANKLE, 1]))
    head_y = int(target.keypoints[t, Body.NOSE, 1]) if target.keypoints[t, Body.NOSE, 2] > 0 else None
    for panel in (left, right):
        for y in (ankle_y, head_y):
            if y is not None:
                cv2.line(panel, (0, y), (panel.shape[1] - 1, y), BOX_COLOUR, 1, lineType=cv2.LINE_8)
    gap = np.full((frame.shape[0], 4, 3), 255, np.uint8)
    write_png(output, np.concatenate([left, gap, right], axis=1))

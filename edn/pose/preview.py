"""A preview video of a subject's keypoints drawn over its frames, to check detection at a glance.

This is a checking aid, not the stick-figure renderer of the labels
(:mod:`edn.labels.render`): frames are enlarged ``scale`` times (nearest neighbour) so
that thin lines stay visible, body limbs and joints are drawn in OpenPose's
colours, hands in their finger colours, face points as small white dots, and a
frame without the subject says so in its corner.
"""

from __future__ import annotations

import os
from fractions import Fraction

import cv2
import numpy as np

from edn.core.errors import EdnError
from edn.pose.keypoints import PoseSequence
from edn.ingest.media import encode_video
from edn.pose.skeleton import (
    BODY,
    BODY_COLOURS,
    BODY_LIMBS,
    FACE,
    FINGER_COLOURS,
    HAND_BONES,
    LEFT_HAND,
    RIGHT_HAND,
)

TEXT_COLOUR = (255, 255, 0)


def draw_keypoints(image: np.ndarray, keypoints: np.ndarray, scale: int) -> np.ndarray:
    """Draw one pose [K, 3] (working pixels) into ``image`` (uint8, working size x ``scale``), in place."""
    shift = 4  # cv2 sub-pixel drawing: coordinates in 1/16 pixel
    present = keypoints[:, 2] > 0
    # Continuous coordinates to cv2's pixel-centre convention, in fixed point.
    points = np.round((keypoints[:, :2] * scale - 0.5) * (1 << shift)).astype(np.int64)
    points = np.clip(points, -(1 << 24), 1 << 24)
    thickness = max(1, scale)

    def line(a: int, b: int, colour: tuple[int, int, int], width: int) -> None:
        if present[a] and present[b]:
            cv2.line(image, tuple(int(v) for v in points[a]), tuple(int(v) for v in points[b]), colour, width,
                     lineType=cv2.LINE_AA, shift=shift)

    for a, b in BODY_LIMBS:
        line(BODY.start + a, BODY.start + b, BODY_COLOURS[b], thickness)
    for hand in (LEFT_HAND, RIGHT_HAND):
        for a, b in HAND_BONES:
            line(hand.start + a, hand.start + b, FINGER_COLOURS[(b - 1) // 4], max(1, thickness // 2))
    for j in range(FACE.start, FACE.stop):
        if present[j]:
            cv2.circle(image, tuple(int(v) for v in points[j]), 1 << shift, (255, 255, 255), -1,
                       lineType=cv2.LINE_AA, shift=shift)
    for j in range(BODY.start, BODY.stop):
        if present[j]:
            cv2.circle(image, tuple(int(v) for v in points[j]), (thickness + 1) << shift, BODY_COLOURS[j], -1,
                       lineType=cv2.LINE_AA, shift=shift)
    return image


def preview_frame(frame: np.ndarray, keypoints: np.ndarray, index: int, scale: int) -> np.ndarray:
    """One preview frame: ``frame`` enlarged, the pose on top, the frame number in a corner."""
    image = np.ascontiguousarray(np.repeat(np.repeat(frame, scale, axis=0), scale, axis=1))
    draw_keypoints(image, keypoints, scale)
    label = f"{index}" if (keypoints[:, 2] > 0).any() else f"{index} nobody"
    cv2.putText(image, label, (4, 4 + 10 * scale), cv2.FONT_HERSHEY_SIMPLEX, 0.3 * scale, TEXT_COLOUR,
                max(1, scale // 2), lineType=cv2.LINE_AA)
    return image


def write_pose_preview(poses: PoseSequence, frames: np.ndarray, output: str | os.PathLike, *,
                       fps: Fraction | str, scale: int = 2) -> None:
    """Encode the preview of ``poses`` over ``frames`` (uint8 [N, H, W, 3]) as H.264 mp4, atomically."""
    if scale < 1:
        raise EdnError(f"preview scale {scale}: must be at least 1")
    if len(frames) != poses.frame_count:
        raise EdnError(f"preview {str(output)!r}: {poses.frame_count} poses for {len(frames)} frames")
    height, width = frames.shape[1:3]
    if (width, height) != tuple(poses.frame_size):
        raise EdnError(f"preview {str(output)!r}: frames are {width}x{height}, poses were found in "
                       f"{poses.frame_size[0]}x{poses.frame_size[1]} frames")
    size = (width * scale + (width * scale) % 2, height * scale + (height * scale) % 2)

    def images():
        for index in range(poses.frame_count):
            image = preview_frame(np.asarray(frames[index]), poses.keypoints[index], index, scale)
            if image.shape[:2] != (size[1], size[0]):  # odd sizes: pad to even for yuv420p
                image = np.pad(image, ((0, size[1] - image.shape[0]), (0, size[0] - image.shape[1]), (0, 0)))
            yield image

    encode_video(images(), output, fps=fps, size=size, frame_count=poses.frame_count, crf=20,
                 what=f"pose preview {str(output)!r}")

"""Stick figures: the generator's input, drawn one way for training and transfer.

A label is drawn straight at the working size (no squashing of the video's
aspect ratio) on a black canvas: body limbs and joints in OpenPose's BODY_25
colours, hands with one colour per finger, face contours in white. Lines are
drawn without anti-aliasing, so a label holds only palette colours and black,
and the same keypoints always give the same bytes. Line widths are given at a
reference width of 1024 px (the paper's label size) and scale with the frame.

The face box (paper section 3.3: 128 x 128 at 1024 x 512) is centred on the
nose, else the midpoint of the ears, scaled with the frame width and moved to
lie inside the frame.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import cv2
import numpy as np

from edn.ingest.frames import create_image_store, iter_frames, write_frames
from edn.pose.keypoints import PoseSequence
from edn.labels.label_store import LabelIndex, write_label_index
from edn.labels.person_window import clamp_boxes_into, outside_fraction, person_windows
from edn.pose.skeleton import (
    BODY,
    BODY_COLOURS,
    BODY_LIMBS,
    FACE_COLOUR,
    FACE_EDGES,
    FINGER_COLOURS,
    HAND_BONES,
    LEFT_HAND,
    RIGHT_HAND,
    Body,
)

log = logging.getLogger(__name__)

REFERENCE_WIDTH_PX = 1024
#: Widths at the reference width, in pixels.
BODY_LINE_WIDTH_PX = 8
HAND_LINE_WIDTH_PX = 3
FACE_LINE_WIDTH_PX = 2
FACE_BOX_PX = 128

#: Every colour a label can hold: the canvas and the palette.
BACKGROUND = (0, 0, 0)
PALETTE = frozenset({BACKGROUND, FACE_COLOUR, *BODY_COLOURS, *FINGER_COLOURS})


@dataclass(frozen=True)
class LineWidths:
    body: int
    hand: int
    face: int

    @classmethod
    def for_width(cls, width_px: int) -> LineWidths:
        factor = width_px / REFERENCE_WIDTH_PX
        return cls(*(max(1, round(w * factor)) for w in (BODY_LINE_WIDTH_PX, HAND_LINE_WIDTH_PX, FACE_LINE_WIDTH_PX)))


def _edges(pairs: tuple[tuple[int, int], ...], colours: tuple[tuple[int, int, int], ...], width: int) -> list:
    return [(int(a), int(b), colour, width) for (a, b), colour in zip(pairs, colours)]


def drawing_plan(width_px: int) -> tuple[list, list]:
    """(edges, joints) to draw, in drawing order: face, body, hands, then body joints.

    Each edge is (from, to, rgb, width); each joint (index, rgb, radius). A limb
    takes the colour of its end joint, as in OpenPose's renderer.
    """
    widths = LineWidths.for_width(width_px)
    edges = _edges(FACE_EDGES, (FACE_COLOUR,) * len(FACE_EDGES), widths.face)
    edges += _edges(BODY_LIMBS, tuple(BODY_COLOURS[b] for _, b in BODY_LIMBS), widths.body)
    for hand in (LEFT_HAND, RIGHT_HAND):
        bones = tuple((hand.start + a, hand.start + b) for a, b in HAND_BONES)
        edges += _edges(bones, tuple(FINGER_COLOURS[(b - 1) // 4] for _, b in HAND_BONES), widths.hand)
    radius = max(1, widths.body // 2 + 1)
    joints = [(int(j), BODY_COLOURS[j], radius) for j in range(BODY.start, BODY.stop)]
    return edges, joints


def render_pose(keypoints: np.ndarray, size: tuple[int, int], plan: tuple[list, list] | None = None,
                out: np.ndarray | None = None) -> np.ndarray:
    """Draw one pose ``[K, 3]`` (x, y, confidence; working pixels) as uint8 [H, W, 3].

    A keypoint with confidence 0 is missing: it and every edge touching it are
    not drawn. ``out``, when given, is cleared and drawn into.
    """
    width, height = size
    edges, joints = plan or drawing_plan(width)
    canvas = np.zeros((height, width, 3), np.uint8) if out is None else out
    if out is not None:
        canvas[...] = 0
    present = keypoints[:, 2] > 0
    # Continuous coordinates -> pixel indices (pixel (i, j) covers [i, i+1)).
    points = np.floor(keypoints[:, :2]).astype(np.int64)
    points = np.clip(points, -(1 << 15), 1 << 15)  # cv2 rejects huge coordinates
    for a, b, colour, thickness in edges:
        if present[a] and present[b]:
            cv2.line(canvas, (int(points[a, 0]), int(points[a, 1])), (int(points[b, 0]), int(points[b, 1])),
                     colour, thickness, lineType=cv2.LINE_8)
    for j, colour, radius in joints:
        if present[j]:
            cv2.circle(canvas, (int(points[j, 0]), int(points[j, 1])), radius, colour, -1, lineType=cv2.LINE_8)
    return canvas


def face_box_side(width_px: int) -> int:
    """Side of the square face box: 128 px at 1024 px wide, scaled, even, at least 8."""
    side = round(FACE_BOX_PX * width_px / REFERENCE_WIDTH_PX)
    return max(8, side + side % 2)


def face_boxes(poses: PoseSequence) -> tuple[np.ndarray, np.ndarray]:
    """Per frame: the face box (x0, y0, x1, y1) int32 [T, 4] and whether a face was found [T].

    Centred on the nose, else the midpoint of both ears; moved (not shrunk) to lie
    inside the frame. Frames without either get a box at the top-left corner and
    ``False``.
    """
    width, height = poses.frame_size
    side = face_box_side(width)
    k = poses.keypoints
    conf = k[..., 2]
    has_nose = conf[:, Body.NOSE] > 0
    has_ears = (conf[:, Body.R_EAR] > 0) & (conf[:, Body.L_EAR] > 0)
    centre = np.where(has_nose[:, None], k[:, Body.NOSE, :2], (k[:, Body.R_EAR, :2] + k[:, Body.L_EAR, :2]) / 2)
    found = has_nose | has_ears
    x0 = np.clip(np.round(centre[:, 0] - side / 2), 0, max(0, width - side))
    y0 = np.clip(np.round(centre[:, 1] - side / 2), 0, max(0, height - side))
    x0, y0 = np.where(found, x0, 0), np.where(found, y0, 0)
    boxes = np.stack([x0, y0, x0 + min(side, width), y0 + min(side, height)], axis=1).astype(np.int32)
    return boxes, found


def label_index(poses: PoseSequence, window: tuple[int, int] | None = None) -> LabelIndex:
    """The per-frame facts stored beside a label sequence (index.csv).

    ``window``: (width, height) of the person's window (:mod:`edn.labels.person_window`),
    placed on each frame by its pose; face boxes are then moved inside it. None:
    the window is the whole frame.
    """
    boxes, found = face_boxes(poses)
    has_body = (poses.keypoints[:, BODY, 2] > 0).any(axis=1)
    width, height = poses.frame_size
    if window is None:
        windows = np.tile(np.array([0, 0, width, height], np.int32), (poses.frame_count, 1))
    else:
        windows = person_windows(poses, window)
        boxes = clamp_boxes_into(boxes, windows)
    return LabelIndex(has_body=has_body, face_boxes=boxes, has_face=found, windows=windows)


def render_sequence(poses: PoseSequence, out: np.ndarray, progress: bool = False) -> None:
    """Draw every frame of ``poses`` into ``out`` (uint8 [T, H, W, 3], e.g. a memmap), in order; the
    pages of a memory-mapped ``out`` are let go as it fills (:func:`edn.ingest.frames.write_frames`)."""
    from tqdm import tqdm

    width, height = poses.frame_size
    if out.shape != (poses.frame_count, height, width, 3):
        raise ValueError(f"output {list(out.shape)} does not fit {poses.frame_count} frames of {width}x{height}")
    plan = drawing_plan(width)
    canvas = np.zeros((height, width, 3), np.uint8)
    # Drawn on one canvas and copied in, a chunk of rows at a time (write_frames): a long
    # video's labels never sit in memory together.
    write_frames(out, (render_pose(poses.keypoints[t], poses.frame_size, plan, out=canvas)
                       for t in tqdm(range(poses.frame_count), unit="frame", desc="render", leave=False,
                                     disable=not progress or None)))


def write_labels(poses: PoseSequence, labels_out, index_out, window: tuple[int, int] | None = None) -> LabelIndex:
    """Render ``poses`` into ``labels.npy`` and write ``index.csv`` (both atomically), with each
    frame's person window of size ``window`` (None: the whole frame)."""
    index = label_index(poses, window)
    with create_image_store(labels_out, poses.frame_count, poses.frame_size) as store:
        render_sequence(poses, store, progress=True)
        if window is not None:
            share = outside_fraction(iter_frames(store), index.windows)
            log.info("person windows of %dx%d in %dx%d frames; %.2f%% of the stick figures' pixels fall outside",
                     *window, *poses.frame_size, 100 * share)
    write_label_index(index_out, index)
    return index

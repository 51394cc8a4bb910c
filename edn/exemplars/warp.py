"""The pose-warped exemplar: a real frame of the target, its person moved to a requested pose part by part.

PoseWarp (Balakrishnan et al., CVPR 2018) separates a person into body-part
layers, moves each to its place in the new pose by its own transform fitted to
the part's joints, and composites the layers over a hole-filled background;
Deformable GANs (Siarohin et al., CVPR 2018) move ten rectangular regions (head,
torso, upper and lower arms and legs) each by one least-squares affine transform.
Here the same is done on the pixels of one of the target's own frames (its
*exemplar*), with no learning:

- **Parts** (:data:`LIMBS`, the torso, head, hands and feet). Each limb
  segment moves by a *segment transform*: the exemplar's segment onto the
  requested one (rotation, the segment's own stretch along it, the body's scale
  across it), so both joints land exactly where the requested pose puts them.
  The torso moves by a least-squares affine transform of its joints (neck,
  shoulders, hips; a similarity where the affine one would shear or flip), the
  head by a least-squares similarity of the body's head points (nose, eyes,
  ears) or, with ``head_from="face"``, of the face's points both poses share
  (at least :data:`MIN_FACE_POINTS` of its 70), its scale kept within
  :data:`HEAD_SCALE_LIMIT` of the body's (those points bunch up when the head
  turns away, and another person's head, normalised onto the target, is not the
  target's size), each hand by a similarity of its 21 points, each foot of its
  ankle, toes and heel. The neck (:data:`NECK`), a band from the neck joint
  towards the head, is stretched from the requested neck joint to where the
  head's transform puts its far end.
- **Regions.** A part takes the exemplar's pixels inside its region, times the
  person's segmentation mask (its soft values stretched, :func:`person_coverage`):
  a band along a limb segment (half-width ``limb_radius`` times the body scale,
  the torso's length neck to mid-hip; the lower arm and leg go on past the
  wrist and ankle to carry the hand and foot when those do not move on their
  own), the head (a disc around the nose, eyes and ears; with ``head_from="face"``
  :func:`face_region`, the face points' hull reaching up for the hair and
  stopping at the chin), the hull of a hand's or foot's points from the wrist or ankle on, and
  the torso: its joints' convex hull grown by a margin, less what the drawn
  limbs, hands, feet and head hold (an arm by the body moves with the arm, a
  chin on the collar with the head; where they covered the torso, the torso
  behind is filled from its own pixels around and marked).
- **Compositing.** Layers are drawn back to front (:data:`DEPTH_ORDER`: neck,
  torso, legs, feet, head, arms, hands) with premultiplied alpha: the neck shows
  only where the torso and the head leave a gap between them. Every edge is
  feathered over ``feather_px`` pixels. A limb fades in over ``feather_px``
  centred on the joint it hangs from, and is whole up to its far joint; behind
  the two limbs that meet at an elbow or knee (:data:`JOINTS`), a disc of the
  exemplar around the joint, within those limbs, moves onto the requested joint
  turned half way between their rotations, filling the wedge a bend opens. Both
  limbs map the joint point exactly, so elbows and knees do not break.
- **Validity** (:attr:`WarpedPerson.validity`, 1: the exemplar's own pixels or
  background). A part the requested pose places that cannot be moved (its
  joints missing in the exemplar; for a limb with one end in the requested
  pose, a disc of a limb's length around that end) is not drawn and its region
  is 0, as is the filled-in torso where it shows. Nothing is drawn from a guess.

Keypoints are ``[K, 3]`` (x, y, confidence) in the layout of
:mod:`edn.pose.skeleton`, in working-frame pixels (continuous coordinates,
:mod:`edn.ingest.frames`); a keypoint is missing where its confidence is 0 or
any of its values is NaN. The result is deterministic: numpy and OpenCV's
``warpAffine`` (bilinear) only.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from edn.pose.skeleton import BODY, FACE, FACE_CHIN, FACE_LEFT_BROW, FACE_RIGHT_BROW, LEFT_HAND, RIGHT_HAND, Body

#: Defaults of the warp's options (:class:`edn.core.options.ExemplarOptions` repeats them for the CLI).
FEATHER_PX = 4.0
LIMB_RADIUS = 0.17
HEAD_FROM = "body"
#: ``head_from="face"`` fits the head to the face's points where both poses share at least this many.
MIN_FACE_POINTS = 12


@dataclass(frozen=True)
class Limb:
    """A limb segment from its ``start`` joint (nearer the torso) to its ``end`` joint.

    ``radius``: the region's half-width as a multiple of ``limb_radius`` times
    the body scale. ``carries``: the hand or foot its region goes on to hold
    (past ``end`` by ``carry_length`` times its length) when that is not moved
    on its own.
    """

    name: str
    start: Body
    end: Body
    radius: float = 1.0
    carries: str | None = None
    carry_length: float = 0.0


LIMBS = (
    Limb("right_upper_arm", Body.R_SHOULDER, Body.R_ELBOW, 0.95),
    Limb("right_lower_arm", Body.R_ELBOW, Body.R_WRIST, 0.8, "right_hand", 0.65),
    Limb("left_upper_arm", Body.L_SHOULDER, Body.L_ELBOW, 0.95),
    Limb("left_lower_arm", Body.L_ELBOW, Body.L_WRIST, 0.8, "left_hand", 0.65),
    Limb("right_upper_leg", Body.R_HIP, Body.R_KNEE, 1.25),
    Limb("right_lower_leg", Body.R_KNEE, Body.R_ANKLE, 1.0, "right_foot", 0.3),
    Limb("left_upper_leg", Body.L_HIP, Body.L_KNEE, 1.25),
    Limb("left_lower_leg", Body.L_KNEE, Body.L_ANKLE, 1.0, "left_foot", 0.3),
)
LIMB_BY_NAME = {limb.name: limb for limb in LIMBS}

TORSO_JOINTS = (Body.NECK, Body.R_SHOULDER, Body.L_SHOULDER, Body.MID_HIP, Body.R_HIP, Body.L_HIP)
HEAD_JOINTS = (Body.NOSE, Body.R_EYE, Body.L_EYE, Body.R_EAR, Body.L_EAR)
FEET = {
    "right_foot": (Body.R_ANKLE, Body.R_BIG_TOE, Body.R_SMALL_TOE, Body.R_HEEL),
    "left_foot": (Body.L_ANKLE, Body.L_BIG_TOE, Body.L_SMALL_TOE, Body.L_HEEL),
}
HANDS = {"right_hand": RIGHT_HAND, "left_hand": LEFT_HAND}

#: Joints where a lower limb hangs from an upper one: (name, joint, upper limb, lower limb). A
#: joint is a disc of the exemplar's pixels around it, within the two limbs, moved onto the
#: requested joint with the mean of the two limbs' rotations and drawn behind them, so that it
#: fills the wedge a bend opens between their ends.
JOINTS = (
    ("right_elbow", Body.R_ELBOW, "right_upper_arm", "right_lower_arm"),
    ("left_elbow", Body.L_ELBOW, "left_upper_arm", "left_lower_arm"),
    ("right_knee", Body.R_KNEE, "right_upper_leg", "right_lower_leg"),
    ("left_knee", Body.L_KNEE, "left_upper_leg", "left_lower_leg"),
)
#: A joint's disc radius as a fraction of its child limb's region half-width.
JOINT_RADIUS = 0.8

#: The neck: a band of the head's exemplar from its neck joint towards its head's centre, stretched from
#: the requested neck joint to where the head puts the band's far end and drawn behind everything, so that it shows
#: only where the torso and the head leave a gap between them (a head turned or thrust forward, or
#: taken from another frame). Drawn with the head; never marked missing.
NECK = "neck"
#: Back to front.
DEPTH_ORDER = (NECK, "torso", "right_knee", "left_knee", "right_upper_leg", "left_upper_leg", "right_lower_leg",
               "left_lower_leg", "right_foot", "left_foot", "right_elbow", "left_elbow", "head", "right_upper_arm",
               "left_upper_arm", "right_lower_arm", "left_lower_arm", "right_hand", "left_hand")
#: The parts whose absence is marked invalid (joints are drawn only between two drawn parts, the neck with the head).
PART_NAMES = tuple(name for name in DEPTH_ORDER if name not in {joint[0] for joint in JOINTS} | {NECK})
#: The parts that come from one exemplar when each group has its own (:func:`warp_parts`): a limb's
#: segments, the joint between them and the hand or foot it carries stay together.
PART_GROUPS = {
    "torso": ("torso",),
    "head": (NECK, "head"),
    "right_arm": ("right_upper_arm", "right_elbow", "right_lower_arm", "right_hand"),
    "left_arm": ("left_upper_arm", "left_elbow", "left_lower_arm", "left_hand"),
    "right_leg": ("right_upper_leg", "right_knee", "right_lower_leg", "right_foot"),
    "left_leg": ("left_upper_leg", "left_knee", "left_lower_leg", "left_foot"),
}
GROUP_OF_PART = {part: group for group, parts in PART_GROUPS.items() for part in parts}
assert sorted(GROUP_OF_PART) == sorted(DEPTH_ORDER), "every part belongs to exactly one group"

#: Each limb's length as a fraction of the torso's (neck to mid-hip), roughly, for a body
#: scale when the torso is missing and for the reach of a limb whose end is missing.
LIMB_TO_TORSO = {"upper_arm": 0.65, "lower_arm": 0.6, "upper_leg": 0.9, "lower_leg": 0.9}
#: Region sizes as fractions of the body scale.
TORSO_MARGIN = 0.12
HEAD_RADIUS_BODY = 0.42  # from the centre of the nose, eyes and ears
#: The head from the face's points: their hull and the hull moved up by HAIR_REACH times the face's
#: height (chin to brows, for the hair), grown by HEAD_MARGIN times it (ears, the chin's edge).
HAIR_REACH = 0.75
HEAD_MARGIN = 0.25
MIN_FACE_HEIGHT = 0.3
#: Torso pixels a part in front covered at least this much are filled in from around.
FILL_FROM = 0.05
HAND_MARGIN = 0.1
FOOT_MARGIN = 0.1
#: Shortest segment, in pixels, whose direction is trusted.
MIN_SEGMENT_PX = 2.0
#: A part's scale may differ from the body's by at most this factor either way; a limb may
#: stretch or shrink along itself by at most LIMB_STRETCH.
PART_SCALE_LIMIT = 1.6
#: The head's scale may differ from the body's by at most this factor either way: a head is about the
#: same size in every view, while its nose, eyes and ears bunch up when it turns away.
HEAD_SCALE_LIMIT = 1.2
#: The neck's half-width as a fraction of the body scale, and how far it reaches from the neck joint
#: (between the shoulders) towards the centre of the nose, eyes and ears: to about the chin.
NECK_RADIUS = 0.15
NECK_LENGTH = 0.45
LIMB_STRETCH = 3.0
#: The segmentation mask's soft values are stretched: below MASK_RAMP[0] nothing of the person is
#: taken, above MASK_RAMP[1] all of it (MediaPipe's mask is soft over loose objects and motion blur,
#: which would otherwise be pasted half transparent).
MASK_RAMP = (0.25, 0.75)
#: Hands and feet are moved on their own with at least this many points in both poses.
MIN_HAND_POINTS = 6
MIN_FOOT_POINTS = 2


@dataclass(frozen=True)
class WarpedPerson:
    """The exemplar's person in the requested pose.

    ``premultiplied``: float32 [H, W, 3], 0-255, the person's colour times
    ``alpha``; ``alpha``: float32 [H, W] in [0, 1], how much of each pixel the
    person covers; ``validity``: float32 [H, W] in [0, 1], 0 where a part of the
    requested pose could not be drawn. ``drawn`` and ``missing`` name the parts.
    """

    premultiplied: np.ndarray
    alpha: np.ndarray
    validity: np.ndarray
    drawn: tuple[str, ...]
    missing: tuple[str, ...]

    def over(self, background: np.ndarray) -> np.ndarray:
        """uint8 [H, W, 3]: the person composited over ``background`` (uint8 [H, W, 3], e.g. the plate)."""
        frame = self.premultiplied + (1.0 - self.alpha[..., None]) * background.astype(np.float32)
        return np.clip(np.rint(frame), 0, 255).astype(np.uint8)

    @property
    def image(self) -> np.ndarray:
        """uint8 [H, W, 3]: the person over black."""
        return np.clip(np.rint(self.premultiplied), 0, 255).astype(np.uint8)


def present_keypoints(keypoints: np.ndarray) -> np.ndarray:
    """bool [K]: detected keypoints (confidence above 0, no NaN)."""
    keypoints = np.asarray(keypoints, dtype=np.float64)
    return np.isfinite(keypoints).all(axis=-1) & (np.nan_to_num(keypoints[..., 2]) > 0)


def person_coverage(mask: np.ndarray) -> np.ndarray:
    """float32 [H, W] in [0, 1]: how much of each pixel is the person, from a segmentation mask (uint8
    0-255, or float 0-1) stretched over :data:`MASK_RAMP`."""
    values = mask.astype(np.float32) / 255.0 if mask.dtype == np.uint8 else np.asarray(mask, np.float32)
    low, high = MASK_RAMP
    return np.clip((values - low) / (high - low), 0.0, 1.0)


# -- transforms (2x3 matrices, exemplar -> requested) --------------------------------------------------


def fit_similarity(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """The least-squares similarity (rotation, uniform scale, translation; no reflection) taking
    ``source`` [n, 2] onto ``target`` [n, 2], n >= 2 distinct points, as a 2x3 matrix."""
    source, target = np.asarray(source, np.float64), np.asarray(target, np.float64)
    source_mean, target_mean = source.mean(axis=0), target.mean(axis=0)
    s, t = source - source_mean, target - target_mean
    spread = (s ** 2).sum()
    a = (s * t).sum() / spread
    b = (s[:, 0] * t[:, 1] - s[:, 1] * t[:, 0]).sum() / spread
    linear = np.array([[a, -b], [b, a]])
    return np.hstack([linear, (target_mean - linear @ source_mean)[:, None]])


def fit_affine(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """The least-squares affine transform taking ``source`` [n, 2] onto ``target`` [n, 2], n >= 3, as 2x3."""
    source, target = np.asarray(source, np.float64), np.asarray(target, np.float64)
    design = np.hstack([source, np.ones((len(source), 1))])
    solution, *_ = np.linalg.lstsq(design, target, rcond=None)
    return solution.T


def segment_transform(start: np.ndarray, end: np.ndarray, new_start: np.ndarray, new_end: np.ndarray,
                      across_scale: float) -> np.ndarray:
    """The affine transform taking segment start-end onto new_start-new_end: ``start`` exactly onto
    ``new_start``, the direction onto the new direction, stretched along it by the ratio of the
    lengths (at most :data:`LIMB_STRETCH` either way, so ``end`` lands exactly within that) and
    scaled across it by ``across_scale``."""
    start, end, new_start, new_end = (np.asarray(p, np.float64) for p in (start, end, new_start, new_end))
    length, new_length = np.linalg.norm(end - start), np.linalg.norm(new_end - new_start)
    along, new_along = (end - start) / length, (new_end - new_start) / max(new_length, 1e-9)
    if new_length < 1e-9:
        new_along = along
    frame = np.array([along, [-along[1], along[0]]]).T  # columns: along, across
    new_frame = np.array([new_along, [-new_along[1], new_along[0]]]).T
    stretch = float(np.clip(new_length / length, 1 / LIMB_STRETCH, LIMB_STRETCH))
    linear = new_frame @ np.diag([stretch, across_scale]) @ frame.T
    return np.hstack([linear, (new_start - linear @ start)[:, None]])


def _scale_of(matrix: np.ndarray) -> float:
    return float(np.sqrt(abs(np.linalg.det(matrix[:, :2]))))


def _limit_scale(matrix: np.ndarray, source: np.ndarray, target: np.ndarray, body_ratio: float,
                 limit: float = PART_SCALE_LIMIT) -> np.ndarray:
    """``matrix`` with its scale brought within ``limit`` of ``body_ratio``, about the points' centroids
    (so the part stays where its points are)."""
    scale = _scale_of(matrix)
    limited = float(np.clip(scale, body_ratio / limit, body_ratio * limit))
    if scale <= 0 or limited == scale:
        return matrix
    linear = matrix[:, :2] * (limited / scale)
    return np.hstack([linear, (target.mean(axis=0) - linear @ source.mean(axis=0))[:, None]])


def _torso_transform(source: np.ndarray, target: np.ndarray, body_ratio: float) -> np.ndarray:
    """Affine when three or more joints pin it down without shearing or flipping the torso, else a similarity."""
    similarity = _limit_scale(fit_similarity(source, target), source, target, body_ratio)
    if len(source) < 3:
        return similarity
    affine = fit_affine(source, target)
    singular = np.linalg.svd(affine[:, :2], compute_uv=False)
    scale = _scale_of(similarity)
    if np.linalg.det(affine[:, :2]) <= 0 or singular.max() > 1.5 * scale or singular.min() < scale / 1.5:
        return similarity
    return affine


# -- body scale ---------------------------------------------------------------------------------------


def head_disc(keypoints: np.ndarray) -> tuple[np.ndarray, float] | None:
    """The disc a pose's head is cut from, for a pose ``keypoints`` [K, 3]: the centre of its present
    nose, eyes and ears, and :data:`HEAD_RADIUS_BODY` times its :func:`body_scale`; None without a
    head joint or a body scale."""
    present = keypoints[:, 2] > 0
    head = [joint for joint in HEAD_JOINTS if present[joint]]
    scale = body_scale(keypoints, present)
    if not head or scale is None:
        return None
    return keypoints[head, :2].mean(axis=0), HEAD_RADIUS_BODY * scale


def body_scale(keypoints: np.ndarray, present: np.ndarray) -> float | None:
    """The torso's length (neck to mid-hip) in pixels, or an estimate of it from what is present
    (shoulders and hips, then limb segments, then the joints' extent); None with under two joints."""
    xy = keypoints[:, :2].astype(np.float64)

    def both(a: int, b: int) -> bool:
        return bool(present[a] and present[b])

    if both(Body.NECK, Body.MID_HIP):
        length = np.linalg.norm(xy[Body.NECK] - xy[Body.MID_HIP])
        if length >= MIN_SEGMENT_PX:
            return float(length)
    if both(Body.R_SHOULDER, Body.L_SHOULDER) and both(Body.R_HIP, Body.L_HIP):
        shoulders = (xy[Body.R_SHOULDER] + xy[Body.L_SHOULDER]) / 2
        hips = (xy[Body.R_HIP] + xy[Body.L_HIP]) / 2
        length = np.linalg.norm(shoulders - hips)
        if length >= MIN_SEGMENT_PX:
            return float(length)
    estimates = [np.linalg.norm(xy[limb.end] - xy[limb.start]) / LIMB_TO_TORSO[limb.name.split("_", 1)[1]]
                 for limb in LIMBS if both(limb.start, limb.end)]
    estimates = [e for e in estimates if e >= MIN_SEGMENT_PX]
    if estimates:
        return float(np.median(estimates))
    body = np.flatnonzero(present[BODY])
    if len(body) >= 2:
        extent = np.ptp(xy[body], axis=0).max()
        if extent >= MIN_SEGMENT_PX:
            return float(extent / 3.0)
    return None


# -- regions (soft masks on a box of the frame) --------------------------------------------------------


@dataclass(frozen=True)
class Region:
    """A soft mask ``alpha`` float32 [h, w] in [0, 1] on the frame's box ``x0, y0`` (top-left pixel)."""

    alpha: np.ndarray
    x0: int
    y0: int

    @property
    def box(self) -> tuple[int, int, int, int]:
        return self.x0, self.y0, self.x0 + self.alpha.shape[1], self.y0 + self.alpha.shape[0]


def _box_around(points: np.ndarray, reach: float, size: tuple[int, int]) -> tuple[int, int, int, int] | None:
    width, height = size
    x0 = max(0, int(np.floor(points[:, 0].min() - reach)))
    y0 = max(0, int(np.floor(points[:, 1].min() - reach)))
    x1 = min(width, int(np.ceil(points[:, 0].max() + reach)) + 1)
    y1 = min(height, int(np.ceil(points[:, 1].max() + reach)) + 1)
    return (x0, y0, x1, y1) if x1 > x0 and y1 > y0 else None


def pixel_centres(box: tuple[int, int, int, int]) -> tuple[np.ndarray, np.ndarray]:
    x0, y0, x1, y1 = box
    return np.meshgrid(np.arange(x0, x1, dtype=np.float32) + 0.5, np.arange(y0, y1, dtype=np.float32) + 0.5)


def _soft_edge(distance: np.ndarray, radius: float, feather: float) -> np.ndarray:
    """1 inside ``radius - feather/2``, 0 beyond ``radius + feather/2``, linear between."""
    return np.clip((radius + feather / 2 - distance) / max(feather, 1e-6), 0, 1).astype(np.float32)


def capsule_region(start: np.ndarray, end: np.ndarray, radius: float, size: tuple[int, int], *, feather: float,
                   beyond_end: float = 0.0) -> Region | None:
    """The pixels within ``radius`` of the segment start-end (continued ``beyond_end`` pixels past
    ``end``), feathered."""
    return _segment_region(start, end, radius, size, feather=feather, beyond_end=beyond_end)


def band_region(start: np.ndarray, end: np.ndarray, radius: float, size: tuple[int, int], *, feather: float,
                beyond_end: float = 0.0, whole_at_end: bool = True) -> Region | None:
    """A limb's region: the pixels within ``radius`` of the segment start-end (continued ``beyond_end``
    pixels past ``end``) whose projection falls on it; it fades in over ``feather`` pixels centred on
    ``start`` (blending into the part it hangs from) and out over ``feather`` pixels past its far end
    (so that it is whole at the joint there, above the joint's disc), or centred on it when not
    ``whole_at_end`` (nothing below it is drawn: it keeps none of it)."""
    start, end = np.asarray(start, np.float32), np.asarray(end, np.float32)
    length = float(np.linalg.norm(end - start))
    along = (end - start) / length if length > 0 else np.array([1.0, 0.0], np.float32)
    reach = length + beyond_end
    past = feather if whole_at_end else feather / 2
    box = _box_around(np.stack([start, end + along * (beyond_end + past)]), radius + feather, size)
    if box is None:
        return None
    x, y = pixel_centres(box)
    dx, dy = x - start[0], y - start[1]
    position = dx * along[0] + dy * along[1]
    across = np.abs(dx * along[1] - dy * along[0])
    scale = max(feather, 1e-6)
    ends = np.clip(np.minimum(0.5 + position / scale, past / scale + (reach - position) / scale), 0, 1)
    return Region(_soft_edge(across, radius, feather) * ends.astype(np.float32), box[0], box[1])


def _segment_region(start: np.ndarray, end: np.ndarray, radius: float, size: tuple[int, int], *, feather: float,
                    beyond_end: float) -> Region | None:
    start, end = np.asarray(start, np.float32), np.asarray(end, np.float32)
    length = float(np.linalg.norm(end - start))
    along = (end - start) / length if length > 0 else np.array([1.0, 0.0], np.float32)
    tip = end + along * beyond_end
    box = _box_around(np.stack([start, tip]), radius + feather, size)
    if box is None:
        return None
    x, y = pixel_centres(box)
    dx, dy = x - start[0], y - start[1]
    closest = np.clip(dx * along[0] + dy * along[1], 0, length + beyond_end)
    distance = np.hypot(dx - closest * along[0], dy - closest * along[1])
    return Region(_soft_edge(distance, radius, feather), box[0], box[1])


def disc_region(centre: np.ndarray, radius: float, size: tuple[int, int], *, feather: float) -> Region | None:
    centre = np.asarray(centre, np.float32)
    box = _box_around(centre[None], radius + feather, size)
    if box is None:
        return None
    x, y = pixel_centres(box)
    return Region(_soft_edge(np.hypot(x - centre[0], y - centre[1]), radius, feather), box[0], box[1])


def hull_region(points: np.ndarray, margin: float, size: tuple[int, int], *, feather: float) -> Region | None:
    """The convex hull of ``points`` [n, 2] grown by ``margin`` pixels, feathered."""
    points = np.asarray(points, np.float32)
    if len(points) == 1:
        return disc_region(points[0], margin, size, feather=feather)
    if len(points) == 2:
        return capsule_region(points[0], points[1], margin, size, feather=feather)
    box = _box_around(points, margin + feather + 1, size)
    if box is None:
        return None
    x0, y0, x1, y1 = box
    inside = np.zeros((y1 - y0, x1 - x0), np.uint8)
    hull = cv2.convexHull(points - np.float32([x0, y0]) - 0.5)
    cv2.fillConvexPoly(inside, np.round(hull * 16).astype(np.int32), 1, lineType=cv2.LINE_8, shift=4)
    if not inside.any():
        centre = points.mean(axis=0)
        return disc_region(centre, margin, size, feather=feather)
    distance = cv2.distanceTransform(1 - inside, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    return Region(_soft_edge(distance, margin, feather), x0, y0)


# -- parts ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PartPlan:
    """How one part moves: its transform ``matrix`` (exemplar -> requested), its ``region`` in the
    exemplar, and where the part's pixels are not the exemplar's own but filled in (``filled``, float32
    on the region's box, 1: filled; the torso behind an arm) with the ``image`` that fills them."""

    name: str
    matrix: np.ndarray
    region: Region
    image: np.ndarray | None = None
    filled: np.ndarray | None = None


class _Poses:
    """The exemplar and requested keypoints with what is present in each and their body scales."""

    def __init__(self, exemplar: np.ndarray, requested: np.ndarray, size: tuple[int, int]) -> None:
        self.size = size
        self.source = np.nan_to_num(np.asarray(exemplar, np.float64))
        self.target = np.nan_to_num(np.asarray(requested, np.float64))
        self.source_present, self.target_present = present_keypoints(exemplar), present_keypoints(requested)
        self.source_scale = body_scale(self.source, self.source_present)
        self.target_scale = body_scale(self.target, self.target_present)
        self.ratio = (self.target_scale / self.source_scale
                      if self.source_scale and self.target_scale else 1.0)

    def shared(self, indices) -> np.ndarray:
        indices = np.asarray(indices)
        return indices[self.source_present[indices] & self.target_present[indices]]

    def source_points(self, indices) -> np.ndarray:
        indices = np.asarray(indices)
        return self.source[indices[self.source_present[indices]], :2]

    def target_points(self, indices) -> np.ndarray:
        indices = np.asarray(indices)
        return self.target[indices[self.target_present[indices]], :2]


def _limb_radius_px(limb: Limb, limb_radius: float, scale: float) -> float:
    return limb.radius * limb_radius * scale


def _on_box(region: Region | None, box: tuple[int, int, int, int]) -> np.ndarray:
    """``region``'s alpha on the frame box ``box`` (0 where the region does not reach)."""
    x0, y0, x1, y1 = box
    out = np.zeros((y1 - y0, x1 - x0), np.float32)
    if region is None:
        return out
    u0, v0, u1, v1 = region.box
    a0, b0, a1, b1 = max(x0, u0), max(y0, v0), min(x1, u1), min(y1, v1)
    if a1 > a0 and b1 > b0:
        out[b0 - y0:b1 - y0, a0 - x0:a1 - x0] = region.alpha[b0 - v0:b1 - v0, a0 - u0:a1 - u0]
    return out


def _held_by(regions: Sequence[Region | None], box: tuple[int, int, int, int]) -> np.ndarray:
    """How much of each pixel of the frame box ``box`` any of ``regions`` holds (their alphas' maximum)."""
    x0, y0, x1, y1 = box
    held = np.zeros((y1 - y0, x1 - x0), np.float32)
    for region in regions:
        np.maximum(held, _on_box(region, box), out=held)
    return held


def _beyond_joint(region: Region | None, start: np.ndarray, joint: np.ndarray, feather: float) -> Region | None:
    """``region`` faded in over ``feather`` pixels across the line through ``joint`` perpendicular to
    start-joint: a hand from its wrist on, a foot from its ankle on, leaving the forearm and shin to them."""
    if region is None:
        return None
    direction = np.asarray(joint, np.float64) - np.asarray(start, np.float64)
    length = np.linalg.norm(direction)
    if length < MIN_SEGMENT_PX:
        return region
    direction /= length
    x, y = pixel_centres(region.box)
    past = (x - joint[0]) * direction[0] + (y - joint[1]) * direction[1]
    return Region(region.alpha * np.clip(0.5 + past / max(feather, 1e-6), 0, 1).astype(np.float32),
                  region.x0, region.y0)


def _limb_plan(limb: Limb, poses: _Poses, *, limb_radius: float, feather: float, carried_on_own: bool,
               whole_at_end: bool = True) -> PartPlan | None:
    if poses.source_scale is None or len(poses.shared([limb.start, limb.end])) < 2:
        return None
    start, end = poses.source[limb.start, :2], poses.source[limb.end, :2]
    length = float(np.linalg.norm(end - start))
    if length < MIN_SEGMENT_PX:
        return None
    matrix = segment_transform(start, end, poses.target[limb.start, :2], poses.target[limb.end, :2], poses.ratio)
    carry = 0.0 if limb.carries is None else (0.15 if carried_on_own else limb.carry_length) * length
    region = band_region(start, end, _limb_radius_px(limb, limb_radius, poses.source_scale), poses.size,
                         feather=feather, beyond_end=carry, whole_at_end=whole_at_end)
    return None if region is None else PartPlan(limb.name, matrix, region)


def _exemplar_limb(limb: Limb, poses: _Poses, limb_radius: float, feather: float) -> Region | None:
    """The pixels limb ``limb`` holds in the exemplar (with what it carries past its end), None where the
    exemplar lacks it."""
    if poses.source_scale is None or not (poses.source_present[limb.start] and poses.source_present[limb.end]):
        return None
    start, end = poses.source[limb.start, :2], poses.source[limb.end, :2]
    carry = limb.carry_length * float(np.linalg.norm(end - start)) if limb.carries else 0.0
    radius = _limb_radius_px(limb, limb_radius, poses.source_scale) + feather / 2  # its soft edge included
    return band_region(start, end, radius, poses.size, feather=feather, beyond_end=carry)


def _torso_plan(poses: _Poses, image: np.ndarray, coverage: np.ndarray, limbs: list[Region | None],
                in_front: list[PartPlan], *, feather: float) -> PartPlan | None:
    """The torso: its joints' hull grown by a margin.

    Outside the hull, the torso gives up what the exemplar's drawn ``limbs`` hold (their regions, soft
    edges included): an arm by the body moves with the arm, not with the torso; a limb that is not
    drawn leaves its pixels to the torso. Where a part drawn in front of it (``in_front``: limbs,
    hands, feet, head) took the exemplar's pixels whole, inside the hull (anywhere for the head: a
    chin on the collar), the torso behind is filled from its own pixels around
    (:func:`fill_from_around`) and marked as filled.
    """
    shared = poses.shared(TORSO_JOINTS)
    if poses.source_scale is None or len(shared) < 2:
        return None
    source, target = poses.source[shared, :2], poses.target[shared, :2]
    if np.ptp(source, axis=0).max() < MIN_SEGMENT_PX:
        return None
    matrix = _torso_transform(source, target, poses.ratio)
    joints = poses.source_points(TORSO_JOINTS)
    region = hull_region(joints, TORSO_MARGIN * poses.source_scale, poses.size, feather=feather)
    if region is None:
        return None
    box = region.box
    x0, y0, x1, y1 = box
    held = _held_by(limbs, box)
    # Whole inside the joints' hull (its soft edge outside it).
    core = _on_box(hull_region(joints, feather / 2, poses.size, feather=feather), box) if len(joints) >= 3 else \
        np.zeros_like(held)
    alpha = (region.alpha * (1.0 - held * (1.0 - core))).astype(np.float32)
    taken = np.zeros_like(held)
    for part in in_front:
        whole = (_on_box(part.region, box) >= 0.999).astype(np.float32)  # where the part draws all of a pixel
        np.maximum(taken, whole if part.name == "head" else whole * core, out=taken)
    filled = taken * coverage[y0:y1, x0:x1]
    if not (filled > FILL_FROM).any():
        return PartPlan("torso", matrix, Region(alpha, x0, y0))
    # Filled from the torso's own pixels only: not from the background, nor from what the limbs hold.
    refill = filled > FILL_FROM
    known = ~refill & (coverage[y0:y1, x0:x1] >= 0.5) & (held <= FILL_FROM)
    pixels = np.array(image[y0:y1, x0:x1])
    pixels[refill] = fill_from_around(pixels, known, feather)[refill]
    return PartPlan("torso", matrix, Region(alpha, x0, y0), image=pixels, filled=filled.astype(np.float32))


def fill_from_around(pixels: np.ndarray, known: np.ndarray, sigma_px: float) -> np.ndarray:
    """float32 [h, w, 3]: every pixel as the Gaussian-weighted mean of the ``known`` pixels around it
    (normalized convolution), the Gaussian widened three times over where too few are near; the
    mean of all known pixels where none is."""
    weight = known.astype(np.float32)
    values = pixels.astype(np.float32) * weight[..., None]
    out = np.zeros(pixels.shape, np.float32)
    done = np.zeros(known.shape, bool)
    sigma = max(sigma_px, 1.0)
    for _ in range(4):
        density = cv2.GaussianBlur(weight, (0, 0), sigma)
        enough = ~done & (density > 1e-3)
        if enough.any():
            out[enough] = cv2.GaussianBlur(values, (0, 0), sigma)[enough] / density[enough, None]
            done |= enough
        if done.all():
            return out
        sigma *= 3.0
    out[~done] = pixels[known].mean(axis=0) if known.any() else 0.0
    return out


def face_region(keypoints: np.ndarray, present: np.ndarray, size: tuple[int, int], *, feather: float,
                body_scale_px: float) -> Region | None:
    """The head around the face's present points (``keypoints`` [K, >=2], ``present`` [K]): their hull
    and the hull moved up the face (chin to brows) by :data:`HAIR_REACH` of its height for the hair,
    grown by :data:`HEAD_MARGIN` of it. Down the face it stops at the chin, leaving the neck and
    shoulders to the torso. The height counts as at least :data:`MIN_FACE_HEIGHT` of the body's scale
    (a face found small or squashed still gets its head)."""
    face = np.arange(FACE.start, FACE.stop)
    points = keypoints[face[present[face]], :2].astype(np.float64)
    if len(points) < 3:
        return None
    chin, brows = FACE.start + FACE_CHIN, FACE.start + np.array(FACE_RIGHT_BROW + FACE_LEFT_BROW)
    if present[chin] and present[brows].any():
        up = keypoints[brows[present[brows]], :2].mean(axis=0) - keypoints[chin, :2]
    else:
        up = np.array([0.0, -np.ptp(points[:, 1])])
    height = float(np.linalg.norm(up))
    if height < MIN_SEGMENT_PX:
        return None
    if height < MIN_FACE_HEIGHT * body_scale_px:
        up, height = up * (MIN_FACE_HEIGHT * body_scale_px / height), MIN_FACE_HEIGHT * body_scale_px
    return hull_region(np.concatenate([points, points + HAIR_REACH * up]), HEAD_MARGIN * height, size,
                       feather=feather)


def _head_plan(poses: _Poses, *, feather: float, head_from: str) -> PartPlan | None:
    """The head: a similarity of the body's head points (``head_from="body"``; the neck joins a lone
    one), its region a disc around them; or of the face's points with the face's region
    (``head_from="face"``, where both poses share :data:`MIN_FACE_POINTS`; else as "body").

    On the demo juggler's held-out frames the body's points scored better on the face box (ST-LPIPS
    0.133 against 0.155 with the face's points and region): MediaPipe's face points on a face 20
    pixels tall change with the view more than the nose, eyes and ears do.
    """
    if poses.source_scale is None:
        return None
    face = poses.shared(np.arange(FACE.start, FACE.stop))
    if head_from == "face" and len(face) >= MIN_FACE_POINTS:
        source, target = poses.source[face, :2], poses.target[face, :2]
        region = face_region(poses.source, poses.source_present, poses.size, feather=feather,
                             body_scale_px=poses.source_scale)
    else:
        region = None
    if region is None:
        head = poses.shared(HEAD_JOINTS)
        if len(head) == 1 and len(poses.shared([Body.NECK])):
            head = np.append(head, int(Body.NECK))
        if len(head) < 2:
            return None
        source, target = poses.source[head, :2], poses.target[head, :2]
        centre = poses.source_points(HEAD_JOINTS).mean(axis=0)
        region = disc_region(centre, HEAD_RADIUS_BODY * poses.source_scale, poses.size, feather=feather)
    if region is None or np.ptp(source, axis=0).max() < MIN_SEGMENT_PX / 2:
        return None
    matrix = _limit_scale(fit_similarity(source, target), source, target, poses.ratio, HEAD_SCALE_LIMIT)
    return PartPlan("head", matrix, region)


def _neck_plan(poses: _Poses, head: PartPlan, *, limb_radius: float, feather: float) -> PartPlan | None:
    """The neck (:data:`NECK`): the exemplar's pixels within :data:`NECK_RADIUS` of the body scale of
    the first :data:`NECK_LENGTH` of the segment from its neck joint to the centre of the head points
    both poses have (a band, without round ends: the face is the head's, not stretched), less what the
    exemplar's limbs hold there (a hand at the chin stays with the arm). It is moved by the segment
    transform that takes the neck joint onto the requested one and the band's far end (about the chin)
    to where the ``head``'s own transform takes it, so that it spans whatever gap the two leave."""
    points = poses.shared(HEAD_JOINTS)
    if poses.source_scale is None or not len(points) or not len(poses.shared([Body.NECK])):
        return None
    start = poses.source[Body.NECK, :2]
    end = start + NECK_LENGTH * (poses.source[points, :2].mean(axis=0) - start)
    if np.linalg.norm(end - start) < MIN_SEGMENT_PX:
        return None
    matrix = segment_transform(start, end, poses.target[Body.NECK, :2], head.matrix[:, :2] @ end + head.matrix[:, 2],
                               poses.ratio)
    region = band_region(start, end, NECK_RADIUS * poses.source_scale, poses.size, feather=feather,
                         whole_at_end=False)
    if region is None:
        return None
    held = _held_by([_exemplar_limb(limb, poses, limb_radius, feather) for limb in LIMBS], region.box)
    return PartPlan(NECK, matrix, Region(region.alpha * (1.0 - held), region.x0, region.y0))


def _end_plan(name: str, indices, limb: Limb, minimum: int, margin: float, poses: _Poses, *,
              feather: float) -> PartPlan | None:
    """A hand or foot: a similarity of its points, its region their hull grown, from its wrist or ankle on."""
    shared = poses.shared(indices)
    if poses.source_scale is None or len(shared) < minimum:
        return None
    source, target = poses.source[shared, :2], poses.target[shared, :2]
    if np.ptp(source, axis=0).max() < MIN_SEGMENT_PX:
        return None
    matrix = _limit_scale(fit_similarity(source, target), source, target, poses.ratio)
    region = hull_region(poses.source_points(indices), margin * poses.source_scale, poses.size, feather=feather)
    # From the wrist (ankle) on; a hand's own wrist point stands in for the body's.
    joint = next((j for j in (int(limb.end), int(np.asarray(indices)[0])) if poses.source_present[j]), None)
    if poses.source_present[limb.start] and joint is not None:
        region = _beyond_joint(region, poses.source[limb.start, :2], poses.source[joint, :2], feather)
    return None if region is None else PartPlan(name, matrix, region)


def _rotation_of(matrix: np.ndarray) -> float:
    """The angle of the rotation closest to the linear part of ``matrix``, in radians."""
    linear = matrix[:, :2]
    return float(np.arctan2(linear[1, 0] - linear[0, 1], linear[0, 0] + linear[1, 1]))


def _joint_plan(name: str, joint: int, parent: PartPlan, child: PartPlan, radius: float, poses: _Poses,
                limbs: tuple[Region | None, Region | None], *, feather: float) -> PartPlan | None:
    """A disc around ``joint``, within the two limbs that meet there, moved onto the requested joint,
    turned by the mean of the parent's and the child's rotations, scaled as the body."""
    difference = np.angle(np.exp(1j * (_rotation_of(child.matrix) - _rotation_of(parent.matrix))))
    angle = _rotation_of(parent.matrix) + difference / 2
    linear = poses.ratio * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    source, target = poses.source[joint, :2], poses.target[joint, :2]
    region = disc_region(source, radius, poses.size, feather=feather)
    if region is None:
        return None
    within = np.maximum(_on_box(limbs[0], region.box), _on_box(limbs[1], region.box))
    return PartPlan(name, np.hstack([linear, (target - linear @ source)[:, None]]),
                    Region(region.alpha * within, region.x0, region.y0))


def _requested_region(name: str, poses: _Poses, *, limb_radius: float, feather: float) -> Region | None:
    """Where part ``name`` lies in the requested pose (for marking it invalid), or None where the
    requested pose does not place it."""
    scale = poses.target_scale
    if scale is None:
        return None
    size = poses.size
    if name in LIMB_BY_NAME:
        limb = LIMB_BY_NAME[name]
        has_start, has_end = poses.target_present[limb.start], poses.target_present[limb.end]
        radius = _limb_radius_px(limb, limb_radius, scale)
        if has_start and has_end:
            start, end = poses.target[limb.start, :2], poses.target[limb.end, :2]
            carry = limb.carry_length * float(np.linalg.norm(end - start)) if limb.carries else 0.0
            return capsule_region(start, end, radius, size, feather=feather, beyond_end=carry)
        if has_start or has_end:  # the other end is somewhere within a limb's length
            joint = limb.start if has_start else limb.end
            reach = LIMB_TO_TORSO[name.split("_", 1)[1]] * scale + radius
            return disc_region(poses.target[joint, :2], reach, size, feather=feather)
        return None
    if name == "torso":
        points = poses.target_points(TORSO_JOINTS)
        return hull_region(points, TORSO_MARGIN * scale, size, feather=feather) if len(points) else None
    if name == "head":
        region = face_region(poses.target, poses.target_present, size, feather=feather, body_scale_px=scale)
        if region is not None:
            return region
        head = poses.target_points(HEAD_JOINTS)
        return disc_region(head.mean(axis=0), HEAD_RADIUS_BODY * scale, size, feather=feather) if len(head) else None
    if name in HANDS:
        points = poses.target_points(np.arange(HANDS[name].start, HANDS[name].stop))
        return hull_region(points, HAND_MARGIN * scale, size, feather=feather) if len(points) >= MIN_HAND_POINTS \
            else None
    if name in FEET:
        points = poses.target_points(FEET[name])
        return hull_region(points, FOOT_MARGIN * scale, size, feather=feather) if len(points) >= MIN_FOOT_POINTS \
            else None
    raise KeyError(name)


def _carrier(name: str) -> Limb:
    """The lower arm or leg that carries hand or foot ``name``."""
    return next(limb for limb in LIMBS if limb.carries == name)


def plan_parts(image: np.ndarray, coverage: np.ndarray, exemplar_keypoints: np.ndarray,
               requested_keypoints: np.ndarray, *, feather_px: float = FEATHER_PX, limb_radius: float = LIMB_RADIUS,
               head_from: str = HEAD_FROM, hands_and_feet: bool = True, parts: Collection[str] | None = None
               ) -> tuple[list[PartPlan], list[tuple[str, Region]]]:
    """Every part that can move, back to front, and every part the requested pose places that cannot
    move, with its region in the requested pose. ``image`` uint8 [H, W, 3] and ``coverage`` float32
    [H, W] (:func:`person_coverage`) are the exemplar's. ``parts`` (names of :data:`DEPTH_ORDER`, whole
    groups of :data:`PART_GROUPS`): only these are returned, as they are planned with every part from
    this exemplar (the torso gives up and fills what this exemplar's own limbs and head hold)."""
    height, width = coverage.shape
    poses = _Poses(exemplar_keypoints, requested_keypoints, (width, height))
    # The torso's plan depends on every other part of the exemplar; without it, only the parts asked for.
    everything = parts is None or "torso" in parts
    wanted = set(DEPTH_ORDER) if parts is None else set(parts)

    def plan(name: str) -> bool:
        return everything or name in wanted

    plans: dict[str, PartPlan | None] = {}
    if hands_and_feet:
        for name, hand in HANDS.items():
            if plan(name):
                plans[name] = _end_plan(name, np.arange(hand.start, hand.stop), _carrier(name), MIN_HAND_POINTS,
                                        HAND_MARGIN, poses, feather=feather_px)
        for name, joints in FEET.items():
            if plan(name):
                plans[name] = _end_plan(name, joints, _carrier(name), MIN_FOOT_POINTS, FOOT_MARGIN, poses,
                                        feather=feather_px)
    for limb in LIMBS:
        if plan(limb.name):
            plans[limb.name] = _limb_plan(limb, poses, limb_radius=limb_radius, feather=feather_px,
                                          carried_on_own=plans.get(limb.carries) is not None)
    for _, _, upper, lower in JOINTS:
        if plans.get(upper) is not None and plans.get(lower) is None:  # nothing drawn below the upper limb's end
            plans[upper] = _limb_plan(LIMB_BY_NAME[upper], poses, limb_radius=limb_radius, feather=feather_px,
                                      carried_on_own=False, whole_at_end=False)
    if plan("head"):
        plans["head"] = _head_plan(poses, feather=feather_px, head_from=head_from)
    if plan(NECK) and plans.get("head") is not None:
        plans[NECK] = _neck_plan(poses, plans["head"], limb_radius=limb_radius, feather=feather_px)
    if everything:
        limbs = [_exemplar_limb(limb, poses, limb_radius, feather_px) for limb in LIMBS
                 if plans[limb.name] is not None]
        in_front = [plans[name] for name in ("head", *LIMB_BY_NAME, *HANDS, *FEET) if plans.get(name) is not None]
        plans["torso"] = _torso_plan(poses, image, coverage, limbs, in_front, feather=feather_px)
    for name, joint, parent, child in JOINTS:
        if plan(name) and plans.get(parent) is not None and plans.get(child) is not None:
            radius = JOINT_RADIUS * _limb_radius_px(LIMB_BY_NAME[child], limb_radius, poses.source_scale)
            limbs = tuple(_exemplar_limb(LIMB_BY_NAME[n], poses, limb_radius, feather_px) for n in (parent, child))
            plans[name] = _joint_plan(name, joint, plans[parent], plans[child], radius, poses, limbs,
                                      feather=feather_px)
    moved = [plans[name] for name in DEPTH_ORDER if name in wanted and plans.get(name) is not None]
    missing = []
    for name in PART_NAMES:
        if name not in wanted or plans.get(name) is not None:
            continue
        if name in HANDS or name in FEET:
            if not hands_and_feet or plans.get(_carrier(name).name) is not None:
                continue  # carried by its limb, as when hands and feet are not moved on their own
        region = _requested_region(name, poses, limb_radius=limb_radius, feather=feather_px)
        if region is not None:
            missing.append((name, region))
    return moved, missing


# -- drawing -------------------------------------------------------------------------------------------


def _warp_layer(layer: np.ndarray, source_box: tuple[int, int, int, int], matrix: np.ndarray,
                size: tuple[int, int]) -> tuple[np.ndarray, tuple[int, int, int, int]] | None:
    """Warp ``layer`` (the frame's ``source_box``) by ``matrix`` (frame coordinates); returns the warped
    layer and the frame box it covers, or None when it lands outside the frame."""
    x0, y0, x1, y1 = source_box
    corners = np.array([[x0, y0], [x1, y0], [x0, y1], [x1, y1]], np.float64)
    moved = corners @ matrix[:, :2].T + matrix[:, 2]
    box = _box_around(moved, 1.0, size)
    if box is None:
        return None
    u0, v0, u1, v1 = box
    # Pixel (i, j) of an array is centred on (i + 0.5, j + 0.5) in frame coordinates (edn.ingest.frames):
    # destination index = L (source index + (x0, y0) + 0.5) + t - (u0, v0) - 0.5.
    offset = matrix[:, :2] @ np.array([x0 + 0.5, y0 + 0.5]) + matrix[:, 2] - np.array([u0 + 0.5, v0 + 0.5])
    local = np.hstack([matrix[:, :2], offset[:, None]])
    warped = cv2.warpAffine(layer, local, (u1 - u0, v1 - v0), flags=cv2.INTER_LINEAR,
                            borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return warped.reshape(v1 - v0, u1 - u0, layer.shape[2]), box


def warp_person(image: np.ndarray, mask: np.ndarray, exemplar_keypoints: np.ndarray,
                requested_keypoints: np.ndarray, *, feather_px: float = FEATHER_PX,
                limb_radius: float = LIMB_RADIUS, head_from: str = HEAD_FROM,
                hands_and_feet: bool = True) -> WarpedPerson:
    """The exemplar's person (``image`` uint8 [H, W, 3] with its segmentation ``mask``, uint8 0-255 or
    float 0-1 [H, W], and its ``exemplar_keypoints`` [K, 3]) moved part by part to
    ``requested_keypoints`` [K, 3] (same frame). See the module's description."""
    return warp_parts([(image, mask, exemplar_keypoints)], requested_keypoints, feather_px=feather_px,
                      limb_radius=limb_radius, head_from=head_from, hands_and_feet=hands_and_feet)


def warp_parts(exemplars: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]], requested_keypoints: np.ndarray,
               source_of: Mapping[str, int] | None = None, *, feather_px: float = FEATHER_PX,
               limb_radius: float = LIMB_RADIUS, head_from: str = HEAD_FROM,
               hands_and_feet: bool = True) -> WarpedPerson:
    """:func:`warp_person` with each part group of :data:`PART_GROUPS` taken from its own exemplar:
    ``exemplars`` is a list of (image, mask, keypoints) as :func:`warp_person` takes them, and
    ``source_of`` maps a group's name to the index of its exemplar in that list (0 for a group it
    does not name). Each exemplar's parts are planned as if it gave the whole person (its torso gives
    up and fills what its own limbs and head hold) and drawn in the one back-to-front order
    (:data:`DEPTH_ORDER`). One exemplar for every group is :func:`warp_person`, bit for bit."""
    if not exemplars:
        raise ValueError("warp_parts: no exemplar")
    source_of = dict(source_of or {})
    unknown = sorted(set(source_of) - set(PART_GROUPS))
    if unknown:
        raise ValueError(f"warp_parts: unknown part group(s) {unknown}; the groups are {list(PART_GROUPS)}")
    height, width = exemplars[0][0].shape[:2]
    for image, mask, _ in exemplars:
        if mask.shape != image.shape[:2] or image.shape[:2] != (height, width):
            raise ValueError(f"mask {list(mask.shape)} does not match the image {list(image.shape)}"
                             + ("" if image.shape[:2] == (height, width) else f" (the first is {width}x{height})"))
    part_source = {part: int(source_of.get(GROUP_OF_PART[part], 0)) for part in DEPTH_ORDER}
    if any(not 0 <= index < len(exemplars) for index in part_source.values()):
        raise ValueError(f"warp_parts: exemplar index out of range 0-{len(exemplars) - 1}: {source_of}")
    size = (width, height)
    # Each used exemplar's parts, planned on it: (plan, its image, its coverage) by part name.
    planned: dict[str, tuple[PartPlan, np.ndarray, np.ndarray]] = {}
    missing: dict[str, Region] = {}
    for index in sorted(set(part_source.values())):
        image, mask, keypoints = exemplars[index]
        coverage = person_coverage(mask)
        names = [part for part, source in part_source.items() if source == index]
        moved, gone = plan_parts(image, coverage, keypoints, requested_keypoints, feather_px=feather_px,
                                 limb_radius=limb_radius, head_from=head_from, hands_and_feet=hands_and_feet,
                                 parts=None if len(names) == len(part_source) else names)
        planned.update((plan.name, (plan, image, coverage)) for plan in moved)
        missing.update(gone)
    # Channels: colour times alpha (3), alpha, filled times alpha; composited back to front on the box
    # that the warped layers cover.
    layers = []
    drawn_names = [name for name in DEPTH_ORDER if name in planned]
    for name in drawn_names:
        plan, image, coverage = planned[name]
        x0, y0, x1, y1 = plan.region.box
        part_alpha = plan.region.alpha * coverage[y0:y1, x0:x1]
        pixels = image[y0:y1, x0:x1] if plan.image is None else plan.image
        layer = np.empty((y1 - y0, x1 - x0, 5), np.float32)
        layer[..., :3] = pixels * part_alpha[..., None]
        layer[..., 3] = part_alpha
        layer[..., 4] = 0.0 if plan.filled is None else plan.filled * part_alpha
        warped = _warp_layer(layer, plan.region.box, plan.matrix, size)
        if warped is not None:
            layers.append(warped)
    canvas = np.zeros((height, width, 5), np.float32)
    if layers:
        boxes = np.array([box for _, box in layers])
        bx0, by0 = boxes[:, :2].min(axis=0)
        bx1, by1 = boxes[:, 2:].max(axis=0)
        drawn = canvas[by0:by1, bx0:bx1]
        for values, (u0, v0, u1, v1) in layers:
            below = drawn[v0 - by0:v1 - by0, u0 - bx0:u1 - bx0]
            below *= 1.0 - values[..., 3:4]
            below += values
        np.clip(drawn[..., 3:], 0.0, 1.0, out=drawn[..., 3:])
    alpha = canvas[..., 3]
    validity = 1.0 - canvas[..., 4]
    missing_names = [name for name in PART_NAMES if name in missing]
    for name in missing_names:
        x0, y0, x1, y1 = missing[name].box
        validity[y0:y1, x0:x1] = np.minimum(validity[y0:y1, x0:x1], 1.0 - missing[name].alpha)
    return WarpedPerson(premultiplied=canvas[..., :3], alpha=alpha, validity=validity,
                        drawn=tuple(drawn_names), missing=tuple(missing_names))

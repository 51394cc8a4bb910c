"""The keypoint layout: OpenPose BODY_25 + face 70 + left hand 21 + right hand 21.

This module is the only place where joint indices are written as numbers. Every
other module names joints through :class:`Body`, the slices below, or
:func:`index_of`. Left and right are the person's own, as in OpenPose and
MediaPipe.

A pose is an array ``[K, 3]`` (x, y, confidence) in this order, K = 137:

====================  =========  ============================================
part                  indices    layout
====================  =========  ============================================
body (BODY_25)        0..24      :class:`Body`
face                  25..94     68 iBUG/dlib points, then the 2 pupils
left hand             95..115    wrist, then 4 per finger, thumb to little
right hand            116..136   same as the left hand
====================  =========  ============================================
"""

from __future__ import annotations

from enum import IntEnum


class Body(IntEnum):
    """BODY_25 joints, in OpenPose's order."""

    NOSE = 0
    NECK = 1
    R_SHOULDER = 2
    R_ELBOW = 3
    R_WRIST = 4
    L_SHOULDER = 5
    L_ELBOW = 6
    L_WRIST = 7
    MID_HIP = 8
    R_HIP = 9
    R_KNEE = 10
    R_ANKLE = 11
    L_HIP = 12
    L_KNEE = 13
    L_ANKLE = 14
    R_EYE = 15
    L_EYE = 16
    R_EAR = 17
    L_EAR = 18
    L_BIG_TOE = 19
    L_SMALL_TOE = 20
    L_HEEL = 21
    R_BIG_TOE = 22
    R_SMALL_TOE = 23
    R_HEEL = 24


#: OpenPose's own names for the BODY_25 joints, in order.
BODY_NAMES = (
    "Nose", "Neck", "RShoulder", "RElbow", "RWrist", "LShoulder", "LElbow", "LWrist",
    "MidHip", "RHip", "RKnee", "RAnkle", "LHip", "LKnee", "LAnkle", "REye", "LEye",
    "REar", "LEar", "LBigToe", "LSmallToe", "LHeel", "RBigToe", "RSmallToe", "RHeel",
)

BODY_COUNT = len(Body)
FACE_COUNT = 70
HAND_COUNT = 21
KEYPOINT_COUNT = BODY_COUNT + FACE_COUNT + 2 * HAND_COUNT

BODY = slice(0, BODY_COUNT)
FACE = slice(BODY.stop, BODY.stop + FACE_COUNT)
LEFT_HAND = slice(FACE.stop, FACE.stop + HAND_COUNT)
RIGHT_HAND = slice(LEFT_HAND.stop, LEFT_HAND.stop + HAND_COUNT)

#: OpenPose JSON key of each part, with its slice of the 137 keypoints.
PARTS = {
    "pose_keypoints_2d": BODY,
    "face_keypoints_2d": FACE,
    "hand_left_keypoints_2d": LEFT_HAND,
    "hand_right_keypoints_2d": RIGHT_HAND,
}

FINGERS = ("thumb", "index", "middle", "ring", "little")
HAND_NAMES = ("wrist",) + tuple(f"{finger}{joint}" for finger in FINGERS for joint in range(1, 5))

#: One unique name per keypoint, in layout order: "Nose" ... "RHeel", "face00" ...
#: "face69", "lhand_wrist" ... "rhand_little4".
KEYPOINT_NAMES = (
    BODY_NAMES
    + tuple(f"face{i:02d}" for i in range(FACE_COUNT))
    + tuple(f"lhand_{name}" for name in HAND_NAMES)
    + tuple(f"rhand_{name}" for name in HAND_NAMES)
)
assert len(KEYPOINT_NAMES) == KEYPOINT_COUNT == 137


def index_of(name: str) -> int:
    """Global index of a keypoint given its name in KEYPOINT_NAMES."""
    return KEYPOINT_NAMES.index(name)


# -- face: the 68-point iBUG layout plus pupils (indices within the face part) --

FACE_JAW = tuple(range(0, 17))  # right jaw end (person's right) to left jaw end
FACE_RIGHT_BROW = tuple(range(17, 22))
FACE_LEFT_BROW = tuple(range(22, 27))
FACE_NOSE_BRIDGE = tuple(range(27, 31))
FACE_NOSE_BOTTOM = tuple(range(31, 36))
FACE_RIGHT_EYE = tuple(range(36, 42))
FACE_LEFT_EYE = tuple(range(42, 48))
FACE_OUTER_LIP = tuple(range(48, 60))
FACE_INNER_LIP = tuple(range(60, 68))
FACE_RIGHT_PUPIL = 68
FACE_LEFT_PUPIL = 69
FACE_CHIN = 8
FACE_NOSE_TIP = 30

#: Open polylines and closed loops of the face, as face-part indices.
FACE_POLYLINES = (FACE_JAW, FACE_RIGHT_BROW, FACE_LEFT_BROW, FACE_NOSE_BRIDGE, FACE_NOSE_BOTTOM)
FACE_LOOPS = (FACE_RIGHT_EYE, FACE_LEFT_EYE, FACE_OUTER_LIP, FACE_INNER_LIP)


def _polyline_edges(points: tuple[int, ...], closed: bool) -> tuple[tuple[int, int], ...]:
    edges = tuple(zip(points[:-1], points[1:]))
    return edges + ((points[-1], points[0]),) if closed else edges


#: Face edges as pairs of global indices.
FACE_EDGES = tuple(
    (FACE.start + a, FACE.start + b)
    for points, closed in [(p, False) for p in FACE_POLYLINES] + [(p, True) for p in FACE_LOOPS]
    for a, b in _polyline_edges(points, closed)
)


# -- body limbs and colours (OpenPose's BODY_25 rendering) --

#: Limbs as (from, to) joints, in OpenPose's rendering order.
BODY_LIMBS = (
    (Body.NECK, Body.MID_HIP),
    (Body.NECK, Body.R_SHOULDER), (Body.NECK, Body.L_SHOULDER),
    (Body.R_SHOULDER, Body.R_ELBOW), (Body.R_ELBOW, Body.R_WRIST),
    (Body.L_SHOULDER, Body.L_ELBOW), (Body.L_ELBOW, Body.L_WRIST),
    (Body.MID_HIP, Body.R_HIP), (Body.R_HIP, Body.R_KNEE), (Body.R_KNEE, Body.R_ANKLE),
    (Body.MID_HIP, Body.L_HIP), (Body.L_HIP, Body.L_KNEE), (Body.L_KNEE, Body.L_ANKLE),
    (Body.NECK, Body.NOSE),
    (Body.NOSE, Body.R_EYE), (Body.R_EYE, Body.R_EAR),
    (Body.NOSE, Body.L_EYE), (Body.L_EYE, Body.L_EAR),
    (Body.L_ANKLE, Body.L_BIG_TOE), (Body.L_BIG_TOE, Body.L_SMALL_TOE), (Body.L_ANKLE, Body.L_HEEL),
    (Body.R_ANKLE, Body.R_BIG_TOE), (Body.R_BIG_TOE, Body.R_SMALL_TOE), (Body.R_ANKLE, Body.R_HEEL),
)

#: RGB colour of each BODY_25 joint (OpenPose's palette); a limb takes the colour
#: of its end joint.
BODY_COLOURS = (
    (255, 0, 85), (255, 0, 0), (255, 85, 0), (255, 170, 0), (255, 255, 0),
    (170, 255, 0), (85, 255, 0), (0, 255, 0), (255, 0, 0), (0, 255, 85),
    (0, 255, 170), (0, 255, 255), (0, 170, 255), (0, 85, 255), (0, 0, 255),
    (255, 0, 170), (170, 0, 255), (255, 0, 255), (85, 0, 255), (0, 0, 255),
    (0, 0, 255), (0, 0, 255), (0, 255, 255), (0, 255, 255), (0, 255, 255),
)

#: Hand bones as pairs of hand-part indices: wrist to each finger's base, then
#: along the finger.
HAND_BONES = tuple(
    (0 if joint == 1 else 4 * finger + joint - 1, 4 * finger + joint)
    for finger in range(len(FINGERS))
    for joint in range(1, 5)
)

#: RGB colour of each finger's bones (thumb to little), as OpenPose colours them.
FINGER_COLOURS = ((255, 0, 0), (255, 255, 0), (0, 255, 0), (0, 255, 255), (0, 0, 255))

#: Face lines are drawn in one colour that no limb uses.
FACE_COLOUR = (255, 255, 255)

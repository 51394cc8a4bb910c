"""Synthetic people for tests: a standing figure placed by its ankle point and height."""

from __future__ import annotations

import numpy as np

from edn.pose.keypoints import PoseSequence, empty_keypoints
from edn.pose.skeleton import FACE, LEFT_HAND, RIGHT_HAND, Body

# Joint positions of a standing person facing the camera, as (dx, dy) fractions
# of the nose-to-ankle height, relative to the ankle midpoint. The person's right
# is the image's left.
_BODY_SHAPE = {
    Body.NOSE: (0.0, -1.0), Body.NECK: (0.0, -0.86), Body.R_SHOULDER: (-0.12, -0.85),
    Body.R_ELBOW: (-0.16, -0.68), Body.R_WRIST: (-0.18, -0.52), Body.L_SHOULDER: (0.12, -0.85),
    Body.L_ELBOW: (0.16, -0.68), Body.L_WRIST: (0.18, -0.52), Body.MID_HIP: (0.0, -0.5),
    Body.R_HIP: (-0.07, -0.5), Body.R_KNEE: (-0.07, -0.25), Body.R_ANKLE: (-0.07, 0.0),
    Body.L_HIP: (0.07, -0.5), Body.L_KNEE: (0.07, -0.25), Body.L_ANKLE: (0.07, 0.0),
    Body.R_EYE: (-0.02, -1.02), Body.L_EYE: (0.02, -1.02), Body.R_EAR: (-0.05, -1.0),
    Body.L_EAR: (0.05, -1.0), Body.L_BIG_TOE: (0.1, 0.02), Body.L_SMALL_TOE: (0.12, 0.02),
    Body.L_HEEL: (0.06, 0.01), Body.R_BIG_TOE: (-0.1, 0.02), Body.R_SMALL_TOE: (-0.12, 0.02),
    Body.R_HEEL: (-0.06, 0.01),
}


def standing_pose(ankle_x: float, ankle_y: float, height: float, *, face: bool = True,
                  hands: bool = True) -> np.ndarray:
    """One pose [K, 3]: both ankles at ``ankle_y``, nose ``height`` px above them."""
    pose = empty_keypoints(1)[0]
    for joint, (dx, dy) in _BODY_SHAPE.items():
        pose[joint] = (ankle_x + dx * height, ankle_y + dy * height, 0.9)
    rng = np.random.default_rng(0)
    nose = pose[Body.NOSE, :2]
    if face:
        offsets = rng.uniform(-0.04, 0.04, size=(FACE.stop - FACE.start, 2)) * height
        pose[FACE, :2] = nose + offsets
        pose[FACE, 2] = 0.8
    if hands:
        for hand, wrist in ((LEFT_HAND, Body.L_WRIST), (RIGHT_HAND, Body.R_WRIST)):
            offsets = rng.uniform(-0.03, 0.03, size=(hand.stop - hand.start, 2)) * height
            pose[hand, :2] = pose[wrist, :2] + offsets
            pose[hand, 2] = 0.7
    return pose


def walking_sequence(ankle_ys: np.ndarray, heights: np.ndarray, *, ankle_x: float = 200.0,
                     frame_size: tuple[int, int] = (512, 256)) -> PoseSequence:
    """A subject standing at each given ankle height with each given body height."""
    keypoints = np.stack([standing_pose(ankle_x, a, h) for a, h in zip(ankle_ys, heights)]).astype(np.float32)
    return PoseSequence(keypoints=keypoints, frame_size=frame_size, detector="synthetic")


def drop_joints(poses: PoseSequence, frames, joints) -> PoseSequence:
    """A copy with the given joints of the given frames marked missing (0, 0, 0)."""
    keypoints = poses.keypoints.copy()
    for t in np.atleast_1d(frames):
        for j in np.atleast_1d(joints):
            keypoints[t, j] = 0.0
    return poses.replace(keypoints)



"""One subject per video: follow the people a detector found and keep the main one.

A detector reports, for each frame, any number of people (MediaPipe up to
:data:`edn.pose.mediapipe_holistic.MAX_PEOPLE`, OpenPose and OpenPose JSON
files any number). The rule runs once over the whole video, after detection, so
the subject does not depend on how detection was split between workers:

1. **Tracks.** People are linked from frame to frame into tracks. A person in
   frame t continues the track whose last pose (seen at most
   ``max_gap_frames`` frames earlier) is nearest: the mean distance between
   the body joints confident in both, divided by the track's body size (the
   diagonal of the box around its confident body joints). Links are assigned
   one-to-one (Hungarian method, scipy), only below ``max_link_distance`` body
   sizes and between bodies whose sizes differ by less than a factor
   ``max_size_ratio``; a person left over starts a new track.
2. **Main track.** Only tracks seen in at least ``min_track_frames`` frames
   (or half the frames of a shorter video) can be the subject: detectors
   hallucinate people in furniture for a few scattered frames (MediaPipe finds
   one in a table of the empty room of people_one_by_one in 4 of 40 frames).
   Each such track scores the sum, over its frames, of the body size in pixels:
   a large person seen for long beats a small or brief one. The highest score
   wins. Another track scoring at least :data:`COMPETING_SCORE_RATIO` of it
   competes: the choice between them is close, and a warning names the frames
   of each (a video of two dancers side by side, say).
3. **Output.** Frame t holds the main track's person; a frame without them
   (nobody, or only other people) keeps its row with every confidence 0.

So a second person walking through the picture, or a detector jumping to them
for a few frames, never replaces the subject; people who take turns in front of
the camera are different tracks and only the main one is kept.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from edn.pose.skeleton import BODY, KEYPOINT_COUNT

log = logging.getLogger(__name__)

#: How long (frames) a track waits for its person to reappear.
MAX_GAP_FRAMES = 25
#: Largest move between linked poses, in body sizes.
MAX_LINK_DISTANCE = 0.5
#: Largest change of body size between linked poses (a factor).
MAX_SIZE_RATIO = 3.0
#: Fewest frames a track needs to be the subject (at most half the video).
MIN_TRACK_FRAMES = 8
#: Link cost that is never accepted (the assignment solver needs finite costs).
UNLINKABLE = 1e9
#: Least score, as a share of the main track's, of a track that competes with it (a warning).
COMPETING_SCORE_RATIO = 0.5


def frame_ranges(frames: Sequence[int]) -> str:
    """Sorted frame indices as ranges: [0, 1, 2, 5, 7, 8] -> "0-2, 5, 7-8"."""
    ranges: list[str] = []
    for t in frames:
        if ranges and t == last + 1:
            ranges[-1] = f"{ranges[-1].split('-')[0]}-{t}"
        else:
            ranges.append(str(t))
        last = t
    return ", ".join(ranges)


def body_size(pose: np.ndarray) -> float:
    """Diagonal (pixels) of the box around a pose's confident keypoints (body ones if >= 2)."""
    present = pose[:, 2] > 0
    body_present = present[BODY]
    points = pose[BODY][body_present, :2] if body_present.sum() >= 2 else pose[present, :2]
    if len(points) < 2:
        return 0.0
    extent = points.max(axis=0) - points.min(axis=0)
    return float(np.hypot(*extent))


def _centre(pose: np.ndarray) -> np.ndarray:
    present = pose[:, 2] > 0
    return pose[present, :2].mean(axis=0)


def pose_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Mean pixel distance between the body joints confident in both poses (centres if none)."""
    shared = (a[BODY, 2] > 0) & (b[BODY, 2] > 0)
    if shared.any():
        return float(np.linalg.norm(a[BODY][shared, :2] - b[BODY][shared, :2], axis=1).mean())
    return float(np.linalg.norm(_centre(a) - _centre(b)))


def _link_cost(track: _Track, pose: np.ndarray, size: float, max_size_ratio: float) -> float:
    """Distance from the track's last pose to ``pose`` in body sizes; UNLINKABLE if their sizes differ too much."""
    ratio = size / track.last_size
    if not 1 / max_size_ratio < ratio < max_size_ratio:
        return UNLINKABLE
    return pose_distance(track.last_pose, pose) / track.last_size


@dataclass
class _Track:
    frames: list[int] = field(default_factory=list)
    people: list[int] = field(default_factory=list)
    last_pose: np.ndarray | None = None
    last_size: float = 0.0
    score: float = 0.0

    def add(self, frame: int, person: int, pose: np.ndarray, size: float) -> None:
        self.frames.append(frame)
        self.people.append(person)
        self.last_pose = pose
        self.last_size = size
        self.score += size


def select_main_person(people: Sequence[np.ndarray], *, max_gap_frames: int = MAX_GAP_FRAMES,
                       max_link_distance: float = MAX_LINK_DISTANCE, max_size_ratio: float = MAX_SIZE_RATIO,
                       min_track_frames: int = MIN_TRACK_FRAMES) -> np.ndarray:
    """The main person's keypoints in every frame, by the rule in this module's docstring.

    ``people[t]``: float32 [P_t, K, 3] (P_t >= 0) of frame t, with confidence 0
    for missing keypoints. Returns float32 [T, K, 3], zeros where the main person
    is not seen (everywhere when no track qualifies). Deterministic: ties go to
    the earlier track.
    """
    from scipy.optimize import linear_sum_assignment

    tracks: list[_Track] = []
    for t, candidates in enumerate(people):
        sizes = [body_size(pose) for pose in candidates]
        usable = [i for i, size in enumerate(sizes) if size > 0]
        active = [k for k, track in enumerate(tracks) if t - track.frames[-1] <= max_gap_frames]
        linked: set[int] = set()
        if active and usable:
            cost = np.array([[_link_cost(tracks[k], candidates[i], sizes[i], max_size_ratio)
                              for i in usable] for k in active])
            for row, col in zip(*linear_sum_assignment(cost)):
                if cost[row, col] < max_link_distance:
                    person = usable[col]
                    tracks[active[row]].add(t, person, candidates[person], sizes[person])
                    linked.add(person)
        for person in usable:
            if person not in linked:
                track = _Track()
                track.add(t, person, candidates[person], sizes[person])
                tracks.append(track)
    out = np.zeros((len(people), KEYPOINT_COUNT, 3), dtype=np.float32)
    needed = min(min_track_frames, max(1, -(-len(people) // 2)))
    eligible = [track for track in tracks if len(track.frames) >= needed]
    if eligible:
        main = max(eligible, key=lambda track: track.score)  # max keeps the first of equal scores
        for t, person in zip(main.frames, main.people):
            out[t] = people[t][person]
        rivals = [track for track in eligible
                  if track is not main and track.score >= COMPETING_SCORE_RATIO * main.score]
        for rival in rivals:
            log.warning("two people compete to be the subject: the one kept is seen in frames %s; another, "
                        "%.0f%% of its size times frames, in frames %s", frame_ranges(main.frames),
                        100 * rival.score / main.score, frame_ranges(rival.frames))
    return out

"""OpenPose JSON: one file per frame, read (the ``openpose_json`` backend) and written (``edn export-openpose``).

A file holds ``{"version": 1.3, "people": [...]}``; each person has the flat
lists ``pose_keypoints_2d`` (BODY_25: 25 x (x, y, confidence) = 75 values),
``face_keypoints_2d`` (70 x 3 = 210), ``hand_left_keypoints_2d`` and
``hand_right_keypoints_2d`` (21 x 3 = 63 each). An empty list means the part
was not detected; a missing keypoint is (0, 0, 0). OpenPose names its files
``{name}_{frame:012d}_keypoints.json``, frame numbers from 0: files are read in
the order of the number in their names, which must run without a hole.

Coordinates: OpenPose uses OpenCV's pixel-index convention (the centre of the
top-left pixel is (0, 0)), edn continuous coordinates (that pixel covers
[0, 1) x [0, 1)), so a point is (x + 0.5, y + 0.5) in edn. Import adds the half
pixel, export takes it off; a missing point stays (0, 0, 0). Working-pixel
export then import gives back the same float32 numbers exactly.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np

from edn.core.atomic import atomic_path
from edn.core.errors import EdnError
from edn.pose.keypoints import PoseSequence
from edn.pose.skeleton import KEYPOINT_COUNT, PARTS

#: OpenPose's coordinate of a pixel centre is its index; edn's is index + 0.5.
PIXEL_CENTRE_OFFSET = 0.5
OPENPOSE_JSON_VERSION = 1.3
_FRAME_NUMBER = re.compile(r"(\d+)(?:_keypoints)?\.json$")

#: (x, y) -> (x, y) on arrays; maps between a coordinate frame and working pixels.
PointMap = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]


def identity(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return x, y


def people_to_edn(people: np.ndarray, to_working: PointMap = identity) -> np.ndarray:
    """OpenPose-convention people [P, K, 3] -> edn working pixels (missing points stay zero)."""
    out = np.array(people, dtype=np.float64, copy=True)
    present = out[..., 2] > 0
    x, y = to_working(out[..., 0] + PIXEL_CENTRE_OFFSET, out[..., 1] + PIXEL_CENTRE_OFFSET)
    out[..., 0], out[..., 1] = x, y
    out[~present] = 0.0
    return out.astype(np.float32)


def edn_to_openpose(keypoints: np.ndarray, from_working: PointMap = identity) -> np.ndarray:
    """edn working pixels [..., K, 3] -> OpenPose convention (missing points zero), float64."""
    out = np.array(keypoints, dtype=np.float64, copy=True)
    present = out[..., 2] > 0
    x, y = from_working(out[..., 0], out[..., 1])
    out[..., 0], out[..., 1] = np.asarray(x) - PIXEL_CENTRE_OFFSET, np.asarray(y) - PIXEL_CENTRE_OFFSET
    out[~present] = 0.0
    return out


def parse_people(data: object, where: str) -> np.ndarray:
    """The people of one OpenPose JSON document as float32 [P, K, 3] (OpenPose convention).

    ``where`` names the file in error messages.
    """
    if not isinstance(data, dict) or not isinstance(data.get("people"), list):
        raise EdnError(f"OpenPose JSON {where}: no \"people\" list")
    people = np.zeros((len(data["people"]), KEYPOINT_COUNT, 3), dtype=np.float32)
    for index, person in enumerate(data["people"]):
        if not isinstance(person, dict):
            raise EdnError(f"OpenPose JSON {where}: person {index} is not an object")
        for key, part in PARTS.items():
            values = person.get(key, [])
            expected = 3 * (part.stop - part.start)
            if not isinstance(values, list) or len(values) not in (0, expected):
                count = len(values) if isinstance(values, list) else type(values).__name__
                raise EdnError(f"OpenPose JSON {where}: person {index} {key} has {count} values, expected "
                               f"{expected} ({expected // 3} keypoints x (x, y, confidence)) or none")
            if not values:
                continue
            if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
                       for v in values):
                raise EdnError(f"OpenPose JSON {where}: person {index} {key} holds a value that is not a "
                               f"finite number")
            people[index, part] = np.asarray(values, dtype=np.float64).reshape(-1, 3)
    confidence = people[..., 2]
    if (confidence < 0).any():
        raise EdnError(f"OpenPose JSON {where}: a confidence is negative")
    # OpenPose writes heat-map peaks, which can exceed 1 (as its Python API returns them): clipped.
    np.clip(confidence, 0.0, 1.0, out=confidence)
    return people


def list_frame_files(directory: str | os.PathLike) -> list[Path]:
    """The directory's JSON files in frame order; EdnError if empty or a frame number is missing."""
    directory = Path(directory)
    if not directory.is_dir():
        raise EdnError(f"OpenPose JSON directory {str(directory)!r}: not found")
    files = [p for p in directory.iterdir() if p.suffix == ".json" and not p.name.startswith(".")]
    if not files:
        raise EdnError(f"OpenPose JSON directory {str(directory)!r}: no .json files")
    numbered = []
    for path in files:
        match = _FRAME_NUMBER.search(path.name)
        if match is None:
            raise EdnError(f"OpenPose JSON {str(path)!r}: no frame number in the file name "
                           f"(expected NAME_000000000000_keypoints.json)")
        numbered.append((int(match[1]), path))
    numbered.sort()
    numbers = [n for n, _ in numbered]
    if len(set(numbers)) != len(numbers):
        duplicate = next(n for n, m in zip(numbers, numbers[1:]) if n == m)
        raise EdnError(f"OpenPose JSON directory {str(directory)!r}: two files for frame {duplicate}")
    for previous, current in zip(numbers, numbers[1:]):
        if current != previous + 1:
            raise EdnError(f"OpenPose JSON directory {str(directory)!r}: frame {previous + 1} is missing "
                           f"(files jump from {previous} to {current})")
    return [path for _, path in numbered]


def read_openpose_dir(directory: str | os.PathLike, *, show_progress: bool = False) -> list[np.ndarray]:
    """Every frame's people, float32 [P_t, K, 3] in OpenPose's convention, in frame order."""
    from tqdm import tqdm

    frames = []
    for path in tqdm(list_frame_files(directory), unit="file", desc="read OpenPose JSON",
                     disable=None if show_progress else True):
        try:
            data = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise EdnError(f"OpenPose JSON {str(path)!r}: not valid JSON ({error})") from None
        frames.append(parse_people(data, repr(str(path))))
    return frames


def person_document(keypoints: np.ndarray) -> dict:
    """One person in OpenPose's JSON layout from [K, 3] already in OpenPose's convention."""
    person: dict = {"person_id": [-1]}
    for key, part in PARTS.items():
        person[key] = [float(v) for v in keypoints[part].reshape(-1)]
    for key in PARTS:
        person[key.replace("_2d", "_3d")] = []
    return person


def frame_file_name(prefix: str, frame: int) -> str:
    return f"{prefix}_{frame:012d}_keypoints.json"


def write_openpose_dir(poses: PoseSequence, directory: str | os.PathLike, *, prefix: str,
                       from_working: PointMap = identity, show_progress: bool = False) -> None:
    """Write one OpenPose JSON file per frame into ``directory`` (replaced atomically as a whole).

    A frame with at least one confident keypoint holds one person; a frame with
    nobody holds ``"people": []``. ``from_working`` maps working pixels to the
    coordinates to write (e.g. the source video's pixels).
    """
    from tqdm import tqdm

    converted = edn_to_openpose(poses.keypoints, from_working)
    present = poses.confidence.max(axis=1) > 0 if poses.frame_count else np.zeros(0, bool)
    with atomic_path(directory, directory=True) as temporary:
        for frame in tqdm(range(poses.frame_count), unit="frame", desc="write OpenPose JSON",
                          disable=None if show_progress else True):
            people = [person_document(converted[frame])] if present[frame] else []
            document = {"version": OPENPOSE_JSON_VERSION, "people": people}
            (temporary / frame_file_name(prefix, frame)).write_text(json.dumps(document, separators=(",", ":")))

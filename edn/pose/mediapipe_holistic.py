"""The ``mediapipe`` backend: MediaPipe Holistic (0.10.21, legacy ``mp.solutions``), fully offline.

Holistic finds one person a frame: 33 pose landmarks, a 468-point face mesh
(478 with the refined irises) and 21 landmarks per hand, as coordinates
normalized to the image. Normalized coordinates times the image size are
continuous pixel coordinates (:mod:`edn.ingest.frames`), so no half-pixel shift is
needed. The tables below map them to the OpenPose layout of :mod:`edn.pose.skeleton`:

- body: :data:`BODY_FROM_POSE` (Neck and MidHip are means of two landmarks;
  the small toes have no counterpart and stay missing);
- hands: the same 21-point topology and order as OpenPose's (wrist, then 4 per
  finger from thumb to little), :data:`HAND_FROM_MEDIAPIPE` is the identity;
  Holistic's ``left_hand_landmarks`` is the person's own left hand, cropped
  around the pose's left wrist;
- face: :data:`FACE_FROM_MESH`, 68 face-mesh vertices in iBUG/dlib order, then
  the two iris centres as pupils (:data:`PUPILS_FROM_IRIS`).

Confidence: a body joint's confidence is the landmark's visibility (the smaller
one for the means). Face and hand landmarks carry no score of their own, so the
face takes the mean visibility of the pose's face landmarks (nose, eyes, ears,
mouth) and each hand the visibility of its pose wrist: a hand Holistic tracks
from an occluded wrist is as doubtful as that wrist.

Several people: Holistic follows one person. On its first frame, and whenever
it loses its person, its pose detector looks at the whole frame and the most
confident detection is taken; after that it follows that person's landmarks
from frame to frame. Which person a stream follows therefore depends on the
frame it starts on, and a worker process starts one on the first frame of its
chunk. :func:`detect_people_mediapipe` makes the answer independent of where
streams start: each worker runs up to :data:`MAX_PEOPLE` streams, the k-th on
the frame with the people found by the streams before it covered
(:func:`cover_person`), so every frame reports everybody in it (up to that
many), whichever of them a stream took first. The subject is then chosen once,
over the whole video (:mod:`edn.pose.main_person`).

Speed: one Holistic stream costs about 50 ms of CPU a frame at 256x128 (some
20 frames/s) on this project's 2-core machines; a stream that finds nobody runs
only the pose detector. :func:`detect_mediapipe` runs one worker process per
contiguous chunk of frames, so each stream's tracking stays valid and two cores
are used.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue as queue_module
import threading
import time
import traceback
from enum import IntEnum
from pathlib import Path

import numpy as np

from edn.ingest.frames import CHUNK_FRAMES, iter_frames, release_pages
from edn.pose.skeleton import (
    BODY,
    FACE,
    FACE_LEFT_EYE,
    FACE_RIGHT_EYE,
    HAND_COUNT,
    KEYPOINT_COUNT,
    LEFT_HAND,
    RIGHT_HAND,
    Body,
)

log = logging.getLogger(__name__)

#: Most people looked for in a frame by :func:`detect_people_mediapipe`: one
#: Holistic stream each (a stream runs on a frame only when the one before it
#: found somebody there, so a video of one person costs one stream plus a
#: detector pass per frame).
MAX_PEOPLE = 3
#: Margin around a found person's keypoints covered for the next stream, as a
#: share of the larger side of their box: the keypoints stop at the eyes, ears,
#: wrists or fingertips and heels, the person does not.
COVER_MARGIN = 0.2
#: A later stream's person whose body joints lie this close to an earlier one's
#: (mean distance in the earlier one's body sizes) is the same person seen again
#: around the covered box, not a second one.
SAME_PERSON_DISTANCE = 0.25


class MediaPipePose(IntEnum):
    """MediaPipe Pose's 33 landmarks (left/right are the person's own)."""

    NOSE = 0
    LEFT_EYE_INNER = 1
    LEFT_EYE = 2
    LEFT_EYE_OUTER = 3
    RIGHT_EYE_INNER = 4
    RIGHT_EYE = 5
    RIGHT_EYE_OUTER = 6
    LEFT_EAR = 7
    RIGHT_EAR = 8
    MOUTH_LEFT = 9
    MOUTH_RIGHT = 10
    LEFT_SHOULDER = 11
    RIGHT_SHOULDER = 12
    LEFT_ELBOW = 13
    RIGHT_ELBOW = 14
    LEFT_WRIST = 15
    RIGHT_WRIST = 16
    LEFT_PINKY = 17
    RIGHT_PINKY = 18
    LEFT_INDEX = 19
    RIGHT_INDEX = 20
    LEFT_THUMB = 21
    RIGHT_THUMB = 22
    LEFT_HIP = 23
    RIGHT_HIP = 24
    LEFT_KNEE = 25
    RIGHT_KNEE = 26
    LEFT_ANKLE = 27
    RIGHT_ANKLE = 28
    LEFT_HEEL = 29
    RIGHT_HEEL = 30
    LEFT_FOOT_INDEX = 31
    RIGHT_FOOT_INDEX = 32


P = MediaPipePose

#: BODY_25 joint -> the MediaPipe Pose landmarks whose mean it is. Joints not
#: listed (LSmallToe, RSmallToe) have no counterpart and are always missing.
BODY_FROM_POSE: dict[Body, tuple[MediaPipePose, ...]] = {
    Body.NOSE: (P.NOSE,),
    Body.NECK: (P.LEFT_SHOULDER, P.RIGHT_SHOULDER),
    Body.R_SHOULDER: (P.RIGHT_SHOULDER,),
    Body.R_ELBOW: (P.RIGHT_ELBOW,),
    Body.R_WRIST: (P.RIGHT_WRIST,),
    Body.L_SHOULDER: (P.LEFT_SHOULDER,),
    Body.L_ELBOW: (P.LEFT_ELBOW,),
    Body.L_WRIST: (P.LEFT_WRIST,),
    Body.MID_HIP: (P.LEFT_HIP, P.RIGHT_HIP),
    Body.R_HIP: (P.RIGHT_HIP,),
    Body.R_KNEE: (P.RIGHT_KNEE,),
    Body.R_ANKLE: (P.RIGHT_ANKLE,),
    Body.L_HIP: (P.LEFT_HIP,),
    Body.L_KNEE: (P.LEFT_KNEE,),
    Body.L_ANKLE: (P.LEFT_ANKLE,),
    Body.R_EYE: (P.RIGHT_EYE,),
    Body.L_EYE: (P.LEFT_EYE,),
    Body.R_EAR: (P.RIGHT_EAR,),
    Body.L_EAR: (P.LEFT_EAR,),
    Body.L_BIG_TOE: (P.LEFT_FOOT_INDEX,),
    Body.L_HEEL: (P.LEFT_HEEL,),
    Body.R_BIG_TOE: (P.RIGHT_FOOT_INDEX,),
    Body.R_HEEL: (P.RIGHT_HEEL,),
}

#: Pose landmarks on the face, whose mean visibility is the face's confidence.
FACE_VISIBILITY_FROM = tuple(range(P.NOSE, P.MOUTH_RIGHT + 1))

#: MediaPipe hand landmark of each OpenPose hand keypoint: the same topology.
HAND_FROM_MEDIAPIPE = tuple(range(HAND_COUNT))

#: Face-mesh vertex of each of the 68 iBUG/dlib points, in iBUG order. "Right"
#: is the person's right (the image's left for a person facing the camera).
FACE_FROM_MESH = (
    # jaw, 0-16: from the right end by the ear at eye height, down to the chin (8), up to the left end
    234, 93, 132, 58, 172, 136, 150, 176, 152, 400, 379, 365, 397, 288, 361, 323, 454,
    # right eyebrow, 17-21: outer to inner
    70, 63, 105, 66, 107,
    # left eyebrow, 22-26: inner to outer
    336, 296, 334, 293, 300,
    # nose bridge, 27-30: between the eyes down to the tip
    168, 197, 5, 1,
    # nose bottom, 31-35: right wing, subnasale (33), left wing
    98, 97, 2, 326, 327,
    # right eye, 36-41: outer corner, upper lid (2), inner corner, lower lid (2)
    33, 160, 158, 133, 153, 144,
    # left eye, 42-47: inner corner, upper lid (2), outer corner, lower lid (2)
    362, 385, 387, 263, 373, 380,
    # outer lips, 48-59: right corner, upper lip to the left corner (54), lower lip back
    61, 40, 37, 0, 267, 270, 291, 321, 314, 17, 84, 91,
    # inner lips, 60-67: right corner, upper, left corner (64), lower
    78, 81, 13, 311, 308, 402, 14, 178,
)
assert len(FACE_FROM_MESH) == 68 and len(set(FACE_FROM_MESH)) == 68

#: Refined face mesh (478 points): iris centres of the person's right and left eye.
PUPILS_FROM_IRIS = (468, 473)
FACE_MESH_POINTS = 468


def _landmark_array(landmarks, with_visibility: bool) -> np.ndarray:
    """A NormalizedLandmarkList as [N, 3] (x, y, visibility or 1)."""
    if with_visibility:
        return np.array([(p.x, p.y, p.visibility) for p in landmarks.landmark], dtype=np.float64)
    return np.array([(p.x, p.y, 1.0) for p in landmarks.landmark], dtype=np.float64)


def holistic_to_keypoints(pose: np.ndarray, face: np.ndarray | None, left_hand: np.ndarray | None,
                          right_hand: np.ndarray | None, image_size: tuple[int, int]) -> np.ndarray:
    """One Holistic result in the OpenPose layout.

    ``pose``: [33, 3] normalized x, y and visibility; ``face``: [468 or 478, 2+]
    normalized; hands: [21, 2+] normalized; None where Holistic found nothing.
    ``image_size``: (width, height) of the image Holistic saw. Returns float32
    [K, 3]: x, y in that image's continuous pixels, confidence in [0, 1]
    (0 and x = y = 0 for a missing keypoint). No threshold is applied here.
    """
    width, height = image_size
    scale = np.array([width, height], dtype=np.float64)
    out = np.zeros((KEYPOINT_COUNT, 3), dtype=np.float64)
    for joint, sources in BODY_FROM_POSE.items():
        picked = pose[list(sources)]
        out[BODY.start + joint, :2] = picked[:, :2].mean(axis=0) * scale
        out[BODY.start + joint, 2] = picked[:, 2].min()
    if face is not None and len(face) >= FACE_MESH_POINTS:
        confidence = pose[list(FACE_VISIBILITY_FROM), 2].mean()
        points = np.empty((FACE.stop - FACE.start, 2))
        points[:68] = face[list(FACE_FROM_MESH), :2]
        if len(face) > max(PUPILS_FROM_IRIS):
            points[68:] = face[list(PUPILS_FROM_IRIS), :2]
        else:  # unrefined mesh: the middle of each eye contour
            points[68] = points[list(FACE_RIGHT_EYE)].mean(axis=0)
            points[69] = points[list(FACE_LEFT_EYE)].mean(axis=0)
        out[FACE, :2] = points * scale
        out[FACE, 2] = confidence
    for hand, landmarks, wrist in ((LEFT_HAND, left_hand, P.LEFT_WRIST), (RIGHT_HAND, right_hand, P.RIGHT_WRIST)):
        if landmarks is not None:
            out[hand, :2] = landmarks[list(HAND_FROM_MEDIAPIPE), :2] * scale
            out[hand, 2] = pose[wrist, 2]
    out[:, 2] = np.clip(out[:, 2], 0.0, 1.0)
    out[out[:, 2] <= 0] = 0.0
    return out.astype(np.float32)


def _quiet_native_logging() -> None:
    # MediaPipe's C++ side logs through glog/absl to stderr; only errors matter.
    os.environ.setdefault("GLOG_minloglevel", "2")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def open_holistic(segmentation: bool = False):
    """A Holistic graph for video: tracking on, its own landmark smoothing off;
    with ``segmentation``, also the person's segmentation mask of each frame.

    Holistic's smoothing is a causal filter that lags behind the motion; edn
    smooths afterwards with a zero-phase filter instead (:mod:`edn.pose.keypoint_filter`).
    model_complexity 1 is the only model the 0.10.21 wheel ships (0 and 2 are
    downloaded on first use, which fails offline).
    """
    _quiet_native_logging()
    import mediapipe as mp

    return mp.solutions.holistic.Holistic(static_image_mode=False, model_complexity=1, smooth_landmarks=False,
                                          refine_face_landmarks=True, enable_segmentation=segmentation)


def result_keypoints(result, image_size: tuple[int, int]) -> np.ndarray | None:
    """A Holistic result's person in the OpenPose layout (:func:`holistic_to_keypoints`), None if nobody."""
    if result.pose_landmarks is None:
        return None
    return holistic_to_keypoints(
        _landmark_array(result.pose_landmarks, True),
        None if result.face_landmarks is None else _landmark_array(result.face_landmarks, False),
        None if result.left_hand_landmarks is None else _landmark_array(result.left_hand_landmarks, False),
        None if result.right_hand_landmarks is None else _landmark_array(result.right_hand_landmarks, False),
        image_size)


def cover_person(image: np.ndarray, keypoints: np.ndarray) -> np.ndarray:
    """``image`` [H, W, 3] with the box around ``keypoints`` [K, 3] (present ones, pixels), grown by
    :data:`COVER_MARGIN` on every side, painted in the image's mean colour: what the next stream sees."""
    height, width = image.shape[:2]
    points = keypoints[keypoints[:, 2] > 0, :2]
    if len(points) == 0:
        return image
    low, high = points.min(axis=0), points.max(axis=0)
    margin = COVER_MARGIN * float((high - low).max())
    left, top = (int(np.clip(np.floor(v - margin), 0, size)) for v, size in zip(low, (width, height)))
    right, bottom = (int(np.clip(np.ceil(v + margin), 0, size)) for v, size in zip(high, (width, height)))
    covered = np.array(image, copy=True)
    covered[top:bottom, left:right] = image.reshape(-1, image.shape[-1]).mean(axis=0).round().astype(image.dtype)
    return covered


def _seen_before(person: np.ndarray, found: list[np.ndarray]) -> bool:
    from edn.pose.main_person import body_size, pose_distance

    for other in found:
        size = body_size(other)
        if size > 0 and pose_distance(other, person) < SAME_PERSON_DISTANCE * size:
            return True
    return False


def detect_people_chunk(stream, frames: np.ndarray, start: int, stop: int, *, max_people: int = 1,
                        progress=None, masks: np.ndarray | None = None) -> list[np.ndarray]:
    """The people in each of ``frames[start:stop]``, by up to ``max_people`` Holistic streams run in order.

    ``stream(k)``: the k-th Holistic (opened by the caller, each used on every
    frame in order, so it tracks). Stream 0 sees the frame; stream k the frame
    with the people of streams 0..k-1 covered (:func:`cover_person`); stream k
    runs only where stream k-1 found somebody. Returns one float32 [P_t, K, 3]
    per frame (P_t <= ``max_people``, in the frame's continuous pixels, raw
    confidences). ``progress(count)`` is called as frames are done. With
    ``masks`` (uint8 [N, H, W], stream 0 opened with segmentation), frame i's
    segmentation mask of stream 0's person goes to ``masks[i]`` (0-255; 0 where
    nobody was found).
    """
    height, width = frames.shape[1:3]
    nobody = np.zeros((0, KEYPOINT_COUNT, 3), dtype=np.float32)
    people: list[np.ndarray] = []
    # The frames are read a chunk at a time and the masks' written pages let go as they fill, so a
    # worker's memory does not grow with the length of its span.
    for offset, (index, frame) in enumerate(zip(range(start, stop), iter_frames(frames, start, stop))):
        image = np.ascontiguousarray(frame)
        found: list[np.ndarray] = []
        for k in range(max_people):
            result = stream(k).process(image)
            if k == 0 and masks is not None:
                mask = getattr(result, "segmentation_mask", None)
                masks[index] = 0 if mask is None else np.clip(np.asarray(mask) * 255.0 + 0.5, 0, 255).astype(np.uint8)
            person = result_keypoints(result, (width, height))
            if person is None:
                break
            if not _seen_before(person, found):
                found.append(person)
            if k + 1 < max_people:
                image = cover_person(image, person)
        people.append(np.stack(found) if found else nobody)
        if masks is not None and (offset % CHUNK_FRAMES == CHUNK_FRAMES - 1 or index == stop - 1):
            release_pages(masks[index - offset % CHUNK_FRAMES:index + 1])
        if progress is not None and (offset % 8 == 7 or index == stop - 1):
            progress(offset % 8 + 1)
    return people


def first_person(people: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(keypoints float32 [N, K, 3], found bool [N]): each frame's first person (stream 0's), zeros if nobody."""
    keypoints = np.zeros((len(people), KEYPOINT_COUNT, 3), dtype=np.float32)
    found = np.array([len(p) > 0 for p in people], dtype=bool)
    for t in np.flatnonzero(found):
        keypoints[t] = people[t][0]
    return keypoints, found


def detect_chunk(holistic, frames: np.ndarray, start: int, stop: int, progress=None,
                 masks: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Run one ``holistic`` over ``frames[start:stop]`` in order: (keypoints float32 [n, K, 3] in the
    frames' continuous pixels, found bool [n]); ``progress`` and ``masks`` as in :func:`detect_people_chunk`."""
    return first_person(detect_people_chunk(lambda k: holistic, frames, start, stop, progress=progress,
                                            masks=masks))


def _worker(frames_path: str, start: int, stop: int, native_log: str, messages, masks_path: str | None,
            max_people: int = 1) -> None:
    """Worker process: up to ``max_people`` Holistic streams over one contiguous chunk
    (:func:`detect_people_chunk`); results go to ``messages`` (and, with ``masks_path``,
    the chunk's person masks into that .npy store).

    MediaPipe's native code writes warnings straight to file descriptor 2; they
    go to ``native_log`` so that the parent can show them only when asked.
    """
    threading.Thread(target=_exit_when_parent_dies, daemon=True).start()
    try:
        with open(native_log, "wb") as sink:
            os.dup2(sink.fileno(), 2)
        frames = np.load(frames_path, mmap_mode="r")
        masks = None if masks_path is None else np.load(masks_path, mmap_mode="r+")
        with contextlib.ExitStack() as opened:
            streams: list = []

            def stream(k: int):  # opened on first use: most frames never need a second stream
                while len(streams) <= k:
                    segmentation = masks is not None and not streams
                    streams.append(opened.enter_context(open_holistic(segmentation=segmentation)))
                return streams[k]

            people = detect_people_chunk(stream, frames, start, stop, max_people=max_people,
                                         progress=lambda n: messages.put(("progress", n)), masks=masks)
        if masks is not None:
            masks.flush()
        messages.put(("done", start, people))
    except BaseException:  # report everything: the parent turns it into its own error
        messages.put(("error", start, traceback.format_exc()))


def _exit_when_parent_dies() -> None:
    """Worker watchdog: leave at once when the parent is gone.

    A parent killed with SIGKILL cannot stop its workers, and nobody would read
    their results: they would detect to the end of their chunk and then block
    forever writing to the queue, each holding a CPU core and its memory.
    """
    import multiprocessing

    parent = multiprocessing.parent_process()
    if parent is not None:
        parent.join()  # returns when the parent's end of the pipe closes, i.e. when it exits
        os._exit(1)


def chunks(frame_count: int, workers: int, min_chunk: int = 16) -> list[tuple[int, int]]:
    """Contiguous (start, stop) spans covering ``frame_count`` frames, at most ``workers`` of them.

    Each span restarts tracking (one full detection on its first frame), so
    spans are at least ``min_chunk`` frames long unless the video is shorter.
    """
    count = max(1, min(workers, frame_count // min_chunk))
    edges = np.linspace(0, frame_count, count + 1).round().astype(int)
    return [(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:]) if b > a]


def _detect(frames_path: str | os.PathLike, *, workers: int, max_people: int, show_progress: bool,
            masks_path: str | os.PathLike | None = None) -> list[np.ndarray]:
    """Every frame's people (:func:`detect_people_chunk`) from worker processes over contiguous chunks."""
    import tempfile

    from tqdm import tqdm

    frame_count = len(np.load(frames_path, mmap_mode="r"))
    if frame_count == 0:
        return []
    spans = chunks(frame_count, workers)
    people: list[np.ndarray] = [np.zeros((0, KEYPOINT_COUNT, 3), np.float32)] * frame_count
    with tempfile.TemporaryDirectory(prefix="edn-mediapipe-") as logs, \
            tqdm(total=frame_count, unit="frame", desc="mediapipe", disable=None if show_progress else True) as bar:
        _run_workers(str(Path(frames_path)), spans, people, bar, Path(logs),
                     None if masks_path is None else str(masks_path), max_people)
    return people


def detect_people_mediapipe(frames_path: str | os.PathLike, *, workers: int = 2, max_people: int = MAX_PEOPLE,
                            show_progress: bool = True) -> list[np.ndarray]:
    """Everybody Holistic finds in each frame of a uint8 [N, H, W, 3] store (``frames.npy``), up to
    ``max_people`` a frame: N float32 [P_t, K, 3] in the store's continuous pixels, raw confidences.

    ``workers`` processes each run the streams of
    :func:`detect_people_chunk` over a contiguous chunk; every frame lists the
    same people whatever the chunks, so the choice of the subject made
    afterwards over the whole video does not depend on ``workers``.
    """
    return _detect(frames_path, workers=workers, max_people=max_people, show_progress=show_progress)


def detect_mediapipe(frames_path: str | os.PathLike, *, workers: int = 2, show_progress: bool = True,
                     masks_path: str | os.PathLike | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Holistic on every frame of a uint8 [N, H, W, 3] store (``frames.npy``), one person a frame.

    For videos of one person (generated frames, segmentation): which person a
    stream follows where there are several depends on where the chunks start
    (use :func:`detect_people_mediapipe` there). ``workers`` processes (one for
    one worker too: it keeps MediaPipe's native logging and memory out of the
    caller) each run their own Holistic over a contiguous chunk. Returns (keypoints float32 [N, K, 3] in the
    store's continuous pixels, raw confidences; found bool [N]). With
    ``masks_path``, an existing uint8 [N, H, W] .npy store, the workers also
    write each frame's person segmentation mask there (0-255).
    """
    return first_person(_detect(frames_path, workers=workers, max_people=1, show_progress=show_progress,
                                masks_path=masks_path))


def _native_output(path: Path) -> str:
    try:
        return path.read_text(errors="replace").strip()
    except FileNotFoundError:
        return ""


def _run_workers(frames_path: str, spans: list[tuple[int, int]], people: list[np.ndarray], bar, logs: Path,
                 masks_path: str | None = None, max_people: int = 1) -> None:
    import multiprocessing

    # spawn, not fork: MediaPipe's graph threads do not survive a fork.
    context = multiprocessing.get_context("spawn")
    messages = context.Queue()
    native = {start: logs / f"worker-{start}.log" for start, _ in spans}
    processes = [context.Process(target=_worker, args=(frames_path, start, stop, str(native[start]), messages,
                                                       masks_path, max_people), daemon=True) for start, stop in spans]
    log.info("mediapipe: %d worker process(es) over frames %s", len(processes),
             ", ".join(f"{a}-{b - 1}" for a, b in spans))
    for process in processes:
        process.start()
    try:
        pending = {start for start, _ in spans}
        stops = dict(spans)
        while pending:
            try:
                message = messages.get(timeout=1.0)
            except queue_module.Empty:
                dead = [(start, p) for start, p in zip(stops, processes) if p.exitcode not in (None, 0)]
                if dead:
                    start, process = dead[0]
                    raise RuntimeError(f"the mediapipe worker for frames from {start} died (exit code "
                                       f"{process.exitcode}); its output:\n{_native_output(native[start])}")
                continue
            if message[0] == "progress":
                bar.update(message[1])
            elif message[0] == "done":
                _, start, chunk_people = message
                people[start:stops[start]] = chunk_people
                pending.discard(start)
            else:
                raise RuntimeError(f"the mediapipe worker for frames from {message[1]} failed:\n{message[2]}")
        for process in processes:
            process.join(timeout=30)
    finally:
        # A SIGTERM can arrive while the workers are being started: only started ones are stopped.
        started = [process for process in processes if process.pid is not None]
        for process in started:
            if process.is_alive():
                process.terminate()
        deadline = time.monotonic() + 5
        for process in started:
            process.join(timeout=max(0.0, deadline - time.monotonic()))
        messages.close()
        for start, path in native.items():
            output = _native_output(path)
            if output:
                log.debug("mediapipe worker %d native output:\n%s", start, output)


def segment_mediapipe(frames_path: str | os.PathLike, masks_out: str | os.PathLike, *, workers: int = 2,
                      show_progress: bool = True) -> None:
    """Write the person's segmentation mask of every frame of ``frames.npy`` to ``masks_out``
    (uint8 [N, H, W], 0-255), atomically: Holistic with ``enable_segmentation``, the
    same model and tracking as pose detection."""
    from edn.ingest.frames import create_image_store

    frames = np.load(frames_path, mmap_mode="r")
    count, height, width = frames.shape[:3]
    with create_image_store(masks_out, count, (width, height), channels=None) as store:
        # A new store reads as zeros (open_memmap extends an empty file), so it is not written here:
        # filling it would map the whole store into this process's memory.
        store.flush()
        detect_mediapipe(frames_path, workers=workers, show_progress=show_progress, masks_path=store.filename)

"""Pose detection for one subject: any backend in, one keypoint table out.

Every backend ends in the same place: for each decoded frame, the people found
in working-frame pixels (every one of them, also from MediaPipe, whose workers
each see part of the video: :func:`edn.pose.mediapipe_holistic.detect_people_mediapipe`);
keypoints below the backend's confidence threshold become missing (x = y =
confidence = 0); the main person is chosen once over the whole video and kept
(:mod:`edn.pose.main_person`); the result is one :class:`PoseSequence` with
exactly one pose per decoded frame.

Where detection looks: on the working frames themselves, or, with
``detection_scale`` s > 1, on the subject's video decoded again at s times the
working size (same frame rate, same fit), with every point mapped back to
working pixels through the two recorded transforms (detection -> source ->
working). Body joints are found as well at 256x128 as at twice that, but faces
and hands are not: on the demo juggler Holistic finds the face in 47 of 247
frames at 256x128 and in 229 at 512x256, at the same speed.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from edn.core.atomic import scratch_directory
from edn.core.errors import EdnError
from edn.ingest.frames import FrameMeta, load_frames, read_meta
from edn.pose.keypoints import PoseSequence
from edn.core.options import POSE_BACKENDS, MinConfidence
from edn.pose.main_person import select_main_person
from edn.pose.openpose_json import PointMap, identity, people_to_edn
from edn.pose.skeleton import Body

log = logging.getLogger(__name__)

BACKENDS = POSE_BACKENDS
#: Confidence below which a keypoint is missing, per backend (the option
#: ``pose.min_confidence``; :class:`edn.core.options.MinConfidence` says why these values).
DEFAULT_MIN_CONFIDENCE = {backend: MinConfidence().of(backend) for backend in BACKENDS}
JSON_COORDINATES = ("source", "working")
#: Least share of MediaPipe's main person's frames (among those showing its torso)
#: in which it must be upright. Everybody Dance Now's subject stands and dances
#: (the pose normalization works on ankle heights). Holistic in video mode keeps
#: tracking whatever it once took for a person and reports it at full confidence:
#: on ffmpeg's testsrc2 pattern it reports a body lying along the top of the
#: frame, torso horizontal, in 11 of 20 frames. A video filmed on its side
#: without rotation metadata shows everyone horizontal too. (OpenPose and
#: imported OpenPose JSON are taken as they are.)
MIN_UPRIGHT_FRACTION = 0.25


def count_upright(keypoints: np.ndarray) -> tuple[int, int]:
    """(frames where the torso is upright, frames where it is seen) of ``keypoints`` [T, K, 3].

    Upright: the mid-hip lies below the neck (image y grows downwards), within
    45 degrees of the vertical.
    """
    neck, hip = keypoints[:, Body.NECK], keypoints[:, Body.MID_HIP]
    seen = (neck[:, 2] > 0) & (hip[:, 2] > 0)
    dx, dy = hip[:, 0] - neck[:, 0], hip[:, 1] - neck[:, 1]
    return int((seen & (dy > np.abs(dx))).sum()), int(seen.sum())


def check_backend(backend: str) -> str:
    if backend not in BACKENDS:
        raise EdnError(f"pose backend {backend!r}: unknown; choose one of {', '.join(BACKENDS)}")
    return backend


def apply_threshold(people: np.ndarray, min_confidence: float) -> np.ndarray:
    """People [..., K, 3] with keypoints below ``min_confidence`` set to (0, 0, 0)."""
    out = np.array(people, dtype=np.float32, copy=True)
    out[out[..., 2] < min_confidence] = 0.0
    out[out[..., 2] <= 0] = 0.0
    return out


def _map_present(keypoints: np.ndarray, to_working: PointMap) -> np.ndarray:
    """Continuous detection-image pixels -> working pixels, for the present keypoints only."""
    out = keypoints.astype(np.float64)
    present = out[..., 2] > 0
    x, y = to_working(out[..., 0], out[..., 1])
    out[..., 0], out[..., 1] = x, y
    out[~present] = 0.0
    return out.astype(np.float32)


@contextlib.contextmanager
def detection_frames(frames_path: str | os.PathLike, meta: FrameMeta, *, video: str | os.PathLike | None,
                     scale: float, scratch_dir: str | os.PathLike) -> Iterator[tuple[Path, PointMap]]:
    """The frame store to detect on and the map from its pixels to working pixels.

    ``scale`` 1: the working frames and the identity. ``scale`` > 1: ``video``
    decoded at ``scale`` times the working size into a temporary store inside
    ``scratch_dir`` (removed afterwards), with the same frame rate and fit.
    """
    if scale < 1:
        raise EdnError(f"detection scale {scale}: must be at least 1")
    if scale == 1:
        yield Path(frames_path), identity
        return
    if video is None:
        raise EdnError(f"detection scale {scale}: needs the subject's video (--video) to decode at the larger size")
    from edn.ingest.decode import decode_video

    width, height = meta.working_size
    size = (round(width * scale), round(height * scale))
    # Named like an atomic temporary: the next run removes the one a SIGKILL left.
    with scratch_directory(Path(scratch_dir) / "detection-frames") as scratch:
        store = Path(scratch) / "frames.npy"
        log.info("decoding %s again at %dx%d for detection (scale %g)", video, *size, scale)
        detection = decode_video(video, store, Path(scratch) / "meta.json", working_size=size,
                                 fps=meta.fps_value, fit=meta.fit)
        if detection.frame_count != meta.frame_count or tuple(detection.source_size) != tuple(meta.source_size):
            raise EdnError(f"video {str(video)!r}: gives {detection.frame_count} frames of "
                           f"{detection.source_size[0]}x{detection.source_size[1]}, but the working frames "
                           f"have {meta.frame_count} of {meta.source_size[0]}x{meta.source_size[1]}; "
                           f"is it the video they were decoded from?")

        def to_working(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            return meta.transform.to_working(*detection.transform.to_source(x, y))

        yield store, to_working


def detect(
    backend: str,
    *,
    frames_path: str | os.PathLike | None,
    meta_path: str | os.PathLike,
    video: str | os.PathLike | None = None,
    detection_scale: float = 1.0,
    workers: int = 2,
    min_confidence: float | None = None,
    model_folder: str | os.PathLike | None = None,
    openpose_flags: str = "",
    json_dir: str | os.PathLike | None = None,
    json_coordinates: str = "source",
    scratch_dir: str | os.PathLike | None = None,
    show_progress: bool = True,
) -> PoseSequence:
    """One subject's poses, one per decoded frame, by ``backend``.

    ``frames_path``/``meta_path``: the decoded working frames (not read by
    openpose_json) and their meta.json. ``min_confidence``: None takes the
    backend's default (:data:`DEFAULT_MIN_CONFIDENCE`). mediapipe: ``workers``
    processes, ``detection_scale`` and ``video`` as in :func:`detection_frames`.
    openpose: ``model_folder``. openpose_json: ``json_dir`` with one file per
    decoded frame, in ``json_coordinates`` (source-video or working pixels). A
    subject nobody was found in is an EdnError: nothing downstream could use it.
    """
    check_backend(backend)
    meta = read_meta(meta_path)
    threshold = DEFAULT_MIN_CONFIDENCE[backend] if min_confidence is None else float(min_confidence)
    if not 0 <= threshold <= 1:
        raise EdnError(f"min confidence {threshold}: must lie in [0, 1]")
    if workers < 1:
        raise EdnError(f"workers {workers}: must be at least 1")
    if backend == "openpose_json":
        people = _import_json(json_dir, json_coordinates, meta, show_progress)
        source, detection_scale = f"OpenPose JSON directory {str(json_dir)!r}", None
    else:
        people = _detect_in_frames(backend, frames_path, meta_path, meta, video=video,
                                   detection_scale=detection_scale, workers=workers, model_folder=model_folder,
                                   openpose_flags=openpose_flags, scratch_dir=scratch_dir,
                                   show_progress=show_progress)
        source = f"frames {str(frames_path)!r}"
    keypoints = select_main_person([apply_threshold(p, threshold) for p in people])
    with_person = int((keypoints[..., 2].max(axis=1) > 0).sum()) if len(keypoints) else 0
    if with_person == 0:
        raise EdnError(f"{source}: no person found in any of the {len(keypoints)} frames ({backend}, "
                       f"min confidence {threshold:g})")
    upright, with_torso = count_upright(keypoints) if backend == "mediapipe" else (0, 0)
    if with_torso and upright < MIN_UPRIGHT_FRACTION * with_torso:
        raise EdnError(f"{source}: no standing person found: the body detected in {with_person} of the "
                       f"{len(keypoints)} frames is upright in only {upright} of the {with_torso} frames that show "
                       f"its torso (a false detection in a pattern or texture, or a video lying on its side?)")
    log.info("%s: the main person is in %d of %d frames", backend, with_person, len(keypoints))
    return PoseSequence(keypoints=keypoints, frame_size=tuple(meta.working_size), detector=backend,
                        extra={"min_confidence": threshold, "detection_scale": detection_scale,
                               "frames_with_person": with_person})


def _detect_in_frames(backend: str, frames_path: str | os.PathLike | None, meta_path: str | os.PathLike,
                      meta: FrameMeta, *, video: str | os.PathLike | None, detection_scale: float, workers: int,
                      model_folder: str | os.PathLike | None, openpose_flags: str,
                      scratch_dir: str | os.PathLike | None, show_progress: bool) -> list[np.ndarray]:
    """Every frame's people [P_t, K, 3] in working pixels, found by a detector (mediapipe, openpose)."""
    if frames_path is None:
        raise EdnError(f"pose backend {backend!r}: no frames given (--frames)")
    frames = load_frames(frames_path)
    if len(frames) != meta.frame_count or frames.shape[1:3] != tuple(reversed(meta.working_size)):
        raise EdnError(f"frames {str(frames_path)!r}: {len(frames)} frames of {frames.shape[2]}x{frames.shape[1]}"
                       f" do not match {str(meta_path)!r} ({meta.frame_count} of "
                       f"{meta.working_size[0]}x{meta.working_size[1]})")
    if backend == "openpose" and model_folder is None:
        raise EdnError("pose backend 'openpose': no model folder given (--model-folder)")
    if backend == "openpose":
        from edn.pose.openpose import extra_flags

        flags = extra_flags(openpose_flags)  # checked before any frame is decoded
    with detection_frames(frames_path, meta, video=video, scale=detection_scale,
                          scratch_dir=scratch_dir or tempfile.gettempdir()) as (store, to_working):
        if backend == "openpose":
            from edn.pose.openpose import detect_openpose

            detected = detect_openpose(load_frames(store), model_folder, flags=flags, show_progress=show_progress)
            return [people_to_edn(p, to_working) for p in detected]
        from edn.pose.mediapipe_holistic import detect_people_mediapipe

        # Everybody in every frame, whatever the workers' chunks; the subject is chosen afterwards, once.
        return [_map_present(people, to_working)
                for people in detect_people_mediapipe(store, workers=workers, show_progress=show_progress)]


def _import_json(json_dir: str | os.PathLike | None, coordinates: str, meta: FrameMeta,
                 show_progress: bool) -> list[np.ndarray]:
    from edn.pose.openpose_json import read_openpose_dir

    if json_dir is None:
        raise EdnError("pose backend 'openpose_json': no JSON directory given (--json-dir)")
    if coordinates not in JSON_COORDINATES:
        raise EdnError(f"OpenPose JSON coordinates {coordinates!r}: choose one of {', '.join(JSON_COORDINATES)}")
    frames = read_openpose_dir(json_dir, show_progress=show_progress)
    if len(frames) != meta.frame_count:
        raise EdnError(f"OpenPose JSON directory {str(json_dir)!r}: {len(frames)} files, but the video was "
                       f"decoded to {meta.frame_count} frames (one file per decoded frame is needed: run OpenPose "
                       f"on the same span, and decode at the video's own frame rate)")
    to_working = meta.transform.to_working if coordinates == "source" else identity
    return [people_to_edn(p, to_working) for p in frames]


def export_openpose(poses: PoseSequence, directory: str | os.PathLike, *, prefix: str,
                    meta: FrameMeta | None = None, show_progress: bool = True) -> None:
    """Write ``poses`` as OpenPose JSON, in source-video pixels when ``meta`` is given, else working pixels."""
    from edn.pose.openpose_json import write_openpose_dir

    if meta is not None and tuple(meta.working_size) != tuple(poses.frame_size):
        raise EdnError(f"frame metadata: working size {meta.working_size[0]}x{meta.working_size[1]} is not the "
                       f"poses' {poses.frame_size[0]}x{poses.frame_size[1]}")
    from_working = meta.transform.to_source if meta is not None else identity
    write_openpose_dir(poses, directory, prefix=prefix, from_working=from_working, show_progress=show_progress)

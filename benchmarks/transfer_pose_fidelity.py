"""How well a transfer's frames show the poses they were asked for: MediaPipe run on them, as the evaluation does.

    # the demo transfer made with exemplars.clear_head false, kept aside, against today's:
    .venv/bin/python benchmarks/transfer_pose_fidelity.py \\
        --poses results/transfer/dancer_to_juggler/poses.parquet \\
        /tmp/dancer_to_juggler.before.mp4 results/transfer/dancer_to_juggler.mp4 --span 58:77

A transfer has no real frame to compare with, but it has the poses it was drawn from
(``results/transfer/{pair}/poses.parquet``, the source's normalized onto the target).
For each video (an mp4 from ``encode_transfer``, or a frame store .npy from ``edn
synthesize``) this runs MediaPipe Holistic over its frames and compares what it finds
with those poses part by part (:func:`edn.evaluation.evaluate.pose_fidelity`, the
evaluation's pose columns): the share of frames where a body is found, the body's and
the face's keypoint error as a fraction of the standing height, and the faces missed
per frame. ``--span first:stop`` measures those frames only (as Python slices them; MediaPipe
still runs over the whole video, which it tracks from frame to frame).
A face drawn badly (smeared, or with the plate showing through it) moves the nose,
eyes and ears MediaPipe finds, so the body's error counts it too.

The files are only read.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script: edn importable without installing
    sys.path.insert(0, str(ROOT))

from edn.core.errors import EdnError  # noqa: E402
from edn.pose.keypoints import PoseSequence, read_pose_table  # noqa: E402

#: The columns printed: (metric, part) of edn.evaluation.evaluate.pose_measures, and their heading.
COLUMNS = ((("pose_detected_fraction", "body"), "pose found"),
           (("pose_error_height_fraction", "body"), "body error / height"),
           (("pose_error_height_fraction", "face"), "face error / height"),
           (("pose_missed_per_frame", "face"), "face missed / frame"))


def read_video_frames(path: Path) -> np.ndarray:
    """uint8 [T, H, W, 3] RGB: a frame store .npy as it is, or every frame of a video decoded by ffmpeg."""
    if path.suffix == ".npy":
        from edn.ingest.frames import load_frames

        return np.asarray(load_frames(path))
    from benchmarks.synthetic_camera import read_frames
    from edn.ingest.media import probe_video

    return np.stack(list(read_frames(path, probe_video(path).size)))


def span_of(text: str | None, count: int) -> slice:
    """``first:stop`` as a slice of ``count`` frames (None: all); one error line when it holds none."""
    if text is None:
        return slice(0, count)
    try:
        first, stop = (int(part) if part else None for part in text.split(":"))
    except ValueError:
        raise EdnError(f"--span {text!r}: give first:stop, frame numbers") from None
    span = slice(first, stop)
    if not len(range(count)[span]):
        raise EdnError(f"--span {text!r}: no frame of the {count} in it")
    return span


def measure(frames: np.ndarray, poses: PoseSequence, span: slice, workers: int = 2) -> dict:
    """The pose fidelity of ``frames[span]`` against ``poses[span]`` (:func:`edn.evaluation.evaluate.pose_measures`),
    MediaPipe run over the whole video (it tracks from frame to frame, so a span is measured as the
    video shows it): ``{(metric, part): (value, frames measured)}``."""
    from edn.evaluation.evaluate import detect_generated, pose_measures

    if len(frames) != poses.frame_count:
        raise EdnError(f"{len(frames)} frames against {poses.frame_count} requested poses: not the same transfer")
    detected = detect_generated(np.ascontiguousarray(frames), workers)
    return pose_measures(detected[span], poses.replace(poses.keypoints[span]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("videos", nargs="+", type=Path, help="transfer videos (.mp4) or frame stores (.npy)")
    parser.add_argument("--poses", required=True, type=Path, help="the poses they were drawn from (.parquet)")
    parser.add_argument("--span", default=None, help="first:stop, the frames to measure (default: all)")
    parser.add_argument("--workers", type=int, default=2, help="MediaPipe processes")
    args = parser.parse_args(argv)
    try:
        poses = read_pose_table(args.poses)
        print("| video | frames | " + " | ".join(heading for _, heading in COLUMNS) + " |")
        print("|---|---|" + "---|" * len(COLUMNS))
        for video in args.videos:
            frames = read_video_frames(video)
            span = span_of(args.span, len(frames))
            measures = measure(frames, poses, span, args.workers)
            values = " | ".join(f"{measures[key][0]:.4f}" for key, _ in COLUMNS)
            print(f"| {video} | {len(range(len(frames))[span])} | {values} |")
    except EdnError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""``edn pose``, ``edn smooth-poses``, ``edn export-openpose``, ``edn pose-preview``."""

from __future__ import annotations

import argparse

BACKENDS = ("mediapipe", "openpose", "openpose_json")  # checked again, with a clear error, in edn.pose.detect


def register(subparsers: argparse._SubParsersAction) -> None:
    pose = subparsers.add_parser(
        "pose", help="detect a subject's keypoints in its decoded frames (one pose per frame)",
        description="Find the subject's body, face and hands in every decoded frame with MediaPipe Holistic, "
                    "OpenPose (pyopenpose), or a directory of OpenPose JSON files, keep the main person, and "
                    "write the keypoint table in working-frame pixels.")
    pose.add_argument("--backend", default="mediapipe", metavar="NAME",
                      help=f"detector: {', '.join(BACKENDS)} (default: mediapipe)")
    pose.add_argument("--frames", default=None, help="decoded frames (.npy); not needed by openpose_json")
    pose.add_argument("--meta", required=True, help="meta.json beside the frames")
    pose.add_argument("--output", required=True, help="keypoint table (.parquet) to write")
    pose.add_argument("--video", default=None,
                      help="the video the frames were decoded from (needed for --detection-scale > 1)")
    pose.add_argument("--detection-scale", type=float, default=1.0, metavar="S",
                      help="detect on the video decoded at S times the working size (default 1: on the frames)")
    pose.add_argument("--workers", type=int, default=2, help="mediapipe: processes, one Holistic each (default 2)")
    pose.add_argument("--min-confidence", type=float, default=None, metavar="C",
                      help="keypoints below C are missing (default: 0.5 for mediapipe, 0.05 for OpenPose)")
    pose.add_argument("--model-folder", default=None, help="openpose: OpenPose's models/ folder")
    pose.add_argument("--json-dir", default=None, help="openpose_json: directory of one JSON file per frame")
    pose.add_argument("--json-coordinates", choices=("source", "working"), default="source",
                      help="openpose_json: pixels of the source video (default) or of the working frames")
    pose.set_defaults(handler=_pose)

    smooth = subparsers.add_parser(
        "smooth-poses", help="fill short gaps and filter keypoints over time (same frames, no time shift)",
        description="Per keypoint: fill gaps of at most --max-gap-frames, a running median, then a "
                    "confidence-weighted, zero-phase Gaussian filter.")
    smooth.add_argument("--poses", required=True, help="keypoint table (.parquet)")
    smooth.add_argument("--output", required=True, help="smoothed keypoint table (.parquet) to write")
    smooth.add_argument("--max-gap-frames", type=int, default=5, help="longest gap to fill (frames; 0: none)")
    smooth.add_argument("--median-window", type=int, default=5, help="running median length (frames; 1: none)")
    smooth.add_argument("--sigma-frames", type=float, default=2.0,
                        help="Gaussian standard deviation (frames; 0: none)")
    smooth.set_defaults(handler=_smooth)

    export = subparsers.add_parser(
        "export-openpose", help="write a keypoint table as OpenPose JSON, one file per frame",
        description="Write NAME_000000000000_keypoints.json files with OpenPose's keys (pose_keypoints_2d, "
                    "face_keypoints_2d, hand_left_keypoints_2d, hand_right_keypoints_2d), in OpenPose's "
                    "pixel convention.")
    export.add_argument("--poses", required=True, help="keypoint table (.parquet)")
    export.add_argument("--output", required=True, help="directory to write (replaced as a whole)")
    export.add_argument("--meta", default=None,
                        help="meta.json of the frames: with it, coordinates are source-video pixels; "
                             "without it, working-frame pixels")
    export.add_argument("--prefix", default="frame", help="file name prefix (default: frame)")
    export.set_defaults(handler=_export)

    preview = subparsers.add_parser(
        "pose-preview", help="encode a video of the keypoints drawn over the frames",
        description="Draw each frame's keypoints over the decoded frame, enlarged, and encode an mp4 at the "
                    "frames' rate.")
    preview.add_argument("--poses", required=True, help="keypoint table (.parquet)")
    preview.add_argument("--frames", required=True, help="decoded frames (.npy)")
    preview.add_argument("--meta", required=True, help="meta.json beside the frames (frame rate)")
    preview.add_argument("--output", required=True, help="mp4 to write")
    preview.add_argument("--scale", type=int, default=2, help="enlargement of the frames (default 2)")
    preview.set_defaults(handler=_preview)


def _pose(args: argparse.Namespace) -> None:
    from pathlib import Path

    from edn.keypoints import write_pose_table
    from edn.pose.detect import detect

    poses = detect(args.backend, frames_path=args.frames, meta_path=args.meta, video=args.video,
                   detection_scale=args.detection_scale, workers=args.workers, min_confidence=args.min_confidence,
                   model_folder=args.model_folder, json_dir=args.json_dir, json_coordinates=args.json_coordinates,
                   scratch_dir=Path(args.output).parent)
    write_pose_table(args.output, poses)


def _smooth(args: argparse.Namespace) -> None:
    from edn.errors import EdnError
    from edn.keypoints import read_pose_table, write_pose_table
    from edn.smoothing import smooth_poses

    for name, value, least in (("--max-gap-frames", args.max_gap_frames, 0), ("--median-window", args.median_window, 1),
                               ("--sigma-frames", args.sigma_frames, 0)):
        if value < least:
            raise EdnError(f"{name} {value}: must be at least {least}")
    poses = read_pose_table(args.poses)
    write_pose_table(args.output, smooth_poses(poses, max_gap_frames=args.max_gap_frames,
                                               median_window=args.median_window, sigma_frames=args.sigma_frames,
                                               show_progress=True))


def _export(args: argparse.Namespace) -> None:
    from edn.frames import read_meta
    from edn.keypoints import read_pose_table
    from edn.pose.detect import export_openpose

    poses = read_pose_table(args.poses)
    meta = read_meta(args.meta) if args.meta else None
    export_openpose(poses, args.output, prefix=args.prefix, meta=meta)


def _preview(args: argparse.Namespace) -> None:
    from edn.frames import load_frames, read_meta
    from edn.keypoints import read_pose_table
    from edn.pose.preview import write_pose_preview

    poses = read_pose_table(args.poses)
    meta = read_meta(args.meta)
    write_pose_preview(poses, load_frames(args.frames), args.output, fps=meta.fps_value, scale=args.scale)

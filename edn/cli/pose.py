"""``edn pose``, ``edn filter-poses``, ``edn export-openpose``, ``edn pose-preview``."""

from __future__ import annotations

import argparse

from edn.core.options import KeypointFilterOptions, PoseOptions, add_arguments, from_arguments


def register(subparsers: argparse._SubParsersAction) -> None:
    pose = subparsers.add_parser(
        "pose", help="detect a subject's keypoints in its decoded frames (one pose per frame)",
        description="Find the subject's body, face and hands in every decoded frame with MediaPipe Holistic, "
                    "OpenPose (pyopenpose), or a directory of OpenPose JSON files, keep the main person, and "
                    "write the keypoint table in working-frame pixels.")
    pose.add_argument("--frames", default=None, help="decoded frames (.npy); not needed by openpose_json")
    pose.add_argument("--meta", required=True, help="meta.json beside the frames")
    pose.add_argument("--output", required=True, help="keypoint table (.parquet) to write")
    pose.add_argument("--video", default=None,
                      help="the video the frames were decoded from (needed for --detection-scale > 1)")
    pose.add_argument("--json-dir", default=None, help="openpose_json: directory of one JSON file per frame")
    add_arguments(pose, PoseOptions)
    pose.set_defaults(handler=_pose)

    keypoint_filter = subparsers.add_parser(
        "filter-poses", help="fill short gaps and filter keypoints over time (same frames, no time shift)",
        description="Per keypoint: fill gaps of at most --max-gap-frames, a running median, then a "
                    "confidence-weighted, zero-phase Gaussian filter.")
    keypoint_filter.add_argument("--poses", required=True, help="keypoint table (.parquet)")
    keypoint_filter.add_argument("--output", required=True, help="smoothed keypoint table (.parquet) to write")
    add_arguments(keypoint_filter, KeypointFilterOptions)
    keypoint_filter.set_defaults(handler=_filter)

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

    from edn.pose.keypoints import write_pose_table
    from edn.pose.detect import detect

    options = from_arguments(PoseOptions, args)
    poses = detect(options.backend, frames_path=args.frames, meta_path=args.meta, video=args.video,
                   detection_scale=options.detection_scale, workers=options.workers,
                   min_confidence=options.min_confidence.of(options.backend),
                   model_folder=options.openpose_model_folder, openpose_flags=options.openpose_flags,
                   json_dir=args.json_dir,
                   json_coordinates=options.openpose_json_coordinates, scratch_dir=Path(args.output).parent)
    write_pose_table(args.output, poses)


def _filter(args: argparse.Namespace) -> None:
    from edn.pose.keypoint_filter import filter_poses
    from edn.pose.keypoints import read_pose_table, write_pose_table

    options = from_arguments(KeypointFilterOptions, args)
    poses = read_pose_table(args.poses)
    write_pose_table(args.output, filter_poses(poses, **options.to_dict(), show_progress=True))


def _export(args: argparse.Namespace) -> None:
    from edn.ingest.frames import read_meta
    from edn.pose.keypoints import read_pose_table
    from edn.pose.detect import export_openpose

    poses = read_pose_table(args.poses)
    meta = read_meta(args.meta) if args.meta else None
    export_openpose(poses, args.output, prefix=args.prefix, meta=meta)


def _preview(args: argparse.Namespace) -> None:
    from edn.ingest.frames import load_frames, read_meta
    from edn.pose.keypoints import read_pose_table
    from edn.pose.preview import write_pose_preview

    poses = read_pose_table(args.poses)
    meta = read_meta(args.meta)
    write_pose_preview(poses, load_frames(args.frames), args.output, fps=meta.fps_value, scale=args.scale)

"""``edn stats``, ``edn normalize``, ``edn render``, ``edn label-preview``, ``edn normalization-figure``."""

from __future__ import annotations

import argparse

from edn.core.options import (CameraOptions, NormalizationOptions, PersonWindowOptions, SubjectStatsOptions,
                              add_arguments, from_arguments)


def register(subparsers: argparse._SubParsersAction) -> None:
    stats = subparsers.add_parser(
        "stats", help="measure a subject's ankle depth range and body heights (normalization statistics)",
        description="Compute close/far ankle positions, median and body heights near close and far "
                    "(paper section 3.1) from every valid frame of a subject's keypoint table.")
    stats.add_argument("--poses", required=True, help="keypoint table (.parquet)")
    stats.add_argument("--subject", required=True, help="subject name, for messages and the record")
    add_arguments(stats, SubjectStatsOptions)
    stats.add_argument("--output", required=True, help="statistics .json to write")
    stats.set_defaults(handler=_stats)

    normalize = subparsers.add_parser(
        "normalize", help="map a source's poses onto a target's body and camera (paper eqs. 7-8)",
        description="Translate and scale every source frame about its ankle point so that the source's "
                    "depth range and body height match the target's. Keeps every frame.")
    normalize.add_argument("--source-poses", required=True, help="source keypoint table (.parquet)")
    normalize.add_argument("--source-stats", required=True, help="source statistics (.json)")
    normalize.add_argument("--target-stats", required=True, help="target statistics (.json)")
    normalize.add_argument("--target-poses", default=None,
                           help="the target's keypoint table (.parquet): with --target-camera, its statistics are "
                                "measured in its reference view when its camera moves")
    normalize.add_argument("--target-camera", default=None,
                           help="the target's camera table (.camera.csv, from edn background)")
    normalize.add_argument("--output", required=True, help="normalized keypoint table (.parquet) to write")
    add_arguments(normalize, NormalizationOptions)
    add_arguments(normalize, CameraOptions)
    normalize.set_defaults(handler=_normalize)

    render = subparsers.add_parser(
        "render", help="draw stick-figure labels and face boxes from a keypoint table",
        description="Render every frame's pose as a stick figure at the working size (labels.npy) and "
                    "write each frame's face box and person window (index.csv).")
    render.add_argument("--poses", required=True, help="keypoint table (.parquet)")
    render.add_argument("--labels", required=True, help="labels .npy to write")
    render.add_argument("--index", required=True, help="index .csv to write")
    render.add_argument("--window-stats", default=None,
                        help="the target's statistics (.json): the person window is sized by its standing height "
                             "(without it the window is the whole frame)")
    add_arguments(render, PersonWindowOptions)
    render.set_defaults(handler=_render)

    preview = subparsers.add_parser("label-preview", help="encode a label sequence as an mp4 with face boxes")
    preview.add_argument("--labels", required=True, help="labels .npy")
    preview.add_argument("--index", required=True, help="index .csv (face boxes)")
    preview.add_argument("--meta", required=True, help="meta.json of the frames the labels follow (for fps)")
    preview.add_argument("--output", required=True, help="mp4 to write")
    preview.set_defaults(handler=_label_preview)

    figure = subparsers.add_parser(
        "normalization-figure",
        help="picture a normalized source pose over a target frame at matching depth",
        description="Left: a target frame with the target's own stick figure. Right: the same frame with "
                    "the normalized source pose whose ankle depth matches best.")
    figure.add_argument("--normalized-poses", required=True, help="normalized source keypoints (.parquet)")
    figure.add_argument("--target-poses", required=True, help="target keypoints (.parquet)")
    figure.add_argument("--target-frames", required=True, help="target frames.npy")
    figure.add_argument("--output", required=True, help="png to write")
    figure.set_defaults(handler=_figure)


def _stats(args: argparse.Namespace) -> None:
    from edn.pose.keypoints import read_pose_table
    from edn.normalize.subject_stats import compute_stats, write_stats

    write_stats(args.output, compute_stats(read_pose_table(args.poses), args.subject,
                                                alpha=from_arguments(SubjectStatsOptions, args).alpha))


def _normalize(args: argparse.Namespace) -> None:
    from edn.background.camera import poses_replayed, poses_to_reference, read_camera
    from edn.core.errors import EdnError
    from edn.normalize.pose_transform import normalize_poses
    from edn.normalize.subject_stats import compute_stats, read_stats
    from edn.pose.keypoints import read_pose_table, write_pose_table

    view = from_arguments(CameraOptions, args).camera
    if (args.target_poses is None) != (args.target_camera is None):
        raise EdnError("--target-poses and --target-camera go together (the target's keypoint table and camera table)")
    if view == "replay" and args.target_camera is None:
        raise EdnError("--camera replay replays the target's camera path: give its camera table (--target-poses and "
                       "--target-camera, from edn background)")
    target = read_stats(args.target_stats)
    camera = None
    if args.target_camera is not None:
        camera = read_camera(args.target_camera, tuple(target.frame_size))
        if not camera.still:  # the target's statistics in its reference view, where the transfer is drawn
            target_poses = read_pose_table(args.target_poses)
            if target_poses.frame_count != len(camera):
                raise EdnError(f"camera table {args.target_camera!r}: {len(camera)} frames, the target's keypoint "
                               f"table {args.target_poses!r} has {target_poses.frame_count} (make both from the "
                               "same frames)")
            target = compute_stats(poses_to_reference(target_poses, camera), target.subject, alpha=target.alpha)
    normalized, _ = normalize_poses(read_pose_table(args.source_poses), read_stats(args.source_stats), target,
                                    recenter_x=from_arguments(NormalizationOptions, args).recenter_x)
    if view == "replay":
        normalized = poses_replayed(normalized, camera)
    write_pose_table(args.output, normalized)


def _render(args: argparse.Namespace) -> None:
    from edn.pose.keypoints import read_pose_table
    from edn.labels.person_window import window_size
    from edn.labels.render import write_labels
    from edn.normalize.subject_stats import read_stats

    options = from_arguments(PersonWindowOptions, args)
    poses = read_pose_table(args.poses)
    size = None
    if args.window_stats:
        stats = read_stats(args.window_stats)
        size = window_size(stats.h_close, poses.frame_size, height_factor=options.height_factor,
                           aspect=options.aspect)
    write_labels(poses, args.labels, args.index, window=size)


def _label_preview(args: argparse.Namespace) -> None:
    from edn.ingest.frames import read_meta
    from edn.labels.preview import write_label_preview

    write_label_preview(args.labels, args.index, args.output, fps=read_meta(args.meta).fps)


def _figure(args: argparse.Namespace) -> None:
    from edn.ingest.frames import load_frames
    from edn.pose.keypoints import read_pose_table
    from edn.labels.preview import write_normalization_figure

    write_normalization_figure(read_pose_table(args.normalized_poses), read_pose_table(args.target_poses),
                               load_frames(args.target_frames), args.output)

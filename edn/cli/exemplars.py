"""``edn pose-warp``: the ``pose_warp`` method, the target's own frames warped to requested poses over its plate."""

from __future__ import annotations

import argparse

from edn.core.options import ExemplarOptions, TrainingOptions, add_arguments, checked_argument, from_arguments


def register(subparsers: argparse._SubParsersAction) -> None:
    warp = subparsers.add_parser(
        "pose-warp", help="draw requested poses with the target's own training frames, warped part by part",
        description="For every requested pose, choose one of the target's training frames (never a held-out "
                    "one) by the paper's pose distance, kept over time until another is clearly closer; move its "
                    "person to the pose part by part (limb segments, torso, head, hands, feet, each by its own "
                    "transform) and composite it over the target's background plate. No learning: the pose_warp "
                    "method. Writes frames in the frame store format synthesis writes.")
    warp.add_argument("--frames", required=True, help="the target's frames.npy")
    warp.add_argument("--masks", required=True, help="the target's person masks .npy (from edn background)")
    warp.add_argument("--poses", required=True, help="the target's keypoint table (.parquet), frame t of its video")
    warp.add_argument("--plate", required=True, help="the target's background plate (.png)")
    warp.add_argument("--requested", required=True,
                      help="the poses to draw (.parquet): a source's normalized onto the target, or the target's own")
    warp.add_argument("--heldout-only", action="store_true",
                      help="draw only the requested table's held-out end (its last holdout fraction), for "
                           "evaluation with the target's own poses as --requested")
    add_arguments(warp, TrainingOptions, only=("holdout_fraction",))
    add_arguments(warp, ExemplarOptions)
    warp.add_argument("--output", required=True, help="frames .npy to write (uint8 [N, H, W, 3])")
    warp.add_argument("--validity", default=None,
                      help="validity masks .npy to write (uint8 [N, H, W], 0 where a requested part could not be "
                           "drawn; optional)")
    warp.add_argument("--exemplars", default=None, help="each frame's exemplar (.csv: frame, exemplar) to write "
                                                        "(optional; -1: nobody requested)")
    warp.set_defaults(handler=_pose_warp)


def _pose_warp(args: argparse.Namespace) -> None:
    import numpy as np

    from edn.background.plate import read_plate
    from edn.core.errors import EdnError
    from edn.core.options import first_heldout_frame
    from edn.exemplars.pose_warp import write_pose_warp
    from edn.ingest.frames import load_frames, load_masks
    from edn.pose.keypoints import read_pose_table

    options = from_arguments(ExemplarOptions, args)
    holdout_fraction = checked_argument(TrainingOptions, args, "holdout_fraction")
    frames, masks = load_frames(args.frames), load_masks(args.masks)
    count, height, width = frames.shape[:3]
    if masks.shape != frames.shape[:3]:
        raise EdnError(f"person masks {args.masks!r}: {list(masks.shape)} for frames {args.frames!r} "
                       f"{list(frames.shape)}")
    target, requested = read_pose_table(args.poses), read_pose_table(args.requested)
    if target.frame_count != count:
        raise EdnError(f"keypoint table {args.poses!r}: {target.frame_count} frames, {args.frames!r} has {count}")
    for name, path, poses in (("target poses", args.poses, target), ("requested poses", args.requested, requested)):
        if tuple(poses.frame_size) != (width, height):
            raise EdnError(f"{name} {path!r}: {poses.frame_size[0]}x{poses.frame_size[1]}, the target's frames are "
                           f"{width}x{height}")
    plate = read_plate(args.plate)
    if plate.shape != frames.shape[1:]:
        raise EdnError(f"background plate {args.plate!r}: {plate.shape[1]}x{plate.shape[0]}, the frames are "
                       f"{width}x{height}")
    first_heldout = first_heldout_frame(count, holdout_fraction)
    wanted = requested.keypoints
    if args.heldout_only:
        wanted = wanted[first_heldout_frame(requested.frame_count, holdout_fraction):]
    if len(wanted) == 0:
        raise EdnError(f"requested poses {args.requested!r}: no frame to draw")
    write_pose_warp(frames, masks, target.keypoints, np.asarray(wanted), plate, first_heldout, args.output,
                    options=options, validity_output=args.validity, exemplars_output=args.exemplars)

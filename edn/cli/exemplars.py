"""``edn pose-warp`` and ``edn training-exemplars``: the target's own frames warped part by part to other poses
over its plate, as the ``pose_warp`` method's frames or as the exemplars a generator conditioned on them trains with."""

from __future__ import annotations

import argparse

from edn.core.options import ExemplarOptions, TrainingOptions, add_arguments, checked_argument, from_arguments


def _add_target_arguments(parser: argparse.ArgumentParser) -> None:
    """The target's files both subcommands warp from: its frames, person masks, poses and plate."""
    parser.add_argument("--frames", required=True, help="the target's frames.npy")
    parser.add_argument("--masks", required=True, help="the target's person masks .npy (from edn background)")
    parser.add_argument("--poses", required=True, help="the target's keypoint table (.parquet), frame t of its video")
    parser.add_argument("--plate", required=True, help="the target's background plate (.png)")


def register(subparsers: argparse._SubParsersAction) -> None:
    warp = subparsers.add_parser(
        "pose-warp", help="draw requested poses with the target's own training frames, warped part by part",
        description="For every requested pose, choose one of the target's training frames (never a held-out "
                    "one) by the paper's pose distance, kept over time until another is clearly closer (with "
                    "--selection head the head its own frame, nearest by the head's joints; with parts each arm, "
                    "leg and the torso too); move its person to the pose part by part (limb segments, torso, head, hands, feet, each by its own "
                    "transform) and composite it over the target's background plate. No learning: the pose_warp "
                    "method. Writes frames in the frame store format synthesis writes.")
    _add_target_arguments(warp)
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
    warp.add_argument("--exemplars", default=None, help="each frame's exemplar (.csv: frame, exemplar, and with "
                                                        "--selection head or parts the torso's in exemplar and one "
                                                        "column exemplar_<group> per part group) to write "
                                                        "(optional; -1: nobody requested)")
    warp.set_defaults(handler=_pose_warp)

    training = subparsers.add_parser(
        "training-exemplars", help="warp, for every frame of the target, another training frame to its pose",
        description="For every frame of the target, choose the training frame nearest to its pose by the paper's "
                    "pose distance among those more than --exemplar-gap frames away (never a held-out frame; "
                    "--selection as edn pose-warp's), "
                    "warp its person to the frame's pose part by part and composite it over the plate: the "
                    "inputs of a generator trained with the exemplar option (edn train --exemplars).")
    _add_target_arguments(training)
    add_arguments(training, TrainingOptions, only=("holdout_fraction", "exemplar_gap"))
    add_arguments(training, ExemplarOptions)
    training.add_argument("--output", required=True, help="warped exemplars .npy to write (uint8 [T, H, W, 3])")
    training.add_argument("--validity", required=True,
                          help="their validity masks .npy to write (uint8 [T, H, W])")
    training.add_argument("--exemplars", default=None, help="each frame's exemplar (.csv: frame, exemplar; optional)")
    training.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    training.set_defaults(handler=_training_exemplars)


def _read_target(args: argparse.Namespace, poses_name: str = "keypoint table", frames_name: str = "the frames"):
    """The target's frames, person masks, keypoint table and plate, each checked against the frames (one line)."""
    from edn.background.plate import read_plate
    from edn.core.errors import EdnError
    from edn.ingest.frames import load_frames, load_masks
    from edn.pose.keypoints import read_pose_table

    frames, masks = load_frames(args.frames), load_masks(args.masks)
    count, height, width = frames.shape[:3]
    if masks.shape != frames.shape[:3]:
        raise EdnError(f"person masks {args.masks!r}: {list(masks.shape)} for frames {args.frames!r} "
                       f"{list(frames.shape)}")
    poses = read_pose_table(args.poses)
    if poses.frame_count != count:
        raise EdnError(f"keypoint table {args.poses!r}: {poses.frame_count} frames, {args.frames!r} has {count}")
    if tuple(poses.frame_size) != (width, height):
        raise EdnError(f"{poses_name} {args.poses!r}: {poses.frame_size[0]}x{poses.frame_size[1]}, {frames_name} "
                       f"are {width}x{height}")
    plate = read_plate(args.plate)
    if plate.shape != frames.shape[1:]:
        raise EdnError(f"background plate {args.plate!r}: {plate.shape[1]}x{plate.shape[0]}, the frames are "
                       f"{width}x{height}")
    return frames, masks, poses, plate


def _pose_warp(args: argparse.Namespace) -> None:
    import numpy as np

    from edn.core.errors import EdnError
    from edn.core.options import first_heldout_frame
    from edn.exemplars.pose_warp import write_pose_warp
    from edn.pose.keypoints import read_pose_table

    options = from_arguments(ExemplarOptions, args)
    holdout_fraction = checked_argument(TrainingOptions, args, "holdout_fraction")
    frames, masks, target, plate = _read_target(args, "target poses", "the target's frames")
    count, height, width = frames.shape[:3]
    requested = read_pose_table(args.requested)
    if tuple(requested.frame_size) != (width, height):
        raise EdnError(f"requested poses {args.requested!r}: {requested.frame_size[0]}x{requested.frame_size[1]}, "
                       f"the target's frames are {width}x{height}")
    first_heldout = first_heldout_frame(count, holdout_fraction)
    wanted = requested.keypoints
    if args.heldout_only:
        wanted = wanted[first_heldout_frame(requested.frame_count, holdout_fraction):]
    if len(wanted) == 0:
        raise EdnError(f"requested poses {args.requested!r}: no frame to draw")
    write_pose_warp(frames, masks, target.keypoints, np.asarray(wanted), plate, first_heldout, args.output,
                    options=options, validity_output=args.validity, exemplars_output=args.exemplars)


def _training_exemplars(args: argparse.Namespace) -> None:
    from edn.core.options import first_heldout_frame
    from edn.exemplars.for_training import write_training_exemplars

    options = from_arguments(ExemplarOptions, args)
    holdout_fraction = checked_argument(TrainingOptions, args, "holdout_fraction")
    gap = checked_argument(TrainingOptions, args, "exemplar_gap")
    frames, masks, poses, plate = _read_target(args)
    write_training_exemplars(frames, masks, poses.keypoints, plate, first_heldout_frame(len(frames), holdout_fraction),
                             gap, args.output, args.validity, options=options, exemplars_output=args.exemplars,
                             progress=args.progress)

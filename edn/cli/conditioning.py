"""``edn training-exemplars``: the warped exemplars a generator conditioned on them trains with."""

from __future__ import annotations

import argparse

from edn.core.options import ExemplarOptions, TrainingOptions, add_arguments, checked_argument, from_arguments


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "training-exemplars", help="warp, for every frame of the target, another training frame to its pose",
        description="For every frame of the target, choose the training frame nearest to its pose by the paper's "
                    "pose distance among those more than --exemplar-gap frames away (never a held-out frame), "
                    "warp its person to the frame's pose part by part and composite it over the plate: the "
                    "inputs of a generator trained with the exemplar option (edn train --exemplars).")
    parser.add_argument("--frames", required=True, help="the target's frames.npy")
    parser.add_argument("--masks", required=True, help="the target's person masks .npy (from edn background)")
    parser.add_argument("--poses", required=True, help="the target's keypoint table (.parquet), frame t of its video")
    parser.add_argument("--plate", required=True, help="the target's background plate (.png)")
    add_arguments(parser, TrainingOptions, only=("holdout_fraction", "exemplar_gap"))
    add_arguments(parser, ExemplarOptions)
    parser.add_argument("--output", required=True, help="warped exemplars .npy to write (uint8 [T, H, W, 3])")
    parser.add_argument("--validity", required=True, help="their validity masks .npy to write (uint8 [T, H, W])")
    parser.add_argument("--exemplars", default=None, help="each frame's exemplar (.csv: frame, exemplar; optional)")
    parser.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    parser.set_defaults(handler=_training_exemplars)


def _training_exemplars(args: argparse.Namespace) -> None:
    from edn.background.plate import read_plate
    from edn.core.errors import EdnError
    from edn.core.options import first_heldout_frame
    from edn.exemplars.for_training import write_training_exemplars
    from edn.ingest.frames import load_frames, load_masks
    from edn.pose.keypoints import read_pose_table

    options = from_arguments(ExemplarOptions, args)
    holdout_fraction = checked_argument(TrainingOptions, args, "holdout_fraction")
    gap = checked_argument(TrainingOptions, args, "exemplar_gap")
    frames, masks = load_frames(args.frames), load_masks(args.masks)
    count, height, width = frames.shape[:3]
    if masks.shape != frames.shape[:3]:
        raise EdnError(f"person masks {args.masks!r}: {list(masks.shape)} for frames {args.frames!r} "
                       f"{list(frames.shape)}")
    poses = read_pose_table(args.poses)
    if poses.frame_count != count:
        raise EdnError(f"keypoint table {args.poses!r}: {poses.frame_count} frames, {args.frames!r} has {count}")
    if tuple(poses.frame_size) != (width, height):
        raise EdnError(f"keypoint table {args.poses!r}: {poses.frame_size[0]}x{poses.frame_size[1]}, the frames are "
                       f"{width}x{height}")
    plate = read_plate(args.plate)
    if plate.shape != frames.shape[1:]:
        raise EdnError(f"background plate {args.plate!r}: {plate.shape[1]}x{plate.shape[0]}, the frames are "
                       f"{width}x{height}")
    write_training_exemplars(frames, masks, poses.keypoints, plate, first_heldout_frame(count, holdout_fraction), gap,
                             args.output, args.validity, options=options, exemplars_output=args.exemplars,
                             progress=args.progress)

"""``edn pose-warp`` and ``edn training-exemplars``: the target's own frames warped part by part to other poses
over its plate, as the ``pose_warp`` method's frames or as the exemplars a generator conditioned on them trains with.

A target whose camera moves (``--mosaic``, ``--camera`` and ``--plate-report`` from ``edn background``, the
report saying the camera moved): an output frame that stands for target frame t (a held-out frame with
``--heldout-only``, every frame of ``edn training-exemplars``, output frame i of a transfer whose poses replay the
target's camera) is drawn over the plate in camera t, as the frame was filmed; a transfer's poses in the
reference view are drawn over the reference view's plate."""

from __future__ import annotations

import argparse

from edn.core.options import REQUESTED_POSES_ONLY, ExemplarOptions, TrainingOptions, add_arguments, checked_argument, \
    from_arguments


def _add_target_arguments(parser: argparse.ArgumentParser) -> None:
    """The target's files both subcommands warp from: its frames, person masks, poses and plate."""
    parser.add_argument("--frames", required=True, help="the target's frames.npy")
    parser.add_argument("--masks", required=True, help="the target's person masks .npy (from edn background)")
    parser.add_argument("--poses", required=True, help="the target's keypoint table (.parquet), frame t of its video")
    parser.add_argument("--plate", required=True, help="the target's background plate (.png)")
    parser.add_argument("--mosaic", default=None,
                        help="with --camera and --plate-report, a registered target's mosaic (edn background "
                             "--mosaic): when its camera moves, an output frame that stands for target frame t is "
                             "drawn over the plate as frame t's own camera saw it")
    parser.add_argument("--camera", default=None, help="the target's camera table (edn background --camera)")
    parser.add_argument("--plate-report", default=None, help="the target's plate report (edn background --report)")


def register(subparsers: argparse._SubParsersAction) -> None:
    warp = subparsers.add_parser(
        "pose-warp", help="draw requested poses with the target's own training frames, warped part by part",
        description="For every requested pose, choose one of the target's training frames (never a held-out "
                    "one) by the paper's pose distance, kept over time until another is clearly closer (with "
                    "--selection head the head its own frame, nearest by the head's joints; with parts each arm, "
                    "leg and the torso too); move its person to the pose part by part (limb segments, torso, head, hands, feet, each by its own "
                    "transform) and composite it over the target's background plate (with --heldout-only and a camera "
                    "that moves, the plate in each held-out frame's own camera). No learning: the pose_warp "
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
        description="For every frame of the target, choose the training frames nearest to its pose by the paper's "
                    "pose distance among those more than --exemplar-gap frames away (never a held-out frame; "
                    "--exemplar-choices of them, each more than the gap from the others; --selection as edn "
                    "pose-warp's), "
                    "warp its person to the frame's pose part by part and composite it over the plate (the plate "
                    "in the frame's own camera when the camera moves): the "
                    "inputs of a generator trained with the exemplar option (edn train --exemplars).")
    _add_target_arguments(training)
    add_arguments(training, TrainingOptions, only=("holdout_fraction", "exemplar_gap", "exemplar_choices"))
    add_arguments(training, ExemplarOptions,
                  only=[name for name in ExemplarOptions.__dataclass_fields__ if name not in REQUESTED_POSES_ONLY])
    training.add_argument("--output", required=True,
                          help="warped exemplars .npy to write (uint8 [C x T, H, W, 3], row c x T + t: choice c of "
                               "frame t)")
    training.add_argument("--validity", required=True,
                          help="their validity masks .npy to write (uint8 [C x T, H, W])")
    training.add_argument("--exemplars", default=None,
                          help="each frame's exemplars (.csv: frame, choice, exemplar; optional)")
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


def _camera_plates(args: argparse.Namespace, frames):
    """The plate in each target frame's camera (:class:`edn.background.camera.FramePlates`) when
    --mosaic, --camera and --plate-report say that the target's camera moves; None for a still camera or
    without them. Each file is checked against the frames (one line naming it)."""
    import logging

    from edn.background.camera import camera_moves, read_frame_plates
    from edn.background.plate import read_plate_report
    from edn.core.errors import EdnError

    given = [args.mosaic, args.camera, args.plate_report]
    if not any(given):
        return None
    if not all(given):
        raise EdnError("--mosaic, --camera and --plate-report go together (the outputs of edn background)")
    count, height, width = frames.shape[:3]
    report = read_plate_report(args.plate_report)
    if tuple(report.frame_size) != (width, height):
        raise EdnError(f"background report {args.plate_report!r}: made for {report.frame_size[0]}x"
                       f"{report.frame_size[1]} frames, the frames are {width}x{height}")
    if not camera_moves(report):
        return None
    plates = read_frame_plates(args.mosaic, args.camera, tuple(report.reference_origin), (width, height),
                               report.content_box)
    expected = tuple(report.mosaic_size or report.frame_size)
    if tuple(plates.mosaic.shape[1::-1]) != expected:
        raise EdnError(f"background mosaic {args.mosaic!r}: {plates.mosaic.shape[1]}x{plates.mosaic.shape[0]}, "
                       f"its report {args.plate_report!r} says {expected[0]}x{expected[1]}")
    if len(plates.camera) != count:
        raise EdnError(f"camera table {args.camera!r}: {len(plates.camera)} frames, the target has {count} "
                       "(made for another video?)")
    logging.getLogger(__name__).info("target %s: the camera moves (%s); frames are drawn over the plate in their "
                                     "own camera", report.subject, report.motion_model)
    return plates


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
    first_wanted = first_heldout_frame(requested.frame_count, holdout_fraction) if args.heldout_only else 0
    wanted = wanted[first_wanted:]
    if len(wanted) == 0:
        raise EdnError(f"requested poses {args.requested!r}: no frame to draw")
    camera_plates = _camera_plates(args, frames)
    plates = plate
    if camera_plates is not None and args.heldout_only:
        # The target's own held-out poses: output row i is target frame first_wanted + i, filmed with its camera.
        if requested.frame_count != count:
            raise EdnError(f"requested poses {args.requested!r}: {requested.frame_count} frames, the target has "
                           f"{count}: with a camera that moves, --heldout-only draws the target's own poses, each "
                           "over the plate in its frame's camera")
        plates = lambda row: camera_plates(first_wanted + row)  # noqa: E731
    elif camera_plates is not None and requested.extra.get("camera") == "replay":
        plates = camera_plates  # poses replaying the target's camera: output frame i in frame (i mod T)'s camera
    write_pose_warp(frames, masks, target.keypoints, np.asarray(wanted), plates, first_heldout, args.output,
                    options=options, validity_output=args.validity, exemplars_output=args.exemplars)


def _training_exemplars(args: argparse.Namespace) -> None:
    from edn.core.options import first_heldout_frame
    from edn.exemplars.for_training import write_training_exemplars

    options = from_arguments(ExemplarOptions, args)
    holdout_fraction = checked_argument(TrainingOptions, args, "holdout_fraction")
    gap = checked_argument(TrainingOptions, args, "exemplar_gap")
    choices = checked_argument(TrainingOptions, args, "exemplar_choices")
    frames, masks, poses, plate = _read_target(args)
    camera_plates = _camera_plates(args, frames)  # frame t over the plate in its own camera when it moves
    plates = plate if camera_plates is None else camera_plates
    write_training_exemplars(frames, masks, poses.keypoints, plates, first_heldout_frame(len(frames), holdout_fraction),
                             gap, args.output, args.validity, options=options, choices=choices,
                             exemplars_output=args.exemplars, progress=args.progress)

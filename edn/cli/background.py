"""``edn background``: a target's background plate and the person's masks."""

from __future__ import annotations

import argparse

from edn.core.options import BackgroundOptions, add_arguments, from_arguments


def register(subparsers: argparse._SubParsersAction) -> None:
    background = subparsers.add_parser(
        "background", help="make a target's background plate: its frames with the person left out",
        description="Segment the person in every frame (MediaPipe Holistic), leave them (and their stick "
                    "figure, grown) out, and take the per-pixel temporal median of the rest; fill what the "
                    "person always covers; measure whether the camera is static. Writes the plate and its "
                    "coverage (PNG), a report (JSON) and the person's masks (.npy), which the composite method "
                    "trains with.")
    background.add_argument("--subject", required=True, help="the target's name (for messages and the report)")
    background.add_argument("--frames", required=True, help="the target's frames.npy")
    background.add_argument("--labels", required=True, help="the target's labels.npy (stick figures)")
    background.add_argument("--plate", required=True, help="plate .png to write")
    background.add_argument("--coverage", required=True,
                            help="coverage .png to write: the share of frames that saw each pixel (black: filled)")
    background.add_argument("--report", required=True, help="report .json to write (camera residual, static)")
    background.add_argument("--masks", required=True, help="person masks .npy to write (uint8 [N, H, W])")
    background.add_argument("--workers", type=int, default=2, help="MediaPipe processes (default 2)")
    add_arguments(background, BackgroundOptions)
    background.set_defaults(handler=_background)


def _background(args: argparse.Namespace) -> None:
    from edn.background.plate import make_plate, write_plate
    from edn.core.errors import EdnError
    from edn.ingest.frames import load_frames, load_masks
    from edn.labels.label_store import load_labels
    from edn.pose.mediapipe_holistic import segment_mediapipe

    options = from_arguments(BackgroundOptions, args)
    frames, labels = load_frames(args.frames), load_labels(args.labels)
    if labels.shape != frames.shape:
        raise EdnError(f"labels {args.labels!r}: {list(labels.shape)} for frames {args.frames!r} {list(frames.shape)}")
    segment_mediapipe(args.frames, args.masks, workers=args.workers)
    plate, coverage, report = make_plate(frames, load_masks(args.masks), labels, subject=args.subject,
                                         **options.to_dict())
    write_plate(plate, coverage, report, plate_out=args.plate, coverage_out=args.coverage, report_out=args.report)

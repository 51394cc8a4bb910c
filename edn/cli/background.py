"""``edn background``: a target's background plate and the person's masks."""

from __future__ import annotations

import argparse

from edn.core.options import BackgroundOptions, add_arguments, from_arguments


def register(subparsers: argparse._SubParsersAction) -> None:
    background = subparsers.add_parser(
        "background", help="make a target's background plate: its frames with the person left out",
        description="Segment the person in every frame (MediaPipe Holistic), leave them (and their stick "
                    "figure, grown) out, register every frame to one reference view from its background, and "
                    "take the per-pixel temporal median of the rest in that view; fill what the person always "
                    "covers; measure whether the background holds still once registered. Writes the plate (the "
                    "reference view), the mosaic of everything the camera saw and its coverage (PNG), the camera "
                    "table (CSV), a report (JSON) and the person's masks (.npy), which the composite method "
                    "trains with.")
    background.add_argument("--subject", required=True, help="the target's name (for messages and the report)")
    background.add_argument("--frames", required=True, help="the target's frames.npy")
    background.add_argument("--labels", required=True, help="the target's labels.npy (stick figures)")
    background.add_argument("--plate", required=True, help="plate .png to write")
    background.add_argument("--coverage", required=True,
                            help="coverage .png to write: the share of frames that saw each pixel of the mosaic "
                                 "(black: filled, or never seen)")
    background.add_argument("--mosaic", help="mosaic .png to write: the reference view grown to hold what a moving "
                                             "camera saw (the plate itself for a still camera)")
    background.add_argument("--camera", help="camera table .csv to write: each frame's transform to the reference "
                                             "view, brightness gain and residual before and after registration")
    background.add_argument("--report", required=True,
                            help="report .json to write (residuals before and after registration, method)")
    background.add_argument("--masks", required=True, help="person masks .npy to write (uint8 [N, H, W])")
    background.add_argument("--workers", type=int, default=2, help="MediaPipe processes (default 2)")
    add_arguments(background, BackgroundOptions)
    background.set_defaults(handler=_background)


def _background(args: argparse.Namespace) -> None:
    from edn.background.plate import build_plate, write_plate
    from edn.core.errors import EdnError
    from edn.ingest.frames import load_frames, load_masks
    from edn.labels.label_store import load_labels
    from edn.pose.mediapipe_holistic import segment_mediapipe

    options = from_arguments(BackgroundOptions, args)
    frames, labels = load_frames(args.frames), load_labels(args.labels)
    if labels.shape != frames.shape:
        raise EdnError(f"labels {args.labels!r}: {list(labels.shape)} for frames {args.frames!r} {list(frames.shape)}")
    segment_mediapipe(args.frames, args.masks, workers=args.workers)
    made = build_plate(frames, load_masks(args.masks), labels, subject=args.subject, **options.to_dict())
    write_plate(made, plate_out=args.plate, coverage_out=args.coverage, report_out=args.report,
                mosaic_out=args.mosaic, camera_out=args.camera)

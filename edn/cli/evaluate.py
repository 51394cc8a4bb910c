"""``edn evaluate``, ``edn eval-table``: the paper's held-out reconstruction evaluation."""

from __future__ import annotations

import argparse

from edn.core.options import (ExemplarFaceOptions, RuntimeOptions, ThreadOptions, TrainingOptions, add_arguments,
                              checked_argument, first_heldout_frame, from_arguments)


def register(subparsers: argparse._SubParsersAction) -> None:
    evaluate = subparsers.add_parser(
        "evaluate", help="reconstruct a target's held-out frames with one method and score them",
        description="Run a method (a baseline, or trained models) on the held-out end of the "
                    "target's video, from its own poses, and compare with the real frames: SSIM and LPIPS "
                    "variants on the frame, body and face, temporal stability, pose fidelity.")
    evaluate.add_argument("--method", required=True, help="name of the method in the table (e.g. fg, nearest_neighbour)")
    evaluate.add_argument("--frames", required=True, help="the target's frames.npy")
    evaluate.add_argument("--poses", required=True, help="the target's smoothed keypoint table (.parquet)")
    evaluate.add_argument("--labels", required=True, help="the target's labels.npy")
    evaluate.add_argument("--index", required=True, help="the target's labels' index.csv")
    add_arguments(evaluate, TrainingOptions, only=("holdout_fraction",))
    evaluate.add_argument("--generator", default=None,
                          help="final global or local checkpoint (omit for the nearest-neighbour baseline)")
    evaluate.add_argument("--face", default=None, help="final face checkpoint (optional)")
    evaluate.add_argument("--plate", default=None,
                          help="the target's background plate (.png): what a compositing generator draws over, and "
                               "the background-only baseline")
    evaluate.add_argument("--mosaic", default=None,
                          help="with --camera and --plate-report, a registered target's mosaic (edn background "
                               "--mosaic): a moving camera's held-out frames are drawn over the plate as each "
                               "frame's own camera saw it, and the baselines follow that camera")
    evaluate.add_argument("--camera", default=None, help="the target's camera table (edn background --camera)")
    evaluate.add_argument("--plate-report", default=None, help="the target's plate report (edn background --report)")
    evaluate.add_argument("--baseline", choices=("nearest_neighbour", "background", "pose_warp"),
                          default="nearest_neighbour",
                          help="without --generator: the training frame of the nearest pose (the paper's baseline), "
                               "the background plate with nobody drawn (needs --plate), or the target's training "
                               "frames warped to the held-out poses (needs --exemplars from edn pose-warp "
                               "--heldout-only)")
    evaluate.add_argument("--exemplars", default=None,
                          help="the target's training frames warped to its held-out poses, one per held-out frame "
                               "(edn pose-warp --heldout-only, choosing them as a transfer does): the pose_warp "
                               "baseline's frames, and what a generator trained with the exemplar option corrects")
    evaluate.add_argument("--exemplar-validity", default=None,
                          help="their validity masks (edn pose-warp --validity), for a generator")
    add_arguments(evaluate, ExemplarFaceOptions)
    add_arguments(evaluate, RuntimeOptions)
    add_arguments(evaluate, ThreadOptions)
    evaluate.add_argument("--no-pose-fidelity", dest="pose_fidelity", action="store_false",
                          help="skip detecting poses on the generated frames")
    evaluate.add_argument("--generated", required=True, help="held-out frames the method made (.npy) to write")
    evaluate.add_argument("--output", required=True, help="metrics .csv to write")
    evaluate.set_defaults(handler=_evaluate)

    table = subparsers.add_parser(
        "eval-table", help="gather methods' metrics into one table (CSV and Markdown) and a picture of samples",
        description="Merge per-method metric files into one long CSV, a wide Markdown table like the paper's, "
                    "and a PNG of held-out frames: real, then each method.")
    table.add_argument("--metrics", nargs="+", required=True, help="per-method metrics .csv files")
    table.add_argument("--generated", nargs="+", required=True, help="per-method held-out frames .npy, same order")
    table.add_argument("--frames", required=True, help="the target's frames.npy (the real frames)")
    add_arguments(table, TrainingOptions, only=("holdout_fraction",))
    table.add_argument("--output-csv", required=True)
    table.add_argument("--output-markdown", required=True)
    table.add_argument("--output-samples", required=True, help="PNG of sample frames")
    table.set_defaults(handler=_table)

    camera = subparsers.add_parser(
        "camera-summary", help="a target's camera for its evaluation page: registration and the method that drew it",
        description="From the plate stage's report and camera table: a Markdown table of the motion model, the "
                    "residual before and after registration against the limit, whether the background moves and "
                    "which method drew the target (and why), and a PNG of each frame's residual before and after.")
    camera.add_argument("--plate-report", required=True, help="the target's plate report (results/background/T.json)")
    camera.add_argument("--camera", required=True, help="the target's camera table (results/background/T.camera.csv)")
    add_arguments(camera, TrainingOptions, only=("method",))
    camera.add_argument("--output-markdown", required=True, help="Markdown table to write")
    camera.add_argument("--output-plot", required=True, help="PNG of the residual per frame to write")
    camera.set_defaults(handler=_camera_summary)

    page = subparsers.add_parser(
        "html-page", help="one self-contained HTML page of videos, images and tables",
        description="Embed videos, images and tables (CSV or Markdown pipe tables) in one HTML file that opens "
                    "anywhere, including inside Snakemake's report.")
    page.add_argument("--title", required=True)
    page.add_argument("--description", default="")
    page.add_argument("--item", action="append", required=True, metavar="KIND=PATH",
                      help="video=..., image=..., table=... or text=...; shown in the order given")
    page.add_argument("--output", required=True, help="html to write")
    page.set_defaults(handler=_html_page)

    losses = subparsers.add_parser("plot-losses", help="plot a training run's loss terms (PNG)")
    losses.add_argument("--losses", required=True, help="losses.csv of a run directory")
    losses.add_argument("--title", default="training losses", help="plot title")
    losses.add_argument("--output", required=True, help="png to write")
    losses.set_defaults(handler=_plot_losses)


def _evaluate(args: argparse.Namespace) -> None:
    import numpy as np

    from edn.background.plate import read_plate
    from edn.core.errors import EdnError
    from edn.evaluation.evaluate import HeldOutClip, nearest_neighbour_frames, score, write_metrics
    from edn.ingest.frames import create_image_store, load_frames
    from edn.pose.keypoints import read_pose_table
    from edn.labels.label_store import load_labels, read_label_index
    from edn.core.runtime import set_threads

    set_threads(from_arguments(ThreadOptions, args).threads)
    holdout_fraction = checked_argument(TrainingOptions, args, "holdout_fraction")
    runtime_options = from_arguments(RuntimeOptions, args)
    frames = load_frames(args.frames)
    poses = read_pose_table(args.poses)
    index = read_label_index(args.index)
    first = first_heldout_frame(len(frames), holdout_fraction)
    clip = HeldOutClip.from_target(frames, poses, index, first)
    height, width = frames.shape[1:3]
    view = _target_view(args, frames)
    with create_image_store(args.generated, len(clip.real), (width, height)) as generated:
        plate = read_plate(args.plate) if args.plate else None
        if args.generator is None and args.face is not None:
            raise EdnError("evaluate: --face needs --generator")
        if args.generator is None and args.baseline == "background":
            if plate is None:
                raise EdnError("evaluate: the background baseline needs --plate")
            if plate.shape != frames.shape[1:]:
                raise EdnError(f"background plate {args.plate!r}: {plate.shape[1]}x{plate.shape[0]}, the frames are "
                               f"{width}x{height}")
            if view is None:
                generated[...] = plate[None]
            else:  # the plate as each held-out frame's camera saw it
                for i, t in enumerate(range(first, len(frames))):
                    generated[i] = view.plate(t)
        elif args.generator is None and args.baseline == "pose_warp":
            generated[...] = _pose_warp_frames(args.exemplars, len(clip.real), (height, width))
        elif args.generator is None and view is not None:
            from edn.evaluation.registered import registered_nearest_neighbours

            generated[...] = registered_nearest_neighbours(poses, frames, first, view)[0]
        elif args.generator is None:
            generated[...] = nearest_neighbour_frames(poses, frames, first)
        else:
            from edn.models.generation import load_frame_generator
            from edn.core.runtime import choose_runtime
            from edn.transfer.synthesize import kept_faces, synthesize_sequence

            runtime = choose_runtime(runtime_options)
            models = load_frame_generator(args.generator, args.face, runtime.device, plate=plate)
            labels, exemplars = load_labels(args.labels), None
            if models.exemplar:
                from edn.transfer.synthesize import load_exemplars

                exemplars = load_exemplars(args.exemplars, args.exemplar_validity, labels[first:], args.generator)
            # A camera that moves: each held-out frame drawn over the plate in its own camera, as in training.
            plates = None if view is None or models.plate is None else (lambda row: view.plate(first + row))
            faces = kept_faces(models, clip.poses, len(clip.real), source=args.poses,
                               enabled=from_arguments(ExemplarFaceOptions, args).exemplar_face)
            synthesize_sequence(models, labels[first:], clip.index, generated, runtime, exemplars=exemplars,
                                plates=plates, faces=faces)
        # The job's threads bound the MediaPipe processes too (two at most: the clip is short).
        rows = score(args.method, np.asarray(generated), clip, with_pose_fidelity=args.pose_fidelity,
                     pose_workers=min(2, args.threads or 2))
    write_metrics(args.output, rows)


def _target_view(args: argparse.Namespace, frames):
    """The target's registered view when its camera moves (None for a still camera or without the files)."""
    import logging

    from edn.core.errors import EdnError

    given = [args.mosaic, args.camera, args.plate_report]
    if not any(given):
        return None
    if not all(given):
        raise EdnError("evaluate: --mosaic, --camera and --plate-report go together (the outputs of edn background)")
    from edn.evaluation.registered import read_target_view

    view = read_target_view(args.mosaic, args.camera, args.plate_report, frames)
    if view.still:
        return None
    logging.getLogger(__name__).info("%s: the camera moves; the held-out frames are drawn and the baselines taken "
                                     "in each frame's own camera", args.method)
    return view


def _pose_warp_frames(path: str | None, count: int, size: tuple[int, int]):
    """The pose_warp baseline's frames (edn pose-warp --heldout-only): one per held-out frame, the frames' size."""
    from edn.core.errors import EdnError
    from edn.ingest.frames import load_frames

    if path is None:
        raise EdnError("evaluate: the pose_warp baseline needs --exemplars (edn pose-warp --heldout-only's frames)")
    warped = load_frames(path)
    if len(warped) != count:
        raise EdnError(f"pose-warp frames {path!r}: {len(warped)} frames, the target has {count} held-out frames "
                       "(made with another --holdout-fraction or for another target?)")
    if tuple(warped.shape[1:3]) != size:
        raise EdnError(f"pose-warp frames {path!r}: {warped.shape[2]}x{warped.shape[1]}, the frames are "
                       f"{size[1]}x{size[0]}")
    return warped


def _table(args: argparse.Namespace) -> None:
    from edn.core.errors import EdnError
    from edn.evaluation.report import write_eval_table

    if len(args.metrics) != len(args.generated):
        raise EdnError(f"eval-table: {len(args.metrics)} metrics files but {len(args.generated)} generated files")
    write_eval_table(args.metrics, args.generated, args.frames,
                     checked_argument(TrainingOptions, args, "holdout_fraction"),
                     csv_out=args.output_csv, markdown_out=args.output_markdown, samples_out=args.output_samples)


def _camera_summary(args: argparse.Namespace) -> None:
    from edn.evaluation.report import write_camera_summary

    write_camera_summary(args.plate_report, args.camera, checked_argument(TrainingOptions, args, "method"),
                         markdown_out=args.output_markdown, plot_out=args.output_plot)


def _plot_losses(args: argparse.Namespace) -> None:
    from edn.core.plots import plot_losses

    plot_losses(args.losses, args.output, title=args.title)


def _html_page(args: argparse.Namespace) -> None:
    from edn.core.html_page import Item, write_page

    write_page(args.output, args.title, [Item.parse(item) for item in args.item], description=args.description)

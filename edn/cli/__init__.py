"""The ``edn`` command line: one subcommand per pipeline stage.

Each module listed in COMMAND_MODULES adds its subcommands through a
``register(subparsers)`` function and must import nothing heavy at module level,
so that ``edn --help`` answers at once. Side effects (logging, signal handling,
seeding, thread counts, device choice) happen here and in the handlers, never in
library code.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import signal
import sys
from collections.abc import Sequence

from edn import __version__
from edn.core.errors import EdnError

COMMAND_MODULES = (
    "edn.cli.background",
    "edn.cli.detector",
    "edn.cli.evaluate",
    "edn.cli.ingest",
    "edn.cli.normalize",
    "edn.cli.pose",
    "edn.cli.results",
    "edn.cli.transfer",
    "edn.cli.train",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="edn",
        description="Everybody Dance Now as a pipeline: every stage of the Snakemake workflow, runnable by hand.",
    )
    parser.add_argument("--version", action="version", version=f"edn {__version__}")
    parser.add_argument("--log", metavar="FILE", help="also write log messages (and any error) to FILE")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def _configure_logging(log_file: str | None, verbose: bool) -> None:
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_file:
        from pathlib import Path

        Path(log_file).parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(log_file, mode="w"))
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, handlers=handlers,
                        format="%(asctime)s %(name)s %(levelname)s: %(message)s", force=True)
    # Libraries that log at INFO (or chatter at DEBUG) stay quiet unless asked.
    for noisy in ("matplotlib", "PIL", "h5py", "urllib3", "numexpr"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _terminate(signum: int, frame: object) -> None:
    # Turn SIGTERM (Snakemake, SLURM, kill) into SystemExit so that context
    # managers remove partial outputs and training saves nothing half-written.
    raise SystemExit(128 + signum)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _configure_logging(args.log, args.verbose)
    signal.signal(signal.SIGTERM, _terminate)
    try:
        args.handler(args)
    except EdnError as error:
        message = f"edn {args.command}: error: {error}"
        logging.getLogger("edn").debug("failed", exc_info=True)
        print(message, file=sys.stderr)
        if args.log:
            with open(args.log, "a") as log:
                log.write(message + "\n")
        return 1
    except KeyboardInterrupt:
        print(f"edn {args.command}: interrupted", file=sys.stderr)
        return 130
    return 0

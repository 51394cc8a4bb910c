"""The ``edn`` command line: one subcommand per pipeline stage.

Each module listed in COMMAND_MODULES adds its subcommands through a
``register(subparsers)`` function and must import nothing heavy at module level,
so that ``edn --help`` answers at once. Side effects (logging, signal handling,
seeding, thread counts, device choice) happen here and in the handlers, never in
library code.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import importlib
import logging
import os
import signal
import sys
from collections.abc import Sequence

from edn import __version__
from edn.cli import guard
from edn.core.errors import EdnError

COMMAND_MODULES = (
    "edn.cli.background",
    "edn.cli.detector",
    "edn.cli.evaluate",
    "edn.cli.exemplars",
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


class _LogFile(logging.FileHandler):
    """The ``--log`` file: a write that fails (a full disk) stops the copy, never the stage.

    logging's own handler prints a traceback for every record it cannot write; the
    messages still reach stderr, and the stage's error says what went wrong.
    """

    failed = False

    def handleError(self, record: logging.LogRecord) -> None:
        self.failed = True
        with contextlib.suppress(OSError, ValueError):
            self.close()

    def emit(self, record: logging.LogRecord) -> None:
        if not self.failed:
            super().emit(record)


def _configure_logging(log_file: str | None, verbose: bool) -> None:
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_file:
        from pathlib import Path

        Path(log_file).parent.mkdir(parents=True, exist_ok=True)
        handlers.append(_LogFile(log_file, mode="w"))
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
    guard.exit_with_snakemake()
    try:  # before the log file is opened (and emptied): it may be the other copy's
        guard.hold_outputs(parser, args)
    except EdnError as error:
        print(f"edn {args.command}: error: {error}", file=sys.stderr)
        return 1
    try:
        _configure_logging(args.log, args.verbose)
    except OSError as error:
        print(f"edn {args.command}: error: log file {args.log!r}: cannot be written "
              f"({error.strerror or error})", file=sys.stderr)
        return 1
    signal.signal(signal.SIGTERM, _terminate)
    try:
        args.handler(args)
    except EdnError as error:
        return _report(args, error)
    except OSError as error:
        problem = _environment_error(error)
        if problem is None:
            raise
        return _report(args, problem)
    except KeyboardInterrupt:
        print(f"edn {args.command}: interrupted", file=sys.stderr)
        return 130
    return 0


def _report(args: argparse.Namespace, error: EdnError) -> int:
    """Print the one error line (and add it to the log file, when it can still be written)."""
    message = f"edn {args.command}: error: {error}"
    logging.getLogger("edn").debug("failed", exc_info=True)
    print(message, file=sys.stderr)
    if args.log:
        with contextlib.suppress(OSError), open(args.log, "a") as log:
            log.write(message + "\n")
    return 1


#: OSErrors that are the machine's state, not a bug: no room, a read-only or foreign folder.
_ENVIRONMENT_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EACCES, errno.EPERM)


def _environment_error(error: OSError) -> EdnError | None:
    """A one-line EdnError for a write or open the machine refused (one edn.core.atomic did not catch)."""
    if error.errno not in _ENVIRONMENT_ERRNOS:
        return None
    where = f"file {os.fsdecode(error.filename)!r}" if error.filename is not None else "a file"
    advice = ("free some space and rerun" if error.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
              else "check its permissions and its file system")
    return EdnError(f"{where}: {error.strerror or error}; {advice}")

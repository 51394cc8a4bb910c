"""Process guards of the ``edn`` command: it never outlives the Snakemake that started it,
and two copies of one stage never write the same outputs at once.

Snakemake runs a job as ``bash -c "... python -m edn ..."`` and does not stop its jobs when
it is killed with SIGKILL (or its machine's OOM killer picks it): the job's shell and the
stage in it run on as orphans, and after ``snakemake --unlock`` a second Snakemake starts a
second copy of the same job beside the first. So:

- :func:`exit_with_snakemake`, when Snakemake started the process (directly or through a
  job shell), asks the kernel for SIGTERM when the parent dies (``prctl(PR_SET_PDEATHSIG)``,
  Linux: the job's shell killed, as Snakemake itself kills a job it cancels) and watches that
  Snakemake, sending itself SIGTERM when it is gone. SIGTERM is the stage's ordinary stop:
  partial outputs are removed. A command started any other way (by hand, ``nohup``, SLURM's
  ``srun``) is left alone.
- :func:`hold_outputs` takes an exclusive ``flock`` on a lock file beside the command's first
  output, ``.{name}.lock``, holding the process's id; a second copy finds it held and stops
  with one line naming the output and that process. The lock dies with its process (even
  with SIGKILL); the file is removed when the command ends and otherwise never read for the
  lock itself, so one a SIGKILL left behind blocks nothing.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import ctypes
import fcntl
import logging
import os
import select
import signal
import socket
import sys
import threading
import time
from pathlib import Path

from edn.core.errors import EdnError

log = logging.getLogger("edn")

#: prctl(2) option: the signal a process gets when its parent dies.
PR_SET_PDEATHSIG = 1
#: Shells a job's command runs in (``bash -c``, ``sh -c``).
SHELLS = frozenset({"sh", "bash", "dash", "zsh", "ksh"})
#: Subcommands that only read (and so lock nothing).
WRITES_NOTHING = frozenset({"results", "runtime"})


def exit_with_snakemake() -> None:
    """Under Snakemake only: stop (SIGTERM to this process) when the job's shell dies or the
    Snakemake above it does. Run by hand, from a terminal, ``nohup`` or any other program,
    nothing changes."""
    if not sys.platform.startswith("linux"):
        return
    parent = os.getppid()
    shell, snakemake = _snakemake_above(parent)
    if snakemake is None:
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):  # no prctl: the watch below still covers Snakemake
        pass
    if os.getppid() != parent:  # the parent died before the signal was asked for
        os.kill(os.getpid(), signal.SIGTERM)
        return
    if snakemake != parent:  # a shell in between: its death is signalled, Snakemake's is watched
        threading.Thread(target=_watch, args=(shell, snakemake), name="edn-watch-snakemake", daemon=True).start()


def _snakemake_above(parent: int) -> tuple[int, int | None]:
    """(the outermost of the job shells (``sh -c``...) between this process and the Snakemake
    that started them, that Snakemake); (parent, parent) when Snakemake is the parent itself;
    (…, None) when no Snakemake started this process. At most three shells are climbed (a
    conda activation adds none: it is sourced in the same shell)."""
    if _is_snakemake(_argv(parent)):
        return parent, parent
    shell = parent
    for _ in range(3):
        argv = _argv(shell)
        if not argv or Path(argv[0]).name.lstrip("-") not in SHELLS or "-c" not in argv[1:3]:
            return shell, None
        above = _parent_of(shell)
        if above is None or above <= 1:
            return shell, None
        if _is_snakemake(_argv(above)):
            return shell, above
        shell = above
    return shell, None


def _is_snakemake(argv: list[str]) -> bool:
    head = argv[:3]
    return any(Path(word).name == "snakemake" for word in head) or (
        "-m" in head and "snakemake" in argv[head.index("-m") + 1:head.index("-m") + 2])


def _argv(pid: int) -> list[str]:
    try:
        return [os.fsdecode(word) for word in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0") if word]
    except OSError:
        return []


def _parent_of(pid: int) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return None


def _watch(shell: int, snakemake: int) -> None:
    """Wait for ``snakemake`` to end (a pidfd; else a poll of the shell's parent each second),
    then stop this process as SIGTERM would."""
    try:
        handle = os.pidfd_open(snakemake)
    except (AttributeError, OSError):
        handle = None
    try:
        # Opened after the pid was read: the pid must still be the shell's parent, not a reuse.
        if _parent_of(shell) == snakemake:
            if handle is not None:
                select.select([handle], [], [])  # readable once the process has ended
            else:
                while _parent_of(shell) == snakemake:
                    time.sleep(1.0)
    finally:
        if handle is not None:
            os.close(handle)
    log.warning("Snakemake (pid %d) is gone: stopping", snakemake)
    os.kill(os.getpid(), signal.SIGTERM)


def subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """The ``edn`` parser's subcommands by name."""
    for action in parser._actions:  # argparse keeps its subparsers only here
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def output_arguments(subparser: argparse.ArgumentParser) -> list[str]:
    """The destinations of a subcommand's outputs, the one to lock first: ``--output``, then
    every argument whose help says "to write", then the other required ``--output-*``
    arguments (an option such as ``--output-framing`` has a default, and is no path)."""
    actions = subparser._actions
    ranked = ([a.dest for a in actions if a.dest == "output"]
              + [a.dest for a in actions if "to write" in (a.help or "")]
              + [a.dest for a in actions if a.dest.startswith("output_") and a.required])
    return list(dict.fromkeys(ranked))


def hold_outputs(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Lock the command's first output for the life of this process; EdnError naming the
    output and its writer when another process holds it. Tasks of a distributed launch
    (torchrun, ``srun -n``) other than the first share the first one's outputs and take
    no lock."""
    if _task_rank() != 0:
        return
    subparser = subcommands(parser).get(args.command)
    if subparser is None:
        return
    for dest in output_arguments(subparser):
        value = getattr(args, dest, None)
        value = value[0] if isinstance(value, list) and value else value
        if isinstance(value, str) and value:
            _lock(Path(value), args.command)
            return


def _task_rank() -> int:
    env = os.environ
    with contextlib.suppress(ValueError):
        if int(env.get("WORLD_SIZE", "1") or 1) > 1:
            return int(env.get("RANK", "0") or 0)
        if int(env.get("SLURM_STEP_NUM_TASKS", "1") or 1) > 1:
            return int(env.get("SLURM_PROCID", "0") or 0)
    return 0


def _lock(output: Path, command: str) -> None:
    """Take ``.{output name}.lock`` beside ``output`` (creating its folder), released and
    removed when the process ends. Where no lock file can be made (a read-only folder) the
    command goes on without one: the stage's own write reports the folder."""
    lock_path = output.parent / f".{output.name}.lock"
    try:
        created = _make_folder(output.parent)
    except OSError as error:  # a read-only or foreign folder: the stage's own write says so
        log.debug("no lock for %s (%s)", output, error)
        return
    while True:
        try:
            handle = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as error:
            log.debug("no lock for %s (%s)", output, error)
            _remove_folders(created)
            return
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(handle, 200, 0).decode("utf-8", "replace").strip() or "another process"
            os.close(handle)
            raise EdnError(f"output {str(output)!r}: another edn is writing it ({holder}); two copies of one "
                           f"stage cannot write the same output at once: wait for it to finish, or stop it") from None
        # The file may have been removed by the holder that just finished: lock the one on disk.
        with contextlib.suppress(OSError):
            if os.stat(lock_path).st_ino == os.fstat(handle).st_ino:
                break
        os.close(handle)
    # Who holds the lock is a courtesy to the next copy: a full disk must not stop the stage,
    # whose own write then names the output that has no room.
    with contextlib.suppress(OSError):
        os.ftruncate(handle, 0)
        os.pwrite(handle, f"pid {os.getpid()} on {socket.gethostname()}: edn {command}\n".encode(), 0)

    def release() -> None:
        with contextlib.suppress(OSError):
            os.unlink(lock_path)  # still locked: a copy starting now waits for no one and re-checks the inode
        with contextlib.suppress(OSError):
            os.close(handle)
        _remove_folders(created)

    atexit.register(release)


def _make_folder(folder: Path) -> list[Path]:
    """``mkdir -p folder``; the folders it made, deepest first (removed again if left empty)."""
    missing = []
    for candidate in (folder, *folder.parents):
        if candidate.exists():
            break
        missing.append(candidate)
    folder.mkdir(parents=True, exist_ok=True)
    return missing


def _remove_folders(folders: list[Path]) -> None:
    for folder in folders:
        try:
            folder.rmdir()
        except OSError:  # not empty (the output is there), or made by someone else meanwhile
            return

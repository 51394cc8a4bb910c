"""Atomic writes: an artifact either exists complete or does not exist at all.

A stage writes into a temporary sibling of its output and renames it into place
only when the write finished; an exception, SIGTERM (turned into SystemExit by the
CLI) or Ctrl-C removes the temporary. A SIGKILL can leave a temporary behind, but
never a truncated file under the real name. Temporaries are named
``.{name}.{host}-{pid}-{random}.partial{suffix}``: the next write of the same
output on the same machine removes those whose writing process is gone, so
killed runs do not pile up gigabytes of frames (a temporary of a process that is
still running, or of another machine sharing the file system, is left alone).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import shutil
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

from edn.core.errors import EdnError

#: Write errors that mean there is no room: a full disk, a quota, a file size limit.
_NO_ROOM = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


def _host_tag() -> str:
    """This machine's name as it appears in temporary names (letters, digits and _ only)."""
    return re.sub(r"[^A-Za-z0-9]", "_", socket.gethostname()) or "host"


def _process_is_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, but another user's
        return False
    return False


def remove_stale_temporaries(path: str | os.PathLike) -> list[Path]:
    """Remove temporaries of ``path`` left by killed writers on this machine; return them.

    Only temporaries whose name carries this host and the id of a process that no
    longer exists are removed (a process id reused since is merely skipped).
    """
    path = Path(path)
    if not path.parent.is_dir():
        return []
    pattern = re.compile(re.escape(f".{path.name}.") + r"(?P<host>[A-Za-z0-9_]+)-(?P<pid>[0-9]+)-[^.]*\.partial")
    host, removed = _host_tag(), []
    for candidate in path.parent.iterdir():
        match = pattern.match(candidate.name)
        if match and match["host"] == host and _process_is_gone(int(match["pid"])):
            _remove(candidate)
            removed.append(candidate)
    return removed


def _temporary_sibling(path: Path, *, directory: bool) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path)
    prefix = f".{path.name}.{_host_tag()}-{os.getpid()}-"
    # mkstemp/mkdtemp create owner-only entries; artifacts get the usual modes.
    if directory:
        name = tempfile.mkdtemp(prefix=prefix, suffix=".partial", dir=path.parent)
        os.chmod(name, 0o755)
        return Path(name)
    fd, name = tempfile.mkstemp(prefix=prefix, suffix=".partial" + path.suffix, dir=path.parent)
    os.close(fd)
    os.chmod(name, 0o644)
    return Path(name)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, directory: bool = False) -> Iterator[Path]:
    """Yield a temporary path; on success move it to ``path`` in one rename.

    The temporary keeps ``path``'s suffix so tools that pick a format from the
    file name (ffmpeg, numpy) behave as they would on the real name. With
    ``directory=True`` a fresh empty directory is yielded and replaces ``path``.
    A full disk (or quota, or file size limit) becomes an EdnError naming ``path``.
    """
    final = Path(path)
    temporary = _temporary_sibling(final, directory=directory)
    try:
        yield temporary
        if directory and final.is_dir():
            shutil.rmtree(final)
        os.replace(temporary, final)
    except BaseException as error:
        _remove(temporary)
        reason = _no_room(error)
        if reason:
            raise EdnError(f"output {str(final)!r}: cannot be written ({reason}); nothing was left behind, "
                           f"free some space and rerun") from None
        raise


def _no_room(error: BaseException) -> str | None:
    """The reason when ``error`` says there is no room to write, else None.

    Python's own writes set ``errno``; some libraries (pyarrow) only say it in words.
    """
    if not isinstance(error, OSError):
        return None
    for code in _NO_ROOM:
        if error.errno == code or os.strerror(code) in str(error):
            return os.strerror(code)
    return None


@contextlib.contextmanager
def scratch_directory(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a fresh directory beside ``path`` for bulky intermediates; removed on exit.

    It is named like ``path``'s temporaries, so the one a SIGKILL left behind is
    removed by the next run (see the module docstring).
    """
    temporary = _temporary_sibling(Path(path), directory=True)
    try:
        yield temporary
    finally:
        _remove(temporary)


def write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` atomically."""
    with atomic_path(path) as temporary:
        temporary.write_text(text)


def write_json(path: str | os.PathLike, data: object) -> None:
    """Write ``data`` as indented JSON to ``path`` atomically."""
    write_text(path, json.dumps(data, indent=2, sort_keys=False) + "\n")


def copy_file(source: str | os.PathLike, destination: str | os.PathLike) -> None:
    """Copy ``source`` to ``destination`` atomically (complete or absent)."""
    with atomic_path(destination) as temporary:
        shutil.copyfile(source, temporary)

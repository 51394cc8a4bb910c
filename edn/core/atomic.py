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
#: Write errors that mean the folder cannot be written to: mounted read-only, or not ours.
_NOT_WRITABLE = (errno.EROFS, errno.EACCES, errno.EPERM)


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
    """A fresh temporary beside ``path``; EdnError naming ``path`` when its folder cannot take one."""
    try:
        return _make_temporary_sibling(path, directory=directory)
    except OSError as error:
        reason = _no_room(error) or _not_writable(error, path, None)
        if reason:
            raise EdnError(_cannot_write(path, reason, error)) from None
        raise


def _make_temporary_sibling(path: Path, *, directory: bool) -> Path:
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
    A full disk (or quota, or file size limit), a read-only folder or one that is not
    ours becomes an EdnError naming ``path``, with nothing left behind.
    """
    final = Path(path)
    temporary = _temporary_sibling(final, directory=directory)
    try:
        yield temporary
        if directory and final.is_dir():
            shutil.rmtree(final)
        os.replace(temporary, final)
    except BaseException as error:
        # Asked before the temporary is removed, which frees the space it took.
        reason = _no_room(error) or _not_writable(error, final, temporary) or _full_after(error, final)
        _remove(temporary)
        if reason:
            raise EdnError(_cannot_write(final, reason, error)) from None
        raise


def _cannot_write(final: Path, reason: str, error: BaseException) -> str:
    """The one-line message of a write to ``final`` that failed for ``reason``."""
    advice = ("make its folder writable and rerun" if getattr(error, "errno", None) in _NOT_WRITABLE
              else "free some space and rerun")
    return f"output {str(final)!r}: cannot be written ({reason}); nothing was left behind, {advice}"


def _not_writable(error: BaseException, final: Path, temporary: Path | None) -> str | None:
    """The reason when ``error`` says ``final`` cannot be written there (a read-only or foreign folder), else None.

    Only an error about the output counts: its folder or one above it, the output
    itself, one of its temporaries, or a file inside its temporary directory. A
    permission error on an input is that input's problem and keeps its own message.
    """
    if not isinstance(error, OSError) or error.errno not in _NOT_WRITABLE:
        return None
    if error.filename is not None:
        about, final = Path(os.fsdecode(error.filename)).absolute(), final.absolute()
        folder = final.parent
        about_output = (about == folder or about in folder.parents or about == final
                        or (about.parent == folder and about.name.startswith(f".{final.name}."))
                        or (temporary is not None and temporary.absolute() in about.parents))
        if not about_output:
            return None
    return os.strerror(error.errno)


#: A file system with less room than this left after a failed write counts as full.
_FULL_BYTES = 64 * 1024


def _full_after(error: BaseException, final: Path) -> str | None:
    """No room, when a library that does not say why (torch.save's RuntimeError) failed on a full disk."""
    if not isinstance(error, Exception) or isinstance(error, EdnError):
        return None
    try:
        stats = os.statvfs(final.parent)
    except OSError:
        return None
    return os.strerror(errno.ENOSPC) if stats.f_bavail * stats.f_frsize < _FULL_BYTES else None


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

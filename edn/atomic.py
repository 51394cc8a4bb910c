"""Atomic writes: an artifact either exists complete or does not exist at all.

A stage writes into a temporary sibling of its output and renames it into place
only when the write finished; an exception, SIGTERM (turned into SystemExit by the
CLI) or Ctrl-C removes the temporary. A SIGKILL can leave a temporary behind, but
never a truncated file under the real name; temporaries start with ``.`` and end
in ``.partial`` so they are easy to recognise and are overwritten on the next run.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path


def _temporary_sibling(path: Path, *, directory: bool) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    prefix = f".{path.name}."
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
    """
    final = Path(path)
    temporary = _temporary_sibling(final, directory=directory)
    try:
        yield temporary
        if directory and final.is_dir():
            shutil.rmtree(final)
        os.replace(temporary, final)
    except BaseException:
        _remove(temporary)
        raise


def write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` atomically."""
    with atomic_path(path) as temporary:
        temporary.write_text(text)


def write_json(path: str | os.PathLike, data: object) -> None:
    """Write ``data`` as indented JSON to ``path`` atomically."""
    write_text(path, json.dumps(data, indent=2, sort_keys=False) + "\n")

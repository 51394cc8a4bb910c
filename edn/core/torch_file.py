"""Versioned torch files: checkpoints, detector checkpoints, perceptual weights.

Each is one ``torch.save`` file of plain data (loaded with ``weights_only=True``,
so opening one never runs code) that says what it is::

    format   e.g. "edn-checkpoint"     version   the format's version
    edn      the edn version that wrote it
    ...      the format's own keys

Writing is atomic (complete or absent); reading is strict: a missing file, a
file torch cannot read, another format or another version is an EdnError that
names the file by its role ("generator checkpoint '...'").
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import torch
from torch import nn

from edn import __version__
from edn.core.atomic import atomic_path
from edn.core.checksum import sha256_file
from edn.core.errors import EdnError


def save_torch_file(path: str | os.PathLike, file_format: str, version: int, payload: dict) -> None:
    """Write ``payload`` with its format, version and the edn version, atomically."""
    with atomic_path(path) as temporary:
        torch.save({"format": file_format, "version": version, "edn": __version__, **payload}, temporary)


def load_torch_file(path: str | os.PathLike, file_format: str, version: int, *, what: str,
                    kind: str, missing_hint: str = "") -> dict:
    """Read a file written by :func:`save_torch_file` with this format and version.

    ``what`` names the file's role in messages, ``kind`` the format in words
    ("an edn checkpoint"); ``missing_hint`` is added when the file is absent.
    """
    path = Path(path)
    label = f"{what} {str(path)!r}"
    if not path.is_file():
        raise EdnError(f"{label}: file not found{missing_hint}")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # unpickling raises many types for a file that is not ours
        raise EdnError(f"{label}: not readable as {kind} ({type(error).__name__})") from None
    if not isinstance(data, dict) or data.get("format") != file_format:
        raise EdnError(f"{label}: not {kind}")
    if data.get("version") != version:
        raise EdnError(f"{label}: format version {data.get('version')}, this edn reads version {version}")
    return data


def load_strict(module: nn.Module, state_dict: dict, label: str) -> None:
    """``module.load_state_dict(state_dict, strict=True)``; EdnError naming ``label`` if it does not fit."""
    try:
        module.load_state_dict(state_dict, strict=True)
    except RuntimeError as error:
        detail = " ".join(str(error).split())[:300]
        raise EdnError(f"{label} does not fit the network ({detail})") from None


def hub_file_problem(path: str | os.PathLike) -> str | None:
    """What is wrong with a weights file in torchvision's naming (``name-<hash>.pth``), or None.

    torchvision names each weights file after the first hex digits of its SHA-256
    and checks them only while downloading; a file in the torch hub cache that was
    cut short or damaged since would be loaded as it is. Files named otherwise are
    not checked.
    """
    path = Path(path)
    named = re.search(r"-([0-9a-f]{8,})\.", path.name)
    if named is None:
        return None
    digest = sha256_file(path)
    if not digest.startswith(named[1]):
        return (f"its SHA-256 begins {digest[:len(named[1])]}, not the {named[1]} its name says: "
                f"the file is damaged or incomplete")
    return None

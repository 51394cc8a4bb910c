"""Versioned torch files: checkpoints, detector checkpoints, perceptual weights.

Each is one ``torch.save`` file of plain data (loaded with ``weights_only=True``,
so opening one never runs code) that says what it is::

    format   e.g. "edn-checkpoint"     version   the format's version
    edn      the edn version that wrote it
    checksum "sha256:<hex>" of everything else the file holds (:func:`content_digest`)
    ...      the format's own keys

Writing is atomic (complete or absent); reading is strict: a missing file, a
file torch cannot read, another format or another version is an EdnError that
names the file by its role ("generator checkpoint '...'"), and so is a file whose
contents no longer match its checksum. Flipped bytes inside a tensor leave a file
that unpickles and loads into its network without a complaint; the checksum is
what notices. A file of the same format version written before files carried a
checksum loads with a warning that it could not be checked.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from pathlib import Path

import torch
from torch import nn

from edn import __version__
from edn.core.atomic import atomic_path
from edn.core.checksum import sha256_file
from edn.core.errors import EdnError


log = logging.getLogger(__name__)

#: The key of a file's checksum (see the module docstring).
CHECKSUM = "checksum"


def save_torch_file(path: str | os.PathLike, file_format: str, version: int, payload: dict) -> None:
    """Write ``payload`` with its format, version, the edn version and their checksum, atomically."""
    data = {"format": file_format, "version": version, "edn": __version__, **payload}
    data[CHECKSUM] = f"sha256:{content_digest(data)}"
    with atomic_path(path) as temporary:
        torch.save(data, temporary)


def content_digest(data: object) -> str:
    """SHA-256 (hex) of plain data as :func:`save_torch_file` writes it: tensors (dtype,
    shape and bytes), dicts (in key order, whatever order they were built in), lists,
    tuples, strings, numbers, booleans and None. The same for the data written and the
    data ``torch.load`` gives back, on any device."""
    digest = hashlib.sha256()
    _feed(digest, data)
    return digest.hexdigest()


def _feed(digest, value: object) -> None:
    if isinstance(value, torch.Tensor):
        tensor = value.detach().cpu().contiguous()
        digest.update(f"T{tensor.dtype}{list(tensor.shape)}:".encode())
        if tensor.numel():
            digest.update(tensor.reshape(-1).view(torch.uint8).numpy())
    elif isinstance(value, dict):
        digest.update(f"D{len(value)}:".encode())
        for key in sorted(value, key=_scalar):
            digest.update(_scalar(key).encode() + b"=")
            _feed(digest, value[key])
    elif isinstance(value, (list, tuple)):
        digest.update(f"{'L' if isinstance(value, list) else 'U'}{len(value)}:".encode())
        for item in value:
            _feed(digest, item)
    else:
        digest.update(_scalar(value).encode() + b";")


def _scalar(value: object) -> str:
    """A scalar as text that tells its type and value apart from every other's."""
    if isinstance(value, str):
        return f"s{len(value)}:{value}"
    if isinstance(value, float):
        return f"f{value.hex()}"
    if isinstance(value, (bool, int)) or value is None:  # True is not 1 (repr: True vs 1)
        return f"{type(value).__name__}:{value!r}"
    return f"{type(value).__module__}.{type(value).__qualname__}:{value!r}"


def load_torch_file(path: str | os.PathLike, file_format: str, version: int, *, what: str,
                    kind: str, missing_hint: str = "", remake: str = "") -> dict:
    """Read a file written by :func:`save_torch_file` with this format and version.

    ``what`` names the file's role in messages, ``kind`` the format in words
    ("an edn checkpoint"); ``missing_hint`` is added when the file is absent,
    ``remake`` (how to make the file again) when its contents fail the checksum.
    The checksum is checked after the format and version and is not returned.
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
    stored = data.pop(CHECKSUM, None)
    if stored is None:
        log.warning("%s: has no checksum (written by edn %s, before model files carried one): its contents "
                    "cannot be checked", label, data.get("edn", "?"))
    elif stored != f"sha256:{content_digest(data)}":
        raise EdnError(f"{label}: its contents do not match the checksum written with them: the file is damaged "
                       f"(a disk or copy fault, or an edit){remake}")
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

"""Decoded frames on disk: the working-frame geometry and the frame store.

A subject's decoded video is two files:

``frames.npy``
    uint8 array ``[N, H, W, 3]`` (RGB), read with ``numpy.load(mmap_mode="r")``
    so that training can pick any frame without decoding anything. It costs
    ``H * W * 3`` bytes a frame: 96 KiB at 256x128, 1.5 MiB at 1024x512 (about
    4.4 GiB for 100 s at 30 fps). PNG would be 3 to 5 times smaller but costs
    milliseconds of decoding per frame on every training step.
``meta.json``
    fps, frame count, source size, working size and the transform below. The
    working size is the configured one turned to the video's orientation
    (:func:`oriented_size`): a portrait video is worked on portrait.

A stage that goes over a whole store reads and writes it in chunks of
:data:`CHUNK_FRAMES` frames (:func:`iter_frames`, :func:`write_frames`) and lets
each chunk's pages go once it is done (:func:`release_pages`): a page of a
memory-mapped file that a process has touched counts in its resident memory
until it is unmapped, so a stage that simply indexed its way through a
memory-mapped store would hold the whole video by its end (1.6 GiB for 4,000
frames at 512x256). Streamed, its memory does not grow with the video's length.

Coordinates everywhere in edn are continuous image coordinates: the top-left
corner of the top-left pixel is (0, 0) and pixel (i, j) covers
[i, i+1) x [j, j+1); x grows to the right, y downwards.
"""

from __future__ import annotations

import contextlib
import json
import mmap
import os
import struct
import sys
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from edn.core.atomic import atomic_path
from edn.core.errors import EdnError


@dataclass(frozen=True)
class FrameTransform:
    """Maps source-video coordinates to working-frame coordinates.

    ``working = scale * source + offset`` on each axis, in continuous pixel
    coordinates. Padding gives positive offsets, cropping negative ones.
    """

    scale_x: float
    scale_y: float
    offset_x: float
    offset_y: float

    def to_working(self, x: np.ndarray | float, y: np.ndarray | float) -> tuple:
        return self.scale_x * x + self.offset_x, self.scale_y * y + self.offset_y

    def to_source(self, x: np.ndarray | float, y: np.ndarray | float) -> tuple:
        return (x - self.offset_x) / self.scale_x, (y - self.offset_y) / self.scale_y


@dataclass(frozen=True)
class FrameGeometry:
    """How a source frame becomes a working frame: resize to ``scaled_size``, then
    pad (offsets >= 0) or crop (offsets <= 0) to ``working_size``."""

    source_size: tuple[int, int]
    working_size: tuple[int, int]
    scaled_size: tuple[int, int]
    offset: tuple[int, int]
    fit: str

    @property
    def transform(self) -> FrameTransform:
        (w, h), (sw, sh), (ox, oy) = self.source_size, self.scaled_size, self.offset
        return FrameTransform(scale_x=sw / w, scale_y=sh / h, offset_x=float(ox), offset_y=float(oy))

    @property
    def content_box(self) -> tuple[int, int, int, int]:
        """Working-frame box (x0, y0, x1, y1) that shows video rather than padding."""
        (W, H), (sw, sh), (ox, oy) = self.working_size, self.scaled_size, self.offset
        return max(ox, 0), max(oy, 0), min(ox + sw, W), min(oy + sh, H)


FITS = ("pad", "crop")
ORIENTATIONS = ("auto", "landscape", "portrait")


def oriented_size(size: tuple[int, int], source_size: tuple[int, int], orientation: str) -> tuple[int, int]:
    """The working size (width, height) for a video displayed at ``source_size``.

    ``size`` is the configured (width, height); only its orientation changes, never
    its pixel count. ``landscape`` puts the longer side across, ``portrait`` upright;
    ``auto`` follows the video: a video displayed taller than wide (a phone held
    upright, its rotation metadata applied) gets the longer side upright, one wider
    than tall across, and a square video the configured size as it is.
    """
    if orientation not in ORIENTATIONS:
        raise EdnError(f"orientation {orientation!r}: must be one of {', '.join(ORIENTATIONS)}")
    long_side, short_side = max(size), min(size)
    if orientation == "auto":
        width, height = source_size
        if width == height:
            return tuple(size)
        orientation = "portrait" if height > width else "landscape"
    return (short_side, long_side) if orientation == "portrait" else (long_side, short_side)


def fit_geometry(source_size: tuple[int, int], working_size: tuple[int, int], fit: str) -> FrameGeometry:
    """Resize keeping the aspect ratio, then pad (whole frame kept) or crop (frame filled).

    The content is centred; when the leftover is odd, the extra pixel goes to the
    right or bottom.
    """
    if fit not in FITS:
        raise EdnError(f"fit {fit!r}: must be one of {', '.join(FITS)}")
    (w, h), (W, H) = source_size, working_size
    choose = min if fit == "pad" else max
    scale = choose(W / w, H / h)
    sw, sh = max(1, round(w * scale)), max(1, round(h * scale))
    if fit == "pad":
        sw, sh = min(sw, W), min(sh, H)
    else:
        sw, sh = max(sw, W), max(sh, H)
    offset = ((W - sw) // 2, (H - sh) // 2)
    return FrameGeometry(source_size=(w, h), working_size=(W, H), scaled_size=(sw, sh), offset=offset, fit=fit)


@dataclass(frozen=True)
class FrameMeta:
    """Contents of ``meta.json`` beside a subject's ``frames.npy``."""

    video: str
    fps: str  # exact rational, e.g. "24" or "30000/1001"
    frame_count: int
    source_size: tuple[int, int]
    working_size: tuple[int, int]
    fit: str
    scaled_size: tuple[int, int]
    offset: tuple[int, int]

    @property
    def fps_value(self) -> Fraction:
        return Fraction(self.fps)

    @property
    def geometry(self) -> FrameGeometry:
        return FrameGeometry(source_size=self.source_size, working_size=self.working_size,
                             scaled_size=self.scaled_size, offset=self.offset, fit=self.fit)

    @property
    def transform(self) -> FrameTransform:
        return self.geometry.transform

    def to_json(self) -> dict:
        data = asdict(self)
        data["transform"] = asdict(self.transform)
        data["content_box"] = list(self.geometry.content_box)
        return data


def read_meta(path: str | os.PathLike) -> FrameMeta:
    """Load ``meta.json``; derived entries (transform, content_box) are recomputed."""
    try:
        data = json.loads(Path(path).read_text())
        return FrameMeta(
            video=data["video"], fps=str(data["fps"]), frame_count=int(data["frame_count"]),
            source_size=tuple(data["source_size"]), working_size=tuple(data["working_size"]),
            fit=data["fit"], scaled_size=tuple(data["scaled_size"]), offset=tuple(data["offset"]),
        )
    except FileNotFoundError:
        raise EdnError(f"frame metadata {str(path)!r}: file not found") from None
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as error:
        raise EdnError(f"frame metadata {str(path)!r}: not valid ({error})") from None


def load_image_store(path: str | os.PathLike, kind: str = "frames", channels: int | None = 3) -> np.ndarray:
    """Memory-map a uint8 [N, H, W, channels] store (frames.npy, labels.npy) read-only,
    [N, H, W] for ``channels`` None (as :func:`create_image_store` writes them).

    ``kind`` names the store in error messages.
    """
    what = "a mask store" if channels is None else "an image store"
    try:
        store = np.load(path, mmap_mode="r")
    except FileNotFoundError:
        raise EdnError(f"{kind} {str(path)!r}: file not found") from None
    except ValueError as error:
        raise EdnError(f"{kind} {str(path)!r}: not {what} ({error})") from None
    fits = store.ndim == 3 if channels is None else store.ndim == 4 and store.shape[-1] == channels
    if store.dtype != np.uint8 or not fits:
        expected = "[N, H, W]" if channels is None else f"[N, H, W, {channels}]"
        raise EdnError(f"{kind} {str(path)!r}: expected uint8 {expected}, found {store.dtype} {list(store.shape)}")
    return store


@contextlib.contextmanager
def create_image_store(path: str | os.PathLike, frame_count: int, size: tuple[int, int],
                       channels: int | None = 3) -> Iterator[np.ndarray]:
    """Yield a writable uint8 [N, H, W, channels] memmap ([N, H, W] for ``channels`` None)
    that becomes ``path`` (.npy) on success.

    ``size`` is (width, height). Nothing appears under ``path`` unless the block
    finishes.
    """
    width, height = size
    shape = (frame_count, height, width) + (() if channels is None else (channels,))
    with atomic_path(path) as temporary:
        store = np.lib.format.open_memmap(temporary, mode="w+", dtype=np.uint8, shape=shape)
        yield store
        store.flush()
        del store


def load_masks(path: str | os.PathLike, kind: str = "person masks") -> np.ndarray:
    """Memory-map a uint8 [N, H, W] mask store (0-255) read-only."""
    return load_image_store(path, kind, channels=None)


def load_frames(path: str | os.PathLike) -> np.ndarray:
    """Memory-map ``frames.npy`` as a read-only uint8 array [N, H, W, 3]."""
    return load_image_store(path, "frames")


#: Bytes reserved for the .npy header of a frame store whose length is only known
#: at the end of decoding; 128 holds any [N, H, W, 3] uint8 header.
NPY_HEADER_BYTES = 128


def npy_header(shape: tuple[int, ...], dtype: np.dtype = np.dtype(np.uint8)) -> bytes:
    """A version 1.0 .npy header (NEP 1) of exactly NPY_HEADER_BYTES bytes."""
    description = {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)), "fortran_order": False,
                   "shape": tuple(shape)}
    text = repr(description).encode("latin1")
    preamble = b"\x93NUMPY\x01\x00"
    padding = NPY_HEADER_BYTES - len(preamble) - 2 - len(text) - 1
    if padding < 0:
        raise ValueError(f"shape {shape} does not fit a {NPY_HEADER_BYTES}-byte header")
    text += b" " * padding + b"\n"
    return preamble + struct.pack("<H", len(text)) + text


#: Frames a streaming stage reads or writes at a time before it lets their pages go:
#: 12 MiB at 512x256, 48 MiB at the paper's 1024x512.
CHUNK_FRAMES = 32


def _file_mapping(array: np.ndarray) -> mmap.mmap | None:
    """The shared file mapping ``array`` is a view of, or None (ordinary memory, or a copy-on-write map)."""
    base = array
    while base is not None and not isinstance(base, mmap.mmap):
        if getattr(base, "mode", None) == "c":  # np.memmap's copy-on-write: dropped pages lose the writes
            return None
        base = getattr(base, "base", None)
    return base


#: Linux maps the cached pages around a faulting one in with it (``fault_around_bytes``,
#: 64 KiB unless changed): reading a frame also maps in the ends of its neighbours.
FAULT_AROUND_BYTES = 64 * 1024


def release_pages(array: np.ndarray) -> None:
    """Let this process's resident memory drop the pages of ``array``, a view of a memory-mapped store,
    and those within :data:`FAULT_AROUND_BYTES` either side of it (mapped in with its own).

    The data stays in the file (and in the kernel's page cache): a later read maps
    it in again, and what was written through a shared mapping is kept (Linux's
    ``MADV_DONTNEED`` on a shared file mapping). Does nothing for an array in
    ordinary memory, a copy-on-write map, or on a system other than Linux.
    """
    if not sys.platform.startswith("linux") or array.size == 0:
        return
    mapping = _file_mapping(array)
    if mapping is None:
        return
    start_address = np.frombuffer(mapping, np.uint8, count=1).ctypes.data
    # The array's first and one-past-last byte, whatever its strides.
    low = array.ctypes.data + sum(min(0, (n - 1) * s) for n, s in zip(array.shape, array.strides))
    high = array.ctypes.data + sum(max(0, (n - 1) * s) for n, s in zip(array.shape, array.strides)) + array.itemsize
    start = max(0, low - start_address - FAULT_AROUND_BYTES) // mmap.PAGESIZE * mmap.PAGESIZE
    stop = min(high - start_address + FAULT_AROUND_BYTES, len(mapping))
    if 0 <= start < stop:
        mapping.madvise(mmap.MADV_DONTNEED, start, stop - start)


def copy_released(array: np.ndarray) -> np.ndarray:
    """A copy of ``array`` in ordinary memory, the pages it was read from released
    (:func:`release_pages`): for reading single frames of a store in any order."""
    copy = np.array(array)
    release_pages(array)
    return copy


def iter_frames(store: np.ndarray, start: int = 0, stop: int | None = None,
                chunk: int = CHUNK_FRAMES) -> Iterator[np.ndarray]:
    """``store[start:stop]`` frame by frame, in order, in memory bounded by ``chunk`` frames
    whatever the store's length.

    Each frame is a copy read with its chunk, whose pages are then released
    (:func:`release_pages`): the frames stay valid after the next ones are read.
    """
    stop = len(store) if stop is None else min(stop, len(store))
    for first in range(start, stop, chunk):
        rows = store[first:min(first + chunk, stop)]
        block = np.array(rows)
        release_pages(rows)
        yield from block


def write_frames(store: np.ndarray, frames: Iterable[np.ndarray], start: int = 0,
                 chunk: int = CHUNK_FRAMES) -> int:
    """Write ``frames`` into ``store[start], store[start + 1], ...`` in order, releasing each
    ``chunk`` of written rows' pages (:func:`release_pages`); returns how many were written."""
    count, first = 0, start
    for count, frame in enumerate(frames, 1):
        index = start + count - 1
        store[index] = frame
        if index + 1 - first == chunk:
            release_pages(store[first:index + 1])
            first = index + 1
    if start + count > first:
        release_pages(store[first:start + count])
    return count

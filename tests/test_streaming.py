"""Stages that go over a whole store stream it: what they hold does not grow with the video's length.

A page of a memory-mapped store that a process touched stays in its resident
memory until it is unmapped, so these tests read the resident size of the
store's own mapping from /proc/self/smaps (Linux) after a stage went over it
while the store is still mapped: a stage that indexed its way through the whole
store leaves every frame resident; a streaming one at most a chunk.
"""

from __future__ import annotations

import sys
import tracemalloc
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from edn.core.presets import PRESETS
from edn.core.runtime import Runtime
from edn.ingest.frames import CHUNK_FRAMES, FrameMeta, iter_frames, write_frames
from edn.ingest.media import count_frames
from edn.labels.label_store import LabelIndex
from edn.labels.render import face_box_side, render_pose, render_sequence
from edn.models import build_face_generator, build_generator
from edn.models.generation import FrameGenerator
from edn.pose.mediapipe_holistic import detect_people_chunk
from edn.transfer import encode
from edn.transfer.synthesize import synthesize_sequence
from synthetic_poses import walking_sequence

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="reads /proc/self/smaps; pages are let go on Linux only")


def resident_bytes(path: Path) -> int:
    """Resident bytes of this process's mappings of the file ``path`` (/proc/self/smaps' Rss lines)."""
    target, total, inside = str(Path(path).resolve()), 0, False
    for line in Path("/proc/self/smaps").read_text().splitlines():
        fields = line.split()
        if "-" in fields[0] and len(fields) >= 5 and ":" in fields[3]:  # a mapping's first line
            inside = " ".join(fields[5:]) == target
        elif inside and fields[0] == "Rss:":
            total += int(fields[1]) * 1024
    return total


def new_store(path: Path, frames: int, size: tuple[int, int], channels: int | None = 3) -> np.memmap:
    width, height = size
    shape = (frames, height, width) + (() if channels is None else (channels,))
    return np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8, shape=shape)


def test_a_whole_indexed_store_is_resident_so_the_measure_can_fail(tmp_path):
    """The measure sees what it must: a store filled by plain indexing stays resident in full."""
    store = new_store(tmp_path / "plain.npy", 4 * CHUNK_FRAMES, (128, 64))
    for t in range(len(store)):
        store[t] = t
    assert resident_bytes(tmp_path / "plain.npy") >= store.nbytes
    streamed = new_store(tmp_path / "streamed.npy", 4 * CHUNK_FRAMES, (128, 64))
    assert write_frames(streamed, (np.full(store.shape[1:], t, np.uint8) for t in range(len(store)))) == len(store)
    assert resident_bytes(tmp_path / "streamed.npy") <= CHUNK_FRAMES * store[0].nbytes
    np.testing.assert_array_equal(streamed, store)  # what was written and let go is in the file
    del streamed
    reread = np.load(tmp_path / "streamed.npy", mmap_mode="r")
    assert [int(frame[0, 0, 0]) for frame in iter_frames(reread)] == list(range(len(store)))
    assert resident_bytes(tmp_path / "streamed.npy") <= 2 * CHUNK_FRAMES * store[0].nbytes


def test_rendering_n_or_4n_labels_leaves_at_most_a_chunk_resident(tmp_path):
    size = (128, 64)
    frame_bytes = size[0] * size[1] * 3

    def render(frames: int) -> int:
        poses = walking_sequence(np.linspace(50, 60, frames), np.linspace(30, 45, frames), ankle_x=64,
                                 frame_size=size)
        path = tmp_path / f"labels-{frames}.npy"
        store = new_store(path, frames, size)
        render_sequence(poses, store)
        resident = resident_bytes(path)
        for t in (0, frames // 2, frames - 1):  # the same bytes as one frame drawn alone
            np.testing.assert_array_equal(store[t], render_pose(poses.keypoints[t], size))
        return resident

    short, long = render(CHUNK_FRAMES * 2), render(CHUNK_FRAMES * 8)
    assert long <= CHUNK_FRAMES * frame_bytes, f"{long} bytes of a {CHUNK_FRAMES * 8 * frame_bytes}-byte store"
    assert long <= short + frame_bytes


def _tiny_models(size: tuple[int, int]) -> FrameGenerator:
    torch.manual_seed(0)
    preset = PRESETS["tiny"]
    return FrameGenerator(generator=build_generator(preset, "global").eval(),
                          face_generator=build_face_generator(preset).eval(), size=size, description="random tiny")


def test_synthesis_reads_labels_and_writes_frames_a_chunk_at_a_time(tmp_path):
    size, frames = (64, 32), 5 * CHUNK_FRAMES
    width, height = size
    rng = np.random.default_rng(3)
    labels = new_store(tmp_path / "labels.npy", frames, size)
    write_frames(labels, rng.integers(0, 256, (frames, height, width, 3), dtype=np.uint8))
    del labels
    labels = np.load(tmp_path / "labels.npy", mmap_mode="r")
    side = face_box_side(width)
    index = LabelIndex(has_body=np.ones(frames, bool), has_face=np.arange(frames) % 4 != 1,
                       face_boxes=np.tile(np.array([20, 4, 20 + side, 4 + side], np.int32), (frames, 1)))
    runtime = Runtime(device=torch.device("cpu"))
    out = new_store(tmp_path / "out.npy", frames, size)
    synthesize_sequence(_tiny_models(size), labels, index, out, runtime, progress=False)
    chunk_bytes = CHUNK_FRAMES * labels[0].nbytes
    assert resident_bytes(tmp_path / "labels.npy") <= chunk_bytes
    assert resident_bytes(tmp_path / "out.npy") <= chunk_bytes
    in_memory = np.empty(labels.shape, np.uint8)  # the same frames as synthesized into ordinary memory
    synthesize_sequence(_tiny_models(size), np.array(labels), index, in_memory, runtime, progress=False)
    np.testing.assert_array_equal(out, in_memory)


def test_encoding_n_or_4n_frames_holds_neither_the_store_nor_the_frames(tmp_path, monkeypatch):
    size = (64, 32)
    width, height = size
    frame_bytes = width * height * 3
    opened = {}

    def keep_open(path, kind="frames", channels=3):  # the stage's own mapping, kept for the measure
        opened[path] = np.load(path, mmap_mode="r")
        return opened[path]

    monkeypatch.setattr(encode, "load_image_store", keep_open)

    def encoded(frames: int) -> tuple[int, int]:
        path = tmp_path / f"frames-{frames}.npy"
        store = new_store(path, frames, size)
        write_frames(store, (np.full((height, width, 3), (7 * t) % 256, np.uint8) for t in range(frames)))
        del store
        meta = FrameMeta(video="clip.mp4", fps="25", frame_count=frames, source_size=size, working_size=size,
                         fit="pad", scaled_size=size, offset=(0, 0))
        tracemalloc.start()
        try:
            video = encode.encode_transfer(path, meta, tmp_path / f"video-{frames}.mp4", audio_from=None)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert count_frames(video) == frames
        return resident_bytes(path), peak

    (resident_short, peak_short), (resident_long, peak_long) = encoded(2 * CHUNK_FRAMES), encoded(8 * CHUNK_FRAMES)
    assert resident_long <= CHUNK_FRAMES * frame_bytes
    assert resident_long <= resident_short + frame_bytes
    # Python's own allocations: a chunk of frames at a time, not the video (6 chunks more would be 1.2 MB).
    assert peak_long <= peak_short + CHUNK_FRAMES * frame_bytes, (peak_short, peak_long)


class _SegmentingStream:
    """Stands in for a Holistic stream: finds nobody, segments the red channel."""

    def process(self, image: np.ndarray) -> SimpleNamespace:
        return SimpleNamespace(pose_landmarks=None, segmentation_mask=image[..., 0] / 255.0)


def test_a_pose_worker_reads_its_span_and_writes_its_masks_a_chunk_at_a_time(tmp_path):
    size, frames = (128, 64), 6 * CHUNK_FRAMES
    width, height = size
    rng = np.random.default_rng(5)
    store = new_store(tmp_path / "frames.npy", frames, size)
    write_frames(store, rng.integers(0, 256, (frames, height, width, 3), dtype=np.uint8))
    del store
    images = np.load(tmp_path / "frames.npy", mmap_mode="r")
    masks = new_store(tmp_path / "masks.npy", frames, size, channels=None)
    start, stop = 10, frames - 3
    stream = _SegmentingStream()
    people = detect_people_chunk(lambda k: stream, images, start, stop, masks=masks)
    assert len(people) == stop - start and all(len(p) == 0 for p in people)
    assert resident_bytes(tmp_path / "frames.npy") <= CHUNK_FRAMES * images[0].nbytes
    assert resident_bytes(tmp_path / "masks.npy") <= CHUNK_FRAMES * masks[0].nbytes
    np.testing.assert_array_equal(masks[start:stop], images[start:stop, ..., 0])
    assert not masks[:start].any() and not masks[stop:].any()

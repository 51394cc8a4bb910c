"""The transfer as videos people can play: the result with the source's music, and
a side-by-side comparison.

Both videos run at the source's decoded frame rate with one frame per source
frame, so the source's soundtrack (already cut to the source's span by
``edn fetch``) stays in sync: frame i is shown at time i / fps, exactly when the
source showed its frame i.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from edn.core.errors import EdnError
from edn.ingest.frames import FrameMeta, iter_frames, load_frames, load_image_store
from edn.labels.label_store import load_labels
from edn.ingest.media import encode_video

log = logging.getLogger(__name__)

OUTPUT_FRAMINGS = ("working", "source")


def output_region(meta: FrameMeta, framing: str) -> tuple[int, int, int, int]:
    """The working-frame box (x0, y0, x1, y1) to show: the whole working frame, or
    the part that shows the source video (its aspect ratio, no padding), with
    even sides for H.264."""
    if framing not in OUTPUT_FRAMINGS:
        raise EdnError(f"output framing {framing!r}: must be one of {', '.join(OUTPUT_FRAMINGS)}")
    width, height = meta.working_size
    if framing == "working":
        return 0, 0, width, height
    x0, y0, x1, y1 = meta.geometry.content_box
    return x0, y0, x1 - (x1 - x0) % 2, y1 - (y1 - y0) % 2


def encode_transfer(synthesized_path: str | os.PathLike, source_meta: FrameMeta, output: str | os.PathLike, *,
                    audio_from: str | os.PathLike | None, framing: str = "working", crf: int = 18) -> Path:
    """Encode synthesized frames at the source's fps, with the source's audio if it has any.

    The frames are read a chunk at a time and piped into ffmpeg
    (:func:`edn.ingest.frames.iter_frames`), so memory does not grow with the video's length."""
    frames = load_image_store(synthesized_path, "synthesized frames")
    if len(frames) != source_meta.frame_count:
        raise EdnError(f"synthesized frames {str(synthesized_path)!r}: {len(frames)} frames, but the source "
                       f"has {source_meta.frame_count}")
    if framing == "source" and tuple(frames.shape[2:0:-1]) != tuple(source_meta.working_size):
        # A pair works in its target's frame (frames.orientation): the source's padding is not there to cut.
        log.info("output framing 'source': the result is in the target's %dx%d frame, not the source's %dx%d; "
                 "the whole frame is encoded", *frames.shape[2:0:-1], *source_meta.working_size)
        framing = "working"
    x0, y0, x1, y1 = output_region(source_meta, framing)
    if framing == "working":
        x1, y1 = frames.shape[2], frames.shape[1]
    return encode_video((frame[y0:y1, x0:x1] for frame in iter_frames(frames)), output, fps=source_meta.fps,
                        size=(x1 - x0, y1 - y0), audio_from=audio_from, crf=crf, frame_count=len(frames))


def encode_comparison(source_frames_path: str | os.PathLike, labels_path: str | os.PathLike,
                      synthesized_path: str | os.PathLike, source_meta: FrameMeta, output: str | os.PathLike, *,
                      audio_from: str | os.PathLike | None = None, crf: int = 20) -> Path:
    """Source | normalized stick figure | result, side by side at the working size."""
    panels = [load_frames(source_frames_path), load_labels(labels_path),
              load_image_store(synthesized_path, "synthesized frames")]
    counts = {len(p) for p in panels}
    if counts != {source_meta.frame_count}:
        raise EdnError(f"comparison {str(output)!r}: source, labels and result have {sorted(counts)} frames, "
                       f"expected {source_meta.frame_count}")
    # The source may be landscape and the pair's labels and result portrait (frames.orientation):
    # each panel is centred on a black column of the tallest panel's height.
    height = max(p.shape[1] for p in panels)
    widths = [p.shape[2] for p in panels]
    gap = np.full((height, 4, 3), 255, np.uint8)

    def column(image: np.ndarray) -> np.ndarray:
        top = (height - image.shape[0]) // 2
        return np.pad(image, ((top, height - image.shape[0] - top), (0, 0), (0, 0)))

    def frames():
        for source, label, result in zip(*(iter_frames(panel) for panel in panels)):
            yield np.concatenate([column(source), gap, column(label), gap, column(result)], axis=1)

    return encode_video(frames(), output, fps=source_meta.fps, size=(sum(widths) + 2 * gap.shape[1], height),
                        audio_from=audio_from, crf=crf, frame_count=source_meta.frame_count)

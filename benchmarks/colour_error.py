"""How far a method's held-out person is from the real one in colour alone.

    .venv/bin/python benchmarks/colour_error.py --target woman_dog \\
        results/eval/woman_dog/edn/generated.npy results/eval/woman_dog/pose_warp/generated.npy

For each generated held-out frame set (``edn evaluate --generated``: row i is frame
``first + i`` of ``results/frames/{target}/frames.npy``, the last rows of the video),
the chroma error over the person: both frames averaged over blocks of ``--block``
pixels (4), turned to CIELAB (OpenCV's 8-bit Lab), and the distance between their
(a, b) pairs averaged over the blocks the real person covers (the plate stage's
segmentation mask, ``results/background/{target}.masks.npy``, on more than half of
the block). Brightness and texture do not count: a white shirt drawn yellow does, and
so does a magenta fringe. ST-LPIPS, the evaluation's metric, barely moves for either.

The files are only read; the figures go to standard output.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script: edn importable without installing
    sys.path.insert(0, str(ROOT))

from edn.ingest.frames import load_frames, load_image_store, load_masks  # noqa: E402


def chroma(image: np.ndarray, block: int) -> np.ndarray:
    """(a, b) of CIELAB, float [h, w, 2], of ``image`` (uint8 RGB) averaged over ``block`` x ``block`` pixels."""
    height, width = image.shape[:2]
    small = cv2.resize(image, (width // block, height // block), interpolation=cv2.INTER_AREA)
    return cv2.cvtColor(small, cv2.COLOR_RGB2LAB)[..., 1:].astype(np.float64)


def person_chroma_error(real: np.ndarray, generated: np.ndarray, masks: np.ndarray, block: int) -> float:
    """Mean (a, b) distance over the blocks the person covers, over all frames: ``real`` and ``generated``
    uint8 [N, H, W, 3], ``masks`` uint8 [N, H, W] (0-255)."""
    distances = []
    for real_frame, generated_frame, mask in zip(real, generated, masks, strict=True):
        height, width = mask.shape
        covered = cv2.resize(mask.astype(np.float32) / 255.0, (width // block, height // block),
                             interpolation=cv2.INTER_AREA) > 0.5
        difference = chroma(generated_frame, block) - chroma(real_frame, block)
        distances.append(np.sqrt((difference ** 2).sum(axis=-1))[covered])
    return float(np.concatenate(distances).mean())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("generated", nargs="+", type=Path, help="held-out frames, results/eval/T/M/generated.npy")
    parser.add_argument("--target", required=True)
    parser.add_argument("--results", type=Path, default=Path("results"))
    parser.add_argument("--block", type=int, default=4)
    args = parser.parse_args(argv)
    frames = load_frames(args.results / "frames" / args.target / "frames.npy")
    masks = load_masks(args.results / "background" / f"{args.target}.masks.npy")
    for path in args.generated:
        generated = load_image_store(path, "generated frames")
        first = len(frames) - len(generated)
        error = person_chroma_error(frames[first:], generated, masks[first:], args.block)
        print(f"{path}: chroma error over the person {error:.2f} ({len(generated)} held-out frames)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

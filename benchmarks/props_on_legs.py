"""How often a warped exemplar brings a white prop (the juggler's ball) onto the requested legs.

    .venv/bin/python benchmarks/props_on_legs.py \\
        --poses results/transfer/dancer_to_juggler/poses.parquet \\
        results/exemplars/dancer_to_juggler AS_FILMED_DIR

Each directory holds an ``edn pose-warp`` output (``frames.npy``) for the requested
poses ``--poses``: the configured one (``exemplars.repaint_props: true``) and, for
comparison, one made with ``--no-repaint-props``. For every frame it counts the
pixels in the requested legs' bands (:func:`edn.exemplars.props.limb_bands`: the
thighs below the hem, the shins above the shoes, no arm's band) brighter than
``--lightness`` (8-bit Lab L): the juggler's trousers are navy (L about 25) and
his ball white (above 200), so those pixels are the ball. It prints, per
directory, the frames with at least ``--pixels`` of them and the mean count.
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

from edn.exemplars.props import covered, limb_bands  # noqa: E402
from edn.pose.keypoints import read_pose_table  # noqa: E402


def bright_leg_pixels(image: np.ndarray, keypoints: np.ndarray, lightness: float) -> int:
    """Pixels of ``image`` uint8 [H, W, 3] in the legs' bands of ``keypoints`` (no arm's) lighter than ``lightness``."""
    height, width = image.shape[:2]
    legs, arms = limb_bands(keypoints, (width, height))
    on_legs = covered([region for region, _ in legs.values()], (height, width), above=0.5)
    on_arms = covered(arms, (height, width))
    bright = cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2LAB)[..., 0] > lightness
    return int((on_legs & ~on_arms & bright).sum())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("directories", nargs="+", type=Path, help="edn pose-warp outputs (frames.npy in each)")
    parser.add_argument("--poses", required=True, type=Path, help="the requested poses the exemplars were warped to")
    parser.add_argument("--lightness", type=float, default=190.0, help="8-bit Lab L above which a pixel is the prop's")
    parser.add_argument("--pixels", type=int, default=30, help="pixels on the legs that make a frame count")
    args = parser.parse_args(argv)
    keypoints = read_pose_table(args.poses).keypoints
    print("| exemplars | frames with a prop on the legs | mean pixels per frame |")
    print("|---|---|---|")
    for directory in args.directories:
        frames = np.load(directory / "frames.npy", mmap_mode="r")
        if len(frames) != len(keypoints):
            raise SystemExit(f"{directory}: {len(frames)} frames, {args.poses} has {len(keypoints)} poses")
        counts = np.array([bright_leg_pixels(np.asarray(frames[t]), keypoints[t], args.lightness)
                           for t in range(len(frames))])
        print(f"| {directory} | {int((counts >= args.pixels).sum())} of {len(counts)} | {counts.mean():.1f} |")


if __name__ == "__main__":
    main()

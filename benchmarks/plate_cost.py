"""What the background plate costs a method that draws the right person over it, held out.

    .venv/bin/python benchmarks/plate_cost.py --target aerobics
    .venv/bin/python benchmarks/plate_cost.py --target aerobics --plate /tmp/old_plate.png   # another plate

For every held-out frame of ``results/frames/{target}/frames.npy``, three frames scored
against the real one (ST-LPIPS over the frame and on the body box, as ``edn evaluate``
scores them; the temporal change error over the held-out clip):

- **own person over the plate**: the frame's own person, by its segmentation mask
  (``results/background/{target}.masks.npy``, stretched as the warp stretches it:
  :func:`edn.exemplars.warp.person_coverage`), composited over the plate;
- **own person warped onto its own pose**: the same person moved part by part onto its
  own pose (:func:`edn.exemplars.warp.warp_person`) over the plate, what ``pose_warp``
  would draw with a perfect exemplar;
- **nearest neighbour**: the training frame closest by eq. 6, copied whole (its own
  background, no plate).

Only the plate is in the first two: where they lose to a copied frame, the plate beside
the person is what loses (on aerobics before ``background.near_grow_px``: 0.048 on the
body box against nearest neighbour's 0.020). A still camera only: the plate is drawn as
it is. The files are only read.
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

from edn.core.options import TrainingOptions, add_arguments, first_heldout_frame  # noqa: E402
from edn.evaluation.evaluate import body_boxes, nearest_neighbour_frames  # noqa: E402
from edn.evaluation.metrics import METRICS, compare_regions, temporal_stability  # noqa: E402
from edn.exemplars.warp import person_coverage, warp_person  # noqa: E402
from edn.ingest.frames import load_frames, load_masks  # noqa: E402
from edn.pose.keypoints import read_pose_table  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--results", type=Path, default=Path("results"), help="the results folder (read only)")
    parser.add_argument("--target", required=True, help="the target whose held-out frames to score")
    parser.add_argument("--plate", type=Path, help="the plate PNG (default: results/background/{target}.png)")
    add_arguments(parser, TrainingOptions, only=("holdout_fraction",))
    args = parser.parse_args(argv)

    results = args.results
    frames = load_frames(results / "frames" / args.target / "frames.npy")
    masks = load_masks(results / "background" / f"{args.target}.masks.npy")
    poses = read_pose_table(results / "poses" / f"{args.target}.filtered.parquet")
    plate_path = args.plate or results / "background" / f"{args.target}.png"
    plate = cv2.imread(str(plate_path), cv2.IMREAD_COLOR)
    if plate is None:
        raise SystemExit(f"plate_cost: cannot read the plate {str(plate_path)!r}")
    plate = cv2.cvtColor(plate, cv2.COLOR_BGR2RGB)
    first = first_heldout_frame(len(frames), args.holdout_fraction)
    real = np.array(frames[first:])
    keypoints = poses.keypoints
    boxes, found = body_boxes(poses.replace(keypoints[first:]))
    metric = METRICS["stlpips_alex"]

    own = np.empty_like(real)
    warped = np.empty_like(real)
    for i, frame in enumerate(real):
        mask = np.asarray(masks[first + i])
        alpha = person_coverage(mask)[..., None]
        own[i] = np.clip(np.rint(alpha * frame + (1.0 - alpha) * plate), 0, 255).astype(np.uint8)
        warped[i] = warp_person(frame, mask, keypoints[first + i], keypoints[first + i]).over(plate)
    copied = nearest_neighbour_frames(poses, frames, first)

    print(f"{args.target}: held-out frames {first}-{len(frames) - 1} ({len(real)}), plate {plate_path}")
    print("| drawn | ST-LPIPS | body box | temporal error |")
    print("|---|---|---|---|")
    for name, generated in (("own person over the plate", own), ("own person warped onto its own pose", warped),
                            ("nearest neighbour", copied)):
        frame_score = float(metric.compute(generated, real).mean())
        body = float(compare_regions(metric, generated[found], real[found], boxes[found]).mean())
        temporal = temporal_stability(generated, real)["temporal_change_error"]
        print(f"| {name} | {frame_score:.5f} | {body:.4f} | {temporal:.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

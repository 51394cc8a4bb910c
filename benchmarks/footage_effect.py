"""How much of a moving camera's held-out score is its footage, and how much is the registration.

    .venv/bin/python benchmarks/footage_effect.py --truth DIR/juggler_pan.truth.csv \\
        --still results/eval/juggler --moving results/eval/juggler_pan \\
        --frames results/frames/juggler_pan/frames.npy --poses results/poses/juggler_pan.filtered.parquet

The synthetic pan (``benchmarks/synthetic_camera.py pan``) is another video than
the still demo: a 90% window, zoomed and resampled, re-encoded. So the same
method scores differently on it even with a perfect registration, and the still
demo's table is not a like-for-like reference. This script makes one: each
method's held-out frames on the still demo (``--still``/METHOD/generated.npy,
the same held-out frame numbers: the pan is made frame for frame from the demo)
are moved into the pan's camera by the known path (``S_t``: synthetic working
pixel to original working pixel, so the still frame is warped by ``inv(S_t)``,
Lanczos, the padding bars kept black) and scored against the pan's real held-out
frames, ST-LPIPS over the frame and the body box (the pan's own poses), beside
the registered pipeline's frames (``--moving``/METHOD/generated.npy) and the
still demo's own figure on its own footage. A registered pipeline as good as the
still one on this camera scores what its still counterpart moved does.

Methods are named per directory (``--methods``, default: the still demo's model
``fg`` beside the pan's ``edn``, which is the same configured model, and the
baselines).

With ``--background DIR`` (the plate stage's ``results/background``) and
``--still-frames``, a second table splits the first method's frame-level figure
on each footage into the person and the background. The person's pixels are its
segmentation mask grown by ``--grow-px``:

- *real person over the plate*: each real held-out frame with everything outside
  the person replaced by the target's plate in that frame's camera, so that it
  scores only what the plate cannot know about the frame's background;
- *person only* and *background only*: the method's frame with the real frame's
  pixels outside, or inside, the person;
- the background's mean |difference| (0-255) between a frame and the frame
  1, 5 and 30 frames before it, brought into its camera by the registration
  (Lanczos) and measured where both show background: how far one frame's
  background predicts another's on this footage.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script: benchmarks and edn importable without installing
    sys.path.insert(0, str(ROOT))

from benchmarks.synthetic_camera import read_truth  # noqa: E402
from edn.background.registration import PICTURE_INTERPOLATION, warp_into  # noqa: E402
from edn.core.errors import EdnError  # noqa: E402
from edn.core.options import first_heldout_frame  # noqa: E402
from edn.evaluation.evaluate import body_boxes  # noqa: E402
from edn.evaluation.metrics import METRICS, compare_regions  # noqa: E402
from edn.evaluation.registered import TargetView, read_target_view, seen_from  # noqa: E402
from edn.evaluation.report import read_metrics  # noqa: E402
from edn.ingest.frames import load_frames, load_masks  # noqa: E402
from edn.pose.keypoints import read_pose_table  # noqa: E402

#: still demo's method directory -> the pan's (the configured model is "fg" in the ablation, "edn" in metrics.md).
DEFAULT_METHODS = ("fg:edn", "pose_warp:pose_warp", "nearest_neighbour:nearest_neighbour",
                   "background:background")


def content_mask(truth_json: Path, size: tuple[int, int]) -> np.ndarray:
    """bool [H, W]: the synthetic working frame's picture, not its padding bars (from the ``.truth.json``)."""
    geometry = json.loads(truth_json.read_text())["synthetic_working"]
    (x0, y0), (width, height) = geometry["offset"], geometry["scaled"]
    inside = np.zeros(size[::-1], bool)
    inside[y0:y0 + height, x0:x0 + width] = True
    return inside


def moved_into_pan(frames: np.ndarray, truth: np.ndarray, first: int, inside: np.ndarray) -> np.ndarray:
    """uint8 [N, H, W, 3]: still held-out frame i seen by the pan's camera at frame first + i."""
    size = inside.shape[::-1]
    moved = np.stack([warp_into(np.asarray(frame), np.linalg.inv(truth[first + i]), size,
                                interpolation=PICTURE_INTERPOLATION) for i, frame in enumerate(frames)])
    moved[:, ~inside] = 0
    return moved


def still_figure(metrics: Path, region: str) -> float:
    """The still demo's own ST-LPIPS on ``region`` from its metrics.csv."""
    table = read_metrics([metrics])
    row = table[(table.region == region) & (table.metric == "stlpips_alex")]
    return float(row.value.iloc[0]) if len(row) else float("nan")


#: The frames back from a frame whose background the registered earlier frame is compared with.
LAGS = (1, 5, 30)


def grown_person(masks: np.ndarray, grow_px: int) -> np.ndarray:
    """bool [N, H, W]: each person mask grown by ``grow_px`` pixels (a square)."""
    kernel = np.ones((2 * grow_px + 1, 2 * grow_px + 1), np.uint8)
    return np.stack([cv2.dilate(np.asarray(mask, np.uint8), kernel) > 0 for mask in masks])


def background_change(frames: np.ndarray, person: np.ndarray, view: TargetView, first: int, lag: int) -> float:
    """Mean |frame t - frame (t - lag) in t's camera| over the background both show, t over the held-out span;
    ``person`` bool [N, H, W]: each frame's person pixels (:func:`grown_person`), left out in both frames."""
    differences = []
    for t in range(first, len(frames)):
        earlier, now = view.camera.transform(t - lag), view.camera.transform(t)
        seen, valid = seen_from(np.asarray(frames[t - lag]), earlier, now, view.content_box)
        hidden, _ = seen_from(person[t - lag].astype(np.uint8), earlier, now)  # where the earlier person lands
        both = valid & (hidden == 0) & ~person[t]
        differences.append(np.abs(seen.astype(np.float32) - np.asarray(frames[t], np.float32))[both].mean())
    return float(np.mean(differences))


def split_by_person(name: str, generated: np.ndarray, frames: np.ndarray, masks: np.ndarray, view: TargetView,
                    first: int, grow_px: int) -> str:
    """A table row: ``generated``'s frame-level ST-LPIPS, split into the person and the background."""
    metric = METRICS["stlpips_alex"].compute
    real = np.array(frames[first:])
    grown = grown_person(masks, grow_px)  # once, for the split and every lag's earlier frames
    person = grown[first:, ..., None]
    over_plate = np.where(person, real, np.stack([view.plate(t) for t in range(first, len(frames))]))
    figures = [metric(images, real).mean() for images in
               (over_plate, generated, np.where(person, generated, real), np.where(person, real, generated))]
    changes = " / ".join(f"{background_change(frames, grown, view, first, lag):.2f}" for lag in LAGS)
    return (f"| {name} | {figures[0]:.4f} | {figures[1]:.4f} | {figures[2]:.4f} | {figures[3]:.4f} "
            f"| {changes} | {person.mean():.3f} |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--truth", type=Path, required=True, help="the pan's .truth.csv (its .truth.json beside it)")
    parser.add_argument("--still", type=Path, required=True, help="the still demo's results/eval/TARGET")
    parser.add_argument("--moving", type=Path, required=True, help="the pan's results/eval/TARGET")
    parser.add_argument("--frames", type=Path, required=True, help="the pan's frames.npy")
    parser.add_argument("--poses", type=Path, required=True, help="the pan's filtered pose table")
    parser.add_argument("--methods", nargs="+", default=list(DEFAULT_METHODS),
                        help="STILL:MOVING method directory pairs")
    parser.add_argument("--holdout-fraction", type=float, default=0.1)
    parser.add_argument("--background", type=Path,
                        help="the plate stage's results/background: split the first method into person and background")
    parser.add_argument("--still-frames", type=Path, help="the still demo's frames.npy (with --background)")
    parser.add_argument("--grow-px", type=int, default=7, help="pixels the person mask grows by (with --background)")
    args = parser.parse_args(argv)

    truth = read_truth(args.truth)
    frames = load_frames(args.frames)
    if len(truth) != len(frames):
        raise EdnError(f"known path {str(args.truth)!r}: {len(truth)} frames, the pan has {len(frames)}")
    first = first_heldout_frame(len(frames), args.holdout_fraction)
    real = np.array(frames[first:])
    inside = content_mask(args.truth.with_name(args.truth.name.replace(".truth.csv", ".truth.json")),
                          real.shape[2:0:-1])
    poses = read_pose_table(args.poses)
    boxes, found = body_boxes(poses.replace(poses.keypoints[first:]))
    metric = METRICS["stlpips_alex"]

    def scores(generated: np.ndarray) -> tuple[float, float]:
        return (float(metric.compute(generated, real).mean()),
                float(compare_regions(metric, generated[found], real[found], boxes[found]).mean()))

    print(f"held-out frames {first}-{len(frames) - 1} ({len(real)}), ST-LPIPS frame / body box")
    print("| method | still demo, its footage | still demo moved onto the pan | the pan's pipeline |")
    print("|---|---|---|---|")
    for pair in args.methods:
        still_name, _, moving_name = pair.partition(":")
        still = load_frames(args.still / still_name / "generated.npy")
        if len(still) != len(real):
            raise EdnError(f"{args.still / still_name}: {len(still)} held-out frames, the pan has {len(real)}")
        moved = scores(moved_into_pan(still, truth, first, inside))
        pipeline = scores(np.array(load_frames(args.moving / (moving_name or still_name) / "generated.npy")))
        own = [still_figure(args.still / still_name / "metrics.csv", region) for region in ("full", "body")]
        print(f"| {still_name} | {own[0]:.4f} / {own[1]:.3f} | {moved[0]:.4f} / {moved[1]:.3f} "
              f"| {pipeline[0]:.4f} / {pipeline[1]:.3f} |")
    if args.background is not None:
        if args.still_frames is None:
            raise EdnError("--background needs --still-frames, the still demo's frames.npy")
        still_name, _, moving_name = args.methods[0].partition(":")
        print(f"\n{still_name} split at the person (its mask grown by {args.grow_px} px), ST-LPIPS over the frame; "
              f"the background's change in grey levels")
        print("| footage | real person over the plate | the method | person only | background only "
              "| background change, 1 / 5 / 30 frames | person's share |")
        print("|---|---|---|---|---|---|---|")
        for eval_dir, name, footage in ((args.still, still_name, args.still_frames),
                                        (args.moving, moving_name or still_name, args.frames)):
            target = eval_dir.name
            frames_of = load_frames(footage)
            masks = load_masks(args.background / f"{target}.masks.npy")
            view = read_target_view(args.background / f"{target}.mosaic.png", args.background / f"{target}.camera.csv",
                                    args.background / f"{target}.json", frames_of)
            generated = np.array(load_frames(eval_dir / name / "generated.npy"))
            print(split_by_person(target, generated, frames_of, masks, view, first, args.grow_px))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Close-ups of held-out frames, method by method: the body, the face and each hand, pixels enlarged.

    # the README's figure, from the evaluation's outputs (results/eval/{target}/{method}/generated.npy):
    .venv/bin/python benchmarks/close_ups.py --target juggler \\
        --methods nearest_neighbour pose_warp ts ts_exemplar fg_exemplar paper_fg \\
        --output resources/readme/close_ups.png
    # chosen held-out frames (0 is the first held-out frame), another results folder:
    .venv/bin/python benchmarks/close_ups.py --results /path/to/results --target juggler \\
        --methods nearest_neighbour pose_warp --heldout-frames 3 17 --output /tmp/close_ups.png

``edn evaluate`` writes each method's held-out frames to
``results/eval/{target}/{method}/generated.npy``: row i is frame ``first + i`` of
``results/frames/{target}/frames.npy``, where ``first`` is the held-out boundary of
``--holdout-fraction`` (``edn.core.options.first_heldout_frame``). The boxes are the
ones the evaluation scores, taken from the real frame's own pose: the body box of
``edn.evaluation.evaluate.body_boxes`` (from ``results/poses/{target}.filtered.parquet``)
and the face box of ``results/labels/{target}/index.csv`` (``edn.labels.render.face_boxes``,
moved into the person's window). The evaluation has no hand box (it scores the
hands by their keypoints only), so each hand's box here is a square around its 21
keypoints (:func:`hand_boxes`).

The figure has one block per held-out frame, side by side; in a block, the first row
is the real frame, then one row per method; the columns are the body box, the face
box, the person's left hand and right hand. Each crop is enlarged by a whole factor
with nearest-neighbour scaling, so that its pixels stay visible; a body box taller
than the cell is shrunk to fit instead (area interpolation). A box whose keypoints
are missing in the real frame's pose is a grey cell that says so. The PNG is kept
under ``--max-kb`` by shrinking the body column, then the face's enlargement (:func:`fitted_png`).

The files are only read; the one file written is ``--output``.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script: benchmarks and edn importable without installing
    sys.path.insert(0, str(ROOT))

from edn.core.errors import EdnError  # noqa: E402
from edn.core.options import TrainingOptions, add_arguments, checked_argument, first_heldout_frame  # noqa: E402
from edn.pose.keypoints import PoseSequence  # noqa: E402
from edn.pose.skeleton import LEFT_HAND, RIGHT_HAND  # noqa: E402

#: The columns, left to right.
COLUMNS = ("body", "face", "left hand", "right hand")
#: A hand's box: its keypoints' extent grown by this fraction on each side, at least half a face box's side.
HAND_BOX_MARGIN = 0.25
GREY = (128, 128, 128)
BACKGROUND = (32, 32, 32)
HEADER_HEIGHT = 34
GAP = 4


def hand_boxes(poses: PoseSequence, hand: slice) -> tuple[np.ndarray, np.ndarray]:
    """Per frame: a square box (x0, y0, x1, y1) int [T, 4] around one hand's keypoints (``LEFT_HAND`` or
    ``RIGHT_HAND``) and whether the hand has any [T].

    The side is the keypoints' larger extent grown by :data:`HAND_BOX_MARGIN` on each side, at least half
    the face box's side (``edn.labels.render.face_box_side``); the box is moved (not shrunk) into the frame,
    as the face box is."""
    from edn.labels.render import face_box_side

    width, height = poses.frame_size
    xy, present = poses.xy[:, hand].astype(np.float64), poses.confidence[:, hand] > 0
    found = present.any(axis=1)
    low = np.where(present[..., None], xy, np.inf).min(axis=1)
    high = np.where(present[..., None], xy, -np.inf).max(axis=1)
    low, high = np.where(found[:, None], low, 0.0), np.where(found[:, None], high, 0.0)
    extent = (high - low).max(axis=1)
    side = np.maximum(np.ceil(extent * (1 + 2 * HAND_BOX_MARGIN)), face_box_side(width) // 2).astype(np.int64)
    side = np.minimum(side, min(width, height))
    centre = (low + high) / 2
    x0 = np.clip(np.round(centre[:, 0] - side / 2), 0, width - side).astype(np.int64)
    y0 = np.clip(np.round(centre[:, 1] - side / 2), 0, height - side).astype(np.int64)
    boxes = np.stack([x0, y0, x0 + side, y0 + side], axis=1)
    return np.where(found[:, None], boxes, 0), found


@dataclass(frozen=True)
class HeldOut:
    """The held-out span: the real frames, their poses, the first held-out frame's number, and per frame each
    column's box [T, 4] and whether its keypoints are there [T]."""

    real: np.ndarray
    poses: PoseSequence
    first: int
    boxes: dict[str, tuple[np.ndarray, np.ndarray]]


def held_out(results: Path, target: str, holdout_fraction: float) -> HeldOut:
    """Read the target's frames, poses and label index under ``results`` and find the evaluation's boxes."""
    from edn.evaluation.evaluate import HeldOutClip
    from edn.ingest.frames import load_frames
    from edn.labels.label_store import read_label_index
    from edn.pose.keypoints import read_pose_table

    frames = load_frames(results / "frames" / target / "frames.npy")
    poses = read_pose_table(results / "poses" / f"{target}.filtered.parquet")
    index = read_label_index(results / "labels" / target / "index.csv")
    first = first_heldout_frame(len(frames), holdout_fraction)
    clip = HeldOutClip.from_target(frames, poses, index, first)
    boxes = {
        "body": (clip.body_boxes, clip.has_body),
        "face": (clip.index.face_boxes.astype(np.int64), clip.index.has_face),
        "left hand": hand_boxes(clip.poses, LEFT_HAND),
        "right hand": hand_boxes(clip.poses, RIGHT_HAND),
    }
    return HeldOut(real=clip.real, poses=clip.poses, first=first, boxes=boxes)


def read_generated(results: Path, target: str, methods: list[str], real: np.ndarray) -> dict[str, np.ndarray]:
    """Each method's generated held-out frames, memory-mapped, checked against the real ones' shape."""
    from edn.ingest.frames import load_image_store

    generated = {}
    for method in methods:
        path = results / "eval" / target / method / "generated.npy"
        store = load_image_store(path, "generated frames")
        if store.shape != real.shape:
            raise EdnError(f"generated frames {str(path)!r}: {list(store.shape)}, the held-out real frames are "
                           f"{list(real.shape)} (another target, or another --holdout-fraction?)")
        generated[method] = store
    return generated


def default_frames(clip: HeldOut, count: int) -> list[int]:
    """``count`` held-out frames spread over the span, among those where the most of the four boxes have
    keypoints (both hands, if any frame shows both)."""
    shown = sum(found.astype(int) for _, found in clip.boxes.values())
    candidates = np.flatnonzero(shown == shown.max())
    picks = np.linspace(0, len(candidates) - 1, min(count, len(candidates))).round().astype(int)
    return [int(candidates[i]) for i in dict.fromkeys(picks)]


def enlarge(crop: np.ndarray, cell: int, max_width: int | None = None) -> np.ndarray:
    """``crop`` scaled to fit ``cell`` pixels high (and ``max_width`` wide, default ``cell``): by the largest
    whole factor with nearest-neighbour scaling, or shrunk by area interpolation when it does not fit at 1x."""
    height, width = crop.shape[:2]
    max_width = cell if max_width is None else max_width
    fit = min(cell / height, max_width / width)
    if fit >= 1:
        factor = int(fit)
        return np.ascontiguousarray(np.repeat(np.repeat(crop, factor, axis=0), factor, axis=1))
    size = (max(1, int(width * fit)), max(1, int(height * fit)))
    return cv2.resize(np.ascontiguousarray(crop), size, interpolation=cv2.INTER_AREA)


def _text_width(text: str, scale: float) -> int:
    return cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)[0][0]


def _text(image: np.ndarray, text: str, origin: tuple[int, int], scale: float = 0.4,
          colour: tuple[int, int, int] = (255, 255, 255)) -> None:
    cv2.putText(image, text, origin, cv2.FONT_HERSHEY_SIMPLEX, scale, colour, 1, cv2.LINE_AA)


def missing_cell(height: int, width: int) -> np.ndarray:
    """The grey cell of a box whose keypoints are missing."""
    cell = np.full((height, width, 3), GREY, np.uint8)
    _text(cell, "no keypoints", (4, height // 2 + 4), 0.4, (255, 255, 255))
    return cell


def _placed(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """``image`` centred on a ``height`` x ``width`` background."""
    out = np.full((height, width, 3), BACKGROUND, np.uint8)
    top, left = (height - image.shape[0]) // 2, (width - image.shape[1]) // 2
    out[top:top + image.shape[0], left:left + image.shape[1]] = image
    return out


def frame_block(t: int, clip: HeldOut, rows: dict[str, np.ndarray], cell: int, body_cell: int) -> np.ndarray:
    """One held-out frame's block: a header, then one row per entry of ``rows`` (name: frames), ``cell``
    pixels high, the four columns side by side (the body fitted to ``body_cell`` high, twice that wide)."""
    columns = []
    for column in COLUMNS:
        boxes, found = clip.boxes[column]
        limits = (body_cell, 2 * body_cell) if column == "body" else (cell, cell)
        caption, width = column, limits[1] if column != "body" else body_cell
        if found[t]:
            x0, y0, x1, y1 = (int(v) for v in boxes[t])
            shown = enlarge(np.asarray(clip.real[t, y0:y1, x0:x1]), *limits)
            width = shown.shape[1] if column == "body" else cell
            scale = shown.shape[0] / (y1 - y0)
            caption += f" {x1 - x0}x{y1 - y0} " + (f"x{scale:.0f}" if scale >= 1 else f"x{scale:.2f}")
        width = max(width, _text_width(caption, 0.38) + 4)
        cells = []
        for frames in rows.values():
            if found[t]:
                cells.append(_placed(enlarge(np.asarray(frames[t, y0:y1, x0:x1]), *limits), cell, width))
            else:
                cells.append(missing_cell(cell, width))
        title = np.full((HEADER_HEIGHT // 2, width, 3), 255, np.uint8)
        _text(title, caption, (2, 12), 0.38, (0, 0, 0))
        gap = np.full((GAP, width, 3), 255, np.uint8)
        columns.append(np.concatenate([title] + [part for c in cells for part in (gap, c)], axis=0))
    vertical = np.full((columns[0].shape[0], GAP, 3), 255, np.uint8)
    body = np.concatenate([part for c in columns for part in (c, vertical)][:-1], axis=1)
    header = np.full((HEADER_HEIGHT // 2, body.shape[1], 3), 255, np.uint8)
    _text(header, f"held-out frame {t} (frame {clip.first + t})", (2, 12), 0.42, (0, 0, 0))
    return np.concatenate([header, body], axis=0)


def close_ups(clip: HeldOut, generated: dict[str, np.ndarray], frames: list[int], cell: int,
              body_cell: int) -> np.ndarray:
    """The figure, RGB uint8: a label column, then one block per held-out frame in ``frames``."""
    rows = {"real": clip.real, **generated}
    blocks = [frame_block(t, clip, rows, cell, body_cell) for t in frames]
    height = cell
    label_width = max(_text_width(name, 0.45) for name in rows) + 8
    labels = np.full((blocks[0].shape[0], label_width, 3), 255, np.uint8)
    for i, name in enumerate(rows):
        top = HEADER_HEIGHT + GAP + i * (height + GAP)
        _text(labels, name, (4, top + height // 2 + 4), 0.45, (0, 0, 0))
    spacer = np.full((blocks[0].shape[0], 3 * GAP, 3), 255, np.uint8)
    return np.concatenate([labels] + [part for b in blocks for part in (spacer, b)], axis=1)


def encode_png(image: np.ndarray) -> bytes:
    ok, data = cv2.imencode(".png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 9])
    if not ok:
        raise EdnError("close-ups: PNG encoding failed")
    return data.tobytes()


def fitted_png(clip: HeldOut, generated: dict[str, np.ndarray], frames: list[int], cell: int,
               max_bytes: int) -> tuple[bytes, tuple[int, ...], int, int]:
    """The figure's PNG, its shape and the sizes used (the cell, the body's height), at most ``max_bytes`` if it
    can be: the body column (native pixels, what costs the most) is shrunk first, by a fifth at a time down to a
    third of the cell; then the cell steps down to the next whole multiple of the face box's side (the face
    enlarged one step less) and the body starts again; the smallest try is returned if none fits."""
    face_side = int(max(1, (clip.boxes["face"][0][:, 3] - clip.boxes["face"][0][:, 1]).max()))
    while True:
        body_cell = cell
        while True:
            image = close_ups(clip, generated, frames, cell, body_cell)
            data = encode_png(image)
            if len(data) <= max_bytes:
                return data, image.shape, cell, body_cell
            if body_cell * 0.8 < cell / 3:
                break
            body_cell = int(body_cell * 0.8)
        smaller = (cell - 1) // face_side * face_side
        if smaller < 16:
            return data, image.shape, cell, body_cell
        cell = smaller


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--results", type=Path, default=Path("results"), help="the results folder (read only; "
                        "default: results)")
    parser.add_argument("--target", required=True, help="the target whose held-out frames to show")
    parser.add_argument("--methods", nargs="+",
                        help="methods, one row each, in this order (results/eval/TARGET/METHOD/generated.npy; "
                             "default: every method there, by name)")
    parser.add_argument("--heldout-frames", type=int, nargs="+", metavar="I",
                        help="held-out frames to show, 0 = the first held-out frame (default: --count frames "
                             "spread over the span, among those that show the most of body, face and hands)")
    parser.add_argument("--count", type=int, default=3, help="how many frames by default (default 3)")
    parser.add_argument("--cell", type=int, default=192,
                        help="height of a row in pixels: the face and hands are enlarged by the largest whole "
                             "factor that fits, the body fitted to it, up to twice as wide (default 192)")
    parser.add_argument("--max-kb", type=int, default=400, help="largest PNG in KB (1000 bytes); the body "
                                                                "column, then the cells, shrink to fit (default 400)")
    add_arguments(parser, TrainingOptions, only=("holdout_fraction",))
    parser.add_argument("--output", type=Path, required=True, help="PNG to write")
    args = parser.parse_args(argv)
    try:
        from edn.core.atomic import atomic_path

        if args.cell < 16:
            raise EdnError(f"--cell {args.cell}: must be at least 16")
        if args.count < 1:
            raise EdnError(f"--count {args.count}: must be at least 1")
        if args.output.suffix.lower() != ".png":
            raise EdnError(f"output {str(args.output)!r}: must end in .png")
        holdout_fraction = checked_argument(TrainingOptions, args, "holdout_fraction")
        methods = args.methods
        if methods is None:
            folder = args.results / "eval" / args.target
            methods = sorted(p.parent.name for p in folder.glob("*/generated.npy"))
            if not methods:
                raise EdnError(f"results {str(folder)!r}: no method's generated.npy (give --methods, or --results)")
        clip = held_out(args.results, args.target, holdout_fraction)
        generated = read_generated(args.results, args.target, methods, clip.real)
        frames = args.heldout_frames or default_frames(clip, args.count)
        for t in frames:
            if not 0 <= t < len(clip.real):
                raise EdnError(f"held-out frame {t}: the held-out span of {args.target!r} has frames 0 to "
                               f"{len(clip.real) - 1}")
        data, shape, cell, body_cell = fitted_png(clip, generated, frames, args.cell, args.max_kb * 1000)
        args.output.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(args.output) as temporary:
            temporary.write_bytes(data)
        print(f"{args.output}: {shape[1]}x{shape[0]}, {len(data) / 1000:.0f} KB; held-out frames "
              f"{', '.join(str(t) for t in frames)} (frames {', '.join(str(clip.first + t) for t in frames)}); "
              f"cell {cell} px, body {body_cell} px; rows: real, {', '.join(methods)}")
        if len(data) > args.max_kb * 1000:
            print(f"edn: warning: {args.output} is {len(data) / 1000:.0f} KB, above --max-kb {args.max_kb} "
                  "(fewer frames or methods make it smaller)", file=sys.stderr)
    except (EdnError, OSError, ValueError) as error:
        print(f"edn: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

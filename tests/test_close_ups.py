"""benchmarks/close_ups.py: the close-up figure of held-out frames, on a tiny target made here (noise frames,
a standing figure's poses, its label index, two methods' generated frames)."""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks import close_ups  # noqa: E402
from edn.labels.label_store import write_label_index  # noqa: E402
from edn.labels.render import face_box_side, label_index  # noqa: E402
from edn.pose.keypoints import PoseSequence, write_pose_table  # noqa: E402
from edn.pose.skeleton import LEFT_HAND, RIGHT_HAND  # noqa: E402
from tests.synthetic_poses import standing_pose  # noqa: E402

SIZE = (128, 64)  # width, height
FRAMES, HOLDOUT, FIRST = 10, 0.4, 6  # frames 6..9 are held out
CELL = 48
NO_RIGHT_HAND = 2  # held-out frame whose right hand has no keypoints


@pytest.fixture
def target(tmp_path: Path) -> Path:
    """results/ of a target ``t`` with methods ``same`` (the real frames) and ``inverted`` (255 - real)."""
    results = tmp_path / "results"
    rng = np.random.default_rng(7)
    frames = rng.integers(0, 256, size=(FRAMES, SIZE[1], SIZE[0], 3), dtype=np.uint8)
    poses = np.stack([standing_pose(50 + 2 * t, 58, 48) for t in range(FRAMES)])
    poses[FIRST + NO_RIGHT_HAND, RIGHT_HAND] = 0
    sequence = PoseSequence(keypoints=poses.astype(np.float32), frame_size=SIZE, detector="synthetic")
    (results / "frames" / "t").mkdir(parents=True)
    np.save(results / "frames" / "t" / "frames.npy", frames)
    (results / "poses").mkdir()
    write_pose_table(results / "poses" / "t.filtered.parquet", sequence)
    (results / "labels" / "t").mkdir(parents=True)
    write_label_index(results / "labels" / "t" / "index.csv", label_index(sequence))
    for method, generated in (("same", frames[FIRST:]), ("inverted", 255 - frames[FIRST:])):
        (results / "eval" / "t" / method).mkdir(parents=True)
        np.save(results / "eval" / "t" / method / "generated.npy", generated)
    return results


def _read(path: Path) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def _found_at(image: np.ndarray, patch: np.ndarray) -> list[tuple[int, int]]:
    """Every (x, y) where ``patch`` appears exactly in ``image``."""
    h, w = patch.shape[:2]
    ys, xs = np.nonzero(np.all(image[:image.shape[0] - h + 1, :image.shape[1] - w + 1] == patch[0, 0], axis=-1))
    return [(int(x), int(y)) for y, x in zip(ys, xs) if np.array_equal(image[y:y + h, x:x + w], patch)]


def _run(results: Path, output: Path, *extra: str) -> int:
    return close_ups.main(["--results", str(results), "--target", "t", "--holdout-fraction", str(HOLDOUT),
                           "--cell", str(CELL), "--max-kb", "10000", "--output", str(output), *extra])


def test_grid_shape_and_crops_match_the_source_pixels(target: Path, tmp_path: Path):
    output = tmp_path / "out" / "close_ups.png"
    assert _run(target, output, "--methods", "same", "inverted", "--heldout-frames", "1", "3") == 0
    image = _read(output)
    rows = 3  # real, same, inverted
    assert image.shape[0] == close_ups.HEADER_HEIGHT + rows * (CELL + close_ups.GAP)
    frames = np.load(target / "frames" / "t" / "frames.npy")
    clip = close_ups.held_out(target, "t", HOLDOUT)
    # The PNG is the figure, pixel for pixel; one block per frame, side by side.
    generated = {"same": frames[FIRST:], "inverted": 255 - frames[FIRST:]}
    assert np.array_equal(image, close_ups.close_ups(clip, generated, [1, 3], CELL, CELL))
    one = close_ups.close_ups(clip, generated, [1], CELL, CELL)
    assert one.shape[0] == image.shape[0] and one.shape[1] < image.shape[1]
    for t in (1, 3):
        real = frames[FIRST + t]
        for column, factor in (("face", CELL // face_box_side(SIZE[0])), ("left hand", CELL // 8)):
            boxes, found = clip.boxes[column]
            assert found[t]
            x0, y0, x1, y1 = boxes[t]
            crop = real[y0:y1, x0:x1]
            big = np.repeat(np.repeat(crop, factor, axis=0), factor, axis=1)
            assert big.shape[:2] == (CELL, CELL)
            # The real crop appears in the real row and, one row below, in the "same" row; its inverse in the
            # "inverted" row below them, and nowhere else.
            places = _found_at(image, big)
            assert len(places) == 2, (column, t, places)
            (xa, ya), (xb, yb) = sorted(places, key=lambda p: p[1])
            assert xa == xb and yb - ya == CELL + close_ups.GAP
            assert ya == close_ups.HEADER_HEIGHT + close_ups.GAP
            inverted = _found_at(image, 255 - big)
            assert inverted == [(xa, yb + CELL + close_ups.GAP)]


def test_missing_hand_is_a_grey_cell(target: Path, tmp_path: Path):
    clip = close_ups.held_out(target, "t", HOLDOUT)
    assert not clip.boxes["right hand"][1][NO_RIGHT_HAND] and clip.boxes["right hand"][1][1]
    generated = close_ups.read_generated(target, "t", ["inverted"], clip.real)
    image = close_ups.close_ups(clip, generated, [NO_RIGHT_HAND], CELL, CELL)
    grey = np.all(image == close_ups.GREY, axis=-1)
    for row in range(2):  # real, inverted: the last column (the right hand) is grey, text inside
        top = close_ups.HEADER_HEIGHT + close_ups.GAP + row * (CELL + close_ups.GAP)
        band = grey[top:top + CELL]
        cell = band[:, -CELL:]
        assert cell.mean() > 0.8 and not cell.all()  # "no keypoints" written on it
    # A frame with every box has no grey cell there.
    image = close_ups.close_ups(clip, generated, [1], CELL, CELL)
    assert np.all(image[close_ups.HEADER_HEIGHT:, -CELL:] == close_ups.GREY, axis=-1).mean() < 0.01


def test_default_frames_show_every_part(target: Path):
    clip = close_ups.held_out(target, "t", HOLDOUT)
    picks = close_ups.default_frames(clip, 3)
    assert NO_RIGHT_HAND not in picks and len(picks) == 3 and picks == sorted(picks)
    assert all(found[t] for t in picks for _, found in clip.boxes.values())


def test_hand_box_holds_the_hand(target: Path):
    clip = close_ups.held_out(target, "t", HOLDOUT)
    for hand, column in ((LEFT_HAND, "left hand"), (RIGHT_HAND, "right hand")):
        boxes, found = clip.boxes[column]
        points = clip.poses.keypoints[:, hand]
        for t in np.flatnonzero(found):
            x0, y0, x1, y1 = boxes[t]
            assert x1 - x0 == y1 - y0 >= face_box_side(SIZE[0]) // 2
            assert (points[t, :, 0] >= x0).all() and (points[t, :, 0] < x1).all()
            assert (points[t, :, 1] >= y0).all() and (points[t, :, 1] < y1).all()


def test_size_limit_shrinks_the_body_column(target: Path, tmp_path: Path, capsys):
    clip = close_ups.held_out(target, "t", HOLDOUT)
    generated = close_ups.read_generated(target, "t", ["same", "inverted"], clip.real)
    frames = close_ups.default_frames(clip, 3)
    full = len(close_ups.encode_png(close_ups.close_ups(clip, generated, frames, CELL, CELL)))
    body = int(CELL * 0.8)
    shrunk = len(close_ups.encode_png(close_ups.close_ups(clip, generated, frames, CELL, body)))
    limit_kb = -(-shrunk // 1000)
    assert limit_kb * 1000 < full  # the full-size figure does not fit, the first smaller body does
    output = tmp_path / "small.png"
    assert close_ups.main(["--results", str(target), "--target", "t", "--holdout-fraction", str(HOLDOUT),
                           "--cell", str(CELL), "--max-kb", str(limit_kb), "--methods", "same", "inverted",
                           "--output", str(output)]) == 0
    assert f"cell {CELL} px, body {body} px" in capsys.readouterr().out
    assert output.stat().st_size == shrunk <= limit_kb * 1000


def test_bad_input_is_one_line_and_writes_nothing(target: Path, tmp_path: Path, capsys):
    output = tmp_path / "close_ups.png"
    assert _run(target, output, "--methods", "same", "missing") == 1
    error = capsys.readouterr().err
    assert error.startswith("edn: generated frames") and "missing" in error and "file not found" in error
    assert error.count("\n") == 1 and not output.exists()
    assert _run(target, output, "--methods", "same", "--heldout-frames", "4") == 1
    assert "held-out frame 4" in capsys.readouterr().err and not output.exists()
    # Another holdout fraction: the generated frames no longer line up with the held-out span.
    assert close_ups.main(["--results", str(target), "--target", "t", "--holdout-fraction", "0.2",
                           "--methods", "same", "--output", str(output)]) == 1
    assert "another --holdout-fraction" in capsys.readouterr().err and not list(tmp_path.glob("close_ups*"))


def test_help():
    with pytest.raises(SystemExit) as exit_:
        close_ups.main(["--help"])
    assert exit_.value.code == 0

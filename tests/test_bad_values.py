"""Values out of range and a label index cut mid-row, through the real CLI: each is one
`edn:` error line naming the option or the file, before any library sees the value
(an enormous width or timeout used to end in OverflowError, an enormous seed in
numpy's ValueError, a cut index.csv in a tensor-shape RuntimeError deep in training).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from helpers import DEMO, leftovers, run_edn
from training_data import background_args, write_subject


@pytest.fixture(scope="module")
def subject(tmp_path_factory) -> dict[str, Path]:
    """A 12-frame synthetic target (frames, labels, index, background files) at 128x64."""
    return write_subject(tmp_path_factory.mktemp("subject"), frames=12, size=(128, 64))


@pytest.fixture(scope="module")
def poses(tmp_path_factory) -> Path:
    from edn.pose.keypoints import write_pose_table
    from synthetic_poses import walking_sequence

    path = tmp_path_factory.mktemp("poses") / "poses.parquet"
    write_pose_table(path, walking_sequence(np.linspace(200, 240, 30), np.linspace(120, 150, 30)))
    return path


def _decode(out: Path, *extra) -> tuple:
    return ("decode", "--video", DEMO / "source_dancer.mp4", "--frames", out / "frames.npy", "--meta",
            out / "meta.json", *extra)


def _train(subject: dict[str, Path], perceptual: Path, out: Path, *extra, index: Path | None = None) -> tuple:
    return ("train", "--stage", "global", "--frames", subject["frames"], "--labels", subject["labels"], "--index",
            index or subject["index"], "--perceptual", perceptual, "--output", out / "global.pt", "--run-dir",
            out / "run", "--preset", "tiny", "--iterations", 2, "--no-progress", *background_args(subject), *extra)


#: name -> (builder(out, subject, poses, perceptual, server URL) of the arguments, what the error line says)
RANGE_CASES: dict[str, tuple[Callable, tuple[str, ...]]] = {
    "enormous width": (lambda out, s, p, w, url: _decode(out, "--width", 10**22, "--height", 128),
                       ("option width 10000000000000000000000", "must be at most 8192")),
    # At 1001 fps the 5 s demo would decode to 5100 frames: a disk filled by a typo.
    "frame rate past 1000": (lambda out, s, p, w, url: _decode(out, "--fps", "1001", "--width", 64, "--height", 64),
                             ("option fps '1001'", "must be at most 1000")),
    # nan passes every comparison: the fetch used to go on and blame the video ("only 5.10 s of the nan s").
    "span starting at nan": (
        lambda out, s, p, w, url: ("fetch", "--source", DEMO / "source_dancer.mp4", "--output", out / "video.mp4",
                                   "--start", "nan"),
        ("option start nan", "must be from 0 to 1000000 seconds")),
    "enormous download timeout": (
        lambda out, s, p, w, url: ("fetch", "--source", url, "--output", out / "video.mp4", "--cache-dir",
                                   out / "cache", "--timeout-s", "1e300"),
        ("option timeout_s 1e+300", "must be at most 3600")),
    "enormous filter width": (
        lambda out, s, p, w, url: ("filter-poses", "--poses", p, "--output", out / "f.parquet", "--sigma-frames",
                                   "1e300"),
        ("option sigma_frames 1e+300", "must be at most 1000")),
    "infinite filter width": (
        lambda out, s, p, w, url: ("filter-poses", "--poses", p, "--output", out / "f.parquet", "--sigma-frames",
                                   "inf"),
        ("option sigma_frames inf", "must be a finite number")),
    "enormous seed": (lambda out, s, p, w, url: _train(s, w, out, "--seed", 2**70),
                      ("option seed 1180591620717411303424", "must be at most 4294967295")),
}


@pytest.mark.parametrize("name", list(RANGE_CASES))
def test_a_value_out_of_range_is_one_error_line(name: str, subject, poses: Path, perceptual_weights: Path,
                                                 http_server, tmp_path: Path) -> None:
    (http_server.directory / "dancer.mp4").write_bytes((DEMO / "source_dancer.mp4").read_bytes())
    out = tmp_path / "out"
    out.mkdir()
    build, says = RANGE_CASES[name]
    result = run_edn(*build(out, subject, poses, perceptual_weights, f"{http_server.url}/dancer.mp4"))
    assert result.returncode == 1, result.stderr[-3000:]
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    assert len(result.error_lines) == 1, result.stderr[-3000:]
    for fragment in says:
        assert fragment in result.error_lines[0], result.error_lines[0]
    assert not [p for p in out.rglob("*") if p.is_file()], "an output was written"


def _cut_mid_row(index: Path, output: Path) -> Path:
    """``index`` without the last 7 bytes: its last row stops inside the person's window."""
    output.write_bytes(index.read_bytes()[:-7])
    return output


def _with_a_word(index: Path, output: Path) -> Path:
    lines = index.read_text().splitlines(keepends=True)
    first = lines[1].split(",")
    lines[1] = ",".join([first[0], first[1], "left", *first[3:]])
    output.write_text("".join(lines))
    return output


@pytest.mark.parametrize("damage, says", [
    (_cut_mid_row, ("line 13 (frame 11) has no whole number in", "window_y1", "the file ends mid-row")),
    (_with_a_word, ("line 2 (frame 0) has no whole number in face_x0",)),
])
def test_a_damaged_label_index_is_refused_before_training(damage, says, subject, perceptual_weights: Path,
                                                         tmp_path: Path) -> None:
    """The composite method reads each frame's window from index.csv: a cut row used to
    become garbage coordinates, found only when training cropped with them."""
    index = damage(subject["index"], tmp_path / "index.csv")
    out = tmp_path / "out"
    result = run_edn(*_train(subject, perceptual_weights, out, index=index))
    assert result.returncode == 1, result.stderr[-3000:]
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    assert len(result.error_lines) == 1, result.stderr[-3000:]
    line = result.error_lines[0]
    assert f"label index {str(index)!r}" in line and "snakemake --forcerun render_subject_labels" in line, line
    for fragment in says:
        assert fragment in line, line
    assert not (out / "global.pt").exists()
    assert not leftovers(tmp_path)

"""What the reliability tests (tests/test_reliability_*.py) share: odd and bad test media,
the check of a clean failure, the CLI chains the workflow runs, and the machinery that
kills a running stage at a seeded point and compares its rerun with an uninterrupted run."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np

from edn.ingest.decode import decode_video
from edn.ingest.media import probe_video
from helpers import DEMO, ROOT, ffmpeg, leftovers, live_processes, make_test_video, run_edn
from training_data import write_subject

# -- test media -------------------------------------------------------------------------


def make_box_video(path: Path, size: tuple[int, int], *, rotate: int = 0, seconds: float = 1.0,
                   pix_fmt: str = "yuv444p", colour: str = "red", codec: str = "libx264", rate: int = 10) -> Path:
    """A video of ``size`` (coded) on black with a ``colour`` box off-centre (so a rotation
    or a shift shows), in ``pix_fmt`` (yuv444p by default, so that odd sizes stay odd);
    ``rotate`` adds display-matrix rotation metadata as phones write it."""
    width, height = size
    box = (f"drawbox=x={width * 15 // 100}:y={height * 20 // 100}:w={width * 20 // 100}:h={height * 15 // 100}"
           f":color={colour}:t=fill")
    coded = path.with_name(f"coded-{path.name}") if rotate else path
    ffmpeg("-f", "lavfi", "-i", f"color=black:size=64x64:rate={rate}:duration={seconds}",
           "-vf", f"scale={width}:{height},setsar=1,{box}", "-c:v", codec, "-pix_fmt", pix_fmt, coded)
    if rotate:
        ffmpeg("-i", coded, "-c", "copy", "-metadata:s:v:0", f"rotate={rotate}", path)
    return path


def make_vfr_video(path: Path) -> Path:
    """Variable frame rate: 1 s of red at 10 fps (every third frame of 30 kept, with its
    timestamp), then 1 s of blue at 30 fps."""
    ffmpeg("-f", "lavfi", "-i", "color=red:size=160x120:rate=30:duration=1",
           "-f", "lavfi", "-i", "color=blue:size=160x120:rate=30:duration=1",
           "-filter_complex", "[0:v][1:v]concat=n=2:v=1,select='gte(t,1)+not(mod(n,3))'[v]", "-map", "[v]",
           "-fps_mode", "vfr", "-c:v", "libx264", "-pix_fmt", "yuv420p", path)
    return path


@dataclass(frozen=True)
class Media:
    """Bad and odd inputs, made once per session."""

    directory: Path
    empty: Path
    text: Path
    audio_only: Path
    truncated_moov_at_end: Path
    truncated_moov_at_start: Path
    nobody_frames: Path
    nobody_meta: Path
    sideways_frames: Path
    sideways_meta: Path
    checkpoint: Path  # a tiny global generator, random weights
    other_preset_face: Path  # a face GAN checkpoint of the small preset
    labels: Path  # 128x64 labels and their index, 24 frames
    index: Path
    poses: Path  # a valid keypoint table (a synthetic walker) and its statistics
    stats: Path
    short_subject: dict[str, Path]  # frames, labels and index of a 2-frame target


def first_bytes(source: Path, output: Path, fraction: float) -> Path:
    data = source.read_bytes()
    output.write_bytes(data[: int(len(data) * fraction)])
    return output


def make_media(d: Path) -> Media:
    """The bad and odd inputs, written into the folder ``d`` (tests/conftest.py's
    ``media`` fixture makes them once per session)."""
    import torch

    from edn.core.checkpoint import Checkpoint, save_checkpoint
    from edn.models import build_face_generator, build_generator
    from edn.core.presets import PRESETS

    (d / "empty.mp4").touch()
    (d / "notes.mp4").write_text("a list of dance moves, not a video\n")
    ffmpeg("-f", "lavfi", "-i", "sine=frequency=440:duration=1", "-c:a", "aac", d / "tone.mp4")
    # The demo dancer has its index (moov) at the end, as most encoders write it; a
    # copy cut at 40 % has none. With the index moved to the front (+faststart, as for
    # streaming) the cut file still opens and promises the whole 5.1 s.
    first_bytes(DEMO / "source_dancer.mp4", d / "cut_moov_at_end.mp4", 0.4)
    ffmpeg("-i", DEMO / "source_dancer.mp4", "-c", "copy", "-movflags", "+faststart", d / "faststart.mp4")
    first_bytes(d / "faststart.mp4", d / "cut_moov_at_start.mp4", 0.4)
    # No person: ffmpeg's test pattern. A person on their side: the juggler turned 90
    # degrees in the pixels, as a phone video without rotation metadata.
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=320x240:rate=10:duration=2", "-c:v", "libx264", "-pix_fmt",
           "yuv420p", d / "testsrc2.mp4")
    decode_video(d / "testsrc2.mp4", d / "nobody" / "frames.npy", d / "nobody" / "meta.json", working_size=(256, 128))
    ffmpeg("-i", DEMO / "target_juggler.mp4", "-t", "1", "-vf", "transpose=clock", "-an", d / "sideways.mp4")
    decode_video(d / "sideways.mp4", d / "sideways" / "frames.npy", d / "sideways" / "meta.json",
                 working_size=(256, 128))

    tiny, small = PRESETS["tiny"], PRESETS["small"]
    torch.manual_seed(0)
    save_checkpoint(d / "global.pt", Checkpoint(stage="global", step=0, preset=tiny, options={"image_size": [128, 64]},
                                                models={"generator": build_generator(tiny, "global").state_dict()}))
    save_checkpoint(d / "face_small.pt", Checkpoint(
        stage="face", step=0, preset=small, options={"base_stage": "global"},
        models={"face_generator": build_face_generator(small).state_dict()}))
    subject = write_subject(d / "subject", frames=24, size=(128, 64))

    from edn.pose.keypoints import write_pose_table
    from edn.normalize.subject_stats import compute_stats, write_stats
    from synthetic_poses import walking_sequence

    poses = walking_sequence(np.linspace(200, 240, 30), np.linspace(120, 150, 30))
    write_pose_table(d / "poses.parquet", poses)
    write_stats(d / "stats.json", compute_stats(poses, "walker", alpha=0.7))
    short_subject = write_subject(d / "short", frames=2, size=(128, 64))
    return Media(directory=d, empty=d / "empty.mp4", text=d / "notes.mp4", audio_only=d / "tone.mp4",
                 truncated_moov_at_end=d / "cut_moov_at_end.mp4", truncated_moov_at_start=d / "cut_moov_at_start.mp4",
                 nobody_frames=d / "nobody" / "frames.npy", nobody_meta=d / "nobody" / "meta.json",
                 sideways_frames=d / "sideways" / "frames.npy", sideways_meta=d / "sideways" / "meta.json",
                 checkpoint=d / "global.pt", other_preset_face=d / "face_small.pt", labels=subject["labels"],
                 index=subject["index"], poses=d / "poses.parquet", stats=d / "stats.json",
                 short_subject=short_subject)


def assert_clean_failure(result, outputs, says, directory: Path) -> None:
    """One error line that says what is wrong with which input, exit 1, nothing written."""
    assert result.returncode == 1, result.stderr[-3000:]
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    assert len(result.error_lines) == 1, result.stderr[-3000:]
    for fragment in says:
        assert fragment in result.error_lines[0], result.error_lines[0]
    for output in outputs:
        assert not output.exists(), f"{output} was left behind"
    assert not leftovers(directory), leftovers(directory)


def one_subject(video: str | Path, **more) -> dict:
    return {"subjects": {"a": {"video": str(video), **more}}}


def ffmpeg_first_frame(video: Path) -> np.ndarray:
    """The first frame as ffmpeg shows it (rotation applied) at the displayed size."""
    info = probe_video(video)
    raw = subprocess.run(["ffmpeg", "-v", "error", "-i", str(video), "-frames:v", "1", "-f", "rawvideo",
                          "-pix_fmt", "rgb24", "-"], capture_output=True, check=True).stdout
    return np.frombuffer(raw, np.uint8).reshape(info.height, info.width, 3)


def video_stream_duration(video: Path) -> Fraction:
    """ffprobe's duration of the first video stream, seconds."""
    out = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries", "stream=duration",
                          "-of", "json", str(video)], capture_output=True, text=True, check=True).stdout
    return Fraction(json.loads(out)["streams"][0]["duration"])


def frames_of(video: Path) -> int:
    from edn.ingest.media import count_frames

    return count_frames(video)


def pose_chain(video: Path, out: Path, *fetch_args: str) -> dict[str, Path]:
    """fetch, decode, pose (MediaPipe), filter-poses and render through the CLI, as the workflow runs them."""
    paths = {"video": out / "video.mp4", "frames": out / "frames.npy", "meta": out / "meta.json",
             "raw": out / "poses.parquet", "poses": out / "poses.filtered.parquet", "labels": out / "labels.npy",
             "index": out / "index.csv", "stats": out / "stats.json"}
    for args in (("fetch", "--source", video, "--output", paths["video"], *fetch_args),
                 ("decode", "--video", paths["video"], "--frames", paths["frames"], "--meta", paths["meta"]),
                 ("pose", "--frames", paths["frames"], "--meta", paths["meta"], "--output", paths["raw"],
                  "--workers", 2),
                 ("filter-poses", "--poses", paths["raw"], "--output", paths["poses"]),
                 ("stats", "--poses", paths["poses"], "--subject", out.name, "--output", paths["stats"]),
                 ("render", "--poses", paths["poses"], "--labels", paths["labels"], "--index", paths["index"])):
        result = run_edn(*args)
        assert result.returncode == 0, result.stderr[-3000:]
    return paths


def train_args(subject: dict[str, Path], out: Path, perceptual: Path, iterations: int = 3) -> list:
    return ["train", "--stage", "global", "--method", "paper", "--frames", subject["frames"], "--labels",
            subject["labels"], "--index", subject["index"], "--perceptual", perceptual, "--output", out / "global.pt",
            "--losses-output", out / "global.losses.csv", "--run-dir", out / "run", "--preset", "tiny",
            "--iterations", iterations, "--checkpoint-every", 2, "--sample-every", 2, "--threads", 1, "--no-progress"]


# -- killed stages -------------------------------------------------------------------------

KILLS = {"SIGTERM": signal.SIGTERM, "SIGKILL": signal.SIGKILL}


def _session_processes(session: int) -> list[int]:
    """Live (not zombie) processes of a session: a killed stage's children keep its session id."""
    return [pid for pid, fields in live_processes() if int(fields[3]) == session]


@dataclass
class Killed:
    returncode: int
    stderr: str
    survivors: list[int] = field(default_factory=list)


class FinishedBeforeKill(Exception):
    """The run completed before its kill point came (a machine less loaded than when timed)."""


def run_killed(args: list, *, kill: int, when: Callable[[], bool], after_s: float = 0.0, log: Path) -> Killed:
    """Run the real CLI; once ``when()`` holds, wait ``after_s`` more and send ``kill``; then
    wait for it and for every process it started."""
    with open(log, "w") as stderr:
        process = subprocess.Popen([sys.executable, "-m", "edn", *map(str, args)], cwd=ROOT,
                                   stdout=subprocess.DEVNULL, stderr=stderr, start_new_session=True)
        deadline = time.monotonic() + 300
        while not when() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.005)
        time.sleep(after_s)
        if process.poll() is not None:
            raise FinishedBeforeKill(f"exit {process.returncode} before the kill:\n{log.read_text()[-2000:]}")
        process.send_signal(kill)
        process.wait(timeout=300)
    survivors = _session_processes(process.pid)
    grace = time.monotonic() + 15  # a worker notices its parent's death, ffmpeg its closed pipe
    while survivors and time.monotonic() < grace:
        time.sleep(0.1)
        survivors = _session_processes(process.pid)
    for pid in survivors:  # do not leave them running, whatever the test says next
        os.kill(pid, signal.SIGKILL)
    return Killed(process.returncode, log.read_text(), survivors)


def assert_killed_cleanly(killed: Killed, kill: int, outputs: list[Path]) -> None:
    if kill == signal.SIGKILL:
        assert killed.returncode == -signal.SIGKILL
    else:  # SystemExit(128 + 15) from the CLI's handler, or the default action before it is installed
        assert killed.returncode in (128 + signal.SIGTERM, -signal.SIGTERM), killed.stderr[-2000:]
        assert "Traceback" not in killed.stderr, killed.stderr[-3000:]
    assert not killed.survivors, f"processes left running: {killed.survivors}"
    for output in outputs:
        assert not output.exists(), f"{output} exists after {signal.Signals(kill).name}"


def writing(directory: Path) -> Callable[[], bool]:
    """True once a stage works on its output in ``directory``: an atomic temporary or a
    scratch directory is there (decode, synthesis and encoding write from the start;
    pose detection at a detection scale > 1 decodes into a scratch first)."""
    return lambda: directory.is_dir() and any(".partial" in p.name for p in directory.iterdir())


def timed_work(args: list, directory: Path) -> float:
    """Seconds an uninterrupted run spends from its first temporary to its exit."""
    process = subprocess.Popen([sys.executable, "-m", "edn", *map(str, args)], cwd=ROOT,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    started = None
    while process.poll() is None:
        if started is None and writing(directory)():
            started = time.monotonic()
        time.sleep(0.005)
    stderr = process.communicate()[1]
    assert process.returncode == 0 and started is not None, stderr[-3000:]
    return time.monotonic() - started


def names(directory: Path) -> list[str]:
    return sorted(p.relative_to(directory).as_posix() for p in directory.rglob("*"))


def kill_points(stage: str, kill: str, count: int) -> list[float]:
    """Seeded random points, as fractions of the time a stage spends writing its output."""
    rng = random.Random(f"{stage}/{kill}")
    return [rng.uniform(0.05, 0.5) for _ in range(count)]


def make_clip(d: Path) -> dict[str, Path]:
    """4 s of test pattern with a tone, fetched and decoded at 512x256 (100 frames), in the
    folder ``d`` (tests/conftest.py's ``clip`` fixture makes it once per session)."""
    video = make_test_video(d / "clip.mp4", size=(320, 240), fps=25, seconds=4.0, audio=True)
    decode_video(video, d / "frames.npy", d / "meta.json", working_size=(512, 256))
    return {"video": video, "frames": d / "frames.npy", "meta": d / "meta.json"}


class References:
    """The uninterrupted run of each killed stage, made once per session in ``directory``: a
    stage's SIGTERM and SIGKILL tests compare their reruns with the same one (tests/conftest.py's
    ``kill_references`` fixture)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.runs: dict[str, tuple[Path, float]] = {}

    def get(self, stage: str, make_args: Callable[[Path], tuple[list, list[Path]]]) -> tuple[Path, float]:
        """The reference run's folder, and the seconds it spent writing."""
        if stage not in self.runs:
            reference = self.directory / stage
            args, _ = make_args(reference)
            self.runs[stage] = reference, timed_work(args, reference)
        return self.runs[stage]


def stage_kill_test(tmp_path: Path, stage: str, kill: str, make_args: Callable[[Path], tuple[list, list[Path]]],
                    same: Callable[[Path, Path], None], points: int, references: References) -> None:
    """Run uninterrupted (once per stage, shared by its kinds of kill); then, for each seeded
    kill point: run, kill, check, rerun, compare."""
    reference, work_s = references.get(stage, make_args)
    for n, fraction in enumerate(kill_points(stage, kill, points)):
        run = tmp_path / f"killed-{n}"
        args, outputs = make_args(run)
        killed = _kill_while_writing(args, run, KILLS[kill], fraction * work_s, tmp_path / f"killed-{n}.log",
                                     outputs, lambda: same(reference, run))
        assert_killed_cleanly(killed, KILLS[kill], outputs)
        rerun = run_edn(*args)
        assert rerun.returncode == 0, rerun.stderr[-3000:]
        same(reference, run)
        assert names(run) == names(reference), "the killed run's temporaries or scratch are still there"


def _kill_while_writing(args: list, run: Path, kill: int, after_s: float, log: Path, outputs: list[Path],
                        check_complete: Callable[[], None], tries: int = 4) -> Killed:
    """Kill ``after_s`` into the run's writing. When the run was quicker than the timed reference
    (the load on a shared machine varies), it either exits before the kill or is killed after its
    outputs are in place, which must then be complete; either way that run is thrown away and
    the kill tried again at half the delay."""
    for _ in range(tries):
        try:
            killed = run_killed(args, kill=kill, when=writing(run), after_s=after_s, log=log)
            if not all(output.exists() for output in outputs):
                return killed
            check_complete()  # killed between its last rename and its exit
        except FinishedBeforeKill:
            pass
        shutil.rmtree(run, ignore_errors=True)
        after_s /= 2
    raise AssertionError(f"the run finished before every kill point, the last {after_s * 2:.2f} s into writing")


def same_bytes(*relative: str) -> Callable[[Path, Path], None]:
    def check(reference: Path, run: Path) -> None:
        for name in relative:
            assert (run / name).read_bytes() == (reference / name).read_bytes(), name
    return check

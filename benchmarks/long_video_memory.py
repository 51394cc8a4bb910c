"""Peak memory of the stages that go over a whole video, for a clip and for the same clip looped N times.

A stage that streams its frames (issue 25, item 8) needs the same memory for a
long video as for a short one; one that holds the video, or lets every frame it
touched stay mapped in, needs memory in proportion to its length. This script
cuts a clip, makes a copy of it looped ``--loops`` times with ffmpeg's concat
demuxer, and runs the transfer's stages on both as ``edn`` subcommands onto an
existing trained model (a finished run's ``results/`` folder: the target's
generator, face GAN, background plate and statistics):

    decode, pose, filter-poses, stats, normalize, render, synthesize, encode

Each stage's peak memory is measured as Snakemake's benchmark files measure
``max_rss``: the resident set sizes of the stage's process and all its children
(the MediaPipe workers, ffmpeg) summed, sampled every ``--interval`` seconds,
and the highest sum kept. It prints one table (stage, frames, peak RSS and
wall time for 1x and Nx, and their ratios) and writes it as ``memory.csv`` and
``memory.md`` into the working folder.

    .venv/bin/python benchmarks/long_video_memory.py --clip resources/demo/source_dancer.mp4 \\
        --results results --target juggler --workdir /tmp/long-video --loops 10

It runs whatever each stage takes (about 2 minutes a 1,000 frames at 512x256 on
two CPU cores, most of it pose detection and synthesis): try it first on a
short cut (``--seconds 0.5 --loops 3``).
"""

from __future__ import annotations

import argparse
import csv
import shlex
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script
    sys.path.insert(0, str(ROOT))

from benchmarks.run import _tree_rss_bytes as tree_rss_bytes  # noqa: E402  (the suite's own measure)

#: The stages issue 25 (item 8) asks to run in constant memory.
STREAMED = ("decode", "pose", "render", "synthesize", "encode")


@dataclass
class Measure:
    stage: str
    seconds: float
    peak_rss_bytes: int


def run_measured(stage: str, command: list[str], log: Path, interval: float) -> Measure:
    """Run ``command`` to its end, sampling its process tree's summed RSS; its output goes to ``log``."""
    peak = 0
    with open(log, "w") as sink:
        sink.write("$ " + shlex.join(command) + "\n")
        sink.flush()
        start = time.perf_counter()
        child = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT, cwd=ROOT)
        try:
            while child.poll() is None:
                peak = max(peak, tree_rss_bytes(child.pid))
                time.sleep(interval)
        except BaseException:  # Ctrl-C or a SIGTERM (see main): the stage stops with the benchmark
            child.terminate()
            child.wait()
            raise
        seconds = time.perf_counter() - start
    if child.returncode != 0:
        tail = log.read_text(errors="replace").strip().splitlines()[-3:]
        raise SystemExit(f"long_video_memory: stage {stage} failed (exit {child.returncode}); see {log}:\n"
                         + "\n".join(tail))
    return Measure(stage=stage, seconds=seconds, peak_rss_bytes=peak)


def ffmpeg(*arguments: str) -> None:
    subprocess.run(["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error", "-y", *arguments], check=True)


def cut_clip(clip: Path, seconds: float | None, output: Path) -> Path:
    """The clip's first ``seconds`` (all of it for None), re-encoded so that copies of it concatenate exactly."""
    span = [] if seconds is None else ["-t", f"{seconds:g}"]
    ffmpeg("-i", str(clip), *span, "-map", "0:v:0", "-map", "0:a:0?", "-c:v", "libx264", "-crf", "18",
           "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "128k", str(output))
    return output


def loop_clip(clip: Path, loops: int, output: Path) -> Path:
    """``clip`` played ``loops`` times in a row, by ffmpeg's concat demuxer (streams copied, not re-encoded)."""
    listing = output.with_suffix(".txt")
    quoted = str(clip.resolve()).replace("'", r"'\''")
    listing.write_text(f"file '{quoted}'\n" * loops)
    ffmpeg("-f", "concat", "-safe", "0", "-i", str(listing), "-c", "copy", str(output))
    return output


@dataclass(frozen=True)
class Model:
    generator: Path
    face: Path | None
    plate: Path | None
    target_stats: Path


def find_model(results: Path, target: str) -> Model:
    """The target's trained files in a finished run's ``results`` folder."""
    models = results / "models" / target
    generator = next((models / name for name in ("local.pt", "global.pt") if (models / name).exists()), None)
    stats = results / "stats" / f"{target}.json"
    if generator is None or not stats.exists():
        raise SystemExit(f"long_video_memory: {results} has no trained model of {target!r} "
                         f"(models/{target}/global.pt or local.pt, and stats/{target}.json)")
    face, plate = models / "face.pt", results / "background" / f"{target}.png"
    return Model(generator=generator, face=face if face.exists() else None,
                 plate=plate if plate.exists() else None, target_stats=stats)


def stage_commands(video: Path, folder: Path, model: Model, args: argparse.Namespace) -> list[tuple[str, list[str]]]:
    """The transfer's ``edn`` subcommands on ``video``, every output inside ``folder``."""
    edn = [sys.executable, "-m", "edn", "--log", str(folder / "edn.log")]
    frames, meta = folder / "frames.npy", folder / "meta.json"
    poses, filtered, stats = folder / "poses.parquet", folder / "poses.filtered.parquet", folder / "stats.json"
    normalized, labels, index = folder / "normalized.parquet", folder / "labels.npy", folder / "index.csv"
    synthesized, result = folder / "synthesized.npy", folder / "result.mp4"
    models = ["--generator", str(model.generator)]
    models += [] if model.face is None else ["--face", str(model.face)]
    models += [] if model.plate is None else ["--plate", str(model.plate)]
    window = [] if model.plate is None else ["--window-stats", str(model.target_stats), "--aspect", str(args.aspect),
                                              "--height-factor", str(args.height_factor)]
    return [
        ("decode", [*edn, "decode", "--video", str(video), "--frames", str(frames), "--meta", str(meta),
                    "--width", str(args.width), "--height", str(args.height)]),
        ("pose", [*edn, "pose", "--frames", str(frames), "--meta", str(meta), "--output", str(poses),
                  "--workers", str(args.workers)]),
        ("filter-poses", [*edn, "filter-poses", "--poses", str(poses), "--output", str(filtered)]),
        ("stats", [*edn, "stats", "--poses", str(filtered), "--subject", "source", "--output", str(stats)]),
        ("normalize", [*edn, "normalize", "--source-poses", str(filtered), "--source-stats", str(stats),
                       "--target-stats", str(model.target_stats), "--output", str(normalized)]),
        ("render", [*edn, "render", "--poses", str(normalized), "--labels", str(labels), "--index", str(index),
                    *window]),
        ("synthesize", [*edn, "synthesize", "--labels", str(labels), "--index", str(index), *models,
                        "--output", str(synthesized), "--threads", str(args.threads)]),
        ("encode", [*edn, "encode", "--frames", str(synthesized), "--source-meta", str(meta),
                    "--source-video", str(video), "--output", str(result)]),
    ]


def frame_count(folder: Path) -> int:
    import json

    return int(json.loads((folder / "meta.json").read_text())["frame_count"])


def run_all(video: Path, folder: Path, model: Model, args: argparse.Namespace) -> tuple[int, dict[str, Measure]]:
    folder.mkdir(parents=True, exist_ok=True)
    measures = {}
    for stage, command in stage_commands(video, folder, model, args):
        measures[stage] = run_measured(stage, command, folder / f"{stage}.out", args.interval)
        print(f"  {folder.name} {stage}: {measures[stage].peak_rss_bytes / 2**20:.0f} MiB, "
              f"{measures[stage].seconds:.1f} s", flush=True)
    return frame_count(folder), measures


def table_rows(loops: int, short: tuple[int, dict[str, Measure]], long: tuple[int, dict[str, Measure]]) -> list[dict]:
    (frames_1, one), (frames_n, many) = short, long
    rows = []
    for stage in one:
        a, b = one[stage], many[stage]
        rows.append({
            "stage": stage, "streamed": stage in STREAMED,
            "frames_1x": frames_1, f"frames_{loops}x": frames_n,
            "rss_1x_mib": round(a.peak_rss_bytes / 2**20), f"rss_{loops}x_mib": round(b.peak_rss_bytes / 2**20),
            "rss_ratio": round(b.peak_rss_bytes / a.peak_rss_bytes, 2) if a.peak_rss_bytes else float("nan"),
            "seconds_1x": round(a.seconds, 1), f"seconds_{loops}x": round(b.seconds, 1),
            "time_ratio": round(b.seconds / a.seconds, 2) if a.seconds else float("nan"),
        })
    return rows


def markdown(rows: list[dict]) -> str:
    header = list(rows[0])
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(row[key]) for key in header) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clip", type=Path, required=True, help="the source video to loop")
    parser.add_argument("--seconds", type=float, default=None, help="use only the clip's first seconds")
    parser.add_argument("--loops", type=int, default=10, help="times the long copy plays the clip (default 10)")
    parser.add_argument("--results", type=Path, required=True,
                        help="a finished run's results folder holding the target's trained model")
    parser.add_argument("--target", default="juggler", help="the target whose model draws (default juggler)")
    parser.add_argument("--workdir", type=Path, required=True, help="folder for the clips and every output")
    parser.add_argument("--width", type=int, default=512)
    parser.add_argument("--height", type=int, default=256)
    parser.add_argument("--aspect", type=float, default=0.5, help="person_window.aspect the model was trained with")
    parser.add_argument("--height-factor", type=float, default=1.25, help="person_window.height_factor")
    parser.add_argument("--workers", type=int, default=2, help="pose.workers")
    parser.add_argument("--threads", type=int, default=2, help="synthesis threads")
    parser.add_argument("--interval", type=float, default=0.2, help="seconds between memory samples")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # a timeout's SIGTERM stops the running stage too
    if args.loops < 2:
        parser.error("--loops must be at least 2")

    # The stages run in the repository (cwd ROOT): the user's paths are made absolute first.
    args.clip, args.results, args.workdir = (path.resolve() for path in (args.clip, args.results, args.workdir))
    model = find_model(args.results, args.target)
    args.workdir.mkdir(parents=True, exist_ok=True)
    clip = cut_clip(args.clip, args.seconds, args.workdir / "clip_1x.mp4")
    looped = loop_clip(clip, args.loops, args.workdir / f"clip_{args.loops}x.mp4")
    print(f"clip {clip} and {looped}; model {model.generator}", flush=True)
    short = run_all(clip, args.workdir / "1x", model, args)
    long = run_all(looped, args.workdir / f"{args.loops}x", model, args)
    rows = table_rows(args.loops, short, long)
    with open(args.workdir / "memory.csv", "w", newline="") as sink:
        writer = csv.DictWriter(sink, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    text = markdown(rows)
    (args.workdir / "memory.md").write_text(text)
    print(text, end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

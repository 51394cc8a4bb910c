"""Every stage's speed in one run, printed as one table with each figure's same-run reference.

    make bench                                   (or: .venv/bin/python benchmarks/run.py)
    .venv/bin/python benchmarks/run.py --quick   smaller inputs, fewer repeats: a smoke run
    .venv/bin/python benchmarks/run.py --only training,forward

Each measurement (a *job*) runs in a fresh process of its own, so that its peak
memory is its own and no stage warms another's caches. Peak RSS is the larger of
the job process's own peak resident memory (exact, from getrusage) and the
largest total resident memory of its process tree (with its MediaPipe workers
or ffmpeg) sampled every 0.1 s. A row sets a figure beside its reference measured in the
same run (fp32 eager for our networks, ffmpeg alone for decode and encode, one
worker for pose, the machine's bf16 matrix-multiply rate for the generator's
achieved FLOP rate) and says whether the issue's target is met. The "others'
CPU" column is how many cores other processes kept busy while the row's jobs
ran: well above 0 means the machine was shared and the figures are preliminary.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script: benchmarks and edn importable without installing
    sys.path.insert(0, str(ROOT))

GIB = 1024**3


@dataclass(frozen=True)
class Job:
    """One measurement: ``function`` ("module:function" in benchmarks/) called with
    ``full`` or, with --quick, ``quick`` keyword arguments; it returns one number."""

    name: str
    function: str
    full: dict
    quick: dict

    def arguments(self, quick: bool) -> dict:
        return self.quick if quick else self.full


@dataclass(frozen=True)
class Target:
    """An issue's target on a row's ``figure``, ``ratio`` or ``peak_gib``."""

    on: str
    at_least: float | None = None
    below: float | None = None

    def met(self, value: float) -> bool:
        return (self.at_least is None or value >= self.at_least) and (self.below is None or value < self.below)

    def text(self, unit: str) -> str:
        unit = {"figure": f" {unit}", "ratio": "x", "peak_gib": " GiB"}[self.on]
        return f">= {self.at_least:g}{unit}" if self.at_least is not None else f"< {self.below:g}{unit}"


@dataclass(frozen=True)
class Row:
    """One line of the table: the ``figure`` job beside its ``reference`` job.

    ``unit`` "s" or "s/step": lower is better, the ratio is reference / figure;
    otherwise (rates) figure / reference. With ``work`` (a job returning an
    amount, e.g. GFLOP), the figure shown is that amount over the figure job's seconds.
    """

    stage: str
    what: str
    mode: str
    unit: str
    figure: str
    reference: str | None = None
    reference_mode: str = ""
    work: str | None = None
    targets: tuple[Target, ...] = field(default_factory=tuple)

    @property
    def lower_is_better(self) -> bool:
        return self.unit in ("s", "s/step") and self.work is None


# -- the measurements ----------------------------------------------------------------------------

DEMO_SIZE, PAPER_SIZE, QUICK_PAPER_SIZE = (256, 128), (512, 256), (128, 64)
FP32, BF16_CL, BF16 = "fp32 eager", "bf16 + channels_last", "bf16 + contiguous"
MODES = ((FP32, "fp32"), (BF16_CL, "bf16cl"), (BF16, "bf16"))
#: What edn runs on a CPU with bf16 (``channels_last: auto`` is NHWC on CUDA only): the
#: issue's targets are judged on this mode; the channels_last rows show the other layout.
CPU_MODE = BF16
#: (processes, batch size per process) of the data-parallel rows; (1, 1) is their reference.
PARALLEL_LAYOUTS = ((1, 1), (1, 2), (1, 4), (2, 1), (2, 2))
ALL_VIDEOS = ("source_dancer", "target_juggler", "source_aerobics", "people_one_by_one")


def _jobs() -> list[Job]:
    jobs = [Job(f"matmul-{dtype}", "machine:matmul_gflops", dict(dtype=dtype, n=4096, repeats=5),
                dict(dtype=dtype, n=2048, repeats=2)) for dtype in ("fp32", "bf16")]
    for tool in ("edn", "ffmpeg"):
        jobs.append(Job(f"decode-{tool}", f"decode:{tool}_frames_per_second",
                        dict(videos=ALL_VIDEOS, size=DEMO_SIZE, repeats=3),
                        dict(videos=("source_dancer",), size=DEMO_SIZE, repeats=1)))
        jobs.append(Job(f"encode-{tool}", f"encode:{tool}_frames_per_second",
                        dict(video="target_juggler", size=DEMO_SIZE, repeats=3),
                        dict(video="source_dancer", size=DEMO_SIZE, repeats=1)))
    for workers in (2, 1):
        jobs.append(Job(f"pose-{workers}", "pose:detect_frames_per_second",
                        dict(video="target_juggler", size=DEMO_SIZE, detection_scale=2.0, workers=workers),
                        dict(video="source_dancer", size=DEMO_SIZE, detection_scale=2.0, workers=workers)))
    jobs.append(Job("filter", "pose:filter_frames_per_second", dict(frames=10_000, repeats=3),
                    dict(frames=1000, repeats=1)))
    for size in (DEMO_SIZE, PAPER_SIZE):
        jobs.append(Job(f"render-{size[0]}", "render:render_frames_per_second",
                        dict(size=size, frames=2000, repeats=3), dict(size=size, frames=200, repeats=1)))
    jobs.append(Job("normalize", "render:normalize_seconds", dict(frames=10_000, repeats=3),
                    dict(frames=10_000, repeats=1)))
    for mode, key in MODES:
        jobs += [
            Job(f"synthesis-small-{key}", "synthesis:frames_per_second",
                dict(preset="small", size=DEMO_SIZE, mode=mode, frames=60),
                dict(preset="small", size=DEMO_SIZE, mode=mode, frames=6)),
            Job(f"synthesis-paper-{key}", "synthesis:frames_per_second",
                dict(preset="paper", size=PAPER_SIZE, mode=mode, frames=6),
                dict(preset="paper", size=QUICK_PAPER_SIZE, mode=mode, frames=2)),
            Job(f"train-small-global-{key}", "train:step_seconds",
                dict(stage="global", preset="small", size=DEMO_SIZE, mode=mode, iterations=5),
                dict(stage="global", preset="small", size=DEMO_SIZE, mode=mode, iterations=1)),
            Job(f"train-small-face-{key}", "train:step_seconds",
                dict(stage="face", preset="small", size=DEMO_SIZE, mode=mode, iterations=5),
                dict(stage="face", preset="small", size=DEMO_SIZE, mode=mode, iterations=1)),
            Job(f"train-paper-global-{key}", "train:step_seconds",
                dict(stage="global", preset="paper", size=PAPER_SIZE, mode=mode, iterations=3),
                dict(stage="global", preset="paper", size=QUICK_PAPER_SIZE, mode=mode, iterations=1, warmup=0)),
            Job(f"forward-paper-{key}", "train:forward_seconds",
                dict(preset="paper", size=PAPER_SIZE, mode=mode, repeats=3),
                dict(preset="paper", size=QUICK_PAPER_SIZE, mode=mode, repeats=1)),
        ]
    for processes, batch in PARALLEL_LAYOUTS:
        jobs.append(Job(f"parallel-{processes}x{batch}", "data_parallel:pairs_per_second",
                        dict(processes=processes, batch_size=batch, size=DEMO_SIZE, steps=6),
                        dict(processes=processes, batch_size=batch, size=(128, 64), steps=2, warmup=1)))
    jobs.append(Job("detector-train", "detector:train_steps_per_second", dict(size=DEMO_SIZE, steps=30, threads=2),
                    dict(size=DEMO_SIZE, steps=4, threads=2)))
    jobs.append(Job("detector-score", "detector:scored_pairs_per_second", dict(size=DEMO_SIZE, pairs=64, threads=2),
                    dict(size=DEMO_SIZE, pairs=8, threads=2)))
    jobs.append(Job("flops-paper", "machine:generator_forward_gflop", dict(preset="paper", size=PAPER_SIZE),
                    dict(preset="paper", size=QUICK_PAPER_SIZE)))
    return jobs


JOBS = {job.name: job for job in _jobs()}

def _network_rows() -> list[Row]:
    """Our networks in each bf16 mode, each beside fp32 eager measured in the same run;
    targets on :data:`CPU_MODE`'s rows."""
    paper_step_targets = (Target("ratio", at_least=1.8), Target("peak_gib", below=8))
    cases = [  # (stage, what, unit, job name without mode, reference job, reference mode, work, targets)
        ("synthesis", "synthesize, small preset + face GAN", "frames/s", "synthesis-small", None, FP32, None, ()),
        ("synthesis", "synthesize, paper preset + face GAN", "frames/s", "synthesis-paper", None, FP32, None, ()),
        ("training", "global stage step, small preset", "s/step", "train-small-global", None, FP32, None, ()),
        ("training", "face stage step, small preset", "s/step", "train-small-face", None, FP32, None, ()),
        ("training", "global stage step, paper preset", "s/step", "train-paper-global", None, FP32, None,
         paper_step_targets),
        ("forward", "paper generator forward", "s", "forward-paper", None, FP32, None, (Target("ratio", at_least=2),)),
        ("forward", "paper generator forward, achieved rate", "GFLOP/s", "forward-paper", "matmul-bf16",
         "bf16 matmul", "flops-paper", (Target("ratio", at_least=0.5),)),
    ]
    return [Row(stage, what, mode, unit, f"{job}-{key}", reference or f"{job}-fp32", reference_mode, work,
                targets if mode == CPU_MODE else ())
            for stage, what, unit, job, reference, reference_mode, work, targets in cases
            for mode, key in MODES if mode != FP32]


ROWS = (
    Row("matmul", "[n, n] @ [n, n], the machine's ceiling", "fp32", "GFLOP/s", "matmul-fp32"),
    Row("matmul", "[n, n] @ [n, n], the machine's ceiling", "bf16", "GFLOP/s", "matmul-bf16", "matmul-fp32", "fp32"),
    Row("decode", "edn decode, demo videos", "", "frames/s", "decode-edn", "decode-ffmpeg", "ffmpeg alone"),
    Row("pose", "edn pose (MediaPipe Holistic), detection at 2x", "2 workers", "frames/s", "pose-2", "pose-1",
        "1 worker", targets=(Target("figure", at_least=25),)),
    Row("filter", "edn filter-poses, synthetic frames", "", "frames/s", "filter"),
    Row("render", "stick figures, 137 keypoints", "1 core", "frames/s", "render-256",
        targets=(Target("figure", at_least=1000),)),
    Row("render", "stick figures, 137 keypoints", "1 core", "frames/s", "render-512",
        targets=(Target("figure", at_least=1000),)),
    Row("normalize", "stats + eqs. 7-8", "1 core", "s", "normalize", targets=(Target("figure", below=1.0),)),
    *_network_rows(),
    *(Row("parallel", "edn train, global stage, small preset, composite", f"{p} process{'es' * (p > 1)}, batch {b}",
          "pairs/s", f"parallel-{p}x{b}", "parallel-1x1", "1 process, batch 1")
      for p, b in PARALLEL_LAYOUTS[1:]),
    Row("encode", "edn encode, H.264 CRF 18", "", "frames/s", "encode-edn", "encode-ffmpeg", "ffmpeg alone"),
    Row("detector", "edn train-detector step, 16 crops of 96x96", "2 threads", "steps/s", "detector-train"),
    Row("detector", "edn detect, pairs scored in 96x96 tiles", "2 threads", "pairs/s", "detector-score"),
)

STAGES = tuple(dict.fromkeys(row.stage for row in ROWS))


def row_jobs(row: Row) -> list[str]:
    return [name for name in (row.figure, row.reference, row.work) if name]


# -- one job, in its own process -----------------------------------------------------------------

def run_job(name: str, quick: bool) -> dict:
    """Measure ``name`` in this process; its figure and this process's exact peak memory."""
    job = JOBS[name]
    module, function = job.function.split(":")
    measure = getattr(importlib.import_module(f"benchmarks.{module}"), function)
    value = measure(**job.arguments(quick))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"value": float(value), "peak_bytes": peak if sys.platform == "darwin" else peak * 1024}


def _tree_rss_bytes(pid: int) -> int:
    """Resident memory of process ``pid`` and all its descendants now (Linux /proc; 0 elsewhere)."""
    total, pending = 0, [pid]
    while pending:
        current = pending.pop()
        try:
            total += int(Path(f"/proc/{current}/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
            for task in Path(f"/proc/{current}/task").iterdir():
                pending += [int(child) for child in (task / "children").read_text().split()]
        except (OSError, ValueError):
            continue  # the process ended meanwhile, or no /proc
    return total


def _busy_core_seconds() -> float | None:
    """CPU seconds all processes have used since boot (Linux /proc/stat), or None."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    except OSError:
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def _own_children_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def spawn_job(name: str, quick: bool, sample_s: float = 0.1) -> dict:
    """Run ``name`` in a fresh process: its result, wall time, the peak resident memory of
    its process tree (the job, its workers, its ffmpeg), and the cores others used meanwhile."""
    busy, ours, start = _busy_core_seconds(), _own_children_seconds(), time.perf_counter()
    command = [sys.executable, str(Path(__file__).resolve()), "--job", name, *(["--quick"] if quick else [])]
    tree_peak = 0
    with tempfile.TemporaryFile("w+") as stdout, tempfile.TemporaryFile("w+") as stderr:
        process = subprocess.Popen(command, stdout=stdout, stderr=stderr, text=True, cwd=ROOT)
        while process.poll() is None:
            tree_peak = max(tree_peak, _tree_rss_bytes(process.pid))
            time.sleep(sample_s)
        stdout.seek(0)
        stderr.seek(0)
        output, errors = stdout.read(), stderr.read()
    wall = time.perf_counter() - start
    result = {"wall_s": wall, "others_cores": None}
    if busy is not None:
        others = (_busy_core_seconds() - busy) - (_own_children_seconds() - ours)
        result["others_cores"] = max(0.0, others / wall)
    if process.returncode != 0:
        lines = errors.strip().splitlines() or [f"exit status {process.returncode}"]
        result["error"] = lines[-1]
        return result
    measured = json.loads(output.strip().splitlines()[-1])
    return {**result, **measured, "peak_bytes": max(measured["peak_bytes"], tree_peak)}


# -- the table -----------------------------------------------------------------------------------

def _number(value: float) -> str:
    if value >= 100:
        return f"{value:,.0f}"
    return f"{value:.3g}" if value >= 0.01 else f"{value:.2g}"


def _memory(peak_bytes: int) -> str:
    return f"{peak_bytes / GIB:.2f} GiB" if peak_bytes >= GIB else f"{peak_bytes / 1024**2:.0f} MiB"


def _size(job: Job, quick: bool) -> str:
    arguments = job.arguments(quick)
    if "size" in arguments:
        return "x".join(map(str, arguments["size"]))
    if "n" in arguments:
        return f"n = {arguments['n']}"
    return f"{arguments['frames']:,} frames" if "frames" in arguments else ""


def _what(row: Row, quick: bool) -> str:
    arguments = JOBS[row.figure].arguments(quick)
    if "videos" in arguments:
        count = len(arguments["videos"])
        return f"{row.what} ({count} video{'s' if count > 1 else ''})"
    return f"{row.what} ({arguments['video']})" if "video" in arguments else row.what


def row_values(row: Row, results: dict[str, dict]) -> dict | None:
    """The row's figure, reference, ratio and peak memory (GiB) from its jobs' results;
    None when one of its jobs failed."""
    if any("error" in results[name] for name in row_jobs(row)):
        return None
    figure = results[row.figure]["value"]
    if row.work:
        figure = results[row.work]["value"] / figure
    reference = results[row.reference]["value"] if row.reference else None
    ratio = None
    if reference is not None:
        ratio = reference / figure if row.lower_is_better else figure / reference
    return {"figure": figure, "reference": reference, "ratio": ratio, "peak_gib": results[row.figure]["peak_bytes"] / GIB}


def format_table(rows: list[Row], results: dict[str, dict], quick: bool) -> list[str]:
    """The Markdown table, one line per row."""
    lines = ["| stage | measurement | size | mode | figure | reference (same run) | ratio | peak RSS "
             "| others' CPU | target |", "|---|---|---|---|---:|---|---:|---|---:|---|"]
    for row in rows:
        job = JOBS[row.figure]
        cells = [row.stage, _what(row, quick), _size(job, quick), row.mode]
        values = row_values(row, results)
        if values is None:
            errors = [f"{name}: {results[name]['error']}" for name in row_jobs(row) if "error" in results[name]]
            lines.append("| " + " | ".join(cells + ["failed", "; ".join(errors), "", "", "", ""]) + " |")
            continue
        cells.append(f"{_number(values['figure'])} {row.unit}")
        cells.append(f"{row.reference_mode}: {_number(values['reference'])} {row.unit}" if row.reference else "")
        cells.append(f"{values['ratio']:.2f}x" if values["ratio"] is not None else "")
        cells.append(_memory(results[row.figure]["peak_bytes"]))
        others = [results[name]["others_cores"] for name in row_jobs(row) if results[name]["others_cores"] is not None]
        cells.append(f"{max(others):.2f}" if others else "")
        verdicts = ["not judged (quick run)" if quick else "met" if t.met(values[t.on]) else "NOT met"
                    for t in row.targets]
        cells.append("; ".join(f"{t.text(row.unit)}: {verdict}" for t, verdict in zip(row.targets, verdicts)))
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _machine() -> str:
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__} ({torch.get_num_threads()} threads)"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small inputs, fewer repeats: a smoke run")
    parser.add_argument("--only", help=f"comma-separated stages to run (of: {', '.join(STAGES)})")
    parser.add_argument("--workflow-benchmarks", metavar="DIR",
                        help="also a row per job of a workflow run, from its Snakemake benchmark files "
                             "(e.g. results/benchmarks after make demo)")
    parser.add_argument("--job", help=argparse.SUPPRESS)  # internal: one job, its result as JSON
    args = parser.parse_args()
    if args.job:
        print(json.dumps(run_job(args.job, args.quick)))
        return 0
    stages = STAGES if not args.only else tuple(s.strip() for s in args.only.split(","))
    unknown = sorted(set(stages) - set(STAGES))
    if unknown:
        parser.error(f"unknown stage(s) {', '.join(unknown)}; choose from {', '.join(STAGES)}")
    rows = [row for row in ROWS if row.stage in stages]
    names = list(dict.fromkeys(name for row in rows for name in row_jobs(row)))
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    results = {}
    for i, name in enumerate(names, 1):
        print(f"[{i}/{len(names)}] {name} ...", end=" ", file=sys.stderr, flush=True)
        results[name] = spawn_job(name, args.quick)
        print(f"{results[name]['wall_s']:.1f} s" + (f" FAILED: {results[name]['error']}"
                                                    if "error" in results[name] else ""), file=sys.stderr)
    print(f"Machine: {_machine()}.")
    print(f"{'Quick smoke run (small inputs; figures not comparable with a full run)' if args.quick else 'Full run'}: "
          f"{time.perf_counter() - started:.0f} s; 1-minute load average {load_before:.2f} before it started.")
    print()
    print("\n".join(format_table(rows, results, args.quick)))
    if args.workflow_benchmarks:
        from benchmarks.workflow_stages import read_stage_times, table_rows

        print("\n".join(table_rows(read_stage_times(args.workflow_benchmarks))))
    return 1 if any("error" in result for result in results.values()) else 0


if __name__ == "__main__":
    sys.exit(main())

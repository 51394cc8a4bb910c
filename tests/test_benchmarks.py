"""The benchmark suite runs: its quick path end to end on cheap stages, every torch
measurement on the tiny preset, and its arithmetic (FLOPs, ratios, targets). No timing is asserted."""

from __future__ import annotations

import subprocess
import sys
from decimal import Decimal

import pytest
import torch

from helpers import ROOT

sys.path.insert(0, str(ROOT))
from benchmarks import detector, machine, run, synthesis, train  # noqa: E402
from edn.models import build_generator  # noqa: E402
from edn.core.presets import PRESETS  # noqa: E402

TINY = (128, 64)  # the face stage needs a face box of 16 px or more (VGG pools it 4 times)


#: run.py's table: its columns, and how each is aligned (numbers to the right).
COLUMNS = ["stage", "measurement", "size", "mode", "figure", "reference (same run)", "ratio", "peak RSS",
           "others' CPU", "target"]
ALIGNMENT = ["---", "---", "---", "---", "---:", "---", "---:", "---", "---:", "---"]


def _cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def _shown(text: str) -> tuple[float, float]:
    """A number as the table prints it ("1,234", "97.4"): its value and half its last digit."""
    number = Decimal(text.replace(",", ""))
    return float(number), 0.5 * 10.0 ** number.as_tuple().exponent


def test_quick_run_prints_one_table_row_per_measurement():
    """A real quick run: every row of the stages asked for, in the table's ten columns, each
    measured in this run (the progress lines name every job), and the decode row's ratio is its
    figure over its reference as this run measured and printed them, ffmpeg alone beside edn."""
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "run.py"), "--quick",
                             "--only", "decode,render,normalize,filter"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    table = [line for line in result.stdout.splitlines() if line.startswith("|")]
    assert _cells(table[0]) == COLUMNS and _cells(table[1]) == ALIGNMENT
    rows = [dict(zip(COLUMNS, _cells(line), strict=True)) for line in table[2:]]
    assert [row["stage"] for row in rows] == ["decode", "filter", "render", "render", "normalize"]
    assert [row["size"] for row in rows] == ["256x128", "1,000 frames", "256x128", "512x256", "10,000 frames"]
    assert [row["mode"] for row in rows] == ["", "", "1 core", "1 core", "1 core"]
    judged = ">= 1000 frames/s: not judged (quick run)"  # a quick run's figures are not comparable
    assert [row["target"] for row in rows] == ["", "", judged, judged, "< 1 s: not judged (quick run)"]
    jobs = [line.split()[1] for line in result.stderr.splitlines() if line.startswith("[")]
    assert jobs == ["decode-edn", "decode-ffmpeg", "filter", "render-256", "render-512", "normalize"]
    assert "FAILED" not in result.stderr and "Quick smoke run" in result.stdout
    for row in rows:
        number, unit = row["figure"].split(" ", 1)
        assert _shown(number)[0] > 0 and unit == ("s" if row["stage"] == "normalize" else "frames/s")
        assert row["peak RSS"].endswith(("MiB", "GiB")) and float(row["others' CPU"]) >= 0
        if row["stage"] != "decode":  # no reference: no ratio
            assert row["reference (same run)"] == row["ratio"] == ""
    decode = rows[0]
    assert decode["measurement"] == "edn decode, demo videos (1 video)"
    figure, figure_step = _shown(decode["figure"].removesuffix(" frames/s"))
    label, reference = decode["reference (same run)"].split(": ")
    assert label == "ffmpeg alone" and reference.endswith(" frames/s")
    reference, reference_step = _shown(reference.removesuffix(" frames/s"))
    ratio, ratio_step = _shown(decode["ratio"].removesuffix("x"))
    lowest = (figure - figure_step) / (reference + reference_step)  # a rate: figure / reference
    highest = (figure + figure_step) / (reference - reference_step)
    assert lowest - ratio_step <= ratio <= highest + ratio_step, (figure, reference, ratio)


def test_unknown_stage_is_refused():
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "run.py"), "--only", "rendr"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "unknown stage(s) rendr" in result.stderr


def test_every_stage_of_the_issue_has_a_row_and_every_job_a_use():
    assert {"decode", "pose", "render", "normalize", "training", "synthesis", "encode", "forward",
            "matmul"} <= set(run.STAGES)
    used = {name for row in run.ROWS for name in run.row_jobs(row)}
    assert used == set(run.JOBS)


def test_a_figure_is_the_fastest_timed_call_after_the_untimed_warm_up(monkeypatch):
    """benchmarks.timing.best_seconds on a clock the test drives: warm-up calls are not
    timed, and the figure is the fastest of the timed calls, not their first or mean."""
    from benchmarks import timing

    clock, calls, durations = [0.0], [], iter([3.0, 1.0, 2.0])
    monkeypatch.setattr(timing.time, "perf_counter", lambda: clock[0])

    def action():
        calls.append(clock[0])
        if len(calls) > 2:  # the two warm-up calls take no time on this clock
            clock[0] += next(durations)

    assert timing.best_seconds(action, repeats=3, warmup=2) == 1.0
    assert len(calls) == 5
    with pytest.raises(ValueError, match="at least 1"):
        timing.best_seconds(action, repeats=0)


#: bf16 autocast on a CPU without bf16 units: about three times fp32's time (6 s against 2 s on 2 cores).
BF16_ON_A_CPU = pytest.mark.slow


@pytest.mark.parametrize("mode", ["fp32 eager", pytest.param("bf16 + channels_last", marks=BF16_ON_A_CPU)])
def test_torch_measurements_run_on_the_tiny_preset(mode):
    assert train.step_seconds("global", "tiny", TINY, mode, iterations=1, warmup=0) > 0
    assert train.step_seconds("face", "tiny", TINY, mode, iterations=1, warmup=0) > 0
    assert train.forward_seconds("tiny", TINY, mode, repeats=1, warmup=0) > 0
    assert synthesis.frames_per_second("tiny", TINY, mode, frames=3) > 0


def test_detector_measurements_run():
    threads = torch.get_num_threads()  # the measurements set torch's threads, as their job process's own
    try:
        assert detector.train_steps_per_second((256, 128), steps=1, threads=1) > 0
        assert detector.scored_pairs_per_second((256, 128), pairs=2, threads=1) > 0
    finally:
        torch.set_num_threads(threads)


def test_matmul_rate_is_positive():
    assert machine.matmul_gflops("fp32", 64, repeats=1) > 0 and machine.matmul_gflops("bf16", 64, repeats=1) > 0


def _convolution_gflop(preset: str, size: tuple[int, int]) -> float:
    """2 x multiply-adds of every (transposed) convolution, from forward hooks on the meta device."""
    total = 0

    def count(module, inputs, output):
        nonlocal total
        kernel = module.kernel_size[0] * module.kernel_size[1] // module.groups
        if isinstance(module, torch.nn.ConvTranspose2d):  # each input value spreads over a kernel of outputs
            total += 2 * inputs[0].numel() * module.out_channels * kernel
        else:  # each output value gathers a kernel of inputs
            total += 2 * output.numel() * module.in_channels * kernel

    width, height = size
    with torch.device("meta"):
        generator = build_generator(PRESETS[preset], "global")
        for module in generator.modules():
            if isinstance(module, (torch.nn.Conv2d, torch.nn.ConvTranspose2d)):
                module.register_forward_hook(count)
        generator(torch.zeros(1, 3, height, width), torch.zeros(1, 3, height, width))
    return total / 1e9


@pytest.mark.parametrize("preset,size", [("tiny", TINY), ("small", (256, 128)), ("paper", (512, 256))])
def test_generator_flops_are_its_convolutions(preset, size):
    assert machine.generator_forward_gflop(preset, size) == pytest.approx(_convolution_gflop(preset, size), rel=1e-9)


def test_paper_generator_is_about_220_gflop_at_512x256():
    # docs/training.md, "Presets": about 220 GFLOP per forward pass at 512x256.
    assert machine.generator_forward_gflop("paper", (512, 256)) == pytest.approx(220, rel=0.01)


def _results(**values: float) -> dict:
    return {name: {"value": value, "peak_bytes": 3 * 1024**3, "others_cores": 0.0} for name, value in values.items()}


def test_ratios_are_speed_ups_and_targets_are_judged():
    rows = {row.figure if not row.work else "rate": row for row in run.ROWS}
    step = rows["train-paper-global-bf16"]  # seconds: lower is better
    values = run.row_values(step, _results(**{"train-paper-global-bf16": 5.0, "train-paper-global-fp32": 10.0}))
    assert values["ratio"] == pytest.approx(2.0) and values["peak_gib"] == pytest.approx(3.0)
    assert all(target.met(values[target.on]) for target in step.targets)
    values = run.row_values(step, _results(**{"train-paper-global-bf16": 6.0, "train-paper-global-fp32": 10.0}))
    assert [target.met(values[target.on]) for target in step.targets] == [False, True]  # 1.67x < 1.8x
    # targets are judged on the layout edn uses on a CPU; the channels_last rows only show the other one
    assert step.mode == run.CPU_MODE and not rows["train-paper-global-bf16cl"].targets
    rate = rows["rate"]  # GFLOP over seconds, against the bf16 matmul rate
    values = run.row_values(rate, _results(**{"forward-paper-bf16": 0.5, "flops-paper": 220.0, "matmul-bf16": 400.0}))
    assert values["figure"] == pytest.approx(440.0) and values["ratio"] == pytest.approx(1.1)
    pose = rows["pose-2"]  # frames/s: higher is better
    values = run.row_values(pose, _results(**{"pose-2": 30.0, "pose-1": 20.0}))
    assert values["ratio"] == pytest.approx(1.5) and pose.targets[0].met(values["figure"])
    lines = run.format_table([pose], {**_results(**{"pose-2": 30.0}), "pose-1": {"error": "boom", "others_cores": 0}},
                             quick=False)
    assert "failed" in lines[-1] and "pose-1: boom" in lines[-1]


def test_workflow_stage_rows_from_snakemake_benchmark_files(tmp_path):
    from benchmarks.workflow_stages import read_stage_times, table_rows

    header = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"
    for rule, job, row in [("synthesize", "dancer_to_juggler", "12.5\t0:00:12\t700.1\t1\t1\t1\t0\t0\t150\t19.0"),
                           ("decode_frames", "juggler", "3.25\t0:00:03\tNA\tNA\tNA\tNA\tNA\tNA\tNA\tNA"),
                           ("train_global", "juggler", "600\t0:10:00\t1200\t1\t1\t1\t0\t0\t190\t1150")]:
        (tmp_path / rule).mkdir()
        (tmp_path / rule / f"{job}.tsv").write_text(header + row + "\n")
    times = read_stage_times(tmp_path)
    assert [(t.rule, t.job) for t in times] == [("decode_frames", "juggler"), ("train_global", "juggler"),
                                              ("synthesize", "dancer_to_juggler")]  # pipeline order
    assert times[0].cpu_s is None and times[0].max_rss_mib is None and times[2].cpu_s == 19.0
    lines = table_rows(times)
    cells = [[cell.strip() for cell in line.strip("|").split("|")] for line in lines]
    assert all(len(row) == 10 for row in cells)  # the columns of run.py's table
    assert cells[2][1] == "synthesize (dancer_to_juggler)" and cells[2][4] == "12.5 s" and cells[2][7] == "700 MiB"
    assert cells[-1][4] == "616 s"


def test_transfer_pose_fidelity_finds_the_requested_pose_on_real_frames_and_misses_it_on_a_blank_one(
        tmp_path, capsys):
    """Real MediaPipe on eight frames of the demo juggler, against the poses it finds on them: found in
    every frame with no error; a frame painted grey loses its pose, alone in its span."""
    import numpy as np

    from benchmarks import transfer_pose_fidelity
    from edn.evaluation.evaluate import detect_generated
    from edn.ingest.media import encode_video, ffmpeg_binary
    from edn.pose.keypoints import PoseSequence, write_pose_table

    video = ROOT / "resources" / "demo" / "target_juggler.mp4"
    raw = subprocess.run([ffmpeg_binary(), "-loglevel", "error", "-i", str(video), "-frames:v", "8", "-vf",
                          "scale=512:288", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"], check=True,
                         capture_output=True).stdout
    frames = np.frombuffer(raw, np.uint8).reshape(8, 288, 512, 3)
    poses = tmp_path / "poses.parquet"
    write_pose_table(poses, PoseSequence(detect_generated(frames), (512, 288), "mediapipe"))
    blank = frames.copy()
    blank[3] = 128
    np.save(tmp_path / "blank.npy", blank)
    encode_video(iter(frames), tmp_path / "filmed.mp4", fps="24", size=(512, 288), crf=12)

    def table(*arguments: str) -> list[list[str]]:
        assert transfer_pose_fidelity.main(["--poses", str(poses), *arguments]) == 0
        return [_cells(line) for line in capsys.readouterr().out.splitlines()[2:]]

    filmed, blanked = table(str(tmp_path / "filmed.mp4"), str(tmp_path / "blank.npy"))
    assert filmed[1:3] == ["8", "1.0000"] and float(filmed[3]) < 0.02  # re-encoded, found where it was
    assert blanked[1:3] == ["8", "0.8750"]
    (span,) = table(str(tmp_path / "blank.npy"), "--span", "3:4")
    assert span[1:3] == ["1", "0.0000"]
    # Frames that are not the poses' transfer: one line, exit 1.
    assert transfer_pose_fidelity.main(["--poses", str(poses), str(tmp_path / "filmed.mp4"), "--span", "9:"]) == 1
    assert "--span '9:': no frame of the 8 in it" in capsys.readouterr().err

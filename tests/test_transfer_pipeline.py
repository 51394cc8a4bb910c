"""The whole pipeline through Snakemake at a tiny size: videos in, playable transfers out.

One module-scoped run makes two pairs onto one target: a source with a soundtrack
(the dancer with a sine tone added) and one without (the aerobics video). Then
Snakemake's dry runs show which jobs a change or a --forcerun reruns.
"""

from __future__ import annotations

import copy
import re
from fractions import Fraction
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from edn.core.checkpoint import load_checkpoint
from edn.ingest.frames import read_meta
from edn.ingest.media import count_frames, probe_video
from helpers import run_snakemake, tiny_pipeline_config

pytestmark = pytest.mark.slow

PAIRS = ("dancer_to_juggler", "aerobics_to_juggler")


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory) -> tuple[Path, dict]:
    workdir = tmp_path_factory.mktemp("pipeline")
    config = tiny_pipeline_config(workdir)
    result = run_snakemake(workdir, config)
    assert result.returncode == 0, result.output[-3000:]
    return workdir, config


def planned_jobs(workdir: Path, config: dict, *args: str) -> dict[str, int]:
    """The jobs a dry run would run, as {rule: count}."""
    # Targets and --forcerun first: --quiet takes any number of values.
    result = run_snakemake(workdir, config, *args, "--dry-run", "--quiet", "rules")
    assert result.returncode == 0, result.output[-3000:]
    jobs = {}
    for line in result.output.splitlines():
        match = re.fullmatch(r"(\w+)\s+(\d+)", line.strip())
        if match and match[1] != "total":
            jobs[match[1]] = int(match[2])
    return jobs


@pytest.mark.parametrize("pair,has_audio", [("dancer_to_juggler", True), ("aerobics_to_juggler", False)])
def test_transfer_video_matches_the_source_span(pipeline, pair: str, has_audio: bool) -> None:
    workdir, _ = pipeline
    source = pair.split("_to_")[0]
    video = workdir / f"results/transfer/{pair}.mp4"
    span = workdir / f"results/videos/{source}.mp4"
    info, span_info = probe_video(video), probe_video(span)
    assert count_frames(video) == count_frames(span) == read_meta(workdir / f"results/frames/{source}/meta.json").frame_count
    assert info.fps == span_info.fps
    assert info.has_audio is has_audio
    if has_audio:
        assert info.audio_duration_s == pytest.approx(span_info.audio_duration_s, abs=0.05)
        assert info.audio_duration_s == pytest.approx(1.5, abs=0.05)  # the 1.0-2.5 s span
    compare = probe_video(workdir / f"results/transfer/{pair}.compare.mp4")
    assert compare.fps == info.fps and count_frames(workdir / f"results/transfer/{pair}.compare.mp4") == count_frames(video)
    assert compare.width == 3 * info.width + 8 and compare.height == info.height


def test_dancer_span_frame_count(pipeline) -> None:
    workdir, _ = pipeline
    # 1.5 s of a 20 fps video.
    assert read_meta(workdir / "results/frames/dancer/meta.json").frame_count == 30
    assert read_meta(workdir / "results/frames/dancer/meta.json").fps_value == Fraction(20)


def test_nothing_to_do_after_a_complete_run(pipeline) -> None:
    assert planned_jobs(*pipeline) == {}


def test_changing_a_synthesis_option_reruns_synthesis_and_encoding_only(pipeline) -> None:
    workdir, config = pipeline
    changed = copy.deepcopy(config)
    changed["synthesis"] = {**config["synthesis"], "precision": "fp32"}
    assert planned_jobs(workdir, changed) == {"synthesize": 2, "encode_transfer": 2, "compare_transfer": 2, "all": 1}


def test_keeping_the_exemplars_face_or_not_resynthesizes_without_retraining(pipeline) -> None:
    workdir, config = pipeline
    changed = copy.deepcopy(config)
    changed["synthesis"] = {**config["synthesis"], "exemplar_face": False}
    assert planned_jobs(workdir, changed) == {"synthesize": 2, "encode_transfer": 2, "compare_transfer": 2, "all": 1}


def test_changing_the_output_framing_reencodes_only(pipeline) -> None:
    workdir, config = pipeline
    changed = copy.deepcopy(config)
    changed["synthesis"] = {**config["synthesis"], "output_framing": "source"}
    assert planned_jobs(workdir, changed) == {"encode_transfer": 2, "all": 1}


def test_forcerun_of_the_face_stage_reruns_what_follows_not_the_global_stage(pipeline) -> None:
    assert planned_jobs(*pipeline, "--forcerun", "train_face") == {
        "train_face": 1, "synthesize": 2, "encode_transfer": 2, "compare_transfer": 2, "all": 1}


def test_forcerun_of_poses_for_one_subject(pipeline) -> None:
    workdir, config = pipeline
    jobs = planned_jobs(workdir, config, "--forcerun", "results/poses/aerobics.parquet")
    assert jobs == {"detect_poses": 1, "filter_poses": 1, "preview_poses": 1, "subject_stats": 1,
                    "normalize_transfer": 1, "normalization_figure": 1, "render_transfer_labels": 1,
                    "preview_transfer_labels": 1, "transfer_exemplars": 1, "synthesize": 1, "encode_transfer": 1, "compare_transfer": 1,
                    "all": 1}


@pytest.mark.parametrize("target,expected", [
    ("poses", {"detect_poses": 3, "filter_poses": 3, "preview_poses": 3, "poses": 1}),
    ("global_models", {"train_global": 1, "global_models": 1}),
    ("transfers", {"synthesize": 2, "encode_transfer": 2, "compare_transfer": 2, "transfers": 1}),
])
def test_per_stage_targets(pipeline, target: str, expected: dict) -> None:
    workdir, config = pipeline
    rule = next(rule for rule in expected if rule != target)
    assert planned_jobs(workdir, config, target, "--forcerun", rule) == expected


def test_evaluation_and_the_ablation_through_snakemake(pipeline) -> None:
    workdir, config = pipeline
    tables = ["results/eval/juggler/metrics.csv", "results/eval/juggler/ablation.csv"]
    result = run_snakemake(workdir, config, *tables, timeout=1800)  # 16 rows, 9 of them trained
    assert result.returncode == 0, result.output[-3000:]
    # FBF is the one extra model: the global stage trained frame by frame, same budget.
    fbf = load_checkpoint(workdir / "results/models/juggler/fbf/global.pt")
    ts = load_checkpoint(workdir / "results/models/juggler/global.pt")
    assert fbf.options["temporal"] is False and ts.options["temporal"] is True
    assert fbf.step == ts.step == config["training"]["iterations"]["global"]
    main, ablation = (pd.read_csv(workdir / table) for table in tables)
    assert set(main["method"]) == {"nearest_neighbour", "background", "pose_warp", "edn"}
    assert set(ablation["method"]) == {"nearest_neighbour", "background", "pose_warp", "fbf", "ts", "fg",
                                       "fbf_plain", "ts_plain", "fg_plain", "fbf_exemplar", "ts_exemplar",
                                       "fg_exemplar", "ts_exemplar_resize", "ts_transposed", "paper_ts", "paper_fg"}
    # The configured rows correct the warped exemplar as a residual (config.yaml), the plain rows draw
    # from the stick figure alone, the exemplar rows are fed it as input.
    saved = {variant: load_checkpoint(workdir / f"results/models/juggler/{variant}global.pt").options
             for variant in ("", "fbf/", "plain/", "plain_fbf/", "exemplar/", "transposed/")}
    exemplar = {variant: saved[variant]["exemplar"] for variant in ("", "fbf/", "plain/", "plain_fbf/", "exemplar/")}
    assert exemplar == {"": "residual", "fbf/": "residual", "plain/": "none", "plain_fbf/": "none",
                        "exemplar/": "input"}
    # The residual correction upsamples by resize-convolution (auto); ts_transposed is it with
    # pix2pixHD's transposed convolutions, the plain rows keep them.
    upsampling = {variant: saved[variant]["upsampling"] for variant in ("", "fbf/", "transposed/", "plain/")}
    assert upsampling == {"": "resize", "fbf/": "resize", "transposed/": "transposed", "plain/": "transposed"}
    # The paper's rows: the whole-frame method at half the working size; the others draw over the plate.
    paper = load_checkpoint(workdir / "results/models/juggler/paper/global.pt")
    assert not paper.compositing and paper.options["downsample"] == 2 and ts.compositing and fbf.compositing
    assert paper.step == ts.step
    for table in (main, ablation):
        ssim = table[(table["metric"] == "ssim") & (table["region"] == "full")]
        assert len(ssim) == len(set(table["method"])) and ssim["value"].between(-1, 1).all()
    markdown = (workdir / "results/eval/juggler/ablation.md").read_text()
    assert all(name in markdown for name in ("fbf", "ts", "fg", "nearest", "background", "paper_fg"))
    # The held-out frames each method generated, as many as the real ones.
    counts = {method: len(np.load(workdir / f"results/eval/juggler/{method}/generated.npy", mmap_mode="r"))
              for method in ("nearest_neighbour", "background", "pose_warp", "edn", "fbf", "ts", "fg", "paper_ts",
                             "paper_fg")}
    assert len(set(counts.values())) == 1 and counts["fbf"] > 0

"""Every option is defined once (edn/core/options.py): the schema, the CLI and the rules follow from it."""

from __future__ import annotations

import dataclasses
import shlex

import pytest
import torch
import yaml

from edn.cli import build_parser
from edn.core.errors import EdnError
from edn.core.options import (BackgroundOptions, DetectorOptions, DownloadOptions, EncodeOptions, FrameOptions,
                         KeypointFilterOptions, MinConfidence, NormalizationOptions, PersonWindowOptions, PoseOptions,
                         RuntimeOptions, SubjectStatsOptions, TrainingOptions, command_line, field_types,
                         from_arguments, is_section)
from edn.core.presets import PRESETS
from edn.core.runtime import choose_runtime
from helpers import ROOT

SCHEMA = yaml.safe_load((ROOT / "config" / "config.schema.yaml").read_text())["properties"]
DEMO_CONFIG = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
RESOURCES = {"threads", "mem_mb", "gpus"}

#: Config section -> the options classes its keys belong to (as workflow/rules/common.smk
#: hands them out) and the keys that are the workflow's own, not any stage's option.
SECTIONS = {
    "download": ((DownloadOptions,), set()),
    "frames": ((FrameOptions,), set()),
    "pose": ((PoseOptions,), set()),
    "keypoint_filter": ((KeypointFilterOptions,), set()),
    "normalization": ((SubjectStatsOptions, NormalizationOptions), set()),
    "background": ((BackgroundOptions,), set()),
    "person_window": ((PersonWindowOptions,), set()),
    "training": ((TrainingOptions, RuntimeOptions),
                 {"enabled", "iterations", "use_local", "use_face_gan", "perceptual_allow_download", "tasks"} | RESOURCES),
    "synthesis": ((RuntimeOptions, EncodeOptions), RESOURCES),
    "detector": ((DetectorOptions, RuntimeOptions), RESOURCES),
}

#: The option's checks under their JSON-schema names.
SCHEMA_CHECKS = {"minimum": "minimum", "maximum": "maximum", "above": "exclusiveMinimum",
                 "below": "exclusiveMaximum", "multiple_of": "multipleOf"}


def test_every_config_section_is_mapped() -> None:
    assert set(SCHEMA) - {"subjects", "pairs"} == set(SECTIONS)


def _fields(classes) -> dict[str, tuple[type, dataclasses.Field]]:
    return {spec.name: (cls, spec) for cls in classes for spec in dataclasses.fields(cls)}


def _compare(section: str, properties: dict, classes, workflow_keys: set) -> list[str]:
    """Every difference between a schema section and its options classes, as messages."""
    problems = []
    fields = _fields(classes)
    for key in sorted(set(properties) - set(fields) - workflow_keys):
        problems.append(f"{section}.{key}: in the schema but no option")
    for name, (cls, spec) in fields.items():
        where = f"{section}.{name} ({cls.__name__})"
        if name not in properties or name in workflow_keys:
            continue  # an option this section does not set (e.g. channels_last in synthesis)
        entry = properties[name]
        kind = field_types(cls)[name]
        if not spec.metadata["in_config"]:
            problems.append(f"{where}: a command-line-only option is in the schema")
        if is_section(kind):
            problems += _compare(f"{section}.{name}", entry["properties"], (kind,), set())
            continue
        default = spec.default
        if entry.get("default", "required") != default:
            problems.append(f"{where}: schema default {entry.get('default')!r}, option default {default!r}")
        checks = spec.metadata["checks"]
        if "choices" in checks:
            enum = [str(v).lower() if isinstance(v, bool) else v for v in entry.get("enum", []) if v is not None]
            if enum != list(checks["choices"]):
                problems.append(f"{where}: schema enum {enum}, option choices {list(checks['choices'])}")
        for ours, theirs in SCHEMA_CHECKS.items():
            if checks.get(ours) != entry.get(theirs):
                problems.append(f"{where}: schema {theirs} {entry.get(theirs)}, option {ours} {checks.get(ours)}")
        if "pattern" in checks and entry.get("pattern") != f"^({checks['pattern']})$":
            problems.append(f"{where}: schema pattern {entry.get('pattern')}, option pattern {checks['pattern']}")
        types = entry.get("type", [])
        admits_null = "null" in (types if isinstance(types, list) else [types]) or None in entry.get("enum", [])
        if admits_null != ("None" in str(cls.__annotations__[name])):
            problems.append(f"{where}: schema admits null {admits_null}, option type {cls.__annotations__[name]}")
    return problems


@pytest.mark.parametrize("section", sorted(SECTIONS))
def test_schema_defaults_and_checks_are_the_options(section: str) -> None:
    classes, workflow_keys = SECTIONS[section]
    problems = _compare(section, SCHEMA[section]["properties"], classes, workflow_keys)
    assert not problems, "\n".join(problems)


def test_each_stage_iterations_are_checked_as_the_option() -> None:
    """training.iterations holds one value per stage; the rules hand each stage its own."""
    minimum = {spec.name: spec for spec in dataclasses.fields(TrainingOptions)}["iterations"].metadata["checks"]
    per_stage = SCHEMA["training"]["properties"]["iterations"]["properties"]
    assert set(per_stage) == {"global", "local", "face"}
    assert all(entry["minimum"] == minimum["minimum"] for entry in per_stage.values())


def test_every_config_option_is_in_the_schema() -> None:
    in_schema = {(cls, name) for section, (classes, _) in SECTIONS.items() for cls in classes
                 for name in SCHEMA[section]["properties"]}
    for section, (classes, _) in SECTIONS.items():
        for cls in classes:
            for spec in dataclasses.fields(cls):
                if spec.metadata["in_config"]:
                    assert (cls, spec.name) in in_schema, f"{cls.__name__}.{spec.name} has no config key"


def test_the_comparison_catches_a_changed_default() -> None:
    properties = yaml.safe_load(yaml.safe_dump(SCHEMA["training"]["properties"]))
    properties["learning_rate"]["default"] = 0.001
    properties["seed"]["minimum"] = 1
    properties.pop("sample_every")
    properties["typo_key"] = {"type": "integer", "default": 1}
    problems = "\n".join(_compare("training", properties, *SECTIONS["training"]))
    assert "learning_rate (TrainingOptions): schema default 0.001, option default 0.0002" in problems
    assert "seed (TrainingOptions): schema minimum 1, option minimum 0" in problems
    assert "training.typo_key: in the schema but no option" in problems


def test_preset_choices_are_the_presets() -> None:
    choices = dict((spec.name, spec) for spec in dataclasses.fields(TrainingOptions))["preset"].metadata["checks"]
    assert set(choices["choices"]) == set(PRESETS)


def _parse(command: str, flags: str):
    return build_parser().parse_args([command, *shlex.split(flags)])


def test_the_demo_config_reaches_each_stage_as_its_options() -> None:
    """The flags the rules build from a config section give the stage exactly those options."""
    training = DEMO_CONFIG["training"]
    values = {key: training[key] for key in ("preset", "learning_rate", "holdout_fraction", "seed")}
    flags = command_line(TrainingOptions, {"stage": "face", "iterations": 7, **values})
    runtime = command_line(RuntimeOptions, {"device": "cpu", "channels_last": False})
    args = _parse("train", f"--frames f --labels l --index i --perceptual p --output o --run-dir r {flags} {runtime}")
    options = from_arguments(TrainingOptions, args)
    assert options == TrainingOptions(stage="face", iterations=7, **values)
    assert from_arguments(RuntimeOptions, args) == RuntimeOptions(device="cpu", channels_last="false")

    pose = DEMO_CONFIG["pose"]
    args = _parse("pose", "--meta m --output o " + command_line(PoseOptions, pose))
    parsed = from_arguments(PoseOptions, args)
    assert parsed.min_confidence == MinConfidence(**pose["min_confidence"]) and parsed.detection_scale == pose["detection_scale"]
    assert parsed.openpose_model_folder is None  # null in the config, "none" on the command line

    detector = {"compression_crf": None, "flip": False, "batch_size": 8}
    args = _parse("train-detector", "--subject s --frames f --meta m --generated g --index i --output o "
                  + command_line(DetectorOptions, detector))
    assert from_arguments(DetectorOptions, args) == DetectorOptions(**detector)


def test_command_line_rejects_unknown_and_bad_values() -> None:
    with pytest.raises(KeyError, match="TrainingOptions has no option learnig_rate"):
        command_line(TrainingOptions, {"learnig_rate": 1e-3})
    with pytest.raises(EdnError, match="option learning_rate 0: must be above 0"):
        command_line(TrainingOptions, {"learning_rate": 0})
    with pytest.raises(EdnError, match="option fit 'squash': must be one of pad, crop"):
        FrameOptions(fit="squash")
    with pytest.raises(EdnError, match="option width 250: must be a multiple of 32"):
        FrameOptions(width=250)
    with pytest.raises(EdnError, match="option device 'gpu': not of the form"):
        RuntimeOptions(device="gpu")


def test_a_bad_flag_is_one_error_line_naming_the_option(tmp_path) -> None:
    from helpers import run_edn

    bad = run_edn("filter-poses", "--poses", tmp_path / "p.parquet", "--output", tmp_path / "o.parquet",
                  "--median-window", "0")
    assert bad.returncode == 1
    assert bad.error_lines == ["edn filter-poses: error: option median_window 0: must be at least 1"]
    borrowed = run_edn("evaluate", "--method", "m", "--frames", "f", "--poses", "p", "--labels", "l", "--index", "i",
                       "--generated", tmp_path / "g.npy", "--output", tmp_path / "m.csv", "--holdout-fraction", "1")
    assert borrowed.returncode == 1
    assert borrowed.error_lines == ["edn evaluate: error: option holdout_fraction 1.0: must be below 1"]


def test_one_definition_per_default() -> None:
    """Library functions take their defaults from the options, not a copy."""
    import inspect

    from edn.ingest.fetch import fetch_video
    from edn.pose.keypoint_filter import filter_poses
    from edn.pose.detect import DEFAULT_MIN_CONFIDENCE
    from edn.normalize.subject_stats import compute_stats

    assert inspect.signature(filter_poses).parameters["sigma_frames"].default == KeypointFilterOptions().sigma_frames
    assert inspect.signature(compute_stats).parameters["alpha"].default == SubjectStatsOptions().alpha
    assert inspect.signature(fetch_video).parameters["timeout_s"].default == DownloadOptions().timeout_s
    assert DEFAULT_MIN_CONFIDENCE == {"mediapipe": 0.5, "openpose": 0.05, "openpose_json": 0.05}
    assert EncodeOptions().output_framing == "working" and NormalizationOptions().recenter_x is False


# -- the runtime: cuda:N ---------------------------------------------------------------------------


@pytest.fixture
def two_gpus(monkeypatch):
    """Pretend this machine has two CUDA devices with bf16."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *args, **kwargs: True)


@pytest.mark.parametrize("device", ["cuda", "cuda:1"])
def test_a_numbered_cuda_device_is_cuda(two_gpus, device: str) -> None:
    runtime = choose_runtime(RuntimeOptions(device=device))
    assert runtime.device == torch.device(device)
    assert runtime.bf16 and runtime.channels_last  # CUDA's bf16 probe and layout, not the CPU's


def test_a_cuda_device_that_is_not_there(two_gpus, monkeypatch) -> None:
    with pytest.raises(EdnError, match=r"device 'cuda:2': this machine has 2 CUDA device\(s\), cuda:0..cuda:1"):
        choose_runtime(RuntimeOptions(device="cuda:2"))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(EdnError, match="device 'cuda:1': no CUDA device is available"):
        choose_runtime(RuntimeOptions(device="cuda:1"))
    assert choose_runtime(RuntimeOptions(device="auto")).device == torch.device("cpu")
    assert not choose_runtime(RuntimeOptions(device="cpu", channels_last="auto")).channels_last

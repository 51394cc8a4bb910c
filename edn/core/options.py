"""Every option of every stage, defined once.

Each stage's options are a frozen dataclass below; a field is one option: its
name (the config key, and the command-line flag with ``-`` for ``_``), its type,
its default and its check, declared with :func:`option`. Everything else
follows from the field:

- the CLI adds one flag per field (:func:`add_arguments`) and builds the
  dataclass from the parsed flags (:func:`from_arguments`), so a flag's default
  is the field's default;
- the workflow turns a config section into flags (:func:`command_line`), one
  generic call per rule instead of a flag builder per stage;
- the config schema repeats each default, range and choice for Snakemake's
  validation, config/README.md's tables each default for readers, and the demo's
  config/config.yaml each value; ``tests/test_options.py`` checks all three
  against the fields key by key and names the key that differs.

Adding an option touches its dataclass field, its schema entry, its row in
config/README.md and config.yaml (value and comment), nothing else. The workflow's
own keys (a job's threads, memory and GPUs, which stages to train) are not
options: their defaults live in the schema alone, and the README is checked
against it.

A field whose type is another options class is a nested config section
(``pose.min_confidence.mediapipe``); its flags are prefixed with the field's name
(``--min-confidence-mediapipe``). ``None`` is written ``none`` on the command line.
This module imports nothing heavy: ``edn --help`` and the workflow import it.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import re
import shlex
import typing
from collections.abc import Iterable, Mapping
from dataclasses import MISSING, dataclass, field
from fractions import Fraction
from functools import cache
from types import NoneType, UnionType
from typing import Any

from edn.core.errors import EdnError

#: The value that stands for None on the command line.
NONE = "none"

#: Upper bounds shared by several options (the schema repeats them): a seed numpy and torch
#: both take, and counts of steps far beyond any run, checked before they reach a library.
MAX_SEED = 2**32 - 1
MAX_STEPS = 100_000_000


def option(default: Any = MISSING, help: str = "", *, choices: Iterable | None = None,
           minimum: float | None = None, maximum: float | None = None, above: float | None = None,
           below: float | None = None, multiple_of: int | None = None, pattern: str | None = None,
           in_config: bool = True) -> Any:
    """One option: a dataclass field with its default, help and checks.

    ``minimum``/``maximum`` are inclusive bounds, ``above``/``below`` exclusive
    ones (the schema's minimum, maximum, exclusiveMinimum, exclusiveMaximum);
    ``choices`` its enum; ``pattern`` a regular expression a string must match
    in full. ``in_config=False``: a command-line option only, not in the config
    schema (the workflow sets it per rule, or it is for tests and hand runs).
    None always passes the checks (for fields whose type admits None).
    """
    checks = {"choices": None if choices is None else tuple(choices), "minimum": minimum, "maximum": maximum,
              "above": above, "below": below, "multiple_of": multiple_of, "pattern": pattern}
    metadata = {"help": help, "checks": {k: v for k, v in checks.items() if v is not None}, "in_config": in_config}
    return field(default=default, metadata=metadata)


def nested(cls: type) -> Any:
    """A nested options section, defaulting to ``cls()``."""
    return field(default_factory=cls, metadata={"help": "", "checks": {}, "in_config": True})


class Options:
    """Base of every options dataclass: checks each field after construction."""

    def __post_init__(self) -> None:
        for spec in dataclasses.fields(self):
            check_value(spec, getattr(self, spec.name), type(self))

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def replace(self, **changes: Any):
        return dataclasses.replace(self, **changes)


def check_value(spec: dataclasses.Field, value: Any, owner: type) -> None:
    """EdnError naming the option when ``value`` breaks one of its checks."""
    if value is None:
        return
    checks = spec.metadata.get("checks", {})
    name, shown = spec.name, _shown(value)
    kind = field_types(owner)[name]
    if kind in (int, float) and (isinstance(value, bool) or not isinstance(value, (int, float))):
        raise EdnError(f"option {name} {shown}: must be a number")
    if isinstance(value, float) and not float("-inf") < value < float("inf"):  # inf or nan
        raise EdnError(f"option {name} {shown}: must be a finite number")
    if kind is int and isinstance(value, float) and not value.is_integer():
        raise EdnError(f"option {name} {shown}: must be a whole number")
    if "choices" in checks and value not in checks["choices"]:
        raise EdnError(f"option {name} {shown}: must be one of {', '.join(map(str, checks['choices']))}")
    if "pattern" in checks and not re.fullmatch(checks["pattern"], str(value)):
        raise EdnError(f"option {name} {shown}: not of the form {checks['pattern']}")
    # Bounds on a text option hold its value as a number (a frame rate such as 30000/1001).
    number = _ratio(str(value)) if kind is str else value
    bounds = (("minimum", lambda v, b: v >= b, "at least"), ("maximum", lambda v, b: v <= b, "at most"),
              ("above", lambda v, b: v > b, "above"), ("below", lambda v, b: v < b, "below"))
    for key, holds, words in bounds:
        if key in checks and number is not None and not holds(number, checks[key]):
            raise EdnError(f"option {name} {shown}: must be {words} {checks[key]}")
    if "multiple_of" in checks and value % checks["multiple_of"]:
        raise EdnError(f"option {name} {shown}: must be a multiple of {checks['multiple_of']}")


def _shown(value: Any) -> str:
    """``value`` as an error message quotes it: an enormous number cut to its first digits."""
    try:
        text = repr(value)
    except ValueError:  # an int past Python's 4300-digit limit on conversion to text
        return "(a number of more than 4300 digits)"
    return text if len(text) <= 40 else f"{text[:20]}... ({len(text)} characters)"


def _ratio(text: str) -> Fraction | None:
    """``24``, ``29.97`` or ``30000/1001`` as a number; None when it is not one (or divides by 0)."""
    try:
        numerator, _, denominator = text.partition("/")
        return Fraction(numerator) / Fraction(denominator or 1)
    except (ValueError, ZeroDivisionError):
        return None


@cache
def field_types(cls: type) -> dict[str, type]:
    """Each field's type with None taken out: ``float | None`` -> float."""
    hints = typing.get_type_hints(cls)
    return {spec.name: _without_none(hints[spec.name]) for spec in dataclasses.fields(cls)}


def _without_none(hint: Any) -> Any:
    if isinstance(hint, UnionType) or typing.get_origin(hint) is typing.Union:
        kinds = [k for k in typing.get_args(hint) if k is not NoneType]
        return kinds[0] if len(kinds) == 1 else str
    return hint


def _admits_none(cls: type, name: str) -> bool:
    hint = typing.get_type_hints(cls)[name]
    return NoneType in typing.get_args(hint)


def is_section(kind: Any) -> bool:
    return isinstance(kind, type) and issubclass(kind, Options)


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


# -- the command line ---------------------------------------------------------------------------------


def _parser_type(kind: type, admits_none: bool):
    """argparse's ``type=``: the text as ``kind`` (``none`` as None where the field admits it).

    Ranges and patterns are checked when the options are built (:func:`from_arguments`),
    so a bad value is a one-line EdnError like any other bad input.
    """
    def parse(text: str):
        if admits_none and text.lower() in (NONE, "null"):
            return None
        try:
            return kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a {kind.__name__}: {text!r}") from None

    parse.__name__ = kind.__name__  # argparse names the type in its messages
    return parse


def add_arguments(parser: argparse.ArgumentParser, cls: type, *, only: Iterable[str] | None = None,
                  prefix: str = "") -> None:
    """One flag per field of ``cls`` (or of the fields named in ``only``), defaulting to the field's default."""
    wanted = None if only is None else set(only)
    for spec in dataclasses.fields(cls):
        if wanted is not None and spec.name not in wanted:
            continue
        name, kind = prefix + spec.name, field_types(cls)[spec.name]
        if is_section(kind):
            add_arguments(parser, kind, prefix=f"{name}_")
            continue
        checks = spec.metadata.get("checks", {})
        required = spec.default is MISSING and spec.default_factory is MISSING
        default = None if required else spec.default
        help_text = spec.metadata.get("help", "")
        if not required:
            help_text += f" (default: {NONE if default is None else default})"
        keywords: dict[str, Any] = {"dest": name, "help": help_text}
        if kind is bool:
            keywords.update(action=argparse.BooleanOptionalAction, default=default)
        else:
            # Choices and ranges are checked when the options are built, as one-line errors.
            metavar = ("{" + ",".join(map(str, checks["choices"])) + "}" if "choices" in checks
                       else spec.name.upper().rsplit("_", 1)[-1])
            keywords.update(type=_parser_type(kind, _admits_none(cls, spec.name)), required=required,
                            default=default, metavar=metavar)
        parser.add_argument(flag(name), **keywords)


def from_arguments(cls: type, arguments: argparse.Namespace, *, prefix: str = "", **fixed: Any):
    """Build ``cls`` from flags added by :func:`add_arguments`; ``fixed`` fields are given directly."""
    values = {}
    for spec in dataclasses.fields(cls):
        if spec.name in fixed:
            values[spec.name] = fixed[spec.name]
            continue
        name, kind = prefix + spec.name, field_types(cls)[spec.name]
        if is_section(kind):
            values[spec.name] = from_arguments(kind, arguments, prefix=f"{name}_")
        elif hasattr(arguments, name):
            values[spec.name] = getattr(arguments, name)
    return cls(**values)


def checked_argument(cls: type, arguments: argparse.Namespace, name: str) -> Any:
    """One option's value from flags added with ``add_arguments(..., only=...)``, checked."""
    spec = cls.__dataclass_fields__[name]
    value = getattr(arguments, name)
    check_value(spec, value, cls)
    return value


def command_line(cls: type, values: Mapping[str, Any], *, prefix: str = "") -> str:
    """The flags that give ``cls`` these ``values`` (a config section, or part of it).

    Every key must be a field of ``cls``: a key the stage does not know is a bug
    in the workflow, never dropped. Values are checked as the dataclass checks
    them, so a bad value fails before any job starts.
    """
    specs = {spec.name: spec for spec in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(specs))
    if unknown:
        raise KeyError(f"{cls.__name__} has no option {', '.join(unknown)}")
    words = []
    for name, value in values.items():
        spec, kind = specs[name], field_types(cls)[name]
        if is_section(kind):
            words.append(command_line(kind, value, prefix=f"{prefix}{name}_"))
            continue
        if kind is str and isinstance(value, bool):  # YAML's true for a choice "true"
            value = str(value).lower()
        check_value(spec, value, cls)
        if kind is bool:
            words.append(flag(prefix + name) if value else flag("no_" + prefix + name))
        else:
            text = NONE if value is None else str(value)
            words.append(f"{flag(prefix + name)} {shlex.quote(text)}")
    return " ".join(word for word in words if word)


# -- the options of each stage ------------------------------------------------------------------------


@dataclass(frozen=True)
class DownloadOptions(Options):
    """``edn fetch`` (config ``download``)."""

    timeout_s: float = option(60.0, "network timeout of a download, in seconds", above=0, maximum=3600)
    max_download_mb: int = option(4096, "largest download accepted, in MB (10^6 bytes): a larger one is stopped "
                                        "while it arrives and nothing is kept", minimum=1, maximum=1_000_000)


@dataclass(frozen=True)
class FrameOptions(Options):
    """``edn decode`` (config ``frames``): the working frames every stage sees."""

    width: int = option(256, "working frame width in pixels", minimum=64, maximum=8192, multiple_of=32)
    height: int = option(128, "working frame height in pixels", minimum=64, maximum=8192, multiple_of=32)
    fps: str | None = option(None, "frame rate to decode at (24, 30000/1001); none keeps the video's own",
                             pattern=r"[0-9]+(\.[0-9]+)?(/[0-9]+)?", maximum=1000)
    fit: str = option("pad", "keep the whole frame and pad (pad), or fill the working frame and crop (crop)",
                      choices=("pad", "crop"))
    orientation: str = option("auto", "auto: a video displayed taller than wide is decoded at height x width "
                                      "(the same pixels, portrait); landscape or portrait: every video at that "
                                      "orientation of width x height", choices=("auto", "landscape", "portrait"))


@dataclass(frozen=True)
class MinConfidence(Options):
    """Keypoints below these confidences are missing, per detector family (config ``pose.min_confidence``).

    MediaPipe's visibility and OpenPose's heat-map peaks are different scales:
    0.5 is MediaPipe's own drawing threshold, 0.05 OpenPose's rendering threshold.
    """

    mediapipe: float = option(0.5, "threshold on MediaPipe visibility", minimum=0, maximum=1)
    openpose: float = option(0.05, "threshold on OpenPose confidence (openpose and openpose_json)",
                             minimum=0, maximum=1)

    def of(self, backend: str) -> float:
        return self.mediapipe if backend == "mediapipe" else self.openpose


POSE_BACKENDS = ("mediapipe", "openpose", "openpose_json")


@dataclass(frozen=True)
class PoseOptions(Options):
    """``edn pose`` (config ``pose``)."""

    backend: str = option("mediapipe", "detector of every subject without its own pose_backend",
                          choices=POSE_BACKENDS)
    detection_scale: float = option(1.0, "detect on the video decoded at this many times the working size "
                                         "(1: on the working frames)", minimum=1, maximum=8)
    workers: int = option(2, "MediaPipe processes per subject, one Holistic each", minimum=1, maximum=256)
    min_confidence: MinConfidence = nested(MinConfidence)
    openpose_model_folder: str | None = option(None, "OpenPose's models/ folder (backend openpose)")
    openpose_flags: str = option("", "backend openpose: extra OpenPose flags, name=value,... (e.g. "
                                     "net_resolution=-1x256,number_people_max=4 on a CPU); each name and value is "
                                     "checked, since OpenPose ends the process on an unknown one")
    openpose_json_coordinates: str = option("source", "pixels the OpenPose JSON files are in: the source "
                                                      "video's or the working frames'", choices=("source", "working"))


@dataclass(frozen=True)
class KeypointFilterOptions(Options):
    """``edn filter-poses`` (config ``keypoint_filter``): gaps filled and keypoints filtered over time."""

    max_gap_frames: int = option(5, "longest run of missing frames filled by interpolation (0: none)", minimum=0)
    median_window: int = option(5, "length of the running median that removes single-frame jumps (1: none)",
                                minimum=1)
    sigma_frames: float = option(2.0, "standard deviation of the zero-phase local-quadratic Gaussian filter, "
                                      "in frames (0: none)", minimum=0, maximum=1000)


@dataclass(frozen=True)
class BackgroundOptions(Options):
    """``edn background`` (config ``background``): each target's background plate (:mod:`edn.background.plate`)."""

    grow_px: int = option(6, "pixels the person's mask and stick figure are grown by before the median",
                          minimum=0, maximum=256)
    min_observations: int = option(3, "a plate pixel seen without the person in fewer frames is inpainted",
                                   minimum=1)
    near_grow_px: int = option(1, "a pixel seen in fewer than min_observations frames (the ring beside someone who "
                                  "stands in one place) takes the median over the frames where the person grown by "
                                  "this many pixels leaves it, where there are enough; at grow_px or more: off",
                               minimum=0, maximum=256)
    max_frames: int = option(200, "frames spread over the video that the median is taken over", minimum=1)
    max_camera_residual: float = option(6.0, "above this mean |frame - plate| outside the person (0-255), the "
                                             "frames registered to the reference view, the background counts as "
                                             "moving: the target is trained on the whole frame, as in the paper",
                                        above=0, maximum=255)
    reference: str = option("middle", "the frame whose view the plate is in: the middle one, or the one where the "
                                      "person covers least", choices=("middle", "most_background"))
    motion_model: str = option("auto", "the camera's motion from frame to reference view: auto (a similarity, "
                                       "going up to an affine or a homography only when that clearly fits better) "
                                       "or that model", choices=("auto", "similarity", "affine", "homography"))
    fill: str = option("shiftmap", "how the pixels the person always covers are filled: shiftmap (patches of the "
                                   "plate copied in, sharp), fsr_fast (the surrounding structure continued, blurred) "
                                   "or telea (the border smeared inwards)", choices=("telea", "fsr_fast", "shiftmap"))


@dataclass(frozen=True)
class PersonWindowOptions(Options):
    """``edn render`` (config ``person_window``): the window that follows the person (:mod:`edn.labels.person_window`)."""

    height_factor: float = option(1.25, "window height as a multiple of the target's standing height (nose "
                                        "to ankles)", above=0, maximum=10)
    aspect: float = option(0.625, "window width as a fraction of its height", above=0, maximum=10)


@dataclass(frozen=True)
class ExemplarOptions(Options):
    """``edn pose-warp`` (config ``exemplars``): the target's own frames warped to a requested pose (:mod:`edn.exemplars`)."""

    switch_margin: float = option(0.2, "an exemplar is kept until another training frame's pose distance (eq. 6) "
                                       "is below 1 - this times its own (0: the nearest frame every frame)",
                                  minimum=0, below=1)
    feather_px: float = option(4.0, "width in pixels of each part's soft edge and of a limb's fade into the part "
                                    "it hangs from", minimum=0)
    limb_radius: float = option(0.17, "half-width of a limb's region as a fraction of the torso's length (neck to "
                                      "mid-hip); the segmentation mask trims it", above=0)
    head_from: str = option("body", "the head moves by a similarity of the nose, eyes and ears, a disc around them "
                                    "(body), or of the face's points, their hull reaching up for the hair (face)",
                            choices=("body", "face"))
    hands_and_feet: bool = option(True, "each hand and foot moved by its own points where both poses have them "
                                        "(else the lower arm or leg carries it)")
    selection: str = option("head", "one exemplar for the whole person, chosen by eq. 6 (body); the head's own, "
                                    "nearest by eq. 6 over the nose, eyes, ears and neck with the frame's position "
                                    "removed, and the whole-body one for the rest (head); or one for each part group "
                                    "(torso, head, each arm, each leg) by its own joints (parts)",
                            choices=("body", "head", "parts"))
    repaint_props: bool = option(True, "paint what the target holds or plays with (a ball on a thigh) out of the "
                                       "legs of a requested pose's exemplar: pixels far from a leg's usual colour take "
                                       "the leg's colour around them (edn.exemplars.props; the training pairs keep "
                                       "the frames as filmed)")
    clear_head: bool = option(True, "with selection head or parts, a requested pose with no arm over its head "
                                    "never takes its head from a training frame whose own lower arm or hand lies "
                                    "over its head (edn.exemplars.select.covered_heads; false: from any training "
                                    "frame, as the training pairs)")


#: ExemplarOptions for the exemplars of requested poses (``edn pose-warp``: the pose_warp method, held-out
#: and transfer frames), not for the training pairs (``edn training-exemplars``), which keep the frames as filmed.
REQUESTED_POSES_ONLY = ("repaint_props", "clear_head")


@dataclass(frozen=True)
class SubjectStatsOptions(Options):
    """``edn stats`` (config ``normalization.alpha``)."""

    alpha: float = option(0.7, "far-position band as a fraction of close - median (paper 0.7, authors' code 0.5)",
                          above=0, maximum=1)


@dataclass(frozen=True)
class NormalizationOptions(Options):
    """``edn normalize`` (config ``normalization``, but for alpha)."""

    recenter_x: bool = option(False, "also move the source's median ankle x onto the target's (off in the paper)")


PRESET_NAMES = ("paper", "small", "tiny")
#: composite: the person drawn in a window over the background plate; paper: the whole frame (Chan et al.).
TRAINING_METHODS = ("composite", "paper")
#: How the generators double their resolution (edn.models.generator): auto is resolved per method.
UPSAMPLINGS = ("auto", "transposed", "resize")
PERCEPTUAL_NETWORKS = ("vgg16_hed", "vgg19_imagenet")
TRAINING_STAGES = ("global", "local", "face")
#: training.exemplar: none, the generator draws the person from the stick figure; input, it is also fed
#: the warped exemplar and its validity; residual, fed the same, it draws a correction added to the
#: exemplar's pixels and starts as the exemplar itself (edn.models.compositing).
EXEMPLAR_MODES = ("none", "input", "residual")
#: The option's values when it was a switch (older configs and checkpoints' saved options).
EXEMPLAR_SWITCHES = {"false": "none", "true": "input"}


def exemplar_mode(value: Any) -> Any:
    """training.exemplar as one of :data:`EXEMPLAR_MODES`: the switch it used to be (false or true,
    YAML booleans or their text) mapped to none or input, None (a checkpoint from before the option)
    to none; any other value is returned as it is, for the option's check to refuse."""
    if value is None or isinstance(value, bool):
        return "input" if value else "none"
    return EXEMPLAR_SWITCHES.get(value, value)


@dataclass(frozen=True)
class RuntimeOptions(Options):
    """Where and how tensors are computed (config ``training``, ``synthesis``, ``detector``)."""

    device: str = option("auto", "auto (CUDA when present, else the CPU), cpu, cuda or cuda:N",
                         pattern=r"auto|cpu|cuda(:(0|[1-9][0-9]?))?")
    precision: str = option("auto", "bf16 autocast where the device runs it natively (auto), always (bf16), "
                                    "or never (fp32)", choices=("auto", "bf16", "fp32"))
    channels_last: str = option("auto", "NHWC memory layout; auto: on CUDA only (on CPUs the contiguous layout "
                                        "measured faster)", choices=("auto", "true", "false"))


@dataclass(frozen=True)
class ThreadOptions(Options):
    """``--threads`` of every command that runs torch (train, synthesize, evaluate and the detector's).

    A command-line option only: each rule passes its job's Snakemake threads, whose
    defaults are the workflow's own keys ``training.threads``, ``synthesis.threads``
    and ``detector.threads`` (config/config.schema.yaml).
    """

    threads: int | None = option(None, "CPU threads for torch; none: torch's own choice (by default one per "
                                       "physical core)", minimum=1, maximum=1024, in_config=False)


@dataclass(frozen=True)
class TrainingOptions(Options):
    """``edn train`` (config ``training``): what one stage trains and how.

    Every field but the bookkeeping and scale ones (:attr:`BOOKKEEPING`,
    :attr:`SCALE`) decides the result, so a killed run resumes only when they
    match (:meth:`identity`). ``iterations``: training steps, ``batch_size``
    pairs per process each; the learning rate constant for the first
    ``1 - decay_fraction`` of them, then linearly decayed to 0 (Adam, betas
    0.5/0.999, as the paper).
    """

    stage: str = option(MISSING, "the stage to train", choices=TRAINING_STAGES, in_config=False)
    iterations: int = option(MISSING, "training steps (batch_size frame pairs per process each)", minimum=1,
                             maximum=MAX_STEPS, in_config=False)
    preset: str = option("small", "network sizes: paper (GPU), small (2-core CPU demo), tiny (tests)",
                         choices=PRESET_NAMES)
    method: str = option("composite", "composite: the person drawn in a window that follows them, over the "
                                      "target's background plate, temporal smoothing trained on unrolled "
                                      "sequences; paper: the whole frame, as Chan et al. (a target whose camera "
                                      "moves is trained so too)", choices=TRAINING_METHODS)
    upsampling: str = option("auto", "how the generators double their resolution: resize (nearest-neighbour "
                                     "upsampling by 2, then a 3x3 convolution: no checkerboard), transposed (3x3 "
                                     "stride-2 transposed convolutions, pix2pixHD's; the paper's method refuses "
                                     "resize); auto: resize for the global stage of the composite method "
                                     "correcting warped exemplars as a residual, transposed for any other "
                                     "global stage, and the local and face stages follow the stage they start from",
                             choices=UPSAMPLINGS)
    exemplar: str = option("none", "composite method: input, the generator is also fed the target's own training "
                                   "frame warped to the pose (edn.exemplars) and its validity mask, in the person's "
                                   "window, and corrects it instead of drawing the person from the stick figure "
                                   "alone; residual, fed the same, it draws a correction added to the exemplar's "
                                   "pixels and starts as the exemplar itself; none: neither (false and true: the "
                                   "older names of none and input); the local and face stages follow the stage "
                                   "they start from", choices=EXEMPLAR_MODES + tuple(EXEMPLAR_SWITCHES))
    exemplar_gap: int = option(5, "exemplar: a training frame's exemplar is never itself nor one of this many "
                                  "frames on either side of it (so that the generator cannot copy its answer)",
                               minimum=0, maximum=10_000)
    exemplar_choices: int = option(4, "exemplar: each training frame gets this many exemplars, its nearest "
                                      "admissible training frames by eq. 6, each more than exemplar_gap frames "
                                      "from the ones before it, and every training sample draws one of them (so "
                                      "that the generator learns to correct exemplars as far from the pose as at "
                                      "synthesis, not one fixed near one); 1: always the nearest",
                                   minimum=1, maximum=64)
    temporal_unroll_frames: int = option(2, "composite method: before each training pair the generator draws up "
                                            "to this many preceding frames (a number drawn per step, 0 included) "
                                            "from the zero image, without gradients, so that it learns from its "
                                            "own previous frames as at synthesis time; the paper: 0", minimum=0,
                                         maximum=64)
    mask_weight: float = option(10.0, "composite method: weight of the L1 loss between the drawn mask and the "
                                      "person's segmentation mask", minimum=0, maximum=1e6)
    colour_weight: float = option(20.0, "composite method: weight of the L1 loss between the drawn and the real "
                                        "window's colours, each averaged over blocks of 8x8 pixels (0: none; the "
                                        "paper has no such term)", minimum=0, maximum=1e6)
    temporal_change_weight: float = option(20.0, "composite method with temporal smoothing: weight of the L1 loss "
                                                 "between the generated and the real change from the first frame "
                                                 "of a pair to the second", minimum=0, maximum=1e6)
    holdout_fraction: float = option(0.1, "last fraction of the target's video held out, never trained on",
                                     minimum=0, below=1)
    learning_rate: float = option(0.0002, "Adam's learning rate (betas 0.5, 0.999)", above=0, maximum=1)
    decay_fraction: float = option(0.5, "last fraction of the iterations over which the learning rate decays "
                                         "linearly to 0", minimum=0, maximum=1)
    perceptual_network: str = option("vgg16_hed", "VGG of the perceptual loss: vgg16_hed (offline) or "
                                                  "vgg19_imagenet (torchvision's)", choices=PERCEPTUAL_NETWORKS)
    seed: int = option(0, "seed of network initialisation and pair order", minimum=0, maximum=MAX_SEED)
    batch_size: int = option(1, "frame pairs each process trains on at every step (the paper: 1); P processes "
                                "at batch B train as one at batch P x B", minimum=1, maximum=4096)
    processes: int = option(0, "data-parallel processes this job starts on its machine (torch.distributed): "
                               "0 = one per visible GPU on CUDA, else 1; on the CPU, gloo processes", minimum=0,
                            maximum=1024)
    downsample: int = option(1, "train at the working size divided by this (2: the global stage before a "
                                "local stage, or the paper's whole frame at half size)", choices=(1, 2),
                             in_config=False)
    temporal: bool = option(True, "global and local stages: temporal smoothing, the generator fed its previous "
                                  "frame and the discriminator judging frame pairs (the paper); "
                                  "--no-temporal trains frame by frame (the FBF ablation)", in_config=False)
    checkpoint_every: int = option(100, "iterations between rolling checkpoints", minimum=1, maximum=MAX_STEPS)
    sample_every: int = option(100, "iterations between sample grids", minimum=1, maximum=MAX_STEPS)
    keep_checkpoints: int = option(2, "rolling checkpoints kept per stage", minimum=1, maximum=10_000)

    #: Fields that only say how often to save: changing them does not change the result.
    BOOKKEEPING = ("checkpoint_every", "sample_every", "keep_checkpoints")
    #: How each step's work is shared out: a run resumes with any number of processes and
    #: any batch size (the steps after it train on the new total batch).
    SCALE = ("batch_size", "processes")

    def __post_init__(self) -> None:
        object.__setattr__(self, "exemplar", exemplar_mode(self.exemplar))  # false/true: none/input
        super().__post_init__()
        if self.stage == "face" and not self.temporal:
            raise EdnError("face stage: frame by frame applies to the global and local stages "
                           "(the face stage follows the generator it starts from)")
        if self.method == "paper" and self.upsampling == "resize":
            raise EdnError("option upsampling resize: the paper's method keeps pix2pixHD's transposed "
                           "convolutions (use auto or transposed)")

    def generator_upsampling(self, started_from: str | None = None) -> str:
        """The upsampling the stage's generators use, ``upsampling`` with auto resolved: that of
        the checkpoint the stage starts from (``started_from``, the local and face stages), else
        resize for the composite method correcting warped exemplars as a residual and transposed
        otherwise. The residual's transposed convolutions lay their checkerboard over the target's
        own pixels: a magenta and green grid on a white shirt (docs/evaluation.md, "How the
        correction upsamples"); resize-convolution cost 9% of the training speed in a benchmark on
        the demo's 2-core CPU, under 1% in make demo's global stage. An explicit value that
        differs from the started-from checkpoint's is an EdnError."""
        if started_from is not None:
            if self.upsampling not in ("auto", started_from):
                raise EdnError(f"option upsampling {self.upsampling}: the previous stage's generator upsamples "
                               f"by {started_from} convolutions, and the {self.stage} stage follows it "
                               "(use auto)")
            return started_from
        if self.upsampling == "auto":
            return "resize" if self.method == "composite" and self.exemplar == "residual" else "transposed"
        return self.upsampling

    @property
    def conditioned(self) -> bool:
        """Whether the generator is fed the warped exemplar (exemplar input or residual)."""
        return self.exemplar != "none"

    def identity(self) -> dict:
        """The options that decide the result (a run resumes only if they are unchanged)."""
        return {key: value for key, value in self.to_dict().items()
                if key not in self.BOOKKEEPING and key not in self.SCALE}


def first_heldout_frame(frame_count: int, holdout_fraction: float) -> int:
    """The held-out boundary of ``holdout_fraction``: frames from this index on are held out.

    The one split of a target's video that GAN training (:mod:`edn.training.data`),
    evaluation and the fake detector all use: the last ``ceil(frame_count *
    holdout_fraction)`` frames.
    """
    if not 0.0 <= holdout_fraction < 1.0:
        raise EdnError(f"holdout fraction {holdout_fraction}: must be in [0, 1)")
    return frame_count - math.ceil(frame_count * holdout_fraction)


@dataclass(frozen=True)
class EncodeOptions(Options):
    """``edn encode`` (config ``synthesis.output_framing``)."""

    output_framing: str = option("working", "encode the whole working frame (working) or only the part showing "
                                            "the source video (source)", choices=("working", "source"))


@dataclass(frozen=True)
class ExemplarFaceOptions(Options):
    """``edn synthesize`` and ``edn evaluate`` (config ``synthesis.exemplar_face``): the face of a generator that
    corrects warped exemplars."""

    exemplar_face: bool = option(True, "a generator correcting warped exemplars (training.exemplar: residual) leaves "
                                       "the exemplar's own face as the warp drew it, in a disc over the requested "
                                       "face (edn.exemplars.own_face); false: the correction redraws it too")


#: The view a transfer is drawn in (``synthesis.camera``): the target's reference view, or its camera path replayed.
CAMERA_VIEWS = ("reference", "replay")


@dataclass(frozen=True)
class CameraOptions(Options):
    """``edn normalize`` and ``edn synthesize`` (config ``synthesis.camera``): the camera a transfer is seen by."""

    camera: str = option("reference", "reference: the output is drawn in the target's reference view, a still "
                                      "camera; replay: the target's own camera path replayed, output frame i "
                                      "seen by target frame (i mod T)'s camera (its plate and the normalised pose "
                                      "moved by that frame's transform)", choices=CAMERA_VIEWS)


DETECTOR_BACKBONES = ("small_cnn", "resnet18")


@dataclass(frozen=True)
class DetectorOptions(Options):
    """``edn train-detector`` (config ``detector``): the fake detector of paper section 5."""

    iterations: int = option(400, "training steps of the classifier", minimum=1, maximum=MAX_STEPS)
    batch_size: int = option(16, "samples per step, half real and half generated (the same pairs both ways)",
                             minimum=2, maximum=4096, multiple_of=2)
    learning_rate: float = option(0.0005, "Adam's learning rate", above=0, maximum=1)
    seed: int = option(0, "seed of initialisation, pair order, crops and flips", minimum=0, maximum=MAX_SEED)
    crop_size: int = option(96, "side of the square random crops trained on, in pixels", minimum=16, maximum=8192)
    flip: bool = option(True, "random horizontal flips of both frames of a pair together")
    backbone: str = option("small_cnn", "small_cnn (trained from scratch) or resnet18 (ImageNet weights from a "
                                        "local file)", choices=DETECTOR_BACKBONES)
    width: int = option(16, "filters of the small CNN's first layer", minimum=1, maximum=1024)
    backbone_weights: str | None = option(None, "resnet18 only: torchvision's ImageNet weights file; none looks "
                                                "in the torch hub cache (never downloaded)")
    cut_threshold: float = option(30.0, "a scene cut lies between two frames whose 8x8-block grey images "
                                        "differ by more than this on average (0-255)", above=0, maximum=255)
    compression_crf: int | None = option(18, "half of each batch is H.264-compressed at this CRF (both classes "
                                             "alike; transfers are encoded at 18); none: raw frames only",
                                         minimum=0, maximum=51)

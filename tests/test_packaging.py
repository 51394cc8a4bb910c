"""Installation metadata: one set of pins for pip and conda, a CLI that answers --help."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

from edn.cli import build_parser
from helpers import ROOT

PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def _pins(requirements: list[str]) -> dict[str, str]:
    pins = {}
    for requirement in requirements:
        match = re.fullmatch(r"([A-Za-z0-9_.-]+)==([^;\s]+)", requirement.strip())
        assert match, f"not an exact pin: {requirement!r}"
        pins[match[1].lower().replace("_", "-")] = match[2]
    return pins


PINS = _pins(PYPROJECT["project"]["dependencies"] + PYPROJECT["project"]["optional-dependencies"]["test"])
ENV_FILES = sorted((ROOT / "envs").glob("*.yaml"))


def test_every_dependency_is_pinned_exactly() -> None:
    assert {"torch", "torchvision", "mediapipe", "numpy", "snakemake", "lpips"} <= set(PINS)
    assert PINS["torch"] == "2.14.1" and PINS["torchvision"] == "0.29.1" and PINS["mediapipe"] == "0.10.21"
    assert PINS["numpy"].startswith("1.")  # mediapipe 0.10.21 needs numpy < 2


@pytest.mark.parametrize("env_file", ENV_FILES, ids=lambda p: p.name)
def test_conda_env_pins_match_pyproject(env_file: Path) -> None:
    env = yaml.safe_load(env_file.read_text())
    pip_sections = [d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d]
    assert pip_sections, f"{env_file.name}: no pip section"
    for name, version in _pins(pip_sections[0]).items():
        assert PINS.get(name) == version, f"{env_file.name}: {name}=={version}, pyproject pins {PINS.get(name)}"


def test_every_rule_that_runs_a_command_names_an_existing_conda_env() -> None:
    for rule_file in (ROOT / "workflow" / "rules").glob("*.smk"):
        text = rule_file.read_text()
        for block in re.split(r"^(?=rule \w+:)", text, flags=re.M)[1:]:
            name = block.split(":", 1)[0].removeprefix("rule ")
            if "shell:" not in block:
                continue  # target rules only name files
            env = re.search(r'conda:\s*\n\s*"([^"]+)"', block)
            assert env, f"{rule_file.name}: rule {name} has no conda environment"
            assert (rule_file.parent / env[1]).resolve().is_file(), f"{rule_file.name}: {env[1]} missing"


def test_every_subcommand_answers_help() -> None:
    parser = build_parser()
    commands = parser._subparsers._group_actions[0].choices
    assert {"fetch", "decode"} <= set(commands)
    for name in commands:
        result = subprocess.run([sys.executable, "-m", "edn", name, "--help"], capture_output=True, text=True)
        assert result.returncode == 0 and f"usage: edn {name}" in result.stdout, name

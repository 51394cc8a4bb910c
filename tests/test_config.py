"""The config schema: defaults filled in, typos and unsafe names rejected by name."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml
from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

from helpers import ROOT, run_snakemake

SCHEMA = str(ROOT / "config" / "config.schema.yaml")
DEMO_CONFIG = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())


def validated(config: dict) -> dict:
    config = copy.deepcopy(config)
    validate(config, schema=SCHEMA, set_default=True)
    return config


def test_demo_config_is_valid() -> None:
    config = validated(DEMO_CONFIG)
    assert set(config["subjects"]) == {"dancer", "juggler"}
    assert config["pairs"] == [{"source": "dancer", "target": "juggler"}]


def test_defaults_are_filled_in() -> None:
    config = validated({"subjects": {"a": {"video": "a.mp4"}}})
    assert config["frames"] == {"width": 256, "height": 128, "fps": None, "fit": "pad", "orientation": "auto"}
    assert config["subjects"]["a"] == {"video": "a.mp4", "start": None, "end": None}
    assert config["pairs"] == []


def _rejection(config: dict) -> str:
    with pytest.raises(WorkflowError) as error:
        validated(config)
    return str(error.value)


def test_misspelt_key_is_rejected_by_name() -> None:
    config = copy.deepcopy(DEMO_CONFIG)
    config["frames"]["widht"] = config["frames"].pop("width")
    assert "'widht' was unexpected" in _rejection(config)
    top = copy.deepcopy(DEMO_CONFIG)
    top["pair"] = top.pop("pairs")
    assert "'pair' was unexpected" in _rejection(top)


@pytest.mark.parametrize("name", ["my dancer", "a/b", "../up", "-dash", "", "x" * 65])
def test_unsafe_subject_name_is_rejected(name: str) -> None:
    assert "does not match" in _rejection({"subjects": {name: {"video": "a.mp4"}}})


def test_wrong_types_and_ranges_are_rejected() -> None:
    assert "is not of type" in _rejection({"subjects": {"a": {"video": 3}}})
    assert "multiple of 32" in _rejection({"subjects": {"a": {"video": "a.mp4"}}, "frames": {"width": 250}})
    assert "is not one of" in _rejection({"subjects": {"a": {"video": "a.mp4"}}, "frames": {"fit": "stretch"}})


def test_snakemake_reports_the_bad_key(tmp_path: Path) -> None:
    config = copy.deepcopy(DEMO_CONFIG)
    config["frames"]["fsp"] = 10
    result = run_snakemake(tmp_path, config, "--dry-run")
    assert result.returncode != 0
    assert "'fsp' was unexpected" in result.output


def test_pair_naming_an_unknown_subject_is_rejected(tmp_path: Path) -> None:
    config = copy.deepcopy(DEMO_CONFIG)
    config["pairs"] = [{"source": "dancer", "target": "jugler"}]
    result = run_snakemake(tmp_path, config, "--dry-run")
    assert result.returncode != 0
    assert "target 'jugler' is not a subject" in result.output


def _schema_keys(schema: dict, prefix: str = "") -> set[str]:
    keys = set()
    for name, spec in schema.get("properties", {}).items():
        keys.add(name)
        keys |= _schema_keys(spec)
        if isinstance(spec.get("additionalProperties"), dict):
            keys |= _schema_keys(spec["additionalProperties"])
        if isinstance(spec.get("items"), dict):
            keys |= _schema_keys(spec["items"])
    return keys


def test_every_schema_key_is_documented() -> None:
    schema = yaml.safe_load(Path(SCHEMA).read_text())
    reference = (ROOT / "config" / "README.md").read_text()
    undocumented = sorted(key for key in _schema_keys(schema) if f"`{key}`" not in reference)
    assert not undocumented, f"config/README.md does not mention {undocumented}"

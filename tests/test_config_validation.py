"""Config problems that Snakemake used to accept, each refused when the workflow loads its
config (a dry run), with one line naming the key: subject names that give two pairs one
output name, a name ending in a newline, braces or a leading dash in a path, a key given
twice, values no library takes, and a CUDA device the machine does not have. And two
things that must keep working: an upper-case URL scheme, and a CUDA device asked of a
cluster from a submit host without one.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from helpers import DEMO, ROOT, SNAKEMAKE, Completed, run_snakemake

DANCER = str(DEMO / "source_dancer.mp4")
JUGGLER = str(DEMO / "target_juggler.mp4")


def _snakemake(workdir: Path, config_text: str, *args: str) -> Completed:
    """The workflow in ``workdir`` with a config file of exactly ``config_text`` (a dry run unless asked)."""
    path = workdir / "config.yaml"
    path.write_text(config_text)
    env = dict(os.environ, PATH=f"{SNAKEMAKE.parent}{os.pathsep}{os.environ['PATH']}")
    result = subprocess.run([str(SNAKEMAKE), "--snakefile", str(ROOT / "Snakefile"), "--directory", str(workdir),
                             "--configfile", str(path), *args], capture_output=True, text=True, timeout=600,
                            env=env, cwd=workdir)
    return Completed(result.returncode, result.stdout, result.stderr)


def _subjects(*names: str, **more) -> dict:
    return {name: {"video": DANCER, **more} for name in names}


def _cuda_device_not_here() -> str:
    """``cuda`` on a machine without CUDA, else the first device number past its last GPU."""
    import torch

    return f"cuda:{torch.cuda.device_count()}" if torch.cuda.is_available() else "cuda"


#: name -> (config as a dict or the config file's text, what Snakemake's error says)
CASES: dict[str, Callable[[Path], tuple[dict | str, tuple[str, ...]]]] = {
    # x_to_y -> z and x -> y_to_z are both results/transfer/x_to_y_to_z.mp4: one of them vanished.
    "two pairs with one output name": lambda w: (
        {"subjects": _subjects("x_to_y", "z", "x", "y_to_z"),
         "pairs": [{"source": "x_to_y", "target": "z"}, {"source": "x", "target": "y_to_z"}]},
        ("config subjects.x_to_y: a subject name must not contain '_to_'",)),
    # a_to -> b and a -> to_b are both a_to_to_b, with no "_to_" inside either name.
    "names that meet at _to_": lambda w: (
        {"subjects": _subjects("a_to", "b", "a", "to_b"),
         "pairs": [{"source": "a_to", "target": "b"}, {"source": "a", "target": "to_b"}]},
        ("config subjects.a_to:", "start with 'to_' or end with '_to'")),
    "names differing only in case": lambda w: (
        {"subjects": _subjects("Dancer", "dancer")},
        ("config subjects: 'Dancer' and 'dancer' differ only in case",)),
    "subject name ending in a newline": lambda w: (
        {"subjects": _subjects("dancer\n")}, ("'dancer\\n' does not match",)),
    "braces in a video path": lambda w: (
        {"subjects": {"a": {"video": str(w / "clip{1}.mp4")}}},
        ("config subjects.a.video", "clip{1}.mp4", "braces cannot be in a path")),
    "video path starting with a dash": lambda w: (
        {"subjects": {"a": {"video": "-clip.mp4"}}},
        ("config subjects.a.video '-clip.mp4'", "would be read as an option", "'./-clip.mp4'")),
    "key given twice": lambda w: (
        f"subjects:\n  a:\n    video: {DANCER}\nframes:\n  width: 512\n  height: 256\n  width: 256\n",
        (f"config file {str(w / 'config.yaml')!r}: key 'width' is given twice", "(lines 5 and 7)")),
    "key given twice at the top": lambda w: (
        f"subjects:\n  a:\n    video: {DANCER}\nsubjects:\n  b:\n    video: {DANCER}\n",
        ("key 'subjects' is given twice", "(lines 1 and 4)")),
    "enormous width": lambda w: (
        {"subjects": _subjects("a"), "frames": {"width": 10**22}},
        ("10000000000000000000000 is greater than the maximum of 8192",)),
    "enormous download timeout": lambda w: (
        {"subjects": _subjects("a"), "download": {"timeout_s": 1e300}},
        ("1e+300 is greater than the maximum of 3600",)),
    "enormous seed": lambda w: (
        {"subjects": _subjects("a"), "training": {"seed": 2**70}},
        ("1180591620717411303424 is greater than the maximum of 4294967295",)),
    "span starting at nan": lambda w: (
        {"subjects": _subjects("a", start=float("nan"))}, ("config subjects.a.start: must be a finite number",)),
    "CUDA device that is not on this machine": lambda w: (
        {"subjects": _subjects("a"), "training": {"device": _cuda_device_not_here()}},
        (f"config training.device: device '{_cuda_device_not_here()}'", "the jobs run on this machine")),
}


@pytest.mark.parametrize("name", list(CASES))
def test_a_bad_config_is_refused_when_it_is_loaded(name: str, tmp_path: Path) -> None:
    config, says = CASES[name](tmp_path)
    text = config if isinstance(config, str) else yaml.safe_dump(config, sort_keys=False)
    result = _snakemake(tmp_path, text, "--dry-run", "--cores", "1", "results/videos/a.mp4")
    assert result.returncode != 0, result.output[-3000:]
    assert "Building DAG of jobs" not in result.output, "the jobs were planned"
    for fragment in says:
        assert fragment in result.output, result.output[-3000:]
    assert not (tmp_path / "results").exists()


def test_the_project_configs_pass(tmp_path: Path) -> None:
    """The demo config, and every subject name the docs and tests use, still load."""
    config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    config["subjects"] = {name: {"video": DANCER} for name in ("dancer", "juggler", "aerobics", "to", "tomato_2",
                                                                "a-b", "x_toy")}
    config["pairs"] = [{"source": "to", "target": "tomato_2"}, {"source": "x_toy", "target": "a-b"}]
    result = run_snakemake(tmp_path, config, "--dry-run", "results/transfer/to_to_tomato_2.mp4")
    assert result.returncode == 0, result.output[-3000:]
    assert "rule fetch_video" in result.output


def test_an_upper_case_url_scheme_is_a_download(tmp_path: Path) -> None:
    """edn fetch reads HTTP:// as http://; the workflow must too, not look for a local file."""
    url = "HTTP://127.0.0.1:9/dancer.mp4"
    result = run_snakemake(tmp_path, {"subjects": {"a": {"video": url}}}, "--dry-run", "results/videos/a.mp4")
    assert result.returncode == 0, result.output[-3000:]
    assert "Missing input files" not in result.output
    assert "rule fetch_video" in result.output and url in result.output


@pytest.mark.slow
def test_an_upper_case_url_scheme_is_downloaded(http_server, tmp_path: Path) -> None:
    (http_server.directory / "dancer.mp4").write_bytes((DEMO / "source_dancer.mp4").read_bytes())
    url = http_server.url.replace("http://", "HTTP://") + "/dancer.mp4"
    workdir = tmp_path / "run"
    workdir.mkdir()
    result = run_snakemake(workdir, {"subjects": {"a": {"video": url}}}, "results/videos/a.mp4")
    assert result.returncode == 0, result.output[-3000:]
    assert (workdir / "results" / "videos" / "a.mp4").stat().st_size > 0
    assert "/dancer.mp4" in http_server.requests


def test_a_cuda_device_asked_of_a_cluster_is_left_to_the_cluster(tmp_path: Path) -> None:
    """A SLURM login node often has no GPU: submitting jobs from it (--executor with --jobs) is not refused."""
    config = {"subjects": _subjects("a"), "training": {"device": _cuda_device_not_here(), "gpus": 1}}
    result = run_snakemake(tmp_path, config, "--dry-run", "--executor", "slurm", "--jobs", "1",
                           "results/videos/a.mp4")
    assert result.returncode == 0, result.output[-3000:]
    assert "rule fetch_video" in result.output

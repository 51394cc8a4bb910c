"""A killed Snakemake leaves no edn process running, and two copies of one stage never write
the same output at once: through the real CLI, the real Snakemake and a loopback server whose
``/stall.mp4`` sends 4 KiB and then nothing (tests/conftest.py's misbehaving_server), so that
an ``edn fetch`` is busy for as long as a test needs."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from edn.ingest.fetch import cache_folder
from edn.ingest.media import count_frames
from helpers import DEMO, ROOT, SNAKEMAKE, live_processes, run_edn, write_config


def _edn_processes(marker: str) -> list[int]:
    """Pids of running ``python -m edn`` processes whose command line holds ``marker``."""
    found = []
    for pid, _ in live_processes():
        try:
            words = [os.fsdecode(word) for word in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")]
        except OSError:
            continue
        if "edn" in words and "-m" in words and any(marker in word for word in words):
            found.append(pid)
    return found


def _wait_for(condition, timeout: float, step: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(step)
    return condition()


def _edn_processes_in(directory: Path) -> list[int]:
    """Pids of running ``python -m edn`` processes working in ``directory``."""
    found = []
    for pid in _edn_processes(""):
        try:
            if Path(os.readlink(f"/proc/{pid}/cwd")) == directory:
                found.append(pid)
        except OSError:
            pass
    return found


def _snakemake(workdir: Path, snakefile: Path, config: dict, *targets: str, cores: int = 1) -> subprocess.Popen:
    config_path = write_config(workdir, config)
    env = dict(os.environ, PATH=f"{SNAKEMAKE.parent}{os.pathsep}{os.environ['PATH']}")
    return subprocess.Popen(
        [str(SNAKEMAKE), "--snakefile", str(snakefile), "--directory", str(workdir), "--configfile", str(config_path),
         "--cores", str(cores), "--keep-going", *targets],
        cwd=workdir, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _stop(snakemake: subprocess.Popen, workdir: Path) -> None:
    """Stop, by pid, what a failing test left running (a fetch would wait minutes)."""
    if snakemake.poll() is None:
        snakemake.kill()
        snakemake.wait()
    for pid in _edn_processes_in(workdir):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


@pytest.mark.slow
def test_a_killed_snakemake_leaves_no_edn_process_running(misbehaving_server: str, tmp_path: Path) -> None:
    """The workflow's fetch waits on a silent server; SIGKILL Snakemake and the fetch stops too.
    Before, it ran on as an orphan until the network timeout, and beside a second Snakemake's
    copy of the same job after --unlock. (Bash runs a rule's single command in its own process,
    so the stage's parent is Snakemake: the kernel's parent-death signal stops it.)"""
    workdir = tmp_path / "work"
    workdir.mkdir()
    url = f"{misbehaving_server}/stall.mp4?workflow"
    snakemake = _snakemake(workdir, ROOT / "Snakefile", {"subjects": {"stalled": {"video": url}},
                                                          "download": {"timeout_s": 300}}, "results/videos/stalled.mp4")
    try:
        assert _wait_for(lambda: cache_folder(url, workdir / "results" / "cache" / "downloads").exists(),
                         timeout=180), "the download never started"
        (fetch,) = _edn_processes_in(workdir)
        assert _parent(fetch) == snakemake.pid
        snakemake.send_signal(signal.SIGKILL)
        snakemake.wait(timeout=30)
        assert _wait_for(lambda: not _edn_processes_in(workdir), timeout=20), \
            f"edn fetch (pid {fetch}) still runs after Snakemake was killed"
        assert not (workdir / "results" / "videos" / "stalled.mp4").exists()
    finally:
        _stop(snakemake, workdir)


#: Rules whose shell command is not a single command, so that bash stays between Snakemake
#: and edn (as with a shell prefix or suffix, or a rule written so).
COMPOUND_SHELLS = """
rule fetch:
    output: "videos/{name}.mp4"
    params: url=lambda wildcards: config["urls"][wildcards.name]
    shell: "{python} -m edn --log logs/{wildcards.name}.log fetch --source '{params.url}' --output {output}"
           " --cache-dir cache --timeout-s 300 2> logs/{wildcards.name}.err"
"""


@pytest.mark.slow
def test_a_killed_job_shell_or_snakemake_above_a_shell_leaves_no_edn_process_running(
        misbehaving_server: str, tmp_path: Path) -> None:
    """With a shell between Snakemake and edn: SIGKILL the first job's shell (its edn gets the
    parent-death signal) while Snakemake goes on with the second job, then SIGKILL Snakemake
    (the second edn sees its grandparent go and stops)."""
    workdir = tmp_path / "work"
    (workdir / "logs").mkdir(parents=True)
    snakefile = tmp_path / "Snakefile"
    snakefile.write_text(COMPOUND_SHELLS.replace("{python}", sys.executable))
    urls = {name: f"{misbehaving_server}/stall.mp4?{name}" for name in ("first", "second")}
    snakemake = _snakemake(workdir, snakefile, {"urls": urls}, "videos/first.mp4", "videos/second.mp4", cores=2)
    try:
        assert _wait_for(lambda: all(cache_folder(url, workdir / "cache").exists() for url in urls.values()),
                         timeout=180), "the downloads never started"
        fetches = {name: [pid for pid in _edn_processes_in(workdir) if f"videos/{name}.mp4" in _cmdline(pid)]
                   for name in urls}
        (first,), (second,) = fetches["first"], fetches["second"]
        shell = _parent(first)
        assert Path(_cmdline(shell).split()[0]).name == "bash" and _parent(shell) == snakemake.pid

        os.kill(shell, signal.SIGKILL)
        assert _wait_for(lambda: first not in _edn_processes_in(workdir), timeout=20), \
            "the first fetch outlived its job's shell"
        assert snakemake.poll() is None and second in _edn_processes_in(workdir)  # Snakemake goes on

        snakemake.send_signal(signal.SIGKILL)
        snakemake.wait(timeout=30)
        assert _wait_for(lambda: not _edn_processes_in(workdir), timeout=20), \
            "the second fetch still runs after Snakemake was killed"
        assert f"Snakemake (pid {snakemake.pid}) is gone: stopping" in (workdir / "logs" / "second.log").read_text()
        assert not any((workdir / "videos").glob("*.mp4"))
    finally:
        _stop(snakemake, workdir)


def _cmdline(pid: int) -> str:
    try:
        return " ".join(os.fsdecode(w) for w in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0") if w)
    except OSError:
        return ""


def _parent(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def test_a_second_copy_of_a_stage_is_refused_while_the_first_writes(misbehaving_server: str, http_server,
                                                                    tmp_path: Path) -> None:
    """Two copies of one stage with the same output (a second Snakemake after --unlock beside an
    orphan, two hand runs): the second stops at once with one line naming the output and the
    process writing it. Once the first is gone, even killed with SIGKILL, a run goes through."""
    output, cache = tmp_path / "videos" / "dance.mp4", tmp_path / "cache"
    stalled = f"{misbehaving_server}/stall.mp4"
    first = subprocess.Popen([sys.executable, "-m", "edn", "fetch", "--source", stalled, "--output", str(output),
                              "--cache-dir", str(cache), "--timeout-s", "300"], cwd=ROOT,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert _wait_for(lambda: cache_folder(stalled, cache).exists(), timeout=60), "the download never started"
        second = run_edn("fetch", "--source", stalled, "--output", output, "--cache-dir", cache, "--timeout-s", "300",
                         timeout=60)
        assert second.returncode == 1, second.stderr
        assert "Traceback" not in second.stderr
        assert len(second.error_lines) == 1, second.stderr
        line = second.error_lines[0]
        assert f"output '{output}'" in line and f"pid {first.pid}" in line, line
        assert first.poll() is None  # the first copy goes on

        first.send_signal(signal.SIGKILL)
        first.wait(timeout=30)
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    shutil.copy(DEMO / "source_dancer.mp4", http_server.directory / "dancer.mp4")
    third = run_edn("fetch", "--source", f"{http_server.url}/dancer.mp4", "--output", output, "--cache-dir", cache)
    assert third.returncode == 0, third.stderr
    assert count_frames(output) == 102
    assert sorted(p.name for p in output.parent.iterdir()) == ["dance.mp4"]  # the lock file went with the run


def test_every_command_locks_an_output() -> None:
    """Each edn subcommand names at least one output its lock covers (a new command whose
    outputs the lock cannot find fails here)."""
    from edn.cli import build_parser
    from edn.cli.guard import WRITES_NOTHING, output_arguments, subcommands

    found = {name: output_arguments(subparser) for name, subparser in subcommands(build_parser()).items()}
    assert len(found) > 20
    assert [name for name, outputs in found.items() if not outputs] == sorted(WRITES_NOTHING)
    assert found["decode"] == ["frames", "meta"] and found["train"][0] == "output"

"""The pipeline on a real SLURM cluster, with the project's SLURM profile.

A one-node cluster runs on this machine (tests/cluster/local_slurm.sh: Debian's
slurm-wlm and munge, installed and started as root, stopped again when the
module's tests end). Snakemake submits every job with sbatch through its SLURM
executor plugin, using profiles/slurm/ as a user would, with what a cluster
without GPUs and without an accounting database needs (the config asks for no
GPU; the plugin polls squeue, not sacct), and one change for the test of time
limits: the dancer's global stage gets one minute on its first attempt.

Time limits: SLURM stops a job at its limit with SIGTERM (SIGKILL follows after
KillWait); training then saves a checkpoint and the profile's retry resumes from
it. So that the first attempt cannot finish within its minute on any machine,
the test pauses the training process (SIGSTOP) once it has logged a step; SLURM
itself wakes it at the limit (SIGCONT, then SIGTERM), as it does any job.

These tests need root. Where SLURM cannot be started they fail and say why; set
EDN_SKIP_SLURM_TESTS=1 to skip them on purpose.
"""

from __future__ import annotations

import csv
import os
import re
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from edn.core.checkpoint import load_checkpoint
from edn.ingest.frames import read_meta
from edn.ingest.media import count_frames
from helpers import ROOT, SNAKEMAKE, Completed, tiny_pipeline_config, write_config

pytestmark = [pytest.mark.slow, pytest.mark.slurm]

CLUSTER_SCRIPT = ROOT / "tests" / "cluster" / "local_slurm.sh"
CLUSTER_STATE = Path("/var/lib/edn-test-slurm")
SLURMCTLD_LOG = CLUSTER_STATE / "log" / "slurmctld.log"
SLURM_PROFILE = ROOT / "profiles" / "slurm" / "config.yaml"
OPT_OUT = "EDN_SKIP_SLURM_TESTS"
PAIR = "dancer_to_juggler"
TIME_LIMITED = "dancer"  # the target whose global stage meets a time limit
GLOBAL_ITERATIONS = 6
# What Snakemake is asked for: one pair's videos, and every target's global model.
TARGETS = (f"results/transfer/{PAIR}.mp4", f"results/transfer/{PAIR}.compare.mp4", "global_models")
PIPELINE_TIMEOUT_S = 480


@pytest.fixture(scope="module")
def slurm_cluster():
    """A running one-node SLURM cluster; the daemons it started are stopped afterwards."""
    if os.environ.get(OPT_OUT) == "1":
        pytest.skip(f"{OPT_OUT}=1: SLURM tests skipped on request")
    if os.geteuid() != 0:
        pytest.fail(f"the SLURM tests start a one-node cluster with {CLUSTER_SCRIPT.name} and need root "
                    f"(run them as root, or set {OPT_OUT}=1 to skip them)")
    env = dict(os.environ, EDN_TEST_SLURM_STATE=str(CLUSTER_STATE))
    try:
        started = subprocess.run([str(CLUSTER_SCRIPT), "start"], capture_output=True, text=True, timeout=900, env=env)
        if started.returncode != 0:
            pytest.fail(f"could not start a local SLURM cluster ({CLUSTER_SCRIPT} start; set {OPT_OUT}=1 to skip "
                        f"these tests):\n{started.stderr[-3000:]}")
        yield
    finally:
        # Jobs left by a failed or timed-out test would outlive slurmd: cancel them first.
        subprocess.run(["scancel", "--full", "--state=PENDING,RUNNING"], capture_output=True, timeout=60)
        subprocess.run([str(CLUSTER_SCRIPT), "stop"], capture_output=True, timeout=300, env=env)


# -- what the test runs --


def cluster_config(workdir: Path) -> dict:
    """The tiny pipeline, sized for one node of this machine, asking for no GPU.

    Every job costs about 20 s more on SLURM than here (the plugin waits 5 s
    before each sbatch, and polls job states less often the longer nothing ends),
    so the run is small: the dancer onto the juggler without the face GAN. A
    second pair, the juggler onto the dancer, makes the dancer a target: its
    global stage is the one stopped at a time limit, beside the first pair's
    jobs rather than before them. One thread per training and synthesis job, so
    that two jobs share the node; checkpoints only at the end of a stage or on
    SIGTERM."""
    config = tiny_pipeline_config(workdir)
    del config["subjects"]["aerobics"]
    config["pairs"] = [{"source": "dancer", "target": "juggler"}, {"source": "juggler", "target": "dancer"}]
    config["training"].update(threads=1, mem_mb=1000, gpus=0, holdout_fraction=0.05, checkpoint_every=1000,
                              use_face_gan=False, iterations={"global": GLOBAL_ITERATIONS, "local": 3, "face": 3})
    config["synthesis"] = {"threads": 1, "mem_mb": 1000, "gpus": 0}
    config["pose"] = {"workers": 1}
    return config


def cluster_profile(directory: Path) -> Path:
    """profiles/slurm as the project ships it, with what this cluster needs, and a
    one-minute limit on the first attempt of the time-limited target's global stage."""
    profile = yaml.safe_load(SLURM_PROFILE.read_text())
    profile["slurm-status-command"] = "squeue"  # no slurmdbd here, so no sacct
    profile["slurm-init-seconds-before-status-checks"] = 1
    # The tiny jobs need far less than a real stage; two must fit a small test machine's node.
    profile["default-resources"]["mem_mb"] = 1000
    train_global = profile["set-resources"]["train_global"]
    train_global["runtime"] = (f"1 if attempt == 1 and wildcards.target == {TIME_LIMITED!r} "
                               f"else {train_global['runtime']}")
    directory.mkdir()
    (directory / "config.yaml").write_text(yaml.safe_dump(profile, sort_keys=False))
    return directory


# -- running it --


@dataclass(frozen=True)
class PausedTraining:
    pid: int
    steps_logged: int  # rows in losses.csv when it was paused


def training_process(workdir: Path, run_dir: str) -> int | None:
    """The pid of the `edn train ... --run-dir {run_dir}` process working in ``workdir``, if any."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            cwd = (entry / "cwd").resolve()
        except OSError:
            continue
        if cwd == workdir.resolve() and b"edn" in argv and b"train" in argv and b"--run-dir" in argv \
                and argv[argv.index(b"--run-dir") + 1] == run_dir.encode():
            return int(entry.name)
    return None


def losses(run_dir: Path) -> list[dict]:
    path = run_dir / "losses.csv"
    if not path.exists():
        return []
    with open(path, newline="") as file:
        return [row for row in csv.DictReader(file) if None not in row.values()]


@dataclass(frozen=True)
class ClusterRun:
    workdir: Path
    result: Completed
    elapsed_s: float
    controller_log: str  # what slurmctld logged while Snakemake ran


def planned_jobs(workdir: Path, config_path: Path, *args: str) -> dict[str, int]:
    """The jobs a local dry run would run, as {rule: count}, target rules included."""
    result = subprocess.run([str(SNAKEMAKE), "--snakefile", str(ROOT / "Snakefile"), "--directory", str(workdir),
                             "--configfile", str(config_path), "--cores", "2", *args, "--dry-run", "--quiet", "rules"],
                            cwd=workdir, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    jobs = {}
    for line in (result.stdout + result.stderr).splitlines():
        match = re.fullmatch(r"(\w+)\s+(\d+)", line.strip())
        if match and match[1] != "total":
            jobs[match[1]] = int(match[2])
    return jobs


def run_on_cluster(workdir: Path, config_path: Path, profile: Path, *args: str, timeout_s: float,
                   while_running: Callable[[], None] = lambda: None) -> ClusterRun:
    """Snakemake with ``profile``, calling ``while_running`` every 0.1 s until it ends.
    On timeout it is interrupted (it then cancels its SLURM jobs) and the test fails."""
    command = [str(SNAKEMAKE), "--snakefile", str(ROOT / "Snakefile"), "--directory", str(workdir),
               "--configfile", str(config_path), "--workflow-profile", str(profile), *args]
    env = dict(os.environ, PATH=f"{SNAKEMAKE.parent}{os.pathsep}{os.environ['PATH']}")
    log_offset = SLURMCTLD_LOG.stat().st_size
    started = time.monotonic()
    # Output to files, not pipes: nobody reads a pipe while this loop runs.
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        process = subprocess.Popen(command, cwd=workdir, env=env, stdout=out, stderr=err, text=True)
        while process.poll() is None and time.monotonic() - started < timeout_s:
            while_running()
            time.sleep(0.1)
        timed_out = process.poll() is None
        if timed_out:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        out.seek(0)
        err.seek(0)
        result = Completed(process.returncode, out.read(), err.read())
    if timed_out:
        pytest.fail(f"Snakemake on SLURM did not finish in {timeout_s:.0f} s:\n{result.output[-5000:]}")
    elapsed = time.monotonic() - started
    with open(SLURMCTLD_LOG, "rb") as log:
        log.seek(log_offset)
        return ClusterRun(workdir, result, elapsed, log.read().decode(errors="replace"))


class TrainingPauser:
    """Pauses (SIGSTOP) the first attempt of a training stage once it has logged a step."""

    def __init__(self, workdir: Path, run_dir: str) -> None:
        self.workdir, self.run_dir = workdir, run_dir
        self.paused: PausedTraining | None = None

    def __call__(self) -> None:
        if self.paused is not None:
            return
        pid = training_process(self.workdir, self.run_dir)
        steps = len(losses(self.workdir / self.run_dir))
        if pid is not None and steps > 0:
            os.kill(pid, signal.SIGSTOP)
            self.paused = PausedTraining(pid, steps)


@dataclass(frozen=True)
class Pipeline:
    run: ClusterRun
    planned: dict[str, int]  # what a local run would have run
    paused: PausedTraining | None


@pytest.fixture(scope="module")
def pipeline(slurm_cluster, tmp_path_factory) -> Pipeline:
    workdir = tmp_path_factory.mktemp("slurm_pipeline")
    config_path = write_config(workdir, cluster_config(workdir))
    profile = cluster_profile(workdir / "profile")
    planned = planned_jobs(workdir, config_path, *TARGETS)
    pauser = TrainingPauser(workdir, f"results/runs/{TIME_LIMITED}/global")
    run = run_on_cluster(workdir, config_path, profile, *TARGETS, timeout_s=PIPELINE_TIMEOUT_S, while_running=pauser)
    print(f"\ntiny pipeline on SLURM: {run.elapsed_s:.0f} s, {sum(planned.values())} jobs planned")
    assert run.result.returncode == 0, run.result.output[-5000:]
    return Pipeline(run, planned, pauser.paused)


@pytest.fixture(scope="module")
def stage_rerun(pipeline) -> ClusterRun:
    """`snakemake stats --forcerun subject_stats` on the cluster, after the pipeline."""
    workdir = pipeline.run.workdir
    run = run_on_cluster(workdir, workdir / "config.yaml", workdir / "profile", "stats", "--forcerun", "subject_stats",
                         timeout_s=180)
    print(f"\nsubject_stats rerun on SLURM: {run.elapsed_s:.0f} s")
    assert run.result.returncode == 0, run.result.output[-5000:]
    return run


@pytest.fixture(scope="module")
def two_task_training(pipeline) -> ClusterRun:
    """The juggler's global stage again as one job of two SLURM tasks (training.tasks: 2):
    the rule runs it through srun, and the two processes train together over gloo."""
    workdir = pipeline.run.workdir
    config = yaml.safe_load((workdir / "config.yaml").read_text())
    config["training"].update(tasks=2, mem_mb=2000)
    config_path = workdir / "config.two_tasks.yaml"
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    run = run_on_cluster(workdir, config_path, workdir / "profile", "results/models/juggler/global.pt",
                         "--forcerun", "train_global", timeout_s=300)
    print(f"\ntwo-task training on SLURM: {run.elapsed_s:.0f} s")
    assert run.result.returncode == 0, run.result.output[-5000:]
    return run


# -- what SLURM recorded --


@dataclass(frozen=True)
class SlurmJob:
    """A job the executor plugin submitted, with slurmctld's record of it."""

    job_id: str
    rule: str
    log: Path
    node: str
    partition: str
    exit_status: str | None  # WEXITSTATUS from slurmctld's log; None when it was killed
    timed_out: bool


def submitted_jobs(run: ClusterRun) -> list[SlurmJob]:
    """Every "submitted with SLURM jobid" line of Snakemake's output, with what
    slurmctld logged about the job (the plugin's log path names the rule:
    results/logs/slurm/rule_{rule}/{wildcards}/{job id}.log)."""
    controller = run.controller_log
    jobs = []
    for job_id, log in re.findall(r"submitted with SLURM jobid (\d+) \(log: (.+?\.log)\)", run.result.output):
        rule = next(part for part in Path(log).parts if part.startswith("rule_")).removeprefix("rule_")
        # The scheduler logs a start in one of two ways (main or backfill scheduler).
        allocated = re.search(rf"sched: Allocate JobId={job_id} NodeList=(\S+) .*Partition=(\S+)", controller)
        started = re.search(rf"Started JobId={job_id} in (\S+) on (\S+)", controller)
        assert allocated or started, f"slurmctld has no record of starting job {job_id}"
        node, partition = allocated.groups() if allocated else started.groups()[::-1]
        exit_status = re.search(rf"_job_complete: JobId={job_id} WEXITSTATUS (\d+)", controller)
        timed_out = f"Time limit exhausted for JobId={job_id}\n" in controller
        jobs.append(SlurmJob(job_id, rule, run.workdir / log if not Path(log).is_absolute() else Path(log),
                             node, partition, exit_status[1] if exit_status else None, timed_out))
    return jobs


# -- the tests --


def jobs_by_rule(jobs: list[SlurmJob]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for job in jobs:
        counts[job.rule] = counts.get(job.rule, 0) + 1
    return counts


def test_pipeline_outputs(pipeline) -> None:
    workdir = pipeline.run.workdir
    frames = read_meta(workdir / "results/frames/dancer/meta.json").frame_count
    assert count_frames(workdir / f"results/transfer/{PAIR}.mp4") == frames
    assert count_frames(workdir / f"results/transfer/{PAIR}.compare.mp4") == frames
    for target in ("juggler", "dancer"):
        model = load_checkpoint(workdir / f"results/models/{target}/global.pt", stages=("global",))
        assert model.step == GLOBAL_ITERATIONS


def test_every_job_ran_as_a_slurm_job(pipeline) -> None:
    jobs = submitted_jobs(pipeline.run)
    # Every job with a command went to SLURM (one global stage twice: its first
    # attempt hit the time limit); only the target rule ran here.
    expected = {rule: count for rule, count in pipeline.planned.items() if rule != "global_models"}
    expected["train_global"] += 1
    assert jobs_by_rule(jobs) == expected
    assert len({job.job_id for job in jobs}) == len(jobs)
    for job in jobs:
        assert job.node == "localhost"
        # SLURM wrote the job's output (sbatch --output) where the profile says; it is kept.
        assert job.log.is_relative_to(pipeline.run.workdir / "results/logs/slurm"), job.log
        assert f"rule {job.rule}:" in job.log.read_text(), job.log
        if not job.timed_out:
            assert job.exit_status == "0", job


def test_gpu_rules_go_to_the_gpu_partition(pipeline) -> None:
    partitions: dict[str, set[str]] = {}
    for job in submitted_jobs(pipeline.run):
        partitions.setdefault(job.rule, set()).add(job.partition)
    assert partitions["train_global"] == partitions["synthesize"] == {"gpu"}
    assert partitions["detect_poses"] == partitions["encode_transfer"] == {"main"}


def test_training_stopped_at_the_time_limit_resumes_from_its_checkpoint(pipeline) -> None:
    workdir, paused = pipeline.run.workdir, pipeline.paused
    assert paused is not None, "the time-limited global stage was never seen running"
    first, retry = [job for job in submitted_jobs(pipeline.run)
                    if job.rule == "train_global" and job.log.parent.name == TIME_LIMITED]
    # SLURM stopped the first attempt at its limit...
    assert first.timed_out
    first_log = first.log.read_text()
    assert "DUE TO TIME LIMIT" in first_log
    # ...the training saved a checkpoint on SIGTERM (none is due before step 1000)...
    stopped = re.search(r"global stage: stopped at step (\d+) of (\d+); checkpoint '(.+?)' saved", first_log)
    assert stopped, first_log[-3000:]
    step = int(stopped[1])
    assert int(stopped[2]) == GLOBAL_ITERATIONS
    assert 1 <= paused.steps_logged <= step < GLOBAL_ITERATIONS
    assert Path(stopped[3]).name == f"step_{step:08d}.pt"
    # ...and the retry went on from that step, not from zero.
    assert retry.exit_status == "0"
    retry_log = (workdir / f"results/logs/train_global/{TIME_LIMITED}.log").read_text()
    assert re.search(rf"resuming global from \S+step_{step:08d}\.pt \(step {step}\)", retry_log), retry_log
    assert f"{step} of {GLOBAL_ITERATIONS} iterations done" in retry_log
    # Every step is in the loss log once; the final model loads and has them all.
    steps = [int(row["step"]) for row in losses(workdir / f"results/runs/{TIME_LIMITED}/global")]
    assert steps == list(range(1, GLOBAL_ITERATIONS + 1))
    model = load_checkpoint(workdir / f"results/models/{TIME_LIMITED}/global.pt", stages=("global",))
    assert model.step == GLOBAL_ITERATIONS


def test_forcerun_of_one_stage_on_the_cluster(pipeline, stage_rerun) -> None:
    workdir = stage_rerun.workdir
    jobs = submitted_jobs(stage_rerun)
    assert jobs_by_rule(jobs) == {"subject_stats": 2}
    assert all(job.exit_status == "0" and job.node == "localhost" for job in jobs)
    stats = [workdir / f"results/stats/{subject}.json" for subject in ("dancer", "juggler")]
    normalized = workdir / f"results/transfer/{PAIR}/poses.parquet"
    # The stage's outputs are new; what follows it was not rerun (the target stops there).
    assert all(path.stat().st_mtime > normalized.stat().st_mtime for path in stats)


def test_a_training_job_of_two_slurm_tasks(two_task_training) -> None:
    workdir = two_task_training.workdir
    [job] = submitted_jobs(two_task_training)
    assert job.rule == "train_global" and job.exit_status == "0"
    # SLURM ran the job step's two tasks (srun), which joined as processes 0 and 1 of 2.
    log = (workdir / "results/logs/train_global/juggler.log").read_text()
    assert "process 0 of 2" in log and "batch 1, 2 processes" in log, log[-3000:]
    assert "srun -n 2 python -m edn" in job.log.read_text()
    model = load_checkpoint(workdir / "results/models/juggler/global.pt", stages=("global",))
    assert model.step == GLOBAL_ITERATIONS
    steps = [int(row["step"]) for row in losses(workdir / "results/runs/juggler/global")]
    assert steps == list(range(1, GLOBAL_ITERATIONS + 1))  # rank 0 alone wrote the loss log

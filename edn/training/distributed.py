"""Data-parallel training over processes, GPUs and nodes with torch.distributed.

Every process holds the whole model and trains on its own share of each step's
pairs (:func:`edn.training.data.samples_of_step`). After each backward pass the
gradients are averaged over the processes (:meth:`Group.average_gradients`), so
every process takes the same optimiser step and the weights stay identical: ``P``
processes at batch ``B`` each train as one process at batch ``P x B``.

The gradients are averaged by hand, one flat all-reduce per optimiser (as
StyleGAN2-ADA does), rather than through ``DistributedDataParallel``: a GAN
step runs the discriminator three times before one backward pass and the
generator's loss back-propagates through the discriminator, which DDP's
one-forward-one-backward hooks do not fit.

Processes come from one of three places:

- ``edn train --processes N`` starts N - 1 processes beside itself on this
  machine (:func:`run_data_parallel`); on CUDA, one per GPU;
- ``srun edn train`` under SLURM: each task is a process, or each task starts
  ``--processes`` of its own (one task per node, one process per GPU);
- ``torchrun``: RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT.

The backend is NCCL on CUDA and gloo on the CPU (which is how the tests run).
Rank 0 writes the checkpoints, samples and the loss log.
"""

from __future__ import annotations

import datetime
import logging
import multiprocessing
import os
import signal
import socket
import subprocess
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch
from torch import nn

from edn.core.errors import EdnError

log = logging.getLogger(__name__)

#: How long a process waits for the others at a collective before giving up.
TIMEOUT = datetime.timedelta(minutes=10)


@dataclass(frozen=True)
class Launch:
    """Where this process sits before the group exists: ``tasks`` launched from outside
    (srun, torchrun), this one ``task``, each starting ``processes`` on its machine."""

    task: int = 0
    tasks: int = 1
    local_task: int = 0
    address: str = "127.0.0.1"
    port: int = 0
    processes: int = 1

    @property
    def world_size(self) -> int:
        return self.tasks * self.processes

    def rank(self, local: int) -> int:
        return self.task * self.processes + local

    def local_rank(self, local: int) -> int:
        """Index of the process among those on its machine (its GPU)."""
        return self.local_task * self.processes + local


@dataclass(frozen=True)
class Group:
    """This process's place in the training group: ``rank`` of ``world_size``,
    ``local_rank`` among the processes on its machine. One process: the defaults."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that writes checkpoints, samples and the loss log."""
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world_size > 1

    def average_gradients(self, parameters: Iterable[nn.Parameter]) -> None:
        """Replace every gradient by its mean over the processes (one flat all-reduce)."""
        if not self.active:
            return
        with_grad = [p for p in parameters if p.grad is not None]
        if not with_grad:
            return
        flat = torch.cat([p.grad.reshape(-1) for p in with_grad])
        torch.distributed.all_reduce(flat)
        flat.div_(self.world_size)
        offset = 0
        for p in with_grad:
            count = p.grad.numel()
            p.grad.copy_(flat[offset:offset + count].view_as(p.grad))
            offset += count

    def mean(self, values: dict[str, float], device: torch.device) -> dict[str, float]:
        """Each value's mean over the processes (the logged losses)."""
        if not self.active:
            return values
        keys = list(values)
        tensor = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64, device=device)
        torch.distributed.all_reduce(tensor)
        return {key: float(v) / self.world_size for key, v in zip(keys, tensor.tolist())}

    def any(self, flag: bool, device: torch.device) -> bool:
        """Whether ``flag`` is true in any process (a stop asked of one stops all at the same step)."""
        if not self.active:
            return flag
        tensor = torch.tensor([1.0 if flag else 0.0], device=device)
        torch.distributed.all_reduce(tensor, op=torch.distributed.ReduceOp.MAX)
        return bool(tensor.item() > 0)

    def broadcast_modules(self, modules: Iterable[nn.Module]) -> None:
        """Every parameter and buffer as rank 0 has it."""
        if not self.active:
            return
        for module in modules:
            for tensor in [*module.parameters(), *module.buffers()]:
                torch.distributed.broadcast(tensor.data, src=0)

    def broadcast_object(self, value: object) -> object:
        """Rank 0's ``value`` in every process."""
        if not self.active:
            return value
        holder = [value]
        torch.distributed.broadcast_object_list(holder, src=0)
        return holder[0]

    def barrier(self) -> None:
        if self.active:
            torch.distributed.barrier()


SINGLE = Group()


def launch_from_environment(processes: int) -> Launch:
    """The tasks started from outside this process (torchrun, or srun's job step), each starting
    ``processes`` here; one task when neither started it."""
    env = os.environ
    if "RANK" in env and "WORLD_SIZE" in env and int(env["WORLD_SIZE"]) > 1:  # torchrun
        return Launch(task=int(env["RANK"]), tasks=int(env["WORLD_SIZE"]), local_task=int(env.get("LOCAL_RANK", 0)),
                      address=env.get("MASTER_ADDR", "127.0.0.1"), port=int(env.get("MASTER_PORT", 29500)),
                      processes=processes)
    tasks = int(env.get("SLURM_STEP_NUM_TASKS", "1") or 1)
    if tasks > 1:  # srun: SLURM's job step; the batch script itself is not a multi-task step
        job = int(env.get("SLURM_JOB_ID", "0") or 0)
        step = int(env.get("SLURM_STEP_ID", env.get("SLURM_STEPID", "0")) or 0)
        return Launch(task=int(env["SLURM_PROCID"]), tasks=tasks, local_task=int(env.get("SLURM_LOCALID", 0)),
                      address=env.get("MASTER_ADDR") or _first_slurm_host(),
                      port=int(env.get("MASTER_PORT") or 20000 + (job * 7 + step) % 20000), processes=processes)
    return Launch(address="127.0.0.1", port=_free_port() if processes > 1 else 0, processes=processes)


def _first_slurm_host() -> str:
    nodes = os.environ.get("SLURM_STEP_NODELIST") or os.environ.get("SLURM_JOB_NODELIST", "")
    if not nodes:
        return "127.0.0.1"
    try:
        hosts = subprocess.run(["scontrol", "show", "hostnames", nodes], check=True, capture_output=True,
                               text=True, timeout=30).stdout.split()
    except (OSError, subprocess.SubprocessError) as error:
        raise EdnError(f"SLURM node list {nodes!r}: scontrol cannot expand it ({error}); set MASTER_ADDR") from error
    return hosts[0] if hosts else "127.0.0.1"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def join_group(launch: Launch, local: int, device: torch.device) -> Group:
    """Join the group as process ``local`` of this task (NCCL on CUDA, gloo otherwise)."""
    group = Group(rank=launch.rank(local), world_size=launch.world_size, local_rank=launch.local_rank(local))
    if not group.active:
        return group
    backend = "nccl" if device.type == "cuda" else "gloo"
    try:
        torch.distributed.init_process_group(backend, init_method=f"tcp://{launch.address}:{launch.port}",
                                             rank=group.rank, world_size=group.world_size, timeout=TIMEOUT)
    except (RuntimeError, ValueError) as error:
        raise EdnError(f"training process {group.rank} of {group.world_size}: cannot join the others at "
                       f"{launch.address}:{launch.port} ({str(error).splitlines()[0]})") from error
    return group


def leave_group(group: Group) -> None:
    if group.active and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


def process_device(device: torch.device, group: Group) -> torch.device:
    """Each process's own GPU on CUDA (by its local rank), the CPU otherwise."""
    if device.type != "cuda" or not group.active:
        return device
    return torch.device("cuda", group.local_rank % max(torch.cuda.device_count(), 1))


#: The processes :func:`run_data_parallel` started here and that are still to be joined.
_started: list = []


def run_data_parallel(launch: Launch, work: Callable[..., object], arguments: dict) -> object:
    """Run ``work(local=..., **arguments)`` in ``launch.processes`` processes of this task:
    process 0 here, the others started beside it (spawned, so each has its own torch);
    return what process 0's ``work`` returns.

    ``work`` passes a SIGTERM on with :func:`stop_started_processes` (each process
    finishes its step, and they stop together at the same one). When one of the
    others fails, its exit code is reported as an EdnError once process 0 is done.
    """
    if launch.processes == 1:
        return work(local=0, **arguments)
    context = multiprocessing.get_context("spawn")
    children = [context.Process(target=_child, args=(work, local, arguments), name=f"{local}")
                for local in range(1, launch.processes)]
    for child in children:
        child.start()
    _started[:] = children
    try:
        result = work(local=0, **arguments)
    except BaseException:
        _join(children, timeout=60)
        raise
    finally:
        _started.clear()
    failed = [(child.name, child.exitcode) for child in _join(children, timeout=600) if child.exitcode != 0]
    if failed:
        raise EdnError("training: " + ", ".join(f"process {name} ended with exit code {code}"
                                                 for name, code in failed) + " (its messages are above)")
    return result


def stop_started_processes() -> None:
    """Pass a SIGTERM on to the processes :func:`run_data_parallel` started here."""
    for child in list(_started):
        if child.is_alive():
            os.kill(child.pid, signal.SIGTERM)


def _join(children: list, timeout: float) -> list:
    for child in children:
        child.join(timeout)
        if child.is_alive():
            child.terminate()
            child.join(10)
    return children


def _child(work: Callable[..., object], local: int, arguments: dict) -> None:
    """A process started by :func:`run_data_parallel`: warnings only on stderr, exit 1 on an EdnError."""
    import sys

    logging.basicConfig(level=logging.WARNING, format=f"%(asctime)s edn.train[{local}] %(levelname)s: %(message)s")
    try:
        work(local=local, **arguments)
    except EdnError as error:
        print(f"edn train (process {local}): error: {error}", file=sys.stderr)
        sys.exit(1)

"""Devices: the data-parallel mesh, its shardings, and multi-host start-up.

Data parallelism is `jax.jit` over a 1-D device mesh named 'data': batches are split
along their first axis (`NamedSharding(mesh, P('data'))`), the train state is
replicated (`P()`), and XLA inserts the gradient and BatchNorm-statistics reductions
across devices. (`jax.pmap`, which the original design named, is in maintenance mode
in the pinned JAX and is itself rebuilt on jit + shard_map; see BUILD_NOTES.md.)
"""

from __future__ import annotations

import os
from typing import Optional, Sequence

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

DATA_AXIS = "data"


def initialize_distributed(*, coordinator_address: Optional[str] = None,
                           num_processes: Optional[int] = None,
                           process_id: Optional[int] = None, auto: bool = False) -> bool:
    """Joins a multi-process run; must run before any JAX computation. Returns whether
    this process is part of one.

    Explicit: `coordinator_address` ('host:port' of process 0), `num_processes` and
    `process_id`, each falling back to the environment variables JAX_COORDINATOR_ADDRESS,
    JAX_NUM_PROCESSES and JAX_PROCESS_ID (so one launch command serves every process).
    `auto=True` lets `jax.distributed.initialize()` read the cluster itself (SLURM,
    Open MPI, a Cloud TPU pod slice). A plain single-process run does nothing.
    On CPU the processes talk over gloo (JAX's default CPU collectives).
    """
    env = os.environ
    coordinator_address = coordinator_address or env.get("JAX_COORDINATOR_ADDRESS")
    if num_processes is None and env.get("JAX_NUM_PROCESSES"):
        num_processes = int(env["JAX_NUM_PROCESSES"])
    if process_id is None and env.get("JAX_PROCESS_ID"):
        process_id = int(env["JAX_PROCESS_ID"])
    if auto:
        jax.distributed.initialize(coordinator_address, num_processes, process_id)
        return True
    if num_processes is None or num_processes <= 1:
        return False
    missing = [name for name, value in (("coordinator address", coordinator_address),
                                        ("process id", process_id)) if value is None]
    if missing:
        raise ValueError(f"a {num_processes}-process run needs the {' and the '.join(missing)}"
                         f" (--coordinator_address=HOST:PORT --process_id=I, or "
                         f"JAX_COORDINATOR_ADDRESS / JAX_PROCESS_ID)")
    if not 0 <= process_id < num_processes:
        raise ValueError(f"process id {process_id} is outside 0..{num_processes - 1}")
    jax.distributed.initialize(coordinator_address, num_processes, process_id)
    return True


def data_mesh(devices: Optional[Sequence] = None) -> Mesh:
    """A 1-D 'data' mesh over `devices` (default: every device of every process)."""
    devices = np.asarray(jax.devices() if devices is None else devices).reshape(-1)
    return Mesh(devices, (DATA_AXIS,))


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, PartitionSpec())


def batch_sharding(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, PartitionSpec(DATA_AXIS))

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


def initialize_distributed() -> None:
    """Joins a multi-process run when launched as one (several hosts, or several
    processes on one host): `jax.distributed.initialize` reads the coordinator from
    JAX_COORDINATOR_ADDRESS / JAX_NUM_PROCESSES / JAX_PROCESS_ID, or from SLURM / TPU
    metadata. A plain single-process run does nothing."""
    if int(os.environ.get("JAX_NUM_PROCESSES", "1")) > 1 or "SLURM_NTASKS" in os.environ:
        jax.distributed.initialize()


def data_mesh(devices: Optional[Sequence] = None) -> Mesh:
    """A 1-D 'data' mesh over `devices` (default: every device of every process)."""
    devices = np.asarray(jax.devices() if devices is None else devices).reshape(-1)
    return Mesh(devices, (DATA_AXIS,))


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, PartitionSpec())


def batch_sharding(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, PartitionSpec(DATA_AXIS))

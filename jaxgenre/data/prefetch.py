"""Double buffering: the next host batches are gathered and placed on the mesh in a
background thread while the current step runs.

JAX dispatches a step asynchronously, so the host is free while the devices compute;
this puts that time to use for the memory-mapped gather and the host-to-device copy of
the following `size` batches. The batches and their order are exactly those of the
wrapped iterator, so training results do not change (tested).
"""

from __future__ import annotations

import queue
import threading
from typing import Dict, Iterable, Iterator

import jax
import numpy as np
from jax.sharding import Mesh

from jaxgenre.data import pipeline

_END = object()


class _Failure:
    def __init__(self, error: BaseException):
        self.error = error


def prefetch_to_mesh(batches: Iterable[Dict[str, np.ndarray]], mesh: Mesh, *,
                     size: int = 2, axis: int = 0) -> Iterator[Dict[str, jax.Array]]:
    """`pipeline.shard_batch(b, mesh, axis=axis)` for every host batch `b`, up to
    `size` ahead.

    `size=0` does it inline (no thread). An error while loading is raised here, in the
    consumer, at the position it happened. Stopping early (break, exception) stops the
    thread.
    """
    if size <= 0:
        for batch in batches:
            yield pipeline.shard_batch(batch, mesh, axis=axis)
        return
    ready: queue.Queue = queue.Queue(maxsize=size)
    stop = threading.Event()

    def put(item) -> bool:
        while not stop.is_set():
            try:
                ready.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for batch in batches:
                if not put(pipeline.shard_batch(batch, mesh, axis=axis)):
                    return
        except BaseException as error:  # handed to the consumer, raised there
            put(_Failure(error))
            return
        put(_END)

    worker = threading.Thread(target=produce, name="jaxgenre-prefetch", daemon=True)
    worker.start()
    try:
        while True:
            item = ready.get()
            if item is _END:
                return
            if isinstance(item, _Failure):
                raise item.error
            yield item
    finally:
        stop.set()
        worker.join()

"""Double buffering (data/prefetch.py): same batches in the same order, errors surface in
the consumer where they happened, an early stop ends the thread, and training results do
not depend on it."""

import threading

import jax
import numpy as np
import pytest

from jaxgenre import parallel
from jaxgenre.data import pipeline, prefetch

from test_pipeline import _store


def _host_batches():
    store = _store(n_clips=6, n_frames=40)
    segs = pipeline.segments(np.arange(6), 40, segment_frames=10)
    return list(pipeline.iterate_batches(store, segs, batch_size=4, seed=3, epoch=1,
                                         train=True))


@pytest.mark.parametrize("size", [0, 1, 3])
def test_prefetched_batches_equal_the_host_batches_in_order(size):
    host, mesh = _host_batches(), parallel.data_mesh()
    got = list(prefetch.prefetch_to_mesh(iter(host), mesh, size=size))
    assert len(got) == len(host) == 6
    for device_batch, host_batch in zip(got, host):
        assert isinstance(device_batch["inputs"], jax.Array)
        for key, value in host_batch.items():
            np.testing.assert_array_equal(np.asarray(device_batch[key]), value)


def test_a_loading_error_is_raised_in_the_consumer_after_the_good_batches():
    host = _host_batches()

    def failing():
        yield from host[:2]
        raise OSError("feature cache file vanished")

    got = []
    with pytest.raises(OSError, match="feature cache file vanished"):
        for batch in prefetch.prefetch_to_mesh(failing(), parallel.data_mesh(), size=2):
            got.append(batch)
    assert len(got) == 2


def test_stopping_early_ends_the_thread():
    host = _host_batches()
    batches = prefetch.prefetch_to_mesh(iter(host * 50), parallel.data_mesh(), size=2)
    next(batches)
    batches.close()  # what a `break` out of the training loop does
    assert not [t for t in threading.enumerate() if t.name == "jaxgenre-prefetch"]


@pytest.mark.slow  # two runs, ~17 s; the batches' equality is tested by default
def test_training_is_the_same_with_and_without_prefetching(tmp_path):
    from test_train_run import _config

    from jaxgenre import experiments

    params = []
    for size in (0, 2):
        config = _config(1)
        config.eval.plots = False
        config.train.prefetch = size
        out = experiments.run_one(config, str(tmp_path / f"prefetch_{size}"))
        params.append(jax.tree.map(np.asarray, out["state"].params))
    jax.tree.map(np.testing.assert_array_equal, *params)

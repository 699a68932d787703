"""Compiled once (issue 25, item 4): where JAX's persistent compilation cache goes, that a
second run in a fresh process loads the first one's executables and reaches the same
metrics, and that each epoch reports the seconds spent compiling."""

from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
import sys

import jax
import jax.numpy as jnp
import pytest

from configs import base
from jaxgenre import compile_cache, validation

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_the_folder_is_the_data_homes_unless_given_and_off_turns_it_off(tmp_path):
    home = str(tmp_path / "home")
    auto = compile_cache.folder("auto", home)
    assert auto == os.path.join(home, "compile_cache", compile_cache.fingerprint())
    assert compile_cache.folder("off", home) is None and compile_cache.folder(None, home) is None
    assert compile_cache.folder("~/xla", home) == os.path.expanduser("~/xla")
    for setting in ("auto", "off", str(tmp_path / "mine")):
        config = base.get_config()
        config.train.compilation_cache = setting
        validation.check_config(config)


def test_the_fingerprint_keeps_other_processors_and_jax_versions_apart():
    with open("/proc/cpuinfo") as f:
        flags = next(line for line in f if line.startswith(("flags", "Features")))
    digest = hashlib.sha256((platform.machine() + flags).encode()).hexdigest()[:12]
    assert compile_cache.fingerprint() == f"jax{jax.__version__}-cpu-{digest}"


def test_the_clock_counts_a_compile_and_not_a_cached_call():
    f = jax.jit(lambda x: jnp.tanh(x) * 3.0 + x.sum())
    before = compile_cache.CLOCK.read()
    f(jnp.ones(17)).block_until_ready()
    first = compile_cache.CLOCK.read().since(before)
    f(jnp.ones(17)).block_until_ready()  # jit's in-memory cache: no compile
    again = compile_cache.CLOCK.read().since(before)
    assert first.seconds > 0 and again.seconds == first.seconds


def test_a_folder_that_cannot_be_made_leaves_the_cache_off_with_a_warning(tmp_path,
                                                                        monkeypatch):
    monkeypatch.setattr(compile_cache, "_enabled", None)
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.warns(UserWarning, match="compilation cache off: cannot make"):
        assert compile_cache.enable(str(blocker / "cache"), str(tmp_path)) is None
    assert compile_cache.enable("auto", str(tmp_path)) is None  # the first call decided


TINY = ["--config=configs/spectralcnn_mel.py", "--config.data.synthetic.clips_per_class=3",
        "--config.data.synthetic.seconds=4", "--config.data.clip_seconds=4",
        "--config.data.segment_seconds=1", "--config.features.n_mels=32",
        "--config.train.epochs=2", "--config.train.batch_size=8", "--config.eval.batch_size=8",
        "--config.eval.plots=False", "--config.train.compilation_cache_min_seconds=0"]


def _launch(workdir, *extra):
    done = subprocess.run([sys.executable, "launch.py", f"--workdir={workdir}", *TINY, *extra],
                          cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    return [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_a_second_run_loads_the_first_ones_executables_and_ends_the_same(tmp_path):
    cache = tmp_path / "xla"
    first = _launch(tmp_path / "one", f"--config.train.compilation_cache={cache}")
    assert first[0]["compile_cache_hits"] == 0 and first[0]["compile_seconds"] > 0
    assert any(cache.iterdir())
    second = _launch(tmp_path / "two", f"--config.train.compilation_cache={cache}")
    assert second[0]["compile_cache_hits"] > 0  # the train and eval steps, at least
    for a, b in zip(first, second):
        for key in ("step", "train_loss", "train_accuracy", "valid_accuracy", "valid_loss"):
            assert a[key] == b[key], key
    off = _launch(tmp_path / "three", "--config.train.compilation_cache=off")
    assert off[0]["compile_cache_hits"] == 0
    assert not os.path.exists(os.path.join(os.environ["JAXGENRE_DATA"], "compile_cache"))

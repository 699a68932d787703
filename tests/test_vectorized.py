"""Seeds as a batch dimension (issue 25, item 5): `config.seeds` with
`config.train.vectorize_seeds` trains the seeds as one program, and each seed
ends where its separate run does, within float rounding, with the same outputs
(`seed_<k>/`, mean ± std, the seed ensemble); a resumed vectorised run ends
bit-identical to an uninterrupted one, and one whose seeds were killed between their
saves trains the seed behind apart, throwing nothing away.

The reference is the separate runs (`experiments.run_one` per seed, one program each),
which the rest of the suite checks. Both ways of one program are run: the seeds'
steps written out (the CPU backend's) and `jax.vmap` (accelerators'). The tolerance:
XLA computes a vmapped convolution as one grouped convolution, summing in another
order; after 10 AdamW steps with every augmentation the training losses agree to
about 1e-5 (relative) on this CPU, the clip probabilities to about 1e-5."""

import json
import os
import re
import shutil
import sys

import jax
import numpy as np
import pytest

from jaxgenre import experiments
from jaxgenre.training import dispatch
from jaxgenre.results import clip_table

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_resident import _five_steps  # noqa: E402
from test_train_run import compile_log  # noqa: E402

SEEDS = (3, 4)
LOSS_RTOL, PROBABILITY_ATOL = 1e-4, 2e-4  # the stated tolerance (measured: ~1e-5)


def _seeds_config(epochs=2, **train):
    config = _five_steps(epochs)
    config.seed, config.seeds = SEEDS[0], len(SEEDS)
    config.train.update(**train)
    config.eval.plots = False
    return config


def _history(workdir, seed):
    with open(os.path.join(workdir, f"seed_{seed}", "metrics.jsonl")) as f:
        return [json.loads(line) for line in f]


def _predictions(workdir, seed=None):
    folder = workdir if seed is None else os.path.join(workdir, f"seed_{seed}")
    return clip_table.read(os.path.join(folder, clip_table.FILE_NAME))


@pytest.fixture(scope="module")
def separate(tmp_path_factory):
    """The reference: the two seeds as two runs."""
    workdir = str(tmp_path_factory.mktemp("separate"))
    experiments.run(_seeds_config(vectorize_seeds=False), workdir)
    return workdir


def _assert_like_separate(separate, workdir):
    for seed in SEEDS:
        ours, theirs = _history(workdir, seed), _history(separate, seed)
        assert [h["step"] for h in ours] == [h["step"] for h in theirs] == [5, 10]
        for x, y in zip(ours, theirs):
            for key in ("train_loss", "valid_loss"):
                assert x[key] == pytest.approx(y[key], rel=LOSS_RTOL), (seed, key)
            assert x["valid_accuracy"] == y["valid_accuracy"]
        a, b = _predictions(workdir, seed), _predictions(separate, seed)
        assert a.clip_ids == b.clip_ids
        np.testing.assert_allclose(a.probabilities, b.probabilities, atol=PROBABILITY_ATOL)
        ours, theirs = (json.load(open(os.path.join(w, f"seed_{seed}", "results.json")))
                        for w in (workdir, separate))
        assert ours["test"]["clips"]["accuracy"] == theirs["test"]["clips"]["accuracy"]
        assert ours["best_valid_accuracy"] == theirs["best_valid_accuracy"]


@pytest.mark.slow  # three end-to-end runs, ~70 s
def test_vectorised_seeds_train_as_separate_runs_with_the_same_outputs(separate, tmp_path,
                                                                        capsys):
    """Streamed, one step per dispatch, every augmentation (crops, SpecAugment, mixup,
    gain, label smoothing, AdamW with a warm-up): one train program compiled for both
    seeds; each seed's history and test predictions within the tolerance of its own
    run; the cell's summary and seed ensemble computed from those files as for
    separate runs."""
    workdir = str(tmp_path)
    _, log = compile_log(lambda: experiments.run(_seeds_config(vectorize_seeds=True),
                                                 workdir))
    out = capsys.readouterr().out
    assert "seeds 3, 4 trained together" in out and "2 seeds trained as one program" in out
    assert out.count("feature cache") == 1  # the data prepared (and described) once
    compiled = re.findall(r"Compiling jit\((\w+)\)", log)
    # one train program for both seeds (on CPU `dispatch.each_seed`'s, else the vmap's)
    trains = [name for name in compiled if name.startswith("train_many")]
    assert len(trains) == 1 and "train_step" not in compiled, compiled
    _assert_like_separate(separate, workdir)
    for seed in SEEDS:  # every file a separate run writes; the features cached once
        files = lambda w: set(os.listdir(os.path.join(w, f"seed_{seed}")))
        assert files(workdir) == files(separate) - ({"cache"} if seed != SEEDS[0] else set())
        run = json.load(open(os.path.join(workdir, f"seed_{seed}", "run.json")))
        assert run["config"]["seed"] == seed and run["config"]["seeds"] is None
        assert run["config"]["train"]["vectorize_seeds"] is False  # a separate run's config
    results = json.load(open(os.path.join(workdir, "results.json")))
    accuracies = [json.load(open(os.path.join(workdir, f"seed_{s}", "results.json")))
                  ["test"]["clips"]["accuracy"] for s in SEEDS]
    clips = results["test"]["clips"]
    assert results["seeds"] == list(SEEDS) and clips["per_seed"]["accuracy"] == accuracies
    np.testing.assert_allclose([clips["accuracy"], clips["accuracy_std"]],
                               [np.mean(accuracies), np.std(accuracies)])
    members = [_predictions(workdir, s) for s in SEEDS]
    mean = (members[0].probabilities + members[1].probabilities) / 2
    np.testing.assert_allclose(_predictions(workdir).probabilities, mean)
    assert results["test"]["seed_ensemble"]["accuracy"] == np.mean(
        mean.argmax(1) == members[0].labels)
    # Run again: both seeds are finished, nothing trains (no epoch line either).
    experiments.run(_seeds_config(vectorize_seeds=True), workdir)
    out = capsys.readouterr().out
    assert "trained together" not in out and '"train_loss"' not in out, out


@pytest.mark.slow  # one more run, ~60 s: the scan and the resident table under vmap
def test_vectorised_seeds_on_a_resident_table_with_three_steps_per_dispatch(separate,
                                                                             tmp_path,
                                                                             monkeypatch):
    """The accelerators' way, `jax.vmap` over the seeds (here on the CPU in place of the
    CPU backend's written-out steps), over scanned steps cutting windows out of a
    resident table."""
    monkeypatch.setattr(dispatch, "each_seed",
                        lambda many: jax.vmap(many, in_axes=(0, 0, None, 0)))
    experiments.run(_seeds_config(vectorize_seeds=True, resident=True, steps_per_dispatch=3),
                    str(tmp_path))
    _assert_like_separate(separate, str(tmp_path))


@pytest.mark.slow  # five runs, ~100 s
def test_a_vectorised_run_resumes_bit_identical_and_seeds_behind_train_apart(tmp_path,
                                                                             capsys):
    """The whole run (2 epochs); the same run stopped after epoch 1, which both seeds
    saved (a save of one is a save of all), and resumed: it ends bit-identical to the
    whole run, each epoch once in metrics.jsonl. Then, from that stop, seed 4 alone
    trained on to epoch 2 by a separate run (as if killed between the two seeds' saves)
    and the run resumed: seed 3 trains epoch 2 as a program of its own, said in one
    warning line; nothing of seed 4's is trained again, and seed 3 ends within the
    tolerance of the whole run."""
    def config(epochs):  # a schedule that does not depend on the number of epochs
        config = _seeds_config(epochs, vectorize_seeds=True, async_checkpoints=False)
        config.optim.schedule = "constant"
        return config

    whole, resumed, apart = (str(tmp_path / name) for name in ("whole", "resumed", "apart"))
    experiments.run(config(2), whole)
    experiments.run(config(1), resumed)
    for seed in SEEDS:  # stopped after epoch 1's save: no results yet
        os.remove(os.path.join(resumed, f"seed_{seed}", "results.json"))
    shutil.copytree(resumed, apart)
    capsys.readouterr()
    experiments.run(config(2), resumed)
    out = capsys.readouterr().out
    assert out.count("resuming from") == 2 and "2 seeds trained as one program" in out
    for seed in SEEDS:
        ours, theirs = _history(resumed, seed), _history(whole, seed)
        assert [h["epoch"] for h in ours] == [1, 2]
        assert {**ours[-1], **_timing(theirs[-1])} == theirs[-1]
        np.testing.assert_array_equal(_predictions(resumed, seed).probabilities,
                                      _predictions(whole, seed).probabilities)
    assert json.load(open(os.path.join(resumed, "results.json")))["test"] == \
        json.load(open(os.path.join(whole, "results.json")))["test"]

    ahead = os.path.join(apart, f"seed_{SEEDS[1]}")
    experiments.run_one(_one_seed(config(2), SEEDS[1]), ahead)
    os.remove(os.path.join(ahead, "results.json"))
    ahead_history = _history(apart, SEEDS[1])
    capsys.readouterr()
    experiments.run(config(2), apart)
    err = capsys.readouterr().err
    assert "the seeds resume at different epochs (seed 3 at 1, seed 4 at 2): trained as 2 " \
           "programs" in err, err
    assert _history(apart, SEEDS[1]) == ahead_history  # not trained again
    ours, theirs = _history(apart, SEEDS[0]), _history(whole, SEEDS[0])
    assert [h["epoch"] for h in ours] == [1, 2]
    for key in ("train_loss", "valid_loss"):
        assert ours[-1][key] == pytest.approx(theirs[-1][key], rel=LOSS_RTOL), key
    np.testing.assert_allclose(_predictions(apart, SEEDS[0]).probabilities,
                               _predictions(whole, SEEDS[0]).probabilities,
                               atol=PROBABILITY_ATOL)


def _timing(line):
    return {k: line[k] for k in ("seconds", "compile_seconds", "compile_cache_hits")}


def _one_seed(config, seed):
    with config.unlocked():
        config.seed, config.data.seed, config.seeds = seed, SEEDS[0], None
    return config

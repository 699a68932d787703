"""config.seeds: each cell trained with several seeds on one split, each seed in its own
folder, resumable, summarised (mean ± std against numpy) with the seed ensemble (against
the members' probabilities averaged by hand); in a grid, the table shows mean ± std and
the cells are compared on their seed ensembles.

One grid run (two cells x two seeds, first seed 3) serves all of it: the seeds of a
cell and the grid of such cells were two tests training six runs; now four."""

import csv
import json

import numpy as np
import pytest
from sklearn.metrics import accuracy_score

from configs import base
from jaxgenre import experiments
from jaxgenre.results import clip_table
from tests.test_sample_cnn import tiny

# Four runs (~30 s on 2 cores) behind every test here: CI and --runslow run them.
pytestmark = pytest.mark.slow

CELLS = [("spectral_cnn", "mel"), ("spectral_cnn", "mfcc")]
SEEDS = (3, 4)


@pytest.fixture(scope="module")
def seeded_grid(tmp_path_factory):
    config = tiny(base.get_config())
    config.features.n_mels = 32
    config.seed, config.seeds = SEEDS[0], len(SEEDS)
    workdir = tmp_path_factory.mktemp("seeded_grid")
    experiments.run_grid(config, str(workdir), cells=CELLS)
    return config, workdir


@pytest.mark.parametrize("cell", CELLS, ids=lambda c: "_".join(c))
def test_a_cell_with_two_seeds(seeded_grid, cell, capsys):
    config, workdir = seeded_grid
    folder = workdir / "_".join(cell)
    results = json.loads((folder / "results.json").read_text())
    assert results["seeds"] == list(SEEDS)
    members = [json.loads((folder / f"seed_{s}" / "results.json").read_text()) for s in SEEDS]
    tables = [clip_table.read(str(folder / f"seed_{s}" / clip_table.FILE_NAME)) for s in SEEDS]
    assert tables[0].clip_ids == tables[1].clip_ids  # one split for both seeds
    accuracies = [m["test"]["clips"]["accuracy"] for m in members]
    clips = results["test"]["clips"]
    assert clips["per_seed"]["accuracy"] == accuracies
    np.testing.assert_allclose([clips["accuracy"], clips["accuracy_std"]],
                               [np.mean(accuracies), np.std(accuracies)])
    mean = (tables[0].probabilities + tables[1].probabilities) / 2
    assert results["test"]["seed_ensemble"]["accuracy"] == accuracy_score(
        tables[0].labels, mean.argmax(1))
    np.testing.assert_allclose(clip_table.read(str(folder / clip_table.FILE_NAME))
                               .probabilities, mean)
    # The same cell again: nothing is retrained.
    capsys.readouterr()
    experiments.run(base.cell(model=cell[0], feature=cell[1], config=config), str(folder))
    assert "=== seed" not in capsys.readouterr().out


def test_a_grid_with_seeds_reports_mean_and_std_and_compares_the_seed_ensembles(seeded_grid):
    _, workdir = seeded_grid
    rows = {r["feature"]: r for r in csv.DictReader(open(workdir / "results.csv"))}
    table = (workdir / "results.md").read_text()
    ensembles = {}
    for model, feature in CELLS:
        cell = workdir / f"{model}_{feature}"
        seeds = [json.loads((cell / f"seed_{s}" / "results.json").read_text()) for s in SEEDS]
        accuracies = [s["test"]["clips"]["accuracy"] for s in seeds]
        assert float(rows[feature]["accuracy"]) == pytest.approx(np.mean(accuracies))
        assert float(rows[feature]["accuracy_std"]) == pytest.approx(np.std(accuracies))
        assert f"{np.mean(accuracies):.4f} ± {np.std(accuracies):.4f}" in table
        ensembles[feature] = clip_table.read(str(cell / clip_table.FILE_NAME))
    # The pair is tested on the seed ensembles' predictions (the cells' own csv files).
    pair = list(csv.DictReader(open(workdir / "comparisons.csv")))[0]
    right = {f: t.probabilities.argmax(1) == t.labels for f, t in ensembles.items()}
    assert float(pair["delta_accuracy"]) == pytest.approx(right["mfcc"].mean()
                                                          - right["mel"].mean())
    assert int(pair["a_only"]) == int(np.sum(right["mel"] & ~right["mfcc"]))
    assert int(pair["b_only"]) == int(np.sum(right["mfcc"] & ~right["mel"]))

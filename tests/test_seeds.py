"""config.seeds: one cell trained with several seeds on one split, each in its own
folder, resumable, summarised (mean ± std against numpy) with the seed ensemble (against
the members' probabilities averaged by hand)."""

import json

import numpy as np
from sklearn.metrics import accuracy_score

from configs import base
from jaxgenre import clip_table, experiments
from tests.test_sample_cnn import tiny


def test_a_cell_with_two_seeds(tmp_path, capsys):
    config = tiny(base.cell(model="spectral_cnn", feature="mel"))
    config.seed, config.seeds = 3, 2
    experiments.run(config, str(tmp_path))
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["seeds"] == [3, 4]
    members = [json.loads((tmp_path / f"seed_{s}" / "results.json").read_text())
               for s in (3, 4)]
    tables = [clip_table.read(str(tmp_path / f"seed_{s}" / clip_table.FILE_NAME))
              for s in (3, 4)]
    assert tables[0].clip_ids == tables[1].clip_ids  # one split for both seeds
    accuracies = [m["test"]["clips"]["accuracy"] for m in members]
    clips = results["test"]["clips"]
    assert clips["per_seed"]["accuracy"] == accuracies
    np.testing.assert_allclose([clips["accuracy"], clips["accuracy_std"]],
                               [np.mean(accuracies), np.std(accuracies)])
    mean = (tables[0].probabilities + tables[1].probabilities) / 2
    assert results["test"]["seed_ensemble"]["accuracy"] == accuracy_score(
        tables[0].labels, mean.argmax(1))
    np.testing.assert_allclose(clip_table.read(str(tmp_path / clip_table.FILE_NAME))
                               .probabilities, mean)
    # Again: nothing is retrained.
    capsys.readouterr()
    experiments.run(config, str(tmp_path))
    assert "=== seed" not in capsys.readouterr().out

#!/bin/bash
# Model selection rules on the real-music development set (issue 22): SpectralCNN, the study
# recipe and the recipe, select = accuracy | accuracy_loss | last, one seed. Tuning only:
# ROOT is a make_devset.sh folder (never in tests or CI); OUT gets the run folders.
cd "$(dirname "$0")/.."
ROOT=${ROOT:?set ROOT to a make_devset.sh folder}; OUT=${OUT:-runs/selection}; mkdir -p "$OUT"
for cfg in spectralcnn_mel recipe_spectralcnn_mel; do
  for sel in accuracy accuracy_loss last; do
    /usr/bin/time -f "%e s" .venv/bin/python launch.py --config=configs/$cfg.py --workdir=$OUT/${cfg}_$sel \
      --config.data.source=folder --config.data.root=$ROOT "--config.data.fractions=(0.5, 0.1, 0.4)" \
      --config.train.epochs=15 --config.data.cache_dir=$OUT/cache --config.train.select=$sel \
      --config.eval.plots=False > $OUT/${cfg}_$sel.log 2>&1
    echo "$cfg $sel $(tail -1 $OUT/${cfg}_$sel.log) $(grep -m1 '  accuracy' $OUT/${cfg}_$sel.log)"
  done
done

#!/bin/bash
# Issue 22's measurement, one model: the single-switch ablation (benchmarks/ablation.py
# --rows=single) on the real-music development set's two variants and on the hard synthetic
# set, several seeds each. Tuning only: NATURAL and PIANO are make_devset.sh folders (never in
# tests or CI). About 5 min a SpectralCNN run on a 2-core CPU, 10 rows x seeds per set.
#   NATURAL=DIR PIANO=DIR [MODEL=spectral_cnn] [SEEDS=0,1,2] [OUT=runs/ablation_devset] \
#     bash benchmarks/ablation_devset.sh
cd "$(dirname "$0")/.."
MODEL=${MODEL:-spectral_cnn}; SEEDS=${SEEDS:-0,1,2}; OUT=${OUT:-runs/ablation_devset}
NATURAL=${NATURAL:?set NATURAL to make_devset.sh DIR}; PIANO=${PIANO:?set PIANO to its PIANO_DIR}
mkdir -p "$OUT"
for set in natural piano hard; do
  case $set in natural) data="--root=$NATURAL";; piano) data="--root=$PIANO";; hard) data="";; esac
  .venv/bin/python benchmarks/ablation.py --rows=single --model="$MODEL" --seeds="$SEEDS" \
    --epochs=15 $data --workdir="$OUT/$set" > "$OUT/$set.log" 2>&1
  echo "== $set: exit $?"; tail -30 "$OUT/$set/$MODEL/ablation_single.md" 2>/dev/null
done

#!/usr/bin/env bash
# The recipe's ablation (benchmarks/ablation.py) on a lent GPU machine, every row at
# once: the shared feature cache is built first, then one process per row trains that
# row's seeds one after another (the GPU is far from full with one small model; the
# host's cores compile in parallel). The image has JAX, flax, optax, orbax; librosa,
# soundfile and ml-collections travel as wheels (BUILD_NOTES.md, "GPU figures").
#
#   bash benchmarks/gpu_ablation.sh OUTDIR [MODEL] [ROWS] [SECONDS] [ablation.py options]
#
# OUTDIR gets the rows' logs (logs.txt), their wall times (times.txt) and runs.tgz: every run folder
# without its checkpoints, laid out as ablation.py's own workdir (<model>/row<r>_seed<k>/),
# so `python benchmarks/ablation.py --model=MODEL --workdir=DIR` over the unpacked
# tarball trains nothing and prints the table. SECONDS (default 420) bounds each row's
# process, so that whatever finished still comes back.
set -uo pipefail
out=${1:?OUTDIR}
model=${2:-resnet18}
rows=${3:-0,1,2,3,4,5,6}
seconds=${4:-420}
shift $(( $# < 4 ? $# : 4 ))
extra=("$@")  # anything after SECONDS goes to ablation.py as is (e.g. --epochs=2)
work=${GPU_ABLATION_WORK:-/tmp/gpu_ablation}
mkdir -p "$out" "$work/shared"
export PYTHONUNBUFFERED=1 XLA_PYTHON_CLIENT_PREALLOCATE=false
export JAX_COMPILATION_CACHE_DIR=$work/jax_cache  # the seeds of one row compile once
{
  nvidia-smi -L 2>/dev/null || echo "no nvidia-smi"
  python3 -c "import jax; print('jax', jax.__version__, jax.devices())"
} 2>&1 | tee "$out/env.txt"
start=$(date +%s)
python3 benchmarks/ablation.py --model="$model" --workdir="$work/shared" --prepare_only "${extra[@]}" \
    2>&1 | tr '\r' '\n' | tail -5 | tee "$out/prepare.log" || { echo "cache failed"; exit 1; }
echo "cache built in $(( $(date +%s) - start )) s" | tee -a "$out/times.txt"
for row in ${rows//,/ }; do
  mkdir -p "$work/row$row"
  ln -sfn "$work/shared/cache" "$work/row$row/cache"
  (
    t0=$(date +%s)
    timeout "$seconds" python3 benchmarks/ablation.py --model="$model" --only="$row" "${extra[@]}" \
        --workdir="$work/row$row" > "$work/row$row.log" 2>&1
    echo "row $row: exit $? after $(( $(date +%s) - t0 )) s" >> "$out/times.txt"
  ) &
done
wait
echo "all rows done $(( $(date +%s) - start )) s after the start" >> "$out/times.txt"
cat "$out/times.txt"
mkdir -p "$work/gathered/$model"
for row in ${rows//,/ }; do
  echo "== row $row ==" >> "$out/logs.txt"
  tr '\r' '\n' < "$work/row$row.log" | grep -v -E '^\s*$' | tail -30 >> "$out/logs.txt"
  for run in "$work/row$row/$model"/*_seed*; do
    [ -f "$run/results.json" ] || continue  # unfinished: ablation.py would retrain it
    mkdir -p "$work/gathered/$model/$(basename "$run")"
    find "$run" -maxdepth 1 -type f -exec cp {} "$work/gathered/$model/$(basename "$run")/" \;
  done
done
tar czf "$out/runs.tgz" -C "$work/gathered" .
ls -la "$out"

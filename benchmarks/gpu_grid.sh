#!/usr/bin/env bash
# The study grid on a lent GPU machine, every cell at once: one launch.py process per
# cell (the cells of one feature share its cache; whichever process gets there first
# writes it, entries are renamed into place so a race only repeats work). Each process
# runs exactly what `configs/study_grid.py` runs for that cell (`configs/base.cell`
# sets only model.name and features.kind).
#
#   bash benchmarks/gpu_grid.sh OUTDIR SECONDS [launch.py overrides...]
#
# OUTDIR gets logs.txt (each cell's last lines), times.txt (each cell's wall time) and
# runs.tgz: every cell folder without its checkpoints and figures, laid out as the grid's workdir,
# so `launch.py --config=configs/study_grid.py --workdir=DIR <the same overrides>` over
# the unpacked tarball trains nothing and writes results.md, the comparisons and the
# figures. SECONDS bounds each cell's process, so that whatever finished comes back.
# GPU_GRID_CELLS="spectral_cnn:mel resnet18:mel" picks cells (default: the grid's).
set -uo pipefail
out=${1:?OUTDIR}
seconds=${2:?SECONDS}
shift 2
overrides=("$@")
work=${GPU_GRID_WORK:-/tmp/gpu_grid}
mkdir -p "$out" "$work/grid"
export PYTHONUNBUFFERED=1 XLA_PYTHON_CLIENT_PREALLOCATE=false
{
  nvidia-smi -L 2>/dev/null || echo "no nvidia-smi"
  python3 -c "import jax; print('jax', jax.__version__, jax.devices())"
} 2>&1 | tee "$out/env.txt"
cells=${GPU_GRID_CELLS:-$(python3 -c "from jaxgenre import experiments
print(' '.join(f'{m}:{f}' for m, f in experiments.grid_cells()))")}
echo "cells: $cells" | tee "$out/times.txt"
start=$(date +%s)
for cell in $cells; do
  model=${cell%%:*} feature=${cell##*:}
  (
    t0=$(date +%s)
    timeout "$seconds" python3 launch.py --config=configs/study_grid.py --config.grid=False \
        --config.model.name="$model" --config.features.kind="$feature" \
        --config.data.cache_dir="$work/cache" --workdir="$work/grid/${model}_${feature}" \
        "${overrides[@]}" > "$work/${model}_${feature}.log" 2>&1
    echo "${model}_${feature}: exit $? after $(( $(date +%s) - t0 )) s" >> "$out/times.txt"
  ) &
done
wait
echo "all cells done $(( $(date +%s) - start )) s after the start" >> "$out/times.txt"
cat "$out/times.txt"
mkdir -p "$work/gathered"
for cell in $cells; do
  name=${cell%%:*}_${cell##*:}
  echo "== $name ==" >> "$out/logs.txt"
  tr '\r' '\n' < "$work/$name.log" | grep -v -E '^\s*$' | tail -25 >> "$out/logs.txt"
  [ -f "$work/grid/$name/results.json" ] || continue  # unfinished: the grid would retrain it
  mkdir -p "$work/gathered/$name"
  find "$work/grid/$name" -maxdepth 1 -type f ! -name "*.png" -exec cp {} "$work/gathered/$name/" \;
done
tar czf "$out/runs.tgz" -C "$work/gathered" .
ls -la "$out"

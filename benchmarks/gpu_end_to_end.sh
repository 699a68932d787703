#!/usr/bin/env bash
# Issue 25's figures on a lent GPU, as one prepared script (see BUILD_NOTES "Training at
# the accelerator's speed"; the wheels the device image lacks travel as in gpu_checks.sh):
#
#   bash benchmarks/gpu_end_to_end.sh OUTDIR
#
# 1. the card and the versions;
# 2. benchmarks/end_to_end.py at GTZAN size (1000 clips, 128 mel bands, batch 32),
#    ResNet-18 in bfloat16: the default row (resident "auto": on the GPU), streamed and
#    resident at 1 and 8 steps per dispatch, 2 seeds as one program, the compilation
#    cache cold and warm, and the last line `input overhead R (epoch X s / step-only Y s)`;
# 3. the grid's wall time at GTZAN size, estimated per cell from measured compile and
#    step times (--grid), EfficientNetV2-S included.
set -uo pipefail
out=${1:?OUTDIR}
mkdir -p "$out"
export PYTHONUNBUFFERED=1
{
  nvidia-smi -L
  python3 -c "import jax, flax; print('jax', jax.__version__, jax.devices(), 'flax', flax.__version__)"
} 2>&1 | tee "$out/card.txt"
python3 benchmarks/end_to_end.py --gtzan --model=resnet18 --dtype=bfloat16 --epochs=2 \
    2>&1 | tee "$out/end_to_end.txt"
python3 benchmarks/end_to_end.py --gtzan --grid --dtype=bfloat16 --epochs=1 --seeds=0 \
    2>&1 | tee "$out/grid.txt"

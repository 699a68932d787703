#!/usr/bin/env bash
# The GPU checks BUILD_NOTES lists as left open, as one script for a lent GPU machine
# (its image has JAX, flax, optax, orbax, torch; librosa, soundfile and ml-collections
# travel as wheels in .whl/, see the device notes in BUILD_NOTES.md "GPU figures").
#
#   bash benchmarks/gpu_checks.sh OUTDIR [GRID_SECONDS]
#
# 1. train step: ResNet-18 at 224x224, batch 256, bfloat16 and float32, with MFU
#    (989 TFLOP/s: the H100/H200 SXM dense bfloat16 peak), beside torch on the same GPU;
#    EfficientNetV2-S at the same size in bfloat16.
# 2. features vs librosa (librosa on the host's cores, jaxgenre on the GPU).
# 3. the study grid at GTZAN size (1000 synthetic 30 s clips), 1 epoch per cell, for as
#    long as GRID_SECONDS allows: per-cell wall times from the log's time stamps (line
#    buffered: a buffered `tr` stamps a whole cell with one time).
set -uo pipefail
out=${1:?OUTDIR}
grid_seconds=${2:-240}
mkdir -p "$out"
export PYTHONUNBUFFERED=1 XLA_PYTHON_CLIENT_MEM_FRACTION=0.6
stamp() { while IFS= read -r line; do printf '%(%s)T %s\n' -1 "$line"; done; }
{
  nvidia-smi -L
  python3 -c "import jax, flax, optax, torch; print('jax', jax.__version__, jax.devices(), 'flax', flax.__version__, 'optax', optax.__version__, 'torch', torch.__version__)"
} 2>&1 | tee "$out/env.txt"
python3 benchmarks/train_step.py --models=resnet18 --sizes=224x224 --batch=256 \
    --dtype=bfloat16 --steps=20 --peak_tflops=989 2>&1 | tee "$out/train_step.txt"
python3 benchmarks/train_step.py --models=resnet18 --sizes=224x224 --batch=256 \
    --dtype=float32 --steps=20 --peak_tflops=989 2>&1 | tee -a "$out/train_step.txt"
python3 benchmarks/train_step.py --models=efficientnet_v2_s --sizes=224x224 --batch=256 \
    --dtype=bfloat16 --steps=10 --peak_tflops=989 2>&1 | tee -a "$out/train_step.txt"
python3 benchmarks/features.py --clips=64 --repeats=3 2>&1 | tee "$out/features.txt"
timeout "$grid_seconds" python3 launch.py --config=configs/study_grid.py --workdir=/tmp/grid \
    --config.data.synthetic.clips_per_class=100 --config.train.epochs=1 \
    --config.data.cache_dir=/tmp/grid_cache --config.eval.plots=False 2>&1 \
    | stdbuf -oL tr '\r' '\n' | grep --line-buffered -v -E '^\s*$|Delay kernel' | stamp \
    > "$out/grid.txt"
tail -40 "$out/grid.txt"

#!/usr/bin/env bash
# Everything that needs a CUDA GPU, in one run of under 8 minutes on one H100/H200:
#   1. the CUDA tests (tests marked `cuda`: each stage with bf16 and with fp16 + GradScaler, channels_last,
#      --compile, the fp32 head under autocast, CUDA vs CPU predictions, torchrun on 2 GPUs where there are 2);
#   2. benchmarks/bench_training.py at the paper's sizes: images/s per stage (fp32, bf16, fp16) and the peak GPU
#      memory of stage 3 at batch 16.
# Usage: bash benchmarks/gpu_check.sh [IMAGES_DIR]   (default: the real ChestX-ray14 sample beside the repository,
# else 64 synthetic 1024² images made here). Output: the tests' summary, then the benchmark's table.
set -euo pipefail
cd "$(dirname "$0")/.."
source examples/_venv.sh
PY=.venv/bin/python
START=$SECONDS
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
"$PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'gpus', torch.cuda.device_count())"
"$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'no CUDA GPU visible to torch')"

echo "== CUDA tests"
"$PY" -m pytest -q -m cuda tests/training/test_cuda.py -p no:cacheprovider --timeout 300 -rs

echo "== training throughput (bench_training.py)"
IMAGES="${1:-../shared/nih-cxr14/images}"
if [ ! -d "$IMAGES" ]; then
  IMAGES="$(mktemp -d)/synth"
  "$CXR" synth "$IMAGES" --n 64 --size 1024 --seed 0 > /dev/null
fi
WORKERS=$(( $(nproc) > 8 ? 8 : $(nproc) - 1 ))
"$PY" benchmarks/bench_training.py --device cuda --batch 16 --steps 10 --workers "$WORKERS" --images "$IMAGES"
echo "gpu_check done in $(( SECONDS - START )) s"

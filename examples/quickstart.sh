#!/usr/bin/env bash
# cxrtool's main job, end to end, on a synthetic dataset it generates: split, check, the three training stages and
# the FMix ablation, evaluation, and Table 1 with statistics. 191 s on a 2-core CPU after the first install.
# Usage: bash examples/quickstart.sh [OUT_DIR]   (default: ./quickstart-out)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/_venv.sh"
OUT="${1:-$ROOT/quickstart-out}"
mkdir -p "$OUT"
TOTAL_START=$(date +%s%N)
seconds_since() { local ms=$(( ($(date +%s%N) - $1) / 1000000 )); printf "%d.%d" $((ms / 1000)) $((ms % 1000 / 100)); }

step() {  # step NAME COMMAND...: run it and print how long it took (on stderr)
  local name=$1 start
  shift
  start=$(date +%s%N)
  echo "== $name: $*" >&2
  "$@"
  echo "== $name took $(seconds_since "$start") s" >&2
}
check_ok_or_3() { "$@" || [ $? -eq 3 ]; }  # `check` exits 3 when it finds something to report

D="$OUT/data" R="$OUT/runs" E="$OUT/evals"
COMMON=(--splits "$OUT/splits.csv" --images "$D" --workers 0 --seed 0 --overwrite)  # small images: decode in-process
# --no-pretrained: no ImageNet download in a quick start (and none is possible offline)

step synth "$CXR" synth "$D" --n 600 --size 160 --seed 3 --overwrite
step split "$CXR" split "$D" --images "$D" --only-present --out "$OUT/splits.csv" --overwrite
step check check_ok_or_3 "$CXR" check "$D" --images "$D"
# Stage 1 (D121 BL5) and the FMix ablation: DenseNet121 on 32-px crops of 36-px resized images.
step stage1-bl5 "$CXR" train-classifier "${COMMON[@]}" --no-pretrained --out "$R/d121" --resize 36 --crop 32 --epochs 4 --batch-size 32
step stage1-fmix "$CXR" train-classifier "${COMMON[@]}" --no-pretrained --out "$R/fmix" --augment fmix --resize 36 --crop 32 \
  --epochs 4 --batch-size 32
# Stage 2: the autoencoder on random full-resolution patches.
step stage2-ae "$CXR" train-ae "${COMMON[@]}" --out "$R/ae" --patch-size 32 --patches-per-image 4 \
  --epochs 2 --batch-size 32
# Stage 3: both, end to end, on 128-px crops (so the classifier sees a 32-px latent, as in stage 1).
step stage3-joint "$CXR" train-joint "${COMMON[@]}" --no-pretrained --classifier "$R/d121" --autoencoder "$R/ae" --out "$R/aecnn" \
  --crop 128 --epochs 2 --batch-size 16
for run in d121 fmix aecnn; do
  step "evaluate-$run" "$CXR" evaluate --ckpt "$R/$run" --splits "$OUT/splits.csv" --images "$D" --out "$E/$run" \
    --bootstrap 500 --workers 0 --overwrite
done
step compare "$CXR" compare "$E/d121" "$E/aecnn" "$E/fmix" --names D121,AECNN,FMix --reference all \
  --out "$OUT/table1.md" --overwrite

echo "== quickstart finished in $(seconds_since "$TOTAL_START") s; outputs in $OUT" >&2

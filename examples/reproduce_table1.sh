#!/usr/bin/env bash
# The paper's full protocol on the real ChestX-ray14 with the paper's settings (Ranjan et al., ICVGIP 2018, as
# reproduced in the report this project follows): split, prepare, stages 1-3, the FMix ablation, evaluation of each
# on the official test list, and Table 1 with the published columns beside it; then ChestX-ray8's box benchmark
# (`localize`) for D121 and AECNN of the first seed, compared on the same boxes (`localization.csv`).
#
#   bash examples/reproduce_table1.sh DATA_DIR [--out DIR] [--seeds "0 1 2"] [--dry-run]
#
# DATA_DIR holds the metadata (Data_Entry_2017_v2020.csv or Data_Entry_2017.csv), the two official lists,
# BBox_List_2017.csv (localization is skipped without it), and the images in any layout. --dry-run prints the commands without running them. Set LAUNCH to run training on several
# GPUs, e.g. LAUNCH="torchrun --nproc_per_node=8" (batch 16 is per process; keep 16 in all with --batch-size 2).
# A rerun continues where the last one stopped: finished steps are skipped or resumed (--resume), not redone.
# Set CXR to another cxrtool executable (default: this clone's .venv/bin/cxrtool, installed on first use).
#
# Expected times: not yet measured on a GPU for the full dataset. The paper's reproduction reports ~3.5 h for stage 1
# on Colab and ~6 h for stage 2 on Kaggle; benchmarks/bench_training.py measures images/s per stage on your GPU, and
# the epoch time is 76,524 training images divided by that rate.
set -euo pipefail

DATA="" OUT="table1-run" SEEDS="0" DRY=0
while [ $# -gt 0 ]; do
  case "$1" in
    --out) OUT="$2"; shift 2 ;;
    --seeds) SEEDS="$2"; shift 2 ;;
    --dry-run) DRY=1; shift ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    -*) echo "unknown option $1" >&2; exit 2 ;;
    *) DATA="$1"; shift ;;
  esac
done
[ -n "$DATA" ] || { echo "usage: $0 DATA_DIR [--out DIR] [--seeds \"0 1 2\"] [--dry-run]" >&2; exit 2; }

if [ -z "${CXR:-}" ]; then
  if [ "$DRY" = 1 ]; then CXR=cxrtool; else source "$(dirname "${BASH_SOURCE[0]}")/_venv.sh"; fi
fi
LAUNCH="${LAUNCH:-}"
run() {  # print the command; run it unless --dry-run
  echo "$*"
  [ "$DRY" = 1 ] || "$@"
}
check_ok_or_3() { "$@" || [ $? -eq 3 ]; }
train() {  # train SUBCOMMAND RUN ARGS...: start the run, or continue it when a rerun finds it there
  local cmd=$1 dir=$2
  shift 2
  if [ -f "$dir/config.json" ]; then run $LAUNCH "$CXR" "$cmd" --resume "$dir"; else run $LAUNCH "$CXR" "$cmd" --out "$dir" "$@"; fi
}

CACHE="$OUT/cache256"
run "$CXR" split "$DATA" --images "$DATA" --out "$OUT/splits.csv" --overwrite
run check_ok_or_3 "$CXR" check "$DATA" --images "$DATA" --size 1024
run "$CXR" prepare "$DATA" --images "$DATA" --size 256 --out "$CACHE"

d121=() aecnn=() fmix=()
for seed in $SEEDS; do
  R="$OUT/runs/seed$seed" E="$OUT/evals/seed$seed"
  # Stage 1, "D121 BL5": ImageNet DenseNet121, resize 256 -> RandomCrop 224, flip, rotation 5, contrast 0.25.
  train train-classifier "$R/d121" --splits "$OUT/splits.csv" --images "$CACHE" \
    --resize 256 --crop 224 --epochs 20 --batch-size 16 --lr 1e-4 --seed "$seed"
  # The FMix ablation: stage 1 with FMix (alpha 1, decay 3) instead of flip/rotation/contrast.
  train train-classifier "$R/fmix" --splits "$OUT/splits.csv" --images "$CACHE" \
    --augment fmix --resize 256 --crop 224 --epochs 20 --batch-size 16 --lr 1e-4 --seed "$seed"
  # Stage 2: the autoencoder on random 128x128 full-resolution patches (MSE).
  train train-ae "$R/ae" --splits "$OUT/splits.csv" --images "$DATA" \
    --patch-size 128 --patches-per-image 16 --epochs 20 --batch-size 16 --lr 1e-4 --seed "$seed"
  # Stage 3: the AECNN end to end on 896 crops of the full images, L = 0.9 BCE + 0.1 MSE.
  train train-joint "$R/aecnn" --splits "$OUT/splits.csv" --images "$DATA" \
    --classifier "$R/d121" --autoencoder "$R/ae" --crop 896 --lam 0.9 --epochs 20 --batch-size 16 --lr 1e-4 \
    --seed "$seed"
  # Evaluation on the official test list (25,596 images), each at its own geometry.
  run "$CXR" evaluate --ckpt "$R/d121" --splits "$OUT/splits.csv" --images "$CACHE" --out "$E/d121" --overwrite
  run "$CXR" evaluate --ckpt "$R/fmix" --splits "$OUT/splits.csv" --images "$CACHE" --out "$E/fmix" --overwrite
  run "$CXR" evaluate --ckpt "$R/aecnn" --splits "$OUT/splits.csv" --images "$DATA" --out "$E/aecnn" --overwrite
  d121+=("$E/d121") aecnn+=("$E/aecnn") fmix+=("$E/fmix")
done

join() { local IFS=,; echo "$*"; }
if [ "$(echo $SEEDS | wc -w)" -gt 1 ]; then
  run "$CXR" compare --group "D121=$(join "${d121[@]}")" --group "AECNN=$(join "${aecnn[@]}")" \
    --group "FMix=$(join "${fmix[@]}")" --reference all --out "$OUT/table1.csv" --overwrite
else
  run "$CXR" compare "${d121[0]}" "${aecnn[0]}" "${fmix[0]}" --names D121,AECNN,FMix --reference all \
    --out "$OUT/table1.csv" --overwrite
fi

# Where do the models look? ChestX-ray8's weakly supervised localization on the test split's radiologist boxes, for
# the baseline and the compressed-domain model of the first seed, then their pointing compared box by box (McNemar).
BBOX=""
for f in "$DATA"/BBox_List_2017.csv "$DATA"/metadata/BBox_List_2017.csv "$DATA"/BBox_List_2017.csv.gz \
  "$DATA"/metadata/BBox_List_2017.csv.gz; do
  if [ -f "$f" ]; then BBOX="$f"; break; fi
done
if [ -z "$BBOX" ] && [ "$DRY" = 1 ]; then BBOX="$DATA/BBox_List_2017.csv"; fi
if [ -n "$BBOX" ]; then
  seed="${SEEDS%% *}"
  R="$OUT/runs/seed$seed" E="$OUT/evals/seed$seed"
  run check_ok_or_3 "$CXR" localize --ckpt "$R/d121" --bbox "$BBOX" --images "$DATA" --splits "$OUT/splits.csv" \
    --out "$E/d121-loc" --overwrite
  run check_ok_or_3 "$CXR" localize --ckpt "$R/aecnn" --bbox "$BBOX" --images "$DATA" --splits "$OUT/splits.csv" \
    --out "$E/aecnn-loc" --overwrite
  run "$CXR" compare "$E/d121-loc" "$E/aecnn-loc" --names D121,AECNN --out "$OUT/localization.csv" --overwrite
else
  echo "no BBox_List_2017.csv in $DATA or $DATA/metadata: localization skipped" >&2
fi

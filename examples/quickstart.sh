#!/usr/bin/env bash
# cxrtool's main job, end to end, on a synthetic dataset it generates: about a minute on a 2-core laptop CPU
# after the first install. Usage: bash examples/quickstart.sh [OUT_DIR]   (default: ./quickstart-out)
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

step synth "$CXR" synth "$OUT/data" --n 600 --size 128 --seed 3 --overwrite
step split "$CXR" split "$OUT/data" --images "$OUT/data" --only-present --out "$OUT/splits.csv" --overwrite
step check check_ok_or_3 "$CXR" check "$OUT/data" --images "$OUT/data"

echo "== quickstart finished in $(seconds_since "$TOTAL_START") s; outputs in $OUT" >&2

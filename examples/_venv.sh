# Sourced by the example scripts and .ci/run: make (or reuse) ./.venv and install cxrtool into it.
# Only .venv/bin/... is called afterwards, so no activated environment is needed or used.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-python3}"
# torch 2.14.1 / torchvision 0.29.1 are the wheels cxrtool is tested with (built for Python 3.11); override with
# e.g. CXRTOOL_TORCH="torch torchvision --index-url https://download.pytorch.org/whl/cpu" elsewhere.
CXRTOOL_TORCH="${CXRTOOL_TORCH:-torch==2.14.1 torchvision==0.29.1}"
if [ ! -x "$ROOT/.venv/bin/python" ]; then
  echo "creating $ROOT/.venv with $("$PYTHON" --version 2>&1)" >&2
  "$PYTHON" -m venv "$ROOT/.venv"
fi
if ! "$ROOT/.venv/bin/python" -c "import torch, torchvision" 2>/dev/null; then
  echo "installing $CXRTOOL_TORCH (first run only)" >&2
  # shellcheck disable=SC2086
  "$ROOT/.venv/bin/pip" install -q --disable-pip-version-check $CXRTOOL_TORCH 2> >(grep -v "^WARNING: Location" >&2)
fi
"$ROOT/.venv/bin/pip" install -q --disable-pip-version-check -e "$ROOT[dev]" 2> >(grep -v "^WARNING: Location" >&2)
CXR="$ROOT/.venv/bin/cxrtool"

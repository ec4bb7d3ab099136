#!/usr/bin/env bash
# Install the studio into .venv and fetch the offline assets into .cache (idempotent).
#   bash scripts/setup.sh          runtime only
#   bash scripts/setup.sh --dev    plus the test tools and Debian's chromium for browser tests
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
step() { echo "==> [$1/6] $2"; }
pip() { .venv/bin/python -m pip "$@"; }

step 1 "virtual environment in .venv"
[ -x .venv/bin/python ] || "$PY" -m venv .venv
pip install -q --upgrade pip
REQ=requirements.txt
[ "${1:-}" = "--dev" ] && REQ=requirements-dev.txt

step 2 "torch"
CONSTRAINTS=$(mktemp)
trap 'rm -f "$CONSTRAINTS"' EXIT
if ! command -v nvidia-smi >/dev/null 2>&1; then
  # No GPU: prefer a CPU build of torch when the machine offers one (a CUDA build is several GB),
  # then hold whatever torch is installed: unsloth asks for the newest torchvision, which asks for
  # the newest torch, and pip would replace the CPU build by a CUDA one to satisfy it.
  .venv/bin/python -c "import torch" 2>/dev/null || pip install -q "torch==2.13.0" || true
  TORCH=$(.venv/bin/python -c "import torch; print(torch.__version__)" 2>/dev/null || true)
  [ -n "$TORCH" ] && echo "torch==$TORCH" > "$CONSTRAINTS" && echo "    keeping torch $TORCH"
fi

step 3 "Python packages from $REQ (a few minutes on a first run)"
pip install -q -r "$REQ" -c "$CONSTRAINTS"
# unsloth pulls torchvision; a torchvision built for another torch breaks `import peft` on CPU
# machines, and only the GPU engine needs it.
if ! .venv/bin/python -c "import torchvision" >/dev/null 2>&1; then
  pip uninstall -y -q torchvision || true
fi

step 4 "chromium for the browser tests"
if [ "${1:-}" = "--dev" ] && ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  # Wait for another apt or dpkg run (an unattended upgrade) instead of failing on its lock; a
  # failure here only costs the browser tests, so the assets below are fetched regardless.
  APT=(-o DPkg::Lock::Timeout=600 -qq)
  { $SUDO apt-get "${APT[@]}" update && $SUDO apt-get "${APT[@]}" install -y chromium >/dev/null; } ||
    echo "    warning: chromium was not installed (apt-get failed); the browser tests will be skipped"
else
  echo "    skipped (not --dev, or already installed)"
fi

step 5 "offline model, tokenizers and data into .cache"
.venv/bin/python scripts/fetch_assets.py

step 6 "done"
echo "Start the studio with: .venv/bin/python app.py"
echo "then open http://127.0.0.1:7860"

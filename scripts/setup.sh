#!/usr/bin/env bash
# Install the studio into .venv and fetch the offline assets into .cache (idempotent).
#   bash scripts/setup.sh          runtime only
#   bash scripts/setup.sh --dev    plus the test tools and Debian's chromium for browser tests
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
pip() { .venv/bin/python -m pip "$@"; }
pip install -q --upgrade pip
REQ=requirements.txt
[ "${1:-}" = "--dev" ] && REQ=requirements-dev.txt
if ! command -v nvidia-smi >/dev/null 2>&1 && ! .venv/bin/python -c "import torch" 2>/dev/null; then
  # No GPU: prefer a CPU build of torch when the machine offers one (a CUDA build is several GB).
  pip install -q "torch==2.13.0" || true
fi
pip install -q -r "$REQ"
# unsloth pulls torchvision; a torchvision built for another torch breaks `import peft` on CPU
# machines, and only the GPU engine needs it.
if ! .venv/bin/python -c "import torchvision" >/dev/null 2>&1; then
  pip uninstall -y -q torchvision || true
fi
if [ "${1:-}" = "--dev" ] && ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq && $SUDO apt-get install -y -qq chromium >/dev/null
fi
.venv/bin/python scripts/fetch_assets.py

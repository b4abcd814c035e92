#!/usr/bin/env bash
# Create .venv and install KennelGate with the model-building, detector and test extras (offline-capable).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
# torch 2.14.1 + torchvision 0.29.1 are the pair that import together here (timm/open_clip need both).
.venv/bin/python -m pip install -q -e '.[export,eval,openvino,detector,test]'

#!/usr/bin/env bash
# The device command: run from the repository root on a lent GPU machine, with .gpubundle
# carried (see scripts/gpu/README.md). Installs the bundled wheels, then device_train.py.
set -uo pipefail
B=${BUNDLE:-.gpubundle}
OUT=${OUT:-/tmp/asr-gpu-out}
mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site "$B"/wheels/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 OUT
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 scripts/gpu/device_train.py --bundle "$B" "$@" 2>&1 | tee "$OUT/device.log"

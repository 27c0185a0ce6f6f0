#!/usr/bin/env bash
# Train (or resume) both shipped models on the synthetic corpus, side by side, one CPU
# thread each (two single-thread jobs use 2 cores better than one 2-thread job).
# Resumable: re-run the same command; each run continues from data/runs/<kind>/last.pt.
#   scripts/train-models.sh [MAX_MINUTES]
# Logs: data/logs/train-{streaming,offline}.log. Progress: data/runs/<kind>/log.jsonl.
set -euo pipefail
cd "$(dirname "$0")/.."
minutes=${1:-0}
mkdir -p data/logs
common=(--train data/corpus/train.jsonl --dev data/corpus/dev.jsonl --steps 40000
        --batch-frames 12000 --threads 1 --eval-every 500 --save-every 200 --max-minutes "$minutes")
# Cache features once (both cores), so the two jobs don't race on the cache.
.venv/bin/python -c "
from asr.data import load_feature_set
for m in ('data/corpus/train.jsonl', 'data/corpus/dev.jsonl'):
    load_feature_set(m, jobs=2)
"
export OMP_NUM_THREADS=1
nohup .venv/bin/asr train --kind streaming --out data/runs/streaming "${common[@]}" --lr 1e-3 \
  >> data/logs/train-streaming.log 2>&1 &
nohup .venv/bin/asr train --kind offline --out data/runs/offline "${common[@]}" \
  >> data/logs/train-offline.log 2>&1 &
echo "training in the background: tail -f data/logs/train-{streaming,offline}.log"

#!/usr/bin/env bash
# Train (or resume) both shipped models on the synthetic corpus, side by side, one CPU
# thread each (two single-thread jobs use 2 cores better than one 2-thread job).
# Resumable: re-run the same command; each run continues exactly from data/runs/<kind>/last.pt,
# or, on a fresh machine (no last.pt), warm-starts from the shipped models/<kind>/model.pt.
# A fresh machine first needs the corpus: make corpus (about 30 min).
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
# A new machine has no data/runs/*/last.pt: continue from the shipped checkpoints instead.
init() { [ -f "models/$1/model.pt" ] && echo "--init-from models/$1/model.pt"; }
nohup .venv/bin/asr train --kind streaming --out data/runs/streaming "${common[@]}" --lr 5e-4 $(init streaming) \
  >> data/logs/train-streaming.log 2>&1 &
nohup .venv/bin/asr train --kind offline --out data/runs/offline "${common[@]}" $(init offline) \
  >> data/logs/train-offline.log 2>&1 &
echo "training in the background: tail -f data/logs/train-{streaming,offline}.log"

#!/usr/bin/env bash
# Train (or resume) both shipped models on the synthetic corpus, side by side, one CPU
# thread each (two single-thread jobs use 2 cores better than one 2-thread job).
# Resumable: re-run the same command; each run continues exactly from data/runs/<kind>/last.pt,
# or, on a fresh machine (no last.pt), warm-starts from the shipped models/<kind>/model.pt.
# A fresh machine first needs the corpus: make corpus (about 30 min).
#   scripts/train-models.sh [MAX_MINUTES] [STREAMING_STEPS] [OFFLINE_STEPS] [ANNEAL_STEPS]
# Optional environment: STREAMING_LR (default 5e-4), OFFLINE_LR (1.5e-3), LR_HALF_LIFE (4000 steps),
# TRAIN_ARGS (extra asr train options for both jobs, e.g. "--no-specaugment --bf16"), STREAMING_ARGS and
# OFFLINE_ARGS (extra options for one of them), ANNEAL_MINUTES (anneal over the last N minutes of
# MAX_MINUTES instead of ANNEAL_STEPS steps: for a machine whose speed is not known; pass ANNEAL_STEPS 0);
# a resumed run recomputes its lr from these at its current step. KINDS (default "streaming offline")
# picks which models to launch, e.g. KINDS=streaming to leave one core free.
# To stop early but cleanly (final dev eval + save): touch data/runs/<kind>/STOP, or SIGTERM.
# Logs: data/logs/train-{streaming,offline}.log. Progress: data/runs/<kind>/log.jsonl.
#
# Recipe (what the shipped models went through, see models/*/MODEL_CARD.md):
# - streaming: the uni-LSTM sits on the CTC all-blank plateau when started on the fully
#   augmented corpus, so it starts on the clean subset (asr corpus clean-subset), then
#   trains on the full corpus plus the clean subset again (clean utterances twice as often)
#   at peak lr 5e-4;
# - offline: the BiLSTM trains on the full corpus at peak lr 1.5e-3;
# - both end with a linear anneal of the lr to its floor over the last ANNEAL_STEPS steps.
set -euo pipefail
cd "$(dirname "$0")/.."
minutes=${1:-0}
streaming_steps=${2:-40000}
offline_steps=${3:-40000}
anneal=${4:-3000}
streaming_lr=${STREAMING_LR:-5e-4}
offline_lr=${OFFLINE_LR:-1.5e-3}
half_life=${LR_HALF_LIFE:-4000}
mkdir -p data/logs
[ -f data/corpus/train-clean.jsonl ] ||
  .venv/bin/asr corpus clean-subset data/corpus/train.jsonl --out data/corpus/train-clean.jsonl
common=(--dev data/corpus/dev.jsonl --batch-frames 12000 --threads 1 --eval-every 500
        --save-every 200 --max-minutes "$minutes" --anneal-steps "$anneal"
        --lr-half-life "$half_life" --anneal-minutes "${ANNEAL_MINUTES:-0}" ${TRAIN_ARGS:-})
# The training-only supplements that make corpus builds (the Piper neural voice; nine more mbrola
# databases, mbrola-x; RHVoice and SVOX Pico en-US, rhvoice-pico; festival's rab and don, festival-x;
# everyday words, common), when present, train both models.
extra=()
for supplement in data/corpus-piper data/corpus-mbrola-x data/corpus-rhvoice-pico data/corpus-festival-x \
    data/corpus-common; do
  if [ -f "$supplement/train.jsonl" ]; then extra+=("$supplement/train.jsonl"); fi
done
# Cache features once (both cores), so the two jobs don't race on the cache.
.venv/bin/python -c "
import sys
from asr.data import load_feature_set
for m in ['data/corpus/train.jsonl', 'data/corpus/train-clean.jsonl', 'data/corpus/dev.jsonl'] + sys.argv[1:]:
    load_feature_set(m, jobs=2)
" "${extra[@]}"
export OMP_NUM_THREADS=1
# A new machine has no data/runs/*/last.pt: continue from the shipped checkpoints instead.
init() { [ -f "models/$1/model.pt" ] && echo "--init-from models/$1/model.pt"; }
kinds=" ${KINDS:-streaming offline} "
if [[ $kinds == *" streaming "* ]]; then
nohup .venv/bin/asr train --kind streaming --out data/runs/streaming \
  --train data/corpus/train.jsonl data/corpus/train-clean.jsonl "${extra[@]}" "${common[@]}" \
  --steps "$streaming_steps" --lr "$streaming_lr" $(init streaming) ${STREAMING_ARGS:-} >> data/logs/train-streaming.log 2>&1 &
fi
if [[ $kinds == *" offline "* ]]; then
nohup .venv/bin/asr train --kind offline --out data/runs/offline --train data/corpus/train.jsonl "${extra[@]}" \
  "${common[@]}" --steps "$offline_steps" --lr "$offline_lr" $(init offline) ${OFFLINE_ARGS:-} >> data/logs/train-offline.log 2>&1 &
fi
echo "training in the background: tail -f data/logs/train-{streaming,offline}.log"

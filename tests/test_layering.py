"""The serving path imports nothing from training: a server needs no corpus or training code."""

from __future__ import annotations

import json
import subprocess
import sys

TRAINING = ("asr.data", "asr.train", "asr.train_config", "asr.corpus", "asr.evaluate", "asr.adapt")

_PROBE = """
import importlib, json, pkgutil, sys
import asr.server
serving = ["asr", "asr.api", "asr.streaming"]
serving += ["asr.server." + m.name for m in pkgutil.iter_modules(asr.server.__path__)]
for name in serving:
    importlib.import_module(name)
print(json.dumps({"serving": serving, "loaded": sorted(sys.modules)}))
"""


def test_serving_modules_load_no_training_module() -> None:
    done = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    probe = json.loads(done.stdout.splitlines()[-1])
    assert {"asr.server.app", "asr.server.servicer", "asr.server.batcher"} <= set(probe["serving"])
    training = [m for m in probe["loaded"] if m in TRAINING or m.startswith(tuple(t + "." for t in TRAINING))]
    assert training == [], f"the serving path imports training modules: {training}"

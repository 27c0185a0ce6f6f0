"""Build the KenLM n-gram used by beam search, from training text only.

``lmplz`` and ``build_binary`` are not packaged by Debian nor shipped in the kenlm
wheel; ``scripts/build-kenlm.sh`` builds them from the kenlm sdist into
``data/kenlm/bin``. The result ships in ``models/lm/``:

* ``lm.bin``: the binarised (trie, 8-bit quantised) model;
* ``unigrams.txt``: its word list (pyctcdecode needs it with a binary model);
* ``lm.json``: how it was built and the decoder settings tuned on dev.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from asr.text import join_split_compounds, normalize_text

log = logging.getLogger(__name__)

KENLM_BIN = Path(__file__).resolve().parent.parent / "data" / "kenlm" / "bin"


def find_tool(name: str) -> str:
    """Locate lmplz/build_binary: $ASR_KENLM_BIN, data/kenlm/bin, then PATH."""
    for folder in (os.environ.get("ASR_KENLM_BIN"), str(KENLM_BIN)):
        if folder and (Path(folder) / name).is_file():
            return str(Path(folder) / name)
    found = shutil.which(name)
    if found is None:
        raise FileNotFoundError(f"{name} not found: run scripts/build-kenlm.sh (or set ASR_KENLM_BIN)")
    return found


def read_sentences(paths: Iterable[str | os.PathLike[str]]) -> list[str]:
    sentences = []
    for path in paths:
        for line in Path(path).read_text(encoding="utf-8").splitlines():
            text = join_split_compounds(normalize_text(line))
            if text:
                sentences.append(text)
    return sentences


def build_lm(
    text_files: Iterable[str | os.PathLike[str]],
    out_dir: str | os.PathLike[str],
    exclude_files: Iterable[str | os.PathLike[str]] = (),
    order: int = 4,
    memory: str = "1G",
    prune: str | None = None,
) -> dict[str, Any]:
    """Train an n-gram on the text files, excluding any sentence of ``exclude_files``.

    Args:
        text_files: training sentences, one per line.
        out_dir: where lm.bin, unigrams.txt and lm.json go.
        exclude_files: held-out sentences (dev/test) that must never reach the LM.
        order: n-gram order.
        memory: lmplz ``-S`` cap.
        prune: lmplz ``--prune`` thresholds, e.g. ``"0 0 1"``.

    Returns:
        The build summary that is also written to lm.json.
    """
    if order < 2:
        raise ValueError(f"expected order >= 2, got {order}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    held_out = set(read_sentences(exclude_files))
    sentences = read_sentences(text_files)
    kept = [s for s in sentences if s not in held_out]
    if not kept:
        raise ValueError("expected LM training sentences, got none")
    words = sorted({w for s in kept for w in s.split()})
    with tempfile.TemporaryDirectory() as tmp:
        text = Path(tmp) / "text.txt"
        text.write_text("\n".join(kept) + "\n", encoding="utf-8")
        arpa = Path(tmp) / "lm.arpa"
        cmd = [find_tool("lmplz"), "-o", str(order), "-S", memory, "-T", tmp, "--discount_fallback"]
        if prune:
            cmd += ["--prune", *prune.split()]
        with text.open("rb") as stdin, arpa.open("wb") as stdout:
            subprocess.run(cmd, stdin=stdin, stdout=stdout, stderr=subprocess.PIPE, check=True)
        binary = out / "lm.bin"
        subprocess.run(
            [find_tool("build_binary"), "-q", "8", "-b", "8", "-a", "22", "trie", str(arpa), str(binary)],
            capture_output=True,
            check=True,
        )
    (out / "unigrams.txt").write_text("\n".join(words) + "\n", encoding="utf-8")
    summary: dict[str, Any] = {
        "order": order,
        "prune": prune,
        "sentences": len(kept),
        "excluded_held_out": len(sentences) - len(kept),
        "vocabulary": len(words),
        "size_mb": round(binary.stat().st_size / 2**20, 2),
        "text_files": [str(p) for p in text_files] if isinstance(text_files, list) else None,
    }
    meta = out / "lm.json"
    previous = json.loads(meta.read_text()) if meta.exists() else {}
    previous.update({"build": summary})
    meta.write_text(json.dumps(previous, indent=1))
    log.info("LM: %s", summary)
    return summary


def tune_decoder(
    log_probs: list[np.ndarray],
    references: list[str],
    lm_dir: str | os.PathLike[str],
    alphas: Iterable[float] = (0.3, 0.5, 0.7, 0.9),
    betas: Iterable[float] = (0.0, 1.0, 2.0),
    beam_width: int = 16,
) -> dict[str, Any]:
    """Grid-search alpha (LM weight) and beta (word bonus) for the lowest WER.

    Args:
        log_probs: per-utterance ``(T, V)`` model outputs on the dev set.
        references: their normalised transcripts.
        lm_dir: folder with lm.bin and unigrams.txt; the best values go to its lm.json.

    Returns:
        ``{"alpha", "beta", "wer", "greedy_wer", "grid": [...]}``, also stored in lm.json
        under ``tuned``.
    """
    from asr.api import load_decoder
    from asr.metrics import error_rates

    if len(log_probs) != len(references) or not references:
        raise ValueError(f"expected equal, non-empty lists, got {len(log_probs)} and {len(references)}")
    base = load_decoder(lm_dir)
    greedy = error_rates((r, base.greedy(lp).text) for r, lp in zip(references, log_probs, strict=True)).wer
    grid = []
    for alpha in alphas:
        for beta in betas:
            decoder = base.with_options(alpha=alpha, beta=beta, beam_width=beam_width)
            hyps = [decoder.beam(lp)[0].text for lp in log_probs]
            wer = error_rates(zip(references, hyps, strict=True)).wer
            grid.append({"alpha": alpha, "beta": beta, "wer": round(wer, 4)})
            log.info("alpha %.2f beta %.2f: WER %.2f%%", alpha, beta, 100 * wer)
    best = min(grid, key=lambda g: g["wer"])
    tuned = {**best, "beam_width": beam_width, "greedy_wer": round(greedy, 4), "utterances": len(references)}
    meta = Path(lm_dir) / "lm.json"
    data = json.loads(meta.read_text()) if meta.exists() else {}
    data["tuned"] = tuned
    data["grid"] = grid
    meta.write_text(json.dumps(data, indent=1))
    return tuned


def tune_on_manifest(
    model: str | os.PathLike[str],
    manifest: str | os.PathLike[str],
    lm_dir: str | os.PathLike[str],
    alphas: Iterable[float],
    betas: Iterable[float],
    beam_width: int = 16,
    limit: int | None = None,
) -> dict[str, Any]:
    """:func:`tune_decoder` on the log-probs of ``model`` for the first ``limit`` utterances of ``manifest``."""
    from asr.audio import load_audio
    from asr.checkpoint import load_model
    from asr.manifest import read_manifest

    loaded = load_model(model)
    log_probs, refs = [], []
    for e in read_manifest(manifest)[:limit]:
        log_probs.append(loaded.log_probs(load_audio(e["audio_filepath"], loaded.features.sample_rate)))
        refs.append(normalize_text(str(e["text"])))
    return tune_decoder(log_probs, refs, lm_dir, alphas, betas, beam_width)

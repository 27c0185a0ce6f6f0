"""Writing up `asr bench`: the Markdown report, its tables and the PNG plots.

:func:`asr.bench.run_bench` measures and fills the report dict; this module only renders
it (``headline_header`` / ``headline_rows`` are also printed by ``asr bench``). matplotlib
is imported on first use.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from asr.audio import SAMPLE_RATE
from asr.bench import LAG_WINDOW_S, MODES
from asr.checkpoint import LoadedModel
from asr.decoding import Decoder
from asr.features import log_mel
from asr.text import normalize_text


# -------------------------------------------------------------------- report
def _pct(s: dict[str, Any] | None, key: str = "wer") -> str:
    return "—" if s is None else f"{100 * s[key]:.1f}"


def _ms(s: dict[str, float] | None, p90: bool = False) -> str:
    if s is None:
        return "—"
    return f"{1000 * s['mean']:.0f}" + (f" ({1000 * s['p90']:.0f})" if p90 else "")


def _table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    return [
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
        *("| " + " | ".join(r) + " |" for r in rows),
    ]


def headline_rows(report: dict[str, Any]) -> list[list[str]]:
    """The headline table's rows (also printed by the CLI)."""
    rows = []
    threads = [str(t) for t in report["meta"]["threads"]]
    for mode, m in report["modes"].items():
        peer = mode == "pocketsphinx"
        dagger = "†" if peer else ""
        smoke = m["smoke"] or {}
        lat = m.get("latency", {})
        rows.append(
            [
                mode,
                _pct(m["test"]["greedy"]),
                _pct(m["test"]["greedy"], "cer"),
                _pct(m["test"]["lm"]) + dagger,
                _pct(m["test"]["lm"], "cer") + dagger,
                f"{_pct(smoke.get('greedy'))} / {_pct(smoke.get('lm'))}",
                f"{_pct((m.get('pico') or {}).get('greedy'))} / {_pct((m.get('pico') or {}).get('lm'))}",
                _ms(lat.get("first_partial_s")),
                f"{_ms(lat.get('final_after_audio_s'))} / {_ms(lat.get('final_after_speech_s'))}",
                *(f"{m['rtf'][t]:.3f}" if t in m["rtf"] else "—" for t in threads),
                "—" if m.get("params") is None else f"{m['params'] / 1e6:.2f} M",
                f"{m.get('size_mb', 0):.1f}",
                f"{m.get('lm_mb', 0):.1f}",
            ]
        )
    return rows


def _group_section(report: dict[str, Any]) -> list[str]:
    """Test-split accuracy per voice and per condition (clean/augmented); [] for older reports."""
    groups = report.get("test_groups")
    if not groups:
        return []
    lines = [
        "## Test split by voice and by condition",
        "",
        "Where the errors are: the same test decodes as the headline, grouped by the voice that spoke "
        "(espeak-ng's accent+variant voices pooled) and by whether the utterance was augmented "
        "(speed, reverberation, babble or coloured noise, telephone band, gain) or left clean. WER/CER in %.",
        "",
    ]
    for by, title in (("voice", "voice"), ("condition", "condition")):
        per_mode = groups[by]
        names = per_mode["offline"]["lm"].keys()
        lines += _table(
            [
                title,
                "utterances",
                "words",
                "streaming CER greedy",
                "streaming WER LM",
                "two-pass WER LM",
                "offline CER greedy",
                "offline WER LM",
            ],  # fmt: skip
            (
                [
                    g,
                    str(per_mode["offline"]["lm"][g]["utterances"]),
                    str(per_mode["offline"]["lm"][g]["words"]),
                    _pct(per_mode["streaming"]["greedy"].get(g), "cer"),
                    _pct(per_mode["streaming"]["lm"].get(g)),
                    _pct(per_mode["two-pass"]["lm"].get(g)),
                    _pct(per_mode["offline"]["greedy"].get(g), "cer"),
                    _pct(per_mode["offline"]["lm"].get(g)),
                ]  # fmt: skip
                for g in names
            ),
        )
        lines.append("")
    return lines


def headline_header(report: dict[str, Any]) -> list[str]:
    return [
        "mode", "test WER greedy", "test CER greedy", "test WER LM", "test CER LM", "smoke WER greedy / LM",
        "Pico WER greedy / LM", "first partial (ms)", "final after end of audio / speech (ms)",
        *(f"RTF {t}t" for t in report["meta"]["threads"]), "params", "model MB", "LM MB",
    ]  # fmt: skip


def headline_table(report: dict[str, Any]) -> str:
    """The headline rows as an aligned plain-text table (what ``asr bench`` prints)."""
    header, rows = headline_header(report), headline_rows(report)
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    return "\n".join(
        "  ".join(c.rjust(w) for c, w in zip(line, widths, strict=True))
        for line in [header, ["-" * w for w in widths], *rows]
    )


def markdown(report: dict[str, Any]) -> str:
    """The report as Markdown, with the plots linked relatively."""
    meta, sets, modes = report["meta"], report["sets"], report["modes"]
    t0, chunk = meta["threads"][0], meta["headline_chunk_ms"]
    lat, test = sets["latency"], sets["test"]
    smoke = sets.get("smoke")
    pico = sets.get("pico")
    lines = [
        "# Real-time vs full sequence: the trade-off, measured",
        "",
        f"`asr bench`, {meta['date']}, {meta['machine']} (load average {meta['load_average_at_start']} at the "
        f"start), torch {meta['torch']}, {meta['wall_seconds']} s in all. Models: `{meta['streaming_model']}`, "
        f"`{meta['offline_model']}`; LM: `{meta['lm']}` (alpha {meta['lm_options']['alpha']}, beta "
        f"{meta['lm_options']['beta']}, beam {meta['lm_options']['beam_width']}"
        + (f"; {meta['offline_beam_width']} for offline mode" if meta.get("offline_beam_width") else "")
        + "). Endpointing: "
        f"{meta['endpoint']['trailing_silence_ms']} ms of trailing blank.",
        "",
        "Sets: "
        f"**test** = {test['what']} of the held-out-voice test split `{test['manifest']}` "
        f"({test['utterances']} utterances, {test['audio_seconds'] / 60:.1f} min); "
        + (f"**smoke** = {smoke['what']} of the real-speech set `{smoke['manifest']}` ({smoke['audio_seconds']:.0f} s); "
           if smoke else "no smoke set; ")
        + (f"**Pico** = {pico['what']} of `{pico['manifest']}`, held-out test sentences in SVOX Pico's en-GB "
           f"voice, which no training set holds ({pico['audio_seconds'] / 60:.1f} min); " if pico else "")
        + f"**latency subset** = {lat['what']} of the test split ({lat['audio_seconds'] / 60:.1f} min): latency, "
        f"RTF and the chunk sweep; **peer subset** = {sets['peer']['what']} of the test split: PocketSphinx (†).",
        "",
        *(
            [f"**Warning**: the load average was {meta['load_average_at_start']} on {meta['machine']} at the "
             "start: other work shared the CPU, so the timings (latency, RTF) are inflated.", ""]  # fmt: skip
            if meta["load_average_at_start"] > 0.5 * (os.cpu_count() or 1)
            else []
        ),
        "## Headline",
        "",
        *_table(headline_header(report), headline_rows(report)),
        "",
        f"Latency at {chunk} ms chunks and {t0} thread(s), means over the latency subset. "
        "† PocketSphinx's test numbers are on the peer subset only (it is slow); it always decodes with its "
        "own n-gram LM (no greedy column) and is single-threaded. Model MB: fp16 checkpoints on disk "
        "(two-pass loads both); LM MB: KenLM binary + unigram list.",
        "",
        "## How each number is obtained",
        "",
        "* **streaming / offline WER, CER**: `asr.evaluate.evaluate_manifest`, i.e. exactly what "
        "`asr eval --model streaming|offline [--decoder beam]` prints: whole utterance through the model, "
        "then best path (greedy) or beam search + KenLM (LM). For the uni-LSTM the whole-utterance log-probs "
        "equal the chunked ones, so this is also what its finals would be without endpointing.",
        "* **Fusion** (the report's `meta.fusion`, from `models/fusion.json`; `asr bench --no-fusion` turns "
        "it off): two-pass finals and offline mode search the BiLSTM's log-probs fused with the uni-LSTM's "
        "(`asr/fusion.py`). The offline rows then come from `OfflineBatchRecognizer` (what `asr transcribe` "
        "runs: whole file, segmented at blank runs, fused) instead of `evaluate_manifest`.",
        "* **two-pass WER, CER**: each utterance goes through a `StreamingSession` in two-pass mode: the "
        "uni-LSTM endpoints it (a run of blank steps), and each endpointed piece is decoded by the BiLSTM "
        "(greedy: best path; LM: beam + KenLM). Pieces are joined; an utterance cut by a pause inside it is "
        "decoded in pieces.",
        "* **Clock**: audio is fed in chunks as if in real time. A chunk arrives at the audio time of its "
        "last sample `t_k`; processing it takes `c_k` (wall clock, measured); its results are available at "
        "`done_k = max(t_k, done_(k-1)) + c_k`. The client closes the stream at the end of the file; "
        "`finish()` is timed the same way.",
        "* **Speech start / end**: 25 ms frames every 10 ms; speech where the frame energy is above "
        "floor + 0.3 (peak - floor) in dB (floor, peak: 10th, 99th percentile of the file).",
        "* **First partial**: availability of the first non-empty partial minus speech start.",
        "* **Final after end of audio**: availability of the last final minus the end of the file (what "
        "is left to compute once the client closes: backlog, flush, final beam, and for two-pass the BiLSTM; "
        "offline: features + BiLSTM + beam over the whole utterance). Negative when the endpointer closed "
        "the utterance in the file's trailing silence. **Final after end of speech** also counts that "
        "trailing silence (0.05-0.6 s in the test split).",
        "* **Word end in the audio**: the reference text is force-aligned (CTC Viterbi) to the BiLSTM's "
        "posteriors of the whole utterance; a word ends one 30 ms step after the frame of its last letter.",
        "* **Partial word lag**: each word of the last partial transcript is shown from the first partial "
        "whose words up to and including it equal the last partial's; it is matched, in order, to the "
        "nearest reference word with the same spelling whose end is within "
        f"{LAG_WINDOW_S[0]:+} to {LAG_WINDOW_S[1]:+} s; lag = shown minus the reference word's end. Only "
        "correctly recognised words count (n in the JSON).",
        "* **Final word latency**: for every reference word, availability of the first final whose audio "
        "span reaches the word's end, minus the word's end (offline: the single final).",
        "* **RTF**: processing wall time / audio duration of the simulated real-time runs on the latency "
        f"subset ({chunk} ms chunks; offline: whole utterances, one at a time), per torch thread count "
        "(`torch.set_num_threads`). PocketSphinx: `asr.peer.evaluate_pocketsphinx` (decoding time only).",
        "",
        f"## Latency ({chunk} ms chunks, {t0} thread(s), latency subset)",
        "",
        *_table(
            ["mode", "first partial", "partial word lag", "final after end of audio", "final after end of speech",
             "final word latency", "RTF", "final WER", "partial WER"],  # fmt: skip
            (
                [mode, _ms(m["latency"]["first_partial_s"], True), _ms(m["latency"]["partial_lag_s"], True),
                 _ms(m["latency"]["final_after_audio_s"], True), _ms(m["latency"]["final_after_speech_s"], True),
                 _ms(m["latency"]["final_word_latency_s"], True), f"{m['rtf'][str(t0)]:.3f}",
                 _pct(m["latency_subset"]["final"]), _pct(m["latency_subset"]["partial"])]  # fmt: skip
                for mode, m in modes.items()
                if mode in MODES
            ),
        ),
        "",
        "Milliseconds: mean (90th percentile). Finals use beam + LM; partials are best path. Two-pass shows "
        "the same partials as streaming (same model).",
        "",
        f"## Chunk-size sweep (streaming, {t0} thread(s), latency subset)",
        "",
        *_table(
            ["chunk (ms)", "first partial", "partial word lag", "final after end of audio", "final word latency",
             "RTF", "partial WER (greedy)", "final WER (LM)", "final CER (LM)"],  # fmt: skip
            (
                [str(s["chunk_ms"]), _ms(s["first_partial_s"], True), _ms(s["partial_lag_s"], True),
                 _ms(s["final_after_audio_s"], True), _ms(s["final_word_latency_s"], True), f"{s['rtf']:.3f}",
                 _pct(s["partial"]), _pct(s["final"]), _pct(s["final"], "cer")]  # fmt: skip
                for s in report["sweep"]
            ),
        ),
        "",
        "The uni-LSTM has no lookahead and chunked decoding equals whole-utterance decoding, and endpointing "
        "runs per 30 ms step: the chunk size changes latency and per-call overhead, never the text.",
        "",
        f"**Lookahead sweep**: {report['lookahead']['why']}.",
        "",
        *_group_section(report),
        "## Same subset, side by side with PocketSphinx",
        "",
        *_table(
            ["mode", "WER greedy", "CER greedy", "WER LM", "CER LM", "smoke WER LM", "smoke CER LM",
             "Pico WER LM", "Pico CER LM", f"RTF {t0}t"],
            (
                [mode, _pct(m["peer_subset"]["greedy"]), _pct(m["peer_subset"]["greedy"], "cer"),
                 _pct(m["peer_subset"]["lm"]), _pct(m["peer_subset"]["lm"], "cer"),
                 _pct((m["smoke"] or {}).get("lm")), _pct((m["smoke"] or {}).get("lm"), "cer"),
                 _pct((m.get("pico") or {}).get("lm")), _pct((m.get("pico") or {}).get("lm"), "cer"),
                 f"{m['rtf'].get(str(t0), m['rtf'].get('1', 0)):.3f}"]  # fmt: skip
                for mode, m in modes.items()
            ),
        ),
        "",
        f"WER/CER in %, on the peer subset ({sets['peer']['what']} of the test split), the smoke set "
        "and the Pico set.",
        "",
        "## Plots",
        "",
        "WER against latency: partials (best path) against the partial word lag, finals (LM) against the "
        "final word latency, on the latency subset.",
        "",
        f"![trade-off frontier]({report['plots']['frontier']})",
        "",
        f"![RTF per mode]({report['plots']['rtf']})",
        "",
        "Per-step (30 ms) CTC posteriors of one test utterance: blank shaded, the symbols that win a step "
        "drawn and labelled where their run starts; the collapsed greedy text under each panel.",
        "",
        f"![CTC alignment]({report['plots']['ctc_alignment']})",
        "",
    ]  # fmt: skip
    return "\n".join(lines)


# --------------------------------------------------------------------- plots
def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError:
        raise RuntimeError(
            "asr bench draws its plots with matplotlib: pip install 'lstm-asr[bench]' (or matplotlib)"
        ) from None

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_frontier(report: dict[str, Any], path: Path) -> str:
    """WER (latency subset) against latency: one point per mode and chunk size."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 5))

    def point(lat: dict[str, float] | None, s: dict[str, float] | None) -> tuple[float, float] | None:
        return None if lat is None or s is None else (1000 * lat["mean"], 100 * s["wer"])

    for kind, lat_key, style in (("partial", "partial_lag_s", "o-"), ("final", "final_word_latency_s", "s-")):
        measured = [(s["chunk_ms"], point(s[lat_key], s[kind])) for s in report["sweep"]]
        pts = [(c, p) for c, p in measured if p is not None]
        if pts:
            label = "streaming partials (best path)" if kind == "partial" else "streaming finals (LM)"
            ax.plot([p[0] for _, p in pts], [p[1] for _, p in pts], style, label=label)
            for i, (c, p) in enumerate(pts):
                offset = (5, 5) if kind == "partial" else (5, -12 - 10 * (i % 2))
                ax.annotate(f"{c} ms", p, textcoords="offset points", xytext=offset, fontsize=8)
    for mode, marker in (("two-pass", "^"), ("offline", "D")):
        m = report["modes"][mode]
        finals = point(m["latency"]["final_word_latency_s"], m["latency_subset"]["final"])
        if finals is not None:
            ax.plot(*finals, marker, markersize=9, label=f"{mode} finals (LM)")
    ax.set_xlabel("mean word latency (ms): word end in the audio -> word first shown")
    ax.set_ylabel("WER (%) on the latency subset")
    ax.set_title(f"Trade-off frontier ({report['sets']['latency']['what']})")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path.name


def plot_rtf(report: dict[str, Any], path: Path) -> str:
    """Bar chart: real-time factor per mode and thread count."""
    plt = _pyplot()
    modes = list(report["modes"])
    threads = [str(t) for t in report["meta"]["threads"]]
    fig, ax = plt.subplots(figsize=(7, 4))
    width = 0.8 / len(threads)
    for i, t in enumerate(threads):
        xs = [j + (i - (len(threads) - 1) / 2) * width for j in range(len(modes))]
        values = [report["modes"][m]["rtf"].get(t, np.nan) for m in modes]
        bars = ax.bar(xs, values, width, label=f"{t} thread(s)")
        ax.bar_label(bars, fmt="%.3f", fontsize=7)
    ax.set_xticks(range(len(modes)), modes)
    ax.set_ylabel("real-time factor (lower is faster)")
    ax.set_title("RTF per mode (PocketSphinx: single-threaded)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path.name


def pick_example(entries: Sequence[tuple[dict[str, Any], np.ndarray]]) -> tuple[dict[str, Any], np.ndarray]:
    """The first utterance of 2-4 s (readable in one picture), else the first one."""
    return next((x for x in entries if 2.0 <= len(x[1]) / SAMPLE_RATE <= 4.0), entries[0])


def plot_ctc_alignment(
    example: tuple[dict[str, Any], np.ndarray], models: Sequence[tuple[str, LoadedModel]], path: Path
) -> str:
    """Log-mel and, per model, the per-step posteriors of the winning symbols with the greedy text."""
    plt = _pyplot()
    entry, audio = example
    fig, axes = plt.subplots(
        1 + len(models), 1, figsize=(12, 2 + 2.6 * len(models)), sharex=True, gridspec_kw={"hspace": 0.75}
    )
    features = models[0][1].features
    mels = log_mel(audio, features)  # (T, M)
    axes[0].imshow(
        mels.T.numpy(),
        origin="lower",
        aspect="auto",
        cmap="magma",
        extent=(0, len(mels) * features.hop_length / features.sample_rate, 0, mels.shape[1]),
    )
    axes[0].set_ylabel("log-mel")
    axes[0].set_title(f"reference: {normalize_text(str(entry['text']))}", fontsize=9, loc="left")
    for ax, (name, loaded) in zip(axes[1:], models, strict=True):
        lp = loaded.log_probs(audio)  # (T', V)
        probs = np.exp(lp)
        blank, labels = loaded.vocab.blank, loaded.vocab.labels
        t = (np.arange(len(probs)) + 0.5) * loaded.step_seconds
        ax.fill_between(t, probs[:, blank], step="mid", color="0.85", label="blank")
        best = probs.argmax(-1)
        cmap = plt.get_cmap("tab20")
        for s in sorted(set(best.tolist()) - {blank}):
            ax.plot(t, probs[:, s], lw=1, color=cmap(s % 20))
        previous = -1
        for i, s in enumerate(best.tolist()):
            if s != blank and s != previous:
                ax.annotate("␣" if labels[s] == " " else labels[s], (t[i], probs[i, s]), ha="center",
                            va="bottom", fontsize=8, color=cmap(s % 20))  # fmt: skip
            previous = s
        ax.set_ylim(0, 1.15)
        ax.set_ylabel(f"{name}\nposterior")
        ax.legend(loc="upper right", fontsize=7)
        ax.text(0, -0.3, f"greedy: {Decoder(loaded.vocab).greedy(lp).text}", transform=ax.transAxes,
                fontsize=9, va="top", family="monospace")  # fmt: skip
    axes[-1].set_xlabel("time (s), one model step = 30 ms", labelpad=26)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path.name

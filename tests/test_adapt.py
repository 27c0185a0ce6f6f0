"""Adapting tiny models on a profile: the loss falls, the held-out slice is reported, the
adapted checkpoints load through the API and the CLI (asr enroll -> asr adapt -> asr eval)."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import pytest
import torch

from asr import checkpoint
from asr.adapt import (
    AdaptConfig,
    AdaptProgress,
    adapt_profile,
    format_report,
    heldout_split,
    report_from_dict,
)
from asr.api import Recognizer
from asr.cli import main
from asr.cli.profiles import ADAPT_DEFAULTS
from asr.enroll import import_manifest
from asr.profiles import ProfileNotFound, ProfileStore
from tests.enroll_helpers import speechlike, write_takes
from tests.helpers import write_tiny_checkpoints


@pytest.fixture(scope="module")
def bases(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return write_tiny_checkpoints(tmp_path_factory.mktemp("bases"), seed=3, blank_share=0.3)


def tiny_config(bases: tuple[Path, Path], **changes: object) -> AdaptConfig:
    base = {
        "base_streaming": str(bases[0]),
        "base_offline": str(bases[1]),
        "lm": None,
        "steps": 40,
        "lr": 3e-3,
        "eval_every": 10,
        "patience": 0,
        "heldout_share": 0.2,
        "specaugment": False,
        "time_budget_s": 120.0,
        "batch_seconds": 8.0,
    }
    return AdaptConfig(**{**base, **changes})  # type: ignore[arg-type]


@pytest.fixture
def enrolled(tmp_path: Path) -> ProfileStore:
    store = ProfileStore(tmp_path / "profiles")
    report = import_manifest(store, "anna", write_takes(tmp_path / "takes", n=15))
    assert len(report.added) == 15
    return store


def test_adapting_lowers_the_loss_and_reports_the_held_out_slice(
    enrolled: ProfileStore, bases: tuple[Path, Path]
) -> None:
    torch.manual_seed(0)
    events: list[AdaptProgress] = []
    report = adapt_profile(enrolled, "anna", tiny_config(bases), events.append)
    assert (report.takes, report.train_takes, report.heldout_takes) == (15, 12, 3)
    assert [m.kind for m in report.models] == ["streaming", "offline"]
    for m in report.models:
        assert m.steps == 40
        assert m.last_loss < 0.7 * m.first_loss, (m.kind, m.first_loss, m.last_loss)
        assert [h["step"] for h in m.history] == [0, 10, 20, 30, 40]
        assert m.history[0]["heldout_cer"] == m.before.cer
        assert m.after.cer == min(h["heldout_cer"] for h in m.history)
        assert m.after.wer_lm is None  # no LM in this config
        loaded = checkpoint.load_model(m.checkpoint)
        assert loaded.meta["training"]["adapted_from"] == str(bases[0] if m.kind == "streaming" else bases[1])
        assert loaded.meta["metrics"]["heldout_after"]["cer"] == m.after.cer
    phases = {e.phase for e in events}
    assert {"before", "train", "eval", "done"} <= phases
    assert all(e.eta_s >= 0 for e in events)
    assert enrolled.is_adapted("anna")
    card = enrolled.read_card("anna")["adaptation"]
    assert card == json.loads(json.dumps(report.to_dict()))
    assert format_report(report_from_dict(card)) == format_report(report)
    assert "held out" in format_report(report)
    # The API serves the adapted models.
    rec = Recognizer.load(profile="anna", profiles_dir=enrolled.root, lm=None)
    assert rec.streaming.path == enrolled.model_path("anna", "streaming")
    assert rec.offline is not None and rec.offline.path == enrolled.model_path("anna", "offline")
    assert rec.transcribe(speechlike("go on now")).duration > 0


def test_held_out_slice_is_deterministic_and_disjoint() -> None:
    config = AdaptConfig(heldout_share=0.1, min_heldout=2, max_heldout=5)
    train, held = heldout_split(40, config)
    assert (train, held) == heldout_split(40, config)
    assert len(held) == 4 and not set(train) & set(held) and sorted(train + held) == list(range(40))
    assert len(heldout_split(300, config)[1]) == 5
    with pytest.raises(ValueError, match="more takes"):
        heldout_split(2, config)


def test_layer_subsets_freeze_the_rest() -> None:
    from asr.adapt import _trainable
    from asr.model import CTCModel
    from tests.helpers import tiny_config as tiny_model_config

    model = CTCModel(tiny_model_config(bidirectional=True))
    names = {n for n, _ in model.named_parameters()}
    _trainable(model, "proj")
    assert {n for n, p in model.named_parameters() if p.requires_grad} == {
        n for n in names if n.startswith("proj.")
    }
    _trainable(model, "proj+lstm1")
    trained = {n for n, p in model.named_parameters() if p.requires_grad}
    assert "lstm.weight_ih_l0_reverse" in trained and "lstm.weight_hh_l0" in trained
    assert not any("_l1" in n or n.startswith("head.") for n in trained)
    _trainable(model, "all")
    assert all(p.requires_grad for p in model.parameters())


def test_kl_term_is_zero_at_the_base_and_masks_padding(
    enrolled: ProfileStore, bases: tuple[Path, Path]
) -> None:
    from asr.adapt import _kl_to_base

    torch.manual_seed(0)
    a = torch.randn(2, 5, 29).log_softmax(-1)
    b = torch.randn(2, 5, 29).log_softmax(-1)
    lengths = torch.tensor([5, 2])
    assert float(_kl_to_base(a, a, lengths)) == pytest.approx(0.0, abs=1e-6)
    assert float(_kl_to_base(a, b, lengths)) > 0
    c = b.clone()
    c[1, 2:] = a[1, 2:]  # differences beyond a row's length do not count
    assert float(_kl_to_base(a, c, lengths)) == pytest.approx(float(_kl_to_base(a, b, lengths)))
    d = a.clone()
    d[1, 2:] = b[1, 2:]
    assert float(_kl_to_base(d, a, lengths)) == pytest.approx(0.0, abs=1e-6)
    report = adapt_profile(
        enrolled, "anna", tiny_config(bases, kinds=("streaming",), kl_weight=1.0, steps=10)
    )
    assert report.models[0].steps == 10 and report.models[0].last_loss > 0


def test_too_few_takes_and_unknown_profile_are_clear_errors(tmp_path: Path, bases: tuple[Path, Path]) -> None:
    store = ProfileStore(tmp_path / "profiles")
    import_manifest(store, "few", write_takes(tmp_path / "takes", n=3))
    with pytest.raises(ValueError, match="at least 5 usable takes"):
        adapt_profile(store, "few", tiny_config(bases))
    with pytest.raises(ProfileNotFound, match="nobody"):
        adapt_profile(store, "nobody", tiny_config(bases))
    with pytest.raises(ValueError, match="profile name"):
        adapt_profile(store, "../few", tiny_config(bases))


def test_bad_adapt_configs_are_refused() -> None:
    for changes in (
        {"steps": 0},
        {"lr": -1.0},
        {"heldout_share": 0.7},
        {"train_layers": "head"},
        {"kinds": ()},
    ):
        with pytest.raises(ValueError, match="expected"):
            AdaptConfig(**changes)  # type: ignore[arg-type]


def test_cli_defaults_are_adapt_configs() -> None:
    defaults = asdict(AdaptConfig())
    assert {k: defaults[k] for k in ADAPT_DEFAULTS} == ADAPT_DEFAULTS


def test_enroll_adapt_eval_through_the_cli(
    tmp_path: Path,
    bases: tuple[Path, Path],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The commands of the independent check: enroll --from, adapt, eval --profile --json."""
    monkeypatch.setenv("ASR_PROFILES", str(tmp_path / "profiles"))
    manifest = write_takes(tmp_path / "takes", n=10)
    assert main(["enroll", "anna", "--from", str(manifest)]) == 0
    tiny = ["--streaming-model", str(bases[0]), "--offline-model", str(bases[1]), "--steps", "6", "--quiet"]
    assert main(["adapt", "anna", "--no-lm", *tiny]) == 0
    out = capsys.readouterr().out
    assert "held out" in out and "offline" in out and "streaming" in out
    eval_manifest = write_takes(tmp_path / "other", n=3, seed=50)
    lines = eval_manifest.read_text().splitlines()
    eval_manifest.write_text(
        "".join(json.dumps({**json.loads(x), "duration": 1.0}) + "\n" for x in lines)
    )  # asr eval reads NeMo manifests (with durations)
    argv = ["eval", "--manifest", str(eval_manifest), "--model", "offline", "--decoder", "beam", "--json"]
    assert main([*argv, "--profile", "anna"]) == 0
    with_profile = json.loads(capsys.readouterr().out)
    assert with_profile["model"] == str(ProfileStore().model_path("anna", "offline"))
    assert with_profile["utterances"] == 3
    assert main([*argv, "--model", str(bases[1])]) == 0
    assert set(json.loads(capsys.readouterr().out)) == set(with_profile)  # the same JSON keys
    assert main([*argv, "--profile", "nobody"]) == 1
    assert "profile 'nobody' not found" in capsys.readouterr().err
    assert main(["profile", "show", "anna", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert (
        shown["adapted"] and shown["recordings"] == 10 and shown["card"]["adaptation"]["heldout_takes"] == 2
    )
    assert main(["profile", "list"]) == 0
    assert "anna" in capsys.readouterr().out
    assert main(["profile", "delete", "anna", "--yes"]) == 0
    assert ProfileStore().names() == []


def test_adapt_cli_rejects_bad_names(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["adapt", "a/b", "--profiles-dir", str(tmp_path)]) == 1
    assert "profile name" in capsys.readouterr().err


def test_speed_perturbation_resamples_the_takes() -> None:
    from asr.adapt import change_speed

    audio = speechlike("go on now")
    assert change_speed(audio, 1.0) is audio
    for factor in (0.9, 1.1):
        out = change_speed(audio, factor)
        assert out.dtype == audio.dtype
        assert abs(len(out) - len(audio) / factor) <= 2


def test_adapting_with_speed_perturbation(enrolled: ProfileStore, bases: tuple[Path, Path]) -> None:
    torch.manual_seed(0)
    config = tiny_config(bases, kinds=("offline",), speeds=(0.9, 1.0, 1.1), steps=20)
    (m,) = adapt_profile(enrolled, "anna", config).models
    assert m.steps == 20 and m.last_loss < m.first_loss
    assert [h["step"] for h in m.history] == [0, 10, 20]
    assert m.after.cer == min(h["heldout_cer"] for h in m.history)
    with pytest.raises(ValueError, match="speed"):
        AdaptConfig(speeds=(0.1,))

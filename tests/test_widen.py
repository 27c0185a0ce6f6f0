"""Function-preserving widening: same outputs at step 0, new units trainable, a warm start continues it."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from asr import checkpoint
from asr.cli import main
from asr.model import CTCModel
from asr.train import Trainer, run_training
from asr.widen import widen_model
from tests.helpers import tiny_config, tiny_train_config


@pytest.mark.parametrize("method", ["split", "zero"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_widened_model_computes_the_same_log_probs(bidirectional: bool, method: str) -> None:
    torch.manual_seed(0)
    model = CTCModel(tiny_config(bidirectional)).eval()
    wide = widen_model(model, 40, seed=3, method=method)  # 16 -> 40: some units get 2+ copies
    assert wide.config.hidden == 40 and not wide.training
    assert sum(p.numel() for p in wide.parameters()) > 2 * sum(p.numel() for p in model.parameters())
    x = torch.randn(3, 90, 80)
    lengths = torch.tensor([90, 61, 33])
    with torch.no_grad():
        ref, ref_lengths, _ = model(x, lengths)
        got, got_lengths, _ = wide(x, lengths)
    assert torch.equal(ref_lengths, got_lengths)
    torch.testing.assert_close(got, ref, atol=1e-5, rtol=1e-5)


def test_widened_streaming_model_keeps_chunked_parity() -> None:
    torch.manual_seed(0)
    wide = widen_model(CTCModel(tiny_config()).eval(), 24)
    x = torch.randn(1, 60, 80)
    with torch.no_grad():
        whole, _, _ = wide(x, torch.tensor([60]))
        first, _, state = wide(x[:, :27], torch.tensor([27]))
        second, _, _ = wide(x[:, 27:], torch.tensor([33]), state)
    assert state[0].shape[-1] == 24
    torch.testing.assert_close(torch.cat([first, second], 1), whole, atol=1e-5, rtol=1e-5)


def test_split_units_share_the_outgoing_weights() -> None:
    torch.manual_seed(0)
    model = CTCModel(tiny_config(bidirectional=True))
    wide = widen_model(model, 24, seed=1)
    head, old_head = wide.head[1].weight, model.head[1].weight  # (V, 2 * 24), (V, 2 * 16)
    # Forward direction: the 8 new units copy 8 distinct trained units, which keep half.
    new = head[:, 16:24]
    assert torch.count_nonzero(new) == new.numel()
    sources = [int((old_head[:, :16] / 2 - new[:, k : k + 1]).abs().sum(0).argmin()) for k in range(8)]
    assert len(set(sources)) == 8
    torch.testing.assert_close(head[:, sources], old_head[:, sources] / 2)
    torch.testing.assert_close(new, old_head[:, sources] / 2)


def test_split_noise_keeps_outputs_close() -> None:
    torch.manual_seed(0)
    model = CTCModel(tiny_config(bidirectional=True)).eval()
    x = torch.randn(1, 60, 80)
    with torch.no_grad():
        ref = model(x, torch.tensor([60]))[0].exp()
        exact = widen_model(model, 24)(x, torch.tensor([60]))[0].exp()
        noisy = widen_model(model, 24, noise=0.05)(x, torch.tensor([60]))[0].exp()
    torch.testing.assert_close(exact, ref, atol=1e-5, rtol=1e-5)
    assert 0 < float((noisy - ref).abs().max()) < 0.1


def test_zero_units_are_active_and_learn() -> None:
    """The new units' outgoing weights start at zero but get gradients, so training uses them."""
    torch.manual_seed(0)
    model = CTCModel(tiny_config(bidirectional=True))
    wide = widen_model(model, 32, method="zero")
    head = wide.head[1].weight  # (V, 2 * 32): columns 16..31 and 48..63 are the new units
    new_cols = torch.cat([torch.arange(16, 32), torch.arange(48, 64)])
    assert torch.count_nonzero(head[:, new_cols]) == 0
    log_probs, lengths, _ = wide(torch.randn(2, 60, 80), torch.tensor([60, 60]))
    loss = torch.nn.functional.ctc_loss(
        log_probs.transpose(0, 1), torch.tensor([[3, 4, 5], [6, 7, 8]]), lengths, torch.tensor([3, 3])
    )
    loss.backward()
    assert head.grad is not None and head.grad[:, new_cols].abs().sum() > 0
    hh = wide.lstm.weight_hh_l1_reverse  # trained units' columns over new units get gradients too
    assert hh.grad is not None and hh.grad[:16, 16:].abs().sum() > 0


def test_widen_rejects_a_smaller_size_or_unknown_method() -> None:
    with pytest.raises(ValueError, match="above 16"):
        widen_model(CTCModel(tiny_config()), 16)
    with pytest.raises(ValueError, match="method"):
        widen_model(CTCModel(tiny_config()), 32, method="deeper")


def test_widen_cli_then_warm_start(
    tmp_path: Path, tiny_manifest: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    best = run_training(tiny_train_config(tmp_path, tiny_manifest, "first", 2))
    wide_path = tmp_path / "wide.pt"
    assert main(["widen", str(best), "--hidden", "24", "--out", str(wide_path)]) == 0
    assert "hidden 16 -> 24" in capsys.readouterr().out
    narrow, wide = checkpoint.load_model(best), checkpoint.load_model(wide_path)
    assert wide.meta["training"]["widened_from"]["hidden"] == narrow.model.config.hidden
    assert wide.meta["metrics"] == narrow.meta["metrics"]
    x = torch.randn(1, 45, 80)
    with torch.no_grad():
        torch.testing.assert_close(
            wide.model(x, torch.tensor([45]))[0], narrow.model(x, torch.tensor([45]))[0]
        )
    config = tiny_train_config(tmp_path, tiny_manifest, "second", 4)
    config.init_from, config.hidden = str(wide_path), 24
    trainer = Trainer(config)
    assert trainer.step == 2 and trainer.model.config.hidden == 24
    trainer.train()
    assert trainer.step == 4

"""Model shape, streaming parity with carried state, padding, checkpoints."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from asr import checkpoint
from asr.features import FeatureConfig, Normalizer
from asr.model import CTCModel, ModelConfig
from asr.text import Vocabulary
from tests.helpers import tiny_config


def test_output_shapes(tiny_model: CTCModel) -> None:
    x = torch.randn(2, 31, 80)
    log_probs, lengths, (h, c) = tiny_model(x, torch.tensor([31, 20]))
    assert log_probs.shape == (2, 10, 29)  # 31 frames -> 10 steps of 3
    assert lengths.tolist() == [10, 6]
    assert h.shape == c.shape == (2, 2, 16)
    torch.testing.assert_close(log_probs.exp().sum(-1), torch.ones(2, 10))


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_streaming_parity_random_chunks(tiny_model: CTCModel, seed: int) -> None:
    """Chunks (multiples of the 3-frame stack) with carried state == whole utterance."""
    gen = torch.Generator().manual_seed(seed)
    steps = int(torch.randint(20, 60, (1,), generator=gen))
    x = torch.randn(1, steps * 3, 80, generator=gen)
    with torch.no_grad():
        whole, _, whole_state = tiny_model(x, torch.tensor([steps * 3]))
        outputs, state, t = [], None, 0
        while t < steps:
            n = min(int(torch.randint(1, 8, (1,), generator=gen)), steps - t)
            chunk = x[:, 3 * t : 3 * (t + n)]
            out, _, state = tiny_model(chunk, torch.tensor([3 * n]), state)
            outputs.append(out)
            t += n
    torch.testing.assert_close(torch.cat(outputs, 1), whole, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(state[0], whole_state[0], atol=1e-5, rtol=1e-5)


def test_padded_batch_matches_single(tiny_model: CTCModel, tiny_offline_model: CTCModel) -> None:
    """Padding must not leak into valid steps, for either direction."""
    a, b = torch.randn(1, 30, 80), torch.randn(1, 18, 80)
    batch = torch.zeros(2, 30, 80)
    batch[0], batch[1, :18] = a[0], b[0]
    for model in (tiny_model, tiny_offline_model):
        with torch.no_grad():
            together, lengths, _ = model(batch, torch.tensor([30, 18]))
            alone, _, _ = model(b, torch.tensor([18]))
        torch.testing.assert_close(together[1, : int(lengths[1])], alone[0], atol=1e-5, rtol=1e-5)


def test_offline_model_rejects_state(tiny_offline_model: CTCModel) -> None:
    state = tiny_offline_model.initial_state(1)
    with pytest.raises(ValueError, match="bidirectional"):
        tiny_offline_model(torch.randn(1, 9, 80), torch.tensor([9]), state)


def test_bad_feature_shape(tiny_model: CTCModel) -> None:
    with pytest.raises(ValueError, match="expected"):
        tiny_model(torch.randn(1, 9, 40), torch.tensor([9]))


def test_short_input_gives_no_steps(tiny_model: CTCModel) -> None:
    out, lengths, state = tiny_model(torch.randn(1, 2, 80), torch.tensor([2]))
    assert out.shape == (1, 0, 29) and lengths.tolist() == [0]


def test_checkpoint_round_trip_fp16(tmp_path: Path, tiny_model: CTCModel) -> None:
    normalizer = Normalizer(torch.randn(80), torch.rand(80) + 0.5)
    ckpt = checkpoint.make_checkpoint(
        tiny_model, Vocabulary(), FeatureConfig(), normalizer, {"steps": 3}, {"dev_cer": 0.5}
    )
    assert all(v.dtype == torch.float16 for v in ckpt["model"].values() if v.is_floating_point())
    path = tmp_path / "m.pt"
    checkpoint.save(ckpt, path)
    raw = torch.load(path, weights_only=True)  # plain dict of tensors and builtins
    assert raw["kind"] == "streaming" and raw["labels"][0] == "_"
    loaded = checkpoint.load_model(path)
    assert loaded.model.config == tiny_model.config
    assert loaded.meta["training"]["steps"] == 3
    x = torch.randn(1, 30, 80)
    with torch.no_grad():
        ref, _, _ = tiny_model(x, torch.tensor([30]))
        got, _, _ = loaded.model(x, torch.tensor([30]))
    # fp16 storage costs ~1e-3 relative precision, not behaviour.
    torch.testing.assert_close(got, ref, atol=2e-2, rtol=1e-2)
    np.testing.assert_allclose(loaded.normalizer.mean.numpy(), normalizer.mean.numpy())


def test_load_model_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="model name"):
        checkpoint.load_model(tmp_path / "missing.pt")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="not a loadable checkpoint"):
        checkpoint.load_model(bad)


def test_default_sizes_fit_budget() -> None:
    from asr.model import OFFLINE_DEFAULT, STREAMING_DEFAULT

    for config in (STREAMING_DEFAULT, OFFLINE_DEFAULT):
        params = CTCModel(config).num_parameters()
        assert params * 2 < 40 * 2**20  # fp16 bytes under the 40 MB budget
    assert tiny_config().hidden == 16
    assert ModelConfig.from_dict(STREAMING_DEFAULT.to_dict()) == STREAMING_DEFAULT


def test_int8_model_streams_close_to_float() -> None:
    """The int8 copy keeps the interface (state, packed batches) and nearly the outputs."""
    from asr.model import quantize_int8

    torch.manual_seed(0)
    model = CTCModel(ModelConfig(n_mels=80, proj_dim=64, hidden=64, layers=2, vocab_size=29)).eval()
    q = quantize_int8(model)
    assert q.num_parameters() == model.num_parameters()
    assert any("quantized" in type(m).__module__ for m in q.modules())
    x = torch.randn(3, 30, 80)
    lengths = torch.tensor([30, 24, 9])
    with torch.inference_mode():
        a, la, (ha, _) = model(x, lengths)
        b, lb, (hb, _) = q(x, lengths)
        # Chunked with carried state: the int8 model still streams.
        first, _, state = q(x[:1, :12], torch.tensor([12]))
        rest, _, _ = q(x[:1, 12:], torch.tensor([18]), state)
    assert torch.equal(la, lb)
    assert (a.exp() - b.exp()).abs().max() < 0.05
    assert (ha - hb).abs().max() < 0.05
    whole = torch.cat([first, rest], dim=1)[0]
    assert (whole.exp() - b[0].exp()).abs().max() < 0.05

"""Function-preserving widening of a trained CTC model (Net2Net's "wider" step).

A model that underfits its training data needs more capacity, but training a bigger one
from scratch on 2 CPU cores takes days. Widening grows each LSTM layer from ``H`` to ``H'``
hidden units per direction so that the wider model computes what the trained one did,
then training continues from there. Two ways:

- ``split`` (Net2WiderNet; Chen, Goodfellow and Shlens, 2016): each new unit copies a
  randomly chosen trained unit (all four gates' incoming weights), and every weight that
  reads a unit that now has ``k`` copies is divided by ``k``. The copies have the same
  state at every step, so the outputs are unchanged, and the new units carry signal from
  the first step; dropout and optional noise on the copies' inputs make them drift apart.
- ``zero``: the new units get a fresh random init on their inputs, but every weight
  leaving them starts at zero (their columns in the trained units' recurrent matrices,
  in the next layer's input matrix and in the CTC head). Exact, but slow to be used:
  after 2,250 steps at lr 1.5e-4 the new columns of the BiLSTM's head had
  2.5% of the norm of the trained ones.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, replace

import torch

from asr.model import CTCModel

_LSTM_PARAM = re.compile(r"^lstm\.(weight_ih|weight_hh|bias_ih|bias_hh)_l(\d+)(_reverse)?$")


def _gate_rows(old: int, new: int) -> torch.Tensor:
    """Row indices in a (4 * new)-row gate matrix of the old model's 4 * old rows."""
    return torch.cat([torch.arange(g * new, g * new + old) for g in range(4)])


def _unit_columns(old: int, new: int, directions: int) -> torch.Tensor:
    """Column indices, in a layer output of directions * new units, of the old units."""
    return torch.cat([torch.arange(d * new, d * new + old) for d in range(directions)])


def widen_model(
    model: CTCModel, hidden: int, seed: int = 0, method: str = "split", noise: float = 0.0
) -> CTCModel:
    """A copy of ``model`` with ``hidden`` units per LSTM direction that gives the same outputs.

    ``method`` ``"split"`` (Net2WiderNet) copies randomly chosen trained units and shares
    their outgoing weights among the copies, so the new units are in use from the first
    step; ``noise`` (relative to each weight matrix's standard deviation) perturbs the
    copies' incoming weights so that they drift apart (dropout does that too; the outputs
    then match only approximately). ``"zero"`` gives the new units random inputs and zero
    outgoing weights instead.

    Raises:
        ValueError: ``hidden`` is not larger than the model's hidden size, or an unknown method.
    """
    old_h = model.config.hidden
    if hidden <= old_h:
        raise ValueError(f"expected a hidden size above {old_h}, got {hidden}")
    if method not in ("split", "zero"):
        raise ValueError(f"expected method 'split' or 'zero', got {method!r}")
    if method == "zero":
        return _widen_zero(model, hidden, seed)
    dirs = 2 if model.config.bidirectional else 1
    gen = torch.Generator().manual_seed(seed)
    wide = CTCModel(replace(model.config, hidden=hidden))
    old_state = model.state_dict()
    new_state = wide.state_dict()
    # For each layer and direction: which trained unit each of the `hidden` units copies,
    # and how many units share each trained unit's outgoing weights.
    origin: dict[tuple[int, int], torch.Tensor] = {}
    share: dict[tuple[int, int], torch.Tensor] = {}
    for layer in range(model.config.layers):
        for d in range(dirs):
            extra = torch.randperm(old_h, generator=gen)[: hidden - old_h]
            if hidden - old_h > old_h:
                extra = torch.randint(0, old_h, (hidden - old_h,), generator=gen)
            units = torch.cat([torch.arange(old_h), extra])
            origin[layer, d] = units
            share[layer, d] = torch.bincount(units, minlength=old_h).float()[units]

    def read_columns(layer: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Old input columns of each new column of a matrix that reads layer ``layer``'s output."""
        index = torch.cat([d * old_h + origin[layer, d] for d in range(dirs)])
        return index, torch.cat([share[layer, d] for d in range(dirs)])

    with torch.no_grad():
        for name, old in old_state.items():
            new = new_state[name]
            match = _LSTM_PARAM.match(name)
            if name == "head.1.weight":
                index, scale = read_columns(model.config.layers - 1)
                new.copy_(old[:, index] / scale)
                continue
            if match is None:
                new.copy_(old)  # the projection and the head's bias: their sizes do not change
                continue
            kind, layer, d = match.group(1), int(match.group(2)), int(match.group(3) is not None)
            rows = torch.cat([g * old_h + origin[layer, d] for g in range(4)])
            value = old[rows]
            if kind == "weight_hh":
                value = value[:, origin[layer, d]] / share[layer, d]
            elif kind == "weight_ih" and layer > 0:
                index, scale = read_columns(layer - 1)
                value = value[:, index] / scale
            if noise > 0 and kind.startswith("weight"):
                copies = torch.cat([torch.arange(g * hidden + old_h, (g + 1) * hidden) for g in range(4)])
                jitter = torch.randn(len(copies), value.shape[1], generator=gen) * noise * float(old.std())
                value[copies] += jitter
            new.copy_(value)
    wide.load_state_dict(new_state)
    return wide.train(model.training)


def _widen_zero(model: CTCModel, hidden: int, seed: int) -> CTCModel:
    """New units with random inputs and zero outgoing weights (exact, but slow to be used)."""
    old_h = model.config.hidden
    dirs = 2 if model.config.bidirectional else 1
    torch.manual_seed(seed)
    wide = CTCModel(replace(model.config, hidden=hidden))
    old_state = model.state_dict()
    new_state = wide.state_dict()
    rows = _gate_rows(old_h, hidden)
    cols = _unit_columns(old_h, hidden, dirs)
    with torch.no_grad():
        for name, old in old_state.items():
            new = new_state[name]
            match = _LSTM_PARAM.match(name)
            if match is None and not name.startswith("head."):
                new.copy_(old)  # the projection: its size does not change
                continue
            if name.startswith("head."):
                if name.endswith("weight"):  # (V, dirs * H): the new units' columns start at zero
                    new.zero_()
                    new[:, cols] = old
                else:
                    new.copy_(old)
                continue
            assert match is not None  # head.* parameters went on above
            kind, layer = match.group(1), int(match.group(2))
            if kind.startswith("bias"):
                new[rows] = old  # the new units keep their init (forget-gate bias included)
                continue
            # Trained units read none of the new units: zero their columns over new units.
            trained = new[rows]
            trained.zero_()
            if kind == "weight_hh":
                trained[:, :old_h] = old
            elif layer == 0:
                trained[:] = old  # the input is the projection, whose size does not change
            else:
                trained[:, cols] = old
            new[rows] = trained
    wide.load_state_dict(new_state)
    return wide.train(model.training)


@dataclass(frozen=True)
class Widened:
    """What :func:`widen_checkpoint` did: hidden units and parameter counts before and after."""

    hidden_before: int
    hidden_after: int
    params_before: int
    params_after: int


def widen_checkpoint(
    path: str | os.PathLike[str],
    hidden: int,
    out: str | os.PathLike[str],
    seed: int = 0,
    method: str = "split",
    noise: float = 0.0,
) -> Widened:
    """Widen the checkpoint at ``path`` (see :func:`widen_model`) and save it to ``out``.

    The new checkpoint keeps the vocabulary, features, normaliser and metrics, and records
    where it came from in ``training["widened_from"]``.
    """
    from asr import checkpoint

    loaded = checkpoint.load_model(path)
    wide = widen_model(loaded.model, hidden, seed=seed, method=method, noise=noise)
    training = dict(loaded.meta["training"])
    training["widened_from"] = {
        "path": str(path),
        "hidden": loaded.model.config.hidden,
        "method": method,
        "noise": noise,
        "steps": training.get("steps"),
    }
    ckpt = checkpoint.make_checkpoint(
        wide, loaded.vocab, loaded.features, loaded.normalizer, training, dict(loaded.meta["metrics"])
    )
    checkpoint.save(ckpt, out)
    return Widened(
        hidden_before=loaded.model.config.hidden,
        hidden_after=hidden,
        params_before=sum(p.numel() for p in loaded.model.parameters()),
        params_after=sum(p.numel() for p in wide.parameters()),
    )

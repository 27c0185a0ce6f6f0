"""Function-preserving widening of a trained CTC model (Net2Net-style "wider" step).

A model that underfits its training data needs more capacity, but training a bigger one
from scratch on 2 CPU cores takes days. Widening grows each LSTM layer from ``H`` to ``H'``
hidden units per direction so that the wider model computes exactly what the trained one
did, then training continues from there:

- the trained units keep their weights;
- the new units get a fresh random init on their inputs (so they are active and their
  outgoing weights get gradients), but every weight *leaving* them starts at zero: their
  columns in the recurrent matrices of the trained units, in the next layer's input
  matrix and in the CTC head.

So at step 0 the new units cannot change any output, and gradient descent decides how
much to use them. (Chen, Goodfellow and Shlens, "Net2Net", 2016, split existing units
instead; zero outgoing weights are the simpler, exact variant for a continued run.)
"""

from __future__ import annotations

import re
from dataclasses import replace

import torch

from asr.model import CTCModel

_LSTM_PARAM = re.compile(r"^lstm\.(weight_ih|weight_hh|bias_ih|bias_hh)_l(\d+)(_reverse)?$")


def _gate_rows(old: int, new: int) -> torch.Tensor:
    """Row indices in a (4 * new)-row gate matrix of the old model's 4 * old rows."""
    return torch.cat([torch.arange(g * new, g * new + old) for g in range(4)])


def _unit_columns(old: int, new: int, directions: int) -> torch.Tensor:
    """Column indices, in a layer output of directions * new units, of the old units."""
    return torch.cat([torch.arange(d * new, d * new + old) for d in range(directions)])


def widen_model(model: CTCModel, hidden: int, seed: int = 0) -> CTCModel:
    """A copy of ``model`` with ``hidden`` units per LSTM direction that gives the same outputs.

    Raises:
        ValueError: ``hidden`` is not larger than the model's hidden size.
    """
    old_h = model.config.hidden
    if hidden <= old_h:
        raise ValueError(f"expected a hidden size above {old_h}, got {hidden}")
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

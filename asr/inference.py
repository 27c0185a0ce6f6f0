"""The model's one inference path: normalised features in, CTC log-probs out.

Two shapes of call, both ``inputs -> log_probs`` with the state explicit:

- whole utterances, padded into batches by length (:func:`batch_log_probs`,
  :func:`sorted_log_probs`): evaluation, offline transcription, two-pass finals, fusion;
- streaming steps, ``(frames, state) -> (log_probs, state)`` (:func:`stream_step`, and
  :func:`stream_step_batch` for many streams in one packed call, as the server batches them).

:class:`asr.checkpoint.LoadedModel` adds the front end (log-mel and the checkpoint's
normaliser) on top of these.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch.nn.utils.rnn import pad_sequence

from asr.model import CTCModel, LSTMState

BATCH_FRAMES = 60_000  # 10 ms frames per padded whole-utterance batch (10 minutes of audio)


@torch.inference_mode()
def batch_log_probs(
    model: CTCModel, feats: Sequence[torch.Tensor], device: torch.device | str = "cpu"
) -> list[torch.Tensor]:
    """Whole-utterance log-probs for normalised features, one ``(T', V)`` tensor each,
    from one padded forward pass (rows are packed, so padding never reaches them)."""
    model.eval()
    lengths = torch.tensor([len(f) for f in feats])
    x = pad_sequence(list(feats), batch_first=True).to(device)  # (B, T, M)
    log_probs, out_lengths, _ = model(x, lengths.to(device))
    return [lp[: int(n)].cpu() for lp, n in zip(log_probs, out_lengths, strict=True)]


def length_batches(lengths: Sequence[int], max_frames: int = BATCH_FRAMES) -> list[list[int]]:
    """Indices sorted by length (stable), cut into batches whose padded size
    (rows x longest) stays within ``max_frames``; a longer row is a batch of its own."""
    if max_frames < 1:
        raise ValueError(f"expected max_frames >= 1, got {max_frames}")
    batches: list[list[int]] = []
    current: list[int] = []
    longest = 0
    for i in np.argsort(np.asarray(lengths, dtype=np.int64), kind="stable").tolist():
        n = int(lengths[i])
        if current and max(longest, n) * (len(current) + 1) > max_frames:
            batches.append(current)
            current, longest = [], 0
        current.append(i)
        longest = max(longest, n)
    if current:
        batches.append(current)
    return batches


def sorted_log_probs(
    model: CTCModel,
    feats: Sequence[torch.Tensor],
    max_frames: int = BATCH_FRAMES,
    device: torch.device | str = "cpu",
    progress: str | None = None,
) -> list[torch.Tensor]:
    """:func:`batch_log_probs` of many utterances, batched by length; results in input order.

    Rows shorter than one model step give an empty ``(0, V)`` output without a forward pass.
    ``progress``: a progress bar with this label.
    """
    out = [torch.zeros(0, model.config.vocab_size) for _ in feats]
    batches = length_batches([len(f) for f in feats], max_frames)
    if progress is not None:
        from tqdm import tqdm

        batches = tqdm(batches, desc=progress)
    for batch in batches:
        usable = [i for i in batch if len(feats[i]) >= model.config.stack]
        if usable:
            for i, lp in zip(usable, batch_log_probs(model, [feats[i] for i in usable], device), strict=True):
                out[i] = lp
    return out


@torch.inference_mode()
def stream_step(
    model: CTCModel, frames: torch.Tensor, state: LSTMState | None
) -> tuple[np.ndarray, LSTMState | None]:
    """One streaming step of one stream: ``(frames, state) -> (log_probs, state)``.

    Args:
        frames: ``(T, n_mels)`` normalised frames, ``T`` a multiple of the model's stack.
        state: the ``(h, c)`` this stream's previous step returned; None at its start.

    Returns:
        ``(T / stack, V)`` log-probs and the state after them (``state`` itself when
        ``frames`` is empty).
    """
    if len(frames) == 0:
        return np.zeros((0, model.config.vocab_size), np.float32), state
    lp, _, new_state = model(frames[None], torch.tensor([len(frames)]), state)  # lp: (1, T', V)
    return lp[0].numpy(), new_state


@torch.inference_mode()
def stream_step_batch(
    model: CTCModel, frames: Sequence[torch.Tensor], states: Sequence[LSTMState | None]
) -> list[tuple[np.ndarray, LSTMState | None]]:
    """:func:`stream_step` of many streams in one forward pass.

    Rows of different lengths are padded and packed, so each row's log-probs and state
    equal its own :func:`stream_step`. Empty rows are left out of the pass and get
    ``(empty log-probs, their state unchanged)``.
    """
    if len(frames) != len(states):
        raise ValueError(f"expected one state per row, got {len(frames)} rows and {len(states)} states")
    empty = np.zeros((0, model.config.vocab_size), np.float32)
    outputs: list[tuple[np.ndarray, LSTMState | None]] = [(empty, s) for s in states]
    run = [k for k, f in enumerate(frames) if len(f)]
    if not run:
        return outputs
    lengths = torch.tensor([len(frames[k]) for k in run])
    x = pad_sequence([frames[k] for k in run], batch_first=True)  # (B, T_max, M)
    rows = [states[k] or model.initial_state(1) for k in run]
    h = torch.cat([s[0] for s in rows], dim=1)  # (L, B, H)
    c = torch.cat([s[1] for s in rows], dim=1)
    lp, out_lengths, (h_new, c_new) = model(x, lengths, (h, c))  # lp: (B, T', V)
    # One split and one numpy view for the whole batch, not ops per row: each torch call
    # releases and re-takes the GIL, which a server's event loop holds meanwhile.
    h_rows, c_rows = h_new.split(1, dim=1), c_new.split(1, dim=1)
    lp_np = lp.numpy()
    for row, (k, steps) in enumerate(zip(run, out_lengths.tolist(), strict=True)):
        outputs[k] = (lp_np[row, :steps], (h_rows[row], c_rows[row]))
    return outputs

"""Incremental CTC prefix beam search with a KenLM n-gram, on pyctcdecode's scorers.

pyctcdecode's ``decode_beams`` searches a whole utterance in one call. A server that
calls it at each endpoint pays for the whole utterance at that moment, so a final
waits for its search, and at a few hundred streams the finals queue up behind each
other. :class:`IncrementalBeamSearch` runs the same search frame by frame as the audio
arrives: :meth:`~IncrementalBeamSearch.extend` takes the next frames, and
:meth:`~IncrementalBeamSearch.result` only has to score the end of the sentence.

It is pyctcdecode 0.5's ``_decode_logits`` loop (character vocabulary, no BPE, no
history pruning), made resumable, with three changes that leave its results as they
were:

* repeated blank-only frames are skipped (:class:`BlankFrameSkipper`): every beam
  takes the blank there, which adds the same log-prob to every score;
* scores are Python floats rather than numpy scalars (pyctcdecode's sums are float64
  too, so the arithmetic is the same, only faster);
* the language model, the hotword scorer and the beam merging are pyctcdecode's own
  (``BeamSearchDecoderCTC._get_lm_beams`` and the module's ``_merge_beams``), so the
  scores are its scores. A test checks chunked incremental decoding against
  ``decode_beams`` on the whole input.
"""

from __future__ import annotations

import math
import operator
import weakref
from collections.abc import Sequence
from typing import Any

import numpy as np
from pyctcdecode.constants import MIN_TOKEN_CLIP_P
from pyctcdecode.decoder import (
    NULL_FRAMES,
    Beam,
    BeamSearchDecoderCTC,
    _log_softmax,
    _merge_beams,
    _normalize_whitespace,
    _sort_and_trim_beams,
    _sum_log_scores,
)
from pyctcdecode.language_model import HotwordScorer

from asr.text import BLANK

# (text, [(word, (first frame, end frame))], acoustic log score, combined score); best first
BeamOutput = tuple[str, list[tuple[str, tuple[int, int]]], float, float]

_LOG_CLIP = math.log(MIN_TOKEN_CLIP_P)

# Partial-word LM scores depend only on the word so far and the LM, so searches without
# hotwords share one cache per decoder (a server's streams hit the same prefixes again and
# again). Cleared when it grows past this many words.
_PARTIAL_CACHE_MAX = 200_000
_COMBINED = operator.itemgetter(8)  # a scored beam's combined score (see _score_and_trim)
_SHARED_PARTIAL: weakref.WeakKeyDictionary[BeamSearchDecoderCTC, dict[str, float]] = (
    weakref.WeakKeyDictionary()
)


class BlankFrameSkipper:
    """Drops the frames a CTC beam search cannot act on, as they arrive.

    A frame is *blank-only* when blank is its best symbol and every other symbol is
    below ``token_min_logp``: the beam search extends every beam with the blank there
    and nothing else. The first frame of a run of blank-only frames matters (a repeated
    character may follow it); the rest of the run maps the beams onto themselves and
    are dropped, their blank log-probs summed in :attr:`dropped_score`.
    """

    def __init__(self, token_min_logp: float, blank: int = BLANK) -> None:
        self.token_min_logp = token_min_logp
        self.blank = blank
        self.frames = 0  # frames seen so far
        self.dropped_score = 0.0
        self._previous_blank_only = False

    def __call__(self, log_probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Next frames ``(n, V)`` -> ``(kept frames, index of each kept frame since the start)``."""
        lp = np.asarray(log_probs, dtype=np.float32)
        if len(lp) == 0:
            return lp, np.zeros(0, np.int64)
        others = np.delete(lp, self.blank, axis=1).max(axis=1)  # (n,)
        blank_only = (others < self.token_min_logp) & (lp.argmax(axis=1) == self.blank)
        previous = np.concatenate([[self._previous_blank_only], blank_only[:-1]])
        drop = blank_only & previous
        keep = np.flatnonzero(~drop)
        self.dropped_score += float(lp[drop, self.blank].sum())
        index = keep + self.frames
        self.frames += len(lp)
        self._previous_blank_only = bool(blank_only[-1])
        return lp[keep], index


def compress_blank_frames(
    log_probs: np.ndarray, token_min_logp: float, blank: int = BLANK
) -> tuple[np.ndarray, np.ndarray, float]:
    """:class:`BlankFrameSkipper` over a whole utterance.

    Returns:
        ``(kept log-probs, original index of each kept frame, summed log-prob of the
        dropped frames)``; add the last to a beam's score to get the uncompressed score.
    """
    skipper = BlankFrameSkipper(token_min_logp, blank)
    kept, index = skipper(log_probs)
    return kept, index, skipper.dropped_score


class IncrementalBeamSearch:
    """One utterance's beam search, fed frame by frame.

    Args:
        decoder: pyctcdecode's decoder (its LM, alpha/beta and vocabulary are used).
        beam_width / beam_prune_logp / token_min_logp: as in ``decode_beams``.
        hotwords / hotword_weight: per-utterance hotwords and their boost.
    """

    def __init__(
        self,
        decoder: BeamSearchDecoderCTC,
        beam_width: int,
        beam_prune_logp: float,
        token_min_logp: float,
        hotwords: Sequence[str] | None = None,
        hotword_weight: float = 10.0,
    ) -> None:
        if beam_width < 1:
            raise ValueError(f"expected beam_width >= 1, got {beam_width}")
        if decoder._is_bpe:  # noqa: SLF001 - our vocabulary is characters
            raise ValueError("expected a character vocabulary, got a BPE decoder")
        self._decoder = decoder
        self.beam_width = beam_width
        self.beam_prune_logp = beam_prune_logp
        self.token_min_logp = token_min_logp
        self._labels: list[str] = [decoder._idx2vocab[i] for i in range(len(decoder._idx2vocab))]  # noqa: SLF001
        words = [h for h in (hotwords or ()) if h.strip()] or None
        self._hotwords = HotwordScorer.build_scorer(words, weight=hotword_weight)
        self._has_hotwords = bool(words)
        lm = decoder._language_model  # noqa: SLF001
        start = lm.get_start_state() if lm is not None else None
        self._lm_cache: dict[tuple[str, bool], Any] = {("", False): (0.0, 0.0, start)}
        # With hotwords a partial word's score depends on them: a cache of this search's own.
        self._partial_cache: dict[str, float] = {} if words else _SHARED_PARTIAL.setdefault(decoder, {})
        # pyctcdecode's EMPTY_START_BEAM in this class's layout (see _step)
        self._beams: list[Any] = [("", "", None, [], NULL_FRAMES, 0.0, 0.0, 0.0)]
        self.frames_searched = 0

    def extend(self, log_probs: np.ndarray, index: np.ndarray | None = None) -> None:
        """Search the next frames.

        Args:
            log_probs: ``(n, V)`` log-probs (rows are renormalised and clipped as
                pyctcdecode does).
            index: each row's frame number in the utterance (word times come from it);
                by default the rows follow on from the frames searched so far.
        """
        if len(log_probs) == 0:
            return
        # pyctcdecode types it for np.floating[NBitBase] only, which no concrete float array is.
        lp = np.clip(_log_softmax(np.asarray(log_probs, dtype=np.float32), axis=1), _LOG_CLIP, 0)  # type: ignore[type-var]
        if index is None:
            index = np.arange(self.frames_searched, self.frames_searched + len(lp))
        above = lp >= self.token_min_logp  # (n, V)
        # each frame's symbols above the floor, ascending (np.flatnonzero of its row), in one call
        counts = above.sum(axis=1).tolist()
        columns = np.nonzero(above)[1].tolist()
        beams = self._beams
        rows = zip(lp.tolist(), counts, lp.argmax(axis=1).tolist(), index.tolist(), strict=True)
        start = 0
        for row, count, best_char, frame_idx in rows:
            # The same set as pyctcdecode's, built the same way: its iteration order decides
            # which of two merged beams keeps its word frames.
            candidates = set(columns[start : start + count]) | {best_char}
            start += count
            beams = self._step(beams, row, candidates, frame_idx)
        self._beams = beams
        self.frames_searched = int(index[-1]) + 1

    def _step(self, beams: list[Any], row: list[float], candidates: set[int], frame_idx: int) -> list[Any]:
        """One frame: extend every beam by every candidate symbol, merge, score, prune, trim.

        pyctcdecode's frame loop with ``_merge_beams`` and ``_get_lm_beams`` fused into
        one pass, giving the same results (``tests/test_decoding.py``): the same beams in
        the same order (a merged beam keeps its first place and takes the later beam's
        fields), the same float operations and the same caches.

        Between frames a beam is ``(text, word_part, last_char, text_frames, part_frames,
        logit, lm_text, partial)``: pyctcdecode's beam without its always-empty
        ``next_word``, plus the LM (and hotword) score of ``text`` and the partial word's
        score. A blank or a repeat leaves text and word as they were, so only beams whose
        word grew or ended need the caches.
        """
        labels = self._labels
        end = frame_idx + 1
        # key (text with the ended word, word_part, last_char) -> [text, next_word,
        # word_part, last_char, text_frames, part_frames, logit, lm_text, partial]; the
        # LM fields are None where _score_and_trim must look them up.
        merged: dict[tuple[str, str, str], list[Any]] = {}
        get = merged.get
        for idx_char in candidates:
            p_char = row[idx_char]
            char = labels[idx_char]
            for text, word_part, last_char, text_frames, part_frames, logit, lm_text, partial in beams:
                if char == "":  # blank
                    key = (text, word_part, "")
                    new = [text, "", word_part, "", text_frames, part_frames, logit + p_char, lm_text, partial]  # fmt: skip
                elif last_char == char:  # a repeat that collapses
                    key = (text, word_part, char)
                    new = [
                        text, "", word_part, char, text_frames, (part_frames[0], end), logit + p_char, lm_text, partial
                    ]  # fmt: skip
                elif char == " ":  # a word ends
                    frames = text_frames if word_part == "" else text_frames + [part_frames]
                    if word_part == "":
                        key = (text, "", " ")
                        new = [text, "", "", " ", frames, NULL_FRAMES, logit + p_char, lm_text, 0.0]
                    else:
                        key = (text + " " + word_part if text else word_part, "", " ")
                        new = [text, word_part, "", " ", frames, NULL_FRAMES, logit + p_char, None, 0.0]
                else:  # the word goes on
                    grown = word_part + char
                    key = (text, grown, char)
                    new_part = (frame_idx, end) if part_frames[0] < 0 else (part_frames[0], end)
                    new = [text, "", grown, char, text_frames, new_part, logit + p_char, lm_text, None]
                have = get(key)
                if have is not None:  # as _merge_beams: the later beam's fields, the scores summed
                    new[6] = _sum_log_scores(have[6], new[6])
                merged[key] = new
        return self._score_and_trim(merged)

    def _score_and_trim(self, merged: dict[tuple[str, str, str], list[Any]]) -> list[Any]:
        """pyctcdecode's ``_get_lm_beams`` (not at the sentence end), prune and trim."""
        lm_model = self._decoder._language_model  # noqa: SLF001
        hotwords = self._hotwords
        lm_cache = self._lm_cache
        partial_cache = self._partial_cache
        has_hotwords = self._has_hotwords
        scored = []
        for (new_text, word_part, last_char), beam in merged.items():
            text, next_word, _, _, frames, part, logit, lm_text, partial = beam
            if lm_text is None:  # a word ended: the text's score, from the cache or the LM
                cached = lm_cache.get((new_text, False))
                if cached is None:
                    _, prev_raw, start_state = lm_cache[(text, False)]
                    if lm_model is None:
                        raw, end_state = 0.0, None
                    else:
                        lm_part, end_state = lm_model.score(start_state, next_word, is_last_word=False)
                        raw = prev_raw + lm_part
                    hot = hotwords.score(new_text) if has_hotwords else 0.0  # raw + 0.0 == raw
                    cached = lm_cache[(new_text, False)] = (raw + hot, raw, end_state)
                lm_text = cached[0]
            if partial is None:  # the word grew
                partial = partial_cache.get(word_part)
                if partial is None:
                    if lm_model is None or word_part in hotwords:
                        partial = hotwords.score_partial_token(word_part)
                    else:
                        partial = lm_model.score_partial_token(word_part)
                    if len(partial_cache) >= _PARTIAL_CACHE_MAX:
                        partial_cache.clear()
                    partial_cache[word_part] = partial
            # pyctcdecode's sums in its order: (logit + hotwords) + partial without an LM,
            # logit + (LM + partial) with one (x + 0.0 == x where there is no partial word)
            combined = logit + lm_text + partial if lm_model is None else logit + (lm_text + partial)
            scored.append((new_text, word_part, last_char, frames, part, logit, lm_text, partial, combined))
        # pyctcdecode prunes below best + beam_prune_logp, then keeps the beam_width best
        # (heapq.nlargest, ties in list order, which is documented to equal a stable sort
        # with reverse=True). Trimming first and pruning the few left is the same: every
        # beam above the floor outranks every beam below it.
        top = sorted(scored, key=_COMBINED, reverse=True)[: self.beam_width]
        floor = top[0][8] + self.beam_prune_logp
        return [b[:-1] for b in top if b[8] >= floor]

    def result(self) -> list[BeamOutput]:
        """The beams so far, best first, with the end of the sentence scored.

        The search itself is unchanged, so it can go on (a partial result) or end here.
        """
        closing: list[Beam] = []
        for text, word_part, _, frame_list, frames, score, _, _ in self._beams:
            word_times = frame_list if word_part == "" else frame_list + [frames]
            closing.append((text, word_part, "", None, word_times, NULL_FRAMES, score))
        scored = self._decoder._get_lm_beams(  # noqa: SLF001
            _merge_beams(closing), self._hotwords, self._lm_cache, self._partial_cache, is_eos=True
        )
        best = max(b[-1] for b in scored)
        scored = [b for b in scored if b[-1] >= best + self.beam_prune_logp]
        return [
            (_normalize_whitespace(text), list(zip(text.split(), word_times, strict=False)), logit, combined)
            for text, _, _, _, word_times, _, logit, combined in _sort_and_trim_beams(scored, self.beam_width)
        ]

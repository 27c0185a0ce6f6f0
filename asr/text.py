"""Text normalisation, the character vocabulary and greedy CTC decoding.

The recogniser emits characters from :data:`LABELS`: index 0 is the CTC blank,
index 1 is the space, then the apostrophe and the 26 lowercase letters.
:func:`normalize_text` maps arbitrary transcripts onto that alphabet (numbers
spelt out, accents stripped, punctuation removed) so they can be encoded with
:class:`Vocabulary`.
"""

from __future__ import annotations

import logging
import numbers
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import torch

logger = logging.getLogger(__name__)

BLANK = 0
LABELS: tuple[str, ...] = ("_", " ", "'") + tuple("abcdefghijklmnopqrstuvwxyz")

# ---------------------------------------------------------------------------
# Numbers
# ---------------------------------------------------------------------------

_ONES = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen "
    "fourteen fifteen sixteen seventeen eighteen nineteen"
).split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
_SCALES = (
    "",
    "thousand",
    "million",
    "billion",
    "trillion",
    "quadrillion",
    "quintillion",
    "sextillion",
    "septillion",
    "octillion",
    "nonillion",
    "decillion",
)
MAX_NUMBER = 1000 ** len(_SCALES) - 1
_IRREGULAR_ORDINALS = {
    "one": "first",
    "two": "second",
    "three": "third",
    "five": "fifth",
    "eight": "eighth",
    "nine": "ninth",
    "twelve": "twelfth",
}
_ORDINAL_RE = re.compile(r"^\s*(-?[0-9]+)\s*(st|nd|rd|th)?\s*$", re.IGNORECASE)


def _below_thousand(n: int) -> list[str]:
    assert 0 <= n < 1000
    words: list[str] = []
    hundreds, rest = divmod(n, 100)
    if hundreds:
        words += [_ONES[hundreds], "hundred"]
    if rest >= 20:
        tens, ones = divmod(rest, 10)
        words.append(_TENS[tens])
        if ones:
            words.append(_ONES[ones])
    elif rest or not words:
        words.append(_ONES[rest])
    return words


def number_to_words(n: int) -> str:
    """Spell out an integer as English cardinal words.

    No hyphens and no "and": ``1999`` gives ``"one thousand nine hundred ninety
    nine"``; ``-5`` gives ``"minus five"``.

    Args:
        n: An integer with ``abs(n) <= MAX_NUMBER`` (just under 10**36).

    Returns:
        The words, separated by single spaces.

    Raises:
        ValueError: If ``n`` is not an integer or is out of range.
    """
    if isinstance(n, bool) or not isinstance(n, numbers.Integral):
        raise ValueError(f"expected an integer, got {n!r}")
    n = int(n)
    if abs(n) > MAX_NUMBER:
        raise ValueError(f"expected abs(n) <= {MAX_NUMBER}, got {n}")
    if n < 0:
        return "minus " + number_to_words(-n)
    if n == 0:
        return "zero"
    words: list[str] = []
    for scale in reversed(range(len(_SCALES))):
        chunk = (n // 1000**scale) % 1000
        if chunk:
            words += _below_thousand(chunk)
            if _SCALES[scale]:
                words.append(_SCALES[scale])
    return " ".join(words)


def _ordinal_word(word: str) -> str:
    if word in _IRREGULAR_ORDINALS:
        return _IRREGULAR_ORDINALS[word]
    if word.endswith("y"):
        return word[:-1] + "ieth"
    return word + "th"


def ordinal_to_words(n: int | str) -> str:
    """Spell out an ordinal number: ``1`` or ``"1st"`` gives ``"first"``.

    Args:
        n: An integer, or a string of digits with an optional ordinal suffix
            (``"22nd"``, ``"100th"``). The suffix is not checked against the number.

    Returns:
        The ordinal words, e.g. ``"twenty second"`` or ``"one hundredth"``.

    Raises:
        ValueError: If ``n`` is not an integer or such a string, or is out of range.
    """
    if isinstance(n, str):
        match = _ORDINAL_RE.match(n)
        if match is None:
            raise ValueError(f"expected an ordinal such as '22nd', got {n!r}")
        n = int(match.group(1))
    words = number_to_words(n).split()
    words[-1] = _ordinal_word(words[-1])
    return " ".join(words)


def year_to_words(n: int) -> str:
    """Read a year the way it is spoken: ``1984`` -> ``"nineteen eighty four"``.

    Years 1100-1999 and 2010-2099 are read in two halves (``1900`` -> ``"nineteen
    hundred"``, ``1905`` -> ``"nineteen oh five"``, ``2025`` -> ``"twenty twenty
    five"``); any other number is read as a cardinal (``2005`` -> ``"two thousand
    five"``).
    """
    if isinstance(n, bool) or not isinstance(n, numbers.Integral):
        raise ValueError(f"expected an integer, got {n!r}")
    n = int(n)
    if not (1100 <= n <= 1999 or 2010 <= n <= 2099):
        return number_to_words(n)
    high, low = divmod(n, 100)
    if low == 0:
        return f"{number_to_words(high)} hundred"
    if low < 10:
        return f"{number_to_words(high)} oh {number_to_words(low)}"
    return f"{number_to_words(high)} {number_to_words(low)}"


def _digits_to_words(digits: str) -> str:
    return " ".join(_ONES[int(d)] for d in digits)


def _integer_words(digits: str) -> str:
    """Words for a run of ASCII digits (thousands commas already removed)."""
    if len(digits) > 1 and digits.startswith("0"):
        return _digits_to_words(digits)  # "007" -> "zero zero seven"
    value = int(digits)
    if value > MAX_NUMBER:
        return _digits_to_words(digits)
    return number_to_words(value)


def _plural(words: str) -> str:
    """Plural of a spelt-out number, for decades such as "1990s" or "80s"."""
    if words.endswith("y"):
        return words[:-1] + "ies"
    if words.endswith(("s", "x")):
        return words + "es"
    return words + "s"


# ---------------------------------------------------------------------------
# Normalisation
# ---------------------------------------------------------------------------

# Letters that NFKD does not decompose into ASCII.
_LETTER_MAP = str.maketrans(
    {
        "æ": "ae",
        "œ": "oe",
        "ø": "o",
        "ł": "l",
        "đ": "d",
        "ð": "d",
        "þ": "th",
        "ı": "i",
        "ŋ": "ng",
        "ß": "ss",
        "‘": "'",
        "’": "'",
        "‛": "'",
        "ʼ": "'",
        "`": "'",
        "−": "-",  # minus sign
    }
)
_ORDINAL_IN_TEXT = re.compile(r"(?<![0-9.,])([0-9]{1,3}(?:,[0-9]{3})+|[0-9]+)(st|nd|rd|th)(?![a-z])")
_NUMBER_IN_TEXT = re.compile(
    r"(?<![0-9])(?P<minus>(?<![^\s(\[])-)?"
    r"(?P<int>[0-9]{1,3}(?:,[0-9]{3})+|[0-9]+)"
    r"(?:\.(?P<frac>[0-9]+))?"
    r"(?P<plural>s(?![a-z]))?"
    r"(?![0-9])"
)
_NOT_IN_ALPHABET = re.compile(r"[^a-z' ]+")
_APOSTROPHES = re.compile(r"'{2,}")


def _replace_ordinal(match: re.Match[str]) -> str:
    digits = match.group(1).replace(",", "")
    if int(digits) > MAX_NUMBER:
        return f" {_digits_to_words(digits)} {match.group(2)} "
    return f" {ordinal_to_words(int(digits))} "


def _replace_number(match: re.Match[str]) -> str:
    raw_int = match.group("int")
    digits = raw_int.replace(",", "")
    frac = match.group("frac")
    if frac is None and "," not in raw_int and len(digits) == 4:
        words = year_to_words(int(digits))
    else:
        words = _integer_words(digits)
    if frac is not None:
        words += " point " + _digits_to_words(frac)
    if match.group("plural"):
        words = _plural(words)
    if match.group("minus"):
        words = "minus " + words
    return f" {words} "


def _clean_token(token: str) -> str:
    """Apply the apostrophe rules to one whitespace-free token."""
    token = _APOSTROPHES.sub("'", token)
    quoted = token.startswith("'")
    token = token.lstrip("'")
    if token.endswith("'") and (quoted or not token.endswith("s'")):
        token = token.rstrip("'")
    return token


def normalize_text(text: str) -> str:
    """Map a transcript onto the vocabulary alphabet (``a-z``, space, apostrophe).

    Unicode is NFKD-decomposed and accents stripped, text is lowercased, numbers
    are spelt out (ordinals, decimals, thousands commas, standalone years,
    decades such as "1990s"), "%" becomes "percent" and "&" becomes "and". All
    other punctuation (hyphens and slashes included) becomes a space, and
    apostrophes survive only inside words or after a plural "s" ("dogs'").

    Args:
        text: Any string.

    Returns:
        The normalised text; whitespace is collapsed and stripped. The function is
        idempotent.
    """
    if not isinstance(text, str):
        raise ValueError(f"expected str, got {type(text).__name__}")
    text = unicodedata.normalize("NFKD", text.casefold()).lower()
    text = "".join(c for c in text if not unicodedata.combining(c))
    text = text.translate(_LETTER_MAP)
    text = text.replace("&", " and ").replace("%", " percent ")
    text = _ORDINAL_IN_TEXT.sub(_replace_ordinal, text)
    text = _NUMBER_IN_TEXT.sub(_replace_number, text)
    text = _NOT_IN_ALPHABET.sub(" ", text)
    tokens = (_clean_token(t) for t in text.split())
    return " ".join(t for t in tokens if t)


# The KJV bible (a quarter of the corpus text) writes some compounds as two words. Modern
# transcripts, and what users expect to read, join them; "day to day" keeps its space.
_SPLIT_COMPOUNDS = re.compile(
    r"\b(?:(to) (morrow)|(?<!\bday )(to) (day)|(any|every) (thing)|(every) (where))\b"
)


def join_split_compounds(text: str) -> str:
    """Join the archaic two-word spellings of the corpus text in normalised text.

    "to morrow", "to day" (not in "day to day"), "any thing", "every thing" and
    "every where" become "tomorrow", "today", "anything", "everything" and
    "everywhere". Applied to training labels and LM text (not to the corpus split),
    so models never learn the split spellings.
    """
    return _SPLIT_COMPOUNDS.sub(lambda m: "".join(g for g in m.groups() if g), text)


def clean_sentence(text: str, min_words: int = 3, max_words: int = 25) -> str | None:
    """Normalise a sentence and keep it only if its word count is in range.

    Args:
        text: The raw sentence.
        min_words: Fewest words accepted (inclusive).
        max_words: Most words accepted (inclusive).

    Returns:
        The normalised sentence, or ``None`` when it is empty or has fewer than
        ``min_words`` or more than ``max_words`` words.
    """
    if min_words < 0 or max_words < min_words:
        raise ValueError(
            f"expected 0 <= min_words <= max_words, got min_words={min_words}, max_words={max_words}"
        )
    normalized = normalize_text(text)
    count = len(normalized.split())
    if count == 0 or not min_words <= count <= max_words:
        return None
    return normalized


# ---------------------------------------------------------------------------
# Vocabulary and CTC
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Vocabulary:
    """A character vocabulary whose index :data:`BLANK` is the CTC blank."""

    labels: tuple[str, ...] = LABELS
    _index: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        labels = tuple(self.labels)
        if len(labels) < 2:
            raise ValueError(f"expected at least 2 labels, got {len(labels)}")
        for label in labels:
            if not isinstance(label, str) or len(label) != 1:
                raise ValueError(f"expected single-character labels, got {label!r}")
        if len(set(labels)) != len(labels):
            raise ValueError(f"expected unique labels, got {labels!r}")
        object.__setattr__(self, "labels", labels)
        index = {label: i for i, label in enumerate(labels) if i != BLANK}
        object.__setattr__(self, "_index", index)

    @property
    def blank(self) -> int:
        """Index of the CTC blank."""
        return BLANK

    def __len__(self) -> int:
        return len(self.labels)

    def encode(self, text: str) -> list[int]:
        """Map normalised text to label ids.

        Raises:
            ValueError: If a character is not in the vocabulary (the blank label
                counts as outside it). Run :func:`normalize_text` first.
        """
        try:
            return [self._index[c] for c in text]
        except KeyError as exc:
            raise ValueError(
                f"expected only vocabulary characters, got {exc.args[0]!r} in {text!r}"
            ) from None

    def decode(self, ids: Iterable[int]) -> str:
        """Map label ids to text, dropping blanks (repeats are not merged)."""
        chars: list[str] = []
        for raw in ids:
            i = int(raw)
            if not 0 <= i < len(self.labels):
                raise ValueError(f"expected ids in [0, {len(self.labels)}), got {i}")
            if i != BLANK:
                chars.append(self.labels[i])
        return "".join(chars)

    def pyctcdecode_labels(self) -> list[str]:
        """Labels in the form pyctcdecode expects: the blank as ``""``."""
        return ["" if i == BLANK else label for i, label in enumerate(self.labels)]

    def to_list(self) -> list[str]:
        """Plain list for a checkpoint dict."""
        return list(self.labels)

    @classmethod
    def from_list(cls, labels: Sequence[str]) -> Vocabulary:
        """Rebuild a vocabulary saved with :meth:`to_list`."""
        return cls(tuple(labels))


def ctc_collapse(ids: Sequence[int], blank: int = BLANK) -> list[int]:
    """Merge repeated ids, then drop blanks (the CTC many-to-one map)."""
    out: list[int] = []
    previous: int | None = None
    for raw in ids:
        i = int(raw)
        if i != previous and i != blank:
            out.append(i)
        previous = i
    return out


def _argmax_ids(log_probs: np.ndarray | torch.Tensor | Any) -> list[int]:
    """Per-frame argmax of a (T, V) array or tensor, as a list of ints."""
    if not isinstance(log_probs, np.ndarray):
        import torch  # deferred: text processing alone should not need torch

        if isinstance(log_probs, torch.Tensor):
            if log_probs.ndim != 2:
                raise ValueError(f"expected log_probs of shape (T, V), got {tuple(log_probs.shape)}")
            return [int(i) for i in log_probs.argmax(dim=-1).tolist()]
        log_probs = np.asarray(log_probs)
    if log_probs.ndim != 2:
        raise ValueError(f"expected log_probs of shape (T, V), got {log_probs.shape}")
    return [int(i) for i in log_probs.argmax(axis=-1).tolist()]


def greedy_decode(log_probs: np.ndarray | torch.Tensor, vocab: Vocabulary | None = None) -> str:
    """Best-path CTC decoding of one utterance.

    Args:
        log_probs: Scores of shape (T, V), numpy array or torch tensor.
        vocab: The vocabulary; defaults to ``Vocabulary()``.

    Returns:
        The text with repeats merged, blanks dropped, and spaces collapsed.
    """
    vocab = vocab if vocab is not None else Vocabulary()
    if log_probs.shape[-1] != len(vocab):
        raise ValueError(f"expected {len(vocab)} classes in the last axis, got {log_probs.shape[-1]}")
    text = vocab.decode(ctc_collapse(_argmax_ids(log_probs), vocab.blank))
    return " ".join(text.split())


def greedy_decode_with_frames(
    log_probs: np.ndarray | torch.Tensor, blank: int = BLANK
) -> list[tuple[int, int]]:
    """Best-path CTC decoding that keeps the frame where each token starts.

    Args:
        log_probs: Scores of shape (T, V), numpy array or torch tensor.
        blank: Index of the blank.

    Returns:
        ``(token_id, first_frame)`` for each emitted token, in order.
    """
    out: list[tuple[int, int]] = []
    previous: int | None = None
    for frame, i in enumerate(_argmax_ids(log_probs)):
        if i != previous and i != blank:
            out.append((i, frame))
        previous = i
    return out

"""Small pieces the subcommand modules share."""

from __future__ import annotations

import argparse
from pathlib import Path

Subparsers = argparse._SubParsersAction  # the type of ``parser.add_subparsers()``


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows each flag's default once: not for switches, nor where the default is None or
    empty (such flags say in their help what happens without them)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default in (None, []) or isinstance(
            action, argparse._StoreTrueAction | argparse._StoreFalseAction
        ):
            return action.help
        return super()._get_help_string(action)


def models_dir() -> Path:
    from asr.checkpoint import MODELS_DIR

    return MODELS_DIR


def default_lm() -> str:
    """The shipped language model's folder."""
    return str(models_dir() / "lm")


def add_decoding_flags(p: argparse.ArgumentParser) -> None:
    """--lm, --no-lm and --no-fusion: the language model and fusion of the finals."""
    p.add_argument("--lm", default=default_lm(), help="language model folder")
    p.add_argument("--no-lm", action="store_true", help="beam search without a language model")
    p.add_argument(
        "--no-fusion",
        action="store_true",
        help="two-pass and offline finals from the BiLSTM alone, not fused with the streaming model "
        "(models/fusion.json)",
    )


def positive_int(text: str) -> int:
    """An argparse ``type`` for whole numbers >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a number >= 1, got {value}")
    return value


def set_threads(threads: int) -> None:
    """``torch.set_num_threads(threads)`` unless 0 (torch's default)."""
    if threads:
        import torch

        torch.set_num_threads(threads)

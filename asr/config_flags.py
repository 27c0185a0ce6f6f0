"""Command-line flags built from a config dataclass's fields, so each default is written once.

A field becomes a flag; its ``metadata`` says how (:func:`option` writes it)::

    @dataclass
    class Config:
        max_steps: int = option(20000, help="total optimizer steps", flag="--steps")
        specaugment: bool = option(True, help="disable SpecAugment", flag="--no-specaugment")

    add_dataclass_flags(parser, Config, skip={"extra"})
    config = dataclass_from_args(Config, parser.parse_args())

Metadata keys (all optional): ``help``; ``flag`` (default ``--field-name``); ``metavar``,
``choices``, ``nargs`` and ``action`` as in argparse; ``required``; ``cli: False`` keeps a
field off the command line. The flag's ``dest`` is always the field's name. Types come from
the annotation: ``int``, ``float``, ``str``, ``X | None`` (the flag takes an ``X``), and
``list[X]`` (one or more values). A ``bool`` field defaulting to False is a switch; one
defaulting to True is ``--no-NAME`` when its flag says so, else ``--NAME/--no-NAME``.
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

T = TypeVar("T")

_SCALARS = (int, float, str)


def option(
    default: Any = dataclasses.MISSING,
    *,
    help: str,
    default_factory: Any = dataclasses.MISSING,
    **metadata: Any,
) -> Any:
    """``dataclasses.field`` with the flag's help text and other metadata (see the module docstring)."""
    return dataclasses.field(
        default=default, default_factory=default_factory, metadata={"help": help, **metadata}
    )


def _flag_type(annotation: Any) -> tuple[type, bool]:
    """``(scalar type, is a list)`` of a field annotation; ValueError for what flags can't hold."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return _flag_type(args[0])
    elif origin is list:
        (item,) = typing.get_args(annotation)
        if item in _SCALARS:
            return item, True
    elif annotation in (*_SCALARS, bool):
        return annotation, False
    raise ValueError(f"expected a field of int, float, str, bool, X | None or list[X], got {annotation!r}")


def cli_fields(cls: type, skip: Iterable[str] = ()) -> list[dataclasses.Field[Any]]:
    """The fields of dataclass ``cls`` that become flags (init fields, not skipped, not ``cli: False``)."""
    if not dataclasses.is_dataclass(cls):
        raise ValueError(f"expected a dataclass, got {cls!r}")
    skipped = set(skip)
    names = {f.name for f in dataclasses.fields(cls)}
    if unknown := skipped - names:
        raise ValueError(f"expected field names of {cls.__name__} to skip, got {sorted(unknown)}")
    return [
        f for f in dataclasses.fields(cls) if f.init and f.name not in skipped and f.metadata.get("cli", True)
    ]


def _default(f: dataclasses.Field[Any]) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return None


def add_dataclass_flags(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup,
    cls: type,
    skip: Iterable[str] = (),
    defaults: Mapping[str, Any] | None = None,
) -> None:
    """Add one flag per field of dataclass ``cls`` (see the module docstring).

    Args:
        parser: the parser (or argument group) to add to.
        cls: the config dataclass.
        skip: field names to leave off the command line.
        defaults: field name -> a default for the command line that differs from the field's
            (e.g. all cores for a CLI, where a library caller gets one).
    """
    hints = typing.get_type_hints(cls)
    overrides = dict(defaults or {})
    fields = cli_fields(cls, skip)
    if unknown := set(overrides) - {f.name for f in fields}:
        raise ValueError(f"expected flag fields of {cls.__name__} in defaults, got {sorted(unknown)}")
    for f in fields:
        meta = f.metadata
        flag = meta.get("flag", "--" + f.name.replace("_", "-"))
        kind, many = _flag_type(hints[f.name])
        required = bool(
            meta.get(
                "required", f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
            )
        )
        kwargs: dict[str, Any] = {"dest": f.name, "help": meta.get("help")}
        if not required:
            kwargs["default"] = overrides.get(f.name, _default(f))
        else:
            kwargs["required"] = True
        if kind is bool:
            if kwargs.get("default"):
                kwargs["action"] = (
                    "store_false" if flag.startswith("--no-") else argparse.BooleanOptionalAction
                )
            else:
                kwargs["action"] = "store_true"
        elif "action" in meta:
            kwargs["action"] = meta["action"]
        else:
            kwargs["type"] = kind
            if many:
                kwargs["nargs"] = meta.get("nargs", "+")
            elif "nargs" in meta:
                kwargs["nargs"] = meta["nargs"]
        if kind is not bool and ("metavar" in meta or "choices" not in meta):
            kwargs["metavar"] = meta.get("metavar", flag.lstrip("-").upper().replace("-", "_"))
        if "choices" in meta:
            kwargs["choices"] = meta["choices"]
        parser.add_argument(flag, **kwargs)


def dataclass_from_args(
    cls: type[T], args: argparse.Namespace, skip: Iterable[str] = (), **changes: Any
) -> T:
    """An instance of ``cls`` from the flags :func:`add_dataclass_flags` added, with ``changes`` on top.

    ``skip`` must be what the flags were added with; skipped fields not in ``changes`` keep
    their defaults.
    """
    values = {f.name: getattr(args, f.name) for f in cli_fields(cls, skip)}
    values.update(changes)
    return cls(**values)

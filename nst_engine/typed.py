"""One validator for loosely typed input, driven by a dataclass's annotations (``typing.get_type_hints``).

Used for stylize options (CLI strings, JSON, plug-in widgets, Discord values) and for the config file (TOML
values). ``strict=True`` (the config) takes values only in their own type, as TOML gives them; otherwise text
is parsed too (``"12"`` for a whole number, ``"1, 2"`` for a list). Failures raise ``ValueError`` with what was
expected, in words, for the caller to put in its own error.
"""

from __future__ import annotations

import functools
import typing
from dataclasses import field
from pathlib import Path
from types import NoneType, UnionType
from typing import Any

WORDS = {int: "a whole number", float: "a number", str: "text", bool: "true or false", Path: "a path"}


def bounded(default: Any, low: float, high: float, **metadata: Any) -> Any:
    """A numeric dataclass field with the range it must lie in (the config checks it on load, and
    docs/configuration.md lists it)."""
    return field(default=default, metadata={"range": (low, high), **metadata})


@functools.cache
def field_types(cls: type) -> dict[str, Any]:
    """The resolved annotation of each field of ``cls`` (a dataclass; string annotations are evaluated)."""
    return typing.get_type_hints(cls)


def describe(kind: Any) -> str:
    """What a value of ``kind`` looks like, in words (``a comma-separated list of numbers``)."""
    if typing.get_origin(kind) is tuple:
        item = typing.get_args(kind)[0]
        return "a list of " + {int: "whole numbers", float: "numbers", str: "names"}.get(item, "values")
    if typing.get_origin(kind) in (typing.Union, UnionType):
        return " or ".join(describe(option) for option in typing.get_args(kind) if option is not NoneType)
    return WORDS.get(kind, kind.__name__)


def convert(value: Any, kind: Any, *, strict: bool = False) -> Any:
    """``value`` as ``kind`` (int, float, str, bool, Path, ``tuple[X, ...]`` or a union of them); ``ValueError``."""
    origin = typing.get_origin(kind)
    if origin in (typing.Union, UnionType):
        for option in typing.get_args(kind):
            if option is NoneType and value is None:
                return None
            try:
                return convert(value, option, strict=strict)
            except ValueError:
                continue
        raise ValueError(describe(kind))
    if origin is tuple:
        if isinstance(value, str) and not strict:
            value = [item.strip() for item in value.split(",") if item.strip()]
        if not isinstance(value, (list, tuple)):
            raise ValueError(describe(kind))
        item = typing.get_args(kind)[0]
        try:
            return tuple(convert(one, item, strict=strict) for one in value)
        except ValueError:
            raise ValueError(describe(kind)) from None
    return _scalar(value, kind, strict)


def _scalar(value: Any, kind: type, strict: bool) -> Any:
    if isinstance(value, bool) and kind is not bool:
        raise ValueError(describe(kind))  # True is an int to Python, never a number to a user
    if kind is bool:
        if isinstance(value, bool):
            return value
        if not strict and isinstance(value, str) and value.strip().lower() in ("true", "false"):
            return value.strip().lower() == "true"
        raise ValueError(describe(kind))
    if kind in (str, Path):
        if not isinstance(value, str) and (strict or not isinstance(value, (int, float))):
            raise ValueError(describe(kind))
        return Path(value) if kind is Path else str(value).strip()
    if strict and not isinstance(value, (int, float)):
        raise ValueError(describe(kind))
    try:
        return float(value) if kind is float else _whole(value)  # NaN passes: the caller's range check names it
    except (TypeError, ValueError):
        raise ValueError(describe(kind)) from None


def _whole(value: Any) -> int:
    if isinstance(value, float):
        if not value.is_integer():
            raise ValueError
        return int(value)
    return int(str(value).strip()) if isinstance(value, str) else int(value)

"""The one validator behind the config file and the stylize options (nst_engine/typed.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from nst_engine.typed import convert, describe


@pytest.mark.parametrize("value, kind, strict, expected", [
    ("12", int, False, 12), (12.0, int, False, 12), (3, float, True, 3.0), ("0.5", float, False, 0.5),
    ("1, 2,", tuple[float, ...], False, (1.0, 2.0)), (["a", "b"], tuple[str, ...], True, ("a", "b")),
    ("data", Path, True, Path("data")), ("true", bool, False, True), (5, int | str, True, 5),
    ("x", int | str, True, "x"), (None, int | None, True, None),
])
def test_values_become_their_annotated_type(value, kind, strict, expected) -> None:
    assert convert(value, kind, strict=strict) == expected


@pytest.mark.parametrize("value, kind, strict, words", [
    (True, int, False, "a whole number"), (1.5, int, False, "a whole number"), ("12", int, True, "a whole number"),
    ("x", float, False, "a number"), (1, bool, True, "true or false"), (3, str, True, "text"),
    ("1,x", tuple[float, ...], False, "a list of numbers"), ("a,b", tuple[str, ...], True, "a list of names"),
])
def test_anything_else_says_what_was_expected(value, kind, strict, words) -> None:
    with pytest.raises(ValueError, match=f"^{words}$"):
        convert(value, kind, strict=strict)
    assert describe(kind) == words

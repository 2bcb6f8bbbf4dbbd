"""The rules behind several styles and the Upscale button, without Discord: the weights members type and the
quality level an upscale runs at (its refusals say why)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.config import parse_config
from bot.errors import UserError
from bot.face.buttons import upscale_level
from bot.intake.blends import blend_label, parse_weights, with_blend
from bot.jobs.model import Job
from nst_engine.options import StylizeOptions


@pytest.mark.parametrize("text, count, expected", [
    ("2,1", 2, (2.0, 1.0)), ("2:1", 2, (2.0, 1.0)), (" 1 2 0.5 ", 3, (1.0, 2.0, 0.5)), ("", 3, ()), (None, 1, ()),
    ("0,1", 2, (0.0, 1.0)),
])
def test_weights_as_typed(text: str | None, count: int, expected: tuple[float, ...]) -> None:
    assert parse_weights(text, count) == expected


@pytest.mark.parametrize("text, count, message", [
    ("2,1", 3, "Give one weight per style: 3 styles but 2 weights"),
    ("3", 2, "Give one weight per style: 2 styles but 1 weight"),
    ("a,b", 2, "`weights` must be numbers such as `2,1`"),
    ("-1,2", 2, "Each weight must be between 0 and 1000"),
    ("nan,1", 2, "Each weight must be between 0 and 1000"),
    ("0,0", 2, "At least one weight must be above 0"),
])
def test_bad_weights_are_refused_clearly(text: str, count: int, message: str) -> None:
    with pytest.raises(UserError, match=message):
        parse_weights(text, count)


def test_a_blend_sets_the_engine_options_and_names_its_styles() -> None:
    options = with_blend(StylizeOptions(strength=2.0), (3.0, 1.0), 0.5)
    assert (options.style_weights, options.style_scale, options.strength) == ((3.0, 1.0), 0.5, 2.0)
    assert with_blend(options, (3.0, 1.0), None).style_scale == 0.5  # no scale given: the one it had
    with pytest.raises(UserError, match="Style_scale must be between 0.1 and 4"):
        with_blend(options, (), 9.0)
    assert blend_label(["your style image", "preset *Waves*"], (3.0, 1.0)) == \
        "your style image + preset *Waves* (3:1)"
    assert blend_label(["preset *Waves*"], ()) == "preset *Waves*"


def job_at(quality: str, size: int) -> Job:
    return Job("0123456789abcdef", 1, "Ann", 5, 6, "preset *Waves*", quality, StylizeOptions(size=size))


def config(max_size: int = 1024):
    """The default quality levels (fast 256, standard 512, high 768 px) under a size cap."""
    return parse_config({"limits": {"max_size": max_size}}, Path("."))


def test_upscale_runs_at_the_next_quality_level() -> None:
    assert upscale_level(config(), job_at("fast", 256)).name == "standard"
    assert upscale_level(config(), job_at("standard", 300)).name == "high"  # a smaller size chosen at standard
    assert upscale_level(config(max_size=384), job_at("fast", 256)).name == "standard"  # capped, still larger


@pytest.mark.parametrize("quality, size, max_size, message", [
    ("high", 768, 1024, "already at the highest quality level (`high`)"),
    ("standard", 384, 384, "the next quality level, `high`, is not larger (this server's largest size is 384 px)"),
    ("gone", 256, 1024, "The quality level `gone` is no longer offered"),
])
def test_upscale_refusals_say_why(quality: str, size: int, max_size: int, message: str) -> None:
    with pytest.raises(UserError, match=message.replace("(", r"\(").replace(")", r"\)")):
        upscale_level(config(max_size), job_at(quality, size))


@pytest.mark.parametrize("quality, size, max_size, message", [
    ("gone", 256, 1024, "The quality level `gone` is no longer offered, so this image cannot be upscaled; please "
                        "run /stylize again."),
    ("standard", 768, 768, "This image (768 px) cannot be upscaled: the next quality level, `high`, is not larger "
                           "(its size is 768 px)."),  # the level's own size, even where it equals the cap
    ("fast", 600, 1024, "This image (600 px) cannot be upscaled: the next quality level, `standard`, is not larger "
                        "(its size is 512 px)."),
])
def test_upscale_refusals_word_for_word(quality: str, size: int, max_size: int, message: str) -> None:
    with pytest.raises(UserError) as refused:
        upscale_level(config(max_size), job_at(quality, size))
    assert str(refused.value) == message

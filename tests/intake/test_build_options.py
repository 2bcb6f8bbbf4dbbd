"""How a member's choices meet the quality levels and caps, at their edges (found by mutation testing,
docs/mutation-report.md): the note names the next level that allows more, a size at the cap is no note, and
previews come about twenty times a job however many iterations it has."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bot.config import parse_config
from bot.intake.download import RequestError
from bot.intake.options import PREVIEWS_PER_JOB, build_options


def config(tmp_path: Path):
    return parse_config({"storage": {"data_dir": str(tmp_path / "data")}, "limits": {"max_size": 2000},
                         "quality": {"fast": {"size": 256, "iterations": 100},
                                     "standard": {"size": 512, "iterations": 10},
                                     "high": {"size": 1024, "iterations": 300}}}, tmp_path)


def test_a_capped_size_names_the_first_level_that_allows_more(tmp_path: Path) -> None:
    options, notes = build_options(config(tmp_path), "fast", size=1000)
    assert options.size == 256
    assert notes == ["size 1000 px capped to 256 px for fast quality (quality standard allows more)"]
    _, notes = build_options(config(tmp_path), "high", size=1500)
    assert notes == ["size 1500 px capped to 1024 px for high quality"]  # no level allows more


def test_a_size_at_the_cap_is_not_a_capped_size(tmp_path: Path) -> None:
    options, notes = build_options(config(tmp_path), "fast", size=256)
    assert (options.size, notes) == (256, [])


def test_previews_come_about_twenty_times_a_job(tmp_path: Path) -> None:
    assert PREVIEWS_PER_JOB == 20
    previews = {name: build_options(config(tmp_path), name)[0].preview_every for name in ("fast", "standard", "high")}
    assert previews == {"fast": 5, "standard": 1, "high": 15}


def test_an_unknown_level_is_refused_with_the_levels_there_are(tmp_path: Path) -> None:
    with pytest.raises(RequestError, match=re.escape("Unknown quality `ultra`; choose one of fast, standard, high.")):
        build_options(config(tmp_path), "Ultra")

"""Fixtures shared by the bot's end-to-end modules: one Discord stand-in and one work folder per module."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.bot.discord_standin import StandinThread


@pytest.fixture(scope="module")
def standin() -> StandinThread:
    with StandinThread() as running:
        yield running


@pytest.fixture(scope="module")
def workdir(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp(request.module.__name__.rsplit(".", 1)[-1])

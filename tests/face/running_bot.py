"""Fixtures shared by the bot's end-to-end modules (a pytest plugin, loaded by tests/conftest.py): one Discord
stand-in, one work folder and one running bot per module. A module shapes its bot with ``BOT_CONFIG``: keyword
arguments for :func:`tests.face.harness.write_config` (limits, extra [discord] or [engine] lines). A module whose
bot sent anything Discord would refuse fails at the end, naming each refused request."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.face.discord_standin import StandinThread
from tests.face.harness import BotProcess, assert_nothing_refused, write_config


@pytest.fixture(scope="module")
def standin() -> StandinThread:
    with StandinThread() as running:
        yield running
        assert_nothing_refused(running)


@pytest.fixture(scope="module")
def workdir(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp(request.module.__name__.rsplit(".", 1)[-1])


@pytest.fixture(scope="module")
def bot(request: pytest.FixtureRequest, standin: StandinThread, workdir: Path, vgg_weights: Path) -> BotProcess:
    """``nst-bot run`` against this module's stand-in, ready to serve; stopped after the module."""
    config = write_config(workdir, standin, vgg_weights, **getattr(request.module, "BOT_CONFIG", {}))
    process = BotProcess(config, workdir / "bot.log").start().wait_ready()
    yield process
    process.stop()

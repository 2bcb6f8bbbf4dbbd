"""docs/bot.md says how often expired images are deleted; this keeps that sentence and the bot's purge loop
(bot/face/app.py) in step."""

from __future__ import annotations

import re

from bot.face.app import PURGE_EVERY
from tests.conftest import REPO


def test_the_documented_retention_check_interval_is_the_purge_loops() -> None:
    text = (REPO / "docs" / "bot.md").read_text()
    stated = re.search(r"`\[storage\] retention_days` \(checked every (\d+) minutes\)", text)
    assert stated, "docs/bot.md no longer says how often retention is checked"
    assert int(stated[1]) * 60 == PURGE_EVERY

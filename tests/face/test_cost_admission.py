"""Admission by cost through the real bot: with a small ``[engine] max_job_memory_mb`` a request that could need
more memory is refused at once, with what to lower and before its images are downloaded; an ordinary request
is admitted."""

from __future__ import annotations

import pytest

from nst_engine.cost import worst_case_cost
from nst_engine.options import StylizeOptions
from tests.face.discord_standin import ALICE, BOB, StandinThread
from tests.face.harness import BotProcess, stylize, wait_original

pytestmark = pytest.mark.timeout(180)

# Room for the test levels' jobs (64 px) and a 256 px one, not for 1024 px.
BUDGET_MB = round(worst_case_cost(StylizeOptions(size=256, iterations=6), 1).peak_mb)
BOT_CONFIG = {"engine": f"max_job_memory_mb = {BUDGET_MB}",
              "extra": '[quality.huge]\nsize = 1024\niterations = 6\ndescription = "over the budget"'}


def test_a_job_over_the_memory_budget_is_refused_before_any_download(bot: BotProcess,
                                                                     standin: StandinThread) -> None:
    refused = stylize(standin, ALICE, quality="huge", style_scale=4.0)
    reply = wait_original(standin, refused, "⚠️")
    assert "more than the image engine may use" in reply
    assert "Lower the size (up to 2" in reply and "the quality" in reply and "the style scale" in reply
    assert standin.records("download") == []  # refused from its options alone

    wait_original(standin, stylize(standin, BOB, quality="standard"), "Queued at position")  # admitted
    assert len(standin.records("download")) == 2  # its content and style

"""A bot past its capacity answers at once that it is busy, rather than late or not at all: the real bot (with the
test-only instant engine, bot/work/instant.py) and ``[limits] max_in_flight = 1``, six members' /stylize arriving
together through the stand-in."""

from __future__ import annotations

from tests.face.discord_standin import CALLBACK_DEFERRED, CALLBACK_MESSAGE, EPHEMERAL, StandinThread, user
from tests.face.harness import BotProcess, callback, images, wait_original

BOT_CONFIG = {"limits": {"max_in_flight": 1}, "extra": '[queue]\nbackend = "instant"\n'}
MEMBERS = [user(720000000000000000 + index, f"member{index}") for index in range(6)]
BUSY = "busy right now; please try again in a minute"


def test_requests_past_max_in_flight_are_answered_busy_at_once(standin: StandinThread, bot: BotProcess) -> None:
    content, style = images(standin)
    tokens = [standin.command("stylize", {"content": content, "style": style}, member) for member in MEMBERS]
    answers = {token: callback(standin, token) for token in tokens}
    busy = [token for token, answer in answers.items() if answer["type"] == CALLBACK_MESSAGE]
    served = [token for token, answer in answers.items() if answer["type"] == CALLBACK_DEFERRED]
    assert busy and served and len(busy) + len(served) == len(tokens)  # every request answered, none twice
    for token in busy:  # the busy answer is the first and only one, private, saying what to do
        assert BUSY in answers[token]["data"]["content"]
        assert answers[token]["data"]["flags"] & EPHEMERAL
        assert len(standin.records("callback", token)) == 1 and not standin.records("webhook", token)
    for token in served:
        wait_original(standin, token, "Queued at position")
    assert "busy: answered /stylize from user" in bot.output()

    again = standin.command("stylize", {"content": content, "style": style}, MEMBERS[tokens.index(busy[0])])
    wait_original(standin, again, "Queued at position")  # trying again once it is quiet works

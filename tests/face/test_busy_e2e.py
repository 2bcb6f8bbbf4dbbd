"""A bot past its capacity answers at once that it is busy, rather than late or not at all: the real bot (with the
test-only instant engine, bot/work/instant.py) and ``[limits] max_in_flight = 1``, six members' /stylize (or six
presses of a result's Re-roll, which starts a job the same way) arriving together through the stand-in."""

from __future__ import annotations

from tests.face.discord_standin import CALLBACK_DEFERRED, CALLBACK_MESSAGE, EPHEMERAL, StandinThread, user
from tests.face.harness import BotProcess, again_id, callback, images, result_message, stylize, wait_original

BOT_CONFIG = {"limits": {"max_in_flight": 1}, "extra": '[queue]\nbackend = "instant"\n'}
MEMBERS = [user(720000000000000000 + index, f"member{index}") for index in range(6)]
PRESSERS = [user(730000000000000000 + index, f"presser{index}") for index in range(6)]  # no cooldown from above
BUSY = "busy right now; please try again in a minute"


def answered_busy_or_served(standin: StandinThread, tokens: list[str]) -> tuple[list[str], list[str]]:
    """The requests answered "busy" (checked: at once, privately, only that) and those served (deferred)."""
    answers = {token: callback(standin, token) for token in tokens}
    busy = [token for token, answer in answers.items() if answer["type"] == CALLBACK_MESSAGE]
    served = [token for token, answer in answers.items() if answer["type"] == CALLBACK_DEFERRED]
    assert busy and served and len(busy) + len(served) == len(tokens)  # every request answered, none twice
    for token in busy:  # the busy answer is the first and only one, private, saying what to do
        assert BUSY in answers[token]["data"]["content"]
        assert answers[token]["data"]["flags"] & EPHEMERAL
        assert len(standin.records("callback", token)) == 1 and not standin.records("webhook", token)
    return busy, served


def test_requests_past_max_in_flight_are_answered_busy_at_once(standin: StandinThread, bot: BotProcess) -> None:
    content, style = images(standin)
    tokens = [standin.command("stylize", {"content": content, "style": style}, member) for member in MEMBERS]
    busy, served = answered_busy_or_served(standin, tokens)
    for token in served:
        wait_original(standin, token, "Queued at position")
    assert "busy: answered /stylize from user" in bot.output()

    again = standin.command("stylize", {"content": content, "style": style}, MEMBERS[tokens.index(busy[0])])
    wait_original(standin, again, "Queued at position")  # trying again once it is quiet works


def test_re_run_presses_past_max_in_flight_are_answered_busy_at_once(standin: StandinThread, bot: BotProcess) -> None:
    result = result_message(standin, stylize(standin, PRESSERS[0]))
    presses = [standin.press(result, again_id(result, "reroll"), member) for member in PRESSERS]
    busy, served = answered_busy_or_served(standin, presses)
    for token in served:
        wait_original(standin, token, "Queued at position")
    assert "busy: answered the reroll button from user" in bot.output()
    again = standin.press(result, again_id(result, "reroll"), PRESSERS[presses.index(busy[0])])
    wait_original(standin, again, "Queued at position")  # pressing again once it is quiet works

"""Discord's own limits, end to end: the real bot against the stand-in, which refuses what Discord refuses and
rate-limits as Discord does. Sixty presets with long names (over 2,000 characters of names), a quality level with
a long name, an interaction seen after Discord's 3-second window, and the gateway asking the bot to reconnect,
invalidating its session or going silent."""

from __future__ import annotations

import re
import socket
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import make_style
from tests.face.discord_standin import StandinThread
from tests.face.harness import (BotProcess, again_id, assert_nothing_refused, callback, result_message,
                               status_message, stylize, wait_delivered, wait_status, write_config)

pytestmark = pytest.mark.timeout(300)

PRESETS = 60
LONG_QUALITY = "a-long-quality-level-name-an-admin-chose-to-say-exactly-what-it-is-for"  # 71 characters
# Long enough (240 iterations: about 7 s on a quiet Zen 4 EPYC, more elsewhere) for 0.5-s progress to want more
# than the 5 edits per 5 s a message's bucket allows; "medium" (40 iterations) ends within 5 s on that machine.
PACED_QUALITY = "paced"
HEARTBEAT_MS = 500  # what the stand-in's HELLO says here: the ACKs come far more often than the timeout
HEARTBEAT_TIMEOUT = 10  # the least the config allows


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def preset_name(number: int) -> str:
    return f"preset-{number:02d}-with-a-long-name-xyz"[:32]


@pytest.fixture(scope="module")
def metrics_port() -> int:
    return free_port()


@pytest.fixture(scope="module")
def standin() -> StandinThread:
    with StandinThread() as running:
        running.set_heartbeat_interval(HEARTBEAT_MS)
        yield running
        assert_nothing_refused(running)


@pytest.fixture(scope="module")
def bot(standin: StandinThread, workdir: Path, vgg_weights: Path, metrics_port: int) -> BotProcess:
    folder = workdir / "presets"
    folder.mkdir()
    tables = []
    for number in range(PRESETS):
        name = preset_name(number)
        make_style(32, seed=number).save(folder / f"{name}.png")
        tables.append(f'[[presets]]\nname = "{name}"\ntitle = "Preset number {number}"\nfile = "{folder / name}.png"')
    extra = (f'[quality.{LONG_QUALITY}]\nsize = 48\niterations = 4\ndescription = "tiny, long-named"\n\n'
             f'[quality.{PACED_QUALITY}]\nsize = 64\niterations = 240\ndescription = "outlasts an edit bucket"\n\n'
             f"[metrics]\nenabled = true\nport = {metrics_port}\n\n" + "\n\n".join(tables))
    config = write_config(workdir, standin, vgg_weights, discord=f"heartbeat_timeout = {HEARTBEAT_TIMEOUT}",
                          extra=extra)
    process = BotProcess(config, workdir / "bot.log").start().wait_ready()
    yield process
    process.stop()


def refusals(standin: StandinThread, since: int = 0) -> list[str]:
    """What the stand-in refused as Discord would (its path and errors) in its records from ``since`` on."""
    return [f"{r.method} {r.path}: {r.refusal}" for r in standin.records()[since:] if r.refusal]


def serves(standin: StandinThread) -> bool:
    """The bot answers a command (here /help) after whatever the gateway did."""
    token = standin.command("help")
    return bool(standin.wait_for(lambda: standin.records("callback", token), 30, "an answer to /help"))


def test_styles_pages_every_preset_within_the_message_limit(bot: BotProcess, standin: StandinThread) -> None:
    token = standin.command("styles")
    first = standin.wait_for(lambda: standin.followups(token), 30, f"the gallery; refused: {refusals(standin)}")[0]
    assert len(first["content"]) <= 2000 and "(page 1 of 5)" in first["content"]
    seen = set(re.findall(r"`([a-z0-9-]+)`", first["content"]))
    buttons = [c for row in first["components"] for c in row["components"]]
    assert [(b["custom_id"], b.get("disabled", False)) for b in buttons] == [("nst:styles:back:0", True),
                                                                             ("nst:styles:on:1", False)]
    message = first
    for page in range(2, 6):
        following = next(b["custom_id"] for row in message["components"] for b in row["components"]
                         if b["custom_id"].startswith("nst:styles:on:"))
        press = standin.press(message, following)
        assert callback(standin, press)["type"] == 7  # the gallery message itself is updated
        message = standin.wait_for(lambda: (m := standin.message(int(first["id"])))
                                   and f"(page {page} of 5)" in m["content"] and m, 30, f"page {page}")
        seen |= set(re.findall(r"`([a-z0-9-]+)`", message["content"]))
        assert len(message["attachments"]) == 1 and message["attachments"][0]["filename"] == "styles.png"
    assert seen == {preset_name(n) for n in range(PRESETS)}
    assert [b.get("disabled", False) for row in message["components"] for b in row["components"]] == [False, True]


def test_the_size_suggestions_fit_discords_choice_names(bot: BotProcess, standin: StandinThread) -> None:
    token = standin.autocomplete("stylize", "size", "999", kind=4, others={"quality": LONG_QUALITY})
    record = standin.wait_for(lambda: standin.records("callback", token), 30, "the size suggestions")[0]
    assert record.status == 200, record.refusal
    choices = record.payload["data"]["choices"]
    assert choices[0]["value"] == 48 and all(len(choice["name"]) <= 100 for choice in choices)
    assert choices[0]["name"].startswith("48 px (999 px is over")


def test_preset_autocomplete_offers_the_first_25_of_sixty(bot: BotProcess, standin: StandinThread) -> None:
    token = standin.autocomplete("stylize", "preset", "preset-")
    record = standin.wait_for(lambda: standin.records("callback", token), 30, "the preset suggestions")[0]
    assert record.status == 200, record.refusal
    assert [choice["value"] for choice in record.payload["data"]["choices"]] == [preset_name(n) for n in range(25)]


def test_the_edit_form_holds_a_long_quality_name(bot: BotProcess, standin: StandinThread) -> None:
    result = result_message(standin, stylize(standin, quality=LONG_QUALITY))
    press = standin.press(result, again_id(result, "edit"))
    record = standin.wait_for(lambda: standin.records("callback", press), 30, "the Edit form")[0]
    assert record.status == 200, record.refusal
    fields = {c["component"]["custom_id"]: c["component"] for c in standin.modal(press)["components"]}
    assert fields["quality"]["value"] == LONG_QUALITY


def test_every_request_names_the_bot_as_discord_asks(bot: BotProcess, standin: StandinThread) -> None:
    result_message(standin, stylize(standin, quality="fast"))  # a deferred reply, follow-ups and edits
    agents = standin.user_agents()
    assert any("/webhooks/" in path for path, _ in agents) and any("/callback" in path for path, _ in agents)
    wrong = {(re.sub(r"\d{6,}|itoken-\d+", "N", path), agent) for path, agent in agents
             if not re.match(r"DiscordBot \(https://github\.com/Rapptz/discord\.py [\w.]+\)", agent)}
    assert not wrong


def test_a_late_interaction_is_logged_as_late_and_counted(bot: BotProcess, standin: StandinThread,
                                                          metrics_port: int) -> None:
    standin.command("stylize", {"content": standin.attachment("a.png", b"x")}, age=5.0, late=True)
    bot.wait_until("past Discord's 3-second window (Unknown interaction); dropped", timeout=30)
    assert "was already answered" not in bot.output()[bot.log_start:]
    scraped = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10).read().decode()
    assert re.search(r"^nst_interactions_too_late_total 1\.0$", scraped, re.MULTILINE), scraped


@pytest.mark.slow  # waits out the status edits' rate limit: about 10-20 s on a 2-core AVX2 EPYC
def test_status_edits_keep_to_the_rate_limit(bot: BotProcess, standin: StandinThread) -> None:
    """Progress every 0.5 s wants more than the 5 edits per 5 s Discord allows on a message: discord.py waits
    out the spent bucket (or a 429) and the job still ends with its final status and its result."""
    since = len(standin.records())
    token = stylize(standin, quality=PACED_QUALITY)
    status = status_message(standin, token)
    job = wait_delivered(standin, re.search(r"nst:cancel:([0-9a-f]{16})",
                                            str(status["components"])).group(1))
    assert job["attachments"]
    wait_status(standin, int(status["id"]), "Done")
    assert any(str(status["id"]) in path for path in standin.buckets_spent())
    assert not refusals(standin, since)


def test_the_bot_resumes_when_discord_asks_it_to_reconnect(bot: BotProcess, standin: StandinThread) -> None:
    resumes = len(standin.records("resume"))
    standin.reconnect()
    standin.wait_for(lambda: len(standin.records("resume")) > resumes and standin.connected(), 30, "a resume")
    assert serves(standin)


def test_an_invalid_session_makes_the_bot_identify_again(bot: BotProcess, standin: StandinThread) -> None:
    identifies = len(standin.records("identify"))
    standin.invalidate_session(resumable=False)
    standin.wait_for(lambda: len(standin.records("identify")) > identifies and standin.connected(), 30,
                     "a new identify")
    assert not standin.records("resume-refused")  # it did not try to resume the session that was invalidated
    assert serves(standin)


@pytest.mark.slow  # waits out a missed heartbeat: about 10-20 s on a 2-core AVX2 EPYC
def test_a_silent_gateway_is_left_and_the_session_resumed(bot: BotProcess, standin: StandinThread) -> None:
    resumes = len(standin.records("resume"))
    standin.go_silent()  # no heartbeat ACK (nor anything else) on this connection any more
    standin.wait_for(lambda: len(standin.records("resume")) > resumes, 60, "a resume on a new connection")
    standin.wait_for(lambda: standin.call(lambda: not standin.standin.silent), 10,
                     "the bot to close the silent connection")
    assert serves(standin)

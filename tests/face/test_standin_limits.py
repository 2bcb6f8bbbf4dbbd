"""The stand-in refuses what Discord refuses (400, code 50035, the errors under the bad value's path) and
rate-limits as Discord does (``X-RateLimit-*`` headers, 429 with ``retry_after``), so a bot that sends what real
Discord would reject, or ignores its limits, fails the end-to-end tests. Driven over real HTTP, no bot."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest

from tests.face import discord_rules as rules
from tests.face.discord_standin import CHANNEL_ID, StandinThread

MESSAGES = f"/channels/{CHANNEL_ID}/messages"


def button(custom_id: str, **extra: Any) -> dict[str, Any]:
    return {"type": 2, "style": 1, "label": "Go", "custom_id": custom_id, **extra}


def row(*components: dict[str, Any]) -> dict[str, Any]:
    return {"type": 1, "components": list(components)}


def select(options: int, custom_id: str = "pick") -> dict[str, Any]:
    return {"type": 3, "custom_id": custom_id, "options": [{"label": f"o{n}", "value": f"v{n}"} for n in range(options)]}


class Clock:
    """The rate limits' clock: it moves ``step`` seconds at each reading (a new window for every request unless
    a test stops it), so no test depends on how fast this machine sends."""

    def __init__(self) -> None:
        self.now, self.step = 0.0, 10.0

    def __call__(self) -> float:
        self.now += self.step
        return self.now


@pytest.fixture(scope="module")
def clock() -> Clock:
    return Clock()


@pytest.fixture(scope="module")
def standin(clock: Clock) -> StandinThread:
    """The stand-in with a bare gateway client identified on it (so it can send interactions) and no bot."""
    with StandinThread() as running:
        running.call(lambda: setattr(running.standin.rate_limits, "clock", clock))
        session = running.call(listen(running.gateway_url))
        yield running
        running.call(session.close())


async def listen(url: str) -> aiohttp.ClientSession:
    session = aiohttp.ClientSession()
    socket = await session.ws_connect(url)
    await socket.send_json({"op": 2, "d": {"token": "x", "intents": 0, "properties": {}}})

    async def drain() -> None:
        async for _ in socket:
            pass
    asyncio.get_running_loop().create_task(drain())
    return session


def request(standin: StandinThread, method: str, path: str, body: Any = None,
            headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], Any]:
    async def send() -> tuple[int, dict[str, str], Any]:
        async with aiohttp.ClientSession() as session:
            async with session.request(method, standin.api_base + path, json=body,
                                       headers={"Authorization": "Bot x", **(headers or {})}) as answer:
                return answer.status, dict(answer.headers), await answer.json(content_type=None)
    return asyncio.run(send())


def posted(standin: StandinThread, payload: dict[str, Any]) -> tuple[int, Any]:
    status, _, body = request(standin, "POST", MESSAGES, payload)
    return status, body


def error_at(body: dict[str, Any], *path: Any) -> list[dict[str, str]]:
    node = body["errors"]
    for step in path:
        node = node[str(step)]
    return node["_errors"]


def test_a_message_within_every_limit_is_accepted(standin: StandinThread) -> None:
    status, body = posted(standin, {"content": "x" * 2000, "embeds": [{"title": "t" * 256, "description": "d" * 4096}],
                                    "components": [row(*(button(f"b{r}{n}") for n in range(5))) for r in range(4)]
                                    + [row(select(25))]})
    assert status == 200 and len(body["content"]) == 2000


@pytest.mark.parametrize("payload, path", [
    ({"content": "x" * 2001}, ("content",)),
    ({"embeds": [{"title": "t" * 257}]}, ("embeds", 0, "title")),
    ({"embeds": [{"description": "d" * 4097}]}, ("embeds", 0, "description")),
    ({"embeds": [{"fields": [{"name": "n", "value": "v"}] * 26}]}, ("embeds", 0, "fields")),
    ({"embeds": [{"description": "d" * 4000}, {"description": "d" * 2001}]}, ("embeds",)),  # 6001 in all
    ({"embeds": [{"title": "t"}] * 11}, ("embeds",)),
    ({"components": [row(button(f"b{n}")) for n in range(6)]}, ("components",)),
    ({"components": [row(*(button(f"b{n}") for n in range(6)))]}, ("components", 0, "components")),
    ({"components": [row(select(3), button("b"))]}, ("components", 0, "components")),
    ({"components": [row(select(26))]}, ("components", 0, "components", 0, "options")),
    ({"components": [row(button("x" * 101))]}, ("components", 0, "components", 0, "custom_id")),
    ({"components": [row(button("same"), button("same"))]}, ("components", 0, "components", 1, "custom_id")),
    ({"components": [row(button("a")), row(button("a"))]}, ("components", 1, "components", 0, "custom_id")),
    ({"components": [row(button("a", label="l" * 81))]}, ("components", 0, "components", 0, "label")),
    ({"components": [button("a")]}, ("components", 0)),
    ({"attachments": [{"id": 0, "filename": "../etc/passwd"}]}, ("attachments", 0, "filename")),
    ({"attachments": [{"id": 0, "filename": ""}]}, ("attachments", 0, "filename")),
])
def test_what_discord_refuses_in_a_message(standin: StandinThread, payload: dict[str, Any],
                                           path: tuple[Any, ...]) -> None:
    before = len(standin.messages())
    status, body = posted(standin, payload)
    assert status == 400 and body["code"] == 50035 and body["message"] == "Invalid Form Body"
    assert error_at(body, *path)
    assert len(standin.messages()) == before  # nothing was posted


def test_a_refused_edit_leaves_the_message_as_it_was(standin: StandinThread) -> None:
    _, message = posted(standin, {"content": "first"})
    status, _, body = request(standin, "PATCH", f"{MESSAGES}/{message['id']}", {"content": "y" * 2001})
    assert status == 400 and error_at(body, "content")
    assert standin.message(int(message["id"]))["content"] == "first"


def test_callbacks_are_checked_too(standin: StandinThread) -> None:
    token = standin.autocomplete("stylize", "preset", "")
    interaction = standin.call(lambda: standin.standin.interactions[token])
    path = f"/interactions/{interaction['id']}/{token}/callback"
    choices = [{"name": f"c{n}", "value": f"v{n}"} for n in range(26)]
    status, _, body = request(standin, "POST", path, {"type": 8, "data": {"choices": choices}})
    assert status == 400 and error_at(body, "data", "choices")
    status, _, body = request(standin, "POST", path, {"type": 8, "data": {"choices": [{"name": "n" * 101, "value": 1}]}})
    assert status == 400 and error_at(body, "data", "choices", 0, "name")
    status, _, _ = request(standin, "POST", path, {"type": 8, "data": {"choices": choices[:25]}})
    assert status == 200  # a refused answer does not count as one


def test_a_callback_after_the_three_second_window_is_unknown(standin: StandinThread) -> None:
    token = standin.command("help", late=True)
    interaction = standin.call(lambda: standin.standin.interactions[token])
    status, _, body = request(standin, "POST", f"/interactions/{interaction['id']}/{token}/callback",
                              {"type": 5, "data": {}})
    assert (status, body["code"], body["message"]) == (404, 10062, "Unknown interaction")


def test_a_modal_value_longer_than_its_field_is_refused() -> None:
    field = {"type": 4, "custom_id": "q", "style": 1, "max_length": 5, "value": "123456"}
    modal = {"custom_id": "m", "title": "T", "components": [{"type": 18, "label": "Q", "component": field}]}
    assert rules.modal_problems(3, modal)[0][0] == ("data", "components", 0, "component", "value")
    assert not rules.modal_problems(3, {**modal, "components": [{**modal["components"][0],
                                                                 "component": {**field, "max_length": 6}}]})


def test_edits_of_one_message_are_limited_to_five_per_five_seconds(standin: StandinThread, clock: Clock) -> None:
    _, message = posted(standin, {"content": "status"})
    clock.step, clock.now = 0.0, clock.now + 10.0  # stopped, in a fresh window
    answers = [request(standin, "PATCH", f"{MESSAGES}/{message['id']}", {"content": f"edit {n}"}) for n in range(6)]
    assert [status for status, _, _ in answers] == [200] * 5 + [429]
    assert [headers["X-RateLimit-Remaining"] for _, headers, _ in answers[:5]] == ["4", "3", "2", "1", "0"]
    first = answers[0][1]
    assert first["X-RateLimit-Limit"] == "5" and float(first["X-RateLimit-Reset-After"]) == 5.0
    assert len({headers["X-RateLimit-Bucket"] for _, headers, _ in answers}) == 1
    status, headers, body = answers[5]
    assert body["retry_after"] == 5.0 and body["global"] is False and headers["X-RateLimit-Scope"] == "user"
    assert standin.message(int(message["id"]))["content"] == "edit 4"  # the sixth edit did not land
    clock.now += 5.0
    assert request(standin, "PATCH", f"{MESSAGES}/{message['id']}", {"content": "later"})[0] == 200
    clock.step = 10.0


def test_the_global_limit_spares_interaction_endpoints(standin: StandinThread, clock: Clock) -> None:
    clock.step, clock.now = 0.0, clock.now + 10.0  # stopped, in a fresh window
    statuses = [request(standin, "GET", f"/channels/{CHANNEL_ID}")[0] for _ in range(51)]
    assert statuses == [200] * 50 + [429]
    status, headers, body = request(standin, "GET", "/users/@me")
    assert status == 429 and body["global"] is True and headers["X-RateLimit-Global"] == "true"
    token = standin.command("help")
    interaction = standin.call(lambda: standin.standin.interactions[token])
    status, _, _ = request(standin, "POST", f"/interactions/{interaction['id']}/{token}/callback",
                           {"type": 4, "data": {"content": "hi"}})
    assert status == 200
    assert request(standin, "POST", f"/webhooks/1/{token}", {"content": "a follow-up"})[0] == 200
    clock.step = 10.0

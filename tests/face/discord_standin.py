"""A loopback stand-in for Discord: REST (aiohttp) and the gateway (websocket), recording all it receives.

An unmodified discord.py client talks to it when ``discord.http.Route.BASE`` and
``DiscordWebSocket.DEFAULT_GATEWAY`` point here (``[discord] api_base`` / ``gateway_url`` in the bot's
config). Tests drive it through :class:`StandinThread` (a synchronous facade running the server on its own
event loop): post member messages, send slash and message commands, autocomplete requests, button presses and
select-menu choices as a user would, expire
interaction tokens, make routes fail, then assert on the recorded requests and messages.

Run standalone (e.g. to start a bot in a container against it)::

    python -m tests.face.discord_standin --port 0 --port-file /tmp/standin.port [--invalid-token BAD]

It accepts any bot token except the ``--invalid-token`` one (401 from ``GET /users/@me``). It refuses what Discord
refuses (:mod:`tests.face.discord_rules`: a 400 "Invalid Form Body"), rate-limits as Discord does
(:mod:`tests.face.discord_ratelimits`: headers, 429s) and can reconnect, invalidate or go silent on the gateway.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import itertools
import json
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from aiohttp import WSMsgType, web

from tests.face import discord_rules as rules
from tests.face.discord_ratelimits import RateLimits

APPLICATION_ID = 900000000000000001
BOT_USER_ID = 900000000000000001
GUILD_ID = 800000000000000001
CHANNEL_ID = 810000000000000001
DM_CHANNEL_ID = 820000000000000001
# A second server the bot is in, with its own channel; with two shards it is on shard 0, GUILD_ID on shard 1.
OTHER_GUILD_ID = 800000000004194311
OTHER_CHANNEL_ID = 810000000000000007
GUILD_CHANNELS = {GUILD_ID: CHANNEL_ID, OTHER_GUILD_ID: OTHER_CHANNEL_ID}
# Places other than the bot's own guild channel: (guild id, channel id), for interactions sent from there.
SECOND_CHANNEL = (GUILD_ID, 810000000000000002)
OTHER_GUILD = (OTHER_GUILD_ID, OTHER_CHANNEL_ID)
EPHEMERAL, LOADING = 64, 128
MANAGE_GUILD = 1 << 5
ALL_PERMISSIONS = (1 << 50) - 1
UPLOAD_LIMIT = 10 * 1024 * 1024

CALLBACK_MESSAGE, CALLBACK_DEFERRED, CALLBACK_DEFERRED_UPDATE, CALLBACK_UPDATE, CALLBACK_AUTOCOMPLETE = 4, 5, 6, 7, 8
CALLBACK_MODAL = 9
MODAL_SUBMIT = 5  # the interaction type of a filled-in modal
LABEL, TEXT_INPUT, ACTION_ROW = 18, 4, 1  # the component types a text-input modal is made of
CALLBACK_MESSAGES = (CALLBACK_MESSAGE, CALLBACK_DEFERRED, CALLBACK_UPDATE)  # callbacks that may carry a message
UNKNOWN_INTERACTION = 10062  # Discord's answer to a callback after the interaction's 3-second window
RECONNECT, INVALID_SESSION = 7, 9  # gateway opcodes the server sends
HEARTBEAT_INTERVAL_MS = 41250  # what Discord's HELLO says
OPTION_TYPES = {str: 3, int: 4, bool: 5, float: 10}
ATTACHMENT_OPTION = 11


def user(user_id: int, name: str) -> dict[str, Any]:
    return {"id": str(user_id), "username": name, "global_name": name.title(), "discriminator": "0",
            "avatar": None, "bot": False}


ALICE = user(700000000000000001, "alice")
BOB = user(700000000000000002, "bob")
CAROL = user(700000000000000003, "carol")
BOT_USER = {**user(BOT_USER_ID, "nst-bot"), "bot": True}


def guild_of(channel_id: int) -> int:
    """The server a stand-in channel belongs to (the first server for a channel it does not know)."""
    return next((guild for guild, channel in GUILD_CHANNELS.items() if channel == channel_id), GUILD_ID)


def shard_of(guild_id: int, shard_count: int) -> int:
    """The shard that carries a server's events, by Discord's documented rule."""
    return (guild_id >> 22) % shard_count


def snowflake(at: float) -> int:
    return int(at * 1000 - 1420070400000) << 22


def now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000000+00:00", time.gmtime())


@dataclass
class Record:
    """One request the stand-in received: what it was and what it carried."""

    method: str
    path: str
    kind: str  # "callback", "webhook", "channel", "commands", "download" (an attachment fetched), ...
    payload: dict[str, Any]
    files: list[tuple[str, bytes, str]] = field(default_factory=list)
    token: str | None = None
    message_id: int | None = None
    status: int = 200
    refusal: dict[str, Any] | None = None  # Discord's error body, when the stand-in refused the request
    at: float = field(default_factory=time.monotonic)  # when it arrived (benchmarks time answers by it)


@dataclass
class Attachment:
    id: int
    filename: str
    data: bytes
    content_type: str | None
    size: int


class DiscordStandin:
    """The server. All state lives on its event loop; :class:`StandinThread` wraps it for sync tests."""

    def __init__(self, invalid_tokens: tuple[str, ...] = ()) -> None:
        self.invalid_tokens = set(invalid_tokens)
        self.last_id = 0
        self.records: list[Record] = []
        self.messages: dict[int, dict[str, Any]] = {}
        self.interactions: dict[str, dict[str, Any]] = {}  # token → interaction state
        self.expired_tokens: set[str] = set()
        self.failures: list[tuple[str, re.Pattern[str], int, int, int]] = []  # method, path, status, code, times
        self.attachments: dict[int, Attachment] = {}
        self.commands: dict[str, list[dict[str, Any]]] = {}
        self.sockets: list[web.WebSocketResponse] = []
        self.shard_count = 1  # what GET /gateway/bot recommends
        self.socket_shards: dict[web.WebSocketResponse, tuple[int, int]] = {}  # socket → (shard id, shard count)
        self.session_shards: dict[str, tuple[int, int]] = {}  # session id → its shard, for a resume
        self.socket_sessions: dict[web.WebSocketResponse, str] = {}
        self.invalid_sessions: set[str] = set()  # invalidated: a resume of one is answered with op 9
        self.silent: set[web.WebSocketResponse] = set()  # zombie connections: no heartbeat ACKs, no events
        self.heartbeat_interval = HEARTBEAT_INTERVAL_MS
        self.rate_limits = RateLimits()
        self.user_agents: list[tuple[str, str]] = []  # (path, User-Agent) of every API request
        self.identified = 0
        self.sequence = itertools.count(1)
        self.changed = asyncio.Event()
        self.port = 0
        self.runner: web.AppRunner | None = None

    def next_id(self) -> int:
        """Snowflakes as Discord makes them: milliseconds since 2015 in the high bits, so ids order by time."""
        self.last_id = max(self.last_id + 1, snowflake(time.time()))
        return self.last_id

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # ----------------------------------------------------------------------------------------- server

    async def start(self, port: int = 0) -> int:
        app = web.Application(client_max_size=64 * 1024 * 1024, middlewares=[self._middleware])
        app.add_routes([
            web.get("/gateway", self.gateway),
            web.get("/attachments/{id}/{filename}", self.serve_attachment),
            web.get("/api/v10/users/@me", self.me),
            web.get("/api/v10/oauth2/applications/@me", self.application),
            web.get("/api/v10/applications/{app}/commands", self.get_commands),
            web.put("/api/v10/applications/{app}/commands", self.put_commands),
            web.put("/api/v10/applications/{app}/guilds/{guild}/commands", self.put_commands),
            web.post("/api/v10/interactions/{id}/{token}/callback", self.callback),
            web.route("*", "/api/v10/webhooks/{app}/{token}", self.webhook),
            web.route("*", "/api/v10/webhooks/{app}/{token}/messages/{message}", self.webhook),
            web.get("/api/v10/channels/{channel}", self.get_channel),
            web.post("/api/v10/channels/{channel}/messages", self.channel_messages),
            web.get("/api/v10/channels/{channel}/messages", self.history),
            web.route("*", "/api/v10/channels/{channel}/messages/{message}", self.channel_messages),
            web.get("/api/v10/gateway", self.gateway_info),
            web.get("/api/v10/gateway/bot", self.gateway_info),
        ])
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", port)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self.port

    async def stop(self) -> None:
        for ws in list(self.sockets):
            await ws.close()
        if self.runner is not None:
            await self.runner.cleanup()

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Callable) -> web.StreamResponse:
        auth = request.headers.get("Authorization", "")
        api = request.path.startswith("/api/")
        if api:
            self.user_agents.append((request.path, request.headers.get("User-Agent", "")))
        if api and auth.startswith("Bot ") and auth[4:] in self.invalid_tokens:
            return self.error(401, 0, "401: Unauthorized")
        for index, (method, pattern, status, code, times) in enumerate(self.failures):
            if request.method == method and pattern.search(request.path):
                self.failures[index] = (method, pattern, status, code, times - 1)
                if times <= 1:
                    del self.failures[index]
                self._record(Record(request.method, request.path, "injected-failure", {}, status=status))
                if status == 429:
                    return self.rate_limits.too_many(request.path, "user", 0.2, {})
                return self.error(status, code, "injected failure")
        if not api:
            return await handler(request)
        limited, headers = self.rate_limits.check(request.method, request.path)
        if limited is not None:
            self._record(Record(request.method, request.path, "rate-limited", {}, status=429))
            return limited
        response = await handler(request)
        response.headers.update(headers)
        return response

    @staticmethod
    def json(data: Any, status: int = 200) -> web.Response:
        # discord.py only parses JSON when the content type is exactly application/json.
        return web.Response(body=json.dumps(data).encode(), status=status, content_type="application/json")

    def error(self, status: int, code: int, message: str) -> web.Response:
        return self.json({"code": code, "message": message}, status)

    def refuse(self, record: Record, problems: list[rules.Problem]) -> web.Response:
        """Discord's 400 for an invalid body, noted on the request's ``record``."""
        record.status = 400
        record.refusal = rules.form_error(problems)
        return self.json(record.refusal, 400)

    def _record(self, record: Record) -> Record:
        self.records.append(record)
        self.changed.set()
        return record

    async def _body(self, request: web.Request) -> tuple[dict[str, Any], list[tuple[str, bytes, str]]]:
        if request.content_type.startswith("multipart/"):
            payload, files = {}, []
            async for part in await request.multipart():
                data = await part.read()
                if part.name == "payload_json":
                    payload = json.loads(data)
                else:
                    files.append((part.filename or "", bytes(data), part.headers.get("Content-Type", "")))
            return payload, files
        if request.can_read_body:
            return await request.json(), []
        return {}, []

    # ------------------------------------------------------------------------------------------ REST

    async def me(self, request: web.Request) -> web.Response:
        return self.json(BOT_USER)

    async def application(self, request: web.Request) -> web.Response:
        return self.json({"id": str(APPLICATION_ID), "name": "nst-bot", "icon": None, "description": "",
                          "rpc_origins": [], "bot_public": True, "bot_require_code_grant": False,
                          "owner": {**ALICE}, "summary": "", "verify_key": "0" * 64, "team": None,
                          "flags": 0})

    async def gateway_info(self, request: web.Request) -> web.Response:
        return self.json({"url": f"ws://127.0.0.1:{self.port}/gateway", "shards": self.shard_count,
                          "session_start_limit": {"total": 1000, "remaining": 1000, "reset_after": 0,
                                                  "max_concurrency": 1}})

    async def get_commands(self, request: web.Request) -> web.Response:
        return self.json(self.commands.get("global", []))

    async def put_commands(self, request: web.Request) -> web.Response:
        payload = await request.json()
        scope = request.match_info.get("guild", "global")
        # Discord answers every command with a description: empty for context-menu commands, which send none.
        stored = [{"description": "", **command, "id": str(self.next_id()), "application_id": str(APPLICATION_ID),
                   "version": "1", **({"guild_id": scope} if scope != "global" else {})} for command in payload]
        self.commands[scope] = stored
        self._record(Record("PUT", request.path, "commands", {"commands": payload, "scope": scope}))
        return self.json(stored)

    async def serve_attachment(self, request: web.Request) -> web.StreamResponse:
        attachment = self.attachments.get(int(request.match_info["id"]))
        self._record(Record("GET", request.path, "download", {}))
        if attachment is None:
            return web.Response(status=404)
        return web.Response(body=attachment.data, content_type="application/octet-stream")

    async def get_channel(self, request: web.Request) -> web.Response:
        channel_id = int(request.match_info["channel"])
        if channel_id == DM_CHANNEL_ID:
            return self.json({"id": str(DM_CHANNEL_ID), "type": 1, "recipients": [ALICE], "last_message_id": None})
        return self.json(self.channel_json(channel_id))

    def channel_json(self, channel_id: int = CHANNEL_ID, guild_id: int | None = None) -> dict[str, Any]:
        return {"id": str(channel_id), "type": 0, "guild_id": str(guild_id or guild_of(channel_id)), "name": "art", "position": 0,
                "permission_overwrites": [], "nsfw": False, "parent_id": None, "topic": None,
                "last_message_id": None, "rate_limit_per_user": 0}

    def _message(self, channel_id: int, payload: dict[str, Any], files: list[tuple[str, bytes, str]],
                 author: dict[str, Any], flags: int = 0, extra: dict[str, Any] | None = None) -> dict[str, Any]:
        message = {"id": str(self.next_id()), "channel_id": str(channel_id), "author": author, "content": "",
                   "timestamp": now_iso(), "edited_timestamp": None, "tts": False, "mention_everyone": False,
                   "mentions": [], "mention_roles": [], "attachments": [], "embeds": [], "pinned": False,
                   "type": 0, "flags": flags, "components": [], **(extra or {})}
        if channel_id != DM_CHANNEL_ID:
            message["guild_id"] = str(guild_of(channel_id))
        self._apply(message, payload, files)
        self.messages[int(message["id"])] = message
        return message

    def _apply(self, message: dict[str, Any], payload: dict[str, Any], files: list[tuple[str, bytes, str]]) -> None:
        """Update a stored message the way Discord would from a create or edit payload."""
        for key in ("content", "embeds", "components"):
            if key in payload:
                message[key] = payload[key] if payload[key] is not None else ([] if key != "content" else "")
        if "flags" in payload and payload["flags"] is not None:
            message["flags"] = (message["flags"] & ~LOADING) | payload["flags"]
        if "attachments" in payload or files:
            kept = {a["id"]: a for a in message["attachments"]}
            attachments = []
            for index, entry in enumerate(payload.get("attachments", [{"id": i} for i in range(len(files))])):
                if str(entry.get("id")) in kept:
                    attachments.append(kept[str(entry["id"])])
                elif isinstance(entry.get("id"), int) and entry["id"] < len(files):
                    name, data, content_type = files[entry["id"]]
                    attachments.append(self._store_attachment(name, data, content_type))
            message["attachments"] = attachments
        message["flags"] &= ~LOADING

    def _store_attachment(self, filename: str, data: bytes, content_type: str | None,
                          size: int | None = None) -> dict[str, Any]:
        attachment = Attachment(self.next_id(), filename, data, content_type, len(data) if size is None else size)
        self.attachments[attachment.id] = attachment
        url = f"{self.base}/attachments/{attachment.id}/{filename}"
        entry = {"id": str(attachment.id), "filename": filename, "size": attachment.size, "url": url,
                 "proxy_url": url}
        if content_type:
            entry["content_type"] = content_type
        return entry

    async def channel_messages(self, request: web.Request) -> web.Response:
        channel_id = int(request.match_info["channel"])
        payload, files = await self._body(request)
        problems = rules.message_problems(payload, files) if request.method != "DELETE" else []
        if problems:
            return self.refuse(self._record(Record(request.method, request.path, "channel", payload, files)), problems)
        if request.method == "POST":
            nonce = payload.get("nonce") if payload.get("enforce_nonce") else None
            existing = next((m for m in self.messages.values() if nonce and m.get("nonce") == nonce
                             and int(m["channel_id"]) == channel_id), None)
            if existing is not None:  # Discord returns the earlier message instead of posting twice
                self._record(Record("POST", request.path, "channel-deduplicated", payload, files,
                                    message_id=int(existing["id"])))
                return self.json(existing)
            message = self._message(channel_id, payload, files, BOT_USER, extra={"nonce": nonce} if nonce else None)
            self._record(Record("POST", request.path, "channel", payload, files, message_id=int(message["id"])))
            return self.json(message)
        message_id = int(request.match_info["message"])
        message = self.messages.get(message_id)
        if message is None or int(message["channel_id"]) != channel_id:
            self._record(Record(request.method, request.path, "channel", payload, files, message_id=message_id,
                                status=404))
            return self.error(404, 10008, "Unknown Message")
        if request.method == "DELETE":
            del self.messages[message_id]
            self._record(Record("DELETE", request.path, "channel", {}, message_id=message_id))
            return web.Response(status=204)
        self._apply(message, payload, files)
        message["edited_timestamp"] = now_iso()
        self._record(Record(request.method, request.path, "channel", payload, files, message_id=message_id))
        return self.json(message)

    async def history(self, request: web.Request) -> web.Response:
        """GET /channels/{id}/messages?after=&before=&limit=: newest first, as Discord answers."""
        channel_id = int(request.match_info["channel"])
        after = int(request.query.get("after", 0))
        before = int(request.query.get("before", 1 << 63))
        limit = int(request.query.get("limit", 50))
        found = sorted((m for m in self.messages.values() if int(m["channel_id"]) == channel_id
                        and after < int(m["id"]) < before and not m["flags"] & EPHEMERAL),
                       key=lambda m: int(m["id"]), reverse=True)
        self._record(Record("GET", request.path, "history", dict(request.query)))
        return self.json(found[:limit] if "after" not in request.query else found[-limit:])

    async def callback(self, request: web.Request) -> web.Response:
        token = request.match_info["token"]
        state = self.interactions.get(token)
        payload, files = await self._body(request)
        record = self._record(Record("POST", request.path, "callback", payload, files, token=token))
        if state is not None and state.get("late"):
            record.status = 404
            return self.error(404, UNKNOWN_INTERACTION, "Unknown interaction")
        if state is None or state.get("responded"):
            record.status = 400
            return self.error(400, 40060, "Interaction has already been acknowledged.")
        kind, data = payload["type"], payload.get("data") or {}
        problems = self.callback_problems(state, kind, data, files)
        if problems:
            return self.refuse(record, problems)
        if kind == CALLBACK_MODAL:
            state["modal"] = copy.deepcopy(data)
        state["responded"] = True
        response: dict[str, Any] = {"id": state["id"], "type": state["type"]}
        resource: dict[str, Any] = {"type": kind}
        if kind in (CALLBACK_MESSAGE, CALLBACK_DEFERRED):
            flags = (data.get("flags") or 0) | (LOADING if kind == CALLBACK_DEFERRED else 0)
            message = self._message(state["channel_id"], data, files, BOT_USER, flags,
                                    {"webhook_id": str(APPLICATION_ID), "application_id": str(APPLICATION_ID),
                                     "interaction_metadata": {"id": state["id"], "type": state["type"],
                                                              "user": state["user"]}})
            message["flags"] = flags
            state["original"] = int(message["id"])
            record.message_id = state["original"]
            response.update(response_message_id=message["id"], response_message_loading=kind == CALLBACK_DEFERRED,
                            response_message_ephemeral=bool(flags & EPHEMERAL))
            resource["message"] = message
        elif kind in (CALLBACK_UPDATE, CALLBACK_DEFERRED_UPDATE):
            message = self.messages[state["message_id"]]
            if kind == CALLBACK_UPDATE:
                self._apply(message, data, files)
            state["original"] = int(message["id"])
            record.message_id = state["original"]
            resource["message"] = message
        return self.json({"interaction": response, "resource": resource})

    # ---------------------------------------------------------------------------------------------- modals

    @staticmethod
    def callback_problems(state: dict[str, Any], kind: int, data: dict[str, Any],
                          files: list[tuple[str, bytes, str]]) -> list[rules.Problem]:
        """What Discord would refuse in an interaction callback: its message, choices or modal."""
        if kind in CALLBACK_MESSAGES:
            return [(("data", *path), message) for path, message in rules.message_problems(data, files)]
        if kind == CALLBACK_AUTOCOMPLETE:
            return rules.choice_problems(data)
        if kind == CALLBACK_MODAL:
            return rules.modal_problems(state["type"], data)
        return []

    @staticmethod
    def modal_refusal(state: dict[str, Any], data: dict[str, Any]) -> str | None:
        """Why Discord would refuse this MODAL response (None: it would show it); see
        :func:`tests.face.discord_rules.modal_problems`."""
        problems = rules.modal_problems(state["type"], data)
        return "; ".join(f"{'.'.join(map(str, path))}: {message}" for path, message in problems) or None

    async def submit_modal(self, token: str, values: dict[str, str], who: dict[str, Any], *,
                           place: tuple[int, int] | None = None) -> str:
        """Fill in and submit the modal shown in answer to ``token``: a MODAL_SUBMIT interaction carrying every
        text input's value (``values`` by custom id; a field not named keeps what it showed), shaped as the
        modal was (label → component, or action row → components), with the message it was opened from."""
        state = self.interactions[token]
        modal = state["modal"]
        submitted = []
        for number, component in enumerate(modal["components"], start=1):
            inner = component["component"] if component["type"] == LABEL else component["components"][0]
            field = {"type": TEXT_INPUT, "id": number * 2, "custom_id": inner["custom_id"],
                     "value": values.get(inner["custom_id"], inner.get("value") or "")}
            submitted.append({"type": LABEL, "id": number * 2 - 1, "component": field}
                             if component["type"] == LABEL else {"type": ACTION_ROW, "components": [field]})
        message = self.messages.get(state["message_id"]) if state["message_id"] else None
        data = {"custom_id": modal["custom_id"], "components": submitted}
        origin = place or (int(state["payload"].get("guild_id", 0)) or None, state["channel_id"])
        dm = origin[0] is None
        return await self.interact(MODAL_SUBMIT, data, who, message=message, dm=dm, place=None if dm else origin)

    async def webhook(self, request: web.Request) -> web.Response:
        token = request.match_info["token"]
        payload, files = await self._body(request)
        reference = request.match_info.get("message")
        record = self._record(Record(request.method, request.path, "webhook", payload, files, token=token))
        state = self.interactions.get(token)
        if state is None or token in self.expired_tokens:
            record.status = 401
            return self.error(401, 50027, "Invalid Webhook Token")
        problems = rules.message_problems(payload, files) if request.method in ("POST", "PATCH") else []
        if problems:
            return self.refuse(record, problems)
        if request.method == "POST" and reference is None:
            message = self._message(state["channel_id"], payload, files, BOT_USER, payload.get("flags") or 0,
                                    {"webhook_id": str(APPLICATION_ID), "application_id": str(APPLICATION_ID)})
            record.message_id = int(message["id"])
            state.setdefault("followups", []).append(record.message_id)
            return self.json(message)
        message_id = state.get("original") if reference == "@original" else int(reference or 0)
        message = self.messages.get(message_id or 0)
        record.message_id = message_id
        if message is None:
            record.status = 404
            return self.error(404, 10008, "Unknown Message")
        if request.method == "DELETE":
            del self.messages[message_id]
            return web.Response(status=204)
        if request.method == "PATCH":
            self._apply(message, payload, files)
            message["edited_timestamp"] = now_iso()
        return self.json(message)

    # --------------------------------------------------------------------------------------- gateway

    async def gateway(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self.sockets.append(ws)
        await ws.send_str(json.dumps({"op": 10, "d": {"heartbeat_interval": self.heartbeat_interval},
                                      "s": None, "t": None}))
        try:
            async for frame in ws:
                if frame.type != WSMsgType.TEXT:
                    continue
                message = json.loads(frame.data)
                op = message["op"]
                if op == 1 and ws not in self.silent:
                    # A real network's few milliseconds: discord.py's latency bookkeeping assumes the ACK
                    # cannot arrive before its heartbeat thread has noted the send.
                    await asyncio.sleep(0.01)
                    await ws.send_str(json.dumps({"op": 11, "d": None, "s": None, "t": None}))
                elif op == 2:
                    await self.identify(ws, message["d"])
                elif op == 6:
                    await self.resume(ws, message["d"])
        finally:
            self.sockets.remove(ws)
            self.socket_shards.pop(ws, None)
            self.socket_sessions.pop(ws, None)
            self.silent.discard(ws)
        return ws

    async def identify(self, ws: web.WebSocketResponse, data: dict[str, Any]) -> None:
        """Start a session: on a sharded connection (``shard: [id, count]``) with only that shard's servers."""
        shard = tuple(data.get("shard") or (0, 1))
        self.identified += 1
        self.socket_shards[ws] = self.session_shards[f"session-{self.identified}"] = shard
        self.socket_sessions[ws] = f"session-{self.identified}"
        self._record(Record("WS", "/gateway", "identify", {"intents": data.get("intents"), "shard": data.get("shard")}))
        guilds = self.guilds_on(shard)
        await self.dispatch_to(ws, "READY", self.ready_payload(shard, guilds))
        for guild_id in guilds:
            await self.dispatch_to(ws, "GUILD_CREATE", self.guild_payload(guild_id))

    async def resume(self, ws: web.WebSocketResponse, data: dict[str, Any]) -> None:
        """Continue a session on a new connection, on the shard it was identified with; an invalidated or
        unknown session is answered with op 9 (not resumable), as Discord does."""
        session = str(data.get("session_id", ""))
        if session in self.invalid_sessions or session not in self.session_shards:
            self._record(Record("WS", "/gateway", "resume-refused", {"session_id": session}))
            await ws.send_str(json.dumps({"op": INVALID_SESSION, "d": False, "s": None, "t": None}))
            return
        self.socket_shards[ws] = self.session_shards.get(session, (0, 1))
        self.socket_sessions[ws] = session
        self._record(Record("WS", "/gateway", "resume", {"session_id": session}))
        await self.dispatch_to(ws, "RESUMED", {})

    @staticmethod
    def guilds_on(shard: tuple[int, int]) -> list[int]:
        shard_id, count = shard
        return [guild_id for guild_id in GUILD_CHANNELS if shard_of(guild_id, count) == shard_id]

    def sockets_for(self, guild_id: int | None) -> list[web.WebSocketResponse]:
        """The connections that get a server's events: its shard's (shard 0's for direct messages)."""
        return [ws for ws, (shard_id, count) in list(self.socket_shards.items())
                if shard_of(guild_id or 0, count) == shard_id and ws not in self.silent]

    def ready_payload(self, shard: tuple[int, int], guilds: list[int]) -> dict[str, Any]:
        return {"v": 10, "user": BOT_USER, "guilds": [{"id": str(g), "unavailable": True} for g in guilds],
                "session_id": f"session-{self.identified}", "shard": list(shard),
                "resume_gateway_url": f"ws://127.0.0.1:{self.port}/gateway",
                "application": {"id": str(APPLICATION_ID), "flags": 0}}

    def guild_payload(self, guild_id: int = GUILD_ID) -> dict[str, Any]:
        everyone = {"id": str(guild_id), "name": "@everyone", "permissions": "104324673", "position": 0,
                    "color": 0, "hoist": False, "managed": False, "mentionable": False, "flags": 0}
        return {"id": str(guild_id), "name": f"Stand-in Guild {guild_id % 100}", "icon": None,
                "owner_id": ALICE["id"],
                "roles": [everyone], "emojis": [], "stickers": [], "features": [], "member_count": 3,
                "channels": [self.channel_json(GUILD_CHANNELS[guild_id])], "members": [], "voice_states": [], "presences": [],
                "threads": [], "stage_instances": [], "guild_scheduled_events": [], "premium_tier": 0,
                "large": False, "unavailable": False, "joined_at": now_iso(), "verification_level": 0,
                "default_message_notifications": 0, "explicit_content_filter": 0, "mfa_level": 0,
                "system_channel_flags": 0, "preferred_locale": "en-US", "nsfw_level": 0}

    async def dispatch_to(self, ws: web.WebSocketResponse, event: str, data: dict[str, Any]) -> None:
        await ws.send_str(json.dumps({"op": 0, "t": event, "s": next(self.sequence), "d": data}))

    async def dispatch(self, event: str, data: dict[str, Any]) -> None:
        if not self.sockets:
            raise RuntimeError("no bot is connected to the stand-in gateway")
        guild_id = data.get("guild_id")
        for ws in self.sockets_for(int(guild_id) if guild_id else None):
            await self.dispatch_to(ws, event, data)

    async def drop_connections(self) -> None:
        """Close every gateway socket (the bot should reconnect and resume)."""
        for ws in list(self.sockets):
            await ws.close(code=4000)

    async def send_op(self, op: int, data: Any) -> None:
        """Send a gateway opcode on every connection: 7 (reconnect), or 9 (invalid session; ``data``: whether
        it may be resumed; when not, a later resume of it is refused too)."""
        for ws in list(self.sockets):
            if op == INVALID_SESSION and not data and ws in self.socket_sessions:
                self.invalid_sessions.add(self.socket_sessions[ws])
            self._record(Record("WS", "/gateway", f"op-{op}", {"d": data}))
            await ws.send_str(json.dumps({"op": op, "d": data, "s": None, "t": None}))

    # ---------------------------------------------------------------------------------- interactions

    def attachment(self, filename: str, data: bytes, content_type: str | None = "image/png",
                   size: int | None = None) -> dict[str, Any]:
        """An uploaded file as Discord describes it; ``size`` may lie about the real length."""
        return self._store_attachment(filename, data, content_type, size)

    async def interact(self, kind: int, data: dict[str, Any], who: dict[str, Any] = ALICE, *,
                       permissions: int = 0, message: dict[str, Any] | None = None, dm: bool = False,
                       upload_limit: int = UPLOAD_LIMIT, age: float = 0.0, guild_id: int = GUILD_ID,
                       place: tuple[int, int] | None = None, late: bool = False) -> str:
        """Send an INTERACTION_CREATE as Discord would; returns its token. ``age`` back-dates its creation
        (the time in its id) while it still answers; ``late``: it reached the bot after Discord's 3-second
        window, so its callback is refused (404, code 10062). The stand-in does not time that window itself: a
        loaded test machine would make it refuse at random. ``guild_id`` picks the server (and its channel)
        it comes from; ``place`` (guild id, channel id) names any channel, e.g. :data:`SECOND_CHANNEL`."""
        interaction_id = snowflake(time.time() - age) + self.next_id() % (1 << 22) if age else self.next_id()
        token = f"itoken-{interaction_id}"
        guild_id, channel_id = place or (guild_id, DM_CHANNEL_ID if dm else GUILD_CHANNELS[guild_id])
        payload: dict[str, Any] = {
            "id": str(interaction_id), "application_id": str(APPLICATION_ID), "type": kind, "token": token,
            "version": 1, "data": data, "channel_id": str(channel_id), "locale": "en-US",
            "app_permissions": str(ALL_PERMISSIONS), "entitlements": [], "attachment_size_limit": upload_limit,
            "authorizing_integration_owners": {"0": str(guild_id)}, "context": 1 if dm else 0,
        }
        if dm:
            payload["user"] = who
            payload["channel"] = {"id": str(DM_CHANNEL_ID), "type": 1, "recipients": [who]}
        else:
            payload.update(guild_id=str(guild_id), guild_locale="en-US", channel=self.channel_json(channel_id, guild_id),
                           member={"user": who, "roles": [], "joined_at": now_iso(), "deaf": False, "mute": False,
                                   "flags": 0, "permissions": str(permissions)})
        if message is not None:
            payload["message"] = copy.deepcopy(message)
        self.interactions[token] = {"id": str(interaction_id), "type": kind, "channel_id": channel_id,
                                    "user": who, "message_id": int(message["id"]) if message else None,
                                    "payload": payload, "late": late}
        await self.dispatch("INTERACTION_CREATE", payload)
        return token

    async def redeliver(self, token: str) -> None:
        """Send an interaction's INTERACTION_CREATE again, as a replay after a gateway resume may."""
        await self.dispatch("INTERACTION_CREATE", self.interactions[token]["payload"])

    # ---------------------------------------------------- message commands and select menus (components)

    def member_message(self, who: dict[str, Any], channel_id: int, attachments: list[dict[str, Any]],
                       embeds: list[dict[str, Any]], content: str = "") -> dict[str, Any]:
        """A message a member posted: files from :meth:`attachment`, embeds as from :func:`picture_embed`."""
        message = self._message(channel_id, {"content": content, "embeds": embeds}, [], who)
        message["attachments"] = attachments
        return message


def picture_embed(picture: dict[str, Any] | None, link: str = "https://example.invalid/photo.png") -> dict[str, Any]:
    """A link preview as Discord embeds it: the original ``link`` (anywhere on the web) and, when there is a
    ``picture`` (a stored file from :meth:`DiscordStandin.attachment`), its copy on Discord's media proxy."""
    embed: dict[str, Any] = {"type": "rich", "title": "A link", "url": link}
    if picture is not None:
        embed["image"] = {"url": link, "proxy_url": picture["url"], "width": 96, "height": 64}
    return embed


class StandinThread:
    """The stand-in on a background event loop, with a synchronous API for tests."""

    def __init__(self, invalid_tokens: tuple[str, ...] = ()) -> None:
        self.loop = asyncio.new_event_loop()
        self.standin = DiscordStandin(invalid_tokens)
        self.thread = threading.Thread(target=self.loop.run_forever, name="discord-standin", daemon=True)

    def __enter__(self) -> "StandinThread":
        self.thread.start()
        self.call(self.standin.start())
        return self

    def __exit__(self, *exc: object) -> None:
        self.call(self.standin.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)

    def call(self, what: Any, timeout: float = 30) -> Any:
        """Run a coroutine (or a plain callable) on the stand-in's loop and return its result."""
        if asyncio.iscoroutine(what):
            return asyncio.run_coroutine_threadsafe(what, self.loop).result(timeout)

        async def plain() -> Any:
            return what()
        return asyncio.run_coroutine_threadsafe(plain(), self.loop).result(timeout)

    @property
    def port(self) -> int:
        return self.standin.port

    @property
    def api_base(self) -> str:
        return f"{self.standin.base}/api/v10"

    @property
    def gateway_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/gateway"

    # What a user does ------------------------------------------------------------------------------

    def attachment(self, filename: str, data: bytes, content_type: str | None = "image/png",
                   size: int | None = None) -> dict[str, Any]:
        return self.call(lambda: self.standin.attachment(filename, data, content_type, size))

    def command(self, name: str, options: dict[str, Any] | None = None, who: dict[str, Any] = ALICE, *,
                subcommand: str | None = None, permissions: int = 0, dm: bool = False,
                upload_limit: int = UPLOAD_LIMIT, age: float = 0.0, guild_id: int = GUILD_ID,
                place: tuple[int, int] | None = None, late: bool = False) -> str:
        """Invoke a slash command (from another channel ``place`` when given; ``late``: delivered after Discord's
        3-second window); attachment options are given as dicts from :meth:`attachment`."""
        options = options or {}
        resolved: dict[str, Any] = {}
        listed = []
        for key, value in options.items():
            if isinstance(value, dict):
                resolved[value["id"]] = value
                listed.append({"name": key, "type": ATTACHMENT_OPTION, "value": value["id"]})
            else:
                listed.append({"name": key, "type": OPTION_TYPES[type(value)], "value": value})
        if subcommand:
            listed = [{"name": subcommand, "type": 1, "options": listed}]
        data = {"id": str(APPLICATION_ID + 1), "name": name, "type": 1, "options": listed}
        if resolved:
            data["resolved"] = {"attachments": resolved}
        return self.call(self.standin.interact(2, data, who, permissions=permissions, dm=dm, upload_limit=upload_limit,
                                               age=age, guild_id=guild_id, place=place, late=late))

    def autocomplete(self, name: str, focused: str, value: str, who: dict[str, Any] = ALICE,
                     subcommand: str | None = None, *, dm: bool = False, guild_id: int = GUILD_ID,
                     kind: int = 3, others: dict[str, str] | None = None) -> str:
        """Ask for choices while ``focused`` (an option of type ``kind``: 3 text, 4 integer) holds ``value``, the
        string options ``others`` already filled in. Discord sends a focused number as typed, as a string."""
        listed = [{"name": focused, "type": kind, "value": value, "focused": True},
                  *({"name": other, "type": 3, "value": text} for other, text in (others or {}).items())]
        if subcommand:
            listed = [{"name": subcommand, "type": 1, "options": listed}]
        data = {"id": str(APPLICATION_ID + 1), "name": name, "type": 1, "options": listed}
        return self.call(self.standin.interact(4, data, who, dm=dm, guild_id=guild_id))

    def press(self, message: dict[str, Any], custom_id: str, who: dict[str, Any] = ALICE,
              permissions: int = 0, *, dm: bool = False, place: tuple[int, int] | None = None) -> str:
        """Click a button on a message (as seen in a DM, or from another ``place``, when a test says so)."""
        return self.call(self.standin.interact(3, {"custom_id": custom_id, "component_type": 2}, who,
                                               permissions=permissions, message=message, dm=dm, place=place))

    # Message commands and select menus ------------------------------------------------------------

    def post(self, who: dict[str, Any], attachments: Sequence[dict[str, Any]] = (),
             embeds: Sequence[dict[str, Any]] = (), *, dm: bool = False, place: tuple[int, int] | None = None) -> dict[str, Any]:
        """A member posts a message (in the bot's guild channel, a DM, or another ``place``)."""
        channel_id = DM_CHANNEL_ID if dm else (place[1] if place else CHANNEL_ID)
        return self.call(lambda: copy.deepcopy(
            self.standin.member_message(who, channel_id, list(attachments), list(embeds))))

    def message_command(self, name: str, message: dict[str, Any], who: dict[str, Any] = ALICE, *,
                        dm: bool = False, place: tuple[int, int] | None = None) -> str:
        """Use a message context-menu command (Apps → ``name``) on ``message``: application command type 3,
        the target in ``resolved.messages`` as Discord sends it."""
        data = {"id": str(APPLICATION_ID + 2), "name": name, "type": 3, "target_id": message["id"],
                "resolved": {"messages": {message["id"]: message}}}
        return self.call(self.standin.interact(2, data, who, dm=dm, place=place))

    def choose(self, message: dict[str, Any], custom_id: str, values: list[str], who: dict[str, Any] = ALICE, *,
               dm: bool = False, place: tuple[int, int] | None = None) -> str:
        """Pick ``values`` in a string select (component type 3) of ``message``."""
        data = {"custom_id": custom_id, "component_type": 3, "values": values}
        return self.call(self.standin.interact(3, data, who, message=message, dm=dm, place=place))

    def modal(self, token: str) -> dict[str, Any] | None:
        """The modal the bot showed in answer to ``token`` (custom id, title, components), if any."""
        return self.call(lambda: copy.deepcopy(self.standin.interactions.get(token, {}).get("modal")))

    def submit_modal(self, token: str, values: dict[str, str], who: dict[str, Any] = ALICE, *,
                     place: tuple[int, int] | None = None) -> str:
        """Fill in the modal shown for ``token`` and submit it (from the same channel unless ``place`` says)."""
        return self.call(self.standin.submit_modal(token, values, who, place=place))

    # Controls ----------------------------------------------------------------------------------------

    def redeliver(self, token: str) -> None:
        self.call(self.standin.redeliver(token))

    def expire(self, token: str) -> None:
        self.call(lambda: self.standin.expired_tokens.add(token))

    def fail(self, method: str, path_pattern: str, status: int, code: int = 0, times: int = 1) -> None:
        self.call(lambda: self.standin.failures.append((method, re.compile(path_pattern), status, code, times)))

    def drop_connections(self) -> None:
        self.call(self.standin.drop_connections())

    def reconnect(self) -> None:
        """Gateway op 7: Discord asks the bot to reconnect (and resume)."""
        self.call(self.standin.send_op(RECONNECT, None))

    def invalidate_session(self, resumable: bool = False) -> None:
        """Gateway op 9: the session is gone (the bot identifies anew) or, ``resumable``, may be resumed."""
        self.call(self.standin.send_op(INVALID_SESSION, resumable))

    def go_silent(self) -> None:
        """Turn today's connections into zombies: no heartbeat ACKs and no events (new connections are normal)."""
        self.call(lambda: self.standin.silent.update(self.standin.sockets))

    def set_heartbeat_interval(self, milliseconds: int) -> None:
        """What HELLO tells new connections (Discord says about 41 s)."""
        self.call(lambda: setattr(self.standin, "heartbeat_interval", milliseconds))

    def recommend_shards(self, count: int) -> None:
        """What ``GET /gateway/bot`` says from now on (a bot with ``shards = "auto"`` opens that many)."""
        self.call(lambda: setattr(self.standin, "shard_count", count))

    # What the bot did ----------------------------------------------------------------------------------

    def records(self, kind: str | None = None, token: str | None = None) -> list[Record]:
        return [r for r in self.call(lambda: list(self.standin.records))
                if (kind is None or r.kind == kind) and (token is None or r.token == token)]

    def message(self, message_id: int) -> dict[str, Any] | None:
        return self.call(lambda: copy.deepcopy(self.standin.messages.get(message_id)))

    def messages(self) -> list[dict[str, Any]]:
        return self.call(lambda: copy.deepcopy(list(self.standin.messages.values())))

    def attachment_bytes(self, attachment: dict[str, Any]) -> bytes:
        return self.call(lambda: self.standin.attachments[int(attachment["id"])].data)

    def original(self, token: str) -> dict[str, Any] | None:
        state = self.call(lambda: dict(self.standin.interactions.get(token, {})))
        return self.message(state["original"]) if state.get("original") else None

    def followups(self, token: str) -> list[dict[str, Any]]:
        state = self.call(lambda: dict(self.standin.interactions.get(token, {})))
        return [m for m in (self.message(i) for i in state.get("followups", [])) if m is not None]

    def connected(self) -> bool:
        return self.call(lambda: bool(self.standin.sockets))

    def user_agents(self) -> list[tuple[str, str]]:
        """(path, User-Agent) of every API request so far."""
        return self.call(lambda: list(self.standin.user_agents))

    def rate_limited(self) -> list[tuple[str, str]]:
        """(path, scope) of every 429 the stand-in's own buckets answered."""
        return self.call(lambda: list(self.standin.rate_limits.limited))

    def buckets_spent(self) -> list[str]:
        """The path of every answer that said its bucket was spent (``X-RateLimit-Remaining: 0``)."""
        return self.call(lambda: list(self.standin.rate_limits.spent))

    def wait_for(self, check: Callable[[], Any], timeout: float = 60, what: str = "condition",
                 interval: float = 0.05) -> Any:
        """Poll ``check`` until it returns something truthy; fail with ``what`` after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            result = check()
            if result:
                return result
            time.sleep(interval)
        raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")


def main() -> None:
    parser = argparse.ArgumentParser(description="Loopback Discord stand-in (REST + gateway) for testing nst-bot.")
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0: any free port)")
    parser.add_argument("--port-file", type=Path, help="write the chosen port here once listening")
    parser.add_argument("--invalid-token", action="append", default=[], help="a bot token to reject with 401")
    args = parser.parse_args()

    async def serve() -> None:
        standin = DiscordStandin(tuple(args.invalid_token))
        port = await standin.start(args.port)
        if args.port_file:
            args.port_file.write_text(str(port))
        print(f"Discord stand-in on http://127.0.0.1:{port} (api_base http://127.0.0.1:{port}/api/v10, "
              f"gateway_url ws://127.0.0.1:{port}/gateway)", flush=True)
        await asyncio.Event().wait()

    try:
        asyncio.run(serve())
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()

"""Preset styles: the configured ones, shared by every server, plus those each server adds from Discord.

A preset added with ``/preset add`` belongs to the server it was added in: it lives in
``<data_dir>/presets/<server id>/`` as ``<name>.png`` plus that folder's ``index.json``, and only that server
lists, uses or removes it (direct messages see the configured presets only). A name is reduced to lowercase
letters, digits and dashes before it is used anywhere, so no user text ever reaches a file path.
"""

from __future__ import annotations

import io
import json
import logging
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from nst_engine.images import load_image, resize_long_side

from bot.config import PRESET_NAME, Config
from bot.errors import UserError

log = logging.getLogger(__name__)

MAX_AUTOCOMPLETE = 25  # Discord's limit on autocomplete results
THUMB = 160
GALLERIES_KEPT = 32  # contact sheets cached (one per server and set of presets)
PRESETS_PER_PAGE = 12  # three rows of four thumbnails; their names always fit one message


class PresetError(UserError):
    """A preset request that cannot be done; the message is shown to the user."""


@dataclass(frozen=True)
class StylePreset:
    name: str
    title: str
    artist: str
    path: Path
    custom: bool  # added from Discord in one server (removable there), not from the config

    @property
    def label(self) -> str:
        return f"{self.title} — {self.artist}" if self.artist else self.title


def sanitize_name(text: str) -> str:
    """``"Starry Night!"`` → ``"starry-night"``; raises :class:`PresetError` when nothing usable is left."""
    name = re.sub(r"[^a-z0-9]+", "-", text.strip().lower()).strip("-")[:32].strip("-")
    if not PRESET_NAME.match(name):
        raise PresetError("A preset name needs at least one letter or digit (letters, digits and dashes, "
                          "up to 32 characters).")
    return name


class PresetLibrary:
    """Every lookup names the server asking (``guild_id``; ``None`` for a direct message) and sees only the
    configured presets plus that server's own."""

    def __init__(self, config: Config) -> None:
        self.directory = config.storage.data_dir / "presets"
        self.max_per_server = config.limits.max_presets_per_server
        self._configured = {p.name: StylePreset(p.name, p.title, p.artist, p.path, False) for p in config.presets}
        self._added: dict[int, dict[str, StylePreset]] = {}  # server id → its presets, read on first use
        self._galleries: OrderedDict[tuple, bytes] = OrderedDict()
        self._lock = threading.Lock()  # one change at a time; lookups read dicts that are replaced, never edited
        self._warn_about_shared_index()

    def server_directory(self, guild_id: int) -> Path:
        return self.directory / str(int(guild_id))

    def all(self, guild_id: int | None = None) -> list[StylePreset]:
        """Presets this server may use whose image is present, configured ones first."""
        return [p for p in (*self._configured.values(), *self._server(guild_id).values()) if p.path.is_file()]

    def get(self, name: str, guild_id: int | None = None) -> StylePreset | None:
        key = name.strip().lower()
        return self._configured.get(key) or self._server(guild_id).get(key)

    def search(self, text: str, guild_id: int | None = None, *, added_only: bool = False) -> list[StylePreset]:
        """Autocomplete: names or titles starting with ``text`` first, then containing it (at most 25);
        ``added_only``: this server's added presets only."""
        needle = text.strip().lower()
        presets = [p for p in self.all(guild_id) if p.custom or not added_only]
        starts = [p for p in presets if p.name.startswith(needle) or p.title.lower().startswith(needle)]
        contains = [p for p in presets if p not in starts and (needle in p.name or needle in p.label.lower())]
        return (starts + contains)[:MAX_AUTOCOMPLETE]

    def add(self, name: str, title: str, image: Image.Image, *, guild_id: int) -> StylePreset:
        """Add a preset to one server; an existing name is refused, never replaced."""
        key = sanitize_name(name)
        if key in self._configured:
            raise PresetError(f"`{key}` is a preset from the config file; pick another name.")
        with self._lock:
            presets = self._server(guild_id)
            if key in presets:
                raise PresetError(f"This server already has a preset called `{key}`. To replace its image, "
                                  f"remove it first with `/preset remove name:{key}`, then add it again; or pick "
                                  "another name.")
            if not self.max_per_server:
                raise PresetError("Adding presets is turned off on this bot.")
            if len(presets) >= self.max_per_server:
                raise PresetError(f"This server already has {len(presets)} added presets, the most the bot allows "
                                  f"({self.max_per_server}). Remove one with `/preset remove` first.")
            directory = self.server_directory(guild_id)
            directory.mkdir(parents=True, exist_ok=True)
            path = directory / f"{key}.png"
            tmp = path.with_suffix(".part")
            image.save(tmp, "PNG")
            tmp.replace(path)
            preset = StylePreset(key, title.strip()[:80] or key, "", path, True)
            self._save(guild_id, {**presets, key: preset})
        return preset

    def remove(self, name: str, *, guild_id: int) -> StylePreset:
        """Remove one of this server's added presets (another server's presets are out of reach)."""
        key = sanitize_name(name)
        if key in self._configured:
            raise PresetError(f"`{key}` comes from the config file; an admin removes it there.")
        with self._lock:
            presets = dict(self._server(guild_id))
            preset = presets.pop(key, None)
            if preset is None:
                raise PresetError(f"This server has no added preset called `{key}`.")
            preset.path.unlink(missing_ok=True)
            self._save(guild_id, presets)
        return preset

    def pages(self, guild_id: int | None = None) -> list[list[StylePreset]]:
        """The presets this server may use, a gallery page at a time (one page, empty, when there are none)."""
        presets = self.all(guild_id)
        return [presets[at:at + PRESETS_PER_PAGE] for at in range(0, len(presets), PRESETS_PER_PAGE)] or [[]]

    def gallery_png(self, presets: list[StylePreset]) -> bytes:
        """One contact sheet of these presets (a page of them), with their names; cached per set of presets."""
        key = tuple((p.name, p.title, str(p.path)) for p in presets)
        with self._lock:
            sheet = self._galleries.get(key)
        if sheet is None:
            sheet = contact_sheet(presets)
            with self._lock:
                self._galleries[key] = sheet
                while len(self._galleries) > GALLERIES_KEPT:
                    self._galleries.popitem(last=False)
        return sheet

    def _server(self, guild_id: int | None) -> dict[str, StylePreset]:
        if guild_id is None:
            return {}
        presets = self._added.get(guild_id)
        if presets is None:
            presets = self._added.setdefault(guild_id, self._read_index(guild_id))
        return presets

    def _read_index(self, guild_id: int) -> dict[str, StylePreset]:
        directory = self.server_directory(guild_id)
        try:
            entries = json.loads((directory / "index.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        presets = {}
        for entry in entries:
            name = entry.get("name", "")
            if PRESET_NAME.match(name) and name not in self._configured:
                presets[name] = StylePreset(name, entry.get("title") or name, entry.get("artist", ""),
                                            directory / f"{name}.png", True)
        return presets

    def _save(self, guild_id: int, presets: dict[str, StylePreset]) -> None:
        index = self.server_directory(guild_id) / "index.json"
        index.parent.mkdir(parents=True, exist_ok=True)
        entries = [{"name": p.name, "title": p.title, "artist": p.artist} for p in presets.values()]
        tmp = index.with_suffix(".part")
        tmp.write_text(json.dumps(entries, indent=2), encoding="utf-8")
        tmp.replace(index)
        self._added[guild_id] = presets

    def _warn_about_shared_index(self) -> None:
        """Presets added before they belonged to one server cannot be given to the right one; say so once."""
        shared = self.directory / "index.json"
        if shared.is_file():
            log.warning("%s lists presets added before presets belonged to one server; they are no longer offered. "
                        "Add them again with /preset add in their server, or list them under [[presets]] in the "
                        "config.", shared)


def contact_sheet(presets: list[StylePreset], columns: int = 4) -> bytes:
    font = ImageFont.load_default(size=14)
    label_height = 40
    rows = max(1, -(-len(presets) // columns))
    cols = max(1, min(columns, len(presets)))
    sheet = Image.new("RGB", (cols * (THUMB + 8) + 8, rows * (THUMB + label_height + 8) + 8), (32, 34, 37))
    draw = ImageDraw.Draw(sheet)
    for index, preset in enumerate(presets):
        x = 8 + (index % columns) * (THUMB + 8)
        y = 8 + (index // columns) * (THUMB + label_height + 8)
        thumb = resize_long_side(load_image(preset.path, what="preset image"), THUMB)
        sheet.paste(thumb, (x + (THUMB - thumb.width) // 2, y + (THUMB - thumb.height) // 2))
        draw.text((x + 2, y + THUMB + 4), preset.name, fill=(255, 255, 255), font=font)
        draw.text((x + 2, y + THUMB + 21), _fit(draw, preset.title, font, THUMB - 4), fill=(185, 187, 190), font=font)
    buffer = io.BytesIO()
    sheet.save(buffer, "PNG", optimize=True)
    return buffer.getvalue()


def _fit(draw: ImageDraw.ImageDraw, text: str, font: ImageFont.ImageFont, width: int) -> str:
    while text and draw.textlength(text, font=font) > width:
        text = text[:-2] + "…" if len(text) > 1 else ""
    return text

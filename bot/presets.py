"""Preset styles: the configured ones plus those admins add from Discord, held in memory for autocomplete.

Presets added with ``/preset add`` live in ``<data_dir>/presets/`` as ``<name>.png`` plus ``index.json``. A
name is reduced to lowercase letters, digits and dashes before it is used anywhere, so no user text ever
reaches a file path.
"""

from __future__ import annotations

import io
import json
import re
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from nst_engine.images import load_image, resize_long_side

from .config import PRESET_NAME, Config
from .errors import UserError

MAX_AUTOCOMPLETE = 25  # Discord's limit on autocomplete results
THUMB = 160


class PresetError(UserError):
    """A preset request that cannot be done; the message is shown to the user."""


@dataclass(frozen=True)
class StylePreset:
    name: str
    title: str
    artist: str
    path: Path
    custom: bool  # added from Discord (removable there), not from the config

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
    def __init__(self, config: Config) -> None:
        self.directory = config.storage.data_dir / "presets"
        self.index_file = self.directory / "index.json"
        self._configured = {p.name: StylePreset(p.name, p.title, p.artist, p.path, False) for p in config.presets}
        self._custom: dict[str, StylePreset] = {}
        self._gallery: bytes | None = None
        self._load_custom()

    def _load_custom(self) -> None:
        try:
            entries = json.loads(self.index_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return
        for entry in entries:
            name = entry.get("name", "")
            if PRESET_NAME.match(name) and name not in self._configured:
                self._custom[name] = StylePreset(name, entry.get("title") or name, entry.get("artist", ""),
                                                 self.directory / f"{name}.png", True)

    def _save_index(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        entries = [{"name": p.name, "title": p.title, "artist": p.artist} for p in self._custom.values()]
        tmp = self.index_file.with_suffix(".part")
        tmp.write_text(json.dumps(entries, indent=2), encoding="utf-8")
        tmp.replace(self.index_file)
        self._gallery = None

    def all(self) -> list[StylePreset]:
        """Presets whose image is present, configured ones first."""
        return [p for p in (*self._configured.values(), *self._custom.values()) if p.path.is_file()]

    def get(self, name: str) -> StylePreset | None:
        key = name.strip().lower()
        return self._configured.get(key) or self._custom.get(key)

    def search(self, text: str) -> list[StylePreset]:
        """Autocomplete: names or titles starting with ``text`` first, then containing it (at most 25)."""
        needle = text.strip().lower()
        presets = self.all()
        starts = [p for p in presets if p.name.startswith(needle) or p.title.lower().startswith(needle)]
        contains = [p for p in presets if p not in starts and (needle in p.name or needle in p.label.lower())]
        return (starts + contains)[:MAX_AUTOCOMPLETE]

    def add(self, name: str, title: str, image: Image.Image) -> StylePreset:
        key = sanitize_name(name)
        if key in self._configured:
            raise PresetError(f"`{key}` is a preset from the config file; pick another name.")
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.directory / f"{key}.png"
        tmp = path.with_suffix(".part")
        image.save(tmp, "PNG")
        tmp.replace(path)
        preset = StylePreset(key, title.strip()[:80] or key, "", path, True)
        self._custom[key] = preset
        self._save_index()
        return preset

    def remove(self, name: str) -> StylePreset:
        key = sanitize_name(name)
        if key in self._configured:
            raise PresetError(f"`{key}` comes from the config file; an admin removes it there.")
        preset = self._custom.pop(key, None)
        if preset is None:
            raise PresetError(f"There is no added preset called `{key}`.")
        preset.path.unlink(missing_ok=True)
        self._save_index()
        return preset

    def gallery_png(self) -> bytes:
        """One contact sheet of every preset with its name, cached until the presets change."""
        if self._gallery is None:
            self._gallery = contact_sheet(self.all())
        return self._gallery


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

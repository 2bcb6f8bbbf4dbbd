"""What each open "Stylize image" menu was opened on, kept server-side in SQLite (``menus.sqlite3``).

A menu's custom ids carry only the random id of its row here, so nothing a client sends names an image link,
and open menus keep working after a restart. The images are taken from the message as Discord sends it with
the context-menu interaction: without the privileged message-content intent (which this bot does not ask
for) Discord hides a message's attachments and embeds when the bot fetches it later through the REST API.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

# A private menu is gone once its owner reloads Discord; an hour is enough to pick, and keeps the table small.
PICK_LIFETIME = 3600
MAX_OPEN_PICKS = 5  # per member: opening another closes their oldest, so a burst of menus stays a few rows
WAL_LIMIT_BYTES = 1 << 20  # SQLite truncates its write-ahead log to this after a checkpoint

SCHEMA = """
CREATE TABLE IF NOT EXISTS picks (
    id TEXT PRIMARY KEY,
    user_id INTEGER NOT NULL,
    guild_id INTEGER,
    channel_id INTEGER NOT NULL,
    message_id INTEGER NOT NULL,
    images TEXT NOT NULL,
    image INTEGER NOT NULL,
    quality TEXT NOT NULL,
    created REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS picks_created ON picks (created);
CREATE INDEX IF NOT EXISTS picks_user ON picks (user_id, created);
"""


@dataclass(frozen=True)
class ImageLink:
    """A picture in a message: an attachment, or an embed's picture through Discord's media proxy (never the
    embed's own link, which may point anywhere). It has what :func:`bot.intake.download.fetch_image` reads of an
    attachment."""

    url: str
    filename: str
    content_type: str | None
    size: int


@dataclass(frozen=True)
class Pick:
    """One open menu: who opened it where, on which message's images, and what is chosen so far."""

    id: str
    user_id: int
    guild_id: int | None
    channel_id: int
    message_id: int
    images: tuple[ImageLink, ...]
    image: int  # index into ``images``
    quality: str
    created: float

    @property
    def chosen(self) -> ImageLink:
        return self.images[self.image]


def new_pick_id() -> str:
    """16 random hex digits: unguessable, so one member cannot reach another's menu by its id."""
    return secrets.token_hex(8)


class PickStore:
    def __init__(self, data_dir: Path, lifetime: float = PICK_LIFETIME, max_open: int = MAX_OPEN_PICKS) -> None:
        Path(data_dir).mkdir(parents=True, exist_ok=True)
        self.lifetime, self.max_open = lifetime, max_open
        self.db = sqlite3.connect(Path(data_dir) / "menus.sqlite3", isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute(f"PRAGMA journal_size_limit={WAL_LIMIT_BYTES}")
        self.db.executescript(SCHEMA)

    def add(self, pick: Pick) -> int:
        """Keep a new menu's pick; menus past their lifetime, and the member's beyond ``max_open`` (oldest
        first), go at the same time. Returns how many of the member's open menus were closed for it."""
        self.db.execute("DELETE FROM picks WHERE created < ?", (time.time() - self.lifetime,))
        row = asdict(pick)
        row["images"] = json.dumps(row["images"])
        self.db.execute(f"INSERT INTO picks ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
                        tuple(row.values()))
        return self.db.execute("DELETE FROM picks WHERE user_id = ? AND id NOT IN (SELECT id FROM picks WHERE "
                               "user_id = ? ORDER BY created DESC, rowid DESC LIMIT ?)",
                               (pick.user_id, pick.user_id, self.max_open)).rowcount

    def get(self, pick_id: str) -> Pick | None:
        """The pick, or None when unknown or past its lifetime."""
        row = self.db.execute("SELECT id, user_id, guild_id, channel_id, message_id, images, image, quality, created "
                              "FROM picks WHERE id = ? AND created >= ?",
                              (pick_id, time.time() - self.lifetime)).fetchone()
        if row is None:
            return None
        images = tuple(ImageLink(**entry) for entry in json.loads(row[5]))
        return Pick(*row[:5], images, *row[6:])

    def choose(self, pick: Pick, *, image: int | None = None, quality: str | None = None) -> Pick:
        """Remember another image or quality for this menu; returns the updated pick."""
        updated = replace(pick, image=pick.image if image is None else image, quality=quality or pick.quality)
        self.db.execute("UPDATE picks SET image = ?, quality = ? WHERE id = ?",
                        (updated.image, updated.quality, pick.id))
        return updated

    def close(self) -> None:
        self.db.close()

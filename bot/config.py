"""Configuration: one TOML file (see config.example.toml), parsed into typed, validated dataclasses.

Torch-free. Relative paths in the file are relative to the file's folder. Secrets never live here: the token
comes from ``$DISCORD_TOKEN`` or ``$DISCORD_TOKEN_FILE`` (Docker secrets).
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from nst_engine.cost import default_budget_mb
from nst_engine.options import QUALITY_LEVELS, QualityLevel, option_spec
from nst_engine.typed import bounded, convert, field_types
from nst_engine.weights import WEIGHTS_URL, cache_dir

from bot.intake.limits import LimitsConfig

BUILTIN_PRESETS_DIR = Path(__file__).parent / "assets" / "presets"
PRESET_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,31}$")
GUILD_ID = re.compile(r"^[0-9]{1,20}$")
MAX_SHARDS = 4096  # Discord recommends about a shard per 1,000 servers: this is far beyond any self-hosted bot
LOG_LEVELS = ("debug", "info", "warning", "error")
MAX_BATCH_SIZE = 16  # beyond this a batch only adds latency; GPU memory runs out first at useful sizes


class ConfigError(Exception):
    """The configuration file is missing, malformed or has an invalid value; the message says which."""


@dataclass(frozen=True)
class Preset:
    name: str
    title: str
    artist: str = ""
    file: Path | None = None
    url: str = ""
    sha256: str = ""

    @property
    def path(self) -> Path:
        """Where the image is: the configured file, or the cache location that fetch-assets fills."""
        if self.file is not None:
            return self.file
        suffix = Path(self.url.split("?")[0]).suffix.lower() or ".jpg"
        return cache_dir() / "presets" / f"{self.name}{suffix}"

    @property
    def label(self) -> str:
        return f"{self.title} — {self.artist}" if self.artist else self.title


@dataclass(frozen=True)
class DiscordConfig:
    api_base: str = "https://discord.com/api/v10"
    gateway_url: str = "wss://gateway.discord.gg"
    guild_ids: tuple[int, ...] = ()
    allow_dms: bool = True
    shards: int | str = "off"  # "off": one gateway connection; "auto": Discord's recommended count; or a count
    shard_ids: tuple[int, ...] = ()  # the shards of ``shards`` this process connects (of several); empty: all
    # Seconds of gateway silence before the bot reconnects; over the 5 s discord.py waits before identifying anew.
    heartbeat_timeout: float = bounded(60.0, 10, 600)


@dataclass(frozen=True)
class EngineConfig:
    weights: str = ""
    weights_url: str = WEIGHTS_URL
    device: str = "auto"
    threads: int = bounded(0, 0, 1024)  # CPU threads for torch; 0 = its default (OMP_NUM_THREADS, else one per core)
    batch_size: int = bounded(1, 1, MAX_BATCH_SIZE)
    job_timeout: float = bounded(1800.0, 1, 7 * 86400)
    max_job_memory_mb: int = bounded(0, 0, 100_000_000)  # the engine's memory budget; 0 = derived from the machine

    def memory_budget_mb(self) -> int:
        """The predicted peak (nst_engine.cost) a job or batch may reach: the configured one, else the machine's."""
        return self.max_job_memory_mb or default_budget_mb()


@dataclass(frozen=True)
class StorageConfig:
    data_dir: Path = Path("data")
    retention_days: float = bounded(7.0, 0.01, 3650)
    max_disk_mb: int = bounded(2048, 0, 100_000_000)  # the data dir's total; 0 = only the file system's free space


@dataclass(frozen=True)
class BotConfig:
    progress_interval: float = bounded(3.0, 0.1, 3600)
    log_level: str = "info"  # $NST_LOG_LEVEL wins
    default_quality: str = "standard"
    allowed_attachment_hosts: tuple[str, ...] = ("cdn.discordapp.com", "media.discordapp.net")


@dataclass(frozen=True)
class Config:
    discord: DiscordConfig = field(default_factory=DiscordConfig)
    engine: EngineConfig = field(default_factory=EngineConfig)
    storage: StorageConfig = field(default_factory=StorageConfig)
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    bot: BotConfig = field(default_factory=BotConfig)
    quality: dict[str, QualityLevel] = field(default_factory=lambda: dict(QUALITY_LEVELS))
    presets: tuple[Preset, ...] = ()
    path: Path | None = None
    queue: QueueConfig = field(default_factory=lambda: QueueConfig())
    metrics: MetricsConfig = field(default_factory=lambda: MetricsConfig())

    def preset(self, name: str) -> Preset | None:
        return next((p for p in self.presets if p.name == name.strip().lower()), None)


def builtin_presets() -> tuple[Preset, ...]:
    """The presets shipped with nst-bot (procedurally generated, so free to redistribute)."""
    titles = {"mosaic": "Mosaic", "waves": "Waves", "embers": "Embers", "cubist": "Cubist Shards",
              "pointillist": "Pointillist Dots"}
    return tuple(Preset(name, title, "nst-bot", BUILTIN_PRESETS_DIR / f"{name}.png")
                 for name, title in titles.items() if (BUILTIN_PRESETS_DIR / f"{name}.png").exists())


def default_config_path() -> Path | None:
    """``$NST_CONFIG`` if set, else ``config.toml`` in the working directory if it exists."""
    if os.environ.get("NST_CONFIG"):
        return Path(os.environ["NST_CONFIG"])
    local = Path("config.toml")
    return local if local.is_file() else None


def load_config(path: str | os.PathLike | None = None) -> Config:
    """Read and validate the config; with no file at all, the defaults and the built-in presets."""
    path = Path(path) if path else default_config_path()
    if path is None:
        return Config(presets=builtin_presets())
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"Config file {str(path)!r} does not exist (copy config.example.toml).") from None
    except IsADirectoryError:
        raise ConfigError(f"Config path {str(path)!r} is a folder; name the .toml file itself.") from None
    except UnicodeDecodeError:
        raise ConfigError(f"Config file {str(path)!r} is not UTF-8 text; save it as UTF-8.") from None
    except OSError as error:
        raise ConfigError(f"Cannot read config file {str(path)!r}: {(error.strerror or str(error)).lower()} "
                          f"(user id {os.getuid()}).") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"Config file {str(path)!r} is not valid TOML: {error}.") from None
    return parse_config(raw, path.resolve().parent, path)


def parse_config(raw: dict[str, Any], base: Path, path: Path | None = None) -> Config:
    known = {"discord", "engine", "storage", "limits", "bot", "quality", "presets", "queue", "metrics"}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ConfigError(f"Unknown config section(s): {', '.join(unknown)}.")
    storage = _section(StorageConfig, raw.get("storage", {}), "storage")
    storage = replace(storage, data_dir=_resolve(base, storage.data_dir))
    engine = _section(EngineConfig, raw.get("engine", {}), "engine")
    if engine.weights:
        engine = EngineConfig(**{**vars(engine), "weights": str(_resolve(base, Path(engine.weights)))})
    if engine.device not in ("auto", "cpu", "cuda"):
        raise ConfigError("[engine] device must be auto, cpu or cuda.")
    bot = _section(BotConfig, raw.get("bot", {}), "bot")
    level = (os.environ.get("NST_LOG_LEVEL") or bot.log_level).strip().lower()
    if level not in LOG_LEVELS:
        raise ConfigError(f"[bot] log_level (or NST_LOG_LEVEL) must be one of {', '.join(LOG_LEVELS)}, "
                          f"not {level!r}.")
    bot = replace(bot, log_level=level)
    quality = _quality_levels(raw.get("quality", {}))
    if bot.default_quality not in quality:
        raise ConfigError(f"[bot] default_quality {bot.default_quality!r} is not one of: {', '.join(quality)}.")
    presets = _presets(raw["presets"], base) if "presets" in raw else builtin_presets()
    limits = _section(LimitsConfig, raw.get("limits", {}), "limits")
    for key, level, _ in limits.by_level:
        if level not in quality:
            raise ConfigError(f"[limits] {key} names quality level {level!r}, which is not one of: "
                              f"{', '.join(quality)}.")
    return Config(_discord(raw.get("discord", {})), engine, storage, limits, bot, quality, presets, path,
                  queue=_queue(raw.get("queue", {})), metrics=_section(MetricsConfig, raw.get("metrics", {}), "metrics"))


def _discord(raw: Any) -> DiscordConfig:
    discord = _section(DiscordConfig, raw, "discord")
    shards, ids, named = discord.shards, discord.shard_ids, str(discord.shards).strip().lower()
    counted = isinstance(shards, int) and 1 <= shards <= MAX_SHARDS
    if not counted and named not in ("off", "auto"):
        raise ConfigError(f'[discord] shards must be "off", "auto" or a number of shards from 1 to {MAX_SHARDS}, '
                          f"not {shards!r}.")
    if ids and not (counted and set(ids) <= set(range(shards)) and len(set(ids)) == len(ids)):
        raise ConfigError(f"[discord] shard_ids must name shards of this process once each, from 0 to shards - 1 "
                          f"(shards: all the bot's processes' count); not {list(ids)} of shards = {shards!r}.")
    return _process_shards(discord if counted else replace(discord, shards=named))


def _process_shards(discord: DiscordConfig) -> DiscordConfig:
    """Process ``$NST_BOT_PROCESS`` of ``$NST_BOT_PROCESSES`` takes its block of ``shards`` (the first: shard 0)."""
    index, count = (os.environ.get(name, "").strip() for name in ("NST_BOT_PROCESS", "NST_BOT_PROCESSES"))
    if (index, count) in (("", ""), ("0", "1")):
        return discord
    total = discord.shards if isinstance(discord.shards, int) and not discord.shard_ids else 0
    if not (index.isdigit() and count.isdigit() and int(index) < int(count) <= total):
        raise ConfigError(f"NST_BOT_PROCESS ({index!r}) must be from 0 to NST_BOT_PROCESSES ({count!r}) - 1, at most "
                          f"[discord] shards (a number, not {discord.shards!r}) and with no shard_ids.")
    first, after = int(index) * total // int(count), (int(index) + 1) * total // int(count)
    return replace(discord, shard_ids=tuple(range(first, after)))


def _section(cls: type, values: dict[str, Any], name: str) -> Any:
    if not isinstance(values, dict):
        raise ConfigError(f"[{name}] must be a table.")
    keys = {f.name: f.metadata for f in fields(cls) if not f.metadata.get("parsed")}
    unknown = sorted(set(values) - set(keys))
    if unknown:
        raise ConfigError(f"Unknown key(s) in [{name}]: {', '.join(unknown)}.")
    parsed: dict[str, Any] = {}
    by_level = []  # a per-level key's table, {level = value}: bot/intake/limits.py
    for key, value in values.items():
        if keys[key].get("per_level") and isinstance(value, dict):
            by_level += [(key, level, _value(cls, key, each, f"[{name}] {key}.{level}")) for level, each in value.items()]
        else:
            parsed[key] = _value(cls, key, value, f"[{name}] {key}")
    return cls(**parsed, **({"by_level": tuple(by_level)} if by_level else {}))


def _value(cls: type, key: str, value: Any, where: str) -> Any:
    """One key's value in its type and range."""
    checked = _guild_ids(value, where) if where == "[discord] guild_ids" else _typed(value, field_types(cls)[key], where)
    bounds = next(f.metadata.get("range") for f in fields(cls) if f.name == key)
    if bounds and not bounds[0] <= checked <= bounds[1]:
        low, high = (_plain(bound) for bound in bounds)
        raise ConfigError(f"{where} must be from {low} to {high}, not {value!r}.")
    return checked


def _typed(value: Any, kind: Any, where: str) -> Any:
    try:
        return convert(value, kind, strict=True)
    except ValueError as error:
        raise ConfigError(f"{where} must be {error}, not {value!r}.") from None


def _plain(number: float) -> str:
    return str(int(number)) if float(number).is_integer() else f"{number:g}"


def _guild_ids(value: Any, where: str) -> tuple[int, ...]:
    """Server ids as numbers; quoted ids (as Discord's "Copy Server ID" pastes them) are accepted too."""
    if not isinstance(value, list):
        raise ConfigError(f"{where} must be a list of server ids, e.g. [123456789012345678].")
    ids = []
    for item in value:
        if isinstance(item, str) and GUILD_ID.match(item.strip()):
            item = int(item)
        if isinstance(item, bool) or not isinstance(item, int) or item <= 0:
            raise ConfigError(f"{where} must list server ids (numbers such as 123456789012345678, from "
                              f"Discord's Copy Server ID), not {item!r}.")
        ids.append(item)
    return tuple(ids)


def _resolve(base: Path, path: Path) -> Path:
    path = path.expanduser()
    return path if path.is_absolute() else base / path


def _quality_levels(raw: dict[str, Any]) -> dict[str, QualityLevel]:
    levels = dict(QUALITY_LEVELS)
    size_spec, iter_spec = option_spec("size"), option_spec("iterations")
    for name, values in raw.items():
        if not isinstance(values, dict) or set(values) - {"size", "iterations", "description"}:
            raise ConfigError(f"[quality.{name}] takes size, iterations and description.")
        base = levels.get(name)
        size = values.get("size", base.size if base else None)
        iterations = values.get("iterations", base.iterations if base else None)
        if not isinstance(size, int) or not size_spec.low <= size <= size_spec.high:
            raise ConfigError(f"[quality.{name}] size must be a whole number from {size_spec.low} to {size_spec.high}.")
        if not isinstance(iterations, int) or not iter_spec.low <= iterations <= iter_spec.high:
            raise ConfigError(f"[quality.{name}] iterations must be a whole number from {iter_spec.low} to "
                              f"{iter_spec.high}.")
        levels[name] = QualityLevel(name, size, iterations, str(values.get("description", base.description if base else "")))
    return levels


def _presets(raw: Any, base: Path) -> tuple[Preset, ...]:
    if not isinstance(raw, list):
        raise ConfigError("[[presets]] must be an array of tables.")
    presets: dict[str, Preset] = {}
    for entry in raw:
        if not isinstance(entry, dict):
            raise ConfigError("Each [[presets]] entry must be a table.")
        unknown = set(entry) - {"name", "title", "artist", "file", "url", "sha256"}
        name = str(entry.get("name", "")).strip().lower()
        if unknown:
            raise ConfigError(f"Unknown key(s) in preset {name!r}: {', '.join(sorted(unknown))}.")
        if not PRESET_NAME.match(name):
            raise ConfigError(f"Preset name {name!r} must be 1–32 lowercase letters, digits or dashes.")
        if name in presets:
            raise ConfigError(f"Preset {name!r} is defined twice.")
        if bool(entry.get("file")) == bool(entry.get("url")):
            raise ConfigError(f"Preset {name!r} needs exactly one of file or url.")
        file = _resolve(base, Path(entry["file"])) if entry.get("file") else None
        presets[name] = Preset(name, str(entry.get("title") or name), str(entry.get("artist", "")), file,
                               str(entry.get("url", "")), str(entry.get("sha256", "")).lower())
    return tuple(presets.values())


def discord_token() -> str | None:
    """The bot token from ``$DISCORD_TOKEN``, or the file named by ``$DISCORD_TOKEN_FILE`` (Docker secrets). Not one
    word (two lines, a space)? Refused here, naming where it came from, not later inside the HTTP library."""
    token, source = _secret("DISCORD_TOKEN")
    if token and ("\n" in token or "\r" in token):
        raise ConfigError(f"{source} holds more than one line; it must hold only the bot token (one line).")
    if token and any(character.isspace() or not character.isprintable() for character in token):
        raise ConfigError(f"{source} contains spaces or control characters; it must hold only the bot token.")
    return token


# ------------------------------------------------------------------ work queue and metrics ([queue], [metrics])

QUEUE_BACKENDS = ("local", "redis", "instant")  # "instant": test-only (bot/work/instant.py)


@dataclass(frozen=True)
class QueueConfig:
    """Where jobs run: the local engine process, or ``nst-bot worker`` processes reached through Redis."""

    backend: str = "local"
    redis_url: str = ""
    lost_after: float = bounded(30.0, 3, 3600)  # seconds without a worker heartbeat before its jobs are lost
    transfer_ttl: float = bounded(86400.0, 60, 2592000)  # seconds images and results may wait in Redis


@dataclass(frozen=True)
class MetricsConfig:
    enabled: bool = False
    host: str = "127.0.0.1"
    port: int = bounded(9464, 1, 65535)


def _queue(raw: Any) -> QueueConfig:
    queue = _section(QueueConfig, raw, "queue")
    if queue.backend not in QUEUE_BACKENDS:
        raise ConfigError(f"[queue] backend must be one of: {', '.join(QUEUE_BACKENDS)}.")
    if queue.redis_url:
        if not _redis_url_shape(queue.redis_url):
            raise ConfigError("[queue] redis_url must look like redis://host:port/db (or rediss:// for TLS).")
        rest = queue.redis_url.partition("://")[2]
        if ":" in rest.split("@")[0] and "@" in rest:
            raise ConfigError("[queue] redis_url must not hold a password: set NST_REDIS_PASSWORD or "
                              "NST_REDIS_PASSWORD_FILE instead.")
    elif queue.backend == "redis":
        raise ConfigError('[queue] backend = "redis" needs [queue] redis_url (redis://host:port/db).')
    return queue


def _redis_url_shape(url: str) -> bool:
    """redis:// or rediss://, a host, a port that is a port number, and a database number (or none)."""
    parts = urlsplit(url)
    try:
        port = parts.port  # a ValueError when it is not a number from 0 to 65535
    except ValueError:
        return False
    return (parts.scheme in ("redis", "rediss") and bool(parts.hostname) and port != 0
            and re.fullmatch(r"/?[0-9]*", parts.path) is not None)


def redis_password() -> str | None:
    """The Redis password from ``$NST_REDIS_PASSWORD`` or the file named by ``$NST_REDIS_PASSWORD_FILE``."""
    return _secret("NST_REDIS_PASSWORD")[0]


def _secret(name: str) -> tuple[str | None, str]:
    """``$NAME``, else the text of the file named by ``$NAME_FILE`` (Docker and Kubernetes secrets); with where
    it came from, for messages that must never show the secret itself."""
    value = os.environ.get(name, "").strip()
    if value:
        return value, name
    path = os.environ.get(f"{name}_FILE")
    if not path:
        return None, name
    try:
        return Path(path).read_text(encoding="utf-8").strip() or None, f"{name}_FILE {path!r}"
    except (OSError, UnicodeDecodeError) as error:
        reason = error.strerror if isinstance(error, OSError) else "not UTF-8 text"
        raise ConfigError(f"Cannot read {name}_FILE {path!r}: {reason}.") from None

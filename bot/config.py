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

from nst_engine.options import QUALITY_LEVELS, QualityLevel, option_spec
from nst_engine.weights import WEIGHTS_URL, cache_dir

BUILTIN_PRESETS_DIR = Path(__file__).parent / "assets" / "presets"
PRESET_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,31}$")


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


MAX_BATCH_SIZE = 16  # beyond this a batch only adds latency; GPU memory runs out first at useful sizes


@dataclass(frozen=True)
class EngineConfig:
    weights: str = ""
    weights_url: str = WEIGHTS_URL
    device: str = "auto"
    batch_size: int = 1
    job_timeout: float = 1800.0


@dataclass(frozen=True)
class StorageConfig:
    data_dir: Path = Path("data")
    retention_days: float = 7.0
    max_disk_mb: int = 2048  # the data dir's total; 0 = only the file system's free space limits it


@dataclass(frozen=True)
class LimitsConfig:
    max_queue: int = 20
    max_jobs_per_user: int = 2
    cooldown_seconds: float = 20.0
    max_upload_bytes: int = 10_000_000
    max_pixels: int = 25_000_000
    max_size: int = 1024
    max_iterations: int = 600
    max_presets_per_server: int = 25
    decode_workers: int = 2  # sandboxed image decoder processes (see docs/security.md)
    decode_seconds: float = 10.0  # wall time allowed to decode one upload
    decode_memory_mb: int = 1024  # address space allowed to one decoder process; 0 = unlimited

    def __post_init__(self) -> None:
        if self.decode_workers < 1 or self.decode_seconds <= 0:
            raise ConfigError("[limits] decode_workers must be at least 1 and decode_seconds above 0.")


@dataclass(frozen=True)
class BotConfig:
    progress_interval: float = 3.0
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

    def preset(self, name: str) -> Preset | None:
        wanted = name.strip().lower()
        return next((p for p in self.presets if p.name == wanted), None)


def builtin_presets() -> tuple[Preset, ...]:
    """The presets shipped with nst-bot (procedurally generated, so free to redistribute)."""
    titles = {
        "mosaic": ("Mosaic", "nst-bot"),
        "waves": ("Waves", "nst-bot"),
        "embers": ("Embers", "nst-bot"),
        "cubist": ("Cubist Shards", "nst-bot"),
        "pointillist": ("Pointillist Dots", "nst-bot"),
    }
    return tuple(Preset(name, title, artist, BUILTIN_PRESETS_DIR / f"{name}.png")
                 for name, (title, artist) in titles.items() if (BUILTIN_PRESETS_DIR / f"{name}.png").exists())


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
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"Cannot read config file {str(path)!r}: {error}.") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"Config file {str(path)!r} is not valid TOML: {error}.") from None
    return parse_config(raw, path.resolve().parent, path)


def parse_config(raw: dict[str, Any], base: Path, path: Path | None = None) -> Config:
    known = {"discord", "engine", "storage", "limits", "bot", "quality", "presets"}
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
    if not 1 <= engine.batch_size <= MAX_BATCH_SIZE:
        raise ConfigError(f"[engine] batch_size must be a whole number from 1 to {MAX_BATCH_SIZE}.")
    bot = _section(BotConfig, raw.get("bot", {}), "bot")
    quality = _quality_levels(raw.get("quality", {}))
    if bot.default_quality not in quality:
        raise ConfigError(f"[bot] default_quality {bot.default_quality!r} is not one of: {', '.join(quality)}.")
    presets = _presets(raw["presets"], base) if "presets" in raw else builtin_presets()
    return Config(_section(DiscordConfig, raw.get("discord", {}), "discord"), engine, storage,
                  _section(LimitsConfig, raw.get("limits", {}), "limits"), bot, quality, presets, path)


def _section(cls: type, values: dict[str, Any], name: str) -> Any:
    if not isinstance(values, dict):
        raise ConfigError(f"[{name}] must be a table.")
    types = {f.name: f.type for f in fields(cls)}
    unknown = sorted(set(values) - set(types))
    if unknown:
        raise ConfigError(f"Unknown key(s) in [{name}]: {', '.join(unknown)}.")
    parsed = {}
    for key, value in values.items():
        parsed[key] = _typed(value, types[key], f"[{name}] {key}")
    return cls(**parsed)


def _typed(value: Any, kind: str, where: str) -> Any:
    expect = {"str": str, "int": int, "float": (int, float), "bool": bool, "Path": str}
    if kind.startswith("tuple["):
        if not isinstance(value, list):
            raise ConfigError(f"{where} must be a list.")
        item_kind = kind[len("tuple["):].split(",")[0].strip()
        return tuple(_typed(item, item_kind, where) for item in value)
    wanted = expect[kind]
    if isinstance(value, bool) and kind != "bool" or not isinstance(value, wanted):
        raise ConfigError(f"{where} must be {'a number' if kind in ('int', 'float') else 'a ' + kind}, not {value!r}.")
    if kind in ("int", "float") and value < 0:
        raise ConfigError(f"{where} must not be negative.")
    return Path(value) if kind == "Path" else float(value) if kind == "float" else value


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
    """The bot token from ``$DISCORD_TOKEN``, or the file named by ``$DISCORD_TOKEN_FILE`` (Docker secrets)."""
    token = os.environ.get("DISCORD_TOKEN", "").strip()
    if token:
        return token
    token_file = os.environ.get("DISCORD_TOKEN_FILE")
    if token_file:
        try:
            return Path(token_file).read_text(encoding="utf-8").strip() or None
        except OSError as error:
            raise ConfigError(f"Cannot read DISCORD_TOKEN_FILE {token_file!r}: {error.strerror}.") from None
    return None

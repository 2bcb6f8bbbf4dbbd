"""``nst-bot`` command line: run the bot, stylize from a terminal, fetch assets, list presets.

Every user-facing failure is one line on stderr and a non-zero exit status; never a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Sequence

from nst_engine.errors import NSTError
from nst_engine.options import StylizeOptions, option_specs

from .config import Config, ConfigError, load_config
from .terminal import ProgressBar, format_seconds

# Options given their own flags in DESIGN.md §2, whose spellings the generated flags must match.
PRIMARY = ("size", "iterations", "strength", "style_weights", "preserve_colors", "seed", "device")


class CLIError(Exception):
    """A usage problem worth one line, not a traceback."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nst-bot", description="Self-hosted neural style transfer for Discord.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser("run", help="run the Discord bot (token from $DISCORD_TOKEN)")
    _add_config(run)

    stylize = commands.add_parser("stylize", help="stylise an image from the command line")
    stylize.add_argument("content", help="content image file")
    stylize.add_argument("-o", "--output", required=True, help="output file (.png, .jpg or .webp)")
    stylize.add_argument("--style", action="append", default=[], metavar="IMG", help="style image (repeatable)")
    stylize.add_argument("--preset", metavar="NAME", help="a preset style (see `nst-bot presets`)")
    stylize.add_argument("--quality", metavar="LEVEL", help="a quality level from the config (sets size and "
                         "iterations unless given)")
    stylize.add_argument("--weights", metavar="PATH", help="VGG19 weights file (torchvision state_dict)")
    stylize.add_argument("--progress", choices=("bar", "json"), default="bar", help="progress as a bar on "
                         "stderr, or as one JSON object per line on stdout (for plug-ins)")
    for spec in option_specs():
        flag = "--" + spec.name.replace("_", "-")
        shown = ",".join(map(str, spec.default)) if isinstance(spec.default, tuple) else spec.default
        bounds = f"; {spec.low:g}…{spec.high:g}" if spec.low is not None and spec.high is not None else ""
        group = stylize if spec.name in PRIMARY else stylize.add_argument_group("advanced")
        group.add_argument(flag, dest=spec.name, metavar=spec.name.upper() if not spec.choices else None,
                           choices=spec.choices, help=f"{spec.help} (default {shown}{bounds})")
    _add_config(stylize)

    fetch = commands.add_parser("fetch-assets", help="download VGG19 weights and preset images into the cache")
    _add_config(fetch)

    presets = commands.add_parser("presets", help="list the preset styles")
    _add_config(presets)

    options = commands.add_parser("options", help="print the user options with defaults and bounds as JSON")
    _add_config(options)

    health = commands.add_parser("healthcheck", help="exit 0 if the running bot's event loop is alive")
    _add_config(health)
    return parser


def _add_config(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="PATH", help="config file (default: $NST_CONFIG or ./config.toml)")


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        config = load_config(args.config)
        return COMMANDS[args.command](args, config)
    except (CLIError, ConfigError, NSTError) as error:
        print(f"nst-bot: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("nst-bot: interrupted", file=sys.stderr)
        return 130


def stylize_options(args: argparse.Namespace, config: Config) -> StylizeOptions:
    """Options from the flags, with a quality level's size and iterations as defaults."""
    values = {spec.name: getattr(args, spec.name) for spec in option_specs() if getattr(args, spec.name) is not None}
    if args.quality:
        level = config.quality.get(args.quality.lower())
        if level is None:
            raise CLIError(f"unknown quality {args.quality!r}; choose from {', '.join(config.quality)}")
        values.setdefault("size", level.size)
        values.setdefault("iterations", level.iterations)
    if config.engine.device != "auto":
        values.setdefault("device", config.engine.device)
    return StylizeOptions.from_mapping(values)


def style_sources(args: argparse.Namespace, config: Config) -> list[Path]:
    if bool(args.style) == bool(args.preset):
        raise CLIError("give either --style IMG (one or more) or --preset NAME, not both or neither")
    if args.preset:
        preset = config.preset(args.preset)
        if preset is None:
            names = ", ".join(p.name for p in config.presets) or "none configured"
            raise CLIError(f"unknown preset {args.preset!r}; available: {names}")
        if not preset.path.is_file():
            raise CLIError(f"preset {preset.name!r} has no image yet at {preset.path}; run `nst-bot fetch-assets`")
        return [preset.path]
    return [Path(style) for style in args.style]


def cmd_stylize(args: argparse.Namespace, config: Config) -> int:
    options = stylize_options(args, config)
    styles = style_sources(args, config)
    output = Path(args.output)
    if output.suffix.lower() not in (".png", ".jpg", ".jpeg", ".webp"):
        raise CLIError(f"cannot write {output.name!r}: use a .png, .jpg or .webp file name")
    from nst_engine.images import load_image, save_image
    from nst_engine.transfer import Engine

    # Decode every input before loading the network, so bad files fail fast.
    content = load_image(args.content, what="content image")
    style_images = [load_image(path, what="style image") for path in styles]
    engine = Engine(args.weights, configured=config.engine.weights or None)
    progress = ProgressBar("stylize") if args.progress == "bar" else None

    def report(p) -> None:
        if progress is None:
            print(json.dumps({"event": "progress", "iteration": p.iteration, "total": p.total,
                              "fraction": p.fraction, "eta": p.eta, "loss": p.losses.get("total")}), flush=True)
            return
        progress.update(p.fraction, f"{p.iteration}/{p.total} scale {p.scale_index + 1}/{p.scale_count} "
                                    f"{p.width}×{p.height} loss {p.losses['total']:.4g} ETA {format_seconds(p.eta)}")

    result = engine.stylize(content, style_images, options, on_progress=report)
    if progress is not None:
        progress.close()
    save_image(result.image, output)
    if progress is None:
        print(json.dumps({"event": "done", "output": str(output), "width": result.image.width,
                          "height": result.image.height, "iterations": result.iterations}), flush=True)
        return 0
    print(f"wrote {output} ({result.image.width}×{result.image.height}, {result.iterations} iterations, "
          f"{result.elapsed:.1f} s on {result.device})")
    return 0


def cmd_presets(args: argparse.Namespace, config: Config) -> int:
    if not config.presets:
        print("No presets configured.")
    for preset in config.presets:
        state = "ready" if preset.path.is_file() else "not fetched (run nst-bot fetch-assets)"
        print(f"{preset.name:16} {preset.label}  [{state}]")
    return 0


def cmd_options(args: argparse.Namespace, config: Config) -> int:
    """The user options as JSON, so front ends outside this environment (the GIMP plug-in) build their forms."""
    specs = [{"name": s.name, "type": s.type.__name__, "default": s.default, "help": s.help, "low": s.low,
              "high": s.high, "choices": s.choices} for s in option_specs(user_only=True)]
    print(json.dumps(specs))
    return 0


def cmd_fetch_assets(args: argparse.Namespace, config: Config) -> int:
    from .assets import fetch_assets

    fetch_assets(config)
    return 0


def cmd_run(args: argparse.Namespace, config: Config) -> int:
    from .app import run_bot

    return run_bot(config)


def cmd_healthcheck(args: argparse.Namespace, config: Config) -> int:
    from .health import check_health

    return check_health(config)


COMMANDS = {"run": cmd_run, "stylize": cmd_stylize, "fetch-assets": cmd_fetch_assets, "presets": cmd_presets,
            "options": cmd_options, "healthcheck": cmd_healthcheck}

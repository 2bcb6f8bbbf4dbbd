"""``nst-bot`` command line: run the bot, stylize from a terminal, fetch assets, list presets.

Every operational failure a user can cause (a bad file, path, setting or token, an unreachable Discord) is
one line on stderr and exit status 2, checked before any slow work starts where it can be; a traceback means
a bug in nst-bot.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any, Sequence

from nst_engine.errors import NSTError
from nst_engine.options import StylizeOptions, option_specs
from nst_engine.recipe import NOT_RECIPE, Recipe, read_recipe
from nst_engine.weights import check_weights_file, resolve_weights, verify_cache

from bot.ops.terminal import ProgressBar, format_seconds
from bot.ops.usage import OneLineParser, UsageError, unrecognized
from bot.work.protocol import Done, Progress, to_json

from .config import Config, ConfigError, discord_token, load_config

# Options with their own flags in docs/commands.md; the others are listed under "advanced options".
PRIMARY = ("size", "iterations", "strength", "style_weights", "preserve_colors", "seed", "device")
OUTPUT_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".gif")
ANIMATED_SUFFIXES = (".gif", ".webp", ".png")  # an animated content keeps its frames in these (.png: APNG)
CLI_JOB = "stylize"  # the job id in --progress json events (the bot's engine uses its job ids)


class CLIError(Exception):
    """A usage problem worth one line, not a traceback."""


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="nst-bot", description="Self-hosted neural style transfer for Discord.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser("run", help="run the Discord bot (token from $DISCORD_TOKEN)")
    _add_config(run)

    stylize = commands.add_parser("stylize", help="stylise an image from the command line")
    stylize.add_argument("content", nargs="?", help="content image file (with --from: the recipe's, unless given)")
    stylize.add_argument("-o", "--output", required=True, help="output file (.png, .jpg, .webp or .gif; an "
                         "animated content stays animated in .gif, .webp or .png)")
    stylize.add_argument("--style", action="append", default=[], metavar="IMG", help="style image (repeatable)")
    stylize.add_argument("--preset", metavar="NAME", help="a preset style (see `nst-bot presets`)")
    stylize.add_argument("--from", dest="recipe", metavar="RESULT.png", help="repeat the recipe a result PNG "
                         "carries (its options, style and content; flags given here override them)")
    stylize.add_argument("--quality", metavar="LEVEL", help="a quality level from the config (sets size and "
                         "iterations unless given)")
    stylize.add_argument("--weights", metavar="PATH", help="VGG19 weights file (torchvision state_dict)")
    stylize.add_argument("--progress", choices=("bar", "json"), default="bar", help="progress as a bar on "
                         "stderr, or as one JSON object per line on stdout (for plug-ins)")
    _add_config(stylize)
    advanced = stylize.add_argument_group("advanced options", "for experiments; the defaults are tuned")
    for spec in option_specs():
        listed = isinstance(spec.default, tuple)
        metavar = None if spec.choices else "X,Y,…" if listed else spec.name.upper()
        (stylize if spec.name in PRIMARY else advanced).add_argument(
            "--" + spec.name.replace("_", "-"), dest=spec.name, metavar=metavar, choices=spec.choices,
            help=f"{spec.help} ({_default_and_range(spec.default, spec.low, spec.high, listed)})")

    fetch = commands.add_parser("fetch-assets", help="download VGG19 weights and preset images into the cache")
    _add_config(fetch)

    presets = commands.add_parser("presets", help="list the preset styles")
    _add_config(presets)

    options = commands.add_parser("options", help="print the user options with defaults and bounds as JSON")
    _add_config(options)

    health = commands.add_parser("healthcheck", help="exit 0 if the running bot's event loop is alive")
    _add_config(health)

    worker = commands.add_parser("worker", help="run an engine worker for the redis work queue ([queue] redis_url)")
    _add_config(worker)
    return parser


def _add_config(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="PATH", help="config file (default: $NST_CONFIG or ./config.toml)")


def _default_and_range(default: Any, low: float | None, high: float | None, listed: bool) -> str:
    """"default 512; 16–4096" for the help text; lists name the range of each value."""
    parts = []
    if default not in ("", (), None):
        parts.append(f"default {','.join(map(str, default)) if listed else default}")
    if low is not None and high is not None:
        parts.append(f"{'each ' if listed else ''}{_number(low)}–{_number(high)}")
    return "; ".join(parts)


def _number(value: float) -> str:
    return f"{int(value):,}" if float(value).is_integer() else f"{value:g}"


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = parse(argv)
    except UsageError as error:
        print(f"nst-bot: error: {error}", file=sys.stderr)
        return 2
    try:
        config = load_config(args.config)
        use_threads(config)
        return COMMANDS[args.command](args, config)
    except (CLIError, ConfigError, NSTError) as error:
        print(f"nst-bot: error: {_one_line(error)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("nst-bot: interrupted", file=sys.stderr)
        return 130


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = build_parser()
    args, extras = parser.parse_known_args(argv)
    if extras:
        commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        raise unrecognized(commands.choices[args.command], extras)
    return args


def use_threads(config: Config) -> None:
    """``[engine] threads``: torch reads OMP_NUM_THREADS when it starts, here or in the engine process (which
    inherits the environment), so setting it before torch is imported covers every command."""
    if config.engine.threads:
        os.environ["OMP_NUM_THREADS"] = str(config.engine.threads)


def _one_line(error: Exception) -> str:
    return " ".join(str(error).split())


def stylize_options(args: argparse.Namespace, config: Config, recipe: Recipe | None = None) -> StylizeOptions:
    """Options from the flags, with a quality level's size and iterations, then a recipe's, as defaults."""
    values = {spec.name: getattr(args, spec.name) for spec in option_specs() if getattr(args, spec.name) is not None}
    if args.quality:
        level = config.quality.get(args.quality.lower())
        if level is None:
            raise CLIError(f"unknown quality {args.quality!r}; choose from {', '.join(config.quality)}")
        values.setdefault("size", level.size)
        values.setdefault("iterations", level.iterations)
    if recipe is not None:
        values = {**{k: v for k, v in recipe.options.to_dict().items() if k not in NOT_RECIPE}, **values}
    if config.engine.device != "auto":
        values.setdefault("device", config.engine.device)
    return StylizeOptions.from_mapping(values)


def apply_recipe(args: argparse.Namespace) -> Recipe | None:
    """With ``--from``: the recipe's content and style files where the command line names none."""
    if not args.recipe:
        if args.content is None:
            raise CLIError("give the content image, e.g. `nst-bot stylize photo.jpg -o out.png --preset waves` "
                           "(or --from RESULT.png to repeat a result)")
        return None
    recipe = read_recipe(args.recipe)
    again = f"nst-bot stylize CONTENT --from {args.recipe} -o OUT"
    if args.content is None:
        if not recipe.content:
            raise CLIError(f"the recipe in {args.recipe} names no content file (results from Discord do not); "
                           f"give it: `{again}`")
        args.content = _named_in_recipe(recipe.content, "content image", args.recipe, f"give it: `{again}`")
    if not args.style and not args.preset:
        if recipe.preset:
            args.preset = recipe.preset
        elif recipe.styles:
            args.style = [_named_in_recipe(style, "style image", args.recipe, "give it with --style IMG")
                          for style in recipe.styles]
        else:
            raise CLIError(f"the recipe in {args.recipe} describes its style as {recipe.style!r} but names no "
                           f"file; give --style IMG or --preset NAME")
    return recipe


def _named_in_recipe(path: str, what: str, result: str, fix: str) -> str:
    if not Path(path).is_file():
        raise CLIError(f"the {what} {path} (named in the recipe in {result}) is not there; {fix}")
    return path


def style_sources(args: argparse.Namespace, config: Config) -> list[Path]:
    if bool(args.style) == bool(args.preset):
        raise CLIError("give either --style IMG (one or more) or --preset NAME, not both or neither")
    if args.preset:
        preset = config.preset(args.preset)
        if preset is None:
            names = ", ".join(p.name for p in config.presets) or "none configured"
            raise CLIError(f"unknown preset {args.preset!r}; available: {names}")
        if not preset.path.is_file():
            raise CLIError(f"preset {preset.name!r}: {preset_state(preset)}")
        return [preset.path]
    return [Path(style) for style in args.style]


def preset_state(preset) -> str:
    """Whether a preset's image is there, and if not, what brings it."""
    if preset.path.is_file():
        return "ready"
    if preset.file is not None:
        return f"its file {preset.path} does not exist (put the image there, or fix `file` in its [[presets]] entry)"
    return "not fetched yet (run `nst-bot fetch-assets`)"


def check_output(output: Path) -> None:
    """Refuse an output path the result could not be written to, before the job runs (not after it)."""
    if output.suffix.lower() not in OUTPUT_SUFFIXES:
        raise CLIError(f"cannot write {output.name!r}: use a .png, .jpg, .webp or .gif file name")
    folder = output.parent
    if output.is_dir():
        raise CLIError(f"cannot write {output}: it is a folder; name a file in it, e.g. {output / 'result.png'}")
    if not folder.is_dir():
        problem = "is a file, not a folder" if folder.exists() else "does not exist (create it first)"
        raise CLIError(f"cannot write {output}: {folder} {problem}")
    try:
        _try_writing_in(folder)
    except OSError as error:
        raise CLIError(f"cannot write {output}: the folder {folder} is not writable "
                       f"({(error.strerror or str(error)).lower()})") from None


def _try_writing_in(folder: Path) -> None:
    """Create and remove a file: the one test that also catches read-only mounts and a root-owned folder."""
    with tempfile.NamedTemporaryFile(dir=folder, prefix=".nst-bot-write-test-"):
        pass


def check_weights(config: Config) -> None:
    """Find the weights and check that they are VGG19's (the cache: its checksum) without torch, before the bot
    connects to Discord."""
    path, from_cache = resolve_weights(None, config.engine.weights or None)
    if from_cache:
        verify_cache()
    check_weights_file(path)


def cmd_stylize(args: argparse.Namespace, config: Config) -> int:
    earlier = apply_recipe(args)
    options = stylize_options(args, config, earlier)
    styles = style_sources(args, config)
    output = Path(args.output)
    check_output(output)
    from nst_engine.animated_images import load_animation, probe_animation, save_animation
    from nst_engine.images import load_image, save_image
    from nst_engine.transfer import Engine

    # Decode every input before loading the network, so bad files fail fast.
    animated = probe_animation(args.content, what="content image").frames > 1
    if animated and output.suffix.lower() not in ANIMATED_SUFFIXES:
        raise CLIError(f"{args.content} is animated; write it to a .gif, .webp or .png (APNG) file, not "
                       f"{output.suffix}")
    animation = load_animation(args.content, what="content image") if animated or output.suffix.lower() == ".gif" \
        else None
    content = load_image(args.content, what="content image") if animation is None else None
    style_images = [load_image(path, what="style image") for path in styles]
    engine = Engine(args.weights, configured=config.engine.weights or None)
    progress = ProgressBar("stylize") if args.progress == "bar" else None

    def report(p) -> None:
        if progress is None:
            print(to_json(Progress(CLI_JOB, p.iteration, p.total, p.eta, p.losses.get("total")), previews=False),
                  flush=True)
            return
        frame = f"frame {p.frame}/{p.frames} " if p.frames > 1 else ""
        progress.update(p.fraction, f"{p.iteration}/{p.total} {frame}scale {p.scale_index + 1}/{p.scale_count} "
                                    f"{p.width}×{p.height} loss {p.losses['total']:.4g} ETA {format_seconds(p.eta)}")

    quality = args.quality or (earlier.quality if earlier else "")
    recipe = Recipe(options, preset=(args.preset or "").lower(), quality=quality.lower(), content=args.content,
                    styles=tuple(args.style))
    if animation is None:
        result = engine.stylize(content, style_images, options, on_progress=report)
        save_image(result.image, output, recipe.text_chunks())
        image, frames = result.image, ""
    else:
        result = engine.stylize_animation(animation, style_images, options, on_progress=report)
        save_animation(result.animation, output, recipe.text_chunks())
        image, frames = result.animation.frames[0], f", {result.animation.frame_count} frames" * animated
    if progress is not None:
        progress.close()
    if progress is None:
        print(to_json(Done(CLI_JOB, result.iterations, result.elapsed, device=result.device, width=image.width,
                           height=image.height, output=str(output))), flush=True)
        return 0
    print(f"wrote {output} ({image.width}×{image.height}{frames}, {result.iterations} iterations, "
          f"{result.elapsed:.1f} s on {result.device}{_threads(result.device)})")
    return 0


def _threads(device: str) -> str:
    import torch

    count = torch.get_num_threads()
    return f", {count} thread{'s' if count > 1 else ''}" if device == "cpu" else ""


def cmd_presets(args: argparse.Namespace, config: Config) -> int:
    if not config.presets:
        print("No presets configured.")
    for preset in config.presets:
        print(f"{preset.name:16} {preset.label}  [{preset_state(preset)}]")
    return 0


def cmd_options(args: argparse.Namespace, config: Config) -> int:
    """The user options as JSON, so front ends outside this environment (the GIMP plug-in) build their forms."""
    specs = [{"name": s.name, "type": s.type.__name__, "default": s.default, "help": s.help, "low": s.low,
              "high": s.high, "choices": s.choices} for s in option_specs(user_only=True)]
    print(json.dumps(specs))
    return 0


def cmd_fetch_assets(args: argparse.Namespace, config: Config) -> int:
    from bot.ops.assets import fetch_assets

    fetch_assets(config)
    return 0


def cmd_run(args: argparse.Namespace, config: Config) -> int:
    """The bot, after the checks that need no network (token, data folder, weights), so a setup mistake is
    one line before any connection to Discord, not an exit after it."""
    discord_token()  # a malformed token is refused here; a missing one by run_bot
    check_data_dir(config)
    if config.queue.backend == "local":  # with Redis the workers load the weights, not the bot
        check_weights(config)
    from bot.face.app import BotStopped, run_bot
    from bot.ops.health import mark_stopped

    try:
        return run_bot(config)
    except BotStopped as error:
        raise CLIError(str(error)) from None
    finally:
        mark_stopped(config)


def check_data_dir(config: Config) -> None:
    """The data folder must exist (it is created) and take files: the job store and heartbeat live there."""
    data_dir = config.storage.data_dir
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        _try_writing_in(data_dir)
    except OSError as error:
        blocked = next((p for p in (data_dir, *data_dir.parents) if p.exists() and not p.is_dir()), None)
        reason = (f"{blocked} is a file, not a folder" if blocked else
                  f"{(error.strerror or str(error)).lower()} (this process runs as user id {os.getuid()})")
        raise CLIError(f"cannot use [storage] data_dir {data_dir}: {reason}") from None


def cmd_healthcheck(args: argparse.Namespace, config: Config) -> int:
    from bot.ops.health import check_health

    return check_health(config)


def cmd_worker(args: argparse.Namespace, config: Config) -> int:
    from bot.work.worker import run_worker

    return run_worker(config)


COMMANDS = {"run": cmd_run, "stylize": cmd_stylize, "fetch-assets": cmd_fetch_assets, "presets": cmd_presets,
            "options": cmd_options, "healthcheck": cmd_healthcheck, "worker": cmd_worker}

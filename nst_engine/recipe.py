"""A result's recipe: the options that made it, written into the PNG as text chunks and read back.

Two chunks, the convention image tools follow: ``nst-bot`` holds the recipe as JSON (read back by
``nst-bot stylize --from``), ``parameters`` one line a person can read. Torch-free. Reading looks only at the
chunks before the image data, so a recipe is read without decoding the picture.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from PIL import Image, UnidentifiedImageError

from .errors import OptionError
from .options import StylizeOptions, option_specs

RECIPE_KEY = "nst-bot"
PARAMETERS_KEY = "parameters"
RECIPE_FORMAT = 1
# Always written, so a reader sees the headline settings even where they are the defaults.
HEADLINE = ("size", "iterations", "strength", "seed", "preserve_colors")
# Where and how a job ran, and how it reported progress: they do not shape the picture's recipe.
NOT_RECIPE = ("device", "preview_every", "preview_size")


def engine_version() -> str:
    try:
        return f"nst-bot {metadata.version('nst-bot')}"
    except metadata.PackageNotFoundError:
        return "nst-bot (not installed)"


@dataclass(frozen=True)
class Recipe:
    """What made a result: its options, the style (file names or a description), the preset and quality level
    when one was picked, and the content's file name when it is known."""

    options: StylizeOptions
    style: str = ""
    preset: str = ""
    quality: str = ""
    content: str = ""
    styles: tuple[str, ...] = ()
    engine: str = field(default_factory=engine_version)

    def to_json(self) -> str:
        defaults = {spec.name: spec.default for spec in option_specs()}
        values = self.options.to_dict()
        options = {name: list(value) if isinstance(value, tuple) else value for name, value in values.items()
                   if name not in NOT_RECIPE and (name in HEADLINE or value != defaults[name])}
        recipe = {"format": RECIPE_FORMAT, "engine": self.engine, "options": options}
        recipe.update({name: value for name, value in (("style", self.style), ("preset", self.preset),
                                                       ("quality", self.quality), ("content", self.content),
                                                       ("styles", list(self.styles))) if value})
        return json.dumps(recipe, ensure_ascii=False, sort_keys=True)

    def parameters(self) -> str:
        """One line for people: ``preset waves, quality standard, size 512, iterations 80, …, nst-bot 0.1.0``."""
        style = f"preset {self.preset}" if self.preset else f"style {self.style or ', '.join(self.styles)}"
        words = [style] + ([f"quality {self.quality}"] if self.quality else [])
        options = self.options
        words += [f"size {options.size}", f"iterations {options.iterations}", f"strength {options.strength:g}",
                  f"seed {options.seed}", f"colours {options.preserve_colors}"]
        if options.style_weights:
            words.append("style weights " + ",".join(f"{w:g}" for w in options.style_weights))
        return ", ".join(words + [self.engine])

    def text_chunks(self) -> dict[str, str]:
        return {RECIPE_KEY: self.to_json(), PARAMETERS_KEY: self.parameters()}


class RecipeError(OptionError):
    """A file given as a recipe holds none, or one this version cannot read."""


def read_recipe(path: str | Path) -> Recipe:
    """The recipe in an nst-bot result PNG; :class:`RecipeError` says why a file has none."""
    path = Path(path)
    try:
        with Image.open(path) as image:
            text = image.info.get(RECIPE_KEY)
            kind = image.format
    except FileNotFoundError:
        raise RecipeError(f"--from {path}: the file does not exist") from None
    except (OSError, UnidentifiedImageError, ValueError):
        raise RecipeError(f"--from {path}: not an image file; give a PNG that nst-bot made") from None
    if text is None:
        made = "a PNG without a recipe" if kind == "PNG" else f"a {kind} file (recipes live in PNG results)"
        raise RecipeError(f"--from {path}: {made}; only the .png results that nst-bot made carry one")
    try:
        raw = json.loads(text)
        if not isinstance(raw, dict) or raw.get("format") != RECIPE_FORMAT:
            raise ValueError(f"recipe format {raw.get('format') if isinstance(raw, dict) else '?'}")
        return Recipe(StylizeOptions.from_mapping(raw.get("options", {})), str(raw.get("style", "")),
                      str(raw.get("preset", "")), str(raw.get("quality", "")), str(raw.get("content", "")),
                      tuple(map(str, raw.get("styles", ()))), str(raw.get("engine", "")))
    except (ValueError, OptionError) as error:
        raise RecipeError(f"--from {path}: its recipe cannot be read by {engine_version()} ({error})") from None


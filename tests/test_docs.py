"""The documentation stays true to the code: every `nst-bot` subcommand and flag, every config key and every
repository path or link it names exists, and the configuration reference lists each key with the code's default
and range."""

from __future__ import annotations

import argparse
import re
import tomllib
from dataclasses import MISSING, Field, fields
from pathlib import Path

import pytest

from bot.cli import build_parser
from bot.config import (BotConfig, DiscordConfig, EngineConfig, LimitsConfig, MetricsConfig, QueueConfig,
                        StorageConfig, _plain)

ROOT = Path(__file__).resolve().parent.parent
DOCS = sorted([ROOT / "README.md", ROOT / "CHANGELOG.md", ROOT / "benchmarks" / "README.md",
               *(ROOT / "docs").glob("*.md")])
SECTIONS = {"discord": DiscordConfig, "engine": EngineConfig, "storage": StorageConfig, "limits": LimitsConfig,
            "bot": BotConfig, "queue": QueueConfig, "metrics": MetricsConfig}
QUALITY_KEYS = {"size", "iterations", "description"}
PRESET_KEYS = {"name", "title", "artist", "file", "url", "sha256"}


def keys(cls: type) -> list[Field]:
    """A section's config keys: its fields but those the parser fills itself (``LimitsConfig.by_level``)."""
    return [spec for spec in fields(cls) if not spec.metadata.get("parsed")]


def doc_id(path: Path) -> str:
    return str(path.relative_to(ROOT))


def code_of(text: str) -> list[str]:
    """Inline code spans and the lines of fenced code blocks."""
    fenced = re.findall(r"^```[^\n]*\n(.*?)^```", text, re.M | re.S)
    prose = re.sub(r"^```[^\n]*\n.*?^```", "", text, flags=re.M | re.S)
    return [line for block in fenced for line in block.splitlines()] + re.findall(r"`([^`\n]+)`", prose)


def subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


@pytest.mark.parametrize("doc", DOCS, ids=doc_id)
def test_named_subcommands_and_flags_exist(doc: Path) -> None:
    commands = subcommands()
    for code in code_of(doc.read_text()):
        for match in re.finditer(r"\bnst-bot (?!nst-bot\b)([a-z][a-z-]*)([^|#]*)", code):
            name, rest = match.groups()
            if "docker compose" in code[:match.start()] and name not in commands:
                continue  # the image's entry point runs other programs (tar, a shell) as given
            assert name in commands, f"{doc_id(doc)}: `nst-bot {name}` is not a command: {code!r}"
            known = {flag for action in commands[name]._actions for flag in action.option_strings}
            for flag in re.findall(r"(?<![\w-])(--?[a-z][a-z-]*)", rest.split(";")[0]):
                assert flag in known, f"{doc_id(doc)}: `nst-bot {name}` has no {flag}: {code!r}"


def config_keys_named(text: str) -> set[tuple[str, str]]:
    """("section", "key") for every `[section] key` in prose and every key = value under a [section] in code."""
    named = set(re.findall(r"\[([a-z]+)\] ([a-z_]+)\b", text))
    for block in re.findall(r"^```toml\n(.*?)^```", text, re.M | re.S):
        section = None
        for line in block.splitlines():
            header = re.match(r"^\s*#?\s*\[\[?([a-z_.]+)\]\]?", line)
            if header:
                section = header.group(1)
            elif section and (pair := re.match(r"^\s*#?\s*([a-z_]+) =", line)):
                named.add((section, pair.group(1)))
    return named


@pytest.mark.parametrize("doc", [*DOCS, ROOT / "config.example.toml", ROOT / "docker" / "config.toml"], ids=doc_id)
def test_named_config_keys_exist(doc: Path) -> None:
    text = doc.read_text()
    if doc.suffix == ".toml":
        text = f"```toml\n{text}\n```\n"
    for section, key in config_keys_named(text):
        if section.startswith("quality"):
            assert key in QUALITY_KEYS, f"{doc_id(doc)}: [{section}] has no key {key}"
        elif section == "presets":
            assert key in PRESET_KEYS, f"{doc_id(doc)}: [[presets]] has no key {key}"
        else:
            assert section in SECTIONS, f"{doc_id(doc)}: no config section [{section}]"
            assert key in {f.name for f in keys(SECTIONS[section])}, f"{doc_id(doc)}: [{section}] has no key {key}"


def toml_literal(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (str, Path)):
        return f'"{value}"'
    if isinstance(value, tuple):
        return "[" + ", ".join(toml_literal(item) for item in value) + "]"
    return repr(value)


def test_the_configuration_reference_lists_every_key_with_its_default_and_range() -> None:
    reference = (ROOT / "docs" / "configuration.md").read_text()
    for section, cls in SECTIONS.items():
        table = reference.split(f"## `[{section}]`")[1].split("\n## ")[0]
        rows = {row[0].strip("` "): [cell.strip() for cell in row[1:]]
                for row in (line.strip("|").split("|") for line in table.splitlines() if line.startswith("| `"))}
        assert set(rows) == {f.name for f in keys(cls)}, f"[{section}] keys differ from bot/config.py"
        for spec in keys(cls):
            default = spec.default if spec.default is not MISSING else spec.default_factory()
            assert rows[spec.name][0] == f"`{toml_literal(default)}`", f"[{section}] {spec.name} default"
            if "range" in spec.metadata:
                low, high = (_plain(bound) for bound in spec.metadata["range"])
                assert rows[spec.name][1] == f"{low}–{high}", f"[{section}] {spec.name} range"


def test_the_example_config_has_exactly_the_codes_keys_and_defaults() -> None:
    example = tomllib.loads((ROOT / "config.example.toml").read_text())
    for section, cls in SECTIONS.items():
        assert set(example[section]) == {f.name for f in keys(cls)}, f"[{section}] in config.example.toml"
        for spec in keys(cls):
            default = spec.default if spec.default is not MISSING else spec.default_factory()
            value = example[section][spec.name]
            assert toml_literal(tuple(value) if isinstance(value, list) else value) == toml_literal(default)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower().replace("`", "")).replace(" ", "-")


@pytest.mark.parametrize("doc", DOCS, ids=doc_id)
def test_links_and_repository_paths_exist(doc: Path) -> None:
    text = doc.read_text()
    top_level = {entry.name for entry in ROOT.iterdir()}
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"^[a-z]+:", target):
            continue  # a web address
        path, _, anchor = target.partition("#")
        resolved = (doc.parent / path).resolve() if path else doc
        assert resolved.exists(), f"{doc_id(doc)}: broken link {target}"
        if anchor:
            headings = re.findall(r"^#+ (.+)$", resolved.read_text(), re.M)
            assert anchor in {slug(h) for h in headings}, f"{doc_id(doc)}: no heading for #{anchor} in {path}"
    for code in code_of(text):
        for path in re.findall(r"(?<![\w/~.$-])((?:[\w.-]+/)+[\w.-]*)", code):
            first = path.split("/")[0]
            if first in top_level and not path.startswith("benchmarks/out/"):
                assert (ROOT / path).exists(), f"{doc_id(doc)}: names {path}, which does not exist"


def test_quality_level_times_match_the_measured_ones() -> None:
    """The levels' descriptions ("about 70 s on a 2-core CPU") stay within a quarter of the committed benchmark,
    and the configuration reference and the example config quote the code's descriptions."""
    import json

    from nst_engine.options import QUALITY_LEVELS

    measured = json.loads((ROOT / "benchmarks" / "out" / "engine-levels-cpu.json").read_text())["quality_levels"]
    reference, example = (ROOT / "docs" / "configuration.md").read_text(), (ROOT / "config.example.toml").read_text()
    for name, level in QUALITY_LEVELS.items():
        amount, unit = re.search(r"about ([\d.]+) (s|minutes?)\b", level.description).groups()
        stated = float(amount) * (60 if unit.startswith("minute") else 1)
        job = measured[name]["job_s"]
        assert abs(stated - job) <= job / 4, f"{name}: the description says {stated:g} s, measured {job:.1f} s"
        assert level.description in reference and f'description = "{level.description}"' in example, name


def test_the_discord_picture_shows_the_bots_current_messages() -> None:
    """docs/images/discord-flow.png is captured from a real run (scripts/make_doc_images.py), its texts saved
    beside it: the buttons and message formats must still be the bot's, or the picture is stale."""
    import json

    from bot.face.views import ResultButton

    flow = json.loads((ROOT / "docs" / "images" / "discord-flow.json").read_text())
    assert flow["buttons"] == [f"{emoji} {label}" for label, emoji, _ in ResultButton.LOOKS.values()], \
        "the result buttons changed: run `python scripts/make_doc_images.py --only flow`"
    assert re.match(r"<@\d+> here is your image — preset \*Mosaic\* · fast · \d+×\d+ · strength 1 · ",
                    flow["result"]), flow["result"]
    assert re.search(r"Mosaic\* · fast \(256 px, 45 iterations\)\n🎨 .*iteration \d+/45", flow["status"])

"""Command-line usage mistakes as one line that says the fix, exit status 2.

argparse prints its whole usage block for a mistake; the command line's promise is one line. A misspelt flag
is matched against the command's real flags ("did you mean --size?"), a misspelt command or choice likewise.
"""

from __future__ import annotations

import argparse
import difflib
import re

EXAMPLES = {
    "stylize": "nst-bot stylize photo.jpg -o out.png --preset waves",
    "run": "DISCORD_TOKEN=… nst-bot run --config config.toml",
}
INVALID_CHOICE = re.compile(r"^argument (?P<what>\S+): invalid choice: '(?P<value>[^']*)' "
                            r"\(choose from (?P<choices>.*)\)$")


class UsageError(Exception):
    """A mistake on the command line, already worded as the one line to print."""


class OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser whose mistakes raise :class:`UsageError` (one line with the fix) instead of printing
    the usage block; subcommand parsers inherit the class."""

    def error(self, message: str) -> None:  # argparse's hook for every usage mistake
        raise UsageError(explain(self, message))


def explain(parser: argparse.ArgumentParser, message: str) -> str:
    """``message`` from argparse, reworded with what to type instead."""
    command = parser.prog.removeprefix("nst-bot").strip()
    help_hint = f"see `{parser.prog} --help`"
    invalid = INVALID_CHOICE.match(message)
    if invalid:
        choices = [choice.strip(" '") for choice in invalid["choices"].split(",")]
        what = "unknown command" if invalid["what"] == "COMMAND" else f"{invalid['what']} cannot be"
        return f"{what} {invalid['value']!r}{_did_you_mean(invalid['value'], choices)}; " \
               f"choose from {', '.join(choices)}"
    if message.startswith("the following arguments are required:"):
        missing = message.split(":", 1)[1].strip()
        if missing == "COMMAND":
            return f"give a command, e.g. `nst-bot stylize` or `nst-bot run` ({help_hint})"
        example = f"e.g. `{EXAMPLES[command]}`; " if command in EXAMPLES else ""
        return f"{parser.prog} needs {missing} ({example}{help_hint})"
    return f"{parser.prog}: {message} ({help_hint})"


def unrecognized(parser: argparse.ArgumentParser, extras: list[str]) -> UsageError:
    """Arguments the command does not take: flags matched against its real ones, else the stray values."""
    flags = [option for action in parser._actions for option in action.option_strings]
    unknown = [extra.split("=", 1)[0] for extra in extras if extra.startswith("-")]
    if unknown:
        return UsageError("; ".join(f"{parser.prog} has no option {flag}{_did_you_mean(flag, flags)}"
                                    for flag in unknown) + f" (see `{parser.prog} --help`)")
    return UsageError(f"{parser.prog} takes no argument {' '.join(extras)!r} here; a value with spaces needs "
                      f"quotes (see `{parser.prog} --help`)")


def _did_you_mean(word: str, candidates: list[str]) -> str:
    close = difflib.get_close_matches(word, candidates, n=1, cutoff=0.6)
    return f" (did you mean {close[0]}?)" if close else ""

"""The Edit 🖋 form: a modal to re-run a result with another strength, quality, colours or preset.

The modal's custom id carries only the job id (``nst:edit:<job>``); a submit is answered by
:meth:`bot.face.buttons.ButtonHandlers.on_edit_submit`, which looks the job up and checks the submitter like any
result button. Submits are read from the interaction itself, not from a modal object kept in memory, so a form
opened before a restart still works after it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import discord

from nst_engine.options import option_spec

from bot.jobs.model import Job

EDIT_PREFIX = "nst:edit:"
EDIT_ID = re.compile(r"nst:edit:(?P<job>[0-9a-f]{16})")
STRENGTH, COLORS = option_spec("strength"), option_spec("preserve_colors")
FIELDS = ("strength", "quality", "colours", "preset")  # the text inputs' custom ids
FORM_KEPT_SECONDS = 60.0
FIELD_LENGTH = 60  # what a member may type in a field, unless a value it must hold is longer
TEXT_INPUT_LIMIT = 4000  # Discord's longest text input


@dataclass(frozen=True)
class EditValues:
    """What the member typed; an empty field keeps the original's value (``None``)."""

    strength: str | None
    quality: str | None
    colours: str | None
    preset: str | None


def edit_form(job: Job, qualities: list[str]) -> discord.ui.Modal:
    """The form, filled in with the job's current values (the preset field starts empty: keep the styles)."""
    # discord.py keeps a sent modal until its timeout; the submit is answered from the payload, so it need not
    # be kept long (a form submitted later still works).
    form = discord.ui.Modal(title="Edit and re-run", custom_id=f"{EDIT_PREFIX}{job.id}", timeout=FORM_KEPT_SECONDS)
    options = job.options
    rows = (("strength", "Strength", f"{STRENGTH.low:g}–{STRENGTH.high:g}", f"{options.strength:g}"),
            ("quality", "Quality", ", ".join(qualities)[:100], job.quality),
            ("colours", "Colours", ", ".join(COLORS.choices), options.preserve_colors),
            ("preset", "Preset", "a preset name to use instead of the styles (empty: keep them)", None))
    # Discord refuses a form whose pre-filled value is longer than its field's max_length (an admin's quality
    # names can be long), so every field takes the longest value it may hold.
    longest = min(TEXT_INPUT_LIMIT, max(FIELD_LENGTH, *(len(name) for name in qualities), len(job.quality)))
    for custom_id, text, hint, value in rows:
        field = discord.ui.TextInput(custom_id=custom_id, placeholder=hint, default=value and value[:longest],
                                     required=False, max_length=longest)
        form.add_item(discord.ui.Label(text=text, component=field))
    return form


def edited_job_id(interaction: discord.Interaction) -> str | None:
    """The job id of an Edit form's submit, or ``None`` for any other interaction."""
    if interaction.type != discord.InteractionType.modal_submit:
        return None
    match = EDIT_ID.fullmatch(str((interaction.data or {}).get("custom_id", "")))
    return match["job"] if match else None


def submitted_values(interaction: discord.Interaction) -> EditValues:
    """The form's fields from the submit payload (labels or, as older clients send, action rows)."""
    found: dict[str, str] = {}

    def walk(components: list[dict[str, Any]]) -> None:
        for component in components:
            if "components" in component:
                walk(component["components"])
            elif "component" in component:
                walk([component["component"]])
            elif component.get("custom_id") in FIELDS:
                found[component["custom_id"]] = str(component.get("value") or "").strip()

    walk(list((interaction.data or {}).get("components", [])))
    return EditValues(*(found.get(name) or None for name in FIELDS))

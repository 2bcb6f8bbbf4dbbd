"""What Discord refuses in a request body, as its documentation and OpenAPI spec (github:discord/discord-api-spec,
``specs/openapi.json``) state it, so the stand-in answers a payload real Discord would reject with the same
``400 {"code": 50035, "message": "Invalid Form Body", "errors": {...}}``.

Each check returns problems as ``(path, message)``: ``path`` is where in the body the bad value sits (e.g.
``("components", 0, "components", 5)``), which :func:`form_error` nests the way Discord does.
"""

from __future__ import annotations

from typing import Any, Iterator

Problem = tuple[tuple[Any, ...], str]

CONTENT_LIMIT = 2000  # the documented message limit for bots (the spec's schema allows 4000, which Nitro users get)
EMBEDS_PER_MESSAGE = 10
EMBED_FIELDS = {"title": 256, "description": 4096}
EMBED_FIELD_COUNT = 25
EMBED_FIELD_TEXT = {"name": 256, "value": 1024}
EMBED_TOTAL = 6000  # title + description + field names and values + footer text + author name, over all embeds
ACTION_ROWS = 5
ROW_BUTTONS = 5
CUSTOM_ID = 100
BUTTON_LABEL = 80
SELECT_OPTIONS = 25
SELECT_TEXT = {"label": 100, "value": 100, "description": 100}
SELECT_PLACEHOLDER = 150
CHOICES = 25
CHOICE_TEXT = 100  # a choice's name, and a string choice's value
ATTACHMENTS_PER_MESSAGE = 10
FILENAME = 1024
MODAL_TITLE, MODAL_COMPONENTS, LABEL_TEXT = 45, 5, 45
TEXT_INPUT_VALUE, TEXT_INPUT_PLACEHOLDER = 4000, 100
COMPONENTS_V2 = 1 << 15  # message flag: a layout of containers and text displays instead of action rows
ROW, BUTTON, TEXT_INPUT, LABEL = 1, 2, 4, 18
SELECTS = {3, 5, 6, 7, 8}  # string, user, role, mentionable and channel selects
LINK_STYLE, PREMIUM_STYLE = 5, 6
MODAL_SUBMIT = 5


def form_error(problems: list[Problem]) -> dict[str, Any]:
    """Discord's answer to an invalid body: each problem under its path, as ``{"_errors": [...]}``."""
    errors: dict[str, Any] = {}
    for path, message in problems:
        node = errors
        for step in path:
            node = node.setdefault(str(step), {})
        node.setdefault("_errors", []).append({"code": "BASE_TYPE_BAD_LENGTH", "message": message})
    return {"code": 50035, "message": "Invalid Form Body", "errors": errors}


def too_long(value: Any, limit: int, path: tuple[Any, ...], low: int = 0) -> Iterator[Problem]:
    if value is not None and not low <= len(str(value)) <= limit:
        yield path, f"Must be between {low} and {limit} in length."


def message_problems(payload: dict[str, Any], files: list[tuple[str, bytes, str]] = ()) -> list[Problem]:
    """A message create or edit (channel, webhook, or an interaction's message callback)."""
    problems = list(too_long(payload.get("content"), CONTENT_LIMIT, ("content",)))
    problems += embed_problems(payload.get("embeds") or [])
    problems += component_problems(payload.get("components") or [], (payload.get("flags") or 0) & COMPONENTS_V2)
    problems += attachment_problems(payload.get("attachments") or [], files)
    return problems


def embed_problems(embeds: list[dict[str, Any]]) -> list[Problem]:
    problems: list[Problem] = []
    if len(embeds) > EMBEDS_PER_MESSAGE:
        problems.append((("embeds",), f"Must be {EMBEDS_PER_MESSAGE} or fewer in length."))
    total = 0
    for index, embed in enumerate(embeds):
        for key, limit in EMBED_FIELDS.items():
            problems += too_long(embed.get(key), limit, ("embeds", index, key))
        fields = embed.get("fields") or []
        if len(fields) > EMBED_FIELD_COUNT:
            problems.append((("embeds", index, "fields"), f"Must be {EMBED_FIELD_COUNT} or fewer in length."))
        for number, field in enumerate(fields):
            for key, limit in EMBED_FIELD_TEXT.items():
                problems += too_long(field.get(key), limit, ("embeds", index, "fields", number, key), low=1)
        problems += too_long((embed.get("footer") or {}).get("text"), 2048, ("embeds", index, "footer", "text"))
        problems += too_long((embed.get("author") or {}).get("name"), 256, ("embeds", index, "author", "name"))
        texts = [embed.get("title"), embed.get("description"), (embed.get("footer") or {}).get("text"),
                 (embed.get("author") or {}).get("name"), *(f.get(k) for f in fields for k in EMBED_FIELD_TEXT)]
        total += sum(len(str(text)) for text in texts if text)
    if total > EMBED_TOTAL:
        problems.append((("embeds",), f"Embed size exceeds maximum size of {EMBED_TOTAL}"))
    return problems


def component_problems(rows: list[dict[str, Any]], layout: bool = False) -> list[Problem]:
    """Action rows (at most 5) of at most 5 buttons or one select; custom ids of 1-100 characters, unique in the
    message. A components-v2 layout is checked for its ids only."""
    problems: list[Problem] = []
    if not layout and len(rows) > ACTION_ROWS:
        problems.append((("components",), f"Must be {ACTION_ROWS} or fewer in length."))
    seen: set[str] = set()
    for index, row in enumerate(rows):
        path = ("components", index)
        if layout:
            problems += ids_problems(row, path, seen)
            continue
        items = row.get("components") or []
        if row.get("type") != ROW:
            problems.append((path, "Top-level components must be action rows."))
        elif not 1 <= len(items) <= ROW_BUTTONS:
            problems.append(((*path, "components"), f"Must be between 1 and {ROW_BUTTONS} in length."))
        elif any(item.get("type") in SELECTS for item in items) and len(items) > 1:
            problems.append(((*path, "components"), "A select menu must be alone in its action row."))
        for number, item in enumerate(items):
            problems += item_problems(item, (*path, "components", number), seen)
    return problems


def ids_problems(component: dict[str, Any], path: tuple[Any, ...], seen: set[str]) -> list[Problem]:
    problems = item_problems(component, path, seen) if "custom_id" in component else []
    for key in ("components", "accessory", "component"):
        inner = component.get(key)
        for number, child in enumerate(inner if isinstance(inner, list) else [inner] if inner else []):
            problems += ids_problems(child, (*path, key, number), seen)
    return problems


def item_problems(item: dict[str, Any], path: tuple[Any, ...], seen: set[str]) -> list[Problem]:
    problems: list[Problem] = []
    kind, custom_id = item.get("type"), item.get("custom_id")
    if kind == BUTTON and item.get("style") in (LINK_STYLE, PREMIUM_STYLE):
        if custom_id is not None:
            problems.append(((*path, "custom_id"), "A link button has no custom id."))
    elif kind in (BUTTON, *SELECTS, TEXT_INPUT):
        problems += too_long(custom_id or "", CUSTOM_ID, (*path, "custom_id"), low=1)
        if custom_id in seen:
            problems.append(((*path, "custom_id"), "Component custom id cannot be duplicated"))
        seen.add(custom_id)
    if kind == BUTTON:
        problems += too_long(item.get("label"), BUTTON_LABEL, (*path, "label"))
    if kind in SELECTS:
        problems += select_problems(item, path)
    return problems


def select_problems(select: dict[str, Any], path: tuple[Any, ...]) -> list[Problem]:
    problems = list(too_long(select.get("placeholder"), SELECT_PLACEHOLDER, (*path, "placeholder")))
    options = select.get("options") or []
    if select.get("type") == 3 and not 1 <= len(options) <= SELECT_OPTIONS:
        problems.append(((*path, "options"), f"Must be between 1 and {SELECT_OPTIONS} in length."))
    for number, option in enumerate(options):
        for key, limit in SELECT_TEXT.items():
            problems += too_long(option.get(key), limit, (*path, "options", number, key), low=key != "description")
    for key in ("min_values", "max_values"):
        if select.get(key) is not None and not 0 <= select[key] <= SELECT_OPTIONS:
            problems.append(((*path, key), f"Must be between 0 and {SELECT_OPTIONS}."))
    return problems


def attachment_problems(entries: list[dict[str, Any]], files: list[tuple[str, bytes, str]]) -> list[Problem]:
    """At most 10 files; each file name 1-1024 characters, without a path or control characters."""
    problems: list[Problem] = []
    if max(len(entries), len(files)) > ATTACHMENTS_PER_MESSAGE:
        problems.append((("attachments",), f"Must be {ATTACHMENTS_PER_MESSAGE} or fewer in length."))
    names = [(("attachments", i, "filename"), e["filename"]) for i, e in enumerate(entries) if "filename" in e]
    names += [((f"files[{i}]",), name) for i, (name, _, _) in enumerate(files)]
    for path, name in names:
        problems += too_long(name, FILENAME, path, low=1)
        if any(ch in name for ch in "/\\") or any(ord(ch) < 32 for ch in name):
            problems.append((path, "A file name has no folders or control characters."))
    return problems


def choice_problems(data: dict[str, Any]) -> list[Problem]:
    """An autocomplete answer: at most 25 choices, each named in 1-100 characters (a string value too)."""
    choices = data.get("choices") or []
    problems: list[Problem] = []
    if len(choices) > CHOICES:
        problems.append((("data", "choices"), f"Must be {CHOICES} or fewer in length."))
    for index, choice in enumerate(choices):
        problems += too_long(choice.get("name"), CHOICE_TEXT, ("data", "choices", index, "name"), low=1)
        if isinstance(choice.get("value"), str):
            problems += too_long(choice["value"], CHOICE_TEXT, ("data", "choices", index, "value"))
    return problems


def modal_problems(answering: int, data: dict[str, Any]) -> list[Problem]:
    """A modal: not an answer to a modal submit; a custom id of 1-100 characters, a title of 1-45; 1-5 labels (or,
    the older way, action rows) each holding one text input with its own custom id, a label of 1-45 characters
    and a pre-filled value no longer than its ``max_length``."""
    if answering == MODAL_SUBMIT:
        return [(("type",), "a modal cannot answer a modal submit")]
    problems = list(too_long(data.get("custom_id") or "", CUSTOM_ID, ("data", "custom_id"), low=1))
    problems += too_long(data.get("title") or "", MODAL_TITLE, ("data", "title"), low=1)
    components = data.get("components") or []
    if not 1 <= len(components) <= MODAL_COMPONENTS:
        return problems + [(("data", "components"), "a modal has 1 to 5 components")]
    seen: set[str] = set()
    for index, component in enumerate(components):
        path = ("data", "components", index)
        if component.get("type") == LABEL:
            inner = component.get("component") or {}
            if not 1 <= len(component.get("label") or "") <= LABEL_TEXT:
                problems.append(((*path, "label"), "a label's text has 1 to 45 characters"))
        elif component.get("type") == ROW and len(component.get("components") or []) == 1:
            inner = component["components"][0]
        else:
            problems.append((path, f"unexpected component {component.get('type')}"))
            continue
        if inner.get("type") != TEXT_INPUT or not inner.get("custom_id") or inner["custom_id"] in seen:
            problems.append((path, "each label holds one text input with its own custom id"))
            continue
        seen.add(inner["custom_id"])
        problems += text_input_problems(inner, (*path, "component"))
    return problems


def text_input_problems(field: dict[str, Any], path: tuple[Any, ...]) -> list[Problem]:
    problems = list(too_long(field.get("placeholder"), TEXT_INPUT_PLACEHOLDER, (*path, "placeholder")))
    longest = min(field.get("max_length") or TEXT_INPUT_VALUE, TEXT_INPUT_VALUE)
    if field.get("value") is not None and len(str(field["value"])) > longest:
        problems.append(((*path, "value"), f"a pre-filled value has at most max_length ({longest}) characters"))
    if (field.get("min_length") or 0) > longest:
        problems.append(((*path, "min_length"), "min_length is over max_length"))
    return problems

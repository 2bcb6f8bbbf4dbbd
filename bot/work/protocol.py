"""The messages between the job core and whatever runs the engine, as small frozen dataclasses.

One shape everywhere: the local engine process pickles them over its pipes, the Redis backend sends their JSON
form (:func:`to_json` / :func:`from_json`), and ``nst-bot stylize --progress json`` prints the same JSON lines for
plug-ins (job id ``stylize`` there; docs/plugins.md lists the fields). Options travel as :class:`~nst_engine.options.StylizeOptions` and become a dict only in JSON.

JSON form: one object per message with ``"event"`` (or ``"op"`` for commands) naming the type, e.g.
``{"event": "progress", "job": "…", "iteration": 3, "total": 40, "fraction": 0.075, "eta": 12.5, "loss": 0.61}``.
Preview images (PNG bytes) are base64 in JSON and left out of the CLI's lines.

:func:`from_json` trusts nothing: the JSON may come from any process that can write to Redis, so every field is
checked against its declared type (no ``"lots"`` for a count, no NaN for a time) and size (text, previews).
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import json
import math
import types
import typing
from dataclasses import dataclass
from typing import Any, Union

from nst_engine.errors import NSTError
from nst_engine.options import StylizeOptions

MAX_TEXT = 4000  # characters in one text field (ids, paths, messages for people)
MAX_NUMBER = 10**12  # magnitude of any number field
MAX_FRAMES = 1000  # frames of one animated job ([limits] max_frames allows up to this)
MAX_PREVIEW_BYTES = 4 << 20  # a preview is at most a 1024-px PNG: about 3 MB of incompressible pixels
MAX_MESSAGE_BYTES = MAX_PREVIEW_BYTES * 4 // 3 + (1 << 20)  # a preview in base64, and room for the rest


@dataclass(frozen=True)
class JobSpec:
    """One job for the engine: input files where the engine can read them, options, where to write the result;
    ``init``: an image to start from instead of the content (an upscale's earlier result), or empty; ``style`` and
    ``quality``: how the requester named them, for the recipe written into the result; ``frames``: an animation's
    frame count."""

    job_id: str
    content: str
    styles: tuple[str, ...]
    options: StylizeOptions
    result: str
    init: str = ""
    style: str = ""
    quality: str = ""
    frames: int = 1  # over 1: the content file is an animated PNG of that many frames, stylised as one job

    @property
    def inputs(self) -> tuple[str, ...]:
        """Every input file: the content, the styles, then the init image when there is one."""
        return (self.content, *self.styles, *((self.init,) if self.init else ()))

    def with_inputs(self, paths: tuple[str, ...]) -> "JobSpec":
        """The same job reading its inputs from ``paths`` (in :attr:`inputs` order): how a backend moves them."""
        styles = paths[1:1 + len(self.styles)]
        return dataclasses.replace(self, content=paths[0], styles=tuple(styles),
                                   init=paths[1 + len(self.styles)] if self.init else "")


# ------------------------------------------------------------------------------------- core → engine (commands)


@dataclass(frozen=True)
class RunJobs:
    """Run these jobs, as one batch when there are several (they share a batch key)."""

    jobs: tuple[JobSpec, ...]
    op: str = "run"


@dataclass(frozen=True)
class CancelJob:
    job_id: str
    op: str = "cancel"


@dataclass(frozen=True)
class StopEngine:
    op: str = "stop"


Command = Union[RunJobs, CancelJob, StopEngine]

# -------------------------------------------------------------------------------------- engine → core (events)


@dataclass(frozen=True)
class Ready:
    """An engine (local process or remote worker) has loaded the network and takes jobs; ``restarted`` when it is
    a new process in place of one that died (not the same engine seen again after a Redis outage)."""

    device: str
    worker: str = "local"
    batch_size: int = 1
    restarted: bool = False
    event: str = "ready"


@dataclass(frozen=True)
class Started:
    """A worker took the job (the local backend runs what it is given at once and sends none)."""

    job: str
    worker: str
    event: str = "started"


@dataclass(frozen=True)
class Progress:
    job: str
    iteration: int
    total: int
    eta: float | None
    loss: float | None = None
    preview: bytes | None = None
    frame: int = 0  # of an animation: the frame being stylised (1-based) of ``frames``; 0 for a still
    frames: int = 0
    event: str = "progress"

    @property
    def fraction(self) -> float:
        return self.iteration / self.total if self.total else 1.0


@dataclass(frozen=True)
class Done:
    """The job left the engine normally: finished (the result written to ``output``) or cancelled (nothing written)."""

    job: str
    iterations: int
    elapsed: float | None
    cancelled: bool = False
    device: str | None = None
    batch_size: int = 1
    width: int = 0
    height: int = 0
    output: str = ""
    event: str = "done"


@dataclass(frozen=True)
class Failed:
    """The job cannot be made; ``message`` is a sentence for the requester."""

    job: str
    message: str
    event: str = "failed"


@dataclass(frozen=True)
class Lost:
    """The job's engine went away (process died, worker killed, time limit): the core's retry policy decides."""

    job: str
    reason: str
    event: str = "lost"


@dataclass(frozen=True)
class Fatal:
    """The engine cannot start at all (no weights, …); ``message`` is for the admin."""

    message: str
    event: str = "fatal"


Event = Union[Ready, Started, Progress, Done, Failed, Lost, Fatal]

_TYPES: dict[str, type] = {cls.__dataclass_fields__[tag].default: cls  # type: ignore[attr-defined]
                           for cls, tag in ((RunJobs, "op"), (CancelJob, "op"), (StopEngine, "op"), (Ready, "event"),
                                            (Started, "event"), (Progress, "event"), (Done, "event"),
                                            (Failed, "event"), (Lost, "event"), (Fatal, "event"))}


def to_dict(message: Command | Event, *, previews: bool = True) -> dict[str, Any]:
    """A JSON-ready dict (options as a dict, preview bytes base64, or dropped with ``previews=False``)."""
    out: dict[str, Any] = {}
    for field in dataclasses.fields(message):
        value = getattr(message, field.name)
        if isinstance(value, bytes):
            if not previews:
                continue
            value = base64.b64encode(value).decode("ascii")
        elif isinstance(value, tuple) and value and isinstance(value[0], JobSpec):
            value = [{**vars(spec), "styles": list(spec.styles), "options": spec.options.to_dict()} for spec in value]
        out[field.name] = value
    if isinstance(message, Progress):
        out["fraction"] = message.fraction
        if not message.frames:  # a still's lines stay as they were (plug-ins read them)
            del out["frame"], out["frames"]
    return out


def to_json(message: Command | Event, *, previews: bool = True) -> str:
    return json.dumps(to_dict(message, previews=previews))


def from_json(text: str | bytes) -> Command | Event:
    """Parse :func:`to_json`'s output; raises ``ValueError`` for anything else (the input may come from a network)."""
    if len(text) > MAX_MESSAGE_BYTES:  # refused before parsing: no copies of an outsize message are made
        raise ValueError(f"a message of {len(text)} bytes is over the {MAX_MESSAGE_BYTES}-byte limit")
    data = json.loads(text)
    if not isinstance(data, dict):
        raise ValueError("a message must be a JSON object")
    cls = _TYPES.get(data.get("event") or data.get("op"))
    if cls is None:
        raise ValueError(f"unknown message type {data.get('event') or data.get('op')!r}")
    names = {field.name for field in dataclasses.fields(cls)}
    values = {key: value for key, value in data.items() if key in names}
    try:
        if cls is RunJobs:
            values["jobs"] = tuple(_job_spec(spec) for spec in values["jobs"])
        if cls is Progress and values.get("preview") is not None:
            values["preview"] = _preview(values["preview"])
        _check_types(cls, values)
        return cls(**values)
    except (KeyError, TypeError, NSTError, binascii.Error) as error:
        raise ValueError(f"malformed {cls.__name__} message: {error}") from None


def _job_spec(spec: dict[str, Any]) -> JobSpec:
    paths = {"job_id": spec["job_id"], "content": spec["content"], "result": spec["result"],
             "init": spec.get("init") or "", "style": spec.get("style") or "", "quality": spec.get("quality") or "",
             "frames": spec.get("frames", 1)}
    _check_types(JobSpec, paths)
    if not 1 <= paths["frames"] <= MAX_FRAMES:
        raise TypeError(f"a job has 1 to {MAX_FRAMES} frames, not {paths['frames']}")
    styles = tuple(spec["styles"])
    if not all(_fits(style, str) for style in styles):
        raise TypeError("the style paths must be text")
    return JobSpec(options=StylizeOptions.from_mapping(spec["options"]), styles=styles, **paths)


def _preview(encoded: Any) -> bytes:
    if not isinstance(encoded, str) or len(encoded) > (MAX_PREVIEW_BYTES + 2) // 3 * 4:
        raise TypeError(f"a preview must be base64 of at most {MAX_PREVIEW_BYTES} bytes")
    return base64.b64decode(encoded, validate=True)


def _check_types(cls: type, values: dict[str, Any]) -> None:
    """Raises ``TypeError`` naming the first field whose value is not of its declared type and size."""
    hints = typing.get_type_hints(cls)
    for name, value in values.items():
        if not _fits(value, hints[name]):
            raise TypeError(f"field {name!r} has an unexpected value {str(value)[:40]!r}")


def _fits(value: Any, hint: Any) -> bool:
    if typing.get_origin(hint) in (Union, types.UnionType):
        return any(_fits(value, option) for option in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint in (int, float):
        number = isinstance(value, int) or (hint is float and isinstance(value, float) and math.isfinite(value))
        return number and not isinstance(value, bool) and abs(value) <= MAX_NUMBER
    if hint is str:
        return isinstance(value, str) and len(value) <= MAX_TEXT
    if hint is bytes:
        return isinstance(value, bytes) and len(value) <= MAX_PREVIEW_BYTES
    return True  # the jobs of a RunJobs: built field by field above, their options checked by StylizeOptions

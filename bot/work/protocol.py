"""The messages between the job core and whatever runs the engine, as small frozen dataclasses.

One shape everywhere: the local engine process pickles them over its pipes, the Redis backend sends their JSON
form (:func:`to_json` / :func:`from_json`), and ``nst-bot stylize --progress json`` prints the same JSON lines for
plug-ins (job id ``stylize`` there; docs/plugins.md lists the fields). Options travel as :class:`~nst_engine.options.StylizeOptions` and become a dict only in JSON.

JSON form: one object per message with ``"event"`` (or ``"op"`` for commands) naming the type, e.g.
``{"event": "progress", "job": "…", "iteration": 3, "total": 40, "fraction": 0.075, "eta": 12.5, "loss": 0.61}``.
Preview images (PNG bytes) are base64 in JSON and left out of the CLI's lines.
"""

from __future__ import annotations

import base64
import dataclasses
import json
from dataclasses import dataclass
from typing import Any, Union

from nst_engine.errors import NSTError
from nst_engine.options import StylizeOptions


@dataclass(frozen=True)
class JobSpec:
    """One job for the engine: input files where the engine can read them, options, where to write the result;
    ``init``: an image to start from instead of the content (an upscale's earlier result), or empty; ``style`` and
    ``quality``: how the requester named them, for the recipe written into the result."""

    job_id: str
    content: str
    styles: tuple[str, ...]
    options: StylizeOptions
    result: str
    init: str = ""
    style: str = ""
    quality: str = ""

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
    return out


def to_json(message: Command | Event, *, previews: bool = True) -> str:
    return json.dumps(to_dict(message, previews=previews))


def from_json(text: str | bytes) -> Command | Event:
    """Parse :func:`to_json`'s output; raises ``ValueError`` for anything else (the input may come from a network)."""
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
            values["jobs"] = tuple(JobSpec(spec["job_id"], spec["content"], tuple(spec["styles"]),
                                           StylizeOptions.from_mapping(spec["options"]), spec["result"],
                                           spec.get("init") or "", str(spec.get("style", "")),
                                           str(spec.get("quality", "")))
                                   for spec in values["jobs"])
        if cls is Progress and values.get("preview") is not None:
            values["preview"] = base64.b64decode(values["preview"])
        return cls(**values)
    except (KeyError, TypeError, NSTError) as error:
        raise ValueError(f"malformed {cls.__name__} message: {error}") from None

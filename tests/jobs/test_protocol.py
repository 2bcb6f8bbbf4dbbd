"""The engine protocol's JSON form: what the Redis backend sends and ``nst-bot stylize --progress json`` prints."""

from __future__ import annotations

import json

import pytest

from bot.work.protocol import (CancelJob, Done, Failed, Fatal, JobSpec, Lost, Progress, Ready, RunJobs, Started,
                               StopEngine, from_json, to_json)
from nst_engine.options import StylizeOptions

MESSAGES = [
    RunJobs((JobSpec("a1", "in/c.png", ("in/s.png", "in/t.png"), StylizeOptions(size=64, style_weights=(1, 2)),
                     "out.png"),)),
    CancelJob("a1"), StopEngine(), Ready("cpu", "w1", 4), Started("a1", "w1"),
    Progress("a1", 3, 40, 12.5, 0.61, b"\x89PNG\r\n"), Done("a1", 40, 31.2, device="cpu", width=64, height=43,
                                                          output="out.png"),
    Failed("a1", "The content image is corrupt."), Lost("a1", "worker gone"), Fatal("no weights"),
]


@pytest.mark.parametrize("message", MESSAGES, ids=lambda m: type(m).__name__)
def test_every_message_survives_its_json_form(message) -> None:
    assert from_json(to_json(message)) == message


def test_progress_lines_for_plug_ins_carry_the_fraction_and_no_preview() -> None:
    line = json.loads(to_json(Progress("stylize", 3, 40, None, 0.5, b"png"), previews=False))
    assert line == {"job": "stylize", "iteration": 3, "total": 40, "eta": None, "loss": 0.5, "event": "progress",
                    "fraction": 0.075}


@pytest.mark.parametrize("text", ['[]', '{"event": "boom"}', '{"event": "done", "job": "a"}',
                                  '{"op": "run", "jobs": [{"job_id": "a"}]}', 'not json'])
def test_anything_else_is_refused_as_a_value_error(text: str) -> None:
    with pytest.raises(ValueError):
        from_json(text)

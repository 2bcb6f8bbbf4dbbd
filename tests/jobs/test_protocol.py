"""The engine protocol's JSON form: what the Redis backend sends and ``nst-bot stylize --progress json`` prints."""

from __future__ import annotations

import dataclasses
import json

import pytest

from bot.work.protocol import (MAX_FRAMES, MAX_MESSAGE_BYTES, MAX_NUMBER, MAX_PREVIEW_BYTES, MAX_TEXT, CancelJob,
                               Done, Failed, Fatal, JobSpec, Lost, Progress, Ready, RunJobs, Started, StopEngine,
                               from_json, to_dict, to_json)
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


# What from_json admits and refuses, field by field (found by mutation testing, docs/mutation-report.md).

SPEC = JobSpec("a1", "in/c.png", ("in/s.png", "in/t.png"), StylizeOptions(size=64), "out.png")


def spec_json(**changes) -> str:
    """A RunJobs message of one job, with fields of that job changed (None: left out)."""
    spec = {**json.loads(to_json(RunJobs((SPEC,))))["jobs"][0], **changes}
    return json.dumps({"op": "run", "jobs": [{k: v for k, v in spec.items() if v is not None}]})


def refusal(text: str) -> str:
    with pytest.raises(ValueError) as refused:
        from_json(text)
    return str(refused.value)


def test_a_job_lists_its_inputs_and_moves_them_in_that_order() -> None:
    assert SPEC.inputs == ("in/c.png", "in/s.png", "in/t.png")
    upscale = dataclasses.replace(SPEC, init="in/i.png")
    assert upscale.inputs == ("in/c.png", "in/s.png", "in/t.png", "in/i.png")
    moved = upscale.with_inputs(("m/c", "m/s", "m/t", "m/i"))
    assert (moved.content, moved.styles, moved.init, moved.result) == ("m/c", ("m/s", "m/t"), "m/i", "out.png")
    assert SPEC.with_inputs(("m/c", "m/s", "m/t")).init == ""
    one_style = JobSpec("a1", "c", ("s",), StylizeOptions(size=64), "out.png", init="i")
    moved = one_style.with_inputs(("m/c", "m/s", "m/i"))
    assert (moved.content, moved.styles, moved.init) == ("m/c", ("m/s",), "m/i")


def test_a_jobs_json_form_has_its_fields_and_nothing_else() -> None:
    (job,) = json.loads(to_json(RunJobs((SPEC,))))["jobs"]
    assert StylizeOptions.from_mapping(job.pop("options")) == SPEC.options
    assert job == {"job_id": "a1", "content": "in/c.png", "styles": ["in/s.png", "in/t.png"], "result": "out.png",
                   "init": "", "style": "", "quality": "", "frames": 1}
    assert to_dict(RunJobs((SPEC,)))["jobs"][0]["styles"] == ["in/s.png", "in/t.png"]


def test_to_dict_keeps_previews_as_base64_unless_told_not_to() -> None:
    progress = Progress("a1", 1, 4, None, preview=b"png")
    assert to_dict(progress)["preview"] == "cG5n" and "preview" not in to_dict(progress, previews=False)


def test_a_progress_fraction_is_of_the_total_and_whole_when_there_is_none() -> None:
    assert Progress("a", 10, 40, None).fraction == 0.25
    assert Progress("a", 0, 0, None).fraction == 1.0


def test_an_animations_progress_lines_name_the_frame() -> None:
    line = json.loads(to_json(Progress("a", 1, 4, None, frame=2, frames=5)))
    assert (line["frame"], line["frames"]) == (2, 5)
    assert from_json(json.dumps(line)) == Progress("a", 1, 4, None, frame=2, frames=5)


def test_a_message_is_named_by_op_or_event_and_an_unknown_name_is_quoted() -> None:
    assert from_json('{"op": "cancel", "job_id": "a1"}') == CancelJob("a1")
    assert refusal('{"op": "pause", "job_id": "a1"}') == "unknown message type 'pause'"
    assert refusal('{"event": "boom", "job": "a1"}') == "unknown message type 'boom'"
    assert refusal('{"job_id": "a1"}') == "unknown message type None"
    assert refusal('["op", "stop"]') == "a message must be a JSON object"
    assert refusal('{"event": "lost", "job": "a1"}').startswith("malformed Lost message")


def test_a_message_over_the_size_limit_is_refused_before_it_is_read() -> None:
    line = to_json(Fatal("x"))
    padded = line + " " * (MAX_MESSAGE_BYTES - len(line))  # JSON allows the trailing blanks
    assert from_json(padded) == Fatal("x")
    assert f"over the {MAX_MESSAGE_BYTES}-byte limit" in refusal(padded + " ")


@pytest.mark.parametrize("field, value", [("iteration", True), ("iteration", 2.5), ("iteration", "3"),
                                          ("eta", float("nan")), ("eta", float("inf")), ("total", MAX_NUMBER + 1),
                                          ("total", -MAX_NUMBER - 1), ("job", "x" * (MAX_TEXT + 1)), ("job", None),
                                          ("job", 7)])
def test_a_field_of_the_wrong_type_or_size_is_refused_by_name(field: str, value) -> None:
    line = {**json.loads(to_json(Progress("a1", 3, 40, 12.5))), field: value}
    assert refusal(json.dumps(line)) == \
        f"malformed Progress message: field {field!r} has an unexpected value {str(value)[:40]!r}"


def test_a_refusal_shows_the_start_of_the_value_only() -> None:
    line = {**json.loads(to_json(Progress("a1", 3, 40, 12.5))), "job": "0123456789" * 500}
    assert refusal(json.dumps(line)).endswith(f"unexpected value {'0123456789' * 4!r}")


def test_values_at_the_limits_are_admitted() -> None:
    edge = Progress("x" * MAX_TEXT, MAX_NUMBER, -MAX_NUMBER, 12)  # a whole number is a time too
    assert from_json(to_json(edge)) == edge
    assert from_json(to_json(Ready("cpu", restarted=True))).restarted is True
    assert "'restarted'" in refusal('{"event": "ready", "device": "cpu", "restarted": 1}')


def test_a_jobs_frames_are_from_one_to_the_maximum() -> None:
    assert from_json(spec_json(frames=1)).jobs[0].frames == 1
    assert from_json(spec_json(frames=MAX_FRAMES)).jobs[0].frames == MAX_FRAMES
    assert from_json(spec_json(frames=None)).jobs[0].frames == 1
    for frames in (0, MAX_FRAMES + 1):
        assert f"a job has 1 to {MAX_FRAMES} frames, not {frames}" in refusal(spec_json(frames=frames))
    assert "'frames'" in refusal(spec_json(frames="2"))


def test_a_jobs_optional_texts_default_to_empty_and_its_paths_must_be_text() -> None:
    job = from_json(spec_json(init=None, style=None, quality=None)).jobs[0]
    assert (job.init, job.style, job.quality) == ("", "", "")
    named = from_json(spec_json(init="in/i.png", style="waves", quality="fast")).jobs[0]
    assert (named.init, named.style, named.quality) == ("in/i.png", "waves", "fast")
    assert refusal(spec_json(styles=["in/s.png", 3])) == "malformed RunJobs message: the style paths must be text"
    assert "style paths must be text" in refusal(spec_json(styles=["x" * (MAX_TEXT + 1)]))
    assert "'result'" in refusal(spec_json(result=["out.png"]))
    assert "unknown option" in refusal(spec_json(options={"sharpness": 2}))


def test_a_preview_is_strict_base64_of_at_most_the_limit() -> None:
    biggest = Progress("a1", 1, 4, None, preview=b"\xff" * MAX_PREVIEW_BYTES)
    assert from_json(to_json(biggest)) == biggest
    over = to_json(Progress("a1", 1, 4, None, preview=b"\xff" * (MAX_PREVIEW_BYTES + 1)))
    assert "'preview'" in refusal(over)  # the same base64 length: refused once decoded
    line = json.loads(to_json(Progress("a1", 1, 4, None)))
    too_long = "A" * ((MAX_PREVIEW_BYTES + 2) // 3 * 4 + 4)
    assert f"at most {MAX_PREVIEW_BYTES} bytes" in refusal(json.dumps({**line, "preview": too_long}))
    assert f"at most {MAX_PREVIEW_BYTES} bytes" in refusal(json.dumps({**line, "preview": [1, 2]}))
    assert refusal(json.dumps({**line, "preview": "iVBO\nRw=="})).startswith("malformed Progress")
    assert from_json(json.dumps({**line, "preview": None})).preview is None

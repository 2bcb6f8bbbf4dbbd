"""What a press of a status or result button does, on the handlers themselves (fast; the slow end-to-end runs
press the real buttons through discord.py): which reply it gets, which job it queues with which options, and
what Delete removes. The store, the job core and the server settings are real (SQLite in a temporary folder);
the interaction is a small recorder of the calls the handlers make on it, since a real one needs a gateway, and
the presenter records what it is asked to queue. Found by mutation testing (docs/mutation-report.md)."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from types import SimpleNamespace

import pytest
from PIL import Image

from bot.config import parse_config
from bot.face.buttons import (ELSEWHERE, NOT_THIS_MESSAGE, NOT_YOURS, NOT_YOURS_TO_DELETE, RERUNS, ButtonHandlers,
                              next_seed)
from bot.face.status import final_status, stopping
from bot.intake.options import build_options
from bot.intake.presets import StylePreset
from bot.jobs.model import CANCELLED, DONE, QUEUED, Job, new_job_id
from bot.jobs.settings import ServerSettings
from bot.work.protocol import Ready
from nst_engine.animation import Animation
from nst_engine.options import option_spec
from tests.conftest import make_content, make_style
from tests.jobs.fakes import FakeFrontend, accepted, make_core, until

pytestmark = pytest.mark.timeout(30)

OWNER, OTHER, SERVER, CHANNEL, RESULT_MESSAGE = 11, 22, 33, 44, 555


class Response:
    """What the handlers call on ``interaction.response``, recorded in the interaction's ``calls``."""

    def __init__(self, calls: list[tuple]) -> None:
        self.calls, self.done = calls, False

    def is_done(self) -> bool:
        return self.done

    async def defer(self, **how) -> None:
        self.done = True
        self.calls.append(("defer", how))

    async def send_message(self, content: str, **how) -> None:
        self.done = True
        self.calls.append(("message", content, how))

    async def send_modal(self, modal) -> None:
        self.done = True
        self.calls.append(("modal", modal))

    async def edit_message(self, **changes) -> None:
        self.done = True
        self.calls.append(("edit", changes))


class Press(SimpleNamespace):
    """A button press by ``user`` in ``guild``/``channel`` on ``message``: what the handlers read and call."""

    def __init__(self, user: int = OWNER, guild: int | None = SERVER, channel: int = CHANNEL, manage: bool = False,
                 message: int | None = RESULT_MESSAGE, presets: dict[str, StylePreset] | None = None) -> None:
        calls: list[tuple] = []
        kept = presets or {}

        async def record(name: str, *args, **kwargs) -> None:
            calls.append((name, *args, *([kwargs] if kwargs else [])))
        super().__init__(
            calls=calls, id=1, user=SimpleNamespace(id=user, display_name=f"member{user}"), guild_id=guild,
            channel_id=channel, permissions=SimpleNamespace(manage_guild=manage),
            message=SimpleNamespace(id=message) if message else None, response=Response(calls),
            client=SimpleNamespace(presets=SimpleNamespace(get=lambda name, guild_id: kept.get(name))),
            followup=SimpleNamespace(send=lambda *a, **k: record("followup", *a, **k)),
            edit_original_response=lambda **k: record("reply", **k),
            delete_original_response=lambda: record("deleted"))

    def replies(self) -> list[str]:
        """The private texts the member saw (a warning edits the deferred reply)."""
        return [call[1]["content"] if call[0] == "reply" else call[1] for call in self.calls
                if call[0] in ("reply", "message", "followup")]


class Presenter:
    """Records the jobs it is asked to queue, and what the handlers tell it about status messages."""

    def __init__(self) -> None:
        self.queued: list[tuple[Job, object, list[Image.Image], Image.Image | None]] = []
        self.forgotten: list[str] = []
        self.replaced: list[str] = []

    async def submit(self, interaction, job: Job, content, *styles: Image.Image, init=None) -> Job:
        self.pressed = interaction
        self.queued.append((job, content, list(styles), init))
        return job

    def forget(self, job_id: str) -> None:
        self.forgotten.append(job_id)

    def status_replaced(self, job_id: str) -> None:
        self.replaced.append(job_id)


def handlers(tmp_path: Path, memory_budget_mb: float | None = None, **config) -> ButtonHandlers:
    settings = parse_config({"storage": {"retention_days": 7}, "limits": {"cooldown_seconds": 0}, **config}, tmp_path)
    core = make_core(tmp_path, memory_budget_mb=memory_budget_mb)
    return ButtonHandlers(settings, core, Presenter(), ServerSettings(core.store.db, settings))


def made(buttons: ButtonHandlers, quality: str = "fast", styles: int = 1, result: bool = True,
         content: Image.Image | Animation | None = None, guild: int | None = SERVER, **options) -> Job:
    """A finished job in the store, made as ``/stylize`` makes one at ``quality`` (seed 7, strength 2, and
    ``options``), with its inputs kept and (``result``) its result file."""
    made_options = dataclasses.replace(build_options(buttons.config, quality)[0], **{"seed": 7, "strength": 2.0,
                                                                                       **options})
    job = Job(new_job_id(), OWNER, "owner", guild, CHANNEL, "a style", quality, made_options, state=DONE,
              result_message_id=RESULT_MESSAGE, frames=len(content.frames) if isinstance(content, Animation) else 1)
    store = buttons.core.store
    store.add(job)
    store.save_inputs(job.id, content or make_content(32, 24), *(make_style(24, seed) for seed in range(styles)))
    if result:
        Image.new("RGB", (32, 24), "navy").save(store.result_path(job.id))
    return job


def queued(buttons: ButtonHandlers) -> Job:
    ((job, *_),) = buttons.presenter.queued
    return job


@pytest.mark.parametrize("way, strength", [("weaker", 1.0), ("stronger", 4.0), ("reroll", 2.0)])
async def test_a_rerun_queues_a_child_with_the_strength_changed_and_the_seed_kept(tmp_path: Path, way: str,
                                                                                   strength: float) -> None:
    buttons = handlers(tmp_path)
    parent = made(buttons, styles=2, style_weights=(1.0, 3.0), style_scale=1.5, size=200)
    press = Press(user=OTHER)
    await buttons.on_result(press, parent.id, way)
    child = queued(buttons)
    assert re.fullmatch("[0-9a-f]{16}", child.id) and child.id != parent.id and buttons.presenter.pressed is press
    assert child.notes == [] and child.options.iterations == parent.options.iterations == 45  # fast's
    assert press.calls[0] == ("defer", {"ephemeral": True, "thinking": True})
    assert (child.user_id, child.user_name, child.guild_id, child.channel_id) == (OTHER, f"member{OTHER}", SERVER,
                                                                                 CHANNEL)
    assert (child.parent_id, child.quality, child.style_label) == (parent.id, "fast", "a style")
    assert child.options.strength == strength and child.options.size == 200
    assert child.options.seed == (8 if way == "reroll" else 7)
    assert (child.options.style_weights, child.options.style_scale) == ((1.0, 3.0), 1.5)
    (_, content, styles, init), = buttons.presenter.queued
    assert content.size == (32, 24) and len(styles) == 2 and init is None


@pytest.mark.parametrize("way, strength, word", [("stronger", 100.0, "maximum"), ("weaker", 0.01, "minimum")])
async def test_a_rerun_past_the_strength_bounds_is_refused(tmp_path: Path, way: str, strength: float,
                                                           word: str) -> None:
    buttons = handlers(tmp_path)
    press = Press()
    await buttons.on_result(press, made(buttons, strength=strength).id, way)
    assert press.replies() == [f"⚠️ The strength is already at its {word} ({strength:g})."]
    assert buttons.presenter.queued == []


async def test_a_rerun_moves_towards_a_bound_it_is_close_to(tmp_path: Path) -> None:
    buttons = handlers(tmp_path)
    await buttons.on_result(Press(), made(buttons, strength=80.0).id, "stronger")
    assert queued(buttons).options.strength == option_spec("strength").high
    assert RERUNS == {"stronger": 2.0, "weaker": 0.5, "reroll": 1.0}


async def test_a_rerun_elsewhere_or_of_a_job_without_inputs_is_refused(tmp_path: Path) -> None:
    buttons = handlers(tmp_path)
    parent = made(buttons)
    elsewhere = Press(channel=CHANNEL + 1)
    await buttons.again(elsewhere, parent.id, "weaker")
    buttons.core.store.content_path(parent.id).unlink()
    gone = Press()
    await buttons.again(gone, parent.id, "weaker")
    assert elsewhere.replies() == [f"⚠️ {ELSEWHERE}"]
    assert gone.replies() == ["⚠️ The inputs of this image are no longer kept (they are kept 7 days); please run "
                              "/stylize again."]
    assert buttons.presenter.queued == []


async def test_a_rerun_in_a_channel_the_admins_closed_is_refused(tmp_path: Path) -> None:
    buttons = handlers(tmp_path)
    buttons.settings.put(SERVER, CHANNEL, {"answers": False})
    press = Press()
    await buttons.on_result(press, made(buttons).id, "weaker")
    assert press.replies() == ["⚠️ The admins turned the bot off in this channel; please use it in another channel "
                               "of this server."]
    assert buttons.presenter.queued == []


async def test_a_press_already_answered_is_not_handled_again(tmp_path: Path) -> None:
    import discord

    buttons = handlers(tmp_path)
    press = Press()

    async def refused(**how) -> None:
        raise discord.InteractionResponded(None)
    press.response.defer = refused
    await buttons.again(press, made(buttons).id, "weaker")
    assert buttons.presenter.queued == [] and press.calls == []


async def test_an_upscale_starts_from_the_result_at_the_next_level(tmp_path: Path) -> None:
    buttons = handlers(tmp_path)
    parent = made(buttons)
    await buttons.on_result(Press(), parent.id, "upscale")
    (child, _, _, init), = buttons.presenter.queued
    assert child.quality == "standard" and child.options.size == 512 and child.options.seed == 7
    assert child.options.strength == 2.0
    assert init.size == (32, 24) and init.mode == "RGB" and init.getpixel((0, 0)) == (0, 0, 128)
    assert child.notes == []


async def test_an_upscale_runs_at_the_next_level_not_the_default_and_notes_a_cap(tmp_path: Path) -> None:
    buttons = handlers(tmp_path)
    await buttons.on_result(Press(), made(buttons, quality="standard").id, "upscale")
    assert (queued(buttons).quality, queued(buttons).options.size) == ("high", 768)
    capped = handlers(tmp_path / "capped", limits={"cooldown_seconds": 0, "max_size": 400})
    await capped.on_result(Press(), made(capped).id, "upscale")
    child = queued(capped)
    assert (child.quality, child.options.size) == ("standard", 400)
    assert child.notes == ["size 512 px capped to 400 px for standard quality"]


async def test_an_upscale_needs_a_still_and_its_kept_result(tmp_path: Path) -> None:
    buttons = handlers(tmp_path)
    frames = Animation((make_content(32, 24), make_content(32, 24)), (100, 100))
    animated, without_result = made(buttons, content=frames), made(buttons, result=False)
    for job_id, why in ((animated.id, "Upscale works on still images; for a larger animation use Edit with another "
                                      "quality (animations are at most 320 px)."),
                        (without_result.id, "This image's result is no longer kept, so it cannot be upscaled.")):
        press = Press()
        await buttons.on_result(press, job_id, "upscale")
        assert press.replies() == [f"⚠️ {why}"]
    assert buttons.presenter.queued == []


async def test_info_and_edit_answer_privately_in_the_jobs_channel_only(tmp_path: Path) -> None:
    buttons = handlers(tmp_path)
    parent = made(buttons)
    info, edit, unknown, elsewhere = Press(), Press(), Press(), Press(guild=SERVER + 1)
    await buttons.on_result(info, parent.id, "info")
    await buttons.on_result(edit, parent.id, "edit")
    await buttons.on_result(unknown, new_job_id(), "info")
    await buttons.on_result(elsewhere, parent.id, "info")
    ((kind, text, how),) = info.calls
    assert (kind, how) == ("message", {"ephemeral": True}) and f"Image `{parent.id}`" in text
    ((kind, form),) = edit.calls
    assert kind == "modal" and form.custom_id.endswith(parent.id)
    assert unknown.replies() == ["⚠️ This image is no longer known to the bot."]
    assert elsewhere.replies() == [f"⚠️ {ELSEWHERE}"]


async def test_delete_removes_the_result_message_and_file_for_the_requester_or_a_moderator(tmp_path: Path) -> None:
    buttons = handlers(tmp_path)
    mine, moderated = made(buttons), made(buttons)
    by_owner, by_moderator = Press(), Press(user=OTHER, manage=True)
    await buttons.on_result(by_owner, mine.id, "delete")
    await buttons.on_result(by_moderator, moderated.id, "delete")
    for press, job in ((by_owner, mine), (by_moderator, moderated)):
        assert press.calls == [("defer", {}), ("deleted",), ("followup", "🗑️ Image deleted.", {"ephemeral": True})]
        assert not buttons.core.store.result_path(job.id).exists()
        assert buttons.core.store.get(job.id) is not None  # the row stays


@pytest.mark.parametrize("press, refusal", [(Press(user=OTHER), NOT_YOURS_TO_DELETE),
                                            (Press(message=RESULT_MESSAGE + 1), NOT_THIS_MESSAGE),
                                            (Press(message=None), NOT_THIS_MESSAGE)])
async def test_delete_is_refused_to_others_and_on_another_message(tmp_path: Path, press: Press,
                                                                  refusal: str) -> None:
    buttons = handlers(tmp_path)
    job = made(buttons)
    await buttons.on_result(press, job.id, "delete")
    assert press.calls == [("message", f"⚠️ {refusal}", {"ephemeral": True})]
    assert buttons.core.store.result_path(job.id).is_file()


async def test_a_failed_delete_says_so_and_keeps_the_file(tmp_path: Path) -> None:
    import discord

    buttons = handlers(tmp_path)
    job, press = made(buttons), Press()

    async def refused() -> None:
        raise discord.HTTPException(SimpleNamespace(status=500, reason="boom"), "boom")
    press.delete_original_response = refused
    await buttons.on_result(press, job.id, "delete")
    assert press.calls == [("defer", {}), ("followup", "⚠️ The image could not be deleted; please try again.",
                                           {"ephemeral": True})]
    assert buttons.core.store.result_path(job.id).is_file()


async def test_delete_of_a_result_whose_file_is_already_gone_still_deletes_the_message(tmp_path: Path) -> None:
    buttons = handlers(tmp_path)
    job, press = made(buttons, result=False), Press()
    await buttons.on_result(press, job.id, "delete")
    assert press.calls == [("defer", {}), ("deleted",), ("followup", "🗑️ Image deleted.", {"ephemeral": True})]


async def test_a_delete_pressed_too_late_is_counted_and_changes_nothing(tmp_path: Path) -> None:
    import discord

    buttons = handlers(tmp_path)
    job, press = made(buttons), Press()
    press.created_at = discord.utils.utcnow()
    counted: list[str] = []
    press.client.metrics = SimpleNamespace(interaction_too_late=lambda: counted.append("late"))

    async def expired(**how) -> None:
        raise discord.NotFound(SimpleNamespace(status=404, reason="Not Found"),
                               {"code": 10062, "message": "Unknown interaction"})
    press.response.defer = expired
    await buttons.on_result(press, job.id, "delete")
    assert counted == ["late"] and press.calls == [] and buttons.core.store.result_path(job.id).is_file()


async def test_cancels_and_deletes_are_logged_with_who_and_what(tmp_path: Path, caplog) -> None:
    """The log is how admins see who removed what (docs/bot.md)."""
    import discord

    caplog.set_level("INFO", logger="bot.face.buttons")
    buttons = handlers(tmp_path)
    kept, refused, failed = made(buttons), made(buttons), made(buttons)
    await buttons.on_result(Press(), kept.id, "delete")
    await buttons.on_result(Press(message=RESULT_MESSAGE + 1), refused.id, "delete")
    await buttons.on_result(Press(message=None), refused.id, "delete")
    failing = Press()

    async def boom() -> None:
        raise discord.HTTPException(SimpleNamespace(status=500, reason="Server Error"), "boom")
    failing.delete_original_response = boom
    await buttons.on_result(failing, failed.id, "delete")
    core = buttons.core
    await core.start(FakeFrontend())
    core.work.emit(Ready("cpu"))
    try:
        waiting = await accepted(core, OWNER)
        await buttons.cancel(Press(), waiting.id)
    finally:
        await core.stop()
    said = [record.getMessage() for record in caplog.records if record.name == "bot.face.buttons"]
    assert said == [f"result of job {kept.id} deleted by user {OWNER}",
                    f"user {OWNER} pressed job {refused.id}'s Delete on message {RESULT_MESSAGE + 1}, not on its result",
                    f"user {OWNER} pressed job {refused.id}'s Delete on message None, not on its result",
                    f"deleting the result of job {failed.id} failed: 500 Server Error (error code: 0): boom",
                    f"job {waiting.id} cancel requested by user {OWNER}"]


async def test_cancel_ends_a_queued_job_stops_a_running_one_and_answers_for_others(tmp_path: Path) -> None:
    buttons = handlers(tmp_path)
    core = buttons.core
    await core.start(FakeFrontend())
    core.work.emit(Ready("cpu"))
    try:
        running, waiting = await accepted(core, OWNER), await accepted(core, OWNER)
        await until(lambda: core.work.submitted)
        jobs_server = running.job.guild_id  # tests.jobs.fakes.request's
        refused, queued_press = Press(user=OTHER, guild=jobs_server), Press()
        running_press = Press(user=OTHER, guild=jobs_server, manage=True)
        await buttons.cancel(refused, waiting.id)
        assert refused.calls == [("message", f"⚠️ {NOT_YOURS}", {"ephemeral": True})]
        await buttons.cancel(queued_press, waiting.id)
        assert core.store.get(waiting.id).state == CANCELLED and buttons.presenter.forgotten == [waiting.id]
        assert core.store.get(waiting.id).error == f"Cancelled by member{OWNER} while queued."
        assert queued_press.calls == [("edit", {"content": final_status(waiting.job), "attachments": [],
                                                "view": None})]
        await buttons.cancel(running_press, running.id)
        assert core.work.cancelled == [running.id] and buttons.presenter.replaced == [running.id]
        assert running.stopping_by == f"member{OTHER}"
        assert running_press.calls == [("edit", {"content": stopping(running.job, f"member{OTHER}"),
                                                 "attachments": [], "view": None})]
        finished = ("message", "This job has already finished.", {"ephemeral": True})
        for job_id in (waiting.id, new_job_id()):
            again = Press()
            await buttons.cancel(again, job_id)
            assert again.calls == [finished]
        # Active in the store but no longer held by the core (it ended while the press was on its way):
        orphan = made(buttons)
        orphan.state = QUEUED
        core.store.save(orphan, "state")
        late = Press()
        await buttons.cancel(late, orphan.id)
        assert late.calls == [finished] and core.store.get(orphan.id).state == QUEUED
    finally:
        await core.stop()


def submit(job_id: str, **values: str) -> Press:
    """An Edit form's submit with ``values`` typed in its fields."""
    import discord

    press = Press()
    press.type = discord.InteractionType.modal_submit
    press.data = {"custom_id": f"nst:edit:{job_id}", "components": [
        {"type": 1, "components": [{"type": 4, "custom_id": name, "value": value}]} for name, value in values.items()]}
    return press


async def test_an_edit_queues_the_changed_values(tmp_path: Path) -> None:
    buttons = handlers(tmp_path)
    parent = made(buttons, quality="standard", size=400)
    await buttons.on_edit_submit(submit(parent.id, strength="3.5", colours="Luminance"))
    child = queued(buttons)
    assert (child.options.strength, child.options.preserve_colors, child.options.size) == (3.5, "luminance", 400)
    assert child.quality == "standard" and child.options.seed == 7
    buttons.presenter.queued.clear()
    await buttons.on_edit_submit(submit(parent.id, quality="FAST"))
    child = queued(buttons)
    assert (child.quality, child.options.size, child.options.strength) == ("fast", 256, 2.0)
    assert child.notes == []  # the level's own size, not the parent's 400 px capped


async def test_an_edit_with_a_preset_uses_it_alone(tmp_path: Path) -> None:
    picture = tmp_path / "waves.png"
    make_style(40).save(picture)
    buttons = handlers(tmp_path)
    parent = made(buttons, styles=2, style_weights=(1.0, 3.0))
    press = submit(parent.id, preset="waves")
    press.client.presets.get = lambda name, guild: StylePreset("waves", "Waves", "", picture, False) \
        if (name, guild) == ("waves", SERVER) else None
    await buttons.on_edit_submit(press)
    (child, _, styles, _), = buttons.presenter.queued
    assert child.style_label == "preset *Waves*" and [style.size for style in styles] == [(40, 40)]
    assert child.options.style_weights == ()


@pytest.mark.parametrize("values, refusal", [
    ({}, "Nothing was changed; edit a value to make a new image."),
    ({"strength": "2"}, "Nothing was changed; edit a value to make a new image."),
    ({"strength": "lots"}, "Strength must be a number such as `1.5`, not `lots`."),
    ({"colours": "sepia"}, "Colours must be one of none, luminance, histogram, not `sepia`."),
    ({"preset": "nowhere"}, "There is no preset called `nowhere`; see /styles for the list."),
    ({"strength": "x" * 50}, f"Strength must be a number such as `1.5`, not `{'x' * 40}`."),
    ({"colours": "y" * 50}, f"Colours must be one of none, luminance, histogram, not `{'y' * 40}`."),
    ({"preset": "z" * 50}, f"There is no preset called `{'z' * 40}`; see /styles for the list."),
])
async def test_an_edit_that_changes_nothing_or_is_wrong_is_refused(tmp_path: Path, values: dict,
                                                                   refusal: str) -> None:
    buttons = handlers(tmp_path)
    press = submit(made(buttons).id, **values)
    await buttons.on_edit_submit(press)
    assert press.replies() == [f"⚠️ {refusal}"] and buttons.presenter.queued == []


async def test_an_edit_submit_elsewhere_is_refused_and_other_interactions_are_left_alone(tmp_path: Path) -> None:
    buttons = handlers(tmp_path)
    parent = made(buttons)
    moved = submit(parent.id, strength="3")
    moved.channel_id = CHANNEL + 1
    await buttons.on_edit_submit(moved)
    assert moved.replies() == [f"⚠️ {ELSEWHERE}"]
    other = submit(parent.id, strength="3")
    other.data["custom_id"] = "nst:menu:0123456789abcdef"
    await buttons.on_edit_submit(other)
    assert other.calls == [] and buttons.presenter.queued == []


def test_a_reroll_seed_is_the_next_one_wrapping_past_the_highest_and_never_zero() -> None:
    high = option_spec("seed").high
    assert [next_seed(seed) for seed in (0, 7, high - 1, high)] == [1, 8, high, 1]


async def test_a_rerun_is_noted_when_a_lower_cap_shrinks_it(tmp_path: Path) -> None:
    buttons = handlers(tmp_path, limits={"cooldown_seconds": 0, "max_size": 200})
    await buttons.on_result(Press(), made(buttons, size=256).id, "stronger")  # made before the cap was lowered
    assert queued(buttons).notes == ["size 256 px capped to 200 px for fast quality"]
    assert queued(buttons).options.size == 200


async def test_an_animated_rerun_gets_the_animation_caps(tmp_path: Path) -> None:
    buttons = handlers(tmp_path)
    frames = Animation((Image.new("RGB", (32, 24), "red"), Image.new("RGB", (32, 24), "blue")), (100, 100))
    await buttons.on_edit_submit(submit(made(buttons, content=frames).id, quality="high"))
    (child, content, _, _), = buttons.presenter.queued
    assert isinstance(content, Animation) and child.quality == "high" and child.options.size == 320
    assert child.notes == ["size 768 px capped to 320 px for an animation at high quality"]


async def test_a_rerun_counts_against_the_members_limits_where_the_parent_was_made(tmp_path: Path) -> None:
    buttons = handlers(tmp_path)
    buttons.settings.put_limits(SERVER, {"max_jobs_per_user": 1})  # tighter than the core's own 3
    core = buttons.core
    await core.start(FakeFrontend())
    core.work.emit(Ready("cpu"))
    try:
        await accepted(core, OTHER)
        press = Press(user=OTHER)
        await buttons.on_result(press, made(buttons).id, "reroll")
        assert press.replies()[0].startswith("⚠️ You already have 1 job(s) queued or running (the limit is 1")
        assert buttons.presenter.queued == []
    finally:
        await core.stop()


async def test_a_rerun_that_could_need_more_memory_than_the_engine_may_use_is_refused(tmp_path: Path) -> None:
    from nst_engine.cost import worst_case_cost

    probe = handlers(tmp_path / "probe")
    peak = worst_case_cost(made(probe, styles=2).options, 2).peak_mb
    buttons = handlers(tmp_path, memory_budget_mb=peak / 2)
    press = Press()
    await buttons.on_result(press, made(buttons, styles=2).id, "reroll")
    assert press.replies()[0].startswith("⚠️ This request could need about")
    assert buttons.presenter.queued == []

"""Who may press what, on the checks themselves (fast; the slow end-to-end runs press the real buttons): Cancel
and Delete for the requester or Manage Server in the job's own server, result buttons only in the job's channel,
re-runs only while the inputs are kept, menus only for the member who opened them where they opened them, and
custom ids that name nothing but a well-formed id."""

from __future__ import annotations

import re
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from bot.config import parse_config
from bot.errors import UserError
from bot.face.buttons import ELSEWHERE, SERVERS_ONLY, ButtonHandlers, may_remove
from bot.face.cogs.context_menu import EXPIRED, ContextMenuCog
from bot.face.cogs.context_menu import ELSEWHERE as MENU_ELSEWHERE, NOT_YOURS as MENU_NOT_YOURS
from bot.face.menu_picks import ImageLink, Pick, PickStore, new_pick_id
from bot.face.views import CancelButton, ResultButton, StylesPageButton, result_marker
from bot.jobs.model import DONE, Job, new_job_id
from bot.jobs.store import JobStore
from nst_engine.options import StylizeOptions
from tests.conftest import make_content, make_style

OWNER, OTHER, SERVER, CHANNEL = 11, 22, 33, 44


def press(user: int, guild: int | None = SERVER, channel: int = CHANNEL, manage: bool = False) -> SimpleNamespace:
    """What the checks read of a discord.Interaction."""
    return SimpleNamespace(user=SimpleNamespace(id=user), guild_id=guild, channel_id=channel,
                           permissions=SimpleNamespace(manage_guild=manage))


def job(guild: int | None = SERVER, channel: int = CHANNEL) -> Job:
    return Job(new_job_id(), OWNER, "owner", guild, channel, "preset", "fast", StylizeOptions(size=64))


@pytest.mark.parametrize("who, allowed", [
    (press(OWNER), True),
    (press(OWNER, guild=99, manage=False), True),  # the requester, wherever the press comes from
    (press(OTHER, manage=True), True),  # a moderator of the job's own server
    (press(OTHER, manage=False), False),
    (press(OTHER, guild=99, manage=True), False),  # a moderator of some other server
])
def test_cancel_and_delete_are_for_the_requester_or_manage_server_in_the_jobs_server(who, allowed) -> None:
    assert may_remove(who, job()) is allowed


def test_no_one_but_the_requester_removes_a_job_made_in_direct_messages() -> None:
    assert may_remove(press(OTHER, guild=None, manage=True), job(guild=None)) is False
    assert may_remove(press(OWNER, guild=None), job(guild=None)) is True


def handlers(tmp_path: Path, allow_dms: bool = True, store: JobStore | None = None) -> ButtonHandlers:
    config = parse_config({"storage": {"data_dir": str(tmp_path / "data"), "retention_days": 7},
                           "discord": {"allow_dms": allow_dms}}, tmp_path)
    core = SimpleNamespace(store=store, find=store.get if store else None)
    return ButtonHandlers(config, core, presenter=None, settings=None)


@pytest.mark.parametrize("where", [press(OTHER, channel=CHANNEL + 1), press(OTHER, guild=SERVER + 1),
                                   press(OWNER, guild=None)])
def test_result_buttons_work_only_in_the_jobs_own_channel(tmp_path: Path, where) -> None:
    with pytest.raises(UserError, match=re.escape(ELSEWHERE)):
        handlers(tmp_path)._check_place(where, job())
    handlers(tmp_path)._check_place(press(OTHER), job())


def test_result_buttons_in_direct_messages_follow_allow_dms(tmp_path: Path) -> None:
    handlers(tmp_path, allow_dms=True)._check_place(press(OWNER, guild=None), job(guild=None))
    with pytest.raises(UserError, match=re.escape(SERVERS_ONLY)):
        handlers(tmp_path, allow_dms=False)._check_place(press(OWNER, guild=None), job(guild=None))


def test_a_rerun_is_refused_once_the_inputs_are_past_retention(tmp_path: Path) -> None:
    store = JobStore(tmp_path / "data")
    old, recent, deleted = job(), job(), job()
    old.created = time.time() - 8 * 86400
    for each in (old, recent, deleted):
        each.state = DONE
        store.add(each)
        store.save_inputs(each.id, make_content(32, 24), make_style(24))
    store.purge(retention_days=7)  # what the bot's purge loop does
    (store.content_path(deleted.id)).unlink()  # the inputs of a result removed with Delete
    buttons = handlers(tmp_path, store=store)
    assert buttons._kept_original(recent.id) == recent
    for gone in (old.id, deleted.id):
        with pytest.raises(UserError, match=r"no longer kept \(they are kept 7 days\)"):
            buttons._kept_original(gone)


def test_a_menu_answers_only_its_opener_in_the_channel_it_was_opened_in(tmp_path: Path) -> None:
    cog = ContextMenuCog.__new__(ContextMenuCog)
    cog.picks = PickStore(tmp_path)
    opened = Pick(new_pick_id(), OWNER, SERVER, CHANNEL, 1, (ImageLink("https://cdn/a.png", "a.png", None, 1),),
                  0, "fast", time.time())
    cog.picks.add(opened)
    assert cog._own_pick(press(OWNER), opened.id) == opened
    for who, refusal in [(press(OTHER), MENU_NOT_YOURS), (press(OWNER, channel=CHANNEL + 1), MENU_ELSEWHERE),
                         (press(OWNER, guild=SERVER + 1), MENU_ELSEWHERE), (press(OWNER, guild=None), MENU_ELSEWHERE)]:
        with pytest.raises(UserError, match=re.escape(refusal)):
            cog._own_pick(who, opened.id)
    with pytest.raises(UserError, match=re.escape(EXPIRED)):
        cog._own_pick(press(OWNER), new_pick_id())
    cog.picks.close()


@pytest.mark.parametrize("item, custom_id, fields", [
    (ResultButton, "nst:again:0123456789abcdef:delete", {"job": "0123456789abcdef", "way": "delete"}),
    (ResultButton, "nst:again:0123456789abcdef:upscale", {"job": "0123456789abcdef", "way": "upscale"}),
    (ResultButton, "nst:again:0123456789abcdef:shutdown", None),
    (ResultButton, "nst:again:../../etc/passwdxx:delete", None),
    (ResultButton, "nst:again:0123456789abcde:delete", None),  # 15 digits
    (ResultButton, "nst:again:0123456789ABCDEF:info", None),
    (CancelButton, "nst:cancel:0123456789abcdef", {"job": "0123456789abcdef"}),
    (CancelButton, "nst:cancel:0123456789abcdef0", None),
    (CancelButton, "nst:cancel:*", None),
    (StylesPageButton, "nst:styles:on:12", {"way": "on", "page": "12"}),
    (StylesPageButton, "nst:styles:on:12345", None),
    (StylesPageButton, "nst:styles:up:1", None),
])
def test_custom_ids_match_only_well_formed_ids(item, custom_id, fields) -> None:
    match = item.__discord_ui_compiled_template__.fullmatch(custom_id)
    assert (match.groupdict() if match else None) == fields


async def test_the_buttons_custom_ids_are_what_their_templates_read_back() -> None:
    job_id = new_job_id()
    for way in ResultButton.LOOKS:
        button = ResultButton(job_id, way)
        assert button.custom_id == result_marker(job_id) + way == f"nst:again:{job_id}:{way}"
        assert ResultButton.__discord_ui_compiled_template__.fullmatch(button.custom_id)["way"] == way
    assert CancelButton(job_id).custom_id == f"nst:cancel:{job_id}"
    assert StylesPageButton("back", 3).custom_id == "nst:styles:back:3"

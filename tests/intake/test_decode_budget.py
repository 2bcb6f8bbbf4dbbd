"""A decode budget per member: decoder CPU time (accepted or refused uploads alike) counted against the member
over a window, with real decoder processes."""

from __future__ import annotations

import pytest

from bot.intake.decode_budget import DecodeBudget, DecodeBudgetSpent
from bot.intake.decoder import DecodeRequest, DecoderPool
from nst_engine.errors import ImageError
from tests.intake import hostile_files

pytestmark = pytest.mark.timeout(120)


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def request(requester: int) -> DecodeRequest:
    return DecodeRequest("content image", max_pixels=25_000_000, long_side=256, max_aspect=20, requester=requester)


async def test_a_member_whose_refused_uploads_used_the_budget_waits_and_others_do_not() -> None:
    clock = Clock()
    pool = DecoderPool(workers=1, time_limit=0.05, memory_limit=1 << 30, budget=DecodeBudget(0.08, 600, clock))
    await pool.start()
    slow = hostile_files.sixteen_bit_grey_png(5000, 5000)  # over the 0.15 s wall limit: stopped, charged 0.05 s
    ordinary = hostile_files.encoded(hostile_files.noise(64, 64), "PNG")
    try:
        for _ in range(2):
            with pytest.raises(ImageError, match="took too long to decode"):
                await pool.decode(slow, request(1))
        with pytest.raises(DecodeBudgetSpent, match=r"limit is 0.08 s per 10 minutes.*upload again <t:\d+:R>"):
            await pool.decode(ordinary, request(1))
        assert (await pool.decode(ordinary, request(2))).size == (64, 64)  # someone else is not held back
        clock.now += 601
        assert (await pool.decode(ordinary, request(1))).size == (64, 64)  # the window moved on
    finally:
        await pool.close()


async def test_ordinary_decodes_are_charged_what_they_cost() -> None:
    budget = DecodeBudget(100, 600, Clock())
    pool = DecoderPool(workers=1, time_limit=10, memory_limit=1 << 30, budget=budget)
    await pool.start()
    try:
        await pool.decode(hostile_files.encoded(hostile_files.noise(600, 400), "JPEG"), request(7))
        ((_, charged),) = budget._charges[7]
        assert 0 < charged < 10  # the CPU time the worker measured, not the limit
    finally:
        await pool.close()


def test_the_reply_says_when_the_oldest_charges_age_out() -> None:
    clock = Clock()
    budget = DecodeBudget(10, 100, clock)
    budget.charge(5, 6)
    clock.now += 30
    budget.charge(5, 6)
    with pytest.raises(DecodeBudgetSpent, match=rf"<t:{int(clock.now - 30 + 100) + 1}:R>"):
        budget.check(5, "style image")
    clock.now += 70
    budget.check(5, "style image")  # the first charge aged out: 6 s of 10 left

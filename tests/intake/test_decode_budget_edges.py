"""The decode budget's edges, found by mutation testing (docs/mutation-report.md): a charge that reaches the
budget exactly refuses, a disabled budget refuses nothing, aged-out members are forgotten, and the reply's time is
when the member is really under the budget again."""

from __future__ import annotations

import pytest

from bot.intake.decode_budget import DecodeBudget, DecodeBudgetSpent


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def test_reaching_the_budget_exactly_refuses() -> None:
    budget = DecodeBudget(10, 100, Clock())
    budget.charge(5, 10)
    with pytest.raises(DecodeBudgetSpent):
        budget.check(5, "content image")


def test_a_budget_of_zero_seconds_is_off() -> None:
    budget = DecodeBudget(0, 100, Clock())
    budget.charge(5, 1000)
    budget.check(5, "content image")


def test_nothing_is_kept_for_anonymous_or_free_decodes_nor_for_members_whose_charges_aged_out() -> None:
    clock = Clock()
    budget = DecodeBudget(10, 100, clock)
    budget.charge(None, 5)
    budget.charge(6, 0)
    budget.charge(7, 3)
    assert set(budget._charges) == {7}
    clock.now += 100
    budget.check(7, "content image")
    assert not budget._charges  # one entry per member who ever uploaded would grow without end


def test_the_reply_names_the_time_the_member_is_under_the_budget_not_only_at_it() -> None:
    clock = Clock()
    budget = DecodeBudget(10, 100, clock)
    first = clock.now
    budget.charge(5, 6)
    clock.now += 10
    budget.charge(5, 4)
    clock.now += 10
    budget.charge(5, 6)
    # Once the first 6 s age out, 10 s are left: still at the budget; only after the second charge ages out too
    # (at first + 10 + 100) is the member under it.
    with pytest.raises(DecodeBudgetSpent, match=rf"<t:{int(first + 10 + 100) + 1}:R>"):
        budget.check(5, "style image")

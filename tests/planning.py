"""Plan a step the way the shell does: from the store's objects alone, then with each fact the planner asks for.

The planner tests step through this, with fake worlds that leave every unfetched fact
unset (None), so a phase that reads a fact it did not ask for fails its test.
"""

from __future__ import annotations

from collections.abc import Callable

from secretrotation.core import planner, world
from secretrotation.core.plan import Plan
from secretrotation.core.world import Observed, Resource


def planner_step(resource: Resource, observe: Callable[[world.Needs], Observed]) -> Plan:
    """Plan as the shell does: from the store's objects alone first, then with each fact the planner asks for."""
    return planned_with_facts(resource, observe)[0]


def planned_with_facts(resource: Resource, observe: Callable[[world.Needs], Observed]) -> tuple[Plan, world.Needs]:
    """The plan, and every fact the planner asked for on the way to it."""
    needs = world.Needs()
    for _ in range(64):  # each round adds at least one fact or name
        plan = planner.plan(resource, observe(needs))
        if not plan.needs:
            return plan, needs
        assert not plan.needs <= needs, f"the planner asked again for what it was given: {plan.needs}"
        assert (plan.actions, plan.events) == ((), ()), "a plan that needs facts decides nothing"
        assert plan.status == dict(resource.status), "a plan that needs facts writes nothing"
        needs = needs | plan.needs
    raise AssertionError("the planner kept asking for facts")

"""The lifecycle under any mix of samples (in order, late, early within the window), silence sweeps and
an operator's decommissioning: relocations only once settled and bounded per hour, never a doubled
transition, never one dated before the device's previous one."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from streams.lifecycle import (
    DeviceState,
    Observation,
    Rules,
    Transition,
    commission,
    decommission,
    observe,
    sweep,
)

T0 = datetime(2026, 11, 1, tzinfo=UTC)
RULES = Rules(
    busy_util_pct=5.0,
    sustain=timedelta(seconds=30),
    offline_after=timedelta(seconds=60),
    decommission_after=timedelta(seconds=600),
    relocate_confirm=3,
    relocate_max_per_hour=4,
)


def at(sec: float) -> datetime:
    return T0 + timedelta(seconds=sec)


def sample(sec: float, node: str = "n1", util: float = 50.0) -> Observation:
    return Observation(at(sec), node, "s1" if node == "n1" else "s2", util, "ok")


def feed(state: DeviceState, samples: list[Observation]) -> tuple[DeviceState, list[Transition]]:
    out: list[Transition] = []
    for o in samples:
        state, events = observe(state, o, RULES)
        out += events
    return state, out


def moves(events: list[Transition]) -> list[Transition]:
    return [e for e in events if e.event == "relocated"]


def test_a_move_is_a_relocation_only_after_three_samples_in_a_row_from_the_new_node() -> None:
    state, _ = commission(sample(0), RULES)
    state, events = feed(state, [sample(10, "n2"), sample(20, "n2")])
    assert moves(events) == []
    assert state.node_id == "n1"
    state, events = feed(state, [sample(30, "n2")])
    assert [(e.event, e.node_id, e.at) for e in moves(events)] == [("relocated", "n2", at(30))]
    assert moves(events)[0].details["since"] == at(10).isoformat()
    assert state.node_id == "n2"


def test_a_device_flipping_between_two_nodes_every_sample_records_nothing() -> None:
    state, _ = commission(sample(0), RULES)
    state, events = feed(state, [sample(10 * i, "n2" if i % 2 else "n1") for i in range(1, 500)])
    assert moves(events) == []
    assert state.node_id == "n1"


def test_settled_moves_beyond_the_hourly_cap_are_summarised_in_the_next_recorded_relocation() -> None:
    state, _ = commission(sample(0), RULES)
    samples = []
    for leg in range(12):  # twelve settled moves within one hour, then one in the next hour
        samples += [sample(100 * leg + 10 * k, "n2" if leg % 2 == 0 else "n1") for k in range(1, 4)]
    samples += [sample(3600 + 10 * k, "n2") for k in range(1, 4)]
    state, events = feed(state, samples)
    moved = moves(events)
    assert len(moved) == 5  # the cap (4) in the first hour, then the first of the next
    assert moved[3].details.get("flapping") is True
    # over the cap the device stays where the ledger has it (n1): its four moves to n2 are not recorded
    assert moved[4].details["moves_not_recorded"] == 4
    assert [e.details["from_node"] for e in moved] == ["n1", "n2", "n1", "n2", "n1"]
    assert state.node_id == "n2"


def test_a_decommissioned_device_that_reports_again_returns_without_a_second_offline() -> None:
    state, _ = commission(sample(0), RULES)
    state, events = sweep(state, at(200), RULES)
    assert [e.event for e in events] == ["offline"]
    state, events = decommission(state, at(300), "retired")
    assert [e.event for e in events] == ["decommissioned"]
    state, events = feed(state, [sample(250), sample(300), sample(400)])
    assert [(e.event, e.at) for e in events] == [("returned", at(400))]


def test_an_operator_clock_behind_event_time_dates_the_decommissioning_after_the_last_sample() -> None:
    state, _ = commission(sample(0), RULES)
    state, _ = feed(state, [sample(10), sample(20)])
    _, events = decommission(state, at(5), "retired")
    assert [(e.event, e.at) for e in events] == [("decommissioned", at(20))]


_ACTIONS = st.lists(
    st.one_of(
        st.tuples(st.just("sample"), st.integers(-120, 400), st.sampled_from(["n1", "n2"]), st.sampled_from([0, 50])),
        st.tuples(st.just("sweep"), st.integers(0, 2000), st.just(""), st.just(0)),
        st.tuples(st.just("decommission"), st.integers(-120, 400), st.just(""), st.just(0)),
    ),
    max_size=60,
)


@settings(max_examples=400, deadline=None)
@given(_ACTIONS)
def test_no_interleaving_doubles_a_transition_or_dates_one_before_its_predecessor(
    actions: list[tuple[str, int, str, int]],
) -> None:
    state, out = commission(sample(0), RULES)
    clock = 0  # the newest event time so far; samples reach back before it (late) or ahead (early)
    for kind, offset, node, util in actions:
        if kind == "sample":
            state, events = observe(state, sample(max(clock + offset, 0), node, util), RULES)
        elif kind == "sweep":
            state, events = sweep(state, at(clock + offset), RULES)
        else:
            state, events = decommission(state, at(max(clock + offset, 0)), "operator")
        clock = max(clock, int((state.last_seen - T0).total_seconds()))
        out += events
    for before, after in itertools.pairwise(out):
        assert after.at >= before.at, (before, after)
        assert (before.event, before.at, before.details) != (after.event, after.at, after.details)
    availability = [e.event for e in out if e.event in {"offline", "returned", "decommissioned"}]
    for before, after in itertools.pairwise(availability):
        assert before != after, availability
        assert not (before == "decommissioned" and after == "offline"), availability  # no return in between
    offline_since = [e.details["last_seen"] for e in out if e.event == "offline"]
    assert len(offline_since) == len(set(offline_since))  # never offline twice for the same last sample

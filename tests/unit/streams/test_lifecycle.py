"""The device lifecycle state machine: which transitions a sequence of samples produces, at what time."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from streams.lifecycle import DeviceState, Observation, Rules, commission, observe, sweep

T0 = datetime(2026, 11, 1, tzinfo=UTC)
RULES = Rules(
    busy_util_pct=5.0,
    sustain=timedelta(seconds=30),
    offline_after=timedelta(seconds=60),
    decommission_after=timedelta(days=1),
)


def obs(
    sec: float, util: float | None = 50.0, node: str = "n1", site: str = "s1", health: str | None = "ok"
) -> Observation:
    return Observation(T0 + timedelta(seconds=sec), node, site, util, health)


def run(observations: list[Observation]) -> tuple[DeviceState, list[tuple[str, float]]]:
    state, events = commission(observations[0], RULES)
    out = [(e.event, (e.at - T0).total_seconds()) for e in events]
    for o in observations[1:]:
        state, events = observe(state, o, RULES)
        out += [(e.event, (e.at - T0).total_seconds()) for e in events]
    return state, out


def test_first_sample_commissions_and_sustained_load_makes_it_active() -> None:
    state, events = run([obs(s) for s in range(0, 50, 10)])
    assert events == [("commissioned", 0), ("active", 30)]
    assert state.status == "active"


def test_short_idle_dip_does_not_flip_an_active_device() -> None:
    utils = [50, 50, 50, 50, 1, 1, 50, 50]
    _, events = run([obs(i * 10, u) for i, u in enumerate(utils)])
    assert [e for e, _ in events] == ["commissioned", "active"]


def test_sustained_idle_after_active_is_recorded_as_idle() -> None:
    utils = [50, 50, 50, 50, 1, 1, 1, 1, 1]
    _, events = run([obs(i * 10, u) for i, u in enumerate(utils)])
    assert events == [("commissioned", 0), ("active", 30), ("idle", 70)]


def test_gap_longer_than_the_offline_threshold_is_offline_then_returned() -> None:
    state, events = run([obs(0), obs(10), obs(200)])
    assert ("offline", 70) in events  # last seen at 10 s + 60 s threshold
    assert ("returned", 200) in events
    assert state.status == "returned"


def test_sweep_marks_a_silent_device_offline_and_later_decommissioned() -> None:
    state, _ = commission(obs(0), RULES)
    state, events = sweep(state, T0 + timedelta(seconds=30), RULES)
    assert events == []
    state, events = sweep(state, T0 + timedelta(seconds=61), RULES)
    assert [(e.event, e.at) for e in events] == [("offline", T0 + timedelta(seconds=60))]
    state, events = sweep(state, T0 + timedelta(days=2), RULES)
    assert [e.event for e in events] == ["decommissioned"]
    assert state.status == "decommissioned"


def test_node_change_is_a_relocation_naming_where_it_came_from() -> None:
    _, events_full = run([obs(0), obs(10, node="n2", site="s2")])
    state, _ = commission(obs(0), RULES)
    _, events = observe(state, obs(10, node="n2", site="s2"), RULES)
    assert [e.event for e in events] == ["relocated"]
    assert events[0].details == {
        "from_node": "n1",
        "from_site": "s1",
        "since": (T0 + timedelta(seconds=10)).isoformat(),
    }
    assert ("relocated", 10) in events_full


def test_health_change_records_both_states_and_unknown_health_is_not_a_change() -> None:
    state, _ = commission(obs(0, health="ok"), RULES)
    state, events = observe(state, obs(10, health=None), RULES)
    assert events == []
    _, events = observe(state, obs(20, health="failed"), RULES)
    assert [(e.event, e.details) for e in events] == [("health_changed", {"from": "ok", "to": "failed"})]


def test_replayed_older_sample_changes_nothing() -> None:
    state, _ = run([obs(0), obs(10), obs(20)])
    again, events = observe(state, obs(10, util=0.0, health="failed"), RULES)
    assert events == [] and again == state


def test_the_steady_shortcut_agrees_with_observe_on_every_kind_of_sample() -> None:
    from itertools import product

    from streams.lifecycle import steady

    rules = Rules(
        busy_util_pct=5.0,
        sustain=timedelta(seconds=30),
        offline_after=timedelta(seconds=60),
        decommission_after=timedelta(days=30),
    )
    t0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
    statuses = ["commissioned", "active", "idle", "offline", "returned", "decommissioned"]
    shortcuts: set[str] = set()
    for status, util_state, util_since, health, gap, node, util, new_health in product(
        statuses,
        ["busy", "quiet", None],
        [timedelta(minutes=5), timedelta(seconds=5)],  # busy/quiet for longer than `sustain`, or not yet
        ["ok", "failed", None],
        [-5, 10, 61],
        ["n1", "n2"],
        [None, 1.0, 50.0],
        [None, "ok", "failed"],
    ):
        state = DeviceState(status, t0 - timedelta(minutes=5), t0, "n1", "s1", util_state, t0 - util_since, health)
        obs = Observation(t0 + timedelta(seconds=gap), node, "s1", util, new_health)
        new, events = observe(state, obs, rules)
        if steady(state, t0, obs.at, node, "s1", util, new_health, rules):
            assert events == [] and new == replace(state, last_seen=max(t0, obs.at)), (state, obs)
            shortcuts.add(status)
    # the shortcut covers every status a device spends its working life in
    assert {"commissioned", "active", "idle", "returned"} <= shortcuts

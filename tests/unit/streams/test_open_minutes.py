"""Open minutes: a node's minute is rolled up once, when the node has moved on, when it went quiet, or
when its partition went to another worker; a rolled-back batch changes nothing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from streams.rollups import OpenMinutes

M0 = datetime(2026, 11, 3, 5, 0, tzinfo=UTC)
SEC = timedelta(seconds=1)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _batch(
    minutes: OpenMinutes, node: str, at: datetime, devices: tuple[int, ...], previous: datetime | None = None
) -> set[tuple[int, datetime]]:
    stored = {node: {at.replace(second=0): set(devices)}}
    prev = {node: previous} if previous is not None else {}
    newest = {node: max(at, previous) if previous is not None else at}
    plan = minutes.plan_batch(stored, {node: devices}, prev, newest, {node: 2})
    minutes.commit(plan)
    return plan.close


def test_a_minute_closes_once_when_the_node_sends_its_next_minute() -> None:
    minutes = OpenMinutes(idle_after_s=30, clock=Clock())
    closed = [
        _batch(minutes, "n1", M0 + 10 * k * SEC, (1, 2), M0 + 10 * (k - 1) * SEC if k else None) for k in range(7)
    ]
    assert closed[:6] == [set()] * 6  # 05:00:00 .. 05:00:50 stay open
    assert closed[6] == {(1, M0), (2, M0)}  # 05:01:00 closes 05:00, once
    assert len(minutes) == 2  # 05:01 for both devices


def test_the_first_batch_of_a_node_reopens_the_minute_of_its_previous_snapshot() -> None:
    minutes = OpenMinutes(idle_after_s=30, clock=Clock())
    # another worker stored 05:00:50 and died before the node moved on; this worker meets the node at 05:01:00
    closed = _batch(minutes, "n1", M0 + 60 * SEC, (1, 2), previous=M0 + 50 * SEC)
    assert closed == {(1, M0), (2, M0)}


def test_the_sweep_closes_quiet_nodes_and_nodes_of_partitions_gone_elsewhere() -> None:
    clock = Clock()
    minutes = OpenMinutes(idle_after_s=30, clock=clock)
    _batch(minutes, "quiet", M0, (1,))
    clock.now += 20
    _batch(minutes, "busy", M0 + 20 * SEC, (2,))
    clock.now += 15  # quiet: 35 s without a batch, busy: 15 s
    plan = minutes.plan_sweep(assigned=[2])
    assert plan.close == {(1, M0)}
    minutes.commit(plan)
    assert minutes.plan_sweep(assigned=[2]).close == set()
    assert minutes.plan_sweep(assigned=[0, 1]).close == {(2, M0)}  # partition 2 went to another worker
    assert minutes.plan_sweep(assigned=None).close == {(2, M0)}  # everything


def test_a_plan_not_committed_leaves_the_open_minutes_as_they_were() -> None:
    minutes = OpenMinutes(idle_after_s=30, clock=Clock())
    _batch(minutes, "n1", M0, (1,))
    plan = minutes.plan_batch({"n1": {M0 + 60 * SEC: {1}}}, {"n1": (1,)}, {"n1": M0}, {"n1": M0 + 60 * SEC}, {})
    assert plan.close == {(1, M0)}
    # the transaction rolled back: the retry of the same batch closes the same minute
    again = minutes.plan_batch({"n1": {M0 + 60 * SEC: {1}}}, {"n1": (1,)}, {"n1": M0}, {"n1": M0 + 60 * SEC}, {})
    assert again.close == {(1, M0)}


def test_newly_assigned_partitions_recompute_their_nodes_a_chunk_at_a_time_skipping_nodes_met() -> None:
    minutes = OpenMinutes(idle_after_s=30, clock=Clock())
    assert minutes.uncovered([1, 2]) == [1, 2]
    minutes.queue_recovery({1: ["a", "b", "c"], 2: []})
    assert minutes.uncovered([1, 2]) == []  # queued
    _batch(minutes, "b", M0, (7,))  # b sends: its first batch takes care of it
    assert minutes.recovery_chunk(limit=1) == ["a"]
    minutes.recovered(["a"])
    assert minutes.recovery_chunk(limit=5) == ["c"]
    minutes.recovered(["c"])
    assert minutes.recovery_chunk(limit=5) == [] and minutes.uncovered([1, 2, 3]) == [3]
    minutes.forget_partitions([2, 3])  # partition 1 went elsewhere: recomputed again when it comes back
    assert minutes.uncovered([1, 2, 3]) == [1, 3]


def test_a_node_of_a_partition_gone_elsewhere_is_met_anew_when_it_comes_back() -> None:
    minutes = OpenMinutes(idle_after_s=30, clock=Clock())
    _batch(minutes, "n1", M0 + 50 * SEC, (1,))  # partition 2
    minutes.commit(minutes.plan_sweep(assigned=[0]))  # partition 2 lost: its open minute closed, the node forgotten
    # back on this worker after another one stored 05:01:20: the minute of that snapshot is reopened
    closed = _batch(minutes, "n1", M0 + 150 * SEC, (1,), previous=M0 + 80 * SEC)
    assert closed == {(1, M0 + 60 * SEC)}

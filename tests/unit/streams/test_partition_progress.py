"""The silence watermark: a lagging partition holds it back, a quiet one does not, it never runs ahead."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from streams.progress import PartitionProgress

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_lagging_partition_holds_the_watermark_back() -> None:
    clock = Clock()
    prog = PartitionProgress(idle_after_s=20, clock=clock)
    prog.update(0, T0 + timedelta(minutes=30))  # partition 0 read to the end
    prog.update(1, T0 + timedelta(minutes=2))  # partition 1 still being read
    assert prog.watermark([0, 1]) == T0 + timedelta(minutes=2)


def test_a_quiet_partition_stops_holding_it_back_but_it_never_runs_ahead() -> None:
    clock = Clock()
    prog = PartitionProgress(idle_after_s=20, clock=clock)
    prog.update(0, T0 + timedelta(minutes=5))
    prog.update(1, T0 + timedelta(minutes=1))
    clock.now = 30.0
    prog.update(0, T0 + timedelta(minutes=6))  # partition 1 went quiet (its nodes are silent)
    assert prog.watermark([0, 1]) == T0 + timedelta(minutes=6)
    clock.now = 100.0  # everything quiet: the newest event time seen, not the wall clock
    assert prog.watermark([0, 1]) == T0 + timedelta(minutes=6)


def test_only_the_partitions_a_worker_owns_count() -> None:
    prog = PartitionProgress(idle_after_s=20, clock=Clock())
    prog.update(0, T0)
    prog.update(3, T0 + timedelta(minutes=9))
    assert prog.watermark([3]) == T0 + timedelta(minutes=9)
    assert prog.watermark([1, 2]) is None

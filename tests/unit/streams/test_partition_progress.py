"""The silence watermark: a lagging partition holds it back, a quiet one does not, it never runs ahead, and
no node's clock moves it for the others."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from streams.progress import PartitionProgress

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def WALL() -> datetime:  # noqa: N802 -- a clock, named like the constant it stands for
    return T0 + timedelta(hours=1)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_lagging_partition_holds_the_watermark_back() -> None:
    clock = Clock()
    prog = PartitionProgress(idle_after_s=20, clock=clock, wall=WALL)
    prog.update(0, "n0", T0 + timedelta(minutes=30))  # partition 0 read to the end
    prog.update(1, "n1", T0 + timedelta(minutes=2))  # partition 1 still being read
    assert prog.watermark([0, 1]) == T0 + timedelta(minutes=2)


def test_a_quiet_partition_stops_holding_it_back_but_it_never_runs_ahead() -> None:
    clock = Clock()
    prog = PartitionProgress(idle_after_s=20, clock=clock, wall=WALL)
    prog.update(0, "n0", T0 + timedelta(minutes=5))
    prog.update(1, "n1", T0 + timedelta(minutes=1))
    clock.now = 30.0
    prog.update(0, "n0", T0 + timedelta(minutes=6))  # partition 1 went quiet (its nodes are silent)
    assert prog.watermark([0, 1]) == T0 + timedelta(minutes=6)
    clock.now = 100.0  # everything quiet: the newest event time seen, not the wall clock
    assert prog.watermark([0, 1]) == T0 + timedelta(minutes=6)


def test_only_the_partitions_a_worker_owns_count() -> None:
    prog = PartitionProgress(idle_after_s=20, clock=Clock(), wall=WALL)
    prog.update(0, "n0", T0)
    prog.update(3, "n3", T0 + timedelta(minutes=9))
    assert prog.watermark([3]) == T0 + timedelta(minutes=9)
    assert prog.watermark([1, 2]) is None


def test_a_node_whose_clock_runs_ahead_moves_the_watermark_no_further_than_the_wall_clock() -> None:
    clock = Clock()
    prog = PartitionProgress(idle_after_s=20, clock=clock, wall=WALL)
    prog.update(0, "ahead", T0 + timedelta(hours=5))  # alone on its partition, far ahead
    assert prog.watermark([0]) == WALL()


def test_a_minority_of_nodes_ahead_does_not_move_their_partitions_progress() -> None:
    clock = Clock()
    prog = PartitionProgress(idle_after_s=20, clock=clock, wall=WALL)
    for name in ("a", "b", "c"):
        prog.update(0, name, T0 + timedelta(minutes=2))
    prog.update(0, "ahead", T0 + timedelta(minutes=59))
    prog.update(1, "d", T0 + timedelta(minutes=3))
    prog.update(1, "ahead-too", T0 + timedelta(minutes=58))
    assert prog.watermark([0, 1]) == T0 + timedelta(minutes=2)
    clock.now = 100.0  # everything quiet: still the honest nodes' progress
    assert prog.watermark([0, 1]) == T0 + timedelta(minutes=3)


def test_a_silent_node_stops_holding_its_partition_back() -> None:
    clock = Clock()
    prog = PartitionProgress(idle_after_s=20, clock=clock, wall=WALL)
    prog.update_many([(0, "gone", T0), (0, "x", T0), (0, "y", T0)])
    clock.now = 30.0
    prog.update_many([(0, "x", T0 + timedelta(minutes=1)), (0, "y", T0 + timedelta(minutes=1))])
    assert prog.watermark([0]) == T0 + timedelta(minutes=1)

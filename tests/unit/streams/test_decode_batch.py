"""The ingest's pure half: which raw messages are stored and which are dead-lettered, and why."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from collectors.simulator import SimulatedFleet
from kcloud.timewindow import TimeWindow
from streams.ingest import RawMessage, decode_batch

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
WINDOW = TimeWindow(max_ahead=timedelta(seconds=300), max_behind=timedelta(days=30))


def _msg(value: bytes, offset: int = 0) -> RawMessage:
    return RawMessage(value=value, key=b"sim-000000", topic="kcloud.telemetry.v1", partition=2, offset=offset)


def _snapshot_at(at: datetime) -> bytes:
    return SimulatedFleet(nodes=1, seed=5).snapshot(0, at, seq=1).to_json_bytes()


def test_valid_snapshots_pass_and_invalid_ones_are_dead_lettered_with_position() -> None:
    good = _snapshot_at(NOW - timedelta(minutes=1))
    good_snaps, letters = decode_batch([_msg(good, 10), _msg(b"\xff\xfe garbage", 11)], now=NOW, window=WINDOW)
    assert [s.node.node_id for s in good_snaps] == ["sim-000000"]
    assert len(letters) == 1
    dl = letters[0]
    assert (dl.reason, dl.partition, dl.offset, dl.key) == ("invalid_json", 2, 11, "sim-000000")
    assert dl.original() == b"\xff\xfe garbage"


def test_snapshot_from_the_future_is_dead_lettered() -> None:
    _, letters = decode_batch([_msg(_snapshot_at(NOW + timedelta(days=2)))], now=NOW, window=WINDOW)
    assert [dl.reason for dl in letters] == ["timestamp_out_of_range"]
    assert "ahead of the receiver's clock" in letters[0].detail


def test_snapshot_just_past_the_clock_ahead_limit_is_dead_lettered_and_one_inside_it_is_kept() -> None:
    inside = _snapshot_at(NOW + timedelta(seconds=299))
    outside = _snapshot_at(NOW + timedelta(seconds=301))
    good, letters = decode_batch([_msg(inside, 1), _msg(outside, 2)], now=NOW, window=WINDOW)
    assert len(good) == 1 and [dl.offset for dl in letters] == [2]


def test_snapshot_older_than_retention_is_dead_lettered() -> None:
    _, letters = decode_batch([_msg(_snapshot_at(NOW - timedelta(days=31)))], now=NOW, window=WINDOW)
    assert [dl.reason for dl in letters] == ["timestamp_out_of_range"]
    assert "backfill limit of 30 day(s)" in letters[0].detail


def test_out_of_range_value_names_the_device_field() -> None:
    doc = json.loads(_snapshot_at(NOW))
    doc["devices"][3]["util_pct"] = 150
    _, letters = decode_batch([_msg(json.dumps(doc).encode())], now=NOW, window=WINDOW)
    assert letters[0].reason == "invalid_field"
    assert "devices.3.util_pct" in letters[0].detail


def test_a_record_keyed_by_another_node_is_dead_lettered_as_a_key_mismatch() -> None:
    value = _snapshot_at(NOW - timedelta(minutes=1))
    other = RawMessage(value=value, key=b"sim-000001", topic="kcloud.telemetry.v1", partition=2, offset=7)
    unkeyed = RawMessage(value=value, key=None, topic="kcloud.telemetry.v1", partition=2, offset=8)
    good, letters = decode_batch([other, unkeyed, _msg(value, 9)], now=NOW, window=WINDOW)
    assert len(good) == 1
    assert [(dl.reason, dl.offset) for dl in letters] == [("key_mismatch", 7), ("key_mismatch", 8)]
    assert "sim-000001" in letters[0].detail and "no key" in letters[1].detail
    assert letters[0].original() == value

"""Alert rules open and resolve on the readings an operator would expect, once each."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from streams.alert_rules import AlertRulesConfig, DeviceAlertState, DeviceReading, evaluate_device, node_gap

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
CFG = AlertRulesConfig(temp_limit_c=90.0, offline_after=timedelta(seconds=60), ecc_quiet=timedelta(minutes=30))


def run(readings: list[DeviceReading]) -> list[tuple[str, bool, datetime, datetime | None]]:
    st = DeviceAlertState()
    out = []
    for r in readings:
        st, changes = evaluate_device(st, r, CFG, "rngd-1")
        out.extend((c.rule, c.opens, c.started_at, c.resolved_at) for c in changes)
    return out


def at(s: int) -> datetime:
    return T0 + timedelta(seconds=s)


def test_hot_device_opens_once_and_resolves_below_the_hysteresis() -> None:
    temps = [85, 91, 95, 89, 86]
    got = run([DeviceReading(at(10 * i), t, "ok", None) for i, t in enumerate(temps)])
    assert got == [("temp_high", True, at(10), None), ("temp_high", False, at(10), at(40))]


def test_failed_health_is_critical_until_the_device_recovers() -> None:
    healths = ["ok", "failed", "failed", "unknown", "ok"]
    got = run([DeviceReading(at(10 * i), 50, h, None) for i, h in enumerate(healths)])
    assert got == [("health_failed", True, at(10), None), ("health_failed", False, at(10), at(40))]


def test_rising_uncorrected_ecc_opens_and_quiet_period_resolves() -> None:
    counts = [(0, 3), (10, 3), (20, 4), (600, 5), (2400, 5), (2500, 5)]
    got = run([DeviceReading(at(s), 50, "ok", c) for s, c in counts])
    assert got == [("ecc_rising", True, at(20), None), ("ecc_rising", False, at(20), at(2400))]


def test_a_counter_reset_is_not_a_rise() -> None:
    assert run([DeviceReading(at(0), 50, "ok", 7), DeviceReading(at(10), 50, "ok", 0)]) == []


def test_a_node_gap_longer_than_the_threshold_is_a_silence_with_both_ends() -> None:
    change = node_gap("n1", at(0), at(300), None, CFG)
    assert change is not None and change.opens
    assert (change.started_at, change.resolved_at) == (at(60), at(300))
    assert node_gap("n1", at(0), at(50), None, CFG) is None
    resolved = node_gap("n1", at(0), at(300), at(60), CFG)
    assert resolved is not None and not resolved.opens and resolved.resolved_at == at(300)

"""Alert rules, pure: given what is open for a device or node and its next sample, what opens and resolves.

Rules (thresholds from settings):
    node_silent    a node sent nothing for `offline_after_intervals` intervals (event time); resolves when it
                   reports again. Opened at last_seen + the threshold, so the same input gives the same row
                   whether the silence was noticed by the sweep or by the gap when the node came back.
    temp_high      device temperature above `temp_alert_c`; resolves 3 °C below it (hysteresis).
    health_failed  device health `failed`; resolves on any other known health.
    ecc_rising     the uncorrected-ECC counter rose; resolves after `ecc_alert_quiet_s` without a rise.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Literal

__all__ = [
    "SEVERITY",
    "TEMP_HYSTERESIS_C",
    "AlertRulesConfig",
    "Change",
    "DeviceAlertState",
    "DeviceReading",
    "evaluate_device",
    "node_gap",
]

SEVERITY: dict[str, Literal["warning", "critical"]] = {
    "node_silent": "warning",
    "temp_high": "warning",
    "health_failed": "critical",
    "ecc_rising": "critical",
    "site_stalled": "warning",
    "fleet_stalled": "critical",
}
TEMP_HYSTERESIS_C = 3.0


@dataclass(frozen=True)
class AlertRulesConfig:
    temp_limit_c: float
    offline_after: timedelta
    ecc_quiet: timedelta


@dataclass(frozen=True)
class Change:
    """An alert opening (`resolved_at` None), resolving, or both at once (a silence seen only afterwards)."""

    rule: str
    started_at: datetime
    resolved_at: datetime | None
    summary: str
    details: dict[str, Any]
    opens: bool  # False: resolves an alert already open


@dataclass(frozen=True)
class DeviceReading:
    at: datetime
    temp_c: float | None
    health: str | None
    ecc_uncorrected: int | None


@dataclass(frozen=True)
class DeviceAlertState:
    """Open alerts of one device (rule -> started_at) and its ECC memory."""

    open: dict[str, datetime] = field(default_factory=dict)
    ecc_last: int | None = None
    ecc_rise_at: datetime | None = None


def evaluate_device(
    state: DeviceAlertState, r: DeviceReading, cfg: AlertRulesConfig, name: str
) -> tuple[DeviceAlertState, list[Change]]:
    """Apply one newly stored reading of device `name`."""
    changes: list[Change] = []
    opened = dict(state.open)

    def open_(rule: str, summary: str, details: dict[str, Any]) -> None:
        if rule not in opened:
            opened[rule] = r.at
            changes.append(Change(rule, r.at, None, summary, details, True))

    def resolve(rule: str, summary: str, details: dict[str, Any]) -> None:
        started = opened.pop(rule, None)
        if started is not None:
            changes.append(Change(rule, started, max(r.at, started), summary, details, False))

    if r.temp_c is not None:
        if r.temp_c > cfg.temp_limit_c:
            open_(
                "temp_high",
                f"{name} at {r.temp_c:.0f} °C, over the {cfg.temp_limit_c:.0f} °C limit",
                {"temp_c": r.temp_c},
            )
        elif r.temp_c <= cfg.temp_limit_c - TEMP_HYSTERESIS_C:
            resolve("temp_high", f"{name} back to {r.temp_c:.0f} °C", {"temp_c": r.temp_c})
    if r.health == "failed":
        open_("health_failed", f"{name} reports health failed", {"health": r.health})
    elif r.health is not None and r.health != "unknown":
        resolve("health_failed", f"{name} reports health {r.health}", {"health": r.health})
    ecc_last, rise_at = state.ecc_last, state.ecc_rise_at
    if r.ecc_uncorrected is not None:
        if ecc_last is not None and r.ecc_uncorrected > ecc_last:
            rise_at = r.at
            if "ecc_rising" not in opened:
                open_(
                    "ecc_rising",
                    f"{name} uncorrected ECC errors rose from {ecc_last} to {r.ecc_uncorrected}",
                    {"from": ecc_last, "to": r.ecc_uncorrected},
                )
        ecc_last = r.ecc_uncorrected
    if "ecc_rising" in opened and rise_at is not None and r.at - rise_at >= cfg.ecc_quiet:
        resolve("ecc_rising", f"{name} uncorrected ECC errors steady since {rise_at.isoformat()}", {"count": ecc_last})
    return replace(state, open=opened, ecc_last=ecc_last, ecc_rise_at=rise_at), changes


def node_gap(
    node_id: str, prev_seen: datetime | None, at: datetime, open_since: datetime | None, cfg: AlertRulesConfig
) -> Change | None:
    """A node's snapshot at `at` after `prev_seen`: resolve its open silence, or record a silence it had."""
    if open_since is not None:
        return Change(
            "node_silent",
            open_since,
            max(at, open_since),
            f"node {node_id} reports again",
            {"returned_at": at.isoformat()},
            False,
        )
    if prev_seen is not None and at - prev_seen > cfg.offline_after:
        went = prev_seen + cfg.offline_after
        return Change(
            "node_silent",
            went,
            at,
            f"node {node_id} sent nothing from {prev_seen.isoformat()} to {at.isoformat()}",
            {"last_seen": prev_seen.isoformat()},
            True,
        )
    return None

"""Device lifecycle: the pure state machine behind the deployment ledger (the K-Cloud evidence).

A device is `commissioned` when first seen, `active` or `idle` once its utilization has stayed above
or below `active_util_pct` for `active_sustain_s`, `offline` when no sample came for
`offline_after_intervals` intervals (event time), `returned` when it reports again after that,
`relocated` when its node or site changes, `health_changed` when its health state changes, and
`decommissioned` explicitly or after `decommission_after_days` offline. Every transition is stamped
with event time, so replaying the same input yields the same events.

`observe(state, obs, rules)` and `sweep(state, watermark, rules)` are pure: they return the new state
and the transitions; `streams.deployments` loads and stores the state and appends the ledger rows.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

__all__ = ["DeviceState", "Observation", "Rules", "Transition", "observe", "steady", "sweep"]


@dataclass(frozen=True)
class Rules:
    """Thresholds of the lifecycle (from settings)."""

    busy_util_pct: float
    sustain: timedelta
    offline_after: timedelta
    decommission_after: timedelta


@dataclass(frozen=True, slots=True)
class DeviceState:
    """What the lifecycle remembers of one device."""

    status: str  # commissioned | active | idle | offline | returned | decommissioned
    status_since: datetime
    last_seen: datetime
    node_id: str
    site_id: str
    util_state: str | None = None  # busy | quiet
    util_state_since: datetime | None = None
    health: str | None = None


@dataclass(frozen=True)
class Observation:
    """One sample of the device, reduced to what the lifecycle needs."""

    at: datetime
    node_id: str
    site_id: str
    util_pct: float | None
    health: str | None


@dataclass(frozen=True)
class Transition:
    """One ledger event."""

    event: str
    at: datetime
    node_id: str
    site_id: str
    details: dict[str, Any]


def commission(obs: Observation, rules: Rules) -> tuple[DeviceState, list[Transition]]:
    """The state and event of a device seen for the first time."""
    state = DeviceState("commissioned", obs.at, obs.at, obs.node_id, obs.site_id, health=obs.health)
    state, more = _after_seen(state, obs, rules)
    return state, [Transition("commissioned", obs.at, obs.node_id, obs.site_id, {}), *more]


def observe(state: DeviceState, obs: Observation, rules: Rules) -> tuple[DeviceState, list[Transition]]:
    """Apply one sample (samples older than the last one seen change nothing)."""
    if obs.at <= state.last_seen:
        return state, []
    events: list[Transition] = []
    if state.status != "offline" and obs.at - state.last_seen > rules.offline_after:
        went = state.last_seen + rules.offline_after
        events.append(
            Transition("offline", went, state.node_id, state.site_id, {"last_seen": state.last_seen.isoformat()})
        )
        state = replace(state, status="offline", status_since=went)
    if state.status in ("offline", "decommissioned"):
        events.append(
            Transition(
                "returned",
                obs.at,
                obs.node_id,
                obs.site_id,
                {"was": state.status, "since": state.status_since.isoformat()},
            )
        )
        state = replace(state, status="returned", status_since=obs.at, util_state=None, util_state_since=None)
    state, more = _after_seen(state, obs, rules)
    return state, events + more


def steady(  # noqa: PLR0917 - on the hot path, once per sample: positional on purpose
    state: DeviceState,
    last_seen: datetime,
    at: datetime,
    node_id: str,
    site_id: str,
    util_pct: float | None,
    health: str | None,
    rules: Rules,
) -> bool:
    """True when a sample at `at` would change nothing but `last_seen` (the common case, decided without
    building objects): `observe` on it returns no transition and no other change."""
    if at <= last_seen:
        return True
    if at - last_seen > rules.offline_after or state.status in ("offline", "decommissioned"):
        return False
    if node_id != state.node_id or site_id != state.site_id:
        return False
    if health is not None and health != state.health:
        return False
    if util_pct is None:
        return True
    busy = util_pct > rules.busy_util_pct
    if state.util_state != ("busy" if busy else "quiet"):
        return False
    if state.status == ("active" if busy else "idle"):
        return True
    # commissioned or returned, or busy/quiet not yet long enough to change the status
    since = state.util_state_since
    return since is not None and at - since < rules.sustain


def _after_seen(state: DeviceState, obs: Observation, rules: Rules) -> tuple[DeviceState, list[Transition]]:
    events: list[Transition] = []
    if (obs.node_id, obs.site_id) != (state.node_id, state.site_id):
        events.append(
            Transition(
                "relocated",
                obs.at,
                obs.node_id,
                obs.site_id,
                {"from_node": state.node_id, "from_site": state.site_id},
            )
        )
        state = replace(state, node_id=obs.node_id, site_id=obs.site_id)
    if obs.health is not None and obs.health != state.health:
        if state.health is not None:
            events.append(
                Transition(
                    "health_changed",
                    obs.at,
                    obs.node_id,
                    obs.site_id,
                    {"from": state.health, "to": obs.health},
                )
            )
        state = replace(state, health=obs.health)
    state = replace(state, last_seen=obs.at)
    if obs.util_pct is None:
        return state, events
    util_state = "busy" if obs.util_pct > rules.busy_util_pct else "quiet"
    if util_state != state.util_state:
        state = replace(state, util_state=util_state, util_state_since=obs.at)
    target = "active" if util_state == "busy" else "idle"
    since = state.util_state_since or obs.at
    if state.status != target and obs.at - since >= rules.sustain:
        events.append(
            Transition(
                target,
                obs.at,
                obs.node_id,
                obs.site_id,
                {"util_pct": obs.util_pct, "since": since.isoformat()},
            )
        )
        state = replace(state, status=target, status_since=obs.at)
    return state, events


def sweep(state: DeviceState, watermark: datetime, rules: Rules) -> tuple[DeviceState, list[Transition]]:
    """Silence checks at event time `watermark` (the newest sample time the pipeline has seen)."""
    events: list[Transition] = []
    if state.status not in ("offline", "decommissioned") and watermark - state.last_seen > rules.offline_after:
        went = state.last_seen + rules.offline_after
        events.append(
            Transition("offline", went, state.node_id, state.site_id, {"last_seen": state.last_seen.isoformat()})
        )
        state = replace(state, status="offline", status_since=went)
    if state.status == "offline" and watermark - state.status_since > rules.decommission_after:
        at = state.status_since + rules.decommission_after
        events.append(
            Transition(
                "decommissioned",
                at,
                state.node_id,
                state.site_id,
                {"reason": "offline beyond the decommission limit"},
            )
        )
        state = replace(state, status="decommissioned", status_since=at)
    return state, events

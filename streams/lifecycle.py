"""Device lifecycle: the pure state machine behind the deployment ledger (the K-Cloud evidence).

A device is `commissioned` when first seen, `active` or `idle` once its utilization has stayed above
or below `active_util_pct` for `active_sustain_s`, `offline` when no sample came for
`offline_after_intervals` intervals (event time), `returned` when it reports again after that,
`relocated` when it has reported from another node for `relocate_confirm` consecutive samples (a
device flipping between nodes records nothing until it settles; at most `relocate_max_per_hour`
relocations per device per event-time hour are recorded, the one reaching the cap says `flapping` and
later moves in that hour are not applied), `health_changed` when its health state changes, and
`decommissioned` explicitly or after `decommission_after_days` offline. Every transition is stamped
with event time, so replaying the same input yields the same events, and no transition is dated before
the device's previous one: a sample dated at or before the start of an `offline` or `decommissioned`
status changes nothing (it arrived after the status was recorded).

`observe(state, obs, rules)` and `sweep(state, watermark, rules)` are pure: they return the new state
and the transitions; `streams.deployments` loads and stores the state and appends the ledger rows.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

__all__ = [
    "DeviceState",
    "Observation",
    "Rules",
    "Transition",
    "commission",
    "decommission",
    "observe",
    "steady",
    "sweep",
]


@dataclass(frozen=True)
class Rules:
    """Thresholds of the lifecycle (from settings)."""

    busy_util_pct: float
    sustain: timedelta
    offline_after: timedelta
    decommission_after: timedelta
    relocate_confirm: int = 1
    relocate_max_per_hour: int = 1_000_000


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
    move_node: str | None = None  # the node it has been reporting from lately, not yet a relocation
    move_site: str | None = None
    move_since: datetime | None = None
    move_seen: int = 0  # consecutive samples from move_node
    reloc_hour: datetime | None = None  # the event-time hour of the relocations counted in reloc_count
    reloc_count: int = 0
    reloc_suppressed: int = 0  # confirmed moves not recorded (over the cap) since the last relocation


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
    if state.status in ("offline", "decommissioned") and obs.at <= state.status_since:
        return state, []  # older than the status it would end: recorded already, nothing to date before it
    events: list[Transition] = []
    if state.status not in ("offline", "decommissioned") and obs.at - state.last_seen > rules.offline_after:
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
                state.node_id,
                state.site_id,
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
    if node_id != state.node_id or site_id != state.site_id or state.move_node is not None:
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
    state, events = _moved(state, obs, rules)
    if obs.health is not None and obs.health != state.health:
        if state.health is not None:
            events.append(
                Transition(
                    "health_changed",
                    obs.at,
                    state.node_id,
                    state.site_id,
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
                state.node_id,
                state.site_id,
                {"util_pct": obs.util_pct, "since": since.isoformat()},
            )
        )
        state = replace(state, status=target, status_since=obs.at)
    return state, events


def _moved(state: DeviceState, obs: Observation, rules: Rules) -> tuple[DeviceState, list[Transition]]:
    """Relocation once the device has reported from another node for `relocate_confirm` samples in a
    row, within the hourly cap."""
    where = (obs.node_id, obs.site_id)
    if where == (state.node_id, state.site_id):
        if state.move_node is None:
            return state, []
        return replace(state, move_node=None, move_site=None, move_since=None, move_seen=0), []
    if (state.move_node, state.move_site) == where and state.move_since is not None:
        seen, since = state.move_seen + 1, state.move_since
    else:
        seen, since = 1, obs.at
    if seen < rules.relocate_confirm:
        return replace(state, move_node=obs.node_id, move_site=obs.site_id, move_since=since, move_seen=seen), []
    hour = obs.at.replace(minute=0, second=0, microsecond=0)
    count = state.reloc_count if state.reloc_hour == hour else 0
    settled = replace(state, move_node=None, move_site=None, move_since=None, move_seen=0, reloc_hour=hour)
    if count >= rules.relocate_max_per_hour:  # flapping: summarised in the next recorded relocation
        return replace(settled, reloc_count=count, reloc_suppressed=state.reloc_suppressed + 1), []
    details: dict[str, Any] = {"from_node": state.node_id, "from_site": state.site_id, "since": since.isoformat()}
    if state.reloc_suppressed:
        details["moves_not_recorded"] = state.reloc_suppressed
    if count + 1 == rules.relocate_max_per_hour:
        details["flapping"] = True
    event = Transition("relocated", obs.at, obs.node_id, obs.site_id, details)
    return replace(settled, node_id=obs.node_id, site_id=obs.site_id, reloc_count=count + 1, reloc_suppressed=0), [
        event
    ]


def decommission(state: DeviceState, at: datetime, reason: str) -> tuple[DeviceState, list[Transition]]:
    """An operator's explicit decommissioning at `at` (their clock): dated no earlier than what the device
    last did, since event time may run ahead of that clock; nothing when it is decommissioned already."""
    if state.status == "decommissioned":
        return state, []
    when = max(at, state.status_since, state.last_seen)
    event = Transition("decommissioned", when, state.node_id, state.site_id, {"reason": reason, "explicit": True})
    return replace(state, status="decommissioned", status_since=when), [event]


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

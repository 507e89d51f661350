"""The wire parser under generated input: whatever bytes arrive, `parse_snapshot` either returns a snapshot
the database can store or raises `InvalidSnapshot` with a reason; no other exception ever escapes (one
would crash the ingest agent on every redelivery of the same message)."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kcloud.records import InvalidSnapshot, NodeSnapshot, parse_snapshot

pytestmark = pytest.mark.reliability

_VALID: dict[str, Any] = {  # synthetic
    "schema": "kcloud.telemetry/1",
    "node": {"node_id": "n-01", "site_id": "site-a", "hostname": "n01.example"},
    "source": "sim",
    "collected_at": "2026-06-01T12:00:00+09:00",
    "seq": 7,
    "devices": [
        {
            "device_uuid": "dev-0",
            "vendor": "furiosa",
            "kind": "npu",
            "model": "RNGD",
            "util_pct": 40.0,
            "power_w": 150.0,
            "attribution": {"tenant": "kisti"},
            "throughput": {"value": 10.0, "unit": "tokens/s", "workload": "llm"},
        }
    ],
}
_PATHS = [
    ("schema",),
    ("node", "node_id"),
    ("node", "site_id"),
    ("node", "hostname"),
    ("source",),
    ("collected_at",),
    ("seq",),
    ("devices",),
    ("devices", 0, "device_uuid"),
    ("devices", 0, "vendor"),
    ("devices", 0, "kind"),
    ("devices", 0, "model"),
    ("devices", 0, "util_pct"),
    ("devices", 0, "power_w"),
    ("devices", 0, "attribution", "tenant"),
    ("devices", 0, "throughput", "unit"),
    ("devices", 0, "throughput", "value"),
]
_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=40)
    | st.datetimes(timezones=st.timezones()).map(lambda d: d.isoformat())
)
_JSON = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


def _storable(snap: NodeSnapshot) -> None:
    """Every string encodes as UTF-8 without NUL, the event time is a real instant."""
    text = snap.model_dump_json()
    assert "\\u0000" not in text
    text.encode("utf-8")
    assert snap.collected_at.tzinfo is not None
    assert datetime.min.replace(tzinfo=UTC) < snap.collected_at < datetime.max.replace(tzinfo=UTC)


def _parse(raw: bytes) -> None:
    try:
        snap = parse_snapshot(raw)
    except InvalidSnapshot as exc:
        assert exc.reason in {"invalid_json", "unknown_schema", "invalid_field"} and exc.detail
        return
    _storable(snap)


@settings(max_examples=400, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(path=st.sampled_from(_PATHS), value=_JSON)
def test_one_field_replaced_by_any_json_value_is_stored_or_rejected_with_a_reason(
    path: tuple[str | int, ...], value: Any
) -> None:
    doc = copy.deepcopy(_VALID)
    target: Any = doc
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    _parse(json.dumps(doc).encode("utf-8", "surrogatepass"))


@settings(max_examples=300, deadline=None, database=None)
@given(raw=st.binary(max_size=300) | st.text(max_size=200).map(lambda t: t.encode("utf-8", "surrogatepass")))
def test_arbitrary_bytes_are_rejected_with_a_reason(raw: bytes) -> None:
    _parse(raw)


@pytest.mark.parametrize(
    "collected_at", ["9999-12-31T23:59:59-14:00", "0001-01-01T00:00:00+14:00"], ids=["after-9999", "before-0001"]
)
def test_event_time_outside_the_calendar_once_in_utc_is_rejected_naming_the_field(collected_at: str) -> None:
    doc = copy.deepcopy(_VALID) | {"collected_at": collected_at}
    with pytest.raises(InvalidSnapshot) as exc:
        parse_snapshot(json.dumps(doc).encode())
    assert exc.value.reason == "invalid_field" and "collected_at" in exc.value.detail


def test_a_nul_character_in_any_text_field_is_rejected_naming_the_field() -> None:
    doc = copy.deepcopy(_VALID)
    doc["devices"][0]["attribution"]["tenant"] = "kisti\u0000"
    with pytest.raises(InvalidSnapshot) as exc:
        parse_snapshot(json.dumps(doc).encode())
    assert exc.value.reason == "invalid_field" and "devices.0.attribution.tenant" in exc.value.detail


def test_nesting_past_the_parser_depth_is_rejected_as_invalid_json() -> None:
    with pytest.raises(InvalidSnapshot) as exc:
        parse_snapshot(b"[" * 100_000)
    assert exc.value.reason == "invalid_json"

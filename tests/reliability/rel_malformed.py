"""Seeded generator of malformed telemetry messages, one class at a time, each built from a valid wire
snapshot so that exactly one thing is wrong with it. The values are synthetic.

Classes: invalid JSON, wrong types, missing fields, unicode garbage, huge numbers, NaN and infinities,
future and ancient timestamps, duplicate devices in one snapshot, unknown schema.
"""

from __future__ import annotations

import copy
import json
import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

__all__ = ["CLASSES", "EXPECTED_REASONS", "Malformed", "malformed_messages"]

Doc = dict[str, Any]


def _base(rng: random.Random, i: int, now: datetime) -> Doc:
    """A valid snapshot (recent event time, unique node id) to break."""
    at = now - timedelta(minutes=rng.randint(5, 600), seconds=rng.randint(0, 59))
    return {
        "schema": "kcloud.telemetry/1",
        "node": {"node_id": f"bad-{i:05d}", "site_id": "site-fuzz", "hostname": f"bad-{i}.example"},
        "source": "sim",
        "collected_at": at.isoformat(),
        "seq": i,
        "devices": [
            {
                "device_uuid": f"fuzz-{i:05d}-{d}",
                "vendor": rng.choice(["nvidia", "furiosa", "rebellions"]),
                "kind": rng.choice(["gpu", "npu"]),
                "model": "synthetic",
                "util_pct": round(rng.uniform(0, 100), 2),
                "power_w": round(rng.uniform(20, 700), 2),
                "mem_used_bytes": 1000,
                "mem_total_bytes": 2000,
                "temp_c": 50.0,
            }
            for d in range(rng.randint(1, 4))
        ],
    }


def _device(doc: Doc, rng: random.Random) -> Doc:
    dev: Doc = rng.choice(doc["devices"])
    return dev


def _invalid_json(rng: random.Random, doc: Doc) -> bytes:
    good = json.dumps(doc).encode()
    kind = rng.randrange(6)
    if kind == 0:
        return good[: rng.randint(1, len(good) - 2)]  # truncated
    if kind == 1:
        return bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 64)))  # noise
    if kind == 2:
        return good.replace(b'"', b"'", 3)  # single quotes
    if kind == 3:
        return json.dumps(doc).encode("utf-16")  # not UTF-8
    if kind == 4:
        return json.dumps([doc]).encode()  # not an object
    return b"[" * rng.randint(5000, 50000)  # nested past any parser's depth


def _wrong_type(rng: random.Random, doc: Doc) -> bytes:
    target, key, value = rng.choice(
        [
            ("snap", "seq", "12"),
            ("snap", "seq", 1.5),
            ("snap", "collected_at", 1_700_000_000),
            ("snap", "devices", {"0": "gpu"}),
            ("snap", "node", ["bad"]),
            ("dev", "util_pct", "73.5"),
            ("dev", "util_pct", True),
            ("dev", "power_w", [1.0]),
            ("dev", "mem_used_bytes", 10.5),
            ("dev", "health", 1),
            ("dev", "kind", "tpu"),
            ("dev", "throughput", 100),
        ]
    )
    (doc if target == "snap" else _device(doc, rng))[key] = value
    return json.dumps(doc).encode()


def _missing_field(rng: random.Random, doc: Doc) -> bytes:
    where = rng.choice(["snap", "node", "dev"])
    if where == "snap":
        del doc[rng.choice(["node", "source", "collected_at", "seq", "devices"])]
    elif where == "node":
        del doc["node"][rng.choice(["node_id", "site_id"])]
    else:
        del _device(doc, rng)[rng.choice(["device_uuid", "vendor", "kind"])]
    return json.dumps(doc).encode()


def _unicode_garbage(rng: random.Random, doc: Doc) -> bytes:
    junk = "".join(chr(rng.choice([0x0, 0x7, 0x200B, 0xFEFF, 0x1F4A5, 0xD55C, 0x202E])) for _ in range(6))
    kind = rng.randrange(5)
    if kind == 0:
        doc["node"]["node_id"] = "n" + junk  # identifiers are ASCII by contract
    elif kind == 1:
        _device(doc, rng)["vendor"] = junk
    elif kind == 2:
        _device(doc, rng)["model"] = "H100\u0000" + junk  # NUL: no database can store it
    elif kind == 3:
        raw = json.dumps(doc).encode()
        cut = rng.randint(1, len(raw) - 1)
        return raw[:cut] + b"\xff\xfe\xc3" + raw[cut:]  # invalid UTF-8 inside the message
    else:
        text = json.dumps(doc)
        return text.replace('"synthetic"', '"syn\\ud800thetic"', 1).encode()  # a lone surrogate
    return json.dumps(doc).encode()


def _huge_number(rng: random.Random, doc: Doc) -> bytes:
    key, value = rng.choice(
        [
            ("power_w", 1e300),
            ("util_pct", 1e20),
            ("mem_used_bytes", 2**80),
            ("energy_j", 1e16),
            ("ecc_uncorrected", 2**64),
            ("temp_c", -1e9),
        ]
    )
    if rng.random() < 0.2:
        doc["seq"] = 10**30
    else:
        _device(doc, rng)[key] = value
    return json.dumps(doc).encode()


def _non_finite(rng: random.Random, doc: Doc) -> bytes:
    _device(doc, rng)[rng.choice(["util_pct", "power_w", "temp_c", "energy_j"])] = rng.choice(
        [float("nan"), float("inf"), float("-inf")]
    )
    return json.dumps(doc).encode()  # json writes the NaN / Infinity literals


def _timestamp(rng: random.Random, doc: Doc) -> bytes:
    now = datetime.now(UTC)
    doc["collected_at"] = rng.choice(
        [
            (now + timedelta(days=rng.randint(1, 3650))).isoformat(),
            (now + timedelta(hours=2)).isoformat(),
            "9999-12-31T23:59:59-14:00",
            "0001-01-01T00:00:00+14:00",
            "1970-01-01T00:00:00+00:00",
            (now - timedelta(days=rng.randint(40, 4000))).isoformat(),
            "2026-13-45T25:61:00+00:00",
            "2026-06-01T12:00:00",
        ]
    )
    return json.dumps(doc).encode()


def _duplicate_devices(rng: random.Random, doc: Doc) -> bytes:
    dev = copy.deepcopy(_device(doc, rng))
    if rng.random() < 0.5:
        dev["device_uuid"] = "GPU-" + dev["device_uuid"].upper()  # the same device, spelt differently
    doc["devices"].append(dev)
    return json.dumps(doc).encode()


def _unknown_schema(rng: random.Random, doc: Doc) -> bytes:
    doc["schema"] = rng.choice(["kcloud.telemetry/2", "", None, 1, "KCLOUD.TELEMETRY/1"])
    return json.dumps(doc).encode()


CLASSES: dict[str, Callable[[random.Random, Doc], bytes]] = {
    "invalid_json": _invalid_json,
    "wrong_type": _wrong_type,
    "missing_field": _missing_field,
    "unicode_garbage": _unicode_garbage,
    "huge_number": _huge_number,
    "non_finite": _non_finite,
    "timestamp": _timestamp,
    "duplicate_devices": _duplicate_devices,
    "unknown_schema": _unknown_schema,
}

#: the dead-letter reasons each class may be given
EXPECTED_REASONS: dict[str, set[str]] = {
    "invalid_json": {"invalid_json", "invalid_field"},
    "wrong_type": {"invalid_field"},
    "missing_field": {"invalid_field"},
    "unicode_garbage": {"invalid_json", "invalid_field"},
    "huge_number": {"invalid_field"},
    "non_finite": {"invalid_json", "invalid_field"},
    "timestamp": {"invalid_field", "timestamp_out_of_range"},
    "duplicate_devices": {"invalid_field"},
    "unknown_schema": {"unknown_schema", "invalid_json"},
}


class Malformed:
    """One malformed message: its class and its bytes."""

    __slots__ = ("cls", "raw")

    def __init__(self, cls: str, raw: bytes) -> None:
        self.cls = cls
        self.raw = raw


def malformed_messages(count: int, seed: int) -> list[Malformed]:
    """`count` malformed messages, the classes in turn, every one distinct, reproducible from `seed`."""
    rng = random.Random(seed)
    now = datetime.now(UTC)
    names = sorted(CLASSES)
    out: list[Malformed] = []
    seen: set[bytes] = set()
    i = 0
    while len(out) < count:
        cls = names[len(out) % len(names)]
        raw = CLASSES[cls](rng, _base(rng, i, now))
        i += 1
        if raw not in seen:  # distinct bytes: each dead letter can be matched to exactly one message
            seen.add(raw)
            out.append(Malformed(cls, raw))
    return out

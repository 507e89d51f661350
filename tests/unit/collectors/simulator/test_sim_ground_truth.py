"""The simulator's engine counters against what really runs on each device (its ground truth), the
tenants that file video work as AI, and the ground truth staying off the wire."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from statistics import mean
from typing import Any

from collectors.simulator import GROUND_TRUTH_FORMAT, TRUE_KINDS, SimulatedFleet
from kcloud.records import parse_snapshot

Tick = tuple[Any, list[tuple[bytes, bytes]], list[dict[str, Any]]]  # as the conftest builds it

_ACTIVITY = ("sm_active_pct", "tensor_active_pct", "dram_active_pct", "enc_util_pct", "dec_util_pct")
_HEALTH = (
    "xid_last",
    "throttle_power",
    "throttle_thermal",
    "nvlink_errors",
    "mem_rows_retired",
    "mem_repair_pending",
    "mem_repair_failed",
)


def _by_kind(fleet: SimulatedFleet, day: list[Tick]) -> dict[str, list[dict[str, Any]]]:
    """Every healthy NVIDIA device sample of the day, grouped by the true kind of its work."""
    truth = fleet.ground_truth()
    grouped: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for _, _, docs in day:
        for doc in docs:
            for dev in doc["devices"]:
                if dev["vendor"] == "nvidia" and dev.get("health") == "ok":
                    grouped[truth[dev["device_uuid"]].true_kind].append(dev)
    return grouped


def test_every_true_kind_occurs_and_the_ground_truth_covers_every_device(
    fleet: SimulatedFleet, day: list[Tick]
) -> None:
    truth = fleet.ground_truth()
    assert len(truth) == fleet.nodes * fleet.devices_per_node
    assert {t.true_kind for t in truth.values()} == set(TRUE_KINDS)
    seen = {dev["device_uuid"] for _, _, docs in day for doc in docs for dev in doc["devices"]}
    assert seen <= set(truth)


def test_counters_follow_the_true_kind_of_work(fleet: SimulatedFleet, day: list[Tick]) -> None:
    by_kind = _by_kind(fleet, day)

    def avg(kind: str, field: str) -> float:
        return mean(d[field] for d in by_kind[kind])

    for ai in ("ai-training", "ai-inference"):
        assert avg(ai, "tensor_active_pct") > 15 and avg(ai, "sm_active_pct") > 30, ai
        assert avg(ai, "enc_util_pct") == avg(ai, "dec_util_pct") == 0.0, ai
    assert avg("ai-training", "tensor_active_pct") > avg("ai-inference", "tensor_active_pct")
    video = by_kind["video-transcode"]
    assert avg("video-transcode", "enc_util_pct") > 20 and avg("video-transcode", "dec_util_pct") > 20
    assert all(d["tensor_active_pct"] == 0.0 for d in video)
    assert avg("video-transcode", "sm_active_pct") < avg("ai-inference", "sm_active_pct") / 3
    # a model loaded and serving nothing: memory held, engines (almost) still
    resident = by_kind["idle-resident"]
    assert mean(d["mem_used_bytes"] / d["mem_total_bytes"] for d in resident) > 0.8
    assert max(d["sm_active_pct"] for d in resident) < 5 and max(d["tensor_active_pct"] for d in resident) == 0.0
    idle = by_kind["idle"]
    assert mean(d["mem_used_bytes"] / d["mem_total_bytes"] for d in idle) < 0.02
    assert all(d[name] == 0.0 for d in idle for name in _ACTIVITY)


def test_some_video_tenants_label_their_work_as_llm_serving(fleet: SimulatedFleet, day: list[Tick]) -> None:
    truth = fleet.ground_truth()
    mislabelled = [t for t in truth.values() if t.mislabelled]
    video = [t for t in truth.values() if t.true_kind == "video-transcode"]
    assert 0.15 < len(mislabelled) / len(video) < 0.55
    assert {(t.true_kind, t.labelled_kind) for t in mislabelled} == {("video-transcode", "ai-inference")}
    assert all(t.labelled_kind == t.true_kind for t in truth.values() if not t.mislabelled)
    samples = [
        dev
        for _, _, docs in day
        for doc in docs
        for dev in doc["devices"]
        if truth[dev["device_uuid"]].mislabelled and dev.get("health") == "ok"
    ]
    assert samples
    for dev in samples:  # every label says LLM serving ...
        assert dev["throughput"]["unit"] == "tokens/s" and dev["throughput"]["workload"] != "video-transcode"
        assert dev["attribution"]["container"] in {"vllm", "furiosa-llm", "vllm-rbln", "sapeon-serve"}
        assert not dev["attribution"]["pod"].startswith("transcoder-")
        assert dev["tensor_active_pct"] == 0.0  # ... the counters say video
    assert mean(d["enc_util_pct"] for d in samples) > 20


def test_npus_report_none_of_the_gpu_counters(day: list[Tick]) -> None:
    npus = [dev for _, _, docs in day for doc in docs for dev in doc["devices"] if dev["kind"] == "npu"]
    assert npus
    assert all(name not in dev for dev in npus for name in _ACTIVITY + _HEALTH)


def test_healthy_gpus_report_no_xid_and_degraded_ones_xid_throttling_and_pending_remaps(
    fleet: SimulatedFleet, day: list[Tick]
) -> None:
    gpus = [dev for _, _, docs in day for doc in docs for dev in doc["devices"] if dev["vendor"] == "nvidia"]
    healthy = [d for d in gpus if d.get("health") == "ok"]
    assert {
        (d["xid_last"], d["throttle_thermal"], d["mem_rows_retired"], d["mem_repair_pending"]) for d in healthy
    } == {(0, False, 0, False)}
    degraded = [d for d in gpus if d.get("health") == "degraded"]
    assert degraded
    for dev in degraded:
        assert (dev["xid_last"], dev["throttle_thermal"], dev["mem_repair_pending"]) == (63, True, True)
        assert dev["mem_rows_retired"] == dev["ecc_uncorrected"] > 0
    failed = [d for d in gpus if d.get("health") == "failed"]
    assert all(name not in dev for dev in failed for name in _ACTIVITY + _HEALTH)  # a failed GPU says nothing


def test_the_ground_truth_never_travels_on_the_wire(day: list[Tick]) -> None:
    _, raw, _ = day[3]
    for _, value in raw[:200]:
        text = value.decode()
        assert not any(word in text for word in ("true_kind", "mislabelled", "labelled_kind", 'video-transcode",'))
        assert all(kind not in text for kind in ("ai-training", "ai-inference", "idle-resident"))
        parse_snapshot(value)  # and it is a valid snapshot


def test_the_ground_truth_is_a_function_of_the_seed_and_its_sidecar_reads_back(tmp_path: Path) -> None:
    a, b, other = SimulatedFleet(40, seed=5), SimulatedFleet(40, seed=5), SimulatedFleet(40, seed=6)
    assert a.ground_truth() == b.ground_truth()
    assert a.ground_truth() != other.ground_truth()
    doc = json.loads(a.dump_ground_truth(tmp_path / "truth.json").read_text())
    assert (doc["format"], doc["seed"], doc["nodes"], doc["devices_per_node"]) == (GROUND_TRUTH_FORMAT, 5, 40, 8)
    assert {d["device_uuid"]: d["true_kind"] for d in doc["devices"]} == {
        uuid: t.true_kind for uuid, t in a.ground_truth().items()
    }

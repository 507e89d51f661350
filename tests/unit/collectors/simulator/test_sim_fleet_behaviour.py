"""What the simulated fleet does over a day: KST load shape, faults, offline spells, relocations, idle
allocations and non-AI work, each present at a plausible rate in a 1,000-node fleet."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime, timedelta
from statistics import mean
from typing import Any

from collectors.simulator import SITE_CATALOG, SimulatedFleet


def _share(count: int, total: int) -> float:
    return count / total if total else 0.0


def _inference_util(docs: list[dict[str, Any]]) -> float:
    return mean(
        d["util_pct"]
        for doc in docs
        for d in doc["devices"]
        if d.get("throughput", {}).get("unit") == "tokens/s"
        and "pod" in d["attribution"]
        and d["attribution"]["container"] != "trainer"
        and d["throughput"]["value"] > 0
    )


def test_night_load_is_lower_than_day_load_in_korean_time(day: list[Any]) -> None:
    by_hour = {(at.hour + 9) % 24: docs for at, _, docs in day}
    assert _inference_util(by_hour[4]) < 0.6 * _inference_util(by_hour[13])
    assert _inference_util(by_hour[1]) < _inference_util(by_hour[9]) < _inference_util(by_hour[13])
    everything = {h: mean(d.get("util_pct", 0) for doc in docs for d in doc["devices"]) for h, docs in by_hour.items()}
    assert everything[4] < everything[15]


def test_weekend_inference_load_is_lower_than_on_a_weekday() -> None:
    fleet = SimulatedFleet(nodes=200, seed=8)
    tuesday = datetime(2026, 11, 3, 5, tzinfo=UTC)  # 14:00 KST
    saturday = tuesday + timedelta(days=4)
    docs = {at: [json.loads(v) for _, v in fleet.tick_bytes(at, 0)] for at in (tuesday, saturday)}
    assert _inference_util(docs[saturday]) < 0.85 * _inference_util(docs[tuesday])


def test_offline_nodes_send_nothing_at_a_plausible_rate(fleet: SimulatedFleet, day: list[Any]) -> None:
    missing = 0
    for at, raw, _ in day:
        sent = {key for key, _ in raw}
        offline = fleet.conditions(at).offline
        assert sent == {fleet.node_id(n).encode() for n in range(fleet.nodes) if n not in offline}
        missing += len(offline)
    assert 0 < _share(missing, fleet.nodes * len(day)) < 0.01


def test_degraded_and_failed_devices_occur_rarely_and_failed_ones_report_no_readings(
    devices: list[dict[str, Any]],
) -> None:
    health = Counter(d["health"] for d in devices)
    assert health["degraded"] > 0 and health["failed"] > 0
    assert _share(health["degraded"] + health["failed"], len(devices)) < 0.01
    for d in devices:
        if d["health"] == "failed":
            assert not {"util_pct", "power_w", "energy_j", "throughput"} & d.keys()
        if d["health"] == "degraded":
            assert d["ecc_uncorrected"] > 0


def test_relocated_devices_report_from_another_node_and_never_twice(fleet: SimulatedFleet, day: list[Any]) -> None:
    home = {fleet.device_uuid(n, s): n for n in range(fleet.nodes) for s in range(fleet.devices_per_node)}
    moved = total = 0
    for _, _, docs in day:
        uuids = [d["device_uuid"] for doc in docs for d in doc["devices"]]
        assert len(uuids) == len(set(uuids)) == fleet.devices_per_node * len(docs)
        for doc in docs:
            node = int(doc["node"]["node_id"].rsplit("-", 1)[1])
            total += len(doc["devices"])
            moved += sum(home[d["device_uuid"]] != node for d in doc["devices"])
    assert 0 < _share(moved, total) < 0.02


def test_idle_allocations_unallocated_devices_and_video_transcoding_all_show(devices: list[dict[str, Any]]) -> None:
    reserved = sum("attribution" in d and "pod" not in d["attribution"] for d in devices)
    loaded_idle = sum(
        d.get("throughput", {}).get("value", 1) == 0 and "pod" in d.get("attribution", {}) for d in devices
    )
    unallocated = sum("attribution" not in d for d in devices)
    transcode = [d for d in devices if d.get("throughput", {}).get("workload") == "video-transcode"]
    assert 0.03 < _share(reserved + loaded_idle, len(devices)) < 0.25
    assert 0.03 < _share(unallocated, len(devices)) < 0.30
    assert 0.005 < _share(len(transcode), len(devices)) < 0.10
    assert {d["throughput"]["unit"] for d in transcode} == {"streams"}
    assert {d["kind"] for d in transcode} == {"gpu"}
    assert all(d.get("util_pct", 0) < 2 for d in devices if "attribution" in d and "pod" not in d["attribution"])


def test_tenants_span_ministries_institutes_companies_and_universities(devices: list[dict[str, Any]]) -> None:
    tenants = {d["attribution"]["tenant"] for d in devices if "attribution" in d}
    assert {"msit", "kisti", "naver", "lg-ai-research", "sk-telecom", "upstage", "kakao", "kt", "snu"} <= tenants
    workloads = {d["throughput"]["workload"] for d in devices if "throughput" in d}
    assert {"hyperclova-x-seed-8b", "exaone-4.0-32b", "video-transcode", "yolov8m-detect"} <= workloads


def test_every_site_of_the_catalogue_has_nodes_with_the_models_it_declares(day: list[Any]) -> None:
    models: dict[str, set[str]] = {}
    for doc in day[0][2]:
        models.setdefault(doc["node"]["site_id"], set()).update(d["model"] for d in doc["devices"])
    assert set(models) == {s.site_id for s in SITE_CATALOG}
    assert {"RBLN-CA22", "RBLN-CR13"} <= models["kt-cloud-cheonan"]
    assert {"RNGD", "Warboy"} <= models["naver-cloud-chuncheon"]
    assert "X330" in models["nhn-cloud-gwangju"]
    assert "NVIDIA B200" in models["national-aicc-haenam"]


def test_energy_counter_rises_with_the_reported_power_over_an_hour() -> None:
    fleet = SimulatedFleet(nodes=6, seed=21)
    start = datetime(2026, 11, 3, 1, tzinfo=UTC)  # 10:00 KST, load rising
    energy: dict[str, list[float]] = {}
    power: dict[str, list[float]] = {}
    for i in range(361):
        for _, value in fleet.tick_bytes(start + timedelta(seconds=10 * i), i):
            for d in json.loads(value)["devices"]:
                energy.setdefault(d["device_uuid"], []).append(d.get("energy_j", -1.0))
                power.setdefault(d["device_uuid"], []).append(d.get("power_w", -1.0))
    checked = 0
    for uuid, series in energy.items():
        if len(series) != 361 or min(series) < 0 or min(power[uuid]) < 0:
            continue  # offline, failed or moved during the hour
        assert series == sorted(series)
        expected = sum(power[uuid][:-1]) * 10
        assert abs(series[-1] - series[0] - expected) < 0.05 * expected, uuid
        checked += 1
    assert checked >= 40

"""Hostile stored values and hostile report requests against a real `kcloud gateway` process serving
`GET /v1/reports/evidence` and `/v1/reports/allocation` over a real database.

The database (tests/integration/reports/hostile_fleet.py) holds two hours of six simulated nodes, then
throughputs of +-inf, NaN, 1e38, 1.5e9 and -5, power and energy counters of inf, NaN, 1e38 and 1e300 and
utilizations of NaN, inf, 1e38 and -1e9 written straight into `device_samples` (minute and hourly rollups
recomputed by the pipeline's own code). A program-manager token then asks for every report shape over it,
and for a seeded list of hostile parameters (every date edge, garbage, injection strings, control
characters, huge values). Counted: requests sent, answers per status, 5xx (must be 0), refusals not in the
ErrorBody shape (0), and figures that include an excluded sample or leave an exclusion unstated (0).
"""

from __future__ import annotations

import random
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from reliability_helpers import record_figures

from infra.postgres import PostgresService
from kcloud.settings import Settings

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration" / "reports"))

from gateway_helpers import GatewayProcess, issue
from hostile_fleet import END, T0, HostileDb, fill_hostile, gaps, table, wrong_figures

pytestmark = pytest.mark.reliability

WHEN = "2026-04-01T00:00:00Z"
EDGES = [
    "0001-01-01", "1999-12-31", "2000-01-01", "2000-01-01T00:00Z", "1999-12-31T23:59-00:01", "2026-03-02",
    "2026-03-02T18:00Z", "2026-03-02T19:30Z", "2026-03-02T20:00+00:00", "2026-03-02T18:00:30Z", "2099-12-31",
    "2100-01-01", "2100-01-01T00:00Z", "9999-12-31", "9999-12-31T23:59:59-14:00", "0001-01-01T00:00+14:00",
    "2026-02-30", "2026-03-02T24:00Z", "2026-03-02T18:00", "", " ", "Z", "-1", "1e39", "NaN", "inf",
    "2026-03-02T18:00+24:00", "99999-01-01", "2026-W10-1", "x" * 5000,
]  # fmt: skip
GARBAGE = [
    "'; DROP TABLE device_samples; --", "x' OR '1'='1", "\x00", "nv\x00idia", "\t", "\u202e", "💥" * 50,
    "../../../../etc/passwd", "%00", "null", "[]", "{}", "sapeon", "rebellions", "nvidia", "nvidai", "a" * 300,
]  # fmt: skip


@pytest.fixture
def hostile(base_settings: Settings, postgres_up: PostgresService) -> Iterator[HostileDb]:
    yield from fill_hostile(base_settings, postgres_up)


def _wrong(r: httpx.Response, hostile: HostileDb) -> list[str]:
    if not r.is_success:
        return [f"the evidence report was not built: {r.status_code} {r.text[:200]}"]
    return wrong_figures(r.json(), hostile.clean, hostile.expected, hostile.workloads)


def _hostile_queries(rng: random.Random, n: int) -> list[tuple[str, dict[str, str]]]:
    pool = EDGES + GARBAGE
    keys = ["from", "to", "generated_at", "format", "granularity", "lang", "vendor", "site", "programme"]
    out: list[tuple[str, dict[str, str]]] = []
    for date_a in EDGES:  # every date edge in every date parameter, the others valid
        for key in ("from", "to", "generated_at"):
            base = {"from": T0.isoformat(), "to": END.isoformat(), "generated_at": WHEN}
            out.append(("evidence", {**base, key: date_a}))
    while len(out) < n:
        query = {k: rng.choice(pool) for k in rng.sample(keys, rng.randint(1, len(keys)))}
        if rng.random() < 0.5:
            query.setdefault("from", rng.choice(EDGES))
            query.setdefault("to", rng.choice(EDGES))
        out.append((rng.choice(["evidence", "allocation"]), query))
    return out


def test_hostile_stored_values_and_requests_never_get_a_server_error(
    hostile: HostileDb, tmp_path: Path, postgres_up: PostgresService
) -> None:
    settings = hostile.settings.model_copy(
        update={"gateway_rate_per_s": 10000.0, "gateway_burst": 10000, "gateway_auth_fail_burst": 10000}
    )
    gw = GatewayProcess(settings, tmp_path / "gateway.log").start()
    statuses: Counter[int] = Counter()
    not_error_body = 0
    no_answer = 0
    stated_exclusions = 0
    wrong: list[str] = []
    sent = 0
    try:
        token = issue(settings, None, role="program-manager")
        headers = {"Authorization": f"Bearer {token}"}
        with httpx.Client(base_url=gw.url, headers=headers, timeout=120) as client:

            def get(kind: str, query: dict[str, str]) -> httpx.Response:
                nonlocal sent, not_error_body, no_answer
                sent += 1
                try:
                    r = client.get(f"/v1/reports/{kind}", params=query)
                except httpx.TransportError as exc:  # counted: the connection closed without an answer
                    no_answer += 1
                    return httpx.Response(599, text=f"no answer: {exc!r}")
                statuses[r.status_code] += 1
                if r.status_code != 200:
                    try:
                        body: Any = r.json()
                    except ValueError:
                        body = None
                    if not isinstance(body, dict) or set(body) != {"error", "message", "rejected"}:
                        not_error_body += 1
                return r

            # 1. every report shape over the hostile data: 200, exclusions stated, figures exact
            period = {"from": T0.isoformat(), "to": END.isoformat(), "generated_at": WHEN}
            shapes = [
                {},
                {"format": "csv"},
                {"granularity": "day"},
                {"granularity": "year"},
                {"lang": "ko"},
                {"vendor": "sapeon"},
                {"vendor": "rebellions"},
                {"site": "nhn-cloud-gwangju"},
                {"to": "2026-03-02T19:30Z"},
                {"from": "2026-03-02T18:30Z", "to": "2026-03-02T19:30Z"},
            ]
            for kind in ("evidence", "allocation"):
                for shape in shapes:
                    r = get(kind, {**period, **shape})
                    if r.status_code == 200 and "data quality:" in r.text:
                        stated_exclusions += 1
            wrong = _wrong(get("evidence", period), hostile)
            alloc = get("allocation", period)
            alloc_lines = [g for g in gaps(alloc.json()) if g.startswith("data quality")] if alloc.is_success else []
            # 2. hostile requests
            for kind, query in _hostile_queries(random.Random(20261207), 400):
                get(kind, query)
            # 3. the service still answers the honest request the same way
            wrong += [f"after the hostile requests: {w}" for w in _wrong(get("evidence", period), hostile)]
    finally:
        gw.stop()
    server_errors = sum(n for s, n in statuses.items() if s >= 500)
    figures = {
        "requests_sent": sent,
        "statuses": dict(sorted(statuses.items())),
        "server_errors": server_errors,
        "no_answer": no_answer,
        "refusals_not_error_body": not_error_body,
        "reports_stating_exclusions": stated_exclusions,
        "report_shapes": 2 * len(shapes),
        "throughput_samples_injected": sum(hostile.expected.throughput_samples.values()),
        "energy_rows_made_impossible": sum(hostile.expected.energy_rows.values()),
        "util_rows_made_impossible": sum(hostile.expected.util_rows.values()),
        "figures_wrong": len(wrong),
        "allocation_quality_lines": len(alloc_lines),
        "served_groups_checked": len(table(hostile.clean, "service")),
    }
    record_figures("report_hostile", figures)
    assert server_errors == 0, (statuses, gw.log())
    assert no_answer == 0, gw.log()
    assert not_error_body == 0
    assert wrong == []
    assert stated_exclusions == 2 * len(shapes), "every report over the hostile data states what it left out"
    assert statuses[200] >= 2 * len(shapes) + 3 and statuses[422] > 100

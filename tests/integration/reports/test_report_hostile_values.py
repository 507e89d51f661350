"""Reports over hostile stored values and hostile requests: infinite, NaN and impossible throughputs, power,
energy and utilization stored in the database are left out of every figure and the report says how many
(the figures equal the clean report's minus exactly what was replaced); the HTTP endpoints answer 200 and
the CLI writes and verifies the reports; extreme dates and garbage parameters answer 422 in the API's
ErrorBody shape, and exit 2 with one line in the CLI; generated requests never get a 5xx."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from fastapi import FastAPI
from hostile_fleet import END, T0, Expected, HostileDb, build, fill_hostile, gaps, stated, table, wrong_figures
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from console.main import app
from infra.postgres import PostgresService
from kcloud.db.rollups import refresh_rollups
from kcloud.settings import Settings
from reports.common import served_amount
from reports.http import report_router

runner = CliRunner()
WHEN = "2026-04-01T00:00:00Z"
PERIOD = {"from": T0.isoformat(), "to": END.isoformat(), "generated_at": WHEN}


@pytest.fixture(scope="module")
def hostile(base_settings: Settings, postgres_up: PostgresService) -> Iterator[HostileDb]:
    yield from fill_hostile(base_settings, postgres_up)


class Client:
    """The report router in an app of its own, called through httpx's ASGI transport (no server)."""

    def __init__(self, api: FastAPI) -> None:
        self.transport = httpx.ASGITransport(app=api, raise_app_exceptions=False)

    def get(self, path: str, params: dict[str, str] | None = None) -> httpx.Response:
        async def call() -> httpx.Response:
            async with httpx.AsyncClient(transport=self.transport, base_url="http://gateway") as c:
                return await c.get(path, params=params)

        return asyncio.run(call())


@pytest.fixture(scope="module")
def client(hostile: HostileDb) -> Client:
    api = FastAPI()
    api.include_router(report_router(hostile.settings, lambda: None))
    return Client(api)


def _cli(hostile: HostileDb, *args: str) -> tuple[int, str]:
    result = runner.invoke(app, ["report", *args], env={"KCLOUD_DATABASE_URL": hostile.settings.effective_database_url})
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.output


def _check_evidence(report: dict[str, Any], clean: dict[str, Any], ex: Expected, names: dict[int, str]) -> None:
    assert ex.throughput_samples and any(ex.energy_rows.values()) and any(ex.util_rows.values())
    assert wrong_figures(report, clean, ex, names) == []
    assert not any("data quality" in line for line in gaps(clean))


def test_impossible_stored_values_are_left_out_of_the_figures_and_counted(hostile: HostileDb) -> None:
    report = build(hostile.settings)
    _check_evidence(report, hostile.clean, hostile.expected, hostile.workloads)
    assert not any("GPU baseline" in line for line in gaps(report)), "the H100s' own group lines count them"


def test_the_gpu_baseline_outside_the_filters_states_what_it_left_out(hostile: HostileDb) -> None:
    ex, gpus = hostile.expected, ("nvidia", "nhn-cloud-gwangju")
    lines = gaps(build(hostile.settings, vendor="sapeon"))
    who = "the GPU baseline at nhn-cloud-gwangju (GPUs outside the report's filters included)"
    assert ex.throughput_samples[gpus] and ex.energy_rows[gpus]
    assert stated(lines, who, "the throughput of") == ex.throughput_samples[gpus]
    assert stated(lines, who, "the energy of") == ex.energy_rows[gpus]
    assert stated(lines, who, "the utilization of") == 0  # the baseline shows no utilization figure


def test_http_endpoints_answer_200_and_state_the_exclusions(hostile: HostileDb, client: Client) -> None:
    for kind in ("evidence", "allocation"):
        for fmt in ("json", "csv"):
            r = client.get(f"/v1/reports/{kind}", params={**PERIOD, "format": fmt})
            assert r.status_code == 200, r.text
            assert "data quality:" in r.text
    body = client.get("/v1/reports/evidence", params=PERIOD).json()
    _check_evidence(body, hostile.clean, hostile.expected, hostile.workloads)
    alloc = client.get("/v1/reports/allocation", params=PERIOD).json()
    total = sum(hostile.expected.throughput_samples.values())
    assert stated(gaps(alloc), "the report's devices", "the throughput of") == total
    # every workload of every group: the clean evidence report's service table minus what was replaced
    clean = {r["workload"]: 0.0 for r in table(hostile.clean, "service")}
    gone = dict.fromkeys(clean, 0.0)
    for r in table(hostile.clean, "service"):
        clean[r["workload"]] += r["served"]
    units = {r["workload"]: r["unit"] for r in table(hostile.clean, "service")}
    for (_, w), amount in hostile.expected.units.items():
        name = hostile.workloads[w]
        gone[name] += served_amount(units[name], amount)
    mix: dict[str, float] = dict.fromkeys(clean, 0.0)
    for r in table(alloc, "workload_mix"):
        mix[r["workload"]] += r["served"]
    for name, amount in clean.items():
        assert mix[name] == pytest.approx(amount - gone[name], abs=1.0), name


def test_cli_writes_and_verifies_reports_over_hostile_values(hostile: HostileDb, tmp_path: Path) -> None:
    for kind in ("evidence", "allocation"):
        out = tmp_path / f"{kind}.json"
        args = ["--from", T0.isoformat(), "--to", END.isoformat(), "--generated-at", WHEN, "--out", str(out)]
        code, text = _cli(hostile, kind, *args)
        assert code == 0, text
        assert b"data quality:" in out.read_bytes()
        code, text = _cli(hostile, "verify", str(out))
        assert code == 0, text
    code, text = _cli(hostile, "evidence", "--from", T0.isoformat(), "--to", "2026-03-02T19:30Z", "--out",
                      str(tmp_path / "edge.csv"))  # fmt: skip
    assert code == 0, text  # the half hour at the end is read from the raw samples
    assert "data quality:" in (tmp_path / "edge.csv").read_text()


@pytest.mark.parametrize(
    ("query", "param"),
    [
        ({"from": "0001-01-01", "to": "9999-12-31"}, "from"),
        ({"from": "2026-03-02", "to": "9999-12-31"}, "to"),
        ({"generated_at": "9999-12-31T23:59:59-14:00"}, "generated_at"),
        ({"generated_at": "0001-01-01T00:00:00+14:00"}, "generated_at"),
        ({"from": "1999-12-31"}, "from"),
        ({"to": "2100-01-01"}, "to"),
        ({"from": "2026-03-02T00:00+14:00", "to": "0001-01-01T00:00+14:00"}, "to"),
        ({"from": "not a date"}, "from"),
        ({"from": "2026-03-05", "to": "2026-03-01"}, "to"),
        ({"format": "xml"}, "format"),
        ({"granularity": "week"}, "granularity"),
        ({"vendor": "nv\x00idia"}, "vendor"),
        ({"from": None}, "from"),
    ],
)
def test_hostile_parameters_answer_422_in_the_error_shape_and_exit_2(
    hostile: HostileDb, client: Client, tmp_path: Path, query: dict[str, str | None], param: str
) -> None:
    merged = {k: v for k, v in {**PERIOD, **query}.items() if v is not None}
    r = client.get("/v1/reports/evidence", params=merged)
    assert r.status_code == 422, r.text
    body = r.json()
    assert set(body) == {"error", "message", "rejected"}
    assert body["error"] == "invalid_parameter"
    assert param in body["message"]
    if "vendor" in query:  # a NUL cannot be an argv string
        return
    options = {"from": "--from", "to": "--to", "generated_at": "--generated-at", "format": "--format"}
    args = [a for k, v in merged.items() for a in (options.get(k, f"--{k}"), v)]
    code, text = _cli(hostile, "evidence", *args, "--out", str(tmp_path / "x.json"))
    if param == "from" and query["from"] is None:
        assert code == 2 and "--from" in text  # typer's own usage error
        return
    assert code == 2, text
    assert f"--{param.replace('_', '-')}" in text
    assert "Traceback" not in text
    assert not (tmp_path / "x.json").exists()


_EDGES = [
    "0001-01-01", "1999-12-31", "2000-01-01", "2000-01-01T00:00Z", "1999-12-31T23:59-00:01", "2026-03-02",
    "2026-03-02T18:00Z", "2026-03-02T20:00+00:00", "2026-03-02T19:30:30Z", "2099-12-31", "2100-01-01",
    "2100-01-01T00:00Z", "2100-01-01T00:01+00:01", "9999-12-31", "9999-12-31T23:59:59-14:00",
    "0001-01-01T00:00+14:00", "2026-02-30", "2026-03-02T24:00Z", "", " ", "Z", "2026-03-02T18:00",
]  # fmt: skip
_ZONES = [timezone(timedelta(hours=h)) for h in range(-14, 15)]
_DATES = st.one_of(
    st.sampled_from(_EDGES),
    st.datetimes(timezones=st.none() | st.sampled_from(_ZONES)).map(lambda d: d.isoformat()),
    st.text(max_size=40),
    st.none(),
)


@given(
    start=_DATES,
    end=_DATES,
    generated_at=_DATES,
    fmt=st.sampled_from([None, "json", "csv", "xml", "", "JSON"]),
    granularity=st.sampled_from(["month", "day", "year", "quarter", "", "week"]),
    vendor=st.one_of(st.none(), st.sampled_from(["sapeon", "rebellions", "nvidia", "nvidai"]), st.text(max_size=20)),
    kind=st.sampled_from(["evidence", "allocation"]),
)
@hypothesis_settings(max_examples=80, deadline=None, database=None, suppress_health_check=list(HealthCheck))
def test_generated_report_requests_never_get_a_server_error(  # noqa: PLR0917 (one argument per parameter)
    client: Client,
    start: str | None,
    end: str | None,
    generated_at: str | None,
    fmt: str | None,
    granularity: str,
    vendor: str | None,
    kind: str,
) -> None:
    query = {"from": start, "to": end, "generated_at": generated_at, "format": fmt, "granularity": granularity}
    query["vendor"] = vendor
    r = client.get(f"/v1/reports/{kind}", params={k: v for k, v in query.items() if v is not None})
    assert r.status_code < 500, (query, r.text)
    if r.status_code != 200:
        assert set(r.json()) == {"error", "message", "rejected"}


def test_a_stored_report_row_no_sample_could_serve_and_a_row_of_impossible_seconds_are_left_out(
    hostile: HostileDb,
) -> None:
    before = build(hostile.settings)
    url = hostile.settings.effective_database_url
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT r.device_id, r.bucket, r.workload_id, r.units, r.samples, d.vendor_id, n.site_id, w.name, w.unit "
            "FROM device_report_1h r JOIN devices d USING (device_id) JOIN nodes n USING (node_id) "
            "JOIN workloads w USING (workload_id) WHERE r.units > 1000 ORDER BY 1, 2, 3 LIMIT 1"
        ).fetchone()
        assert row is not None
        device, bucket, workload, units, samples, vendor, site, name, unit = row
        conn.execute(
            "UPDATE device_report_1h SET units = 'Infinity' WHERE device_id = %s AND bucket = %s AND workload_id = %s",
            (device, bucket, workload),
        )
        first = conn.execute(
            "UPDATE device_rollup_1m SET seconds_observed = 'NaN' WHERE (device_id, bucket) = "
            "(SELECT device_id, bucket FROM device_rollup_1m WHERE device_id = %s ORDER BY bucket LIMIT 1) "
            "RETURNING bucket",
            (device,),
        ).fetchone()
        assert first is not None
    with psycopg.connect(url, autocommit=True) as conn:
        refresh_rollups(conn, T0, END)  # the hour of that minute now sums a NaN
        seconds = conn.execute(
            "SELECT samples FROM device_rollup_1h WHERE device_id = %s "
            "AND bucket = date_bin('1 hour', %s, TIMESTAMPTZ '2000-01-01 00:00+00')",
            (device, first[0]),
        ).fetchone()
        assert seconds is not None
    after = build(hostile.settings)
    key = (vendor, site, name)
    old = next(r for r in table(before, "service") if (r["vendor"], r["site"], r["workload"]) == key)
    new = next(r for r in table(after, "service") if (r["vendor"], r["site"], r["workload"]) == key)
    assert new["served"] == pytest.approx(old["served"] - served_amount(unit, float(units)), abs=0.15)
    who = f"{vendor} at {site}"
    assert stated(gaps(after), who, "the throughput of") == stated(gaps(before), who, "the throughput of") + (samples)
    assert any(
        f"{who}: 1 rollup row(s) ({seconds[0]} sample(s)) are left out of every figure" in g for g in gaps(after)
    )
    old_u = next(r for r in table(before, "utilization") if (r["vendor"], r["site"]) == (vendor, site))
    new_u = next(r for r in table(after, "utilization") if (r["vendor"], r["site"]) == (vendor, site))
    assert new_u["observed_hours"] < old_u["observed_hours"]

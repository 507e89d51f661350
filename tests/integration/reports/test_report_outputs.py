"""What a program manager does with the reports: writes them in every format through `kcloud report`,
gets the same bytes for the same data, verifies a file against the database (and is told which figure
was changed), reads Korean titles in the PDF, and gets one clear sentence for bad input."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI, Header, HTTPException
from report_fleet import END, T0, FleetDb
from typer.testing import CliRunner

from console.main import app
from reports.http import report_router

runner = CliRunner()
WHEN = "2026-04-01T00:00:00Z"
PERIOD = ["--from", T0.isoformat(), "--to", END.isoformat()]


def _run(fleet_db: FleetDb, *args: str) -> tuple[int, str]:
    result = runner.invoke(
        app, ["report", *args], env={"KCLOUD_DATABASE_URL": fleet_db.settings.effective_database_url}
    )
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.output


def test_json_and_csv_are_byte_identical_across_runs(fleet_db: FleetDb, tmp_path: Path) -> None:
    for fmt in ("json", "csv"):
        outs = []
        for n in (1, 2):
            out = tmp_path / f"r{n}.{fmt}"
            code, text = _run(fleet_db, "evidence", *PERIOD, "--format", fmt, "--out", str(out), "--generated-at", WHEN)
            assert code == 0, text
            outs.append(out.read_bytes())
        assert outs[0] == outs[1]
        assert b"generated_at" in outs[0]


def test_verify_accepts_an_untouched_report_and_names_a_changed_figure(fleet_db: FleetDb, tmp_path: Path) -> None:
    out = tmp_path / "evidence.json"
    assert _run(fleet_db, "evidence", *PERIOD, "--vendor", "sapeon", "--out", str(out))[0] == 0
    code, text = _run(fleet_db, "verify", str(out))
    assert code == 0, text
    assert "matches the database" in text
    body = json.loads(out.read_bytes())
    table = next(t for s in body["sections"] for t in s["tables"] if t["id"] == "availability")
    column = [c["id"] for c in table["columns"]].index("availability_pct")
    table["rows"][0][column] = 99.999
    out.write_text(json.dumps(body, ensure_ascii=False))
    code, text = _run(fleet_db, "verify", str(out))
    assert code == 1
    assert "availability" in text
    assert "availability_pct" in text
    assert "99.999" in text


def test_verify_of_a_csv_report_names_a_changed_figure(fleet_db: FleetDb, tmp_path: Path) -> None:
    out = tmp_path / "evidence.csv"
    assert _run(fleet_db, "evidence", *PERIOD, "--out", str(out))[0] == 0
    assert _run(fleet_db, "verify", str(out))[0] == 0
    lines = out.read_text().splitlines()
    i = next(n for n, line in enumerate(lines) if line.startswith("energy,") and ",energy_kwh," in line)
    parts = lines[i].split(",")
    parts[-2] = "123.456"
    lines[i] = ",".join(parts)
    out.write_text("\n".join(lines) + "\n")
    code, text = _run(fleet_db, "verify", str(out))
    assert code == 1
    assert "energy_kwh" in text and "123.456" in text


@pytest.mark.skipif(shutil.which("pdftoppm") is None, reason="poppler-utils (pdftoppm) is not installed")
def test_korean_pdf_renders_and_shows_korean_section_titles(fleet_db: FleetDb, tmp_path: Path) -> None:
    pdf = tmp_path / "evidence.pdf"
    code, text = _run(fleet_db, "evidence", *PERIOD, "--lang", "ko", "--format", "pdf", "--out", str(pdf))
    assert code == 0, text
    subprocess.run(["pdftoppm", "-png", "-r", "40", "-f", "1", "-l", "1", str(pdf), str(tmp_path / "page")], check=True)
    pngs = list(tmp_path.glob("page*.png"))
    assert pngs and pngs[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    extracted = subprocess.run(["pdftotext", str(pdf), "-"], check=True, capture_output=True, text=True).stdout
    for title in ("1. 보유 현황", "2. 가용성", "3. 활용률", "5. 에너지와 효율", "7. 출처"):
        assert title in extracted


def test_html_report_holds_every_section_with_its_definition(fleet_db: FleetDb, tmp_path: Path) -> None:
    out = tmp_path / "evidence.html"
    assert _run(fleet_db, "evidence", *PERIOD, "--out", str(out))[0] == 0
    page = out.read_text()
    for title in ("1. Inventory", "2. Availability", "4. Service evidence", "6. Telemetry completeness"):
        assert title in page
    assert "Unplanned downtime is an offline spell" in page


def test_allocation_report_ranks_idle_allocations(fleet_db: FleetDb, tmp_path: Path) -> None:
    out = tmp_path / "allocation.json"
    code, text = _run(fleet_db, "allocation", *PERIOD, "--out", str(out), "--generated-at", WHEN)
    assert code == 0, text
    body = json.loads(out.read_bytes())
    tables = {t["id"]: t for s in body["sections"] for t in s["tables"]}
    tenants = {r[0]: r for r in tables["tenants"]["rows"]}
    assert "seoul-metropolitan-gov" in tenants
    ranked = tables["returnable"]["rows"]
    assert ranked, "the fleet has allocations with nothing scheduled"
    hours = [r[7] for r in ranked if r[-1].endswith("nothing served")]
    assert hours == sorted(hours, reverse=True)
    assert _run(fleet_db, "verify", str(out))[0] == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--vendor", "nvidai"], "unknown vendor 'nvidai'; known vendors:"),
        (["--site", "moon-base"], "unknown site 'moon-base'"),
        (["--programme", "K-Cloud"], "unknown programme 'K-Cloud'"),
    ],
)
def test_unknown_filters_are_one_clear_line(fleet_db: FleetDb, tmp_path: Path, args: list[str], message: str) -> None:
    code, text = _run(fleet_db, "evidence", *PERIOD, *args, "--out", str(tmp_path / "x.json"))
    assert code == 1
    assert message in text
    assert "Traceback" not in text
    assert not (tmp_path / "x.json").exists()


def test_inverted_range_and_empty_period_are_clear(fleet_db: FleetDb, tmp_path: Path) -> None:
    code, text = _run(
        fleet_db, "evidence", "--from", "2026-03-05", "--to", "2026-03-01", "--out", str(tmp_path / "x.csv")
    )
    assert code == 2
    assert "is not before --to" in text
    code, text = _run(
        fleet_db, "evidence", "--from", "2025-01-01", "--to", "2025-01-31", "--out", str(tmp_path / "x.csv")
    )
    assert code == 1
    assert "no data: no device was in service between 2025-01-01" in text
    assert "Traceback" not in text


def test_gateway_route_serves_csv_to_authorized_tokens_only(fleet_db: FleetDb) -> None:
    def authorize(authorization: str = Header("")) -> None:
        if authorization != "Bearer pm":
            raise HTTPException(403, "program-manager token required")

    api = FastAPI()
    api.include_router(report_router(fleet_db.settings, authorize))
    query = {"from": T0.isoformat(), "to": END.isoformat(), "format": "csv", "generated_at": WHEN}
    pm = {"Authorization": "Bearer pm"}

    async def calls() -> list[httpx.Response]:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=api), base_url="http://gateway") as client:
            return [
                await client.get("/v1/reports/evidence", params=query),
                await client.get("/v1/reports/evidence", params=query, headers=pm),
                await client.get("/v1/reports/evidence", params={**query, "vendor": "nvidai"}, headers=pm),
            ]

    denied, ok, bad = asyncio.run(calls())
    assert denied.status_code == 403
    assert ok.status_code == 200
    assert ok.headers["content-type"].startswith("text/csv")
    assert ok.text.startswith("table,key,column,value,unit\n")
    assert bad.status_code == 400
    assert bad.json()["error"] == "report_refused"
    assert "unknown vendor 'nvidai'" in bad.json()["message"]

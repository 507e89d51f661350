"""The gateway app without its backends: the OpenAPI document describes every answer a vendor can
get, its example is a valid snapshot, `require_role` guards an added router, and the CLI teaches."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import httpx
from fastapi import APIRouter, Depends, FastAPI
from typer.testing import CliRunner

from console.gateway_cmd import gateway_app
from gateway.app import create_app
from gateway.auth import Principal, authenticate, require_role
from gateway.cli import vendor_app
from gateway.push import EXAMPLE_SNAPSHOT
from kcloud.records import parse_snapshot
from kcloud.settings import Settings
from kcloud.timewindow import TimeWindow


def _get(app: FastAPI, path: str) -> httpx.Response:
    async def go() -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gateway") as client:
            return await client.get(path)

    return asyncio.run(go())


def test_openapi_documents_every_answer_of_a_push_with_retry_after_where_it_is_sent() -> None:
    spec = create_app(Settings()).openapi()
    push = spec["paths"]["/v1/telemetry"]["post"]
    assert set(push["responses"]) == {"202", "400", "401", "403", "413", "415", "422", "429", "503"}
    for status in ("429", "503"):
        assert push["responses"][status]["headers"]["Retry-After"]["required"] is True
    assert set(push["requestBody"]["content"]) == {"application/json", "application/x-ndjson"}
    assert push["security"] == [{"VendorToken": []}]
    assert spec["components"]["schemas"]["NodeSnapshot"]["properties"]["schema"]["const"] == "kcloud.telemetry/1"


def test_the_documented_example_is_a_valid_snapshot_dated_inside_the_window_when_served() -> None:
    snap = parse_snapshot(json.dumps(EXAMPLE_SNAPSHOT))
    assert snap.source == "push:furiosa" and {d.vendor for d in snap.devices} == {"furiosa"}
    settings = Settings()
    served = _get(create_app(settings), "/openapi.json").json()
    content = served["paths"]["/v1/telemetry"]["post"]["requestBody"]["content"]
    for example in (content["application/json"]["example"], json.loads(content["application/x-ndjson"]["example"])):
        at = parse_snapshot(json.dumps(example)).collected_at
        assert TimeWindow.from_settings(settings).problem(at, datetime.now(UTC)) is None, example["collected_at"]


def test_require_role_lets_the_role_through_and_refuses_others_with_403(tmp_path: Path) -> None:
    router = APIRouter()

    @router.get("/v1/test/needs-role")
    async def evidence(who: Annotated[Principal, Depends(require_role("program-manager"))]) -> dict[str, str]:
        return {"role": who.role, "vendor": str(who.vendor_id)}

    # the app is not started (no database): its audit rows are kept in the spool
    spool = tmp_path / "spool.jsonl"
    app = create_app(Settings(gateway_audit_spool=spool), extra_routers=[router])
    app.dependency_overrides[authenticate] = lambda: Principal("0123456789ab", None, "program-manager")
    assert _get(app, "/v1/test/needs-role").json() == {"role": "program-manager", "vendor": "None"}
    app.dependency_overrides[authenticate] = lambda: Principal("0123456789ab", "furiosa", "vendor")
    refused = _get(app, "/v1/test/needs-role")
    assert refused.status_code == 403
    assert refused.json()["error"] == "forbidden_role" and "'program-manager'" in refused.json()["message"]
    kept = [json.loads(line) for line in spool.read_text().splitlines()]
    assert [r["status"] for r in kept] == [200, 403]
    assert kept[1]["request_id"] == refused.headers["X-Request-Id"]
    assert spool.stat().st_mode & 0o777 == 0o600


def test_gateway_and_vendor_commands_teach_their_options() -> None:
    runner = CliRunner()
    gateway = runner.invoke(gateway_app, ["--help"])
    assert gateway.exit_code == 0 and "--host" in gateway.output and "--port" in gateway.output
    token = runner.invoke(vendor_app, ["token", "--help"])
    assert token.exit_code == 0
    for name in ("create", "revoke", "list"):
        assert f" {name} " in token.output
    add = runner.invoke(vendor_app, ["add", "--help"])
    assert "--domestic" in add.output and "--foreign" in add.output

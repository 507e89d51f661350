"""The live `/openapi.json` holds: schemathesis generates requests from it (valid and invalid, with and
without a token) against a running gateway, and every answer is documented, matches its schema, and
none is a server error."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import requests
import schemathesis
from gateway_helpers import GatewayProcess, issue
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis.strategies import SearchStrategy
from schemathesis import Case, GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
EXAMPLES = 50


class _Adapter(requests.adapters.BaseAdapter):
    """requests' HTTP adapter behind a plain `BaseAdapter`. urllib3-future (installed beside urllib3 for
    niquests) replaces urllib3's pool container with one schemathesis cannot count the connections of;
    schemathesis only counts pools of `HTTPAdapter` instances, so this wrapper sends requests unchanged."""

    def __init__(self) -> None:
        super().__init__()
        self._inner = requests.adapters.HTTPAdapter()

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        return self._inner.send(request, **kwargs)

    def close(self) -> None:
        self._inner.close()


def _session() -> requests.Session:
    session = requests.Session()
    session.adapters.clear()
    session.mount("http://", _Adapter())
    return session


@schemathesis.serializer("application/x-ndjson")
def _ndjson(ctx: Any, value: Any) -> bytes:
    """NDJSON bodies as a client sends them: a string as-is, anything else as one JSON line."""
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8", "surrogatepass")
    return json.dumps(value).encode() + b"\n"


def _explore(cases: SearchStrategy[Case[Any]], base_url: str, headers: dict[str, str]) -> set[int]:
    """Send up to EXAMPLES generated requests and validate each answer; returns the statuses seen."""
    seen: set[int] = set()
    session = _session()

    @given(case=cases)
    @hypothesis_settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    def run(case: Case[Any]) -> None:
        response = case.call_and_validate(
            base_url=base_url, session=session, headers=headers, checks=CHECKS, timeout=30
        )
        seen.add(response.status_code)

    try:
        run()
    finally:
        session.close()
    return seen


def test_generated_requests_get_documented_answers_and_no_server_error(
    start_gateway: Callable[..., GatewayProcess],
) -> None:
    gw = start_gateway(
        gateway_rate_per_s=1000.0, gateway_burst=1000, gateway_auth_fail_burst=100000, gateway_max_body_bytes=65536
    )
    token = issue(gw.settings, "furiosa")
    pm_token = issue(gw.settings, None, role="program-manager")
    schema = schemathesis.openapi.from_url(f"{gw.url}/openapi.json")
    results = list(schema.get_all_operations())
    assert all(isinstance(r, Ok) for r in results), f"the live OpenAPI document has invalid parts: {results}"
    operations = [r.ok() for r in results if isinstance(r, Ok)]
    assert {f"{op.method.upper()} {op.path}" for op in operations} >= {
        "POST /v1/telemetry",
        "GET /healthz",
        "GET /metrics",
        "GET /v1/reports/evidence",
    }
    statuses: set[int] = set()

    for operation in operations:
        inputs = len(operation.body) + sum(
            len(p) for p in (operation.query, operation.headers, operation.path_parameters, operation.cookies)
        )
        # an operation without inputs has no invalid request to make
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE) if inputs else (GenerationMode.POSITIVE,):
            for headers in ({"Authorization": f"Bearer {token}"}, {"Authorization": f"Bearer {pm_token}"}, {}):
                statuses |= _explore(operation.as_strategy(generation_mode=mode), gw.url, headers)
        for examples in schema.get_strategies_from_examples(operation):  # the documented examples: accepted
            statuses |= _explore(examples, gw.url, {"Authorization": f"Bearer {token}"})

    # the documented example is accepted; generated snapshots meet every other outcome of a push
    assert {200, 202, 400, 401, 403, 422} <= statuses, statuses

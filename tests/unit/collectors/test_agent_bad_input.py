"""`kcloud collect` against bad input: each case gives one clear error naming the source, and nothing
crashes (a running agent skips the tick and goes on). Run through the CLI, as an operator would."""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest
from typer.testing import CliRunner

from collectors.agent import Agent, AgentOptions, CollectorSource
from collectors.base import build_collector
from collectors.cli import app
from kcloud.records import NodeRef, parse_snapshot
from kcloud.settings import Settings

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
DCGM_PAGE = (FIXTURES / "prometheus" / "titan-v-dcgm-exporter-issue58.prom").read_text()
HTML = b"<!DOCTYPE html>\n<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>\n"


class _Site(BaseHTTPRequestHandler):
    """Answers each path with a fixed (status, content type, body)."""

    pages: ClassVar[dict[str, tuple[int, str, bytes]]] = {
        "/html": (200, "text/html", HTML),
        "/error": (503, "text/html", HTML),
        "/empty": (200, "text/plain", b""),
        "/garbage": (200, "text/plain", ("}}} not a metric\n" + DCGM_PAGE + "\x00\x01 binary junk\n").encode()),
    }

    def do_GET(self) -> None:
        status, ctype, body = self.pages[self.path]
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def site() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Site)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(state_dir=tmp_path / "state", kafka_bootstrap="127.0.0.1:9")


Invoke = Callable[..., tuple[int, str, str]]


@pytest.fixture
def collect(settings: Settings) -> Invoke:
    """Run `kcloud collect ARGS`; returns (exit code, stdout, stderr)."""

    def run(*args: str) -> tuple[int, str, str]:
        result = CliRunner().invoke(app, list(args), obj=settings)
        assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
        return result.exit_code, result.stdout, result.stderr

    return run


def _one_line_error(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.startswith("kcloud collect:")]
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    return lines[0]


def test_page_with_garbage_lines_still_gives_its_devices_and_logs_the_skipped_lines(
    collect: Invoke, site: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="kcloud"):
        code, out, _ = collect("prom", "--map", "dcgm", "--url", f"{site}/garbage", "--once", "--print")
    assert code == 0
    snapshot = parse_snapshot(out.strip())
    assert [d.clock_mhz for d in snapshot.devices] == [135.0, 135.0]
    skipped = [r.getMessage() for r in caplog.records if "malformed_line" in r.getMessage()]
    assert skipped and skipped[0].startswith("prom:dcgm: malformed_line x2")


@pytest.mark.parametrize(
    ("path", "says"),
    [
        ("/html", "returned an HTML page, not metrics"),
        ("/error", "answered HTTP 503"),
        ("/empty", "returned an empty body"),
    ],
)
def test_unusable_exporter_answer_is_one_error_naming_source_and_url(
    collect: Invoke, site: str, path: str, says: str
) -> None:
    code, out, err = collect("prom", "--map", "dcgm", "--url", f"{site}{path}", "--once", "--print")
    assert code == 1
    assert out == ""
    line = _one_line_error(err)
    assert f"prom:dcgm: {'scrape of ' if path == '/error' else ''}{site}{path}" in line
    assert says in line


def test_refused_connection_is_one_error_saying_to_check_the_exporter(collect: Invoke) -> None:
    code, _, err = collect("prom", "--map", "rbln", "--url", "http://127.0.0.1:9/metrics", "--once", "--print")
    assert code == 1
    line = _one_line_error(err)
    assert "prom:rbln: scrape of http://127.0.0.1:9/metrics failed" in line
    assert "refused" in line.lower()
    assert "check that the exporter is running" in line


def test_nvidia_smi_csv_with_the_wrong_column_count_is_one_error_naming_the_file(
    collect: Invoke, tmp_path: Path
) -> None:
    csv = tmp_path / "short-rows.csv"
    csv.write_text("0, GPU-8f4c1d2e-5a6b-4c7d-9e8f-0a1b2c3d4e5f, NVIDIA H100 80GB HBM3, 87\n")
    code, out, err = collect("nvidia-smi", "--file", str(csv), "--once", "--print")
    assert code == 1
    assert out == ""
    line = _one_line_error(err)
    assert f"nvidia-smi: no device samples in {csv}" in line
    assert "csv_column_mismatch" in line and "4 columns, expected 22 (or 12, the legacy query)" in line


def test_missing_capture_file_is_one_error_naming_it(collect: Invoke, tmp_path: Path) -> None:
    code, _, err = collect("prom", "--map", "dcgm", "--file", str(tmp_path / "nope.prom"), "--once", "--print")
    assert code == 1
    assert "nope.prom" in _one_line_error(err)


def test_unknown_exporter_map_is_a_configuration_error_listing_the_known_ones(collect: Invoke) -> None:
    code, _, err = collect("prom", "--map", "nvidiaa", "--file", "x.prom", "--once", "--print")
    assert code == 2
    line = _one_line_error(err)
    assert "unknown exporter 'nvidiaa'" in line and "dcgm" in line


def test_running_agent_skips_bad_ticks_logs_the_reason_once_and_recovers(
    site: str, settings: Settings, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    page = tmp_path / "page.prom"
    page.write_bytes(HTML)
    collector = build_collector("prom", {"exporter": "dcgm", "file": page})
    source = CollectorSource(collector, NodeRef(node_id="gpu-01", site_id="kt-cheonan"), origin=str(page))
    agent = Agent(source, settings, AgentOptions(interval_s=0.01, print_only=True))

    with caplog.at_level(logging.INFO, logger="kcloud.collectors"):
        assert [agent.tick() for _ in range(3)] == [0, 0, 0]  # no exception: the agent goes on
        page.write_text(DCGM_PAGE)  # the exporter is fixed
        assert agent.tick() == 1

    skipped = [r for r in caplog.records if "tick skipped" in r.getMessage()]
    assert len(skipped) == 1 and "prom:dcgm" in skipped[0].getMessage()
    assert any("reading again after 3 skipped tick(s)" in r.getMessage() for r in caplog.records)
    assert agent.ticks_skipped == 3 and agent.ticks_ok == 1
    exposition = agent.metrics.exposition().decode()
    assert 'kcloud_collector_ticks_total{outcome="skipped",source="prom:dcgm"} 3.0' in exposition


def test_metrics_port_already_taken_is_one_error_naming_the_port(collect: Invoke) -> None:
    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        port = taken.getsockname()[1]
        page = FIXTURES / "prometheus" / "titan-v-dcgm-exporter-issue58.prom"
        code, _, err = collect(
            "prom", "--map", "dcgm", "--file", str(page), "--once", "--print", "--metrics-port", str(port)
        )
    assert code == 1
    assert f"cannot serve metrics on port {port}" in _one_line_error(err)

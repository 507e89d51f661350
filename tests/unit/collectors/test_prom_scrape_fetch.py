"""The I/O half of the Prometheus source: scraping a real local HTTP endpoint, and its named errors."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest

from collectors.base import CollectorError, build_collector

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
PAGE = (FIXTURES / "prometheus" / "titan-v-dcgm-exporter-issue58.prom").read_bytes()


class _Exporter(BaseHTTPRequestHandler):
    seen_accept: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        _Exporter.seen_accept.append(self.headers.get("Accept", ""))
        if self.path != "/metrics":
            self.send_error(404, "Not Found")
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.send_header("Content-Length", str(len(PAGE)))
        self.end_headers()
        self.wfile.write(PAGE)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def exporter_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Exporter)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_scrape_fetches_the_page_and_parse_maps_it(exporter_url: str) -> None:
    collector = build_collector("prom", {"exporter": "dcgm", "url": f"{exporter_url}/metrics"})
    assert collector.fetch() == PAGE
    assert [s.clock_mhz for s in collector.collect()] == [135.0, 135.0]
    assert _Exporter.seen_accept[-1].startswith("text/plain;version=0.0.4")


def test_scrape_answered_with_http_error_names_url_and_status(exporter_url: str) -> None:
    collector = build_collector("prom", {"exporter": "dcgm", "url": f"{exporter_url}/wrong"})
    with pytest.raises(CollectorError, match=rf"prom:dcgm: scrape of {exporter_url}/wrong answered HTTP 404"):
        collector.fetch()


def test_scrape_of_an_unreachable_exporter_says_to_check_it_is_running() -> None:
    collector = build_collector("prom", {"exporter": "rbln", "url": "http://127.0.0.1:9/metrics", "timeout_s": 2})
    with pytest.raises(CollectorError, match=r"prom:rbln: scrape of http://127.0.0.1:9/metrics failed: .*running"):
        collector.fetch()


def test_scrape_larger_than_max_bytes_is_refused(exporter_url: str) -> None:
    url = f"{exporter_url}/metrics"
    assert build_collector("prom", {"exporter": "dcgm", "url": url, "max_bytes": len(PAGE)}).fetch() == PAGE
    small = build_collector("prom", {"exporter": "dcgm", "url": url, "max_bytes": len(PAGE) - 1})
    with pytest.raises(CollectorError, match=rf"larger than max_bytes={len(PAGE) - 1}; raise max_bytes"):
        small.fetch()


def test_file_origin_reads_the_page_and_a_missing_file_is_named(
    tmp_path: Path, fixture_text: Callable[[str], str]
) -> None:
    page = tmp_path / "page.prom"
    page.write_text(fixture_text("prometheus/titan-v-dcgm-exporter-issue58.prom"), encoding="utf-8")
    assert build_collector("prom", {"exporter": "dcgm", "file": str(page)}).fetch() == PAGE
    missing = build_collector("prom", {"exporter": "dcgm", "file": str(tmp_path / "none.prom")})
    with pytest.raises(CollectorError, match=r"prom:dcgm: cannot read .*none.prom"):
        missing.fetch()

"""A small stand-in for Grafana's HTTP API (the endpoints `kcloud dashboards publish` uses), served by
http.server in a thread; it stores what it is sent and records every request."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Request:
    method: str
    path: str
    authorization: str | None
    body: Any


@dataclass
class GrafanaState:
    token: str = "glsa_test"
    datasources: dict[str, dict[str, Any]] = field(default_factory=dict)
    folders: dict[str, dict[str, Any]] = field(default_factory=dict)
    dashboards: dict[str, dict[str, Any]] = field(default_factory=dict)
    requests: list[Request] = field(default_factory=list)

    def writes(self) -> list[Request]:
        return [r for r in self.requests if r.method != "GET"]


def _handler(state: GrafanaState) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _reply(self, status: int, payload: Any) -> None:
            body = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            body: Any = json.loads(raw) if raw else {}
            auth = self.headers.get("Authorization")
            state.requests.append(Request(self.command, self.path, auth, body))
            if auth != f"Bearer {state.token}":
                self._reply(401, {"message": "invalid API key"})
                return
            route = (self.command, self.path.split("?")[0])
            if route[0] == "GET" and route[1].startswith("/api/datasources/uid/"):
                found = state.datasources.get(route[1].rsplit("/", 1)[1])
                if found is None:
                    self._reply(404, {"message": "Data source not found"})
                    return
                shown = {k: v for k, v in found.items() if k != "secureJsonData"}
                self._reply(200, {**shown, "id": 7, "readOnly": False, "secureJsonFields": {"password": True}})
            elif route == ("POST", "/api/datasources"):
                state.datasources[body["uid"]] = body
                self._reply(200, {"id": 7, "message": "Datasource added", "name": body["name"]})
            elif route[0] == "PUT" and route[1].startswith("/api/datasources/uid/"):
                state.datasources[route[1].rsplit("/", 1)[1]] = body
                self._reply(200, {"id": 7, "message": "Datasource updated"})
            elif route == ("GET", "/api/folders"):
                self._reply(200, list(state.folders.values()))
            elif route == ("POST", "/api/folders"):
                state.folders[body["uid"]] = {"id": len(state.folders) + 1, **body}
                self._reply(200, state.folders[body["uid"]])
            elif route[0] == "GET" and route[1].startswith("/api/dashboards/uid/"):
                found = state.dashboards.get(route[1].rsplit("/", 1)[1])
                if found is None:
                    self._reply(404, {"message": "Dashboard not found"})
                    return
                self._reply(200, {"dashboard": found["dashboard"], "meta": {"folderUid": found.get("folderUid", "")}})
            elif route == ("POST", "/api/dashboards/db"):
                board = dict(body["dashboard"])
                previous = state.dashboards.get(board["uid"])
                board["id"] = 40 + len(state.dashboards)
                board["version"] = (previous["dashboard"]["version"] + 1) if previous else 1
                state.dashboards[board["uid"]] = {"dashboard": board, "folderUid": body.get("folderUid", "")}
                self._reply(200, {"status": "success", "uid": board["uid"], "version": board["version"]})
            else:
                self._reply(404, {"message": f"no route {route}"})

        do_GET = do_POST = do_PUT = _handle  # noqa: N815

    return Handler


@contextmanager
def grafana_standin() -> Iterator[tuple[str, GrafanaState]]:
    """(base URL, state) of a running stand-in; stopped on exit."""
    state = GrafanaState()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", state
    finally:
        server.shutdown()
        server.server_close()
        thread.join()

"""Push the datasource and the dashboards to a running Grafana through its HTTP API (grafana-client).

Idempotent: each object is read first and written only when what we would send differs from what
Grafana holds (compared on the fields we send; Grafana's own additions such as `id` and `version` are
ignored). Each object's outcome is reported as `created`, `updated` or `unchanged`. The datasource's
password cannot be read back from Grafana, so a changed password alone is not detected: pass
`force_datasource=True` to write the datasource anyway.

Example:
    >>> publish(api, datasource, folder="kcloud")  # doctest: +SKIP
    [Outcome(kind='folder', key='kcloud', change='created'), ...]
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from grafana_client.api import GrafanaApi
from grafana_client.client import GrafanaClientError, GrafanaException

from dashboards.registry import DASHBOARDS, dashboard_json
from dashboards.sqlquery import DATASOURCE_UID

__all__ = ["Outcome", "PublishError", "connect_grafana", "publish", "same"]


class PublishError(RuntimeError):
    """Grafana refused or could not be reached; the message names the object and what Grafana said."""


@dataclass(frozen=True)
class Outcome:
    """What publishing did to one object."""

    kind: str
    key: str
    change: str

    def line(self) -> str:
        return f"{self.kind} {self.key}: {self.change}"


def connect_grafana(url: str, token: str | None, timeout: float = 10.0) -> GrafanaApi:
    """A client for the Grafana at `url` (e.g. http://grafana:3000), authenticated with an API or
    service-account token (or user:password in the URL when `token` is None)."""
    api: GrafanaApi = GrafanaApi.from_url(url, credential=token, timeout=timeout)
    return api


def same(wanted: Any, actual: Any) -> bool:
    """True when every field of `wanted` is in `actual` with the same value (recursively; lists must
    have the same length). Fields only `actual` has (Grafana's additions) do not count."""
    if isinstance(wanted, dict):
        return isinstance(actual, dict) and all(k in actual and same(v, actual[k]) for k, v in wanted.items())
    if isinstance(wanted, list):
        return (
            isinstance(actual, list)
            and len(wanted) == len(actual)
            and all(same(w, a) for w, a in zip(wanted, actual, strict=True))
        )
    return bool(wanted == actual)


def _missing(exc: GrafanaException) -> bool:
    return isinstance(exc, GrafanaClientError) and exc.status_code == 404


def _fail(what: str, exc: GrafanaException) -> PublishError:
    return PublishError(f"grafana: {what} failed: {exc.message}")


def _folder(api: Any, title: str) -> tuple[str, Outcome]:
    try:
        folders: list[dict[str, Any]] = api.folder.get_all_folders()
    except GrafanaException as exc:
        raise _fail("listing folders", exc) from exc
    for folder in folders:
        if folder.get("title") == title:
            return str(folder["uid"]), Outcome("folder", title, "unchanged")
    uid = re.sub(r"[^a-zA-Z0-9_-]+", "-", title).strip("-").lower()[:40] or "kcloud"
    try:
        created: dict[str, Any] = api.folder.create_folder(title, uid=uid)
    except GrafanaException as exc:
        raise _fail(f"creating folder {title!r}", exc) from exc
    return str(created.get("uid", uid)), Outcome("folder", title, "created")


def _datasource(api: Any, model: dict[str, Any], force: bool) -> Outcome:
    try:
        current: dict[str, Any] | None = api.datasource.get_datasource_by_uid(DATASOURCE_UID)
    except GrafanaException as exc:
        if not _missing(exc):
            raise _fail(f"reading datasource {DATASOURCE_UID}", exc) from exc
        current = None
    try:
        if current is None:
            api.datasource.create_datasource(model)
            return Outcome("datasource", DATASOURCE_UID, "created")
        comparable = {k: v for k, v in model.items() if k != "secureJsonData"}
        if same(comparable, current) and not force:
            return Outcome("datasource", DATASOURCE_UID, "unchanged")
        api.datasource.update_datasource_by_uid(DATASOURCE_UID, model)
    except GrafanaException as exc:
        raise _fail(f"writing datasource {DATASOURCE_UID}", exc) from exc
    return Outcome("datasource", DATASOURCE_UID, "updated")


def _dashboard(api: Any, board: dict[str, Any], folder_uid: str | None) -> Outcome:
    uid = str(board["uid"])
    try:
        current: dict[str, Any] | None = api.dashboard.get_dashboard(uid)
    except GrafanaException as exc:
        if not _missing(exc):
            raise _fail(f"reading dashboard {uid}", exc) from exc
        current = None
    if current is not None:
        in_folder = (current.get("meta") or {}).get("folderUid") or None
        if same(board, current.get("dashboard")) and in_folder == folder_uid:
            return Outcome("dashboard", uid, "unchanged")
    payload: dict[str, Any] = {"dashboard": {**board, "id": None}, "overwrite": True, "message": "kcloud publish"}
    if folder_uid is not None:
        payload["folderUid"] = folder_uid
    try:
        api.dashboard.update_dashboard(payload)
    except GrafanaException as exc:
        raise _fail(f"writing dashboard {uid}", exc) from exc
    return Outcome("dashboard", uid, "created" if current is None else "updated")


def publish(
    api: GrafanaApi, datasource: dict[str, Any], folder: str | None = None, *, force_datasource: bool = False
) -> list[Outcome]:
    """Create or update the datasource, the folder (when named) and every dashboard; the outcomes in order."""
    outcomes = [_datasource(api, datasource, force_datasource)]
    folder_uid: str | None = None
    if folder is not None:
        folder_uid, outcome = _folder(api, folder)
        outcomes.append(outcome)
    outcomes.extend(_dashboard(api, dashboard_json(spec), folder_uid) for spec in DASHBOARDS)
    return outcomes

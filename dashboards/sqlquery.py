"""A raw-SQL query target for Grafana's PostgreSQL datasource, which grafana-foundation-sdk lacks.

The SDK's panel builders take any `Dataquery`; this one serialises to what Grafana's SQL query editor
saves in code mode: `refId`, `rawSql`, `format` (`time_series` or `table`), `rawQuery`, `editorMode`
and the datasource reference.

Example:
    >>> SqlQuery().ref_id("A").raw_sql("SELECT 1 AS one").format("table").build().to_json()["rawSql"]
    'SELECT 1 AS one'
"""

from __future__ import annotations

from typing import Literal, Self

from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.cog import variants as cogvariants
from grafana_foundation_sdk.models.dashboard import DataSourceRef

__all__ = ["DATASOURCE_NAME", "DATASOURCE_REF", "DATASOURCE_TYPE", "DATASOURCE_UID", "SqlDataquery", "SqlQuery"]

#: the plugin id of Grafana's core PostgreSQL datasource (Grafana 10.x renamed it from "postgres")
DATASOURCE_TYPE = "grafana-postgresql-datasource"
DATASOURCE_UID = "kcloud-postgres"
DATASOURCE_NAME = "kcloud PostgreSQL"
DATASOURCE_REF = DataSourceRef(type_val=DATASOURCE_TYPE, uid=DATASOURCE_UID)

QueryFormat = Literal["time_series", "table"]


class SqlDataquery(cogvariants.Dataquery):
    """One raw SQL target of a panel."""

    def __init__(self, ref_id: str = "A", raw_sql: str = "", fmt: QueryFormat = "table") -> None:
        self.ref_id = ref_id
        self.raw_sql = raw_sql
        self.format: QueryFormat = fmt

    def to_json(self) -> dict[str, object]:
        return {
            "datasource": DATASOURCE_REF.to_json(),
            "editorMode": "code",
            "format": self.format,
            "rawQuery": True,
            "rawSql": self.raw_sql,
            "refId": self.ref_id,
        }


class SqlQuery(cogbuilder.Builder[cogvariants.Dataquery]):
    """Builder of a `SqlDataquery`, in the SDK's style."""

    def __init__(self) -> None:
        self._internal = SqlDataquery()

    def build(self) -> SqlDataquery:
        return self._internal

    def ref_id(self, ref_id: str) -> Self:
        self._internal.ref_id = ref_id
        return self

    def raw_sql(self, raw_sql: str) -> Self:
        self._internal.raw_sql = raw_sql
        return self

    def format(self, fmt: QueryFormat) -> Self:
        self._internal.format = fmt
        return self

"""The macro expander gives the SQL Grafana's PostgreSQL datasource would send."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from dashboards.macros import MacroError, QueryContext, Selection, calculate_interval_ms, expand, format_interval
from dashboards.spec import VariableSpec

T0 = datetime(2026, 3, 14, 22, 0, tzinfo=UTC)
MULTI = VariableSpec("site", "Site", "d", "SELECT 1")
SINGLE = VariableSpec("node", "Node", "d", "SELECT 1", multi=False, include_all=False)


def _ctx(hours: float = 1, **variables: Selection) -> QueryContext:
    return QueryContext(T0, T0 + timedelta(hours=hours), variables)


def test_multi_value_variable_becomes_quoted_literals() -> None:
    ctx = _ctx(site=Selection(MULTI, ("a", "o'b")))
    assert expand("x IN ($site)", ctx) == "x IN ('a','o''b')"
    assert expand("x IN (${site:sqlstring})", ctx) == "x IN ('a','o''b')"
    assert expand("x IN ([[site]])", ctx) == "x IN ('a','o''b')"


def test_all_uses_the_custom_all_value_unformatted() -> None:
    ctx = _ctx(site=Selection(MULTI, None, ("a", "b")))
    assert expand("(x IN ($site) OR '__all' IN (${site:sqlstring}))", ctx) == "(x IN ('__all') OR '__all' IN ('__all'))"


def test_all_without_a_custom_all_value_lists_every_option() -> None:
    single = Selection(SINGLE, None, ("n1", "n'2"))  # no include-all, so no custom all value
    assert expand("${node:csv}", _ctx(node=single)) == "n1,n'2"
    assert expand("${node:sqlstring}", _ctx(node=single)) == "'n1','n''2'"


def test_single_value_variable_is_raw_with_quotes_doubled() -> None:
    ctx = _ctx(node=Selection(SINGLE, ("it's",)))
    assert expand("node_id = '$node'", ctx) == "node_id = 'it''s'"
    assert expand("node_id = ${node:sqlstring}", ctx) == "node_id = 'it''s'"


def test_time_filter_and_bounds_are_rfc3339_utc() -> None:
    sql = expand("WHERE $__timeFilter(t) AND $__timeFrom() < $__timeTo()", _ctx())
    assert sql == (
        "WHERE t BETWEEN '2026-03-14T22:00:00Z' AND '2026-03-14T23:00:00Z' "
        "AND '2026-03-14T22:00:00Z' < '2026-03-14T23:00:00Z'"
    )


def test_time_group_is_epoch_arithmetic_on_postgresql_and_time_bucket_on_timescaledb() -> None:
    plain = expand("SELECT $__timeGroupAlias(b, $__interval)", QueryContext(T0, T0 + timedelta(hours=8)))
    assert plain == 'SELECT floor(extract(epoch from b)/60)*60 AS "time"'
    ts = expand("SELECT $__timeGroup(b, '5m')", QueryContext(T0, T0 + timedelta(hours=6), timescaledb=True))
    assert ts == "SELECT time_bucket('300s',b)"


def test_interval_follows_grafanas_rounding_and_the_panel_minimum() -> None:
    assert calculate_interval_ms(T0, T0 + timedelta(hours=1), 500) == 5000
    assert calculate_interval_ms(T0, T0 + timedelta(hours=1), 500, "1m") == 60000
    assert calculate_interval_ms(T0, T0 + timedelta(days=7), 500) == 1200000
    assert calculate_interval_ms(T0, T0 + timedelta(days=400), 500) == 86400000
    assert format_interval(1200000) == "20m"
    assert format_interval(86400000) == "1d"
    assert format_interval(1500) == "1500ms"
    assert expand("$__interval_ms / $__interval", _ctx()) == "5000 / 5s"


@pytest.mark.parametrize(
    ("sql", "message"),
    [
        ("x = $nosuch", "variable $nosuch"),
        ("$__timeFilter()", "needs a column"),
        ("$__timeGroup(t)", "needs a column and an interval"),
        ("$__timeGroup(t, soon)", "interval 'soon'"),
        ("$__frobnicate(t)", "$__frobnicate"),
        ("${site:json}", "format 'json'"),
    ],
)
def test_unknown_variables_macros_and_formats_are_named_errors(sql: str, message: str) -> None:
    with pytest.raises(MacroError) as caught:
        expand(sql, _ctx(site=Selection(MULTI, ("a",))))
    assert message in str(caught.value)


def test_an_empty_time_range_is_an_error() -> None:
    with pytest.raises(MacroError, match="is empty"):
        expand("SELECT 1", QueryContext(T0, T0))

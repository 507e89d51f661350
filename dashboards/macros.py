"""Grafana's PostgreSQL datasource, as far as a query's text goes: template variables, `$__interval`
and the SQL macros, expanded the way Grafana 11 does, so that a dashboard's SQL can be run against a
real database (tests, `kcloud dashboards build --check`) without a Grafana.

What it does, in Grafana's order:
  1. `$__interval` / `$__interval_ms` from the time range and the panel's max data points and minimum
     interval (Grafana's `calculateInterval` and `roundInterval`), `$__from` / `$__to` (epoch ms);
  2. template variables `$var`, `${var}`, `[[var]]`, `${var:sqlstring|raw|csv|singlequote}`: a multi-value
     or include-all variable gives quoted literals joined by commas (`'a','b'`), a single-value one its
     value with `'` doubled, "All" the variable's custom all value as-is (or every option when it has none);
  3. the macros `$__timeFilter(col)`, `$__timeFrom()`, `$__timeTo()`, `$__time(col)`, `$__timeEpoch(col)`,
     `$__timeGroup(col, interval[, fill])`, `$__timeGroupAlias(...)`, `$__unixEpochFilter(col)`;
     `$__timeGroup` gives `time_bucket(...)` when the datasource says `timescaledb: true`, else
     `floor(extract(epoch from col)/s)*s`.
An unknown variable, format or macro is a `MacroError` naming it (Grafana would send it to the database).

Example:
    >>> from datetime import UTC, datetime
    >>> ctx = QueryContext(datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 3, 1, 1, tzinfo=UTC))
    >>> expand("SELECT 1 WHERE $__timeFilter(t)", ctx)
    "SELECT 1 WHERE t BETWEEN '2026-03-01T00:00:00Z' AND '2026-03-01T01:00:00Z'"
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from dashboards.spec import VariableSpec

__all__ = [
    "MacroError",
    "QueryContext",
    "Selection",
    "calculate_interval_ms",
    "expand",
    "format_interval",
    "parse_interval",
    "round_interval_ms",
]

#: (upper bound in ms, rounded interval in ms): Grafana's rangeutil.roundInterval
_ROUNDING: tuple[tuple[float, int], ...] = (
    (10, 1),
    (15, 10),
    (35, 20),
    (75, 50),
    (150, 100),
    (350, 200),
    (750, 500),
    (1500, 1000),
    (3500, 2000),
    (7500, 5000),
    (12500, 10000),
    (17500, 15000),
    (25000, 20000),
    (45000, 30000),
    (90000, 60000),
    (210000, 120000),
    (450000, 300000),
    (750000, 600000),
    (1050000, 900000),
    (1500000, 1200000),
    (2700000, 1800000),
    (5400000, 3600000),
    (9000000, 7200000),
    (16200000, 10800000),
    (24300000, 21600000),
    (54000000, 43200000),
    (129600000, 86400000),
    (604800000, 86400000),
    (1814400000, 604800000),
    (3628800000, 2592000000),
)
_YEAR_MS = 31536000000
_UNITS_MS = {"ms": 1, "s": 1000, "m": 60000, "h": 3600000, "d": 86400000, "w": 604800000, "y": _YEAR_MS}
_INTERVAL = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w|y)\s*$")
_VARIABLE = re.compile(r"\$(\w+)|\$\{(\w+)(?::(\w+))?\}|\[\[(\w+)(?::(\w+))?\]\]")
_MACRO = re.compile(r"\$(__\w+)\(([^)]*)\)")


class MacroError(ValueError):
    """A query uses a variable, format, macro or interval the expander (and Grafana) cannot resolve."""


@dataclass(frozen=True)
class Selection:
    """What a variable is set to: `values`, or "All" when `values` is None. `options` are the variable's
    options (needed for "All" only when the variable has no custom all value)."""

    spec: VariableSpec
    values: tuple[str, ...] | None = None
    options: tuple[str, ...] = ()

    @property
    def is_all(self) -> bool:
        return self.values is None


@dataclass(frozen=True)
class QueryContext:
    """The dashboard state a query is expanded in: time range, variables, panel resolution, datasource."""

    time_from: datetime
    time_to: datetime
    variables: Mapping[str, Selection] = field(default_factory=dict)
    max_data_points: int = 500
    min_interval: str | None = None
    timescaledb: bool = False

    @property
    def interval_ms(self) -> int:
        return calculate_interval_ms(self.time_from, self.time_to, self.max_data_points, self.min_interval)


def round_interval_ms(interval_ms: float) -> int:
    """Grafana's rounding of a raw interval to a readable one (1s, 5s, 1m, 5m, 1h, 1d, ...)."""
    for bound, rounded in _ROUNDING:
        if interval_ms <= bound:
            return rounded
    return _YEAR_MS


def parse_interval(text: str) -> int:
    """`"10s"` → 10000 (ms); a `MacroError` for anything that is not a number and a unit."""
    match = _INTERVAL.match(text.strip("'\""))
    if match is None:
        raise MacroError(f"interval {text!r} is not a number followed by ms, s, m, h, d, w or y")
    return round(float(match.group(1)) * _UNITS_MS[match.group(2)])


def format_interval(interval_ms: int) -> str:
    """Grafana's secondsToHms: the largest whole unit, `60000` → `1m`, `1500` → `1500ms`."""
    for unit in ("y", "d", "h", "m", "s"):
        size = _UNITS_MS[unit]
        if interval_ms >= size and interval_ms % size == 0:
            return f"{interval_ms // size}{unit}"
    return f"{interval_ms}ms"


def calculate_interval_ms(
    time_from: datetime, time_to: datetime, max_data_points: int, min_interval: str | None = None
) -> int:
    """`$__interval_ms`: the range over the panel's data points, rounded, and at least `min_interval`."""
    if time_to <= time_from:
        raise MacroError(f"time range {time_from.isoformat()} .. {time_to.isoformat()} is empty")
    raw = (time_to - time_from).total_seconds() * 1000 / max(1, max_data_points)
    interval = round_interval_ms(raw)
    if min_interval is not None:
        interval = max(interval, parse_interval(min_interval))
    return interval


def _rfc3339(at: datetime) -> str:
    text = at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")
    if at.microsecond:
        text += f".{at.microsecond:06d}".rstrip("0")
    return text + "Z"


def _number(seconds: float) -> str:
    return str(int(seconds)) if seconds == int(seconds) else str(seconds)


def _quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _interpolate(selection: Selection, fmt: str | None) -> str:
    spec = selection.spec
    if selection.is_all and spec.all_value is not None and fmt not in ("text", "percentencode", "queryparam"):
        return spec.all_value
    values = selection.options if selection.values is None else selection.values
    if fmt in (None, ""):
        if spec.multi or spec.include_all:
            return ",".join(_quote(v) for v in values)
        return ",".join(v.replace("'", "''") for v in values)
    if fmt in ("sqlstring", "singlequote"):
        return ",".join(_quote(v) for v in values)
    if fmt in ("raw", "csv"):
        return ",".join(values)
    raise MacroError(f"variable {spec.name!r}: format {fmt!r} is not supported")


def _variables(sql: str, ctx: QueryContext) -> str:
    def replace(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2) or match.group(4)
        fmt = match.group(3) or match.group(5)
        if name.startswith("__"):
            return match.group(0)  # a macro: step 3
        selection = ctx.variables.get(name)
        if selection is None:
            raise MacroError(f"query uses variable ${name}, which the dashboard does not define")
        return _interpolate(selection, fmt)

    return _VARIABLE.sub(replace, sql)


def _macro(name: str, args: list[str], ctx: QueryContext) -> str:
    start, end = _rfc3339(ctx.time_from), _rfc3339(ctx.time_to)
    needs_column = ("__timeFilter", "__time", "__timeEpoch", "__unixEpochFilter", "__timeGroup", "__timeGroupAlias")
    if name in needs_column and (not args or not args[0]):
        raise MacroError(f"macro ${name} needs a column argument")
    if name == "__timeFilter":
        return f"{args[0]} BETWEEN '{start}' AND '{end}'"
    if name == "__timeFrom":
        return f"'{start}'"
    if name == "__timeTo":
        return f"'{end}'"
    if name == "__time":
        return f'{args[0]} AS "time"'
    if name == "__timeEpoch":
        return f'extract(epoch from {args[0]}) as "time"'
    if name == "__unixEpochFilter":
        return f"{args[0]} >= {int(ctx.time_from.timestamp())} AND {args[0]} <= {int(ctx.time_to.timestamp())}"
    if name in ("__timeGroup", "__timeGroupAlias"):
        if len(args) < 2:
            raise MacroError(f"macro ${name} needs a column and an interval, got {', '.join(args)!r}")
        seconds = parse_interval(args[1]) / 1000
        if ctx.timescaledb:
            group = f"time_bucket('{seconds:.0f}s',{args[0]})"
        else:
            group = f"floor(extract(epoch from {args[0]})/{_number(seconds)})*{_number(seconds)}"
        return group + (' AS "time"' if name == "__timeGroupAlias" else "")
    raise MacroError(f"macro ${name} is not one Grafana's PostgreSQL datasource knows")


def expand(sql: str, ctx: QueryContext) -> str:
    """The SQL Grafana would send to PostgreSQL for `sql` in the dashboard state `ctx`."""
    interval = ctx.interval_ms
    text = sql.replace("$__interval_ms", str(interval)).replace("${__interval_ms}", str(interval))
    text = text.replace("${__interval}", format_interval(interval)).replace("$__interval", format_interval(interval))
    text = text.replace("$__from", str(int(ctx.time_from.timestamp() * 1000)))
    text = text.replace("$__to", str(int(ctx.time_to.timestamp() * 1000)))
    text = _variables(text, ctx)
    text = _MACRO.sub(
        lambda m: _macro(m.group(1), [a.strip() for a in m.group(2).split(",")] if m.group(2) else [], ctx), text
    )
    leftover = re.search(r"\$__\w+", text)
    if leftover is not None:
        raise MacroError(f"{leftover.group(0)} is not a macro Grafana's PostgreSQL datasource knows")
    return text

"""The shape every report takes before it is rendered: sections of tables of figures, plus provenance.

A `Table` has key columns (vendor, site, period, ...) and figure columns, each with a unit and the number
of decimals it is shown with; values are rounded when a row is added, so every renderer and `verify`
sees the same figure. `figures(report)` flattens a report into (table, row key, column) -> text, the
form that `report verify` compares and the CSV carries.

Example:
    >>> t = Table("availability", [Column("site", key=True), Column("availability_pct", "%", 2)])
    >>> t.add(["kt-cloud-cheonan", 99.87654])
    >>> t.rows
    [['kt-cloud-cheonan', 99.88]]
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["Column", "Report", "Section", "Table", "Value", "figure_key", "figures", "format_value"]

Value = str | int | float | None


@dataclass(frozen=True)
class Column:
    """A column: its id (also the key of its label and definition), unit, decimals, and whether it is a key."""

    id: str
    unit: str = ""
    decimals: int | None = None
    key: bool = False


def format_value(value: Value, decimals: int | None) -> str:
    """The text of a figure: fixed decimals for numbers, '' for no value."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int) and decimals is None:
        return str(value)
    if isinstance(value, int | float):
        number = float(value)
        text = f"{number:.{decimals if decimals is not None else 6}f}"
        return "0" + text[2:] if text.startswith("-0") and float(text) == 0 else text
    return str(value)


def _round(value: Value, column: Column) -> Value:
    if isinstance(value, float) and column.decimals is not None:
        rounded = round(value, column.decimals)
        return 0.0 if rounded == 0 else rounded
    return value


@dataclass
class Table:
    """Rows of one kind of figure; `rows` hold rounded values in column order."""

    id: str
    columns: list[Column]
    rows: list[list[Value]] = field(default_factory=list)

    def add(self, values: list[Value]) -> None:
        if len(values) != len(self.columns):
            raise ValueError(f"table {self.id}: {len(values)} values for {len(self.columns)} columns")
        self.rows.append([_round(v, c) for v, c in zip(values, self.columns, strict=True)])


@dataclass
class Section:
    """A numbered section of the report (inventory, availability, ...)."""

    id: str
    tables: list[Table]


@dataclass
class Report:
    """A built report: its kind, language, sections, and the provenance it was built from."""

    kind: str
    lang: str
    sections: list[Section]
    provenance: dict[str, Any]


def figure_key(table: Table, row: list[Value]) -> str:
    """The row's identity within its table: the key columns as `name=value` joined by ';'."""
    return ";".join(f"{c.id}={format_value(v, c.decimals)}" for c, v in zip(table.columns, row, strict=True) if c.key)


def figures(report: Report) -> list[tuple[str, str, str, str]]:
    """Every figure as (table id, row key, column id, text), in report order."""
    out: list[tuple[str, str, str, str]] = []
    for section in report.sections:
        for table in section.tables:
            for row in table.rows:
                key = figure_key(table, row)
                for column, value in zip(table.columns, row, strict=True):
                    if not column.key:
                        out.append((table.id, key, column.id, format_value(value, column.decimals)))
    return out

"""What a program manager asks a report for: scope, period, granularity, language, and their validation.

Parsing and checking happen here, before any database work, so that a mistyped date or an inverted range
is answered with one clear sentence naming the input. A plain date `--from 2026-01-01 --to 2026-03-31`
means whole UTC days, both ends included; a time with an offset (`2026-01-01T09:00+09:00`) is an exact
bound (`--to` excluded). Bounds must fall on whole minutes, the finest rollup the reports read.

Example:
    >>> p = ReportParams.parse("evidence", start="2026-01-01", end="2026-01-31")
    >>> p.start.isoformat(), p.end.isoformat()
    ('2026-01-01T00:00:00+00:00', '2026-02-01T00:00:00+00:00')
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal, get_args

__all__ = ["FORMATS", "GRANULARITIES", "LANGS", "Format", "Granularity", "Lang", "ReportError", "ReportParams"]

Granularity = Literal["day", "month", "quarter", "year"]
Lang = Literal["en", "ko"]
Format = Literal["html", "pdf", "csv", "json"]
Kind = Literal["evidence", "allocation"]
GRANULARITIES: tuple[str, ...] = get_args(Granularity)
LANGS: tuple[str, ...] = get_args(Lang)
FORMATS: tuple[str, ...] = get_args(Format)
KINDS: tuple[str, ...] = get_args(Kind)
#: the longest period one report covers (a guard against a typo such as --from 0026-01-01)
MAX_PERIOD = timedelta(days=3 * 366)


class ReportError(ValueError):
    """A report cannot be built as asked; the message says which input and what to do."""


def _parse_bound(text: str, option: str, *, is_end: bool) -> datetime:
    raw = text.strip()
    try:
        if len(raw) == 10:
            day = date.fromisoformat(raw)
            start = datetime(day.year, day.month, day.day, tzinfo=UTC)
            return start + timedelta(days=1) if is_end else start
        when = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise ReportError(
            f"{option} {text!r} is not a date (YYYY-MM-DD) or a time with an offset (2026-01-01T09:00+09:00)"
        ) from None
    if when.tzinfo is None:
        raise ReportError(f"{option} {text!r} has no time zone: add an offset such as +09:00 or Z")
    if when.second or when.microsecond:
        raise ReportError(f"{option} {text!r} is not on a whole minute: reports are built from minute rollups")
    return when.astimezone(UTC)


@dataclass(frozen=True)
class ReportParams:
    """One report request. `start` and `end` are UTC, `end` excluded."""

    kind: Kind
    start: datetime
    end: datetime
    vendor: str | None = None
    site: str | None = None
    programme: str | None = None
    granularity: Granularity = "month"
    lang: Lang = "en"

    @classmethod
    def parse(
        cls,
        kind: str,
        *,
        start: str,
        end: str,
        vendor: str | None = None,
        site: str | None = None,
        programme: str | None = None,
        granularity: str = "month",
        lang: str = "en",
    ) -> ReportParams:
        """Check and normalise the options of `kcloud report <kind>`; raises `ReportError` naming the input."""
        if kind not in KINDS:
            raise ReportError(f"report kind {kind!r} is unknown; choose one of {', '.join(KINDS)}")
        if granularity not in GRANULARITIES:
            raise ReportError(f"--granularity {granularity!r} is unknown; choose one of {', '.join(GRANULARITIES)}")
        if lang not in LANGS:
            raise ReportError(f"--lang {lang!r} is unknown; choose one of {', '.join(LANGS)}")
        lo = _parse_bound(start, "--from", is_end=False)
        hi = _parse_bound(end, "--to", is_end=True)
        if hi <= lo:
            raise ReportError(
                f"--from {start} is not before --to {end}: the period is empty or inverted; swap the two dates"
            )
        if hi - lo > MAX_PERIOD:
            raise ReportError(f"--from {start} --to {end} spans more than {MAX_PERIOD.days} days; split the report")
        return cls(
            kind=kind,  # type: ignore[arg-type]
            start=lo,
            end=hi,
            vendor=_clean(vendor),
            site=_clean(site),
            programme=_clean(programme),
            granularity=granularity,  # type: ignore[arg-type]
            lang=lang,  # type: ignore[arg-type]
        )

    def to_json(self) -> dict[str, Any]:
        """The parameters as written into a report's provenance (and read back by `report verify`)."""
        out = asdict(self)
        out["start"] = self.start.isoformat()
        out["end"] = self.end.isoformat()
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ReportParams:
        """The parameters recorded in a report; raises `ReportError` when they are missing or malformed."""
        try:
            return cls.parse(
                str(data["kind"]),
                start=str(data["start"]),
                end=str(data["end"]),
                vendor=data.get("vendor"),
                site=data.get("site"),
                programme=data.get("programme"),
                granularity=str(data.get("granularity", "month")),
                lang=str(data.get("lang", "en")),
            )
        except KeyError as exc:
            raise ReportError(f"the report's parameters lack {exc.args[0]!r}") from None


def _clean(value: str | None) -> str | None:
    if value is None:
        return None
    stripped = value.strip()
    return stripped or None

"""What a program manager asks a report for: scope, period, granularity, language, and their validation.

Parsing and checking happen here, before any database work, so that a mistyped date or an inverted range
is answered with one clear sentence naming the input. A plain date `--from 2026-01-01 --to 2026-03-31`
means whole UTC days, both ends included; a time with an offset (`2026-01-01T09:00+09:00`) is an exact
bound (`--to` excluded). Bounds must fall on whole minutes, the finest rollup the reports read, and inside
the years the data can hold (`EARLIEST` to `LATEST`: buckets start at 2000-01-01 UTC), and so must a
report's generation time. An error is a `ReportParamError` naming the option: the CLI's spelling by default
(`--from`), the HTTP API's (`from`) where it passes `HTTP_NAMES`.

Example:
    >>> p = ReportParams.parse("evidence", start="2026-01-01", end="2026-01-31")
    >>> p.start.isoformat(), p.end.isoformat()
    ('2026-01-01T00:00:00+00:00', '2026-02-01T00:00:00+00:00')
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal, get_args

__all__ = [
    "CLI_NAMES",
    "EARLIEST",
    "FORMATS",
    "GRANULARITIES",
    "HTTP_NAMES",
    "LANGS",
    "LATEST",
    "Format",
    "Granularity",
    "Lang",
    "ReportError",
    "ReportParamError",
    "ReportParams",
    "parse_generated_at",
]

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
#: the first and last instants a report period or generation time may name (the rollups' origin, and a
#: century on): outside them no sample can be stored, and the calendar arithmetic stays far from year 9999
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
LATEST = datetime(2100, 1, 1, tzinfo=UTC)
#: the longest filter value (vendor, site, programme) taken; slugs are at most 64 characters
MAX_FILTER = 200
#: how each input is named in messages: the CLI's options, or the HTTP API's query parameters
CLI_NAMES: dict[str, str] = {
    "start": "--from",
    "end": "--to",
    "vendor": "--vendor",
    "site": "--site",
    "programme": "--programme",
    "granularity": "--granularity",
    "lang": "--lang",
    "format": "--format",
    "generated_at": "--generated-at",
}
HTTP_NAMES: dict[str, str] = {key: key for key in CLI_NAMES} | {"start": "from", "end": "to"}


class ReportError(ValueError):
    """A report cannot be built as asked; the message says which input and what to do."""


class ReportParamError(ReportError):
    """A report parameter is malformed or out of range (before any database work); `param` is its key in
    `CLI_NAMES` (start, end, vendor, ..., generated_at)."""

    def __init__(self, param: str, message: str) -> None:
        super().__init__(message)
        self.param = param


def _shown(text: str) -> str:
    """`text` quoted for a message, cut to 60 characters."""
    return repr(text if len(text) <= 60 else text[:57] + "...")


def _in_range(when: datetime, param: str, name: str, text: str) -> datetime:
    if not EARLIEST <= when <= LATEST:
        raise ReportParamError(
            param,
            f"{name} {_shown(text)} is outside the years reports cover: from {EARLIEST.date()} to "
            f"{LATEST.date()} (UTC)",
        )
    return when


def _parse_bound(text: str, param: str, name: str, *, is_end: bool) -> datetime:
    raw = text.strip()
    try:
        if len(raw) == 10:
            day = date.fromisoformat(raw)
            start = datetime(day.year, day.month, day.day, tzinfo=UTC)
            _in_range(start, param, name, text)
            return _in_range(start + timedelta(days=1) if is_end else start, param, name, text)
        when = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError as exc:
        if isinstance(exc, ReportParamError):
            raise
        raise ReportParamError(
            param,
            f"{name} {_shown(text)} is not a date (YYYY-MM-DD) or a time with an offset (2026-01-01T09:00+09:00)",
        ) from None
    if when.tzinfo is None:
        raise ReportParamError(param, f"{name} {_shown(text)} has no time zone: add an offset such as +09:00 or Z")
    if when.second or when.microsecond:
        raise ReportParamError(
            param, f"{name} {_shown(text)} is not on a whole minute: reports are built from minute rollups"
        )
    return _in_range(_to_utc(when, param, name, text), param, name, text)


def _to_utc(when: datetime, param: str, name: str, text: str) -> datetime:
    try:
        return when.astimezone(UTC)
    except OverflowError:  # 9999-12-31T23:59-14:00 is past datetime's last instant in UTC
        raise ReportParamError(
            param,
            f"{name} {_shown(text)} is outside the years reports cover: from {EARLIEST.date()} to "
            f"{LATEST.date()} (UTC)",
        ) from None


def parse_generated_at(text: str | None, names: dict[str, str] = CLI_NAMES) -> datetime:
    """A report's generation time: `text` (ISO time with offset), or now (whole seconds, UTC) for None."""
    if text is None:
        return datetime.now(UTC).replace(microsecond=0)
    name = names["generated_at"]
    try:
        when = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ReportParamError(
            "generated_at", f"{name} {_shown(text)} is not an ISO time with an offset such as 2026-04-01T00:00Z"
        ) from None
    if when.tzinfo is None:
        raise ReportParamError(
            "generated_at", f"{name} {_shown(text)} has no time zone: add an offset such as Z or +09:00"
        )
    return _in_range(_to_utc(when, "generated_at", name, text), "generated_at", name, text)


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
        names: dict[str, str] = CLI_NAMES,
    ) -> ReportParams:
        """Check and normalise the options of `kcloud report <kind>`; raises `ReportParamError` naming the
        input as `names` spells it."""
        if kind not in KINDS:
            raise ReportParamError("kind", f"report kind {_shown(kind)} is unknown; choose one of {', '.join(KINDS)}")
        if granularity not in GRANULARITIES:
            raise ReportParamError(
                "granularity",
                f"{names['granularity']} {_shown(granularity)} is unknown; choose one of {', '.join(GRANULARITIES)}",
            )
        if lang not in LANGS:
            raise ReportParamError(
                "lang", f"{names['lang']} {_shown(lang)} is unknown; choose one of {', '.join(LANGS)}"
            )
        lo = _parse_bound(start, "start", names["start"], is_end=False)
        hi = _parse_bound(end, "end", names["end"], is_end=True)
        if hi <= lo:
            raise ReportParamError(
                "end",
                f"{names['start']} {start} is not before {names['end']} {end}: the period is empty or inverted; "
                "swap the two dates",
            )
        if hi - lo > MAX_PERIOD:
            raise ReportParamError(
                "end",
                f"{names['start']} {start} {names['end']} {end} spans more than {MAX_PERIOD.days} days; "
                "split the report",
            )
        return cls(
            kind=kind,  # type: ignore[arg-type]
            start=lo,
            end=hi,
            vendor=_clean(vendor, "vendor", names),
            site=_clean(site, "site", names),
            programme=_clean(programme, "programme", names),
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


def _clean(value: str | None, param: str, names: dict[str, str]) -> str | None:
    """A filter value, stripped (None when empty); refused when the database could not take it as text."""
    if value is None:
        return None
    stripped = value.strip()
    name = names[param]
    if len(stripped) > MAX_FILTER:
        raise ReportParamError(param, f"{name} {_shown(stripped)} is longer than {MAX_FILTER} characters")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in stripped):
        raise ReportParamError(param, f"{name} {_shown(stripped)} holds a control character; no name has one")
    try:
        stripped.encode("utf-8")
    except UnicodeEncodeError:
        raise ReportParamError(param, f"{name} {_shown(stripped)} is not valid Unicode text") from None
    return stripped or None

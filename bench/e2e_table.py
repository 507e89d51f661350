"""The report of the end-to-end benchmark: one table of figures beside their targets, and the JSON form.

The targets are the ones BENCHMARKS.md states (the national fleet, ~330,000 accelerators at 10 s, on one small
machine); a figure that misses its target says by how much.

Example:
    >>> print(format_table(result, machine="2 cpus, 23.4 GiB"))
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from bench.e2e_core import E2EResult

__all__ = ["TARGETS", "format_table", "to_json", "verdicts"]

#: name -> (limit, "min" or "max", unit)
TARGETS: dict[str, tuple[float, str, str]] = {
    "stored_per_s": (33_000, "min", "samples/s"),
    "latency_p99_s": (5.0, "max", "s"),
    "ratio": (0.3, "min", ""),
    "worker_ms_per_1k": (25.0, "max", "ms"),
    "worker_rss_mib": (600.0, "max", "MiB"),
    "bytes_per_sample": (120.0, "max", "bytes"),
}


def _worker_ms(result: E2EResult) -> float | None:
    return next((c.ms_per_1k for c in result.costs if c.name == "workers"), None)


def _figures(result: E2EResult) -> dict[str, float | None]:
    rss = [b / 2**20 for b in result.worker_peak_rss_bytes]
    return {
        "stored_per_s": result.stored_per_s,
        "latency_p99_s": result.latency_p99_s,
        "ratio": result.ratio,
        "worker_ms_per_1k": _worker_ms(result),
        "worker_rss_mib": max(rss) if rss else None,
        "bytes_per_sample": result.bytes_per_sample,
    }


def verdicts(result: E2EResult) -> dict[str, str]:
    """For each target: `ok`, `MISSED by X%` or `n/a` (no figure)."""
    out: dict[str, str] = {}
    for name, value in _figures(result).items():
        limit, kind, _ = TARGETS[name]
        if value is None:
            out[name] = "n/a"
        elif (value >= limit) if kind == "min" else (value <= limit):
            out[name] = "ok"
        else:
            off = (limit - value) / limit if kind == "min" else (value - limit) / limit
            out[name] = f"MISSED by {off:.0%}"
    return out


def _n(value: float | None, fmt: str = ",.0f") -> str:
    return "n/a" if value is None else format(value, fmt)


def _target(name: str) -> str:
    limit, kind, unit = TARGETS[name]
    return f"{'>=' if kind == 'min' else '<='} {limit:,g} {unit}".rstrip()


def format_table(result: E2EResult, machine: str = "") -> str:
    """The human report: a header line, then `figure | value | target | verdict` rows."""
    o = result.options
    verdict = verdicts(result)
    p50, p99, top = (_n(x, ".2f") for x in (result.latency_p50_s, result.latency_p99_s, result.latency_max_s))
    lag = f"{result.lag_at_window_start:,} / {result.lag_at_window_end:,}"
    grew = result.lag_at_window_end - result.lag_at_window_start
    saturated = grew > 0.05 * result.offered_per_s * result.window_s
    bound = "saturated: the lag grew, stored/s is the capacity" if saturated else "kept up: capacity may be higher"
    lower = " (lower bound: probes not stored)" if result.probes_unseen else ""
    took = "not within the timeout" if result.commission_s is None else f"{result.commission_s:.1f}s"
    rows: list[tuple[str, str, str, str]] = [
        ("commissioning tick (all devices new)", f"{result.commission_samples:,}", "", f"stored in {took}"),
        ("stored samples/s (database)", _n(result.stored_per_s), _target("stored_per_s"), verdict["stored_per_s"]),
        ("offered by the fleet, samples/s", _n(result.offered_per_s), "", bound),
        ("lag at window start / end, samples", lag, "", ""),
        (
            "latency p50 / p99 / max, s",
            f"{p50} / {p99} / {top}",
            "p99 " + _target("latency_p99_s"),
            verdict["latency_p99_s"] + lower,
        ),
        (
            "  probes in window (unseen)",
            f"{result.probes_in_window} ({result.probes_unseen})",
            "",
            "",
        ),
    ]
    if result.ceiling is not None:
        c = result.ceiling
        rows.append(("COPY ceiling, rows/s (one stream)", _n(c.rows_per_s), "", f"{c.rows:,} rows in {c.wall_s:.1f}s"))
        if c.db_cpu_s is not None and c.rows:
            rows.append(("  database CPU ms / 1,000 rows", _n(c.db_cpu_s * 1e6 / c.rows, ".1f"), "", ""))
    rows.append(("pipeline / ceiling", _n(result.ratio, ".2f"), _target("ratio"), verdict["ratio"]))
    for cost in result.costs:
        is_worker = cost.name == "workers"
        rows.append(
            (
                f"CPU ms / 1,000 {cost.per}: {cost.name}",
                _n(cost.ms_per_1k, ".1f"),
                _target("worker_ms_per_1k") if is_worker else "",
                verdict["worker_ms_per_1k"] if is_worker else f"{_n(cost.cpu_s, '.1f')} cpu s",
            )
        )
    rss = ", ".join(f"{b / 2**20:,.0f}" for b in result.worker_peak_rss_bytes) or "n/a"
    rows.append(("worker peak RSS (VmHWM), MiB", rss, _target("worker_rss_mib"), verdict["worker_rss_mib"]))
    plain = _n(result.bytes_per_sample, ".1f")
    rows.append(("bytes / stored sample, plain", plain, _target("bytes_per_sample"), verdict["bytes_per_sample"]))
    if result.ceiling is not None:
        rows.append(("  the same, COPY-loaded table", _n(result.ceiling.bytes_per_sample, ".1f"), "", ""))
    rows.append(
        (
            "bytes / stored sample, compressed",
            _n(result.compressed_bytes_per_sample, ".1f"),
            "",
            result.compression_note,
        )
    )
    complete = "complete" if result.drained else f"NOT drained: {result.sent - result.stored:,} missing"
    rows.append(("sent / stored samples (count(*))", f"{result.sent:,} / {result.stored:,}", "", complete))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    head = (
        f"end to end: {o.nodes:,} nodes every {o.interval_s:g}s, {o.workers} worker(s); "
        f"window {result.window_s:.1f}s after {o.warmup_s:g}s warm-up" + (f"; {machine}" if machine else "")
    )
    lines = [head, "-" * len(head)]
    for name, value, target, note in rows:
        lines.append(f"{name:<{widths[0]}}  {value:>{widths[1]}}  {target:<{widths[2]}}  {note}".rstrip())
    return "\n".join(lines)


def to_json(result: E2EResult, path: Path, extra: dict[str, Any] | None = None) -> None:
    """Write every figure, the verdicts and `extra` (machine, command) to `path`."""
    data = {**(extra or {}), "result": asdict(result), "verdicts": verdicts(result)}
    path.write_text(json.dumps(data, indent=2, default=str) + "\n")

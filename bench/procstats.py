"""Per-process CPU time and memory from /proc, for the benchmarks: what each stage of the pipeline (collector,
broker, stream worker, database) costs while it runs.

CPU is `utime + stime` of /proc/<pid>/stat, in seconds. A PostgreSQL server is many processes: the postmaster
forks one backend per connection and reaps it when the connection closes, so its cost is the postmaster's own
time, plus the time of the children it already reaped (`cutime + cstime`), plus that of the children alive now.

Example:
    >>> before = cpu_seconds(os.getpid())
    >>> peak_rss_bytes(os.getpid()) > 0
    True
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["children", "cpu_seconds", "peak_rss_bytes", "rss_bytes", "tree_cpu_seconds"]

_TICK = float(os.sysconf("SC_CLK_TCK"))


def _stat_fields(pid: int) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the command name (field 3 onwards), or None when it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return raw[raw.rfind(")") + 2 :].split()


def cpu_seconds(pid: int, *, reaped_children: bool = False) -> float | None:
    """CPU seconds (user + system) of process `pid` so far; with `reaped_children`, plus those of the children
    it has waited for. None when the process does not exist."""
    fields = _stat_fields(pid)
    if fields is None:
        return None
    # after the name: state(3) ppid(4) ... utime(14) stime(15) cutime(16) cstime(17); here index = field - 3
    ticks = int(fields[11]) + int(fields[12])
    if reaped_children:
        ticks += int(fields[13]) + int(fields[14])
    return ticks / _TICK


def children(pid: int) -> list[int]:
    """The pids whose parent is `pid`, now."""
    out: list[int] = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        fields = _stat_fields(int(entry.name))
        if fields is not None and int(fields[1]) == pid:
            out.append(int(entry.name))
    return out


def tree_cpu_seconds(pid: int) -> float | None:
    """CPU seconds of a server that forks a child per connection (PostgreSQL's postmaster): its own, those of
    its reaped children and those of its live children. None when `pid` does not exist."""
    total = cpu_seconds(pid, reaped_children=True)
    if total is None:
        return None
    for child in children(pid):
        total += cpu_seconds(child) or 0.0
    return total


def _status_bytes(pid: int, field: str) -> int | None:
    """A memory figure of /proc/<pid>/status (given there in kB) in bytes; None when the process does not exist."""
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    return None


def peak_rss_bytes(pid: int) -> int | None:
    """The peak resident set size (`VmHWM`) of `pid` in bytes, or None when the process does not exist."""
    return _status_bytes(pid, "VmHWM")


def rss_bytes(pid: int) -> int | None:
    """The resident set size (`VmRSS`) of `pid` now, in bytes, or None when the process does not exist."""
    return _status_bytes(pid, "VmRSS")

"""What `GET /healthz` asks of a dependency, within a bound: `BoundedProbe` runs a blocking check (the
database's `SELECT 1`) in a thread of its own and answers within `timeout` whatever the check does.

A frozen PostgreSQL (its processes stopped, the TCP connection open) never answers a query, and no
client-side statement timeout applies to it; a check that does not return in time is reported as
`unavailable: no answer within N s`, and the check still running is not started again until it ends, so
a frozen dependency costs one thread, however often `/healthz` is asked.

Imports only the standard library.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import Future

__all__ = ["BoundedProbe"]


class BoundedProbe:
    """One dependency check, at most one in flight, answered within a timeout."""

    def __init__(self, name: str, check: Callable[[], str]) -> None:
        self.name = name
        self._check = check
        self._lock = threading.Lock()
        self._inflight: Future[str] | None = None

    def _start(self) -> Future[str]:
        with self._lock:
            if self._inflight is not None and not self._inflight.done():
                return self._inflight
            future: Future[str] = Future()
            self._inflight = future

        def run() -> None:
            try:
                future.set_result(self._check())
            except Exception as exc:
                future.set_result(f"unavailable: {type(exc).__name__}: {exc}")

        threading.Thread(target=run, name=f"kcloud-health-{self.name}", daemon=True).start()
        return future

    async def status(self, timeout: float) -> str:
        """`ok`, or why not: the check's own answer, or that it gave none within `timeout` seconds."""
        future = self._start()
        try:
            return await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(future)), timeout)
        except TimeoutError:
            return f"unavailable: no answer within {timeout:g} s"

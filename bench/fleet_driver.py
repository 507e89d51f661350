"""The collector side of the end-to-end benchmark: a simulated fleet sent to Kafka at its cadence, in a process of
its own so that its CPU time is measured apart from everything else.

Run as `python -m bench.fleet_driver` with the settings in `KCLOUD_*` variables (`streams.launcher.settings_env`),
it builds the fleet, connects, prints one `{"ready": true, "start": T}` line, then from T on sends every tick
through `collectors.producer.SnapshotProducer` (the agents' producer: idempotent, acks=all, compressed, batched)
for `--run-for` seconds (or until its stdin closes: the benchmark is gone). With `--commission` it first sends
one tick of the whole fleet at once (every device seen for the first time), stamped one interval before the
instant `--commission-lead` seconds ahead at which the timed ticks begin, and prints `{"commission": samples}`:
the benchmark lets that first sight of every device be stored before it times anything, and in event time the
fleet appears and ticks on without a pause (a pause longer than the offline threshold would take every device
offline and back). A real fleet's nodes do not tick in step: each tick is sent in `--slices` slices spread over
the interval, each slice stamped with the wall time it is sent at (`collected_at` = now, as an agent does). After
each slice it prints a JSON line with its running totals; at the end it flushes and prints `{"done": ...}`.

`FleetDriver` starts that process from the benchmark and keeps its latest totals.

Example:
    >>> driver = FleetDriver(settings, nodes=20, interval_s=1.0, run_for_s=3.0).start()
    >>> start = driver.wait_ready(60)
    >>> driver.wait_done(120).samples
    480
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kcloud.settings import Settings

__all__ = ["DriverTotals", "FleetDriver", "main"]

_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class DriverTotals:
    """What the driver has sent so far (snapshots and device samples), and whether it is done."""

    snapshots: int = 0
    samples: int = 0
    pending: int = 0
    behind_s: float = 0.0
    done: bool = False
    acked: bool = False


class FleetDriver:
    """The fleet driver process, seen from the benchmark."""

    def __init__(
        self,
        settings: Settings,
        *,
        nodes: int,
        interval_s: float,
        run_for_s: float,
        seed: int = 1,
        slices: int = 20,
        commission: bool = False,
        commission_lead_s: float = 0.0,
    ) -> None:
        self.settings = settings
        self.args = [
            f"--nodes={nodes}",
            f"--seed={seed}",
            f"--interval={interval_s}",
            f"--slices={slices}",
            f"--run-for={run_for_s}",
            *([f"--commission-lead={commission_lead_s}", "--commission"] if commission else []),
        ]
        self.proc: subprocess.Popen[str] | None = None
        self.totals = DriverTotals()
        self.ready = threading.Event()
        self.start_time = 0.0
        self.commissioned = threading.Event()
        self.commission_samples = 0
        self.errors: list[str] = []
        self._reader: threading.Thread | None = None
        self._err_reader: threading.Thread | None = None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def start(self) -> FleetDriver:
        from streams.launcher import settings_env

        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bench.fleet_driver", *self.args],
            env=settings_env(self.settings),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.PIPE,
            text=True,
            cwd=_ROOT,  # `bench` is a folder of the repository, not an installed package
        )
        self._reader = threading.Thread(target=self._read, name="fleet-driver-reader", daemon=True)
        self._reader.start()
        self._err_reader = threading.Thread(target=self._read_errors, name="fleet-driver-stderr", daemon=True)
        self._err_reader.start()
        return self

    def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for line in self.proc.stdout:
            try:
                data: dict[str, Any] = json.loads(line)
            except json.JSONDecodeError:
                self.errors.append(line.rstrip())
                continue
            if "commission" in data:
                self.commission_samples = int(data["commission"])
                self.commissioned.set()
                continue
            if data.pop("ready", False):
                self.start_time = float(data["start"])
                self.ready.set()
                continue
            self.totals = DriverTotals(**data)

    def _read_errors(self) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        for line in self.proc.stderr:
            self.errors.append(line.rstrip())
            del self.errors[:-50]

    def _failure(self, what: str) -> RuntimeError:
        tail = "\n".join(f"    {line}" for line in self.errors[-20:]) or "    (no output)"
        return RuntimeError(f"fleet driver {what}; its output ends with:\n{tail}")

    def wait_commission(self, timeout: float) -> int:
        """With `commission`: wait until the commissioning tick is on Kafka; returns its device samples."""
        self._wait(self.commissioned, timeout, "sent the commissioning tick")
        return self.commission_samples

    def _wait(self, event: threading.Event, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not event.wait(0.2):
            if self.proc is None or self.proc.poll() is not None:
                raise self._failure(f"exited before it {what}")
            if time.monotonic() > deadline:
                raise self._failure(f"had not {what} after {timeout:.0f}s")

    def wait_ready(self, timeout: float) -> float:
        """Wait until the fleet is built and the producer connected; returns the Unix time of the first tick.
        Raises RuntimeError when the driver exits first."""
        self._wait(self.ready, timeout, "started ticking")
        return self.start_time

    def wait_done(self, timeout: float) -> DriverTotals:
        """Wait for the driver to finish (every snapshot flushed) and return its totals."""
        assert self.proc is not None and self._reader is not None
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired as exc:
            self.stop()
            raise self._failure(f"did not finish within {timeout:.0f}s") from exc
        self._close_pipes()
        if code != 0 or not self.totals.done:
            raise self._failure(f"exited with {code}")
        return self.totals

    def stop(self) -> None:
        """Terminate the process if it still runs."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._close_pipes()

    def _close_pipes(self) -> None:
        """Once the process has exited: let the readers finish, then close its pipes."""
        if self.proc is None or self.proc.poll() is None:
            return
        for reader in (self._reader, self._err_reader):
            if reader is not None:
                reader.join(5)
        for pipe in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if pipe is not None:
                pipe.close()


def _emit(**data: Any) -> None:
    sys.stdout.write(json.dumps(data) + "\n")
    sys.stdout.flush()


def _run(args: argparse.Namespace) -> int:
    from collectors.producer import SnapshotProducer
    from collectors.simulator import SimulatedFleet
    from kcloud.settings import load_settings

    nodes, interval, slices, run_for = args.nodes, args.interval, args.slices, args.run_for
    settings = load_settings()
    fleet = SimulatedFleet(nodes=nodes, seed=args.seed)
    fleet.prepare()
    producer = SnapshotProducer(settings, delivery_timeout_s=120.0)
    deadline = time.monotonic() + 60
    while not producer.connected:
        if time.monotonic() > deadline:
            print(f"fleet driver: no broker answers on {settings.kafka_bootstrap}", file=sys.stderr)
            return 1
        time.sleep(0.05)
    stopped = threading.Event()

    def read_stop() -> None:
        for _ in sys.stdin:
            pass
        stopped.set()

    threading.Thread(target=read_stop, name="stop-reader", daemon=True).start()
    seq = 0
    start = time.time() + 0.2
    if args.commission:  # one tick at once: every device is seen for the first time
        start = time.time() + args.commission_lead
        records = fleet.tick_bytes(datetime.fromtimestamp(start - interval, UTC), seq)
        producer.send_records(records)
        producer.flush(timeout=600)
        _emit(commission=len(records) * fleet.devices_per_node)
        seq += 1
        stopped.wait(max(0.0, start - 0.2 - time.time()))
    stop = start + run_for
    _emit(ready=True, start=start)
    slices = max(1, min(slices, nodes))
    bounds = [(k * nodes // slices, (k + 1) * nodes // slices) for k in range(slices)]
    snapshots = samples = 0
    behind = 0.0
    first = seq
    while True:
        for k, (lo, hi) in enumerate(bounds):
            due = start + (seq - first) * interval + k * interval / slices
            if due >= stop or stopped.is_set():
                break
            wait = due - time.time()
            if wait > 0:
                stopped.wait(wait)
            else:
                behind = max(behind, -wait)
            at = datetime.now(UTC)
            records = list(fleet.iter_tick_bytes(at, seq, lo, hi))
            producer.send_records(records)
            snapshots += len(records)
            samples += len(records) * fleet.devices_per_node
            _emit(snapshots=snapshots, samples=samples, pending=producer.pending(), behind_s=round(behind, 3))
        else:
            seq += 1
            continue
        break
    acked = producer.close(timeout=600)
    _emit(snapshots=snapshots, samples=samples, pending=producer.pending(), behind_s=behind, done=True, acked=acked)
    return 0 if acked else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.fleet_driver", description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=int, required=True)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--interval", type=float, required=True)
    parser.add_argument("--slices", type=int, default=20)
    parser.add_argument("--run-for", type=float, required=True, help="seconds to send for, from the first tick")
    parser.add_argument(
        "--commission", action="store_true", help="first send one tick at once, stamped just before the timed ticks"
    )
    parser.add_argument(
        "--commission-lead", type=float, default=0.0, help="seconds from the commissioning tick to the timed ticks"
    )
    args = parser.parse_args(argv)
    return _run(args)


if __name__ == "__main__":
    sys.exit(main())

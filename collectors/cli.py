"""`kcloud collect SOURCE`: run a node agent (mounted by console/main.py as `kcloud collect`).

    kcloud collect nvml                         NVIDIA GPUs through NVML
    kcloud collect nvidia-smi                   NVIDIA GPUs through `nvidia-smi --query-gpu` CSV
    kcloud collect prom --map dcgm --url URL    any supported Prometheus exporter
    kcloud collect sim --nodes 50               a simulated fleet (demos, load tests)

Every command shares the agent options (`--interval`, `--once`, `--print`, `--spool-dir`, ...).
`kcloud collect prom --map NAME --file PATH --once --print` prints the normalised snapshot as NDJSON
and is a contract other tools rely on. Settings come from the parent command's context (`ctx.obj`, a
`Settings` or a dict holding one under "settings") or from `kcloud.settings.load_settings()`. An
operator-fixable problem prints one line on stderr and exits 1 (2 for bad options or configuration).
"""

from __future__ import annotations

import logging
import signal
import socket
import threading
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

from collectors.agent import Agent, AgentError, AgentOptions, CollectorSource, SimSource, TickSource
from collectors.base import ConfigError, build_collector
from collectors.metrics import AgentMetrics
from collectors.prom_maps import EXPORTERS
from collectors.simulator import SimulatedFleet
from collectors.spool import SpoolBusy
from kcloud.cli_context import settings_from
from kcloud.records import NodeRef
from kcloud.settings import Settings

__all__ = ["app", "main"]

app = typer.Typer(
    help="Run a node agent: read a telemetry source every interval and send snapshots to Kafka.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

# -- the options every command shares -------------------------------------------------------------
NodeIdOpt = Annotated[
    str | None, typer.Option("--node-id", help="Stable node id on the wire (default: this host's name).")
]
SiteIdOpt = Annotated[str, typer.Option("--site-id", help="Site the node belongs to, e.g. kt-cheonan.")]
HostnameOpt = Annotated[
    str | None, typer.Option("--hostname", help="Hostname on the wire (default: this host's name).")
]
IntervalOpt = Annotated[float, typer.Option("--interval", min=0.05, help="Seconds between ticks.")]
OnceOpt = Annotated[bool, typer.Option("--once", help="Read one tick, deliver it, exit (1 if it failed).")]
PrintOpt = Annotated[
    bool, typer.Option("--print", help="Print snapshots as NDJSON on stdout instead of sending to Kafka.")
]
SpoolDirOpt = Annotated[
    Path | None,
    typer.Option(
        "--spool-dir",
        help="Where snapshots wait while Kafka is unreachable, and where seq is kept "
        "(default: <state_dir>/spool/<source>).",
    ),
]
SpoolMaxOpt = Annotated[
    float, typer.Option("--spool-max-mb", min=1, help="Spool size limit in MiB; when full the oldest go.")
]
MetricsPortOpt = Annotated[
    int | None, typer.Option("--metrics-port", help="Serve the agent's own Prometheus metrics on this port.")
]
KafkaTimeoutOpt = Annotated[
    float,
    typer.Option("--kafka-timeout", min=1, help="Seconds a snapshot may wait for Kafka before it is spooled."),
]


class Compression(StrEnum):
    """Kafka batch codecs the agent offers."""

    auto = "auto"
    lz4 = "lz4"
    zstd = "zstd"
    gzip = "gzip"


CompressionOpt = Annotated[
    Compression,
    typer.Option("--compression", help="Kafka batch compression: auto (lz4, else zstd), lz4, zstd or gzip."),
]
LogLevelOpt = Annotated[str, typer.Option("--log-level", help="debug, info, warning or error.")]


def _fail(message: str, code: int = 1) -> NoReturn:
    typer.echo(f"kcloud collect: {message}", err=True)
    raise typer.Exit(code)


def _settings(ctx: typer.Context) -> Settings:
    """The settings of this run: the root command's options (`kcloud --config ... collect`), then the TOML
    file, the KCLOUD_* environment and the defaults (see `kcloud.cli_context`)."""
    return settings_from(ctx)


def _setup_logging(level: str) -> None:
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        _fail(f"unknown --log-level {level!r}; use debug, info, warning or error", 2)
    logging.basicConfig(level=numeric, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # kafka-python logs every failed reconnect; the producer reports an outage once, in its own words.
    logging.getLogger("kafka").setLevel(logging.DEBUG if numeric <= logging.DEBUG else logging.CRITICAL)


def _run(ctx: typer.Context, source: TickSource, opts: dict[str, Any], metrics: AgentMetrics) -> None:
    settings = _settings(ctx)
    slug = source.source.replace(":", "-")
    options = AgentOptions(
        interval_s=opts["interval"],
        once=opts["once"],
        print_only=opts["print_"],
        spool_dir=opts["spool_dir"] or settings.state_dir / "spool" / slug,
        spool_max_bytes=int(opts["spool_max_mb"] * 2**20),
        metrics_port=opts["metrics_port"],
        kafka_timeout_s=opts["kafka_timeout"],
        compression=Compression(opts["compression"]).value,
    )
    stop = threading.Event()
    previous: dict[signal.Signals, Any] = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):  # stop after the tick in progress, then flush
            previous[sig] = signal.signal(sig, lambda *_: stop.set())
    try:
        code = Agent(source, settings, options, metrics=metrics).run(stop)
    except (AgentError, SpoolBusy) as exc:
        _fail(str(exc))
    except OSError as exc:
        _fail(f"{source.source}: {exc}")
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    raise typer.Exit(code)


def _node(node_id: str | None, site_id: str, hostname: str | None) -> NodeRef:
    host = socket.gethostname()
    try:
        return NodeRef(node_id=node_id or host, site_id=site_id, hostname=hostname or host)
    except ValueError as exc:
        _fail(f"invalid --node-id/--site-id/--hostname: {exc}", 2)


def _collector_source(
    name: str, config: dict[str, Any], node: NodeRef, origin: str, metrics: AgentMetrics
) -> CollectorSource:
    try:
        collector = build_collector(name, {k: v for k, v in config.items() if v is not None})
    except ConfigError as exc:
        _fail(str(exc), 2)
    return CollectorSource(collector, node, origin, metrics)


def _shared(**kwargs: Any) -> dict[str, Any]:
    _setup_logging(kwargs.pop("log_level"))
    return kwargs


@app.command("nvml")
def nvml(
    ctx: typer.Context,
    *,
    file: Annotated[Path | None, typer.Option("--file", help="Replay a capture JSON instead of NVML.")] = None,
    no_mig: Annotated[bool, typer.Option("--no-mig", help="Do not report MIG instances.")] = False,
    node_id: NodeIdOpt = None,
    site_id: SiteIdOpt = "unassigned",
    hostname: HostnameOpt = None,
    interval: IntervalOpt = 10.0,
    once: OnceOpt = False,
    print_: PrintOpt = False,
    spool_dir: SpoolDirOpt = None,
    spool_max_mb: SpoolMaxOpt = 128.0,
    metrics_port: MetricsPortOpt = None,
    kafka_timeout: KafkaTimeoutOpt = 30.0,
    compression: CompressionOpt = Compression.auto,
    log_level: LogLevelOpt = "info",
) -> None:
    """NVIDIA GPUs through NVML (nvidia-ml-py): utilization, memory, power, energy, MIG instances.

    Without an NVIDIA driver it says so in one line and exits 1.

    Examples:

    \b
        kcloud collect nvml --site-id kt-cheonan
        kcloud collect nvml --once --print
        kcloud collect nvml --file nvml-capture.json --once --print
    """
    opts = _shared(**{k: v for k, v in locals().items() if k not in ("ctx", "file", "no_mig")})
    metrics = AgentMetrics()
    config = {"replay_file": file, "include_mig": not no_mig}
    source = _collector_source("nvml", config, _node(node_id, site_id, hostname), str(file or "NVML"), metrics)
    _run(ctx, source, opts, metrics)


@app.command("nvidia-smi")
def nvidia_smi(
    ctx: typer.Context,
    *,
    file: Annotated[Path | None, typer.Option("--file", help="Read captured CSV instead of running it.")] = None,
    binary: Annotated[str | None, typer.Option("--binary", help="nvidia-smi executable.")] = None,
    node_id: NodeIdOpt = None,
    site_id: SiteIdOpt = "unassigned",
    hostname: HostnameOpt = None,
    interval: IntervalOpt = 10.0,
    once: OnceOpt = False,
    print_: PrintOpt = False,
    spool_dir: SpoolDirOpt = None,
    spool_max_mb: SpoolMaxOpt = 128.0,
    metrics_port: MetricsPortOpt = None,
    kafka_timeout: KafkaTimeoutOpt = 30.0,
    compression: CompressionOpt = Compression.auto,
    log_level: LogLevelOpt = "info",
) -> None:
    """NVIDIA GPUs through `nvidia-smi --query-gpu=... --format=csv,noheader,nounits`.

    For hosts where only the CLI exists. N/A and Not Supported cells become null fields.

    Examples:

    \b
        kcloud collect nvidia-smi --site-id naver-chuncheon --interval 10
        kcloud collect nvidia-smi --file captured-query-gpu.csv --once --print
    """
    opts = _shared(**{k: v for k, v in locals().items() if k not in ("ctx", "file", "binary")})
    metrics = AgentMetrics()
    origin = str(file) if file else f"`{binary or 'nvidia-smi'}`"
    node = _node(node_id, site_id, hostname)
    _run(
        ctx,
        _collector_source("nvidia-smi", {"file": file, "binary": binary}, node, origin, metrics),
        opts,
        metrics,
    )


@app.command("prom")
def prom(
    ctx: typer.Context,
    *,
    map_: Annotated[str, typer.Option("--map", help="Exporter map: " + ", ".join(sorted(EXPORTERS)) + ".")],
    url: Annotated[str | None, typer.Option("--url", help="Exporter's metrics URL to scrape.")] = None,
    file: Annotated[Path | None, typer.Option("--file", help="Read a captured page instead.")] = None,
    timeout: Annotated[float, typer.Option("--timeout", min=0.1, help="Seconds one scrape may take.")] = 5.0,
    node_id: NodeIdOpt = None,
    site_id: SiteIdOpt = "unassigned",
    hostname: HostnameOpt = None,
    interval: IntervalOpt = 10.0,
    once: OnceOpt = False,
    print_: PrintOpt = False,
    spool_dir: SpoolDirOpt = None,
    spool_max_mb: SpoolMaxOpt = 128.0,
    metrics_port: MetricsPortOpt = None,
    kafka_timeout: KafkaTimeoutOpt = 30.0,
    compression: CompressionOpt = Compression.auto,
    log_level: LogLevelOpt = "info",
) -> None:
    """A Prometheus exporter (DCGM, Furiosa, Rebellions, Ascend, AMD, Gaudi, ...) through a named map.

    Give exactly one of --url (scrape) or --file (a captured page).

    Examples:

    \b
        kcloud collect prom --map dcgm --url http://127.0.0.1:9400/metrics --site-id kt-cheonan
        kcloud collect prom --map furiosa --url http://127.0.0.1:6254/metrics --metrics-port 9464
        kcloud collect prom --map rbln --file captured-page.prom --once --print
    """
    opts = _shared(**{k: v for k, v in locals().items() if k not in ("ctx", "map_", "url", "file", "timeout")})
    if (url is None) == (file is None):
        _fail("give exactly one of --url (scrape an exporter) or --file (read a captured page)", 2)
    metrics = AgentMetrics()
    config = {"exporter": map_, "url": url, "file": file, "timeout_s": timeout}
    source = _collector_source("prom", config, _node(node_id, site_id, hostname), str(url or file), metrics)
    _run(ctx, source, opts, metrics)


@app.command("sim")
def sim(
    ctx: typer.Context,
    *,
    nodes: Annotated[int, typer.Option("--nodes", min=1, help="Simulated nodes.")] = 10,
    seed: Annotated[int, typer.Option("--seed", help="Seed: the same seed gives the same fleet.")] = 1,
    devices_per_node: Annotated[int, typer.Option("--devices-per-node", min=1, help="Accelerators per node.")] = 8,
    node_prefix: Annotated[str, typer.Option("--node-prefix", help="Node ids are <prefix>-000000, ...")] = "sim",
    ground_truth: Annotated[
        Path | None,
        typer.Option("--ground-truth", help="Write what really runs on each device (JSON) here first."),
    ] = None,
    interval: IntervalOpt = 10.0,
    once: OnceOpt = False,
    print_: PrintOpt = False,
    spool_dir: SpoolDirOpt = None,
    spool_max_mb: SpoolMaxOpt = 128.0,
    metrics_port: MetricsPortOpt = None,
    kafka_timeout: KafkaTimeoutOpt = 30.0,
    compression: CompressionOpt = Compression.auto,
    log_level: LogLevelOpt = "info",
) -> None:
    """A deterministic simulated fleet: one snapshot per node per tick, all with the tick's seq.

    Values are synthetic and say so (source "sim"); sites and node ids come from the simulator.

    Examples:

    \b
        kcloud collect sim --nodes 50 --seed 7
        kcloud collect sim --nodes 2 --once --print
        kcloud collect sim --nodes 1000 --interval 1 --metrics-port 9464
        kcloud collect sim --nodes 50 --ground-truth truth.json --once --print
    """
    opts = _shared(
        **{
            k: v
            for k, v in locals().items()
            if k not in ("ctx", "nodes", "seed", "devices_per_node", "node_prefix", "ground_truth")
        }
    )
    try:
        fleet = SimulatedFleet(nodes, seed=seed, devices_per_node=devices_per_node, node_prefix=node_prefix)
    except ValueError as exc:
        _fail(f"sim: {exc}", 2)
    if ground_truth is not None:
        try:
            fleet.dump_ground_truth(ground_truth)
        except OSError as exc:
            _fail(f"sim: cannot write the ground truth to {ground_truth}: {exc.strerror or exc}", 1)
    _run(ctx, SimSource(fleet), opts, AgentMetrics())


def main() -> None:
    """Run `python -m collectors.cli` on its own."""
    app()


if __name__ == "__main__":
    main()

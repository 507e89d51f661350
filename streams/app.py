"""The faust app: topics, the ingest agent, and the worker entry point.

Reads top to bottom as the pipeline: `kcloud.telemetry.v1` → ingest (batches of raw messages through
`take_events`, acked only after the database commit and the dead-letter publishes) → `device_samples`.
Delivery is at-least-once; the sink is idempotent, so each sample is stored exactly once.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from typing import Any

import faust
from prometheus_client import CONTENT_TYPE_LATEST

from kcloud.records import AlertMessage, DeadLetter, DeploymentEvent, NodeSnapshot
from kcloud.settings import Settings
from kcloud.timewindow import TimeWindow
from kcloud.topics import ALERTS, DEADLETTER, DEPLOYMENTS, TELEMETRY, TopicSpec
from streams.ingest import IngestProcessor, RawMessage
from streams.metrics import WorkerMetrics
from streams.progress import PartitionProgress
from streams.refresh import RefreshBusyError, RollupRefresher
from streams.sink import SampleSink, WriteResult
from streams.stall import FLEET, StallWatch

__all__ = ["create_app", "run_worker", "tune_gc"]

log = logging.getLogger("kcloud.streams")


def create_app(settings: Settings) -> faust.App:
    """Build the faust app for `settings` (broker, topics, agents)."""
    datadir = settings.state_dir.resolve() / "streams"
    datadir.mkdir(parents=True, exist_ok=True)
    app = faust.App(
        settings.app_id,
        broker=[f"kafka://{hp}" for hp in settings.kafka_bootstrap.split(",")],
        store="memory://",
        datadir=str(datadir / "{conf.name}"),
        autodiscover=False,
        topic_partitions=settings.kafka_partitions,
        consumer_auto_offset_reset="earliest",
        broker_commit_interval=1.0,
        broker_session_timeout=settings.worker_session_timeout_s,
        broker_heartbeat_interval=min(3.0, settings.worker_session_timeout_s / 6),
        producer_acks=-1,
        web_bind="127.0.0.1",
        web_host="127.0.0.1",
        web_port=settings.worker_web_port,
        stream_wait_empty=False,
        consumer_max_fetch_size=4 * 1024 * 1024,
    )

    def raw_topic(spec: TopicSpec) -> Any:
        """A project topic of raw bytes: decoding and validation are the ingest's job."""
        return app.topic(
            settings.topic(spec), key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw"
        )

    telemetry = raw_topic(TELEMETRY)
    for spec in (DEADLETTER, DEPLOYMENTS, ALERTS):  # declared, so that the app knows every topic it writes
        raw_topic(spec)
    sink = SampleSink(settings)
    refresher = RollupRefresher(settings)  # hourly/daily refresh on a connection of its own
    sink_lock = asyncio.Lock()  # one database connection: the agent, the sweep and the refresh take turns
    progress = PartitionProgress(idle_after_s=settings.quiet_after_s)

    async def write(snapshots: list[NodeSnapshot], partitions: dict[str, int]) -> WriteResult:
        started = time.perf_counter()
        try:
            async with sink_lock:
                return await asyncio.to_thread(sink.write, snapshots, partitions)
        finally:
            metrics.write_seconds.observe(time.perf_counter() - started)

    async def produce(spec: TopicSpec, records: list[tuple[bytes, bytes]]) -> None:
        """Send `records` (key, value) and wait until the broker has every one (before the batch is acked).
        Straight to the app's producer: a `Topic.send` per record costs some hundred microseconds more."""
        name = settings.topic(spec)
        futures = [await app.producer.send(name, key, value, None, None, None) for key, value in records]
        for fut in futures:
            await fut

    async def publish_alerts(alerts: list[AlertMessage]) -> None:
        await produce(
            ALERTS, [((a.node_id or a.site_id or FLEET).encode(), a.model_dump_json().encode()) for a in alerts]
        )

    async def publish_events(events: list[DeploymentEvent]) -> None:
        await produce(DEPLOYMENTS, [(ev.node_id.encode(), ev.model_dump_json().encode()) for ev in events])

    async def publish(letters: list[DeadLetter]) -> None:
        await produce(DEADLETTER, [((dl.key or "").encode(), dl.model_dump_json().encode()) for dl in letters])

    processor = IngestProcessor(
        write, publish, publish_events, publish_alerts, window=TimeWindow.from_settings(settings), progress=progress
    )
    metrics = WorkerMetrics(lambda: processor.counters)
    #: next offset to read of each telemetry partition, after the batches this worker has finished
    position: dict[int, int] = {}

    def assigned() -> list[int]:
        try:
            return sorted(tp.partition for tp in app.consumer.assignment() if tp.topic == telemetry.get_topic_name())
        except Exception:  # no consumer yet: the worker is still starting
            return []

    @app.agent(telemetry, name="ingest")
    async def ingest(stream: Any) -> None:
        async for events in stream.take_events(settings.ingest_batch_size, within=settings.ingest_batch_seconds):
            batch = [
                RawMessage(
                    value=ev.message.value or b"",
                    key=ev.message.key,
                    topic=ev.message.topic,
                    partition=ev.message.partition,
                    offset=ev.message.offset,
                )
                for ev in events
            ]
            await processor.handle(batch)
            for msg in batch:
                position[msg.partition] = max(position.get(msg.partition, 0), msg.offset + 1)

    @app.timer(interval=max(5.0, settings.sample_interval_s * 3))  # type: ignore[untyped-decorator]
    async def silence_sweep() -> None:
        mine = assigned()
        watermark = progress.watermark(mine)
        try:
            async with sink_lock:
                if watermark is None:  # nothing read yet: only the minutes a previous owner may have left open
                    await asyncio.to_thread(sink.close_minutes, mine)
                    return
                swept = await asyncio.to_thread(sink.sweep, watermark, mine)
        except Exception as exc:  # the database is away: the next sweep tries again
            log.warning("lifecycle sweep failed (%s: %s); retrying at the next tick", type(exc).__name__, exc)
            return
        if swept.events:
            await publish_events(swept.events)
            processor.counters.deployment_events += len(swept.events)
        if swept.alerts:
            await publish_alerts(swept.alerts)
            processor.counters.alerts += len(swept.alerts)

    stall_watch = StallWatch(settings)

    @app.timer(interval=max(5.0, settings.sample_interval_s * 3))  # type: ignore[untyped-decorator]
    async def stall_check() -> None:
        """Wall-clock silence of a site or the fleet (see `streams.stall`), on its own connection."""
        try:
            alerts = await asyncio.to_thread(stall_watch.check)
        except Exception as exc:  # the database is away: the next check tries again
            log.warning("stall check failed (%s: %s); retrying at the next tick", type(exc).__name__, exc)
            return
        if alerts:
            await publish_alerts(alerts)
            processor.counters.alerts += len(alerts)

    @app.timer(interval=settings.rollup_refresh_s)  # type: ignore[untyped-decorator]
    async def rollup_refresh() -> None:
        async with sink_lock:
            window = sink.take_dirty()
        try:  # on its own connection: ingest goes on meanwhile
            await asyncio.to_thread(refresher.refresh, window)
        except RefreshBusyError:  # another worker is at it: this window waits for the next tick
            async with sink_lock:
                sink.mark_dirty(window)
        except Exception as exc:  # the database is away: the next refresh covers this window too
            async with sink_lock:
                sink.mark_dirty(window)
            log.warning("rollup refresh failed (%s: %s); retrying at the next tick", type(exc).__name__, exc)

    @app.page("/counters/")
    async def counters(web: Any, request: Any) -> Any:
        return web.json({**vars(processor.counters), "assigned_partitions": assigned()})

    async def consumer_lag() -> dict[int, int]:
        """Records behind per held telemetry partition: the broker's end offset minus the position (the
        further of the batches this worker finished and the group's committed offset; else the start)."""
        tps = [tp for tp in app.consumer.assignment() if tp.topic == telemetry.get_topic_name()]
        if not tps:
            return {}
        ends = await app.consumer.highwaters(*tps)
        committed = getattr(app.consumer, "_committed_offset", {})  # faust keeps no public accessor
        unknown = [tp for tp in tps if tp.partition not in position and committed.get(tp) is None]
        starts = await app.consumer.earliest_offsets(*unknown) if unknown else {}
        lag: dict[int, int] = {}
        for tp in tps:
            known = [int(at) for at in (position.get(tp.partition), committed.get(tp)) if at is not None]
            at = max(known) if known else int(starts.get(tp, 0))
            lag[tp.partition] = int(ends.get(tp) or 0) - at
        return lag

    @app.page("/metrics")
    async def prometheus(web: Any, request: Any) -> Any:
        try:
            metrics.set_lag(await consumer_lag())
        except Exception as exc:  # the broker is away or the worker is rebalancing: the lag shown is the last one
            log.debug("consumer lag not read (%s: %s)", type(exc).__name__, exc)
        return web.bytes(metrics.exposition(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    @app.timer(interval=30.0)  # type: ignore[untyped-decorator]
    async def report() -> None:
        c = processor.counters
        log.info(
            "ingest: %d messages, %d samples stored of %d, %d dead-lettered, %d db retries, "
            "%d writes refused by the database, %d throughputs refused",
            c.messages,
            c.samples_stored,
            c.samples_in,
            c.deadlettered,
            c.db_retries,
            c.db_rejected_writes,
            c.throughput_refused,
        )

    app.kcloud_processor = processor  # type: ignore[attr-defined]
    return app


def tune_gc() -> None:
    """Collect the young generation every 100,000 allocations instead of 700: a batch decodes about a hundred
    objects per snapshot and keeps them until its commit, and with the default thresholds the collector
    walks them (and the state the worker keeps) again and again, costing a sixth of the worker's CPU
    (`bench.ingest`). Nothing of the pipeline relies on cycles being collected early."""
    gc.set_threshold(100_000, 50, 100)


def run_worker(settings: Settings, loglevel: str = "info") -> None:
    """Run one worker in the foreground until SIGTERM/SIGINT: topics ensured, migrations applied first."""
    from kcloud.db.migrate import migrate
    from kcloud.kafka_client import ensure_topics

    logging.basicConfig(level=loglevel.upper(), format="[%(asctime)s] %(levelname)s %(name)s: %(message)s")
    migrate(settings.migration_database_url, settings)  # as the schema owner; the worker then runs as the service
    ensure_topics(settings)
    app = create_app(settings)
    tune_gc()
    worker = faust.Worker(app, loglevel=loglevel)
    worker.execute_from_commandline()

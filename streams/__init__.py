"""Stream processors (faust): from `kcloud.telemetry.v1` to stored samples, rollups, deployment records
and alerts. `streams.app.create_app` builds the app; `kcloud streams worker` runs one worker;
`streams.launcher` starts workers as child processes (for the demo, the tests and the benchmarks).

A stage: imports only the core (`kcloud`)."""

__all__: list[str] = []

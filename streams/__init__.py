"""Stream processors (faust): from `kcloud.telemetry.v1` to stored samples, rollups, deployment records
and alerts. `streams.app.create_app` builds the app; `kcloud streams worker` runs one worker."""

__all__: list[str] = []

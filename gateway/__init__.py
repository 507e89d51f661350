"""The vendor push gateway: an authenticated HTTP endpoint (`POST /v1/telemetry`) where accelerator
vendors push node snapshots, which it validates and produces to `kcloud.telemetry.v1`.

Modules, in the order a request meets them: `app` (the FastAPI app and its router list), `audit`
(one `ingest_audit` row per request), `auth` (token check, rate limit, `require_role`), `push` (the
endpoint), `payload` (body to snapshots), `produce` (Kafka, answer only after acknowledgement);
beside them `tokens` (token format and hashing), `registry` (vendors and tokens in the database),
`limits`, `metrics`, `models`, `context`, and `cli` (`kcloud vendor`; `kcloud gateway`, which mounts the
reports' endpoints too, is the application's `console.gateway_cmd`).

A stage like the collectors (it produces snapshots): imports only the core (`kcloud`); other stages'
endpoints are passed to `create_app` by the application.

Import from the modules (`gateway.app.create_app`, `gateway.auth.require_role`): the
package itself imports nothing, so that `kcloud --help` does not load the web stack.
"""

__all__: list[str] = []

"""Local infrastructure: the Kafka broker (KRaft, jars from Maven Central) and the PostgreSQL cluster
that the pipeline, the demo and the integration tests run on. `kcloud infra up|down|status` drives it.

For local development only: imports the core (`kcloud`); used by the application (`console/`), the
benchmarks and the tests, never by the core or a stage."""

from infra.errors import InfraError

__all__ = ["InfraError"]

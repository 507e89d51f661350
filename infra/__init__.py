"""Local infrastructure: the Kafka broker (KRaft, jars from Maven Central) and the PostgreSQL cluster
that the pipeline, the demo and the integration tests run on. `kcloud infra up|down|status` drives it."""

from infra.errors import InfraError

__all__ = ["InfraError"]

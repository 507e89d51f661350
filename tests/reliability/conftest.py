"""Fixtures of the reliability scenarios: a migrated pipeline database with its own topics, stream workers
run in the test's temporary directory (their faust state stays there), and the helpers of the pipeline
end-to-end and gateway tests on the import path."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from infra.kafka import KafkaService
from kcloud.settings import Settings

for _helpers in ("streams", "gateway"):  # pipeline_helpers, gateway_helpers
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration" / _helpers))


@pytest.fixture
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Run the test (and the processes it starts) in its temporary directory."""
    monkeypatch.chdir(tmp_path)
    yield tmp_path


@pytest.fixture
def rel_settings(test_settings: Settings, kafka_up: KafkaService, in_tmp: Path) -> Settings:
    """The test stack with a fresh migrated database, this test's own topics and consumer group, and
    small ingest batches so that a run lasts long enough to be interrupted."""
    from pipeline_helpers import worker_settings

    # a SIGKILLed worker's partitions are handed on after the group session timeout (the broker's minimum),
    # so that a scenario with several crashes stays within its time bound
    return worker_settings(test_settings, app_prefix="rel", batch_size=20)

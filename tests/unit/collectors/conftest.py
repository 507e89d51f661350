"""Shared helpers of the collector tests: fixture files and a flat view of a sample for golden asserts."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from kcloud.records import DeviceSample

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"


@pytest.fixture
def fixture_text() -> Callable[[str], str]:
    """Read `tests/fixtures/<relative>` as text."""

    def read(relative: str) -> str:
        return (FIXTURES / relative).read_text(encoding="utf-8")

    return read


@pytest.fixture
def flat() -> Callable[[DeviceSample], dict[str, Any]]:
    """A sample as a flat dict of its non-null fields (attribution as `attribution.<key>`), so that a
    golden expectation can be compared with `pytest.approx`."""

    def flatten(sample: DeviceSample) -> dict[str, Any]:
        data = sample.model_dump(exclude_none=True)
        for key, value in (data.pop("attribution", None) or {}).items():
            data[f"attribution.{key}"] = value
        return data

    return flatten

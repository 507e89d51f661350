"""Whatever details a client can cause, the stored row is the hashed row: append, then verify intact.

Numbers that jsonb stores differently from their JSON text (-0.0, 1e308, ints beyond 2^53, 17-digit
floats), every kind of unicode text, escapes and long strings: none may make an honest row fail verify."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ledger_helpers import append, events

from kcloud.db.migrate import migrate
from kcloud.ledger import verify_ledger
from kcloud.ledger.publish import trusted_key
from kcloud.settings import Settings

_NUMBERS = st.one_of(
    st.sampled_from([-0.0, 0.0, 1e308, -1e308, 5e-324, 2.0**53 + 1, 0.1 + 0.2, 1 / 3, 1e16, 1e-7, 123456789.12345678]),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
)
_TEXT = st.one_of(
    st.text(),
    st.sampled_from(["\\u00e9", '"\\"', "\u202eevil", "\ufeff", "\U0001f600", "\x00", "\ud800", "a" * 100_000]),
)
_SCALARS = st.one_of(st.none(), st.booleans(), _NUMBERS, _TEXT)
_DETAILS = st.dictionaries(
    _TEXT,
    st.recursive(
        _SCALARS, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_TEXT, inner, max_size=4), max_leaves=10
    ),
    max_size=5,
)


@pytest.fixture
def ledger_db(test_settings: Settings) -> str:
    migrate(test_settings.effective_database_url, test_settings)
    return test_settings.effective_database_url


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(details=st.lists(_DETAILS, min_size=1, max_size=3))
def test_any_details_a_client_can_cause_verify_intact_after_the_round_trip(
    ledger_db: str, test_settings: Settings, tmp_path: Path, details: list[dict[str, object]]
) -> None:
    evs = [ev for i, d in enumerate(details) for ev in events(1, start=i, details=d)]
    append(ledger_db, tmp_path, evs)
    key = trusted_key(test_settings.model_copy(update={"state_dir": tmp_path / "state"}))
    assert key is not None
    with psycopg.connect(ledger_db) as conn:
        result = verify_ledger(conn, trusted_key=key)
    assert result.ok, result.broken

"""Settings: defaults, TOML file, environment, and loud failures on unknown keys."""

from __future__ import annotations

from pathlib import Path

import pytest

from kcloud.settings import SettingsError, load_settings


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import os

    for key in list(os.environ):
        if key.upper().startswith("KCLOUD_"):
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)


def test_defaults_point_at_the_local_stack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KCLOUD_STATE_DIR", str(tmp_path))  # no pgpass yet: URLs without passwords
    s = load_settings()
    assert s.kafka_bootstrap == "127.0.0.1:9092"
    assert s.effective_database_url == "postgresql://kcloud_service@127.0.0.1:54329/kcloud"
    assert s.migration_database_url == "postgresql://kcloud_owner@127.0.0.1:54329/kcloud"
    assert s.local_database_url == "postgresql://kcloud@127.0.0.1:54329/kcloud"
    assert s.timescale == "auto"


def test_local_urls_carry_the_roles_passwords_from_the_state_dirs_pgpass(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KCLOUD_STATE_DIR", str(tmp_path))
    (tmp_path / "pgpass").write_text("# roles\n*:*:*:kcloud_service:s3rv1ce\n*:*:*:kcloud_owner:0wner\n")
    s = load_settings()
    assert s.effective_database_url == "postgresql://kcloud_service:s3rv1ce@127.0.0.1:54329/kcloud"
    assert s.migration_database_url == "postgresql://kcloud_owner:0wner@127.0.0.1:54329/kcloud"


def test_an_external_database_url_is_also_the_migration_url_unless_an_owner_url_is_given(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("KCLOUD_DATABASE_URL", "postgresql://svc@db.example:5432/x")
    assert load_settings().migration_database_url == "postgresql://svc@db.example:5432/x"
    monkeypatch.setenv("KCLOUD_OWNER_DATABASE_URL", "postgresql://owner@db.example:5432/x")
    assert load_settings().migration_database_url == "postgresql://owner@db.example:5432/x"
    assert load_settings().effective_database_url == "postgresql://svc@db.example:5432/x"


def test_toml_file_values_apply_and_environment_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "k.toml"
    cfg.write_text("pg_port = 6000\nretention_days = 30\n")
    monkeypatch.setenv("KCLOUD_RETENTION_DAYS", "90")
    s = load_settings(cfg)
    assert s.pg_port == 6000
    assert s.retention_days == 90


def test_kcloud_toml_in_the_working_directory_is_read(tmp_path: Path) -> None:
    (tmp_path / "kcloud.toml").write_text('kafka_bootstrap = "10.0.0.5:9092"\n')
    assert load_settings().kafka_bootstrap == "10.0.0.5:9092"


def test_unknown_key_in_the_file_is_an_error_naming_it(tmp_path: Path) -> None:
    cfg = tmp_path / "k.toml"
    cfg.write_text("retention_dayz = 3\n")
    with pytest.raises(SettingsError, match="retention_dayz"):
        load_settings(cfg)


def test_unknown_environment_variable_is_an_error_naming_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KCLOUD_PGPORT", "1")
    with pytest.raises(SettingsError, match="KCLOUD_PGPORT"):
        load_settings()


def test_invalid_value_names_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KCLOUD_TIMESCALE", "maybe")
    with pytest.raises(SettingsError, match="timescale"):
        load_settings()


def test_broken_toml_says_which_file(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text("pg_port = = 3\n")
    with pytest.raises(SettingsError, match=r"bad\.toml"):
        load_settings(cfg)


def test_external_database_url_is_used_as_is(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KCLOUD_DATABASE_URL", "postgresql://u@db.example:5432/x")
    assert load_settings().effective_database_url == "postgresql://u@db.example:5432/x"

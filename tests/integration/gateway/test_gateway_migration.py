"""Migration 0010 (token expiry, cross-vendor tokens without a vendor, audit request ids) on a database
that was migrated before the file existed (up to 0012 and beyond): it is applied then, and the program-manager
tokens that were issued under a vendor lose that vendor."""

from __future__ import annotations

import shutil
from pathlib import Path

from gateway.tokens import issue_token
from kcloud.db.connect import connect
from kcloud.db.migrate import migrate
from kcloud.db.migration_files import package_migrations_dir
from kcloud.settings import Settings


def test_0010_applies_on_a_database_already_at_0012(test_settings: Settings, tmp_path: Path) -> None:
    before = tmp_path / "migrations"
    shutil.copytree(str(package_migrations_dir()), before)
    (before / "0010_gateway_integrity.sql").unlink()
    url = test_settings.effective_database_url
    migrate(url, test_settings, migrations_dir=before)
    pm, vendor = issue_token(), issue_token()
    with connect(url) as conn:
        for issued, role in ((pm, "program-manager"), (vendor, "vendor")):
            conn.execute(
                "INSERT INTO vendor_tokens (token_id, vendor_id, role, salt, hash) VALUES (%s, 'furiosa', %s, %s, %s)",
                (issued.token_id, role, issued.salt, issued.hash),
            )
        conn.commit()
        newest = conn.execute("SELECT max(version) FROM schema_migrations").fetchone()
        assert (
            newest is not None
            and newest[0] >= 12
            and not conn.execute("SELECT 1 FROM schema_migrations WHERE version = 10").fetchone()
        )

    report = migrate(url, test_settings)

    assert [m.version for m in report.applied] == [10], report.summary()
    with connect(url) as conn:
        rows = dict(conn.execute("SELECT role, vendor_id FROM vendor_tokens").fetchall())
        columns = {
            r[0]
            for r in conn.execute(
                "SELECT column_name FROM information_schema.columns "
                "WHERE table_name IN ('vendor_tokens', 'ingest_audit')"
            ).fetchall()
        }
    assert rows == {"program-manager": None, "vendor": "furiosa"}
    assert {"expires_at", "request_id"} <= columns
    assert migrate(url, test_settings).applied == []

"""Keys made before keys were aggregates keep working after an upgrade, under unique names."""

from __future__ import annotations

from datetime import UTC, datetime

from application.access import digest_of
from infra.composition_root import bootstrap
from infra.settings import Settings
from infra.sql.database import connect

LEGACY = [
    ("itsm_old-admin", "ops", "admin"),
    ("itsm_old-a", "", "agent"),
    ("itsm_old-b", "", "agent"),
]


def _write_legacy_table(settings: Settings) -> None:
    db = connect(settings.store_url)
    try:
        db.script(
            [
                "CREATE TABLE itsm_api_keys (digest TEXT PRIMARY KEY, name TEXT NOT NULL,"
                " role TEXT NOT NULL, created_at TEXT NOT NULL)"
            ]
        )
        with db.transaction() as tx:
            for secret, name, role in LEGACY:
                tx.execute(
                    "INSERT INTO itsm_api_keys VALUES (%s, %s, %s, %s)",
                    (digest_of(secret), name, role, datetime.now(UTC).isoformat()),
                )
    finally:
        db.close()


def test_legacy_keys_are_adopted_once_with_their_secrets_and_unique_names(tmp_path):
    settings = Settings(data_dir=tmp_path)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    _write_legacy_table(settings)
    for _ in range(2):  # a second start adopts nothing again
        container = bootstrap(settings)
        try:
            holders = [container.keys.authenticate(secret) for secret, _, _ in LEGACY]
            names = sorted(key.name for key in container.keys.list())
        finally:
            container.close()
        assert all(holders)
        assert [str(h.role) for h in holders if h] == [role for _, _, role in LEGACY]
        assert len(names) == 3 and len(set(names)) == 3
        assert "ops" in names
        assert all(n.startswith("key-") for n in names if n != "ops")


def test_an_interrupted_adoption_is_finished_and_an_unknown_role_is_left_alone(tmp_path):
    settings = Settings(data_dir=tmp_path)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    _write_legacy_table(settings)
    db = connect(settings.store_url)
    try:
        with db.transaction() as tx:
            tx.execute(
                "INSERT INTO itsm_api_keys VALUES (%s, %s, %s, %s)",
                (digest_of("itsm_old-x"), "x", "superuser", datetime.now(UTC).isoformat()),
            )
        # What an adoption stopped between the secret's row and its Issued event leaves.
        db.script(
            [
                "CREATE TABLE itsm_api_key_secrets (digest TEXT PRIMARY KEY, key_id TEXT NOT"
                " NULL, secret_id TEXT NOT NULL, created_at TEXT NOT NULL)",
                f"INSERT INTO itsm_api_key_secrets VALUES ('{digest_of('itsm_old-admin')}',"
                " '7d3c1c57-8a37-4a8f-b7a3-1f1e7d1d2a11', 'gen-1', '2026-01-01')",
            ]
        )
    finally:
        db.close()
    container = bootstrap(settings)
    try:
        assert container.keys.authenticate("itsm_old-admin") is not None
        assert container.keys.authenticate("itsm_old-x") is None
        assert len(container.keys.list()) == 3
    finally:
        container.close()

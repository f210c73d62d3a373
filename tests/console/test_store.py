"""The console's database: location, migrations, the probe registry (SR-18)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from console.store import (
    SCHEMA_VERSION,
    ProbeRegistry,
    StoreError,
    connect,
    default_db_path,
    schema_version,
)


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"PROBE_CONSOLE_DB": "/x/db.sqlite3", "STATE_DIRECTORY": "/s"}, "/x/db.sqlite3"),
        ({"STATE_DIRECTORY": "/var/lib/pc:/other"}, "/var/lib/pc/sessions.sqlite3"),
        ({"XDG_DATA_HOME": "/d", "HOME": "/h"}, "/d/probe-console/sessions.sqlite3"),
        ({"HOME": "/h"}, "/h/.local/share/probe-console/sessions.sqlite3"),
    ],
)
def test_default_location_follows_interfaces_md(env: dict[str, str], expected: str) -> None:
    assert default_db_path(env) == Path(expected)


def test_a_new_database_is_migrated_in_wal_mode_with_full_sync(tmp_path: Path) -> None:
    """SR-22's durability settings are the store's defaults from the first connection."""
    db = connect(tmp_path / "a" / "sessions.sqlite3")
    assert schema_version(db) == SCHEMA_VERSION
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    db.close()
    again = connect(tmp_path / "a" / "sessions.sqlite3")
    assert again.execute("SELECT COUNT(*) FROM schema_version").fetchone()[0] == SCHEMA_VERSION


def test_a_newer_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite3"
    connect(path).execute("INSERT INTO schema_version VALUES (?)", (SCHEMA_VERSION + 1,))
    with pytest.raises(StoreError, match="newer than this"):
        connect(path)


def test_an_unwritable_location_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(StoreError, match="cannot open the database"):
        connect(blocker / "db.sqlite3")


def test_registry_remembers_the_first_open(tmp_path: Path) -> None:
    """SR-18: the daemon remembers probe serials of --port devices."""
    registry = ProbeRegistry(connect(tmp_path / "db.sqlite3"))
    assert registry.opened("PRB-1") is None
    registry.mark_opened("PRB-1", "CRYO-20G-90", "DEV-1", "2026-11-28T10:00:00Z", "s1")
    registry.mark_opened("PRB-1", "CRYO-20G-90", "DEV-2", "2026-11-28T11:00:00Z", "s2")
    record = registry.opened("PRB-1")
    assert record is not None and (record.device_serial, record.session_id) == ("DEV-1", "s1")
    # Committed: another connection sees it.
    other = sqlite3.connect(tmp_path / "db.sqlite3")
    assert other.execute("SELECT COUNT(*) FROM probes").fetchone()[0] == 1

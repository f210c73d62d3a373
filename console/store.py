"""The console's SQLite database: schema versions, migrations, and the probe registry.

One file holds the probe registry (SR-18: single-use probes already opened)
and the session records (SR-22, console/records.py). It is opened in WAL mode with
`synchronous=FULL`, so a committed row survives a crash or a power cut.
Migrations are numbered, applied in order inside one transaction each, and
recorded in `schema_version`; a database newer than this code is refused
rather than guessed at.

Default location (`interfaces.md`): `$PROBE_CONSOLE_DB`, else
`$STATE_DIRECTORY/sessions.sqlite3` under systemd, else
`$XDG_DATA_HOME/probe-console/sessions.sqlite3` (XDG default `~/.local/share`).
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import NamedTuple


class StoreError(Exception):
    """The database cannot be opened, migrated or written."""


def default_db_path(env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    if env.get("PROBE_CONSOLE_DB"):
        return Path(env["PROBE_CONSOLE_DB"])
    if env.get("STATE_DIRECTORY"):
        # systemd may list several directories separated by ':'; ours is the first.
        return Path(env["STATE_DIRECTORY"].split(":")[0]) / "sessions.sqlite3"
    data = env.get("XDG_DATA_HOME") or str(
        Path(env.get("HOME", "~")).expanduser() / ".local" / "share"
    )
    return Path(data) / "probe-console" / "sessions.sqlite3"


def _v1(db: sqlite3.Connection) -> None:
    db.execute(
        """
        CREATE TABLE probes (
            probe_serial TEXT PRIMARY KEY,
            probe_model TEXT NOT NULL,
            device_serial TEXT NOT NULL,
            first_opened_ts TEXT NOT NULL,
            session_id TEXT
        )
        """
    )


def _v2(db: sqlite3.Connection) -> None:
    """Session records (console/records.py): the hash chain and its derived indexes."""
    # One statement at a time: `executescript` would commit the migration's transaction.
    script = """
        CREATE TABLE sessions (
            session_id TEXT PRIMARY KEY,
            command TEXT NOT NULL,
            port TEXT,
            pid INTEGER NOT NULL,
            simulated INTEGER NOT NULL,
            started_ts TEXT NOT NULL,
            finished_ts TEXT,
            outcome TEXT,
            reason TEXT,
            exit_code INTEGER,
            record_count INTEGER NOT NULL,
            head_hash BLOB NOT NULL,
            heartbeats INTEGER NOT NULL,
            supply_opened INTEGER NOT NULL,
            locked INTEGER NOT NULL
        );
        CREATE TABLE records (
            session_id TEXT NOT NULL REFERENCES sessions (session_id),
            seq INTEGER NOT NULL,
            event TEXT NOT NULL,
            t_s REAL NOT NULL,
            body BLOB NOT NULL,
            hash BLOB NOT NULL,
            PRIMARY KEY (session_id, seq)
        ) WITHOUT ROWID;
        CREATE TABLE telemetry (
            session_id TEXT NOT NULL,
            seq INTEGER NOT NULL,
            t_s REAL NOT NULL,
            device_ms INTEGER NOT NULL,
            tip_c REAL,
            supply_psi REAL NOT NULL,
            exhaust_psi REAL NOT NULL,
            supply_open INTEGER NOT NULL,
            inlet_open INTEGER NOT NULL,
            vent_open INTEGER NOT NULL,
            stim_on INTEGER NOT NULL,
            PRIMARY KEY (session_id, seq)
        ) WITHOUT ROWID;
        CREATE TABLE alarms (
            session_id TEXT NOT NULL,
            seq INTEGER NOT NULL,
            alarm TEXT NOT NULL,
            priority TEXT NOT NULL,
            raised_t_s REAL NOT NULL,
            value REAL,
            limit_value REAL,
            device_ms INTEGER,
            acknowledged_t_s REAL,
            cleared_t_s REAL,
            PRIMARY KEY (session_id, seq)
        ) WITHOUT ROWID;
        CREATE TABLE procedures (
            session_id TEXT NOT NULL,
            seq INTEGER NOT NULL,
            started_t_s REAL NOT NULL,
            cycles INTEGER,
            freeze_s REAL,
            thaw_s REAL,
            finished_t_s REAL,
            outcome TEXT,
            reason TEXT,
            PRIMARY KEY (session_id, seq)
        ) WITHOUT ROWID;
        CREATE INDEX sessions_port ON sessions (port);
        """
    for statement in script.split(";"):
        if statement.strip():
            db.execute(statement)


#: Migration n brings the schema from version n-1 to n. Append only; never edit a released one.
MIGRATIONS: tuple[Callable[[sqlite3.Connection], None], ...] = (_v1, _v2)
SCHEMA_VERSION = len(MIGRATIONS)


def connect(path: Path) -> sqlite3.Connection:
    """Open (creating if needed) and migrate the database at `path`."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(path, isolation_level=None, timeout=5.0)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        db.execute("PRAGMA foreign_keys=ON")
        migrate(db)
    except (OSError, sqlite3.Error) as exc:
        raise StoreError(f"cannot open the database {path}: {exc}") from exc
    return db


def schema_version(db: sqlite3.Connection) -> int:
    db.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
    row = db.execute("SELECT MAX(version) FROM schema_version").fetchone()
    return int(row[0] or 0)


def migrate(db: sqlite3.Connection) -> int:
    """Apply the migrations this database lacks; return the version it is at."""
    db.execute("BEGIN IMMEDIATE")
    try:
        current = schema_version(db)
        if current > SCHEMA_VERSION:
            raise StoreError(
                f"the database is at schema version {current}, newer than this "
                f"probe-console ({SCHEMA_VERSION}); use a newer probe-console"
            )
        for version in range(current + 1, SCHEMA_VERSION + 1):
            MIGRATIONS[version - 1](db)
            db.execute("INSERT INTO schema_version (version) VALUES (?)", (version,))
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    return SCHEMA_VERSION


class OpenedProbe(NamedTuple):
    probe_serial: str
    probe_model: str
    device_serial: str
    first_opened_ts: str
    session_id: str | None


class ProbeRegistry:
    """Probe serials whose supply opened on a `--port` device (SR-18: single use)."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def opened(self, probe_serial: str) -> OpenedProbe | None:
        row = self.db.execute(
            "SELECT probe_serial, probe_model, device_serial, first_opened_ts, session_id "
            "FROM probes WHERE probe_serial = ?",
            (probe_serial,),
        ).fetchone()
        return None if row is None else OpenedProbe(*row)

    def mark_opened(
        self,
        probe_serial: str,
        probe_model: str,
        device_serial: str,
        ts: str,
        session_id: str | None,
    ) -> None:
        """Record the first supply open of a probe; later opens keep the first record."""
        self.db.execute(
            "INSERT OR IGNORE INTO probes VALUES (?, ?, ?, ?, ?)",
            (probe_serial, probe_model, device_serial, ts, session_id),
        )

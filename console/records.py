"""Session records: every event of a session in SQLite, hash-chained, committed as SR-22 says.

One `Recorder` per session record (`simulate`, `run`, `serve`) is an event
sink. Each event becomes one record: its canonical form (`interfaces.md`: JSON,
sorted keys, separators `,` and `:`, floats by `repr`, UTF-8) and
`hash = SHA-256(prev_hash || canonical record)`, the first record chained to
32 zero bytes. The runner calls `commit_due()` after each input's actuation
was written: decision records (anything but `telemetry`) are committed then,
before the next input; telemetry is committed in batches spanning less than
1 s. Heartbeats are not events; the session row counts them.

A commit that fails (disk full, a read-only or size-capped database) keeps
the records in memory, calls `on_failure` once (SR-31: the controller takes
the safe state and raises `ALM_RECORD`), and is retried at most once a
second of the session's time; the first retry that succeeds commits all of
them, chain intact, and calls `on_restored`.

Besides the chain (`records`), the same transaction keeps three indexes for
queries and plots: `telemetry` (typed columns), `alarms` (raised, acknowledged,
cleared) and `procedures` (started, finished). They are derived from the
records; `sessions verify` checks the chain, which is the record.

A running session holds an exclusive lock on `locks/session-<id>.lock` beside
the database; `recover` marks `interrupted` only sessions whose lock is free
(their process is gone: the kernel drops a lock even on `kill -9`).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import math
import os
import sqlite3
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

from console.events import json_safe
from console.store import StoreError, connect

GENESIS = bytes(32)
_INSERT_RECORD = (
    "INSERT INTO records (session_id, seq, event, t_s, body, hash) VALUES (?, ?, ?, ?, ?, ?)"
)
TELEMETRY_BATCH_S = 0.9  # a batch spans less than SR-22's 1 s of device time
RETRY_S = 1.0


def canonical(record: Mapping[str, Any]) -> bytes:
    """The canonical form of `interfaces.md`; Python's `json` writes floats by `repr`.

    NaN and infinity (JSON has neither) are written as null, as in the events file; a
    string that is not text (a lone surrogate) is written with a backslash escape, so that
    no content can stop the record.
    """
    try:
        text = _CANONICAL.encode(record)
    except ValueError:
        text = _CANONICAL.encode(json_safe(dict(record)))
    return text.encode("utf-8", "backslashreplace")


_CANONICAL = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
)


def chain(prev: bytes, body: bytes) -> bytes:
    return hashlib.sha256(prev + body).digest()


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


# --- session locks --------------------------------------------------------------------------


def lock_dir(db_path: Path) -> Path:
    return db_path.parent / "locks"


class SessionLock:
    """An exclusive `flock` on the session's lock file, held while the session runs."""

    def __init__(self, db_path: Path, session_id: str) -> None:
        self.path = lock_dir(db_path) / f"session-{session_id}.lock"
        self._fd: int | None = None

    def try_acquire(self) -> bool:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o770)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o660)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._fd = fd
        return True

    def release(self, *, remove: bool = False) -> None:
        if self._fd is not None:
            if remove:
                self.path.unlink(missing_ok=True)
            os.close(self._fd)
            self._fd = None


# --- writing --------------------------------------------------------------------------------


class Recorder:
    """The store sink of one session record (see the module docstring)."""

    def __init__(
        self,
        db_path: Path,
        session_id: str,
        *,
        command: str,
        port: str | None,
        simulated: bool,
        heartbeats: Callable[[], int] | None = None,
    ) -> None:
        self.path = db_path
        self.session_id = session_id
        self.db = connect(db_path)
        self.lock = SessionLock(db_path, session_id)
        if not self.lock.try_acquire():  # a fresh random id: never expected
            raise StoreError(f"session {session_id} is already locked")
        self.heartbeats = heartbeats or (lambda: 0)
        self.on_failure: Callable[[str], None] | None = None
        self.on_restored: Callable[[], None] | None = None
        self.failed: str | None = None
        self.committed = 0
        self._pending: list[tuple[dict[str, Any], bytes]] = []
        self._due_at = math.inf  # session time at which the pending records must be committed
        self._now = 0.0
        self._head = GENESIS
        self._supply_opened = False
        self._locked = False
        self._finished: dict[str, Any] | None = None
        self._last_seq = 0
        try:
            with self._transaction():
                self.db.execute(
                    "INSERT INTO sessions (session_id, command, port, pid, simulated, "
                    "started_ts, record_count, head_hash, heartbeats, supply_opened, locked) "
                    "VALUES (?, ?, ?, ?, ?, ?, 0, ?, 0, 0, 0)",
                    (session_id, command, port, os.getpid(), int(simulated), utc_now(), GENESIS),
                )
        except sqlite3.Error as exc:
            self.lock.release(remove=True)
            self.db.close()
            raise StoreError(f"cannot start the session record in {db_path}: {exc}") from exc

    def __call__(self, event: dict[str, Any]) -> None:
        self._pending.append((event, canonical(event)))
        t = float(event["t_s"])
        if t > self._now:
            self._now = t
        self._last_seq = int(event["seq"])
        name = event["event"]
        if self.failed is None:  # failing, the retry keeps its own schedule
            if name != "telemetry":
                self._due_at = -math.inf  # a decision: before the next input
            elif t + TELEMETRY_BATCH_S < self._due_at:
                self._due_at = t + TELEMETRY_BATCH_S
        if name == "valve_reported" and event.get("valve") == "supply" and event.get("open"):
            self._supply_opened = True
        elif name == "withdraw_safe":
            self._locked = not event["safe"]
        elif name == "session_finished":
            self._finished = event

    def commit_due(self, now: float = -math.inf) -> bool:
        """After an input's actuation was written: commit what SR-22 says must be committed.

        `now` is the session's time (the records' own times are used otherwise). True
        when a commit was attempted (it may have failed and decided: SR-31).
        """
        if now > self._now:
            self._now = now
        if self._now < self._due_at:
            return False
        self.commit()
        return True

    def commit(self) -> bool:
        """Commit every pending record now; False (and SR-31's callback once) if that failed."""
        if not self._pending:
            self._due_at = math.inf
            return True
        pending, head = self._pending, self._head
        rows = []
        for event, body in pending:
            head = chain(head, body)
            rows.append((event, body, head))
        try:
            with self._transaction():
                self._write(rows, head)
        except sqlite3.Error as exc:
            self._due_at = self._now + RETRY_S
            if self.failed is None:
                self.failed = f"{type(exc).__name__}: {exc}"
                if self.on_failure is not None:
                    self.on_failure(self.failed)
            return False
        del self._pending[: len(rows)]  # a callback may have added records meanwhile
        self._head = head
        self.committed += len(rows)
        self._due_at = math.inf
        for event, _ in self._pending:
            if event["event"] != "telemetry":
                self._due_at = -math.inf
                break
            self._due_at = min(self._due_at, float(event["t_s"]) + TELEMETRY_BATCH_S)
        if self.failed is not None:
            self.failed = None
            if self.on_restored is not None:
                self.on_restored()
        return True

    def _write(self, rows: list[tuple[dict[str, Any], bytes, bytes]], head: bytes) -> None:
        db, sid = self.db, self.session_id
        db.executemany(
            _INSERT_RECORD,
            [(sid, e["seq"], e["event"], e["t_s"], body, h) for e, body, h in rows],
        )
        for event, _, _ in rows:
            _index(db, sid, event)
        db.execute(
            "UPDATE sessions SET record_count = record_count + ?, head_hash = ?, heartbeats = ?, "
            "supply_opened = ?, locked = ? WHERE session_id = ?",
            (len(rows), head, self.heartbeats(), int(self._supply_opened), int(self._locked), sid),
        )

    def inherit_lock(self) -> None:
        """This session starts locked (SR-22): until a release is recorded, it ends locked
        too, however early it ends, so that the next start is locked again."""
        self._locked = True

    def close(self, exit_code: int | None) -> bool:
        """The last commit and the session row's end; the lock goes. True if all is stored.

        A command that ends on an error path without its `session_finished` gets one
        here, chained like any record (outcome `aborted`, reason `error`); only the
        events file then lacks that line.
        """
        if self._finished is None:
            self(
                {
                    "event": "session_finished",
                    "t_s": self._now,
                    "ts": utc_now(),
                    "seq": self._last_seq + 1,
                    "outcome": "aborted",
                    "reason": "error",
                }
            )
        ok = self.commit()
        finished = self._finished
        if ok and finished is not None:
            try:
                with self._transaction():
                    self.db.execute(
                        "UPDATE sessions SET finished_ts = ?, outcome = ?, reason = ?, "
                        "exit_code = ? WHERE session_id = ?",
                        (
                            utc_now(),
                            finished["outcome"],
                            finished["reason"],
                            exit_code,
                            self.session_id,
                        ),
                    )
            except sqlite3.Error:
                ok = False
        self.db.close()
        # An unfinished record keeps its lock file so that `recover` can mark it later.
        self.lock.release(remove=ok)
        return ok

    def _transaction(self) -> _Tx:
        return _Tx(self.db)


class _Tx:
    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def __enter__(self) -> None:
        self.db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            try:
                self.db.execute("COMMIT")
                return
            except sqlite3.Error:
                self.db.execute("ROLLBACK")
                raise
        if self.db.in_transaction:
            self.db.execute("ROLLBACK")


def _index(db: sqlite3.Connection, sid: str, e: Mapping[str, Any]) -> None:
    """The derived tables, in the records' transaction."""
    name = e["event"]
    if name == "telemetry":
        db.execute(
            "INSERT INTO telemetry VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                sid,
                e["seq"],
                e["t_s"],
                e["device_ms"],
                e["tip_c"],
                e["supply_psi"],
                e["exhaust_psi"],
                int(e["supply_open"]),
                int(e["inlet_open"]),
                int(e["vent_open"]),
                int(e["stim_on"]),
            ),
        )
    elif name == "alarm_raised":
        db.execute(
            "INSERT INTO alarms (session_id, seq, alarm, priority, raised_t_s, value, limit_value, "
            "device_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                sid,
                e["seq"],
                e["alarm"],
                e["priority"],
                e["t_s"],
                _number(e.get("value")),
                _number(e.get("limit")),
                e.get("device_ms"),
            ),
        )
    elif name in ("alarm_acknowledged", "alarm_cleared"):
        column = "acknowledged_t_s" if name == "alarm_acknowledged" else "cleared_t_s"
        db.execute(
            f"UPDATE alarms SET {column} = ? WHERE session_id = ? AND alarm = ? AND seq = "
            "(SELECT MAX(seq) FROM alarms WHERE session_id = ? AND alarm = ?)",
            (e["t_s"], sid, e["alarm"], sid, e["alarm"]),
        )
    elif name == "procedure_started":
        db.execute(
            "INSERT INTO procedures (session_id, seq, started_t_s, cycles, freeze_s, thaw_s) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (sid, e["seq"], e["t_s"], e.get("cycles"), e.get("freeze_s"), e.get("thaw_s")),
        )
    elif name == "procedure_finished":
        db.execute(
            "UPDATE procedures SET finished_t_s = ?, outcome = ?, reason = ? WHERE session_id = ? "
            "AND seq = (SELECT MAX(seq) FROM procedures WHERE session_id = ?)",
            (e["t_s"], e["outcome"], e["reason"], sid, sid),
        )


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) else None


# --- recovery (SR-22) -----------------------------------------------------------------------


class Recovery(NamedTuple):
    interrupted: list[str]  # sessions marked now
    start_locked: bool
    why: str  # the session that makes this start locked, or ""


def recover(db_path: Path, *, port: str | None, by_session: str, now_ts: str) -> Recovery:
    """Mark dead unfinished sessions `interrupted`; say whether this start must be locked.

    A dead session's record gets one more record, `session_finished` with outcome
    `interrupted`, chained to its last committed one, so its chain stays whole.
    Locked start (SR-22), for a session on `port`: one just marked whose supply had
    opened, or, if none, the last finished session there ended with the probe
    locked (exit 5).
    """
    db = connect(db_path)
    marked: list[str] = []
    why = ""
    try:
        rows = db.execute(
            "SELECT session_id, port, supply_opened FROM sessions "
            "WHERE finished_ts IS NULL AND session_id != ? ORDER BY rowid",
            (by_session,),
        ).fetchall()
        for sid, session_port, supply_opened in rows:
            lock = SessionLock(db_path, sid)
            if not lock.try_acquire():
                continue  # alive: its own process will finish it
            try:
                if _mark_interrupted(db, sid, by_session, now_ts):
                    marked.append(sid)
                    if port is not None and session_port == port and supply_opened and not why:
                        why = f"session {sid} was interrupted after its supply opened"
            finally:
                lock.release(remove=True)
        if port is not None and not why:
            last = db.execute(
                "SELECT session_id, exit_code, locked FROM sessions WHERE port = ? "
                "AND session_id != ? AND finished_ts IS NOT NULL ORDER BY rowid DESC LIMIT 1",
                (port, by_session),
            ).fetchone()
            # Exit 5, or locked at its end whatever its exit (an error path, a start that
            # inherited the lock and ended before the device answered).
            if last is not None and (last[1] == 5 or last[2]):
                why = f"session {last[0]} ended with the probe still locked"
    except sqlite3.Error as exc:
        raise StoreError(f"cannot recover unfinished sessions in {db_path}: {exc}") from exc
    finally:
        db.close()
    return Recovery(marked, bool(why), why)


def recover_for(recorder: Recorder, port: str | None, now_ts: str) -> Recovery:
    """`recover` on behalf of the session `recorder` starts: a locked start is inherited by
    its record (`Recorder.inherit_lock`), so that however early it ends, the next is locked."""
    recovery = recover(recorder.path, port=port, by_session=recorder.session_id, now_ts=now_ts)
    if recovery.start_locked:
        recorder.inherit_lock()
    return recovery


def _mark_interrupted(db: sqlite3.Connection, sid: str, by: str, now_ts: str) -> bool:
    with _Tx(db):
        row = db.execute(
            "SELECT finished_ts, record_count, head_hash FROM sessions WHERE session_id = ?",
            (sid,),
        ).fetchone()
        if row is None or row[0] is not None:
            return False  # finished meanwhile
        count, head = int(row[1]), bytes(row[2])
        last = db.execute(
            "SELECT t_s FROM records WHERE session_id = ? ORDER BY seq DESC LIMIT 1", (sid,)
        ).fetchone()
        event = {
            "event": "session_finished",
            "t_s": float(last[0]) if last else 0.0,
            "ts": now_ts,
            "seq": count + 1,
            "outcome": "interrupted",
            "reason": f"the process ended without closing its record; marked by session {by}",
        }
        body = canonical(event)
        h = chain(head, body)
        db.execute(
            _INSERT_RECORD,
            (sid, event["seq"], "session_finished", event["t_s"], body, h),
        )
        db.execute(
            "UPDATE sessions SET finished_ts = ?, outcome = 'interrupted', reason = ?, "
            "record_count = ?, head_hash = ? WHERE session_id = ?",
            (now_ts, event["reason"], count + 1, h, sid),
        )
    return True


# --- reading --------------------------------------------------------------------------------


@dataclass(frozen=True)
class SessionRow:
    session_id: str
    command: str
    port: str | None
    simulated: bool
    started_ts: str
    finished_ts: str | None
    outcome: str | None
    reason: str | None
    exit_code: int | None
    record_count: int
    heartbeats: int
    supply_opened: bool
    locked: bool


_SESSION_COLUMNS = (
    "session_id, command, port, simulated, started_ts, finished_ts, outcome, reason, "
    "exit_code, record_count, heartbeats, supply_opened, locked"
)


def _session(row: tuple[Any, ...]) -> SessionRow:
    (sid, command, port, simulated, started, finished, outcome, reason, code, count, hb, so, lk) = (
        row
    )
    return SessionRow(
        sid,
        command,
        port,
        bool(simulated),
        started,
        finished,
        outcome,
        reason,
        code,
        int(count),
        int(hb),
        bool(so),
        bool(lk),
    )


def list_sessions(db: sqlite3.Connection) -> list[SessionRow]:
    rows = db.execute(f"SELECT {_SESSION_COLUMNS} FROM sessions ORDER BY rowid").fetchall()
    return [_session(r) for r in rows]


def find_session(db: sqlite3.Connection, prefix: str) -> SessionRow:
    """A session by its id or a unique prefix of it (at least 4 characters)."""
    if len(prefix) < 4 or not all(c in "0123456789abcdef" for c in prefix.lower()):
        raise LookupError(f"session id {prefix!r}: give at least 4 hex digits of a session id")
    rows = db.execute(
        f"SELECT {_SESSION_COLUMNS} FROM sessions WHERE session_id LIKE ? ORDER BY rowid",
        (prefix.lower() + "%",),
    ).fetchall()
    if not rows:
        raise LookupError(f"no session {prefix!r} in this database")
    if len(rows) > 1:
        ids = ", ".join(r[0] for r in rows[:5])
        raise LookupError(f"session id {prefix!r} is ambiguous: {ids}")
    return _session(rows[0])


def records(db: sqlite3.Connection, session_id: str) -> Iterator[tuple[int, str, bytes, bytes]]:
    """(seq, event, body, hash) in order."""
    cursor = db.execute(
        "SELECT seq, event, body, hash FROM records WHERE session_id = ? ORDER BY seq",
        (session_id,),
    )
    for seq, event, body, h in cursor:
        yield int(seq), str(event), bytes(body), bytes(h)


def events(db: sqlite3.Connection, session_id: str) -> Iterator[dict[str, Any]]:
    for _, _, body, _ in records(db, session_id):
        yield json.loads(body)


class Verdict(NamedTuple):
    ok: bool
    checked: int
    problem: str  # names the first bad record; "" when ok


def verify(db: sqlite3.Connection, session: SessionRow) -> Verdict:
    """Recompute the chain; name the first record that breaks it."""
    head = GENESIS
    expected = 1
    for seq, event, body, h in records(db, session.session_id):
        where = f"record {seq} ({event})"
        if seq != expected:
            return Verdict(False, expected - 1, f"record {expected} is missing (next is {seq})")
        try:
            parsed = json.loads(body)
        except ValueError:
            return Verdict(False, expected - 1, f"{where}: not JSON")
        if canonical(parsed) != body:
            return Verdict(False, expected - 1, f"{where}: not in canonical form")
        if parsed.get("seq") != seq or parsed.get("event") != event:
            return Verdict(False, expected - 1, f"{where}: its seq or event differs from its row")
        head = chain(head, body)
        if head != h:
            return Verdict(False, expected - 1, f"{where}: hash does not match its content")
        expected += 1
    count = expected - 1
    if count != session.record_count:
        return Verdict(
            False,
            count,
            f"the session row counts {session.record_count} records, the chain has {count}"
            + (f": record {count + 1} onwards is missing" if count < session.record_count else ""),
        )
    row = db.execute(
        "SELECT head_hash FROM sessions WHERE session_id = ?", (session.session_id,)
    ).fetchone()
    if row is None or bytes(row[0]) != head:
        last = f"record {count}" if count else "the empty chain"
        return Verdict(
            False,
            count,
            f"the session row's head hash does not match {last}: records after it are missing "
            "or the row was altered",
        )
    return Verdict(True, count, "")

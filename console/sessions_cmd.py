"""``probe-console sessions``: the session records in the store: list, show, export, verify.

- ``sessions list [--json]``: one line per session record.
- ``sessions show ID [--json]``: one session: its row, the device, the
  parameters, each procedure, every alarm, the counts and the chain's verdict.
- ``sessions export ID --format jsonl|csv [--out PATH]``: the records; the
  JSON lines equal the run's ``--events`` file when both are parsed line by line.
- ``sessions verify ID``: recompute the hash chain (SR-22); exit 1 naming the
  first bad record.

``ID`` is a session id or a unique prefix of it (at least 4 hex digits). Every
action only reads: the database is opened read-only and never created or
migrated, so that looking at a record cannot change it. A missing file, an
unknown or ambiguous id, a file that is not a probe-console database or a
corrupt one: a message on stderr, exit 2 (interfaces.md, "Exit codes").

All the knowledge of the records is in `console.records`; this module reads
arguments and the database and writes text.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sqlite3
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from console.records import (
    SessionRow,
    Verdict,
    find_session,
    list_sessions,
    records,
    verify,
)
from console.store import SCHEMA_VERSION, default_db_path

if TYPE_CHECKING:
    from console.cli import Subparsers

COMMAND = "sessions"
EXIT_OK, EXIT_BROKEN, EXIT_USAGE = 0, 1, 2
ENVELOPE = ("seq", "t_s", "ts", "event")
"""The first CSV columns: the envelope every event has (interfaces.md, "Events")."""


UNCHECKED = Verdict(False, 0, "not checked")


class SessionsError(Exception):
    """A user error: the message says what was wrong and what to do; exit 2."""


# --- arguments ------------------------------------------------------------------------------


def _db_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--db",
        type=Path,
        metavar="PATH",
        help="the store (default: $PROBE_CONSOLE_DB, else $STATE_DIRECTORY/sessions.sqlite3, "
        "else $XDG_DATA_HOME/probe-console/sessions.sqlite3)",
    )


def _id_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "session", metavar="ID", help="a session id or a unique prefix of it (4+ hex digits)"
    )


def register(subparsers: Subparsers) -> None:
    """Add ``sessions`` and its actions to the top-level parser."""
    parser = subparsers.add_parser(
        COMMAND,
        help="list, show, export or verify the session records in the store",
        description="The session records in the store (SR-22): list them, summarise one, "
        "export its records as JSON lines or CSV, or verify its hash chain. Read-only.",
    )
    actions = parser.add_subparsers(
        title="actions", dest="sessions_action", metavar="ACTION", required=True
    )

    p = actions.add_parser(
        "list",
        help="one line per session record",
        description="One line per session record, oldest first: id, start, command, "
        "simulated or port, outcome, reason, exit code, number of records.",
    )
    _db_option(p)
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.set_defaults(handler=run_list)

    p = actions.add_parser(
        "show",
        help="a summary of one session record",
        description="A summary of one session record: its row, the device, the parameters, "
        "each procedure, every alarm with its times, the counts and the chain's verdict.",
    )
    _id_argument(p)
    _db_option(p)
    p.add_argument("--json", action="store_true", help="the summary as one JSON object")
    p.set_defaults(handler=run_show)

    p = actions.add_parser(
        "export",
        help="the records of one session as JSON lines or CSV",
        description="The records of one session in order. jsonl: each record as stored, one "
        "per line (equal to the run's --events file, line by line as parsed JSON). csv: the "
        "columns seq,t_s,ts,event, then every other key in first-seen order; lists and "
        "objects as JSON text, booleans true/false, null and missing values empty.",
    )
    _id_argument(p)
    p.add_argument("--format", required=True, choices=("jsonl", "csv"), help="output format")
    p.add_argument("--out", type=Path, metavar="PATH", help="write here (default: stdout)")
    _db_option(p)
    p.set_defaults(handler=run_export)

    p = actions.add_parser(
        "verify",
        help="verify one session's hash chain: exit 0 if intact, 1 naming the first bad record",
        description="Recompute the session's hash chain (SR-22) from the genesis of 32 zero "
        "bytes: exit 0 when every record and the session row's head agree, exit 1 naming "
        "the first bad record.",
    )
    _id_argument(p)
    _db_option(p)
    p.set_defaults(handler=run_verify)


# --- the database, read-only ----------------------------------------------------------------


@dataclass
class Store:
    path: Path
    db: sqlite3.Connection
    has_sessions: bool  # False for a probe-console database from before session records

    def find(self, prefix: str) -> SessionRow:
        try:
            if not self.has_sessions:
                raise LookupError(f"no session {prefix!r} in this database")
            return find_session(self.db, prefix)
        except LookupError as exc:
            raise SessionsError(str(exc.args[0]).replace("this database", str(self.path))) from None


def _tables(db: sqlite3.Connection) -> set[str]:
    return {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


@contextmanager
def open_store(path: Path) -> Iterator[Store]:
    """The database at `path`, read-only and as one snapshot; never created, never migrated."""
    if not path.exists():
        raise SessionsError(
            f"no database at {path}: give --db PATH, or set PROBE_CONSOLE_DB "
            "(a session record is written by simulate, run and serve)"
        )
    if not path.is_file():
        raise SessionsError(f"{path} is not a file: give --db the database file")
    db = sqlite3.connect(
        f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=5.0, isolation_level=None
    )
    try:
        # One read transaction: every query sees the same snapshot, so a session that is
        # being written meanwhile (`run`, `serve`) is read whole, its row and chain agreeing.
        db.execute("BEGIN")
        tables = _tables(db)
        if "schema_version" not in tables:
            raise SessionsError(f"{path} is not a probe-console database (no schema_version)")
        row = db.execute("SELECT MAX(version) FROM schema_version").fetchone()
        version = int(row[0] or 0)
        if version > SCHEMA_VERSION:
            raise SessionsError(
                f"the database {path} is at schema version {version}, newer than this "
                f"probe-console ({SCHEMA_VERSION}); use a newer probe-console"
            )
        has_sessions = {"sessions", "records"} <= tables
        if version >= 2 and not has_sessions:
            raise SessionsError(f"{path} is damaged: schema version {version} without records")
        yield Store(path, db, has_sessions)
    finally:
        db.close()


def _run(args: argparse.Namespace, body: Callable[[argparse.Namespace, Store], int]) -> int:
    """Map errors to exit 2 with one line on stderr; no traceback."""
    prefix = f"probe-console {COMMAND} {args.sessions_action}"
    path: Path = args.db or default_db_path()
    try:
        with open_store(path) as store:
            return body(args, store)
    except SessionsError as exc:
        print(f"{prefix}: {exc}", file=sys.stderr)
    except sqlite3.Error as exc:
        print(
            f"{prefix}: cannot read the database {path}: {exc} "
            "(not a probe-console database, or corrupt)",
            file=sys.stderr,
        )
    except BrokenPipeError:
        # The reader went away (`sessions export ... | head`): nothing more to say.
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - silence the interpreter's flush
        return EXIT_OK
    return EXIT_USAGE


def run_list(args: argparse.Namespace) -> int:
    return _run(args, _list)


def run_show(args: argparse.Namespace) -> int:
    return _run(args, _show)


def run_export(args: argparse.Namespace) -> int:
    return _run(args, _export)


def run_verify(args: argparse.Namespace) -> int:
    return _run(args, _verify)


# --- list -----------------------------------------------------------------------------------


def _where(row: SessionRow) -> str:
    if row.simulated:
        return "simulated" if row.port is None else f"simulated {row.port}"
    return row.port or "-"


def list_line_fields(row: SessionRow) -> list[str]:
    return [
        row.session_id,
        row.started_ts,
        row.command,
        _where(row),
        row.outcome or "unfinished",
        row.reason or "-",
        "exit -" if row.exit_code is None else f"exit {row.exit_code}",
        f"{row.record_count} records",
    ]


def _list(args: argparse.Namespace, store: Store) -> int:
    rows = list_sessions(store.db) if store.has_sessions else []
    if args.json:
        for row in rows:
            print(json.dumps(asdict(row)))
        return EXIT_OK
    table = [list_line_fields(row) for row in rows]
    widths = [max(len(cell) for cell in column) for column in zip(*table, strict=True)]
    for line in table:
        print(
            "  ".join(text.ljust(width) for text, width in zip(line, widths, strict=True)).rstrip()
        )
    return EXIT_OK


# --- show -----------------------------------------------------------------------------------


@dataclass
class Summary:
    """What `show` says about one session, collected in one pass over its records."""

    session: SessionRow
    session_started: dict[str, Any] | None = None
    devices: list[dict[str, Any]] = field(default_factory=list)
    procedures: list[dict[str, Any]] = field(default_factory=list)
    alarms: list[dict[str, Any]] = field(default_factory=list)
    session_finished: dict[str, Any] | None = None
    records: int = 0
    telemetry: int = 0
    unreadable: list[int] = field(default_factory=list)  # seqs whose body is not JSON
    chain: Verdict = UNCHECKED

    def as_json(self) -> dict[str, Any]:
        return {
            "session": asdict(self.session),
            "session_started": self.session_started,
            "devices": self.devices,
            "procedures": self.procedures,
            "alarms": self.alarms,
            "session_finished": self.session_finished,
            "counts": {
                "records": self.records,
                "telemetry": self.telemetry,
                "heartbeats": self.session.heartbeats,
            },
            "unreadable_records": self.unreadable,
            "chain": self.chain._asdict(),
        }


_DEVICE_KEYS = (
    "device_kind",
    "firmware",
    "protocol",
    "device_serial",
    "probe_model",
    "probe_serial",
    "probe_uses",
    "gas",
    "accepted",
    "refusals",
)


def summarise(db: sqlite3.Connection, session: SessionRow) -> Summary:
    summary = Summary(session)
    latest: dict[str, dict[str, Any]] = {}  # alarm name -> its latest raise
    for seq, name, body, _ in records(db, session.session_id):
        summary.records += 1
        if name == "telemetry":
            summary.telemetry += 1
            continue  # the bulk of a record; nothing in it for the summary
        try:
            e = json.loads(body)
        except ValueError:
            summary.unreadable.append(seq)
            continue
        if not isinstance(e, dict):
            summary.unreadable.append(seq)
            continue
        t_s = e.get("t_s")
        if name == "session_started":
            summary.session_started = {k: v for k, v in e.items() if k not in ENVELOPE}
        elif name == "session_finished":
            summary.session_finished = {k: e.get(k) for k in ("t_s", "outcome", "reason")}
        elif name == "device_identified":
            device = {"t_s": t_s, **{k: e[k] for k in _DEVICE_KEYS if k in e}}
            summary.devices.append(device)
        elif name == "procedure_started":
            procedure = {k: v for k, v in e.items() if k not in ("event", "ts", "seq", "t_s")}
            summary.procedures.append(
                {"started_t_s": t_s, **procedure, "finished_t_s": None, "outcome": None}
            )
        elif name == "procedure_finished" and summary.procedures:
            summary.procedures[-1].update(
                finished_t_s=t_s, outcome=e.get("outcome"), reason=e.get("reason")
            )
        elif name == "alarm_raised":
            alarm = {
                "alarm": e.get("alarm"),
                "priority": e.get("priority"),
                "sr": e.get("sr"),
                "value": e.get("value"),
                "limit": e.get("limit"),
                "raised_t_s": t_s,
                "acknowledged_t_s": None,
                "cleared_t_s": None,
            }
            summary.alarms.append(alarm)
            latest[str(e.get("alarm"))] = alarm
        elif name in ("alarm_acknowledged", "alarm_cleared"):
            raised = latest.get(str(e.get("alarm")))
            if raised is not None:
                key = "acknowledged_t_s" if name == "alarm_acknowledged" else "cleared_t_s"
                raised[key] = t_s
    summary.chain = verify(db, session)
    return summary


def _t(value: object) -> str:
    return "-" if value is None else f"t={value} s"


def _outcome(outcome: object, reason: object) -> str:
    return f"{outcome} ({reason})" if reason else str(outcome)


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


def show_lines(s: Summary) -> list[str]:
    row = s.session
    lines = [
        ("session", row.session_id),
        ("command", f"{row.command}, {_where(row)}"),
        ("started", row.started_ts),
        ("finished", row.finished_ts or "not finished (running, or its process ended early)"),
    ]
    if row.outcome is not None:
        code = "-" if row.exit_code is None else str(row.exit_code)
        lines.append(("outcome", f"{_outcome(row.outcome, row.reason)}, exit {code}"))
    lines.append(
        (
            "probe lock",
            f"supply opened {_yes(row.supply_opened)}, locked at the end {_yes(row.locked)}",
        )
    )
    started = s.session_started
    if started is not None:
        faults = ", ".join(started.get("faults") or []) or "none"
        lines.append(
            (
                "parameters",
                f"version {started.get('version')}, profile {started.get('profile')}, "
                f"gas {started.get('gas')}, seed {started.get('seed')}, faults {faults}",
            )
        )
        lines.append(("config", f"sha256 {started.get('config_sha256')}"))
    else:
        lines.append(("parameters", "no session_started record"))
    if not s.devices:
        lines.append(("device", "never identified"))
    for d in s.devices:
        device = (
            f"{d.get('device_kind')} {d.get('device_serial')}, firmware {d.get('firmware')}, "
            f"protocol {d.get('protocol')}, {_t(d.get('t_s'))}"
        )
        probe = (
            f"{d.get('probe_model')} {d.get('probe_serial')}, {d.get('probe_uses')} uses, "
            f"gas {d.get('gas')}"
        )
        if d.get("accepted") is False:
            refusals = "; ".join(str(r.get("message", r)) for r in d.get("refusals") or [])
            probe += f"; REFUSED: {refusals}"
        lines += [("device", device), ("probe", probe)]
    if not s.procedures:
        lines.append(("procedure", "none started"))
    for n, p in enumerate(s.procedures, 1):
        ended = (
            f"{_outcome(p['outcome'], p.get('reason'))} at {_t(p['finished_t_s'])}"
            if p["outcome"] is not None
            else "not finished"
        )
        lines.append(
            (
                f"procedure {n}",
                f"{p.get('profile')}, {p.get('cycles')} x {p.get('freeze_s')} s freeze, "
                f"{p.get('thaw_s')} s thaw; started {_t(p['started_t_s'])}; {ended}",
            )
        )
    lines.append(("alarms", str(len(s.alarms)) if s.alarms else "none"))
    width = max(len(label) for label, _ in lines)
    text = [f"{label.ljust(width)}  {value}" for label, value in lines]
    for a in s.alarms:
        sr = ",".join(a.get("sr") or [])
        text.append(
            f"  {a['alarm']} ({a['priority']}, {sr}): raised {_t(a['raised_t_s'])} "
            f"(value {a['value']}, limit {a['limit']}), acknowledged {_t(a['acknowledged_t_s'])}, "
            f"cleared {_t(a['cleared_t_s'])}"
        )
    tail = [
        (
            "counts",
            f"{s.records} records, {s.telemetry} telemetry, {row.heartbeats} heartbeats",
        ),
        (
            "chain",
            f"verified ({s.chain.checked} records)"
            if s.chain.ok
            else f"NOT verified: {s.chain.problem}",
        ),
    ]
    if s.unreadable:
        tail.insert(1, ("unreadable", ", ".join(f"record {seq}" for seq in s.unreadable)))
    text += [f"{label.ljust(width)}  {value}" for label, value in tail]
    return text


def _show(args: argparse.Namespace, store: Store) -> int:
    summary = summarise(store.db, store.find(args.session))
    if args.json:
        print(json.dumps(summary.as_json()))
    else:
        print("\n".join(show_lines(summary)))
    return EXIT_OK


# --- export ---------------------------------------------------------------------------------


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    return str(value)


def _bodies(db: sqlite3.Connection, session_id: str) -> Iterator[tuple[int, dict[str, Any]]]:
    for seq, _, body, _ in records(db, session_id):
        try:
            e = json.loads(body)
        except ValueError:
            raise SessionsError(
                f"record {seq} is not JSON: the record is damaged (sessions verify names "
                "the first bad record)"
            ) from None
        if not isinstance(e, dict):
            raise SessionsError(f"record {seq} is not a JSON object: the record is damaged")
        yield seq, e


def write_jsonl(db: sqlite3.Connection, session_id: str, out: TextIO) -> int:
    n = 0
    for _, _, body, _ in records(db, session_id):
        out.write(body.decode("utf-8", errors="replace"))
        out.write("\n")
        n += 1
    return n


def write_csv(db: sqlite3.Connection, session_id: str, out: TextIO) -> int:
    columns = {key: None for key in ENVELOPE}
    for _, e in _bodies(db, session_id):  # first pass: the columns, in first-seen order
        columns.update((key, None) for key in e if key not in columns)
    writer = csv.writer(out)
    writer.writerow(columns)
    n = 0
    for _, e in _bodies(db, session_id):
        writer.writerow([_cell(e.get(key)) for key in columns])
        n += 1
    return n


def _export(args: argparse.Namespace, store: Store) -> int:
    session = store.find(args.session)
    write = write_jsonl if args.format == "jsonl" else write_csv
    if args.out is None:
        write(store.db, session.session_id, sys.stdout)
        return EXIT_OK
    out: Path = args.out
    part = out.with_name(out.name + ".part")
    try:
        with part.open("w", encoding="utf-8", newline="") as f:
            write(store.db, session.session_id, f)
        part.replace(out)
    except OSError as exc:
        part.unlink(missing_ok=True)
        raise SessionsError(f"--out {out}: {exc.strerror or exc}") from None
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    return EXIT_OK


# --- verify ---------------------------------------------------------------------------------


def _verify(args: argparse.Namespace, store: Store) -> int:
    session = store.find(args.session)
    verdict = verify(store.db, session)
    sid = session.session_id
    if verdict.ok:
        print(f"session {sid}: {verdict.checked} records, chain verified")
        return EXIT_OK
    print(f"session {sid}: chain NOT verified: {verdict.problem}")
    return EXIT_BROKEN

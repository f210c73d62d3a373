"""``probe-console report ID [--out DIR] [--db PATH] [--config PATH]``: one session, on a page.

The plots of a recorded session (tip temperature, supply and exhaust pressure,
the states, the valves and stimulation, every alarm and injected fault, the
limits) and its summary (identity, profile, parameters, per-cycle minimum tip
temperature and time below target, the estimates, alarms, outcome and the hash
chain's verdict), written as ``DIR/index.html`` with the plot beside it
(``DIR/session-<id>.png``), so that a bench run can be reviewed and filed.

The store is read as ``sessions`` reads it: read-only, the id or a unique
prefix of 4+ hex digits. Exit codes: 0 the report is written; 1 it is written
but the session's hash chain is NOT verified (as ``sessions verify``); 2 a user
error (no such database or session, an ambiguous id, a folder that cannot be
written, matplotlib missing: ``pip install 'probe-console[report]'``).
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from console.config import ConfigError, ConsoleConfig, load_config
from console.sessions_cmd import SessionsError, open_store
from console.store import default_db_path

if TYPE_CHECKING:
    from console.cli import Subparsers

COMMAND = "report"
EXIT_OK, EXIT_BROKEN, EXIT_USAGE = 0, 1, 2
PAGE = "index.html"


class ReportError(Exception):
    """A user error: the message says what was wrong; exit 2."""


def register(subparsers: Subparsers) -> None:
    p = subparsers.add_parser(
        COMMAND,
        help="plots and a summary of one recorded session, as an HTML page",
        description="Plots (tip temperature, supply and exhaust pressure, states, valves and "
        "stimulation, alarms and faults, with the limits) and a summary (identity, "
        "parameters, per-cycle minimum temperature and time below target, estimated ice "
        "ball and gas used, alarms, outcome, hash chain) of one session record, written as "
        "DIR/index.html with the PNG beside it. Needs matplotlib: "
        "pip install 'probe-console[report]'. Exit 0: written; 1: written, but the hash "
        "chain is not verified; 2: usage error.",
    )
    p.add_argument(
        "session", metavar="ID", help="a session id or a unique prefix of it (4+ hex digits)"
    )
    p.add_argument(
        "--out",
        type=Path,
        metavar="DIR",
        help="write the page and its plot here (default: ./report-<first 12 digits of the id>)",
    )
    p.add_argument(
        "--db",
        type=Path,
        metavar="PATH",
        help="the store (default: $PROBE_CONSOLE_DB, else $STATE_DIRECTORY/sessions.sqlite3, "
        "else $XDG_DATA_HOME/probe-console/sessions.sqlite3)",
    )
    p.add_argument(
        "--config",
        type=Path,
        metavar="PATH",
        help="the console.toml the session ran with, for the limits drawn (default: the "
        "built-in defaults; the record keeps only the configuration's hash)",
    )
    p.set_defaults(handler=run_report)


def out_dir(path: Path) -> Path:
    """`path` as a folder to write into, created if needed."""
    if path.exists() and not path.is_dir():
        raise ReportError(f"--out {path} is a file: give a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ReportError(
            f"--out {path}: cannot create the folder: {exc.strerror or exc}"
        ) from None
    return path


def _config(path: Path | None) -> tuple[ConsoleConfig, str]:
    if path is None:
        return (
            load_config(),
            "the built-in defaults (the record keeps only the configuration's hash)",
        )
    try:
        return load_config(path), f"--config {path}"
    except ConfigError as exc:
        raise ReportError("\n".join(f"--config {path}: {m}" for m in exc.messages)) from None


def run_report(args: argparse.Namespace) -> int:
    prefix = f"probe-console {COMMAND}"
    path: Path = args.db or default_db_path()
    try:
        from console.report.plot import ReportUnavailable, require_matplotlib

        try:
            require_matplotlib()
        except ReportUnavailable as exc:
            raise ReportError(str(exc)) from None
        config, source = _config(args.config)
        with open_store(path) as store:
            session = store.find(args.session)
            folder = out_dir(args.out or Path(f"report-{session.session_id[:12]}"))
            ok = write_session_report(store.db, session.session_id, config, source, folder)
    except (SessionsError, ReportError) as exc:
        print(f"{prefix}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except sqlite3.Error as exc:
        print(
            f"{prefix}: cannot read the database {path}: {exc} "
            "(not a probe-console database, or corrupt)",
            file=sys.stderr,
        )
        return EXIT_USAGE
    print(f"{folder / PAGE}")
    if not ok:
        print(f"{prefix}: session {session.session_id}: hash chain NOT verified", file=sys.stderr)
        return EXIT_BROKEN
    return EXIT_OK


def write_session_report(
    db: sqlite3.Connection, session_id: str, config: ConsoleConfig, source: str, folder: Path
) -> bool:
    """Write `folder/index.html` and its PNG; True when the session's chain verified."""
    from console.records import find_session, utc_now
    from console.report.data import load
    from console.report.page import session_page
    from console.report.plot import figure, write_png

    session = find_session(db, session_id)
    report = load(db, session, config, source)
    png = f"session-{session_id}.png"
    title = (
        f"session {session_id}: {session.command}, "
        f"{session.outcome or 'not finished'} ({session.reason or '-'})"
    )
    try:
        write_png(figure(report, title), folder / png)
        page = session_page(report, png, utc_now()[:19])
        (folder / PAGE).write_text(page, encoding="utf-8")
    except OSError as exc:
        raise ReportError(f"cannot write the report in {folder}: {exc.strerror or exc}") from None
    return report.summary.chain.ok


__all__ = ["register", "run_report", "write_session_report"]

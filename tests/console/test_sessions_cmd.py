"""`probe-console sessions list|show|export|verify` on records written by a `Recorder`.

The sessions are built by feeding a `Recorder` event dicts as the event stream
would; the commands run through `console.cli.main`. Tampering is done for real,
with sqlite3 on the file (SR-22: `sessions verify` names the first bad record).
"""

from __future__ import annotations

import csv
import io
import json
import math
import sqlite3
import uuid
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

import pytest

from console import cli
from console.records import Recorder, verify
from console.sessions_cmd import open_store
from tests.console.procs import run

TS = "2026-11-28T06:30:58.797Z"
TELEMETRY = 30
NAN_AT = 10  # the telemetry sample whose tip_c is NaN (a thermistor at a rail)


def _events(session_id: str) -> list[dict[str, Any]]:
    """A short procedure with one alarm raised, acknowledged and cleared."""
    plan: list[tuple[str, float, dict[str, Any]]] = [
        (
            "session_started",
            0.0,
            {
                "session_id": session_id,
                "version": "0.1.0",
                "profile": "bench",
                "gas": "N2O",
                "seed": 7,
                "faults": ["exhaust_blocked:psi_per_s=250@freeze1+5"],
                "config_sha256": "ab" * 32,
                "simulated": True,
            },
        ),
        (
            "device_identified",
            0.01,
            {
                "device_kind": "simulator",
                "firmware": "0.1.0",
                "protocol": 1,
                "device_serial": "SIM-0001",
                "probe_model": "CRYO-20G-90",
                "probe_serial": "PRB-TEST-0001",
                "probe_uses": 0,
                "gas": "N2O",
                "accepted": True,
                "refusals": [],
                "continuing": False,
            },
        ),
        ("state_changed", 0.01, {"from": "connecting", "to": "self_test"}),
        (
            "procedure_started",
            0.02,
            {"profile": "bench", "cycles": 1, "freeze_s": 20.0, "thaw_s": 10.0},
        ),
    ]
    for i in range(TELEMETRY):
        plan.append(
            (
                "telemetry",
                round(0.1 + 0.1 * i, 6),
                {
                    "device_ms": 100 + 100 * i,
                    "tip_c": math.nan if i == NAN_AT else round(36.95 - 0.5 * i, 2),
                    "supply_psi": 750.25,
                    "exhaust_psi": 3.5,
                    "supply_open": i > 5,
                    "inlet_open": True,
                    "vent_open": False,
                    "stim_on": False,
                },
            )
        )
        if i == 20:
            plan.append(
                (
                    "alarm_raised",
                    2.15,
                    {
                        "alarm": "ALM_EXHAUST_OVERPRESSURE",
                        "priority": "high",
                        "sr": ["SR-07"],
                        "value": 26.64,
                        "limit": 20.0,
                        "device_ms": 2150,
                        "first_over_device_ms": 2130,
                    },
                )
            )
    plan += [
        ("alarm_acknowledged", 3.5, {"alarm": "ALM_EXHAUST_OVERPRESSURE"}),
        ("alarm_cleared", 3.6, {"alarm": "ALM_EXHAUST_OVERPRESSURE"}),
        ("procedure_finished", 3.7, {"outcome": "faulted", "reason": "ALM_EXHAUST_OVERPRESSURE"}),
        ("session_finished", 3.8, {"outcome": "faulted", "reason": "ALM_EXHAUST_OVERPRESSURE"}),
    ]
    return [
        {"event": name, "t_s": t_s, "ts": TS, "seq": seq, **fields}
        for seq, (name, t_s, fields) in enumerate(plan, 1)
    ]


def record_session(db: Path, *, exit_code: int = 1) -> tuple[str, list[dict[str, Any]]]:
    """Feed a Recorder as a run would: events, a commit after each input, then close."""
    session_id = uuid.uuid4().hex
    events = _events(session_id)
    recorder = Recorder(db, session_id, command="simulate", port=None, simulated=True)
    recorder.heartbeats = lambda: 42
    for event in events:
        recorder(event)
        recorder.commit_due(event["t_s"])
    assert recorder.close(exit_code)
    return session_id, events


def as_parsed(event: dict[str, Any]) -> dict[str, Any]:
    """The event as its JSON line parses back: NaN is written as null."""
    return {
        k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in event.items()
    }


def seq_of(events: list[dict[str, Any]], name: str, nth: int = 0) -> int:
    return int([e for e in events if e["event"] == name][nth]["seq"])


@contextmanager
def raw_sqlite(path: Path) -> Iterator[sqlite3.Connection]:
    """A plain sqlite3 connection to the file, committed and closed on the way out."""
    with closing(sqlite3.connect(path)) as con, con:
        yield con


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "store" / "sessions.sqlite3"


@pytest.fixture
def recorded(db: Path) -> tuple[str, list[dict[str, Any]]]:
    return record_session(db)


def labelled(out: str, label: str) -> str:
    """The value of `show`'s line `label  value` (labels are padded to one width)."""
    values = [line[len(label) :].strip() for line in out.splitlines() if line.startswith(label)]
    assert values, f"no line {label!r} in:\n{out}"
    return values[0]


def sessions(capsys: pytest.CaptureFixture[str], db: Path, *args: str) -> tuple[int, str, str]:
    code = cli.main(["sessions", *args, "--db", str(db)])
    out, err = capsys.readouterr()
    return code, out, err


# --- list and show --------------------------------------------------------------------------


def test_list_shows_one_line_per_session(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    first, events = record_session(db, exit_code=1)
    second, _ = record_session(db, exit_code=0)
    code, out, err = sessions(capsys, db, "list")
    assert code == 0 and err == ""
    lines = out.splitlines()
    assert [line.split()[0] for line in lines] == [first, second]
    words = lines[0].split()
    assert words[2:5] == ["simulate", "simulated", "faulted"]
    assert "ALM_EXHAUST_OVERPRESSURE" in lines[0]
    assert lines[0].endswith(f"exit 1  {len(events)} records")
    assert "exit 0" in lines[1]


def test_list_json_is_one_object_per_session(
    db: Path, recorded: tuple[str, list[dict[str, Any]]], capsys: pytest.CaptureFixture[str]
) -> None:
    session_id, events = recorded
    code, out, _ = sessions(capsys, db, "list", "--json")
    assert code == 0
    (row,) = [json.loads(line) for line in out.splitlines()]
    assert row["session_id"] == session_id and row["command"] == "simulate"
    assert row["simulated"] is True and row["port"] is None
    assert (row["outcome"], row["reason"], row["exit_code"]) == (
        "faulted",
        "ALM_EXHAUST_OVERPRESSURE",
        1,
    )
    assert row["record_count"] == len(events) and row["heartbeats"] == 42


def test_list_of_a_store_without_sessions_is_empty(
    db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    record_session(db)
    with raw_sqlite(db) as con:
        con.execute("DELETE FROM records")
        con.execute("DELETE FROM sessions")
    assert sessions(capsys, db, "list") == (0, "", "")


def test_list_shows_unfinished_and_run_sessions(
    db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A session still being written, and one on a port: `unfinished`, `exit -`, the port."""
    session_id = uuid.uuid4().hex
    recorder = Recorder(db, session_id, command="run", port="/dev/pts/9", simulated=False)
    for event in _events(session_id)[:5]:
        recorder(event)
    assert recorder.commit()
    try:
        code, out, _ = sessions(capsys, db, "list")
        assert code == 0
        words = out.split()
        assert words[0] == session_id
        assert words[2:] == [
            "run",
            "/dev/pts/9",
            "unfinished",
            "-",
            "exit",
            "-",
            "5",
            "records",
        ]
        code, out, _ = sessions(capsys, db, "show", session_id)
        assert code == 0 and labelled(out, "finished").startswith("not finished")
        assert labelled(out, "procedure 1").endswith("not finished")
    finally:
        recorder.close(None)
    code, out, _ = sessions(capsys, db, "list")
    # Closed on an error path: a chained closing record (outcome aborted, reason error).
    assert "aborted  error  exit -  6 records" in out
    assert sessions(capsys, db, "verify", session_id)[0] == 0


def test_a_store_from_before_session_records_lists_nothing_and_stays_as_it_is(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "v1.sqlite3"
    with raw_sqlite(path) as con:
        con.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
        con.execute("INSERT INTO schema_version VALUES (1)")
        con.execute("CREATE TABLE probes (probe_serial TEXT PRIMARY KEY)")
    assert sessions(capsys, path, "list") == (0, "", "")
    code, _, err = sessions(capsys, path, "verify", "abcd")
    assert code == 2 and "no session 'abcd'" in err
    with raw_sqlite(path) as con:
        assert con.execute("SELECT MAX(version) FROM schema_version").fetchone() == (1,)


def test_show_summarises_the_session(
    db: Path, recorded: tuple[str, list[dict[str, Any]]], capsys: pytest.CaptureFixture[str]
) -> None:
    session_id, events = recorded
    code, out, err = sessions(capsys, db, "show", session_id[:8])
    assert code == 0 and err == ""
    assert labelled(out, "session") == session_id
    assert labelled(out, "outcome") == "faulted (ALM_EXHAUST_OVERPRESSURE), exit 1"
    assert "profile bench, gas N2O, seed 7, faults exhaust_blocked:psi_per_s=250@freeze1+5" in out
    assert "simulator SIM-0001, firmware 0.1.0, protocol 1" in out
    assert "CRYO-20G-90 PRB-TEST-0001, 0 uses, gas N2O" in out
    assert labelled(out, "procedure 1") == (
        "bench, 1 x 20.0 s freeze, 10.0 s thaw; started t=0.02 s; "
        "faulted (ALM_EXHAUST_OVERPRESSURE) at t=3.7 s"
    )
    assert (
        "ALM_EXHAUST_OVERPRESSURE (high, SR-07): raised t=2.15 s (value 26.64, limit 20.0), "
        "acknowledged t=3.5 s, cleared t=3.6 s" in out
    )
    assert labelled(out, "counts") == (
        f"{len(events)} records, {TELEMETRY} telemetry, 42 heartbeats"
    )
    assert labelled(out, "chain") == f"verified ({len(events)} records)"


def test_show_json(
    db: Path, recorded: tuple[str, list[dict[str, Any]]], capsys: pytest.CaptureFixture[str]
) -> None:
    session_id, events = recorded
    code, out, _ = sessions(capsys, db, "show", session_id, "--json")
    assert code == 0
    summary = json.loads(out)
    assert summary["session"]["session_id"] == session_id
    assert summary["session_started"]["seed"] == 7
    assert summary["devices"][0]["probe_serial"] == "PRB-TEST-0001"
    (procedure,) = summary["procedures"]
    assert procedure["cycles"] == 1 and procedure["outcome"] == "faulted"
    (alarm,) = summary["alarms"]
    assert (alarm["raised_t_s"], alarm["acknowledged_t_s"], alarm["cleared_t_s"]) == (
        2.15,
        3.5,
        3.6,
    )
    assert summary["counts"] == {"records": len(events), "telemetry": TELEMETRY, "heartbeats": 42}
    assert summary["chain"] == {"ok": True, "checked": len(events), "problem": ""}


# --- export ---------------------------------------------------------------------------------


def test_export_jsonl_equals_the_events_as_parsed_json(
    db: Path, recorded: tuple[str, list[dict[str, Any]]], capsys: pytest.CaptureFixture[str]
) -> None:
    session_id, events = recorded
    code, out, err = sessions(capsys, db, "export", session_id, "--format", "jsonl")
    assert code == 0 and err == ""
    exported = [json.loads(line) for line in out.splitlines()]
    assert exported == [as_parsed(e) for e in events]
    assert exported[seq_of(events, "telemetry", NAN_AT) - 1]["tip_c"] is None


def test_export_to_a_file(
    db: Path,
    recorded: tuple[str, list[dict[str, Any]]],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    session_id, events = recorded
    out_path = tmp_path / "out.jsonl"
    code, out, _ = sessions(
        capsys, db, "export", session_id, "--format", "jsonl", "--out", str(out_path)
    )
    assert code == 0 and out == ""
    lines = out_path.read_text(encoding="utf-8").splitlines()
    assert [json.loads(line) for line in lines] == [as_parsed(e) for e in events]
    assert not (tmp_path / "out.jsonl.part").exists()


def test_export_csv_parses_back_with_the_right_columns(
    db: Path, recorded: tuple[str, list[dict[str, Any]]], capsys: pytest.CaptureFixture[str]
) -> None:
    session_id, events = recorded
    code, out, _ = sessions(capsys, db, "export", session_id, "--format", "csv")
    assert code == 0
    rows = list(csv.reader(io.StringIO(out, newline="")))
    header, body = rows[0], rows[1:]
    assert header[:4] == ["seq", "t_s", "ts", "event"]
    keys = {k for e in events for k in e}
    assert sorted(header) == sorted(keys) and len(header) == len(keys)
    assert len(body) == len(events)
    table = [dict(zip(header, row, strict=True)) for row in body]
    assert [int(r["seq"]) for r in table] == [e["seq"] for e in events]
    # Other keys come in first-seen order: session_started's own, sorted as stored.
    started = sorted(k for k in events[0] if k not in ("seq", "t_s", "ts", "event"))
    assert header[4 : 4 + len(started)] == started
    alarm = table[seq_of(events, "alarm_raised") - 1]
    assert alarm["sr"] == '["SR-07"]' and alarm["value"] == "26.64" and alarm["tip_c"] == ""
    nan = table[seq_of(events, "telemetry", NAN_AT) - 1]
    assert nan["tip_c"] == "" and nan["supply_psi"] == "750.25" and nan["inlet_open"] == "true"
    assert table[0]["faults"] == '["exhaust_blocked:psi_per_s=250@freeze1+5"]'


# --- verify ---------------------------------------------------------------------------------


def test_verify_an_intact_record(
    db: Path, recorded: tuple[str, list[dict[str, Any]]], capsys: pytest.CaptureFixture[str]
) -> None:
    session_id, events = recorded
    code, out, err = sessions(capsys, db, "verify", session_id[:6])
    assert (code, err) == (0, "")
    assert out == f"session {session_id}: {len(events)} records, chain verified\n"


def test_verify_names_a_record_with_one_byte_changed(
    db: Path, recorded: tuple[str, list[dict[str, Any]]], capsys: pytest.CaptureFixture[str]
) -> None:
    """SR-22: a telemetry value changed by one byte in the middle of the record."""
    session_id, events = recorded
    seq = seq_of(events, "telemetry", 15)
    with raw_sqlite(db) as con:
        (body,) = con.execute(
            "SELECT body FROM records WHERE session_id = ? AND seq = ?", (session_id, seq)
        ).fetchone()
        old = b'"supply_psi":750.25'
        assert old in body
        tampered = body.replace(old, b'"supply_psi":750.26')
        con.execute(
            "UPDATE records SET body = ? WHERE session_id = ? AND seq = ?",
            (tampered, session_id, seq),
        )
    code, out, _ = sessions(capsys, db, "verify", session_id)
    assert code == 1
    assert f"record {seq} (telemetry): hash does not match its content" in out
    assert "chain verified" not in out
    code, out, _ = sessions(capsys, db, "show", session_id)
    assert code == 0
    assert labelled(out, "chain").startswith(f"NOT verified: record {seq} (telemetry)")


def test_verify_names_a_deleted_middle_record(
    db: Path, recorded: tuple[str, list[dict[str, Any]]], capsys: pytest.CaptureFixture[str]
) -> None:
    session_id, events = recorded
    seq = seq_of(events, "alarm_raised")
    with raw_sqlite(db) as con:
        con.execute("DELETE FROM records WHERE session_id = ? AND seq = ?", (session_id, seq))
    code, out, _ = sessions(capsys, db, "verify", session_id)
    assert code == 1
    assert f"record {seq} is missing (next is {seq + 1})" in out


def test_verify_names_the_first_of_the_deleted_last_records(
    db: Path, recorded: tuple[str, list[dict[str, Any]]], capsys: pytest.CaptureFixture[str]
) -> None:
    """Records cut from the end: the chain is whole but the session row's head is not its end."""
    session_id, events = recorded
    first_gone = len(events) - 2
    with raw_sqlite(db) as con:
        con.execute(
            "DELETE FROM records WHERE session_id = ? AND seq >= ?", (session_id, first_gone)
        )
    code, out, _ = sessions(capsys, db, "verify", session_id)
    assert code == 1
    assert f"record {first_gone} onwards is missing" in out

    # ... and with the session row's count cut to match: the head hash gives it away.
    with raw_sqlite(db) as con:
        con.execute(
            "UPDATE sessions SET record_count = ? WHERE session_id = ?",
            (first_gone - 1, session_id),
        )
    code, out, _ = sessions(capsys, db, "verify", session_id)
    assert code == 1
    assert f"head hash does not match record {first_gone - 1}: records after it" in out


def test_a_session_being_written_is_read_as_one_snapshot(db: Path) -> None:
    """A running session commits between the lookup and the check: no false alarm."""
    session_id = uuid.uuid4().hex
    events = _events(session_id)
    recorder = Recorder(db, session_id, command="run", port="/dev/pts/9", simulated=False)
    for event in events[:10]:
        recorder(event)
    recorder.commit()
    with open_store(db) as store:
        row = store.find(session_id)
        for event in events[10:20]:
            recorder(event)
        assert recorder.commit()
        assert verify(store.db, row) == (True, 10, "")
    recorder.close(None)


# --- errors ---------------------------------------------------------------------------------


@pytest.mark.parametrize("action", [["show"], ["export", "--format", "csv"], ["verify"]])
def test_an_unknown_id_is_exit_2(
    db: Path,
    recorded: tuple[str, list[dict[str, Any]]],
    capsys: pytest.CaptureFixture[str],
    action: list[str],
) -> None:
    unknown = "0000" if not recorded[0].startswith("0000") else "ffff"
    code, out, err = sessions(capsys, db, action[0], unknown, *action[1:])
    assert (code, out) == (2, "")
    assert err.startswith(f"probe-console sessions {action[0]}: no session '{unknown}'")
    assert "Traceback" not in err


def test_an_ambiguous_or_malformed_id_is_exit_2(
    db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ids = [record_session(db)[0] for _ in range(2)]
    code, _, err = sessions(capsys, db, "show", "xyz!")
    assert code == 2 and "at least 4 hex digits" in err
    with raw_sqlite(db) as con:  # make two ids share a prefix
        con.execute("UPDATE sessions SET session_id = 'abcd' || session_id WHERE 1")
    code, _, err = sessions(capsys, db, "verify", "abcd")
    assert code == 2 and "ambiguous" in err and ids[0] in err


def test_a_missing_database_is_exit_2_and_not_created(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nowhere" / "sessions.sqlite3"
    for args in (["list"], ["show", "abcd"], ["verify", "abcd"]):
        code, out, err = sessions(capsys, missing, *args)
        assert (code, out) == (2, "")
        assert f"no database at {missing}" in err
    assert not missing.parent.exists()


def test_the_default_database_comes_from_the_environment(
    db: Path,
    recorded: tuple[str, list[dict[str, Any]]],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("PROBE_CONSOLE_DB", str(db))
    assert cli.main(["sessions", "list"]) == 0
    assert capsys.readouterr().out.startswith(recorded[0])


@pytest.mark.parametrize(
    "content",
    [b"this is not a database at all" * 100, b""],
    ids=["garbage", "empty"],
)
def test_a_file_that_is_not_a_store_is_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes
) -> None:
    path = tmp_path / "other.sqlite3"
    path.write_bytes(content)
    code, out, err = sessions(capsys, path, "list")
    assert (code, out) == (2, "")
    assert "not a probe-console database" in err and "Traceback" not in err
    assert path.read_bytes() == content  # read, never migrated


def test_another_sqlite_database_is_exit_2_and_left_unchanged(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "other.sqlite3"
    with raw_sqlite(path) as con:
        con.execute("CREATE TABLE things (x)")
    code, _, err = sessions(capsys, path, "show", "abcd")
    assert code == 2 and "not a probe-console database" in err
    with raw_sqlite(path) as con:
        tables = [r[0] for r in con.execute("SELECT name FROM sqlite_master")]
    assert tables == ["things"]


def test_a_corrupt_database_is_exit_2(
    db: Path, recorded: tuple[str, list[dict[str, Any]]], capsys: pytest.CaptureFixture[str]
) -> None:
    with raw_sqlite(db) as con:
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    data = bytearray(db.read_bytes())
    data[4096:] = b"\xa5" * (len(data) - 4096)  # every page after the first overwritten
    db.write_bytes(bytes(data))
    code, out, err = sessions(capsys, db, "verify", recorded[0])
    assert code == 2 and out == ""
    assert err.startswith("probe-console sessions verify: ") and "Traceback" not in err


# --- a real run -----------------------------------------------------------------------------


def test_a_simulate_run_exports_its_events_file_and_verifies(
    env: dict[str, str], tmp_path: Path
) -> None:
    """SR-22 end to end: the store holds exactly the events file, chained."""
    db, events_path = tmp_path / "run.sqlite3", tmp_path / "events.jsonl"
    done = run(
        [
            "simulate",
            "--db",
            str(db),
            "--events",
            str(events_path),
            "--quiet",
            "--cycles",
            "2",
            "--freeze-s",
            "120",
            "--profile",
            "bench",
        ],
        env,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    lines = events_path.read_text(encoding="utf-8").splitlines()
    events = [json.loads(line) for line in lines]
    session_id = events[0]["session_id"]

    exported = run(["sessions", "export", session_id, "--format", "jsonl", "--db", str(db)], env)
    assert exported.returncode == 0, exported.stderr
    assert [json.loads(line) for line in exported.stdout.splitlines()] == events

    verified = run(["sessions", "verify", session_id[:8], "--db", str(db)], env)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert verified.stdout == f"session {session_id}: {len(events)} records, chain verified\n"

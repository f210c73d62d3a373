"""SR-22 as processes: kill -9 of `run` mid-freeze and the restart; parallel `simulate` runs."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from console.records import find_session, verify
from console.store import connect
from tests.console.procs import CONSOLE, Sim, run
from tests.console.test_run_cmd import CHECKLIST, FAST


def _events(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _committed(db_path: Path) -> list[tuple[str, int, bytes, bytes]]:
    db = sqlite3.connect(db_path)
    try:
        return db.execute(
            "SELECT session_id, seq, body, hash FROM records ORDER BY 1, 2"
        ).fetchall()
    finally:
        db.close()


def _wait_for(
    done: Callable[[], object],
    what: str,
    deadline: float,
    proc: subprocess.Popen[str] | None = None,
) -> None:
    """Poll the processes' own state (never a fixed wait) until `done` or the deadline."""
    while not done():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        assert proc is None or proc.poll() is None, f"the process ended before {what}"
        time.sleep(0.02)


def test_kill_9_mid_freeze_then_restart_starts_locked(
    sim: Sim,
    env: dict[str, str],
    tmp_path: Path,
) -> None:
    """kill -9 of `run` 3 s into a freeze: the device makes itself safe (SR-02); the restarted
    `run` marks the session interrupted, keeps every committed record, verifies both chains,
    starts locked and releases on a measured thaw before its own procedure (SR-22)."""
    db_path = Path(env["PROBE_CONSOLE_DB"])
    checklist = tmp_path / "checklist.json"
    checklist.write_text(json.dumps(CHECKLIST))
    first_events = tmp_path / "first.jsonl"
    args = [*FAST]
    args[args.index("--freeze-s") + 1] = "60"
    run_args = ["run", "--port", sim.url, "--checklist", str(checklist)]
    first = subprocess.Popen(
        [*CONSOLE, *run_args, "--events", str(first_events), *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 40
    _wait_for(
        lambda: first_events.exists() and '"to":"freeze_1"' in first_events.read_text(),
        "freeze_1",
        deadline,
        first,
    )
    _wait_for(lambda: sim.status()["valves"]["supply"]["open"], "the supply open", deadline)
    opened_ms = int(sim.status()["device_ms"])  # type: ignore[call-overload]
    # 3 s of freezing by the device's own clock: a tip well below +2 C to thaw from.
    _wait_for(lambda: int(sim.status()["device_ms"]) >= opened_ms + 3000, "3 s", deadline)  # type: ignore[call-overload]
    first.kill()  # SIGKILL: no exit path runs
    first.wait(timeout=10)
    # The device's watchdog (300 ms) closes the supply.
    _wait_for(
        lambda: sim.status()["valves"]["supply"]["open"] is False,
        "the supply closed by the device's watchdog",
        time.monotonic() + 0.5,
    )
    before = _committed(db_path)
    db = connect(db_path)
    (killed,) = [s for s in _sessions(db) if s.finished_ts is None]
    db.close()
    assert killed.supply_opened  # the supply-open record was committed before the kill

    second_events = tmp_path / "second.jsonl"
    done = run(
        [*run_args, "--events", str(second_events), *FAST],
        env,
        timeout=120,
    )
    events = _events(second_events)
    names = [e["event"] for e in events]
    assert done.returncode == 3, done.stderr  # SR-18: the probe was used; after the release
    assert {
        "event": "session_interrupted",
        "interrupted_session_id": killed.session_id,
    }.items() <= (next(e for e in events if e["event"] == "session_interrupted").items())
    assert "locked_start" in names
    released = [e for e in events if e["event"] == "withdraw_safe"]
    assert [e["safe"] for e in released] == [False, True]
    warm = [e for e in events if e["event"] == "telemetry" and (e["tip_c"] or -99) >= 2.0]
    assert warm and released[1]["t_s"] - warm[0]["t_s"] >= 0.9
    assert released[1]["t_s"] - released[0]["t_s"] >= 5.0 - 0.02  # thaw_s, to a sample
    cold = [e for e in events if e["event"] == "telemetry" and e["tip_c"] is not None]
    assert cold[0]["tip_c"] < 2.0  # the restart met a frozen tip: the release was measured
    # No committed record lost; the killed session gained one closing record; both verify.
    after = _committed(db_path)
    assert set(before) <= set(after)
    db = connect(db_path)
    marked = find_session(db, killed.session_id)
    assert marked.outcome == "interrupted" and marked.record_count == killed.record_count + 1
    for session in _sessions(db):
        assert verify(db, session).ok, session
    db.close()
    for session_id in (killed.session_id, events[0]["session_id"]):
        assert run(["sessions", "verify", session_id, "--db", str(db_path)], env).returncode == 0


def _sessions(db: sqlite3.Connection) -> list[Any]:
    from console.records import list_sessions

    return list_sessions(db)


def test_parallel_simulate_runs_never_mark_each_other(env: dict[str, str], tmp_path: Path) -> None:
    """Each running session holds its lock: two `simulate` at once on one database both end
    completed, neither marked; a dead one (lock free) is marked by exactly one of them."""
    db_path = Path(env["PROBE_CONSOLE_DB"])
    from console.records import Recorder

    dead = Recorder(db_path, "dead" * 8, command="simulate", port=None, simulated=True)
    dead.lock.release()
    dead.db.close()
    short = ["--profile", "bench", "--cycles", "1", "--freeze-s", "30", "--thaw-s", "10"]
    procs = [
        subprocess.Popen(
            [*CONSOLE, "simulate", "--quiet", *short, "--speed", "40", "--events", str(path)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for path in (tmp_path / "a.jsonl", tmp_path / "b.jsonl")
    ]
    for proc in procs:
        assert proc.wait(timeout=120) == 0, proc.stderr.read() if proc.stderr else ""
    marks = [
        e["interrupted_session_id"]
        for path in (tmp_path / "a.jsonl", tmp_path / "b.jsonl")
        for e in _events(path)
        if e["event"] == "session_interrupted"
    ]
    assert marks == ["dead" * 8]
    db = connect(db_path)
    outcomes = sorted((s.command, s.outcome) for s in _sessions(db))
    assert outcomes == [
        ("simulate", "completed"),
        ("simulate", "completed"),
        ("simulate", "interrupted"),
    ]
    db.close()

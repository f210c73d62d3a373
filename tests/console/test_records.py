"""SR-22 and SR-31 in process: the commit policy, a real commit failure, recovery of dead sessions.

The process-level proofs (kill -9 of `run`, parallel `simulate`) are in test_recovery.py.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from console.config import load_config
from console.events import EventStream
from console.records import (
    GENESIS,
    Recorder,
    SessionLock,
    canonical,
    chain,
    events,
    find_session,
    recover,
    verify,
)
from console.simulation import Simulation
from console.store import connect
from console.wiring import record_with
from simulator.device import SimConfig

FAST = {
    "procedure.profile": "bench",
    "procedure.cycles": 1,
    "procedure.freeze_s": 30.0,
    "procedure.thaw_s": 10.0,
}

OPENED = {"event": "valve_reported", "t_s": 1.0, "ts": "t", "valve": "supply", "open": True}


def _recorded(db_path: Path) -> tuple[Simulation, Recorder, list[dict[str, Any]]]:
    config = load_config(None, FAST)
    holder: list[Simulation] = []
    stream = EventStream(lambda: holder[0].now if holder else 0.0)
    seen: list[dict[str, Any]] = []
    stream.sinks.append(seen.append)
    recorder = Recorder(db_path, "c0ffee" * 5 + "00", command="simulate", port=None, simulated=True)
    stream.sinks.append(recorder)
    simulation = Simulation(config, SimConfig(seed=1), sink=stream)
    holder.append(simulation)
    record_with(recorder, simulation.controller, simulation.runner, lambda: simulation.now)
    stream("session_started", {"session_id": recorder.session_id})
    simulation.runner.start()
    return simulation, recorder, seen


def _stored(db_path: Path, session_id: str) -> list[dict[str, Any]]:
    db = connect(db_path)
    try:
        return list(events(db, session_id))
    finally:
        db.close()


def test_canonical_form_and_chain() -> None:
    """interfaces.md: sorted keys, `,` and `:`, floats by repr, UTF-8; SHA-256(prev || record)."""
    body = canonical({"z": 0.1, "a": "µ", "n": float("nan"), "l": (1, 2)})
    assert body == '{"a":"µ","l":[1,2],"n":null,"z":0.1}'.encode()
    import hashlib

    assert chain(GENESIS, body) == hashlib.sha256(bytes(32) + body).digest()
    # A string that is not text (a lone surrogate, e.g. from a client) cannot stop a record.
    assert canonical({"a": "x\ud800"}) == b'{"a":"x\\ud800"}'


def test_decisions_are_committed_before_the_next_input(tmp_path: Path) -> None:
    """SR-22: after each turn, every decision record is in the database (read by another
    connection); telemetry waits at most 1 s of session time."""
    db_path = tmp_path / "s.sqlite3"
    simulation, recorder, seen = _recorded(db_path)
    reader = sqlite3.connect(db_path)
    worst_telemetry_lag = 0.0
    for _ in range(3000):  # 30 s of virtual time: handshake, self test, ready
        simulation.step()
        if simulation.controller.procedure.state == "ready" and len(seen) > 40:
            simulation.controller.act("arm", {"checklist": _clear()})
        stored = reader.execute(
            "SELECT MAX(seq) FROM records WHERE session_id = ?", (recorder.session_id,)
        ).fetchone()[0]
        decisions = [e["seq"] for e in seen if e["event"] != "telemetry"]
        assert stored is not None and stored >= decisions[-1], (stored, decisions[-1])
        telemetry = [e for e in seen if e["event"] == "telemetry" and e["seq"] > stored]
        if telemetry:
            worst_telemetry_lag = max(worst_telemetry_lag, simulation.now - telemetry[0]["t_s"])
    assert worst_telemetry_lag < 1.0
    reader.close()


def _clear() -> dict[str, bool]:
    from console.actions import clear_checklist

    return clear_checklist().model_dump()


def test_a_real_commit_failure_raises_alm_record_with_the_safe_state(tmp_path: Path) -> None:
    """SR-31: the database may not grow (`PRAGMA max_page_count`): safe state, ALM_RECORD, the
    events still flow to the other sinks, no new freeze; once the store takes records again,
    every one of them is committed, chain whole, and the ack clears the alarm."""
    db_path = tmp_path / "s.sqlite3"
    simulation, recorder, seen = _recorded(db_path)
    ctl = simulation.controller
    while ctl.procedure.state != "freeze_1":
        simulation.step()
        if ctl.procedure.state == "ready":
            assert ctl.act("arm", {"checklist": _clear()})[0]
        elif ctl.procedure.state == "armed":
            assert ctl.act("stim_configure", {"preset": "motor"})[0]
            assert ctl.act("stim_start")[0]
        elif ctl.procedure.state == "localize":
            assert ctl.act("confirm_localization")[0]
            assert ctl.act("start_freeze")[0]
        assert simulation.now < 60.0
    for _ in range(200):
        simulation.step()
    pages = recorder.db.execute("PRAGMA page_count").fetchone()[0]
    recorder.db.execute(f"PRAGMA max_page_count = {pages}")
    for _ in range(300):  # 3 s: the next telemetry batch cannot be stored
        simulation.step()
    names = [e["event"] for e in seen]
    assert "record_failed" in names
    raised = [e for e in seen if e["event"] == "alarm_raised" and e["alarm"] == "ALM_RECORD"]
    assert raised and raised[0]["priority"] == "high"
    failed_at = names.index("record_failed")
    after = names[failed_at:]
    assert "safe_state_commanded" in after and "safe_state_reported" in after
    assert ctl.procedure.state == "fault" and ctl.procedure.end_reason == "record"
    assert "telemetry" in after  # the other sinks (events file, view) go on
    assert recorder.failed is not None and "full" in recorder.failed
    # Still failing: nothing new reaches the database, and nothing is lost from memory.
    stored = len(_stored(db_path, recorder.session_id))
    assert stored < len(seen)
    recorder.db.execute("PRAGMA max_page_count = 1073741823")
    for _ in range(150):
        simulation.step()
    assert "record_restored" in [e["event"] for e in seen]
    assert ctl.alarms.is_active("ALM_RECORD")  # latched until acknowledged
    assert ctl.act("ack_alarm", {"alarm": "ALM_RECORD"})[0]
    assert not ctl.alarms.is_active("ALM_RECORD")
    recorder.commit()
    assert _stored(db_path, recorder.session_id) == [
        {k: (None if v != v else v) for k, v in e.items()} for e in seen
    ]
    db = connect(db_path)
    assert verify(db, find_session(db, recorder.session_id)).ok
    db.close()


def test_no_new_freeze_while_the_record_fails(tmp_path: Path) -> None:
    """SR-31: ALM_RECORD blocks arming (alarm table: until the store is writable and acked)."""
    db_path = tmp_path / "s.sqlite3"
    simulation, recorder, _ = _recorded(db_path)
    ctl = simulation.controller
    while ctl.procedure.state != "ready":
        simulation.step()
    pages = recorder.db.execute("PRAGMA page_count").fetchone()[0]
    recorder.db.execute(f"PRAGMA max_page_count = {pages}")
    for _ in range(200):
        simulation.step()
    assert ctl.alarms.is_active("ALM_RECORD")
    accepted, reason = ctl.act("arm", {"checklist": _clear()})
    assert not accepted and "ALM_RECORD" in reason


def test_recover_marks_only_sessions_whose_lock_is_free(tmp_path: Path) -> None:
    """SR-22: a dead session (lock free) is marked interrupted with a chained last record; a
    live one (lock held) is left alone; the locked start follows the port's last session."""
    db_path = tmp_path / "s.sqlite3"
    dead = Recorder(db_path, "dead" * 8, command="run", port="/dev/ttyX", simulated=False)
    dead({"event": "session_started", "t_s": 0.0, "ts": "t", "seq": 1})
    dead({**OPENED, "seq": 2})
    dead.commit()
    dead.lock.release()  # as the kernel does when its process dies
    dead.db.close()
    alive = Recorder(db_path, "a11e" * 8, command="simulate", port=None, simulated=True)
    alive({"event": "session_started", "t_s": 0.0, "ts": "t", "seq": 1})
    alive.commit()

    other_port = recover(db_path, port="/dev/ttyY", by_session="f" * 32, now_ts="now")
    assert other_port.interrupted == ["dead" * 8] and not other_port.start_locked
    db = connect(db_path)
    marked = find_session(db, "dead")
    assert (marked.outcome, marked.record_count) == ("interrupted", 3)
    assert verify(db, marked).ok
    assert find_session(db, "a11e").finished_ts is None
    db.close()
    # The same dead session seen from its own port: a fresh one in the same state locks.
    dead2 = Recorder(db_path, "dea2" * 8, command="run", port="/dev/ttyX", simulated=False)
    dead2({**OPENED, "seq": 1})
    dead2.commit()
    dead2.lock.release()
    dead2.db.close()
    same_port = recover(db_path, port="/dev/ttyX", by_session="f" * 32, now_ts="now")
    assert same_port.start_locked and "dea2" * 8 in same_port.why
    alive.close(0)


def test_a_port_whose_last_session_ended_locked_starts_locked(tmp_path: Path) -> None:
    """SR-22: the last finished session on this port exited 5 (probe still locked)."""
    db_path = tmp_path / "s.sqlite3"
    r = Recorder(db_path, "10c7" * 8, command="run", port="/dev/ttyX", simulated=False)
    r({"event": "session_finished", "t_s": 1.0, "ts": "t", "seq": 1, "outcome": "aborted",
       "reason": "signal:SIGTERM"})  # fmt: skip
    assert r.close(5)
    assert recover(db_path, port="/dev/ttyX", by_session="f" * 32, now_ts="n").start_locked
    assert not recover(db_path, port="/dev/ttyZ", by_session="f" * 32, now_ts="n").start_locked


@pytest.mark.parametrize("exit_code", [None, 1, 3])
def test_a_session_that_ended_locked_locks_the_next_start_whatever_its_exit(
    tmp_path: Path, exit_code: int | None
) -> None:
    """SR-22: locked at its end (an error path exits without 5; a locked start that ended
    before the device answered) is enough: the next start on the port is locked again."""
    db_path = tmp_path / "s.sqlite3"
    died = Recorder(db_path, "e44" * 10 + "00", command="serve", port="/dev/ttyX", simulated=False)
    died({"event": "withdraw_safe", "t_s": 1.0, "ts": "t", "seq": 1, "safe": False})
    assert died.close(exit_code)
    first = recover(db_path, port="/dev/ttyX", by_session="f" * 32, now_ts="n")
    assert first.start_locked
    # The next start inherits the lock and ends before any release: still locked after it.
    heir = Recorder(db_path, "f" * 32, command="serve", port="/dev/ttyX", simulated=False)
    heir.inherit_lock()
    assert heir.close(exit_code)
    assert recover(db_path, port="/dev/ttyX", by_session="a" * 32, now_ts="n").start_locked


def test_a_session_lock_is_exclusive(tmp_path: Path) -> None:
    first, second = SessionLock(tmp_path / "d", "ab"), SessionLock(tmp_path / "d", "ab")
    assert first.try_acquire() and not second.try_acquire()
    first.release()
    assert second.try_acquire()
    second.release(remove=True)


def test_the_locked_start_releases_only_on_a_measured_thaw() -> None:
    """SR-22 + SR-12: a console dies mid-freeze; a new one on the same device starts locked,
    refuses `arm` and `request_withdraw` (ALM_PROBE_FROZEN), and releases only once thaw_s
    has passed and the really frozen tip has read +2 C for 1 s."""
    from tests.console.rig import Rig

    first = Rig()
    first.localize()
    assert first.act("start_freeze")[0]
    first.run_until("freeze_1")
    first.run(3.0)
    assert first.of("telemetry")[-1]["tip_c"] < -30.0
    # The first console is gone (nothing steps it again); a new one connects to the device.
    rig = Rig(device=first.device, seed=7)
    rig.run_until("ready")
    rig.proc.start_locked("test")
    assert not rig.proc.withdraw_safe
    rig.run(1.0)
    assert rig.of("telemetry")[-1]["tip_c"] < 2.0 and not rig.of("telemetry")[-1]["supply_open"]
    accepted, reason = rig.arm()
    assert not accepted and "locked" in reason
    assert not rig.act("request_withdraw")[0]
    assert "ALM_PROBE_FROZEN" in rig.alarms_raised()
    locked_at = rig.of("locked_start")[0]["t_s"]
    for _ in range(60_000):
        rig.step()
        if not rig.proc.locked:
            break
    assert not rig.proc.locked
    released_at = rig.of("withdraw_safe")[-1]["t_s"]
    warm = [e for e in rig.of("telemetry") if e["tip_c"] is not None and e["tip_c"] >= 2.0]
    assert warm and released_at - warm[0]["t_s"] >= 1.0 - 0.11  # telemetry events at 10 Hz
    assert released_at - locked_at >= rig.config.procedure.thaw_s
    accepted, reason = rig.arm()  # no longer the lock: SR-18, the probe was used
    assert not accepted and "ALM_IDENTITY" in reason


@pytest.mark.parametrize("exit_code", [0, 1])
def test_a_port_whose_last_session_ended_unlocked_starts_free(
    tmp_path: Path, exit_code: int
) -> None:
    db_path = tmp_path / "s.sqlite3"
    r = Recorder(db_path, "f7ee" * 8, command="run", port="/dev/ttyX", simulated=False)
    assert r.close(exit_code)
    assert not recover(db_path, port="/dev/ttyX", by_session="f" * 32, now_ts="n").start_locked


def test_the_alarm_log_survives_a_restart(tmp_path: Path) -> None:
    """SR-21: every raise, acknowledge, silence and clear is a committed record; a process that
    dies without closing its record leaves them to the next one, which marks it interrupted."""
    db_path = tmp_path / "s.sqlite3"
    simulation, recorder, _ = _recorded(db_path)
    ctl = simulation.controller
    while ctl.procedure.state != "ready":
        simulation.step()
    assert ctl.act("estop")[0]
    simulation.step()
    assert ctl.act("silence_alarms", {"duration_s": 30})[0]
    simulation.step()
    assert ctl.act("ack_alarm", {"alarm": "ALM_ESTOP"})[0]
    simulation.step()
    # The process dies here: no close, no last commit beyond the per-input ones.
    recorder.lock.release()
    recorder.db.close()
    assert recover(db_path, port=None, by_session="f" * 32, now_ts="n").interrupted == [
        recorder.session_id
    ]
    stored = _stored(db_path, recorder.session_id)
    alarm_log = [(e["event"], e.get("alarm")) for e in stored if e["event"].startswith("alarm_")]
    assert alarm_log == [
        ("alarm_raised", "ALM_ESTOP"),
        ("alarm_silenced", None),
        ("alarm_acknowledged", "ALM_ESTOP"),
    ]
    db = connect(db_path)
    row = db.execute(
        "SELECT alarm, priority, acknowledged_t_s IS NOT NULL FROM alarms WHERE session_id = ?",
        (recorder.session_id,),
    ).fetchall()
    assert row == [("ALM_ESTOP", "high", 1)]
    assert verify(db, find_session(db, recorder.session_id)).ok
    db.close()

"""The fast path of DESIGN.md: SR-07's close goes out on the CRC-checked frame, before
validation, logging and the store; a validation failure alone trips nothing; a
de-energising decision already taken stands. No wall clock here: the order of the
work is what is checked (the timings are in bench/reaction.py)."""

from __future__ import annotations

from typing import Any

import pytest

from console.connection import FastTrip, NotReadyError
from console.interlocks import Interlocks
from drivers.pressure import exhaust_sensor
from protocols import SafeState, StreamDecoder, Telemetry, Valve, ValveCommand
from protocols.frontend import ADC_MAX, EXHAUST_CHANNEL
from tests.console.rig import Rig

BLOCKED = "exhaust_blocked@freeze1+1"


def _frames(data: bytes) -> list[Any]:
    return [f.message for f in StreamDecoder().feed(data)]


def _to_freeze(rig: Rig) -> None:
    rig.localize()
    assert rig.act("start_freeze")[0]


class _Spy:
    """Records, in order, the safe-state writes, validation (digest) and every event."""

    def __init__(self, rig: Rig) -> None:
        self.order: list[str] = []
        conn, runner = rig.connection, rig.runner
        write, digest, sink = runner.write, conn.digest, rig.log.__call__

        def spy_write(data: bytes) -> None:
            if any(isinstance(m, SafeState) for m in _frames(data)):
                self.order.append("write_safe_state")
            write(data)

        def spy_digest(events: Any, now: float) -> Any:
            self.order.append("digest")
            return digest(events, now)

        def spy_sink(name: str, fields: dict[str, Any]) -> None:
            self.order.append(f"event:{name}")
            sink(name, fields)

        runner.write = spy_write  # type: ignore[method-assign]
        conn.digest = spy_digest  # type: ignore[method-assign]
        rig.ctl._sink = spy_sink


def _run_to_trip(rig: Rig, max_s: float = 30.0) -> None:
    end = rig.runner.now + max_s
    while "ALM_EXHAUST_OVERPRESSURE" not in rig.alarms_raised():
        assert rig.runner.now < end, "SR-07 never tripped"
        rig.step()


def _sr07_rig(*, fast: bool) -> Rig:
    rig = Rig(BLOCKED, overrides={**_FAST_FREEZE})
    if not fast:
        rig.connection.fast_rule = None
    return rig


_FAST_FREEZE = {
    "procedure.profile": "bench",
    "procedure.cycles": 1,
    "procedure.freeze_s": 20.0,
    "procedure.thaw_s": 5.0,
    "procedure.leak_window_s": 2.0,
}


def test_sr07_close_is_written_before_validation_logging_and_store() -> None:
    """SR-07: the deciding frame's close precedes its validation and every record of it."""
    rig = _sr07_rig(fast=True)
    _to_freeze(rig)
    spy = _Spy(rig)
    _run_to_trip(rig)
    # The turn that decided: the last digest before the alarm's record.
    first_safe = spy.order.index("write_safe_state")
    assert spy.order[first_safe + 1] == "digest"  # validation came after the close
    assert "event:alarm_raised" in spy.order[first_safe:]
    assert not any(o.startswith("event:") for o in spy.order[first_safe - 1 : first_safe])
    # One close, not two: the full path took the fast path's decision up without resending.
    assert spy.order.count("write_safe_state") == 1
    assert rig.connection.urgent is None


def test_sr07_fast_path_records_exactly_what_the_full_path_did() -> None:
    """SR-07: same samples, same decision, same records, with and without the fast path."""
    runs = []
    for fast in (True, False):
        rig = _sr07_rig(fast=fast)
        _to_freeze(rig)
        _run_to_trip(rig)
        rig.run(3.0)
        runs.append([{k: v for k, v in e.items() if k != "ts"} for e in rig.events])
    assert runs[0] == runs[1]
    alarm = next(e for e in runs[0] if e["event"] == "alarm_raised")
    assert alarm["alarm"] == "ALM_EXHAUST_OVERPRESSURE"


def _telemetry(
    device_ms: int, exhaust_psi: float | None, *, counts: int | None = None
) -> Telemetry:
    if counts is None:
        assert exhaust_psi is not None
        counts = EXHAUST_CHANNEL.psig_to_counts(exhaust_psi)
    return Telemetry(device_ms, 20000, counts, 30000, 0, 0, 0, 0, 100, 0, 0, 0, 0)


def _interlocks() -> Interlocks:
    return Rig().ctl.interlocks


def test_sr07_fast_rule_matches_the_hold_two_samples_and_20_ms() -> None:
    """SR-07: above 20 psig for 20 ms, at least two samples, decided on the completing one."""
    il, sensor = _interlocks(), exhaust_sensor()
    frames = [_telemetry(ms, 30.0) for ms in (1000, 1010)]
    assert il.exhaust_fast_trip(sensor, frames) is None  # 10 ms: not yet
    trip = il.exhaust_fast_trip(sensor, [*frames, _telemetry(1020, 30.0)])
    assert trip is not None
    assert (trip.alarm, trip.device_ms, trip.first_over_device_ms) == (
        "ALM_EXHAUST_OVERPRESSURE",
        1020,
        1000,
    )
    # A sample back under the limit restarts the hold.
    broken = [_telemetry(1000, 30.0), _telemetry(1010, 5.0), _telemetry(1020, 30.0)]
    assert il.exhaust_fast_trip(sensor, broken) is None


def test_sr07_validation_failure_alone_trips_nothing() -> None:
    """SR-07/SR-23/SR-32: implausible or rejected samples never trip the fast path."""
    il, sensor = _interlocks(), exhaust_sensor()
    # An exhaust sensor at the high rail reads "very high" but is implausible: no trip.
    railed = [_telemetry(1000 + 10 * i, None, counts=ADC_MAX) for i in range(20)]
    assert il.exhaust_fast_trip(sensor, railed) is None
    # While SR-32 holds the exhaust sensor failed, SR-07 is suspended on both paths.
    il.exhaust_failed = True
    assert il.exhaust_fast_trip(sensor, [_telemetry(1000 + 10 * i, 30.0) for i in range(5)]) is None
    # Corrupt bytes on the line: dropped and counted, no decision, nothing written.
    rig = Rig()
    rig.run_until("ready")
    events, urgent = rig.connection.receive(b"\x05garbage\x00\x01\x02\x00", rig.runner.now)
    assert (events, urgent, rig.connection.urgent) == ([], b"", None)


def test_sr07_decision_taken_stands_when_the_full_path_does_not_confirm() -> None:
    """SR-07: the full path's rule disabled (as if the sample failed validation): the fast
    path's safe state stands, is recorded, and the procedure stops with the alarm."""
    rig = _sr07_rig(fast=True)
    _to_freeze(rig)
    conn, digest = rig.connection, rig.connection.digest
    rejected: list[float] = []

    def rejecting_digest(events: Any, now: float) -> Any:
        if conn.urgent is not None:  # the deciding sample fails validation
            rejected.append(now)
            events = [e for e in events if not isinstance(e, Telemetry)]
        return digest(events, now)

    conn.digest = rejecting_digest  # type: ignore[method-assign]
    _run_to_trip(rig)
    assert len(rejected) == 1  # the full path never saw the deciding sample
    assert rig.of("safe_state_commanded")[-1]["alarm"] == "ALM_EXHAUST_OVERPRESSURE"
    assert rig.of("alarm_raised")[-1]["device_ms"] is not None
    rig.run(1.0)
    last = rig.connection.last
    assert last is not None and not last.supply_open
    assert rig.state not in ("freeze1",)


def test_energising_command_refused_while_a_fast_safe_state_is_pending() -> None:
    """SR-07: in the turn a safe state went out, nothing energising follows it."""
    rig = Rig()
    rig.run_until("ready")
    conn = rig.connection
    conn.urgent = FastTrip("ALM_EXHAUST_OVERPRESSURE", 26.0, 20.0, 1, 0)
    with pytest.raises(NotReadyError, match="ALM_EXHAUST_OVERPRESSURE"):
        conn.send(ValveCommand(Valve.SUPPLY, True, 1000), rig.runner.now)
    # The full path's own safe state takes the decision up without a second close.
    wire, _ = conn.safe_state(rig.runner.now, "exhaust_overpressure", "ALM_EXHAUST_OVERPRESSURE")
    assert wire == b"" and conn.urgent is None

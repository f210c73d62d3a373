"""The QA runner: a scenario file run against the simulator (or a device), every expectation judged.

Three parts, as the rest of the console (DESIGN.md):

- **Running** (`run_virtual`, `run_on_port`): the composition of `simulate`
  (`console.simulation.Simulation`: the real codec, connection, controller,
  interlocks and procedure against the in-process simulator in virtual time)
  or of `run --port` (the real-time `Runtime` on a port), with a
  `ScenarioOperator`: the scripted operator of interfaces.md plus the
  scenario's own actions at times, phases or state entries. Everything the
  console decides is collected (every event, and every telemetry sample at
  the device's full rate, not only the 10 Hz telemetry events).
- **Judging** (`evaluate`): pure. A `Recording` in, one `Check` per
  expectation out, each with what was expected, what was measured and
  pass/fail. Device-time bounds are measured on the samples' `device_ms`.
- **Reporting** (`junit_xml`): JUnit XML from the results; the table is
  `console.qa_cmd`'s.

A scenario that needs the simulator is reported SKIPPED on a device (`--port`),
never passed. A check that cannot be judged (its reference event never
happened) fails: an expectation that was not exercised proves nothing.
"""

from __future__ import annotations

import argparse
import math
import signal
import uuid
import xml.etree.ElementTree as ET
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from console.bench_cmds import (
    EXIT_OWNED,
    CommandExit,
    _device,
    _wait_identified,
    refused_after_handshake,
)
from console.config import config_sha256, render_value
from console.controller import Controller
from console.events import EventStream
from console.operator import ScriptedOperator
from console.portlock import port_key
from console.procedure import STATES
from console.records import Recorder, recover, recover_for, utc_now
from console.runtime import Runtime
from console.scenario import (
    ActionEntry,
    AlarmExpect,
    DeviceTable,
    EventExpect,
    Expectation,
    MeasureExpect,
    NoAlarmExpect,
    NoAlarmsExpect,
    NoEventExpect,
    OutcomeExpect,
    Phase,
    Range,
    Ref,
    SafeStateExpect,
    ScenarioFile,
    WithdrawLockExpect,
    parse_phase,
    parse_window,
)
from console.simulation import Simulation
from console.store import ProbeRegistry, StoreError, default_db_path
from console.wiring import record_with, remember_opened
from drivers.snapshot import Snapshot
from protocols import DeviceKind
from simulator.device import SimConfig
from simulator.firmware import DeviceIdentity

Status = Literal["pass", "fail", "skip", "error"]
Clock = Callable[[], float]
WallClock = Callable[[], datetime]
Event = dict[str, Any]

EXIT_COMPLETED, EXIT_EARLY, EXIT_DEVICE, EXIT_LOCKED = 0, 1, 3, 5


# --- results ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Check:
    """One expectation's verdict: what it is, pass/fail, the measured value, what was expected."""

    name: str
    status: Status
    measured: str
    expected: str


@dataclass
class ScenarioResult:
    file: ScenarioFile
    status: Status
    checks: list[Check] = field(default_factory=list)
    #: Why the scenario was skipped or could not run.
    reason: str = ""
    mode: Literal["simulator", "port"] = "simulator"
    outcome: str = ""
    outcome_reason: str = ""
    exit_code: int | None = None
    device_s: float = 0.0
    wall_s: float = 0.0
    session_id: str | None = None

    @property
    def name(self) -> str:
        return self.file.name

    @property
    def failed(self) -> list[Check]:
        return [c for c in self.checks if c.status != "pass"]


def scenario_status(checks: Sequence[Check]) -> Status:
    return "pass" if all(c.status == "pass" for c in checks) else "fail"


def skipped(sf: ScenarioFile, reason: str, mode: Literal["simulator", "port"]) -> ScenarioResult:
    return ScenarioResult(sf, "skip", reason=reason, mode=mode)


# --- what a run leaves behind -----------------------------------------------------------------


@dataclass(slots=True)
class Applied:
    """A scenario action as the console answered it."""

    t_s: float
    accepted: bool
    reason: str


@dataclass
class Recording:
    """Everything `evaluate` judges: events, full-rate samples, how the run ended."""

    events: list[Event]
    samples: list[Snapshot]
    #: Subtracted from a sample's `t_s` to put it on the events' clock (0 in virtual time).
    t0: float
    outcome: str
    reason: str
    exit_code: int
    locked: bool
    device_s: float
    applied: dict[int, Applied]
    freeze_target_c: float
    #: `operator_action` seq -> the seq of the first event of that action's handling.
    action_starts: dict[int, int] = field(default_factory=dict)


class Collector:
    """The events sink of a run: keeps every event and the phases the actions are timed by.

    Phases are the fault WHEN phases, as the console sees them: `freezeK` starts at
    the K-th reported supply open, `thawK` at the reported close after it,
    `localize` at the first stimulation reported on.
    """

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.freeze_starts: list[float] = []
        self.thaw_starts: list[float] = []
        self.localize_t: float | None = None
        self.entered: dict[str, float] = {"connecting": 0.0}
        self.action_starts: dict[int, int] = {}
        self._supply_open = False
        self._turn_base: int | None = None

    def turn(self) -> None:
        """The operator's turn begins: the events from here on are its actions' doing, each
        action's ending with its `operator_action` (the consequences are recorded first)."""
        self._turn_base = int(self.events[-1]["seq"]) if self.events else 0

    def __call__(self, event: Event) -> None:
        self.events.append(event)
        name = event["event"]
        if name == "operator_action":
            seq = int(event["seq"])
            base = self._turn_base
            self.action_starts[seq] = base + 1 if base is not None else seq
            if base is not None:
                self._turn_base = seq
        elif name == "valve_reported" and event.get("valve") == "supply":
            is_open = bool(event.get("open"))
            if is_open and not self._supply_open:
                self.freeze_starts.append(float(event["t_s"]))
            elif self._supply_open and not is_open:
                self.thaw_starts.append(float(event["t_s"]))
            self._supply_open = is_open
        elif name == "stim_reported" and event.get("on") and self.localize_t is None:
            self.localize_t = float(event["t_s"])
        elif name == "state_changed":
            self.entered.setdefault(str(event["to"]), float(event["t_s"]))

    def phase_t(self, phase: Phase) -> float | None:
        if phase.kind == "localize":
            base = self.localize_t
        else:
            starts = self.freeze_starts if phase.kind == "freeze" else self.thaw_starts
            base = starts[phase.index - 1] if len(starts) >= phase.index else None
        return None if base is None else base + phase.offset_s


class ScenarioOperator(ScriptedOperator):
    """The scripted operator of interfaces.md (unless the scenario drives everything) plus the
    scenario's actions, each given once when its moment comes, before the scripted turn.

    Driving everything itself, the scenario ends once its last action was given and the
    console is back in `ready` with the probe unlocked (or at `max_s`).
    """

    def __init__(
        self,
        sf: ScenarioFile,
        nerve_responds: Callable[[float], bool | None],
        collector: Collector,
        *,
        t0: float = 0.0,
        fixed_ma: float | None = None,
    ) -> None:
        op = sf.scenario.operator
        super().__init__(nerve_responds, fixed_ma=fixed_ma, checklist=op.checklist)
        self.scripted = op.scripted
        self.collector = collector
        self.t0 = t0
        self.pending: list[tuple[int, ActionEntry, Phase | None]] = [
            (i, a, parse_phase(a.at) if a.at is not None else None)
            for i, a in enumerate(sf.scenario.action)
        ]
        self.applied: dict[int, Applied] = {}
        #: The run's end (`max_s`): no scenario action is given while it winds down.
        self.until = sf.scenario.max_s

    def _due(self, action: ActionEntry, phase: Phase | None, now: float) -> bool:
        if action.at_s is not None:
            return now >= action.at_s - 1e-9
        if phase is not None:
            at = self.collector.phase_t(phase)
            return at is not None and now >= at - 1e-9
        entered = self.collector.entered.get(action.on_state or "")
        return entered is not None and now >= entered + action.after_s - 1e-9

    def step(self, ctl: Controller, t: float) -> None:
        if self.done:
            return
        now = t - self.t0
        self.collector.turn()
        if self.pending and now < self.until - 1e-9:
            still: list[tuple[int, ActionEntry, Phase | None]] = []
            for index, action, phase in self.pending:
                if self._due(action, phase, now):
                    accepted, reason = ctl.act(action.action, dict(action.params))
                    self.applied[index] = Applied(round(now, 6), accepted, reason)
                else:
                    still.append((index, action, phase))
            self.pending = still
        if self.scripted:
            super().step(ctl, t)
        elif not self.pending:
            proc = ctl.procedure
            if proc.state == "ready" and not proc.locked:
                self.done = True


# --- running: the simulator in virtual time ----------------------------------------------------


def _version() -> str:
    from console.cli import package_version

    return package_version()


def _session_started(sf: ScenarioFile, session_id: str, *, simulated: bool) -> dict[str, Any]:
    s = sf.scenario
    return {
        "session_id": session_id,
        "version": _version(),
        "profile": sf.config.procedure.profile,
        "gas": sf.config.gas,
        "seed": s.seed if simulated else None,
        "faults": [str(f) for f in sf.faults] if simulated else [],
        "config_sha256": config_sha256(sf.config),
        "simulated": simulated,
        "scenario": sf.name,
    }


def sim_config(sf: ScenarioFile) -> SimConfig:
    """The simulated device of a scenario: its seed, faults and `[device]` identity."""
    dev = sf.scenario.device or DeviceTable()
    return SimConfig(
        seed=sf.scenario.seed,
        gas=dev.gas or sf.config.gas,
        identity=DeviceIdentity(
            device_serial="SIM-0001",
            probe_model=dev.probe_model,
            probe_serial=dev.probe_serial,
            probe_uses=dev.probe_uses,
            protocol_version=dev.protocol_version,
        ),
        faults=sf.faults,
    )


def run_virtual(
    sf: ScenarioFile, *, db: Path | None = None, clock: Clock | None = None
) -> ScenarioResult:
    """One scenario against the in-process simulator in virtual time; judged.

    With `db`, the run is recorded as a session (command `qa`) like `simulate` records.
    `clock` (the command's monotonic clock) only measures the wall time it took; this
    module reads no clock itself (SR-28: the shells own them).
    """
    wall = clock() if clock is not None else 0.0
    collector = Collector()
    holder: list[Simulation] = []
    stream = EventStream(lambda: holder[0].now if holder else 0.0)
    stream.sinks.append(collector)
    recorder: Recorder | None = None
    session_id = uuid.uuid4().hex
    interrupted: list[str] = []
    if db is not None:
        recorder = Recorder(db, session_id, command="qa", port=None, simulated=True)
        interrupted = recover(db, port=None, by_session=session_id, now_ts=utc_now()).interrupted
        stream.sinks.append(recorder)
    simulation = Simulation(sf.config, sim_config(sf), sink=stream)
    holder.append(simulation)
    samples: list[Snapshot] = []
    on_snapshot = simulation.controller.on_snapshot

    def tap(s: Snapshot) -> None:
        samples.append(s)
        on_snapshot(s)

    simulation.runner.on_snapshot = tap
    physics = simulation.device.physics
    operator = ScenarioOperator(
        sf,
        lambda current_ma: physics.nerve_responding,
        collector,
        fixed_ma=sf.scenario.operator.localize_ma,
    )
    simulation.operator = operator
    if recorder is not None:
        record_with(recorder, simulation.controller, simulation.runner, lambda: simulation.now)
    code: int | None = None
    try:
        stream("session_started", _session_started(sf, session_id, simulated=True))
        for other in interrupted:
            stream("session_interrupted", {"interrupted_session_id": other})
        result = simulation.run(max_virtual_s=sf.scenario.max_s)
        code = result.exit_code
        stream("session_finished", {"outcome": result.outcome, "reason": result.reason})
    finally:
        if recorder is not None:
            recorder.close(code)
    return _judged(
        sf,
        collector,
        samples,
        operator,
        mode="simulator",
        t0=0.0,
        outcome=result.outcome,
        reason=result.reason,
        exit_code=result.exit_code,
        locked=result.locked,
        device_s=result.virtual_s,
        wall_s=clock() - wall if clock is not None else 0.0,
        session_id=session_id if recorder is not None else None,
    )


def _judged(
    sf: ScenarioFile,
    collector: Collector,
    samples: list[Snapshot],
    operator: ScenarioOperator,
    *,
    mode: Literal["simulator", "port"],
    t0: float,
    outcome: str,
    reason: str,
    exit_code: int,
    locked: bool,
    device_s: float,
    wall_s: float,
    session_id: str | None,
) -> ScenarioResult:
    """A finished run's expectations judged against what it recorded."""
    recording = Recording(
        events=collector.events,
        samples=samples,
        t0=t0,
        outcome=outcome,
        reason=reason,
        exit_code=exit_code,
        locked=locked,
        device_s=device_s,
        applied=operator.applied,
        freeze_target_c=sf.config.gas_profile.freeze_target_c,
        action_starts=collector.action_starts,
    )
    checks = evaluate(sf, recording)
    return ScenarioResult(
        sf,
        scenario_status(checks),
        checks,
        mode=mode,
        outcome=outcome,
        outcome_reason=reason,
        exit_code=exit_code,
        device_s=device_s,
        wall_s=wall_s,
        session_id=session_id,
    )


# --- running: a device on a port, in real time --------------------------------------------------


class DeviceUnavailable(Exception):
    """No device on the port, no identity, the port owned elsewhere, or the device refused."""


class RunStopped(Exception):
    """A signal stopped the run; the device was left in the safe state."""


class QaUsageError(Exception):
    """A problem with the command's own setup (lock folder, store): exit 2."""


#: On a device nobody can watch the nerve: the scripted operator stimulates at this current
#: and takes it as the threshold (`run --localize-ma`), unless the scenario gives its own.
DEFAULT_PORT_LOCALIZE_MA = 1.0


def run_on_port(
    sf: ScenarioFile,
    port: str,
    *,
    db: Path | None = None,
    timeout_s: float = 5.0,
    wall_clock: WallClock | None = None,
) -> ScenarioResult:
    """One scenario on the device at `port`, in real time (hardware in the loop).

    Recorded in the store like `run` (SR-22; the probe registry of SR-18 is there).
    Durations come from the runtime's monotonic clock (SR-28); `wall_clock` (the
    command's) stamps the events' `ts`, else the start's wall time plus `t_s`.
    Raises `DeviceUnavailable`, `RunStopped` or `QaUsageError`; a scenario that
    needs the simulator is returned SKIPPED without touching the port.
    """
    if sf.needs_simulator:
        return skipped(sf, 'requires = "simulator" (faults or a simulated identity)', "port")
    args = argparse.Namespace(port=port, trace=None, db=db)
    try:
        with _device(args, sf.config, "qa run") as (runtime, registry):
            wall = runtime.now()
            result = _on_device(sf, runtime, registry, port, db, timeout_s, wall_clock)
            result.wall_s = runtime.now() - wall
    except CommandExit as exc:
        if exc.code in (EXIT_DEVICE, EXIT_OWNED):
            raise DeviceUnavailable(str(exc)) from None
        raise QaUsageError(str(exc)) from None
    return result


def _on_device(
    sf: ScenarioFile,
    runtime: Runtime,
    registry: ProbeRegistry,
    port: str,
    db: Path | None,
    timeout_s: float,
    wall_clock: WallClock | None,
) -> ScenarioResult:
    db_path = db or default_db_path()
    key = port_key(port)
    session_id = uuid.uuid4().hex
    try:
        recorder = Recorder(db_path, session_id, command="qa", port=key, simulated=False)
    except StoreError as exc:
        raise QaUsageError(str(exc)) from None
    code: int | None = None
    try:
        recovery = recover_for(recorder, key, utc_now())
        start = runtime.now()
        collector = Collector()
        stream = EventStream(lambda: runtime.now() - start, wall_clock=wall_clock)
        stream.sinks += [collector, recorder]
        conn = runtime.connection
        controller = Controller(sf.config, conn, stream, now=start)

        stream.sinks.append(remember_opened(registry, conn, session_id))
        samples: list[Snapshot] = []
        on_snapshot = controller.on_snapshot

        def tap(s: Snapshot) -> None:
            samples.append(s)
            on_snapshot(s)

        runtime.on_snapshot = tap
        runtime.on_notice = controller.on_notice
        runtime.take_output = controller.take_output
        record_with(recorder, controller, runtime, lambda: runtime.now() - start)
        stream("session_started", _session_started(sf, session_id, simulated=False))
        for other in recovery.interrupted:
            stream("session_interrupted", {"interrupted_session_id": other})
        try:
            _wait_identified(runtime, timeout_s, port)
        except CommandExit as exc:
            stream("session_finished", {"outcome": "aborted", "reason": "device_unavailable"})
            code = EXIT_DEVICE
            if runtime.stop_signal is not None:
                raise RunStopped(str(exc)) from None
            raise DeviceUnavailable(str(exc)) from None
        identity = conn.identity
        assert identity is not None
        proc = controller.procedure
        if refused_after_handshake(controller, runtime, recovery):
            stream("session_finished", {"outcome": "aborted", "reason": "device_refused"})
            code = EXIT_DEVICE
            reasons = "; ".join(f"{r.code}: {r.message}" for r in conn.refusals)
            raise DeviceUnavailable(f"the device was refused (SR-18): {reasons}")
        if identity.device_kind == DeviceKind.HARDWARE and sf.config.procedure.profile != "bench":
            stream("session_finished", {"outcome": "aborted", "reason": "not_bench"})
            code = EXIT_EARLY
            return skipped(
                sf,
                "the device says it is hardware: qa runs only bench-profile scenarios on it "
                "(nobody is there to confirm a clinical one)",
                "port",
            )
        operator = ScenarioOperator(
            sf,
            lambda current_ma: None,
            collector,
            t0=start,
            fixed_ma=sf.scenario.operator.localize_ma or DEFAULT_PORT_LOCALIZE_MA,
        )
        end = start + sf.scenario.max_s
        while runtime.stop_signal is None and not operator.done and runtime.now() < end:
            runtime.step()
            controller.tick(runtime.now())
            operator.step(controller, runtime.now())
            runtime.settle()
        stopped = runtime.stop_signal
        if stopped is not None:
            why = f"signal:{signal.Signals(stopped).name}"
            proc.end_now(why)
            runtime.settle()
            runtime.stop_signal = None
            runtime.make_safe(why)
        else:
            if not operator.done:
                proc.end_now("max_s")
                runtime.settle()
            runtime.make_safe("exit")  # SR-01: the safe state, verified, before the record ends
        outcome, reason = proc.finished or ("aborted", "not_started")
        stream("session_finished", {"outcome": outcome, "reason": reason})
        locked = proc.locked
        code = EXIT_LOCKED if locked else EXIT_COMPLETED if outcome == "completed" else EXIT_EARLY
        if stopped is not None:
            runtime.stop_signal = stopped  # the run stops after this scenario
            raise RunStopped(f"stopped by {why} during {sf.name}; the device was made safe")
        return _judged(
            sf,
            collector,
            samples,
            operator,
            mode="port",
            t0=start,
            outcome=outcome,
            reason=reason,
            exit_code=code,
            locked=locked,
            device_s=runtime.now() - start,
            wall_s=0.0,
            session_id=session_id,
        )
    except StoreError as exc:
        raise QaUsageError(str(exc)) from None
    finally:
        runtime.on_snapshot = runtime.on_notice = runtime.after_input = None
        recorder.close(code)


# --- judging (pure) -----------------------------------------------------------------------------


def fmt(value: float | None, digits: int = 2) -> str:
    """A number as people read it: no trailing zeros, `n/a` for none, `nan` at a rail."""
    if value is None:
        return "n/a"
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if float(value).is_integer():
        return str(int(value))
    text = f"{value:.{digits}f}".rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


@dataclass(frozen=True, slots=True)
class Point:
    """A moment of the run: console time, device time (if known), the first sample at or after
    it, and the event it came from (for "after this event" in the events' order)."""

    t_s: float
    device_ms: int | None
    index: int
    #: Events from this `seq` on are "at or after" it (None: judged by time).
    seq: int | None = None
    #: The reference event itself, which "never after it" does not count.
    own_seq: int | None = None


def _same(expected: object, actual: object) -> bool:
    if isinstance(expected, bool) or isinstance(actual, bool):
        return isinstance(expected, bool) and isinstance(actual, bool) and expected == actual
    if isinstance(expected, list):
        return (
            isinstance(actual, list | tuple)
            and len(expected) == len(actual)
            and all(_same(e, a) for e, a in zip(expected, actual, strict=True))
        )
    if isinstance(expected, int | float) and isinstance(actual, int | float):
        return math.isclose(float(expected), float(actual), rel_tol=1e-9, abs_tol=1e-9)
    return expected == actual


def _matches(event: Event, where: dict[str, Any]) -> bool:
    return all(key in event and _same(value, event[key]) for key, value in where.items())


class Run:
    """A recording prepared for judging: sample times, epochs, supply phases."""

    def __init__(self, rec: Recording) -> None:
        self.rec = rec
        self.events = rec.events
        self.samples = rec.samples
        self.times = [round(s.t_s - rec.t0, 6) for s in rec.samples]
        epochs: list[int] = []
        epoch = 0
        last_ms: int | None = None
        for s in rec.samples:
            if last_ms is not None and s.device_ms < last_ms:
                epoch += 1  # the device restarted its clock (a reset)
            epochs.append(epoch)
            last_ms = s.device_ms
        self.epochs = epochs
        self.opens: list[int] = []  # first sample reporting the supply open, per freeze
        self.closes: list[int] = []  # first sample reporting it closed after one
        self.stim_on: int | None = None
        was_open = False
        for i, s in enumerate(rec.samples):
            if s.supply_open and not was_open:
                self.opens.append(i)
            elif was_open and not s.supply_open:
                self.closes.append(i)
            was_open = s.supply_open
            if s.stim_on and self.stim_on is None:
                self.stim_on = i

    # --- moments ---

    def index_at(self, t_s: float) -> int:
        """The first sample received at or after `t_s`."""
        return bisect_left(self.times, t_s - 1e-9)

    def device_ms_at(self, index: int) -> int | None:
        return self.samples[index].device_ms if index < len(self.samples) else None

    def point_at(self, t_s: float) -> Point:
        i = self.index_at(t_s)
        return Point(t_s, self.device_ms_at(i), i)

    def _sample_with(self, device_ms: int, t_s: float) -> int:
        """The sample that carried `device_ms`, looked for around `t_s` (the event's time)."""
        lo = self.index_at(t_s - 2.0)
        hi = min(len(self.samples), self.index_at(t_s + 0.5) + 1)
        found = None
        for i in range(lo, hi):
            ms = self.samples[i].device_ms
            if ms == device_ms:
                return i
            if found is None and ms > device_ms:
                found = i
        return found if found is not None else self.index_at(t_s)

    def events_named(self, name: str, where: dict[str, Any] | None = None) -> list[Event]:
        return [e for e in self.events if e["event"] == name and _matches(e, where or {})]

    def window_named(self, during: str) -> tuple[int, int] | None:
        """Samples [start, end) of a phase window or of a state's first visit."""
        if during not in STATES:
            return self.window(parse_window(during))
        entered = self.events_named("state_changed", {"to": during})
        if not entered:
            return None
        t_in = float(entered[0]["t_s"])
        left = [
            e
            for e in self.events_named("state_changed", {"from": during})
            if e["seq"] > entered[0]["seq"]
        ]
        t_out = float(left[0]["t_s"]) if left else math.inf
        # The sample judged when the state was entered belongs to the state before; the one
        # judged when it was left, to this one.
        return bisect_right(self.times, t_in + 1e-9), bisect_right(self.times, t_out + 1e-9)

    def window(self, phase: Phase) -> tuple[int, int] | None:
        """Samples [start, end) of a window; None when it never began."""
        n = len(self.samples)
        if phase.kind == "run":
            return (0, n) if n else None
        if phase.kind == "localize":
            if self.stim_on is None:
                return None
            end = next((i for i in self.opens if i > self.stim_on), n)
            return self.stim_on, end
        k = phase.index - 1
        if phase.kind == "freeze":
            if len(self.opens) <= k:
                return None
            start = self.opens[k]
            end = next((i for i in self.closes if i > start), n)
            return start, end
        if len(self.opens) <= k:
            return None
        thaw = next((i for i in self.closes if i > self.opens[k]), None)
        if thaw is None:
            return None
        return thaw, next((i for i in self.opens if i > thaw), n)

    def resolve(self, ref: Ref) -> Point | None:
        anchor = ref.anchor
        if anchor == "at_s":
            return self.point_at(float(ref.at_s or 0.0))
        if anchor == "phase":
            phase = parse_phase(ref.phase or "")
            w = self.window(Phase(phase.kind, phase.index))
            if w is None:
                return None
            return self.point_at(self.times[w[0]] + phase.offset_s)
        if anchor == "sample":
            return self._sample_point(ref)
        if anchor == "event":
            found = self.events_named(ref.event or "", ref.where)
        elif anchor == "alarm":
            found = self.events_named("alarm_raised", {"alarm": ref.alarm})
        elif anchor == "fault":
            found = self.events_named("fault_injected", {"fault": ref.fault})
        elif anchor == "state":
            found = self.events_named("state_changed", {"to": ref.state})
        else:
            found = self.events_named("operator_action", {"action": ref.action, **ref.where})
        nth = ref.nth - 1 if ref.nth > 0 else len(found) + ref.nth
        if not 0 <= nth < len(found):
            return None
        e = found[nth]
        t = float(e["t_s"])
        seq = self._action_start(e) if anchor == "action" else int(e["seq"])
        key = "first_over_device_ms" if ref.first_over else "device_ms"
        ms = e.get(key)
        if isinstance(ms, int) and not isinstance(ms, bool):
            if ref.first_over and isinstance(e.get("device_ms"), int):
                t -= (int(e["device_ms"]) - ms) / 1000.0
            return Point(t, ms, self._sample_with(ms, t), seq, int(e["seq"]))
        point = self.point_at(t)
        return Point(t, point.device_ms, point.index, seq, int(e["seq"]))

    def _sample_point(self, ref: Ref) -> Point | None:
        name = ref.sample or "tip_c"
        op, limit = next(
            (n, float(getattr(ref, n)))
            for n in ("above", "at_least", "below", "at_most")
            if getattr(ref, n) is not None
        )
        test: Callable[[float], bool] = {
            "above": lambda v: v > limit,
            "at_least": lambda v: v >= limit,
            "below": lambda v: v < limit,
            "at_most": lambda v: v <= limit,
        }[op]
        hold_ms = ref.for_s * 1000.0
        since: int | None = None
        count = 0
        lo, hi = 0, len(self.samples)
        if ref.during is not None:
            window = self.window_named(ref.during)
            if window is None:
                return None
            lo, hi = window
        for i in range(lo, hi):
            s = self.samples[i]
            value = float(getattr(s, name))
            ok = value == value and test(value)
            if ok and since is not None and self.epochs[i] != self.epochs[since]:
                since, count = None, 0
            if not ok:
                since, count = None, 0
                continue
            if since is None:
                since = i
            count += 1
            held = s.device_ms - self.samples[since].device_ms
            if held >= hold_ms - 1e-6 and (hold_ms == 0 or count >= 2):
                return Point(self.times[i], s.device_ms, i)
        return None

    def elapsed_ms(self, start: Point, index: int) -> tuple[float, str]:
        """From `start` to the sample at `index`: device time when it can be, else console time."""
        s = self.samples[index]
        if (
            start.device_ms is not None
            and start.index < len(self.samples)
            and self.epochs[min(start.index, len(self.samples) - 1)] == self.epochs[index]
        ):
            return float(s.device_ms - start.device_ms), "device time"
        return (self.times[index] - start.t_s) * 1000.0, "console time"

    def elapsed_event_ms(self, start: Point, e: Event) -> tuple[float, str]:
        ms = e.get("device_ms")
        if start.device_ms is not None and isinstance(ms, int) and not isinstance(ms, bool):
            i = self._sample_with(ms, float(e["t_s"]))
            if (
                i < len(self.samples)
                and self.epochs[i] == self.epochs[min(start.index, len(self.samples) - 1)]
            ):
                return float(ms - start.device_ms), "device time"
        return (float(e["t_s"]) - start.t_s) * 1000.0, "console time"

    def _action_start(self, e: Event) -> int:
        """The first event of an action's handling (its `operator_action` is the last)."""
        seq = int(e["seq"])
        return self.rec.action_starts.get(seq, seq)

    @staticmethod
    def at_or_after(e: Event, point: Point) -> bool:
        if point.seq is not None:
            return int(e["seq"]) >= point.seq
        return float(e["t_s"]) >= point.t_s - 1e-9

    @staticmethod
    def strictly_after(e: Event, point: Point) -> bool:
        if point.seq is not None:
            return int(e["seq"]) >= point.seq and int(e["seq"]) != point.own_seq
        return float(e["t_s"]) >= point.t_s - 1e-9


def evaluate(sf: ScenarioFile, rec: Recording) -> list[Check]:
    """Every action with an expected answer, and every `[[expect]]`, judged on the recording."""
    run = Run(rec)
    checks = [c for i, a in enumerate(sf.scenario.action) if (c := _action_check(i, a, rec))]
    for expectation in sf.scenario.expect:
        try:
            check = _judge(expectation, run)
        except Exception as exc:  # a bug of ours must not read as a pass
            check = Check(_label(expectation), "error", f"{type(exc).__name__}: {exc}", "")
        if expectation.name:
            check = Check(expectation.name, check.status, check.measured, check.expected)
        checks.append(check)
    return checks


def _action_check(index: int, a: ActionEntry, rec: Recording) -> Check | None:
    applied = rec.applied.get(index)
    name = f"action {a.action} {a.when}"
    if a.expect is None:
        if applied is None:
            return Check(name, "fail", "never given: its moment never came", "given")
        return None
    expected = a.expect + (f' ("{a.reason_contains}")' if a.reason_contains else "")
    if applied is None:
        return Check(name + f" {a.expect}", "fail", "never given: its moment never came", expected)
    answer = "accepted" if applied.accepted else "refused"
    measured = f"{answer} at {fmt(applied.t_s)} s" + (
        f": {applied.reason}" if applied.reason else ""
    )
    ok = answer == a.expect and (
        a.reason_contains is None or a.reason_contains.lower() in applied.reason.lower()
    )
    return Check(name + f" {a.expect}", "pass" if ok else "fail", measured, expected)


def _label(e: Expectation) -> str:
    if isinstance(e, AlarmExpect):
        return f"{e.alarm} raised"
    if isinstance(e, NoAlarmExpect):
        return f"{e.alarm} never raised"
    if isinstance(e, NoAlarmsExpect):
        return "no alarm" + (f" but {', '.join(e.allowed)}" if e.allowed else "")
    if isinstance(e, SafeStateExpect):
        what = "safe state" if e.state == "safe" else "supply closed"
        return f"{what} within {fmt(e.within_ms)} ms of {e.after}"
    if isinstance(e, WithdrawLockExpect):
        return "withdraw_safe never true before its conditions"
    if isinstance(e, OutcomeExpect):
        return "outcome"
    if isinstance(e, MeasureExpect):
        last = f"the last {fmt(e.last_s)} s of " if e.last_s is not None else ""
        return f"{e.quantity} in {last}{e.during}"
    if isinstance(e, EventExpect):
        return f"event {e.event}" + _where_text(e.where)
    return f"no event {e.event}" + _where_text(e.where)


def _where_text(where: dict[str, Any]) -> str:
    return "".join(f", {k}={render_value(v)}" for k, v in where.items())


def _judge(e: Expectation, run: Run) -> Check:
    if isinstance(e, AlarmExpect):
        return _alarm(e, run)
    if isinstance(e, NoAlarmExpect):
        raised = run.events_named("alarm_raised", {"alarm": e.alarm})
        measured = (
            "never raised"
            if not raised
            else f"raised at {fmt(raised[0]['t_s'])} s (value {fmt(raised[0].get('value'))})"
        )
        return Check(_label(e), "fail" if raised else "pass", measured, "never raised")
    if isinstance(e, NoAlarmsExpect):
        every = run.events_named("alarm_raised")
        raised = [r for r in every if r["alarm"] not in set(e.allowed)]
        allowed = sorted({r["alarm"] for r in every if r["alarm"] in set(e.allowed)})
        measured = (
            "none raised"
            if not raised
            else ", ".join(f"{r['alarm']} at {fmt(r['t_s'])} s" for r in raised)
        ) + (f" (allowed, raised: {', '.join(allowed)})" if allowed else "")
        expected = "none" + (f" but {', '.join(e.allowed)}" if e.allowed else "")
        return Check(_label(e), "fail" if raised else "pass", measured, expected)
    if isinstance(e, SafeStateExpect):
        return _safe_state(e, run)
    if isinstance(e, WithdrawLockExpect):
        return _withdraw_lock(e, run)
    if isinstance(e, OutcomeExpect):
        return _outcome(e, run.rec)
    if isinstance(e, MeasureExpect):
        return _measure(e, run)
    if isinstance(e, EventExpect):
        return _event(e, run)
    return _no_event(e, run)


def _unjudged(e: Expectation, ref: Ref, expected: str) -> Check:
    return Check(_label(e), "fail", f"cannot judge: {ref} never happened", expected)


def _alarm(e: AlarmExpect, run: Run) -> Check:
    parts = []
    if e.priority:
        parts.append(f"priority {e.priority}")
    if e.sr is not None:
        parts.append(f"sr {', '.join(e.sr)}")
    if e.value is not None:
        parts.append(f"value {e.value}")
    if e.limit is not None:
        parts.append(f"limit {e.limit}")
    if e.after is not None:
        parts.append(_when_text(e.within_ms, e.at_least_ms, e.after))
    expected = "raised" + (f"; {'; '.join(parts)}" if parts else "")
    raised = run.events_named("alarm_raised", {"alarm": e.alarm})
    point: Point | None = None
    if e.after is not None:
        point = run.resolve(e.after)
        if point is None:
            return _unjudged(e, e.after, expected)
        raised = [r for r in raised if run.at_or_after(r, point)]
    if not raised:
        return Check(_label(e), "fail", "never raised" + (" after it" if point else ""), expected)
    r = raised[0]
    value, limit = r.get("value"), r.get("limit")
    measured = [f"at {fmt(r['t_s'])} s", f"priority {r.get('priority')}"]
    measured += [f"value {fmt(value)}", f"limit {fmt(limit)}"]
    ok = True
    if e.priority and r.get("priority") != e.priority:
        ok = False
    if e.sr is not None and list(r.get("sr") or []) != e.sr:
        ok = False
        measured.append(f"sr {', '.join(r.get('sr') or [])}")
    for want, got in ((e.value, value), (e.limit, limit)):
        if want is not None and not (isinstance(got, int | float) and want.holds(float(got))):
            ok = False
    if point is not None and (e.within_ms is not None or e.at_least_ms is not None):
        ms, clock = run.elapsed_event_ms(point, r)
        measured.append(f"{fmt(ms, 1)} ms after it ({clock})")
        ok = ok and _in_bounds(ms, e.within_ms, e.at_least_ms)
    return Check(_label(e), "pass" if ok else "fail", ", ".join(measured), expected)


def _when_text(within_ms: float | None, at_least_ms: float | None, ref: Ref) -> str:
    if within_ms is not None and at_least_ms is not None:
        return f"{fmt(at_least_ms)}..{fmt(within_ms)} ms after {ref}"
    if within_ms is not None:
        return f"within {fmt(within_ms)} ms of {ref}"
    if at_least_ms is not None:
        return f"at least {fmt(at_least_ms)} ms after {ref}"
    return f"after {ref}"


def _in_bounds(ms: float, within_ms: float | None, at_least_ms: float | None) -> bool:
    return (within_ms is None or ms <= within_ms + 1e-6) and (
        at_least_ms is None or ms >= at_least_ms - 1e-6
    )


def _safe_state(e: SafeStateExpect, run: Run) -> Check:
    what = "safe state" if e.state == "safe" else "supply closed"
    expected = f"{what} reported <= {fmt(e.within_ms)} ms after {e.after}"
    point = run.resolve(e.after)
    if point is None:
        return _unjudged(e, e.after, expected)
    for i in range(point.index, len(run.samples)):
        s = run.samples[i]
        if e.state == "safe":
            reached = not (s.supply_open or s.inlet_open or s.stim_on) and s.vent_open
        else:
            reached = not s.supply_open
        if reached:
            ms, clock = run.elapsed_ms(point, i)
            measured = (
                f"{fmt(ms, 1)} ms ({clock}: {what} reported at device_ms {s.device_ms}, "
                f"reference at {fmt(point.device_ms)})"
            )
            return Check(
                _label(e), "pass" if ms <= e.within_ms + 1e-6 else "fail", measured, expected
            )
    return Check(_label(e), "fail", f"{what} never reported after it", expected)


def _withdraw_lock(e: WithdrawLockExpect, run: Run) -> Check:
    conditions = []
    if e.tip_at_least_c is not None:
        conditions.append(f"tip >= {fmt(e.tip_at_least_c)} C for {fmt(e.tip_for_s)} s")
    if e.after_supply_closed_s is not None:
        conditions.append(f">= {fmt(e.after_supply_closed_s)} s after the supply closed")
    if e.release_factor is not None:
        conditions.append(f">= {fmt(e.release_factor)} x the time to the tip reading")
    expected = "released only after " + ", ".join(conditions) if conditions else ""
    if e.released is not None:
        said = "released in the run" if e.released else "still locked at the end"
        expected = f"{expected}; {said}" if expected else said
    started = run.events_named("procedure_started")
    first_start = float(started[0]["t_s"]) if started else math.inf
    opened = [i for i in run.opens if run.times[i] >= first_start - 1e-9]
    flips = run.events_named("withdraw_safe")
    locks = [f for f in flips if f.get("safe") is False]
    if not locks:
        if opened:
            t = fmt(run.times[opened[0]])
            return Check(
                _label(e),
                "fail",
                f"the supply reported open at {t} s but withdraw_safe never turned false",
                expected,
            )
        ok = e.released is not True
        return Check(_label(e), "pass" if ok else "fail", "never locked (no supply open)", expected)
    releases = [f for f in flips if f.get("safe") is True and f["seq"] > locks[0]["seq"]]
    measured = [f"locked at {fmt(locks[0]['t_s'])} s"]
    if e.released is not None and bool(releases) != e.released:
        measured.append("released" if releases else "never released")
        return Check(_label(e), "fail", ", ".join(measured), expected)
    if not releases:
        measured.append("never released")
        return Check(_label(e), "pass", ", ".join(measured), expected)
    ok = True
    for release in releases:
        t_rel = float(release["t_s"])
        closes = [i for i in run.closes if run.times[i] <= t_rel + 1e-9]
        if not closes:
            measured.append(f"released at {fmt(t_rel)} s without the supply reported closed")
            ok = False
            continue
        close = closes[-1]
        t_close = run.times[close]
        waited = t_rel - t_close
        measured.append(
            f"released at {fmt(t_rel)} s, {fmt(waited, 1)} s after the supply closed "
            f"(at {fmt(t_close)} s)"
        )
        if e.after_supply_closed_s is not None and waited < e.after_supply_closed_s - 1e-6:
            ok = False
        if e.tip_at_least_c is not None:
            first, held = _tip_hold(run, close, t_rel, e.tip_at_least_c, e.tip_for_s)
            if held is None:
                measured.append(
                    f"tip never read >= {fmt(e.tip_at_least_c)} C for {fmt(e.tip_for_s)} s before"
                )
                ok = False
            else:
                measured.append(f"tip condition met at {fmt(held)} s")
            if e.release_factor is not None:
                if first is None:
                    ok = False
                else:
                    need = e.release_factor * (first - t_close)
                    measured.append(
                        f"factor: {fmt(waited, 3)} s vs {fmt(e.release_factor)} x "
                        f"{fmt(first - t_close, 3)} s = {fmt(need, 3)} s"
                    )
                    if waited < need - 1e-6:
                        ok = False
    return Check(_label(e), "pass" if ok else "fail", "; ".join(measured), expected)


def _tip_hold(
    run: Run, start: int, until_t: float, limit: float, hold_s: float
) -> tuple[float | None, float | None]:
    """From the close at sample `start` until `until_t`: when the tip first read >= `limit`, and
    when it had read so for `hold_s` (every sample, at least 2), in the samples' time."""
    first: float | None = None
    since: float | None = None
    count = 0
    for i in range(start, len(run.samples)):
        t = run.times[i]
        if t > until_t + 1e-9:
            break
        tip = run.samples[i].tip_c
        if tip == tip and tip >= limit:
            if first is None:
                first = t
            if since is None:
                since, count = t, 0
            count += 1
            if t - since >= hold_s - 1e-6 and (hold_s == 0 or count >= 2):
                return first, t
        else:
            since, count = None, 0
    return first, None


def _outcome(e: OutcomeExpect, rec: Recording) -> Check:
    expected, measured = [], []
    ok = True
    for name, want, got in (
        ("outcome", e.outcome, rec.outcome),
        ("reason", e.reason, rec.reason),
        ("exit code", e.exit_code, rec.exit_code),
        ("locked", e.locked, rec.locked),
    ):
        if want is None:
            continue
        expected.append(f"{name} {_word(want)}")
        measured.append(f"{name} {_word(got)}")
        ok = ok and want == got
    return Check(_label(e), "pass" if ok else "fail", ", ".join(measured), ", ".join(expected))


def _word(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _measure(e: MeasureExpect, run: Run) -> Check:
    expected = str(e.range)
    if e.quantity in ("time_below_target_s", "time_to_target_s"):
        target = e.target_c if e.target_c is not None else run.rec.freeze_target_c
        expected += f" (target {fmt(target)} C)"
    else:
        target = run.rec.freeze_target_c
    if e.quantity == "threshold_ma":
        found = run.events_named("localized")
        value = found[0].get("threshold_ma") if found else None
        if not isinstance(value, int | float):
            return Check(_label(e), "fail", "no threshold recorded (no localized event)", expected)
        return _ranged(e, float(value), expected)
    window = run.window_named(e.during)
    if window is None:
        return Check(_label(e), "fail", f"{e.during} never happened", expected)
    start, end = window
    if start >= end:
        return Check(_label(e), "fail", f"{e.during} has no samples", expected)
    if e.last_s is not None:
        last = run.samples[end - 1]
        start = next(
            i
            for i in range(start, end)
            if run.epochs[i] == run.epochs[end - 1]
            and last.device_ms - run.samples[i].device_ms <= e.last_s * 1000.0 + 1e-6
        )
    value = _quantity(e.quantity, run, start, end, target)
    if value is None:
        what = (
            f"the tip never read <= {fmt(target)} C"
            if e.quantity == "time_to_target_s"
            else "no valid reading"
        )
        return Check(_label(e), "fail", f"{what} in {e.during}", expected)
    return _ranged(e, value, expected)


def _ranged(e: MeasureExpect, value: float, expected: str) -> Check:
    return Check(_label(e), "pass" if e.range.holds(value) else "fail", fmt(value), expected)


def _quantity(quantity: str, run: Run, start: int, end: int, target: float) -> float | None:
    samples = run.samples
    if quantity == "duration_s":
        last = end if end < len(samples) else end - 1
        return _span_s(run, start, last)
    if quantity == "time_below_target_s":
        total = 0.0
        for i in range(start, end - 1):
            tip = samples[i].tip_c
            if tip == tip and tip <= target:
                total += _span_s(run, i, i + 1)
        return total
    if quantity == "time_to_target_s":
        for i in range(start, end):
            tip = samples[i].tip_c
            if tip == tip and tip <= target:
                return _span_s(run, start, i)
        return None
    stat, _, name = quantity.partition("_")
    values = [v for v in (float(getattr(samples[i], name)) for i in range(start, end)) if v == v]
    if not values:
        return None
    if stat == "min":
        return min(values)
    if stat == "max":
        return max(values)
    return sum(values) / len(values)


def _span_s(run: Run, a: int, b: int) -> float:
    """Seconds between two samples: device time, or console time across a device reset."""
    if run.epochs[a] == run.epochs[b]:
        return (run.samples[b].device_ms - run.samples[a].device_ms) / 1000.0
    return run.times[b] - run.times[a]


def _event(e: EventExpect, run: Run) -> Check:
    found = run.events_named(e.event, e.where)
    parts = []
    point: Point | None = None
    if e.after is not None:
        point = run.resolve(e.after)
        parts.append(_when_text(e.within_ms, e.at_least_ms, e.after))
    count = e.count or Range(min=1)
    expected = f"count {count}" + (f", first {parts[0]}" if parts else "")
    if e.after is not None and point is None:
        return _unjudged(e, e.after, expected)
    if point is not None:
        found = [f for f in found if run.at_or_after(f, point)]
    ok = count.holds(len(found))
    measured = [f"{len(found)} found"]
    if found:
        measured.append(f"first at {fmt(found[0]['t_s'])} s")
    if point is not None and (e.within_ms is not None or e.at_least_ms is not None):
        if not found:
            ok = False
        else:
            ms, clock = run.elapsed_event_ms(point, found[0])
            measured.append(f"{fmt(ms, 1)} ms after it ({clock})")
            ok = ok and _in_bounds(ms, e.within_ms, e.at_least_ms)
    return Check(_label(e), "pass" if ok else "fail", ", ".join(measured), expected)


def _no_event(e: NoEventExpect, run: Run) -> Check:
    found = run.events_named(e.event, e.where)
    expected = "none"
    if e.after is not None:
        expected += (
            f" within {fmt(e.within_ms)} ms after {e.after}"
            if e.within_ms is not None
            else f" after {e.after}"
        )
        point = run.resolve(e.after)
        if point is None:
            return _unjudged(e, e.after, expected)
        found = [f for f in found if run.strictly_after(f, point)]
        if e.within_ms is not None:
            limit = e.within_ms
            found = [f for f in found if run.elapsed_event_ms(point, f)[0] <= limit + 1e-6]
    measured = "none" if not found else f"{len(found)} found, first at {fmt(found[0]['t_s'])} s"
    return Check(_label(e), "fail" if found else "pass", measured, expected)


# --- JUnit XML --------------------------------------------------------------------------------


def junit_xml(
    results: Sequence[ScenarioResult],
    *,
    timestamp: str | None = None,
    suite: str = "probe-console qa",
) -> str:
    """One `testsuite` for the run, one `testcase` per scenario; failures list the failed
    expectations with their measured values; skips say why."""
    failures = sum(1 for r in results if r.status == "fail")
    errors = sum(1 for r in results if r.status == "error")
    skips = sum(1 for r in results if r.status == "skip")
    total_s = sum(r.wall_s for r in results)
    root = ET.Element(
        "testsuites",
        name=suite,
        tests=str(len(results)),
        failures=str(failures),
        errors=str(errors),
        skipped=str(skips),
        time=f"{total_s:.3f}",
    )
    ts = ET.SubElement(
        root,
        "testsuite",
        name=suite,
        tests=str(len(results)),
        failures=str(failures),
        errors=str(errors),
        skipped=str(skips),
        time=f"{total_s:.3f}",
    )
    if timestamp is not None:
        ts.set("timestamp", timestamp)
    for r in results:
        case = ET.SubElement(
            ts,
            "testcase",
            classname=f"qa.{r.file.path.stem}",
            name=r.name,
            file=str(r.file.path),
            time=f"{r.wall_s:.3f}",
        )
        props = ET.SubElement(case, "properties")
        ET.SubElement(props, "property", name="sr", value=", ".join(r.file.scenario.sr))
        ET.SubElement(props, "property", name="requires", value=r.file.scenario.requires)
        ET.SubElement(props, "property", name="mode", value=r.mode)
        if r.status == "skip":
            ET.SubElement(case, "skipped", message=r.reason)
        elif r.status == "error":
            err = ET.SubElement(case, "error", message=r.reason or "the scenario could not run")
            err.text = "\n".join(_check_line(c) for c in r.checks) or r.reason
        elif r.status == "fail":
            bad = r.failed
            fail = ET.SubElement(
                case,
                "failure",
                message=f"{len(bad)} of {len(r.checks)} expectations failed: "
                + "; ".join(f"{c.name}: measured {c.measured}" for c in bad),
                type="expectation",
            )
            fail.text = "\n".join(_check_line(c) for c in bad)
        out = ET.SubElement(case, "system-out")
        out.text = "\n".join(_check_line(c) for c in r.checks) + (
            f"\noutcome {r.outcome} ({r.outcome_reason}), exit code {r.exit_code}, "
            f"{fmt(r.device_s, 1)} s of device time"
            if r.status != "skip"
            else ""
        )
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def _check_line(c: Check) -> str:
    return f"{c.status.upper()} {c.name}: measured {c.measured}; expected {c.expected}"


__all__ = [
    "Applied",
    "Check",
    "Collector",
    "DeviceUnavailable",
    "QaUsageError",
    "Recording",
    "RunStopped",
    "ScenarioOperator",
    "ScenarioResult",
    "evaluate",
    "junit_xml",
    "run_on_port",
    "run_virtual",
    "sim_config",
]

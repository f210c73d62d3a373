"""A stateful property test of the whole console (issue 6): operator, telemetry, faults, garbage.

A `hypothesis` `RuleBasedStateMachine` drives a fresh `Rig` (the console's
`Controller` against the in-process simulator, in virtual time, FAST bench
profile: freeze 5 s, thaw 5 s, leak window 2 s; 1-3 cycles, N2O or CO2) with
every operator action (plausible and implausible parameters), virtual time,
the simulator's faults injected now, and bytes that fail decoding fed to the
console's connection. After every step, and for the time-driven invariants on
every telemetry sample as well, it checks:

1. SR-13/SR-20 and the valve table of interfaces.md: the supply is commanded open only in
   a freeze state.
2. SR-15: stimulation and an open supply are exclusive (see `inv_stim_and_freeze_exclusive`).
3. SR-12/SR-13: from the first reported supply open of a procedure, `withdraw_safe`
   stays false until SR-12's three conditions held or SR-13's timed path completed,
   recomputed here from the samples, independently of the procedure's bookkeeping.
4. SR-12/SR-13/SR-20: every path from a freeze to `ready` passes a thaw or a stop
   state and, if locked, a release.
5. SR-21: a latching alarm clears only after its acknowledgement.
6. SR-23: a frame that fails decoding never energises anything and never raises.

The daemon must never raise: any exception from the console fails the example.
Virtual time is budgeted per example (`BUDGET_S`, `LONG_WAIT_ONE_IN`) so that the
300 examples run in about a minute on one core. The examples are derandomized (the
same 300 on every run); the sequences the machine found, and the long waits it
reaches only rarely, are replayed step by step at the end of this module.
"""

from __future__ import annotations

import math
import struct
import sys
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from cobs import cobs
from hypothesis import HealthCheck, currently_in_test_context, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
)

from console.actions import ACTIONS, clear_checklist
from console.alarms import ALARMS, Priority
from console.procedure import ENDS, FREEZES, THAWS
from drivers.snapshot import Snapshot
from drivers.valves import SAFE_OPEN
from protocols import (
    PROTOCOL_VERSION,
    Ack,
    EmergencyStop,
    Message,
    MsgType,
    StreamDecoder,
    Telemetry,
    Valve,
    is_energising,
)
from protocols.framing import HEADER
from protocols.messages import LAYOUT_BY_CLASS, LAYOUTS
from tests.console.rig import FAST, Rig

# --- SR numbers, as the requirements state them (a profile may tighten, never loosen) -------

SR12_RELEASE_FACTOR = 2.5
SR12_RELEASE_TIP_C = 2.0
SR12_RELEASE_HOLD_S = 1.0
SR13_TIMED_THAW_S = 420.0
EPS = 1e-5  # event times are rounded to 1 us

# --- per-example cost ------------------------------------------------------------------------

#: Virtual seconds one example may spend in the time rules and the scripted operator
#: (the rig runs 50-100 virtual s per wall second): a 1-cycle procedure from `ready` to
#: its release takes 17 s. In one example in LONG_WAIT_ONE_IN, one long wait while the
#: probe is locked (SR-13's 420 s, SR-14's 300 s) comes on top, at ~5 s of wall time.
BUDGET_S = 25.0
LONG_WAIT_S = SR13_TIMED_THAW_S + 2.0
LONG_WAIT_ONE_IN = 40

# --- strategies ------------------------------------------------------------------------------

CLEAR = clear_checklist().model_dump()

CHECKLISTS: list[Any] = [
    CLEAR,
    {**CLEAR, "site_is_face": True, "acknowledge_relative_contraindication": True},
    {**CLEAR, "patient_refusal": True},
    {**CLEAR, "cold_urticaria": True},
    {**CLEAR, "site_is_face": True},
    {k: v for k, v in CLEAR.items() if k != "raynaud"},
    {**CLEAR, "raynaud": "no"},
    {**CLEAR, "raynaud": 0},
    {**CLEAR, "unexpected": False},
    None,
    "all clear",
]

PLAUSIBLE_ARM: dict[str, list[Any]] = {
    "cycles": [1, 2, 3],
    "freeze_s": [5.0, 6.0],
    "thaw_s": [5.0, 7.5],
}
IMPLAUSIBLE_ARM: dict[str, list[Any]] = {
    "cycles": [0, 4, -1, 2.0, "2", True],
    "freeze_s": [4.99, 241.0, 0.0, -5.0, math.nan, math.inf, "5"],
    "thaw_s": [4.0, 121.0, math.nan, -math.inf],
}


@st.composite
def arm_params(draw: st.DrawFn) -> dict[str, Any]:
    params: dict[str, Any] = {"checklist": draw(st.sampled_from(CHECKLISTS))}
    for key in ("cycles", "freeze_s", "thaw_s"):
        choice = draw(st.sampled_from(["absent", "absent", "plausible", "implausible"]))
        if choice == "plausible":
            params[key] = draw(st.sampled_from(PLAUSIBLE_ARM[key]))
        elif choice == "implausible":
            params[key] = draw(st.sampled_from(IMPLAUSIBLE_ARM[key]))
    if draw(st.integers(0, 9)) == 0:
        params["force"] = True  # an unknown key (SR-30)
    return params


STIM_PARAMS: st.SearchStrategy[dict[str, Any]] = st.one_of(
    st.fixed_dictionaries({"preset": st.sampled_from(["motor", "sensory", "tetanic", ""])}),
    st.fixed_dictionaries(
        {
            "current_ma": st.one_of(
                st.sampled_from([0.0, 0.5, 1.0, 5.0, 5.01, 0.005, 1.234, -0.01, math.nan]),
                st.floats(-1.0, 6.0),
            ),
            "pulse_us": st.sampled_from([50, 100, 1000, 49, 1001, 100.0]),
            "rate_hz": st.sampled_from([1, 2, 100, 0, 101]),
        }
    ),
    st.just({"preset": "motor", "current_ma": 1.0}),
    st.just({"current_ma": 1.0, "pulse_us": 100}),
    st.just({}),
)

SILENCE_S = st.sampled_from([0.5, 10.0, 120.0, 0.0, 120.5, -1.0, math.nan, math.inf])

#: Faults the machine injects now, with their parameters; durations are added below.
DEVICE_FAULTS = (
    "exhaust_blocked",
    "supply_leak",
    "supply_leak:psi_per_s=40",
    "cylinder_empty",
    "supply_overpressure",
    "valve_stuck_open:valve=supply",
    "valve_stuck_open:valve=inlet",
    "valve_stuck_open:valve=vent",
    "valve_stuck_closed:valve=supply",
    "valve_stuck_closed:valve=inlet",
    "valve_stuck_closed:valve=vent",
    "thermistor_open",
    "thermistor_short",
    "thermistor_step",
    "thermistor_step:c=-30",
    "thermistor_stuck",
    "thermistor_drift:c_per_s=3",
    "pressure_sensor_fail:sensor=supply,mode=rail_high",
    "pressure_sensor_fail:sensor=exhaust,mode=rail_low",
    "pressure_sensor_fail:sensor=supply,mode=frozen",
    "orifice_clog",
    "liquid_carryover",
    "stim_stuck_on",
    "stim_lead_off",
    "firmware_reset",
)
LINK_FAULTS = (
    "link_drop",
    "link_drop:dir=to_device",
    "link_drop:dir=to_host",
    "link_corrupt:ber=0.001",
    "link_garbage",
    "link_duplicate",
    "link_replay",
    "link_delay:delay_ms=120",
    "link_foreign_nonce",
)


def _with_duration(spec: str, duration: float) -> str:
    if math.isinf(duration):
        return spec
    return f"{spec}{',' if ':' in spec else ':'}duration_s={duration:g}"


DEVICE_FAULT_SPECS = st.builds(
    _with_duration,
    st.sampled_from(DEVICE_FAULTS),
    st.sampled_from([math.inf, math.inf, 3.0, 20.0]),
)
LINK_FAULT_SPECS = st.builds(
    _with_duration, st.sampled_from(LINK_FAULTS), st.sampled_from([0.1, 0.35, 1.0, 3.0])
)

SECONDS = st.one_of(st.floats(0.05, 2.0), st.floats(2.0, 30.0))

ALARM_IDS = sorted(ALARMS)
PRELUDES = (
    "none",
    "none",
    "stimulating",
    "localized",
    "freezing",
    "thawing",
    "stopped",
)
DRIVE_TARGETS = ("localized", "freezing", "freezing", "thawing", "stopped", "finished")
FORGERIES = (
    "bitflip",
    "truncated",
    "version",
    "unknown_type",
    "payload",
    "length",
    "nonce",
    "cobs",
)


# --- the independent observer ------------------------------------------------------------------


@dataclass
class Observer:
    """Recomputes what the SRs require from the samples and events, apart from the console.

    `sample` takes every snapshot after the console judged it; `drain` reads the events the
    console emitted since the last call, in order. Violations are kept per invariant.
    """

    rig: Rig
    factor: float
    hold_s: float
    release_tip_c: float
    timed_s: float
    violations: dict[str, list[str]] = field(default_factory=dict)
    seen: int = 0
    last: Snapshot | None = None
    # the procedure, from its events
    in_procedure: bool = False
    cycles: int = 1
    thaw_s: float = 5.0
    state: str = "connecting"
    # SR-12 / SR-13, recomputed from the samples
    locked: bool = False  # since the first reported supply open of this procedure
    released: bool = False  # a valid release happened in this procedure
    console_locked: bool = False  # the console's own withdraw_safe, from its events
    closed_t: float | None = None  # the sample that first reported the supply closed
    first_warm_t: float | None = None  # first sample at or above release_tip_c since then
    warm_since: float | None = None  # start of the current run of warm samples
    warm_count: int = 0
    thaw_start_t: float | None = None  # entry into the final thaw or a stop state
    suspect: bool = False
    confirmed_t: list[float] = field(default_factory=list)
    temp_alarm: bool = False
    # path from a freeze to ready
    froze: bool = False
    thawed: bool = False
    # alarms
    acked_since_raise: dict[str, bool] = field(default_factory=dict)
    # coverage
    states: set[str] = field(default_factory=set)
    releases: list[str] = field(default_factory=list)
    overlap_samples: int = 0

    def fail(self, key: str, text: str) -> None:
        self.violations.setdefault(key, []).append(text)

    def failures(self, key: str) -> list[str]:
        return self.violations.get(key, [])

    # --- samples ---------------------------------------------------------------------------

    def sample(self, s: Snapshot) -> None:
        """One telemetry sample, after the console judged it."""
        self.last = s
        t = s.t_s
        if s.supply_open:
            # SR-12's words: the first reported supply open *of a procedure*, in whatever
            # state it is reported (a valve stuck open in `leak_test` or `pressurize` too),
            # not only the open a freeze commanded.
            if self.in_procedure and not self.released:
                self.locked = True
            self.closed_t = None
            self.first_warm_t = None
            self.warm_since = None
            self.warm_count = 0
            return
        if self.closed_t is None:
            self.closed_t = t
        if s.tip_c >= self.release_tip_c:  # False for NaN (a rail)
            if self.first_warm_t is None:
                self.first_warm_t = t
            if self.warm_since is None:
                self.warm_since = t
                self.warm_count = 0
            self.warm_count += 1
        else:
            self.warm_since = None
            self.warm_count = 0

    # --- events ----------------------------------------------------------------------------

    def drain(self) -> None:
        events = self.rig.events
        while self.seen < len(events):
            e = events[self.seen]
            self.seen += 1
            handler = getattr(self, "_on_" + e["event"], None)
            if handler is not None:
                handler(e)

    def _on_procedure_started(self, e: dict[str, Any]) -> None:
        self.in_procedure = True
        self.cycles = int(e["cycles"])
        self.thaw_s = float(e["thaw_s"])
        self.locked = self.released = self.suspect = False
        self.confirmed_t = []
        self.thaw_start_t = None

    def _on_procedure_finished(self, e: dict[str, Any]) -> None:
        self.in_procedure = False

    def _on_state_changed(self, e: dict[str, Any]) -> None:
        to, t = str(e["to"]), float(e["t_s"])
        self.state = to
        self.states.add(to)
        if to in FREEZES:
            self.froze, self.thawed = True, False
        elif to in THAWS or to in ENDS:
            self.thawed = True
        if to == f"thaw_{self.cycles}" or to in ENDS:
            self.thaw_start_t = t
        if to == "ready":
            if self.froze and not self.thawed:
                self.fail(
                    "path",
                    f"t={t}: {e['from']} -> ready after a freeze with no thaw/stop",
                )
            if self.console_locked:
                self.fail(
                    "path",
                    f"t={t}: {e['from']} -> ready with withdraw_safe still false",
                )
            if self.locked:
                self.fail(
                    "sr12",
                    f"t={t}: {e['from']} -> ready: the probe is frozen (SR-12), no release",
                )
            self.froze = self.thawed = False

    def _on_withdraw_safe(self, e: dict[str, Any]) -> None:
        t = float(e["t_s"])
        if not e["safe"]:
            self.console_locked = True
            return
        self.console_locked = False
        # An action's own record follows what it caused: a release by `confirm_timed_thaw`
        # comes before that action's `operator_action` event, at the same time.
        for later in self.rig.events[self.seen :]:
            if later["t_s"] != e["t_s"]:
                break
            if later["event"] == "operator_action" and later["accepted"]:
                if later["action"] == "confirm_timed_thaw":
                    self.confirmed_t.append(t)
                break
        why = self.release_problems(t)
        if why:
            self.fail("sr12", f"t={t}: withdraw_safe became true but {why}")
        if self.locked:
            self.locked = False
            self.released = True

    def release_problems(self, t: float) -> str:
        """Why SR-12's conditions (or SR-13's timed path) do not hold at `t`; '' if they do."""
        closed = self.closed_t
        if closed is None:
            return "the supply is reported open"
        timed = self.temp_alarm or self.suspect
        since_close = t - closed
        timed_ok = since_close >= self.timed_s - EPS and any(
            c - closed >= self.timed_s - EPS for c in self.confirmed_t
        )
        if timed:
            if timed_ok:
                self.releases.append("timed")
                return ""
            return (
                f"the thermistor is not trusted (ALM_TEMP_SENSOR={self.temp_alarm}, "
                f"suspect={self.suspect}) and SR-13's timed path is incomplete: "
                f"{since_close:.3f} s since the close, confirmations at {self.confirmed_t}"
            )
        problems = []
        if self.thaw_start_t is None or t - self.thaw_start_t < self.thaw_s - EPS:
            problems.append(f"the thaw began at {self.thaw_start_t} (thaw_s={self.thaw_s})")
        if (
            self.warm_since is None
            or self.warm_count < 2
            or t - self.warm_since < self.hold_s - EPS
        ):
            problems.append(
                f"the tip has read >= {self.release_tip_c} C only since {self.warm_since} "
                f"({self.warm_count} samples)"
            )
        first = self.first_warm_t
        if first is None or since_close < self.factor * (first - closed) - EPS:
            problems.append(
                f"{since_close:.3f} s since the close < {self.factor} x time to "
                f"{self.release_tip_c} C (first at {first}, close at {closed})"
            )
        if problems and not timed_ok:
            return "; ".join(problems)
        self.releases.append("timed" if problems else "measured")
        return ""

    def _on_operator_action(self, e: dict[str, Any]) -> None:
        if not e["accepted"]:
            return
        action, t = e["action"], float(e["t_s"])
        if action == "declare_thermistor_suspect":
            self.suspect = True
        elif action == "confirm_timed_thaw" and t not in self.confirmed_t:
            self.confirmed_t.append(t)
        elif action == "request_withdraw" and self.locked:
            self.fail("sr12", f"t={t}: request_withdraw accepted while the probe is frozen")

    def _on_alarm_raised(self, e: dict[str, Any]) -> None:
        alarm = str(e["alarm"])
        self.acked_since_raise[alarm] = False
        if alarm == "ALM_TEMP_SENSOR":
            self.temp_alarm = True

    def _on_alarm_acknowledged(self, e: dict[str, Any]) -> None:
        self.acked_since_raise[str(e["alarm"])] = True

    def _on_alarm_cleared(self, e: dict[str, Any]) -> None:
        alarm, t = str(e["alarm"]), float(e["t_s"])
        spec = ALARMS[alarm]
        if spec.latches and not self.acked_since_raise.get(alarm, False):
            self.fail("sr21", f"t={t}: latching {alarm} cleared without an acknowledgement")
        s = self.last
        if alarm == "ALM_STIM_DURING_FREEZE" and s is not None and s.stim_on and s.supply_open:
            self.fail("sr21", f"t={t}: {alarm} cleared while stimulation and supply are on")
        self.acked_since_raise.pop(alarm, None)
        if alarm == "ALM_TEMP_SENSOR":
            self.temp_alarm = False


def _note(text: str) -> None:
    """A coverage note for --hypothesis-show-statistics (nothing in the fixed replays)."""
    if currently_in_test_context():
        event(text)


# --- forged frames that must fail decoding ---------------------------------------------------


def _body(msg_type: int, seq: int, nonce: int, payload: bytes, version: int) -> bytes:
    body = HEADER.pack(version, msg_type, seq, nonce, len(payload)) + payload
    return body + struct.pack("<I", zlib.crc32(body))


def forge(kind: str, message: Message, seq: int, nonce: int, k: int) -> bytes:
    """A frame built from `message` that a receiver must drop (SR-23), delimited both sides."""
    layout = LAYOUT_BY_CLASS[type(message)]
    payload = layout.pack(message)
    good = _body(layout.msg_type, seq, nonce, payload, PROTOCOL_VERSION)
    if kind == "bitflip":  # 1-3 flipped bits: CRC-32 detects every one of them
        raw = bytearray(good)
        for i in range(1 + k % 3):
            bit = (k * 7919 + i * 104729) % (8 * len(raw))
            raw[bit // 8] ^= 1 << (bit % 8)
        body = bytes(raw)
    elif kind == "truncated":
        body = good[: k % (len(good) - 1) + 1]
    elif kind == "version":
        other = (PROTOCOL_VERSION + 1 + k % 255) % 256  # never PROTOCOL_VERSION itself
        body = _body(layout.msg_type, seq, nonce, payload, other)
    elif kind == "unknown_type":
        unknown = [t for t in range(256) if t not in LAYOUTS]
        body = _body(unknown[k % len(unknown)], seq, nonce, payload, PROTOCOL_VERSION)
    elif kind == "payload":
        body = _body(layout.msg_type, seq, nonce, payload + b"\x01", PROTOCOL_VERSION)
    elif kind == "length":
        raw = bytearray(good[:-4])
        raw[10] ^= 1 + k % 7  # the header's payload length, CRC made to match
        body = bytes(raw) + struct.pack("<I", zlib.crc32(bytes(raw)))
    elif kind == "nonce":  # another session's frame, intact
        body = _body(
            layout.msg_type,
            seq,
            (nonce + 1 + k) & 0xFFFFFFFF,
            payload,
            PROTOCOL_VERSION,
        )
    else:  # "cobs": a code byte pointing past the end of the frame
        return b"\x00" + bytes([0xFE]) + good[:5] + b"\x00"
    encoded: bytes = cobs.encode(body)
    return b"\x00" + encoded + b"\x00"


def energising_in(wire: bytes) -> list[str]:
    return [
        type(f.message).__name__ for f in StreamDecoder().feed(wire) if is_energising(f.message)
    ]


# --- the machine -----------------------------------------------------------------------------


class ConsoleMachine(RuleBasedStateMachine):
    """The console in virtual time under an operator who may do anything, faults and garbage."""

    def __init__(self) -> None:
        super().__init__()
        self.rig: Rig | None = None
        self.obs: Observer | None = None
        self.budget_s = BUDGET_S
        self.long_ok = False
        self.long_used = False
        self.stuck_supply = False  # a valve_stuck_open on the supply was injected
        self.garbage_problem: str | None = None

    # --- plumbing --------------------------------------------------------------------------

    @property
    def r(self) -> Rig:
        assert self.rig is not None
        return self.rig

    @property
    def o(self) -> Observer:
        assert self.obs is not None
        return self.obs

    def _on_snapshot(self, s: Snapshot) -> None:
        """The runner's snapshot callback: the console judges, then the observer checks."""
        obs = self.o
        obs.drain()
        self.r.ctl.on_snapshot(s)
        obs.sample(s)
        obs.drain()
        self._check_sample(s)

    def _check_sample(self, s: Snapshot) -> None:
        obs = self.o
        r = self.r
        state = r.state
        if r.connection.valves.commanded[Valve.SUPPLY] and state not in FREEZES:
            obs.fail("supply", f"t={s.t_s}: supply commanded open in {state}")
        if s.stim_on and s.supply_open:
            obs.overlap_samples += 1
            problem = self._overlap_problem()
            if problem:
                obs.fail("stim", f"t={s.t_s}: stim on and supply open, {problem}")
        if obs.locked and r.proc.withdraw_safe:
            obs.fail(
                "sr12",
                f"t={s.t_s}: supply reported open in this procedure (in {state}) "
                "but withdraw_safe is true",
            )

    def _overlap_problem(self) -> str:
        r = self.r
        if not self.stuck_supply:
            return "no supply valve stuck open: the device interlock or stop-first order failed"
        problems = []
        if not r.ctl.alarms.is_active("ALM_STIM_DURING_FREEZE"):
            problems.append("ALM_STIM_DURING_FREEZE not active")
        if r.state in FREEZES:
            problems.append(f"the procedure is still in {r.state}")
        if r.connection.valves.commanded[Valve.SUPPLY]:
            problems.append("the supply is still commanded open")
        return "; ".join(problems)

    def _run(self, seconds: float) -> None:
        """Let up to `seconds` pass, within the example's budget (none left: nothing)."""
        seconds = max(0.0, min(seconds, self.budget_s))
        self.budget_s -= seconds
        self.r.run(seconds)

    def _run_until_change(self, max_s: float, goal: Callable[[], bool] = lambda: False) -> None:
        """Step until the state changes or `goal()`, within `max_s` and the budget."""
        r = self.r
        start = r.state
        end = r.runner.now + min(max_s, self.budget_s)
        while r.state == start and not goal() and r.runner.now < end - 1e-9:
            r.step()
            self.budget_s -= r.runner.dt_s

    def _act(self, action: str, **params: Any) -> tuple[bool, str]:
        result = self.r.act(action, **params)
        self.o.drain()
        return result

    # --- setup -----------------------------------------------------------------------------

    @initialize(
        cycles=st.sampled_from([1, 1, 2, 3]),
        gas=st.sampled_from(["N2O", "CO2"]),
        seed=st.integers(0, 3),
        long_ok=st.sampled_from([True] + [False] * (LONG_WAIT_ONE_IN - 1)),
        prelude=st.sampled_from(PRELUDES),
        fault=st.one_of(st.none(), DEVICE_FAULT_SPECS, LINK_FAULT_SPECS),
    )
    def start(
        self,
        cycles: int,
        gas: str,
        seed: int,
        long_ok: bool,
        prelude: str,
        fault: str | None,
    ) -> None:
        """A fresh console and simulator; the scripted operator may take it some way first,
        and a fault may strike there."""
        self.rig = rig = Rig(overrides={**FAST, "procedure.cycles": cycles}, gas=gas, seed=seed)
        p, i = rig.config.procedure, rig.config.interlocks
        self.obs = Observer(
            rig,
            factor=max(SR12_RELEASE_FACTOR, p.release_factor),
            hold_s=max(SR12_RELEASE_HOLD_S, i.release_hold_s),
            release_tip_c=max(SR12_RELEASE_TIP_C, i.release_tip_c),
            timed_s=max(SR13_TIMED_THAW_S, i.timed_thaw_s),
        )
        rig.runner.on_snapshot = self._on_snapshot
        self.long_ok = long_ok
        if prelude != "none":
            self.operator_drives_to(prelude)
        if fault is not None:
            self._inject(fault)

    # --- time ------------------------------------------------------------------------------

    @rule(seconds=SECONDS, declare=st.booleans(), confirm=st.booleans())
    def let_time_pass(self, seconds: float, declare: bool, confirm: bool) -> None:
        """Time passes (a short or a long while); in a long-wait example, a long wait once."""
        if self._long_wait_due():
            self._long_wait(declare, confirm)
        else:
            self._run(seconds)

    @rule()
    def one_control_step(self) -> None:
        """One turn of the control loop (10 ms)."""
        if self.budget_s > 0:
            self.r.step()
            self.budget_s -= self.r.runner.dt_s

    def _long_wait_due(self) -> bool:
        return self.long_ok and not self.long_used and self.rig is not None and self.r.proc.locked

    def _long_wait(self, declare: bool, confirm: bool) -> None:
        """SR-13's 420 s, SR-14's 300 s and "no timeout releases the lock": a long wait while
        locked, perhaps after declaring the thermistor suspect, perhaps confirming after."""
        self.long_used = True
        _note("long wait while locked")
        if declare:
            self._act("declare_thermistor_suspect")
        self.r.run(LONG_WAIT_S)
        if confirm:
            self._act("confirm_timed_thaw")

    def _nominal_move(self, goal: Callable[[], bool] = lambda: False) -> None:
        """One move of the scripted operator of `console.simulation`, from wherever we are."""
        r = self.r
        state = r.state
        if state in ("ready", "complete", *ENDS):
            for a in r.ctl.alarms.active():  # the operator acknowledges what is shown
                if not a.acknowledged:
                    self._act("ack_alarm", alarm=a.alarm)
        if state == "ready":
            self._act("arm", checklist=CLEAR)
        elif state == "armed":
            self._act("stim_configure", preset="motor")
            self._act("stim_start")
        elif state == "localize" and not r.proc.localized:
            self._run_until_change(0.3, goal)
            if not goal() and r.state == "localize":
                self._act("confirm_localization")
        elif state == "localize":
            if not self._act("start_freeze")[0]:
                self._act("abort")
        elif (state == "complete" or state in ENDS) and not r.proc.locked:
            self._act("request_withdraw")
        else:
            self._run_until_change(12.0, goal)

    @rule()
    def operator_does_the_next_thing(self) -> None:
        """The scripted operator's next move (arm, localize, freeze, withdraw; acknowledge)."""
        self._nominal_move()

    @rule(goal=st.sampled_from(DRIVE_TARGETS))
    def operator_drives_to(self, goal: str) -> None:
        """The scripted operator until `goal`, so that every state is reached in a few steps."""
        r = self.r
        finished = len(r.of("procedure_finished"))
        reached: Callable[[], bool] = {
            "stimulating": lambda: (
                r.state == "localize"
                and r.connection.last is not None
                and r.connection.last.stim_on
            ),
            "localized": lambda: r.state == "localize" and r.proc.localized,
            "freezing": lambda: r.state in FREEZES and r.proc.locked,
            "thawing": lambda: r.state in THAWS,
            "stopped": lambda: r.state in ("withdraw_locked", "complete", *ENDS),
            "finished": lambda: len(r.of("procedure_finished")) > finished,
        }[goal]
        for _ in range(16):
            if reached() or self.budget_s <= 0:
                return
            self._nominal_move(reached)

    # --- operator actions ------------------------------------------------------------------

    @rule(params=arm_params())
    def arm(self, params: dict[str, Any]) -> None:
        self._act("arm", **params)

    @rule(params=STIM_PARAMS)
    def stim_configure(self, params: dict[str, Any]) -> None:
        ok, _ = self._act("stim_configure", **params)
        if ok and "current_ma" in params:
            c = params["current_ma"]  # SR-16: refused out of range or off the grid, never rounded
            assert 0.0 <= c <= 5.0 and abs(c * 100 - round(c * 100)) < 1e-6, params
            assert 50 <= params["pulse_us"] <= 1000 and 1 <= params["rate_hz"] <= 100, params

    @rule(
        action=st.sampled_from(
            [
                "stim_start",
                "stim_stop",
                "confirm_localization",
                "start_freeze",
                "request_withdraw",
                "declare_thermistor_suspect",
                "confirm_timed_thaw",
            ]
        )
    )
    def simple_action(self, action: str) -> None:
        self._act(action)

    @rule(how=st.sampled_from(["abort", "abort", "estop"]))
    def stop(self, how: str) -> None:
        """SR-13, SR-20: an accepted abort or estop takes the safe state in the same step."""
        if how == "abort":
            ok, _ = self._act("abort")
            if ok:
                assert self.r.connection.valves.commanded == SAFE_OPEN
            return
        r = self.r
        link_open = r.connection.link.state == "open"
        ok, why = r.ctl.act("estop", {})
        out = r.ctl.take_output()
        r.runner.write(out)
        self.o.drain()
        assert ok, why
        assert r.state == "estop"
        assert r.connection.valves.commanded == SAFE_OPEN
        assert r.ctl.alarms.is_active("ALM_ESTOP")
        if link_open:
            sent = [type(f.message) for f in StreamDecoder().feed(out)]
            assert EmergencyStop in sent, sent

    @rule(data=st.data(), which=st.sampled_from(["active", "any", "bogus"]))
    def ack_alarm(self, data: st.DataObject, which: str) -> None:
        active = [a.alarm for a in self.r.ctl.alarms.active()]
        if which == "active" and active:
            alarm = data.draw(st.sampled_from(active), label="alarm")
        elif which == "bogus":
            alarm = data.draw(st.sampled_from(["ALM_NOPE", "", "alm_estop", "ALM_ESTOP "]))
        else:
            alarm = data.draw(st.sampled_from(ALARM_IDS), label="alarm")
        self._act("ack_alarm", alarm=alarm)

    @rule(duration_s=SILENCE_S)
    def silence_alarms(self, duration_s: float) -> None:
        self._act("silence_alarms", duration_s=duration_s)

    @rule(
        action=st.sampled_from([*ACTIONS, "open_supply", ""]),
        junk=st.sampled_from([{"force": True}, {"valve": "supply"}, {"duration_s": "10"}]),
    )
    def action_with_bad_params(self, action: str, junk: dict[str, Any]) -> None:
        """SR-30: unknown keys or actions are refused and change nothing."""
        r = self.r
        state, commanded = r.state, dict(r.connection.valves.commanded)
        ok, _ = self._act(action, **junk)
        assert not ok
        assert (r.state, r.connection.valves.commanded) == (state, commanded)

    # --- faults and bad input --------------------------------------------------------------

    @rule(spec=DEVICE_FAULT_SPECS)
    def inject_device_fault(self, spec: str) -> None:
        """A physical, sensor or firmware fault of the simulator, from now on."""
        self._inject(spec)

    @rule(spec=LINK_FAULT_SPECS)
    def inject_link_fault(self, spec: str) -> None:
        """A fault of the serial line (drop, corruption, garbage, replay...), for a short while."""
        self._inject(spec)

    def _inject(self, spec: str) -> None:
        if spec.startswith("valve_stuck_open:valve=supply"):
            self.stuck_supply = True
        self.r.device.inject_now(spec)

    @rule(data=st.binary(min_size=1, max_size=300))
    def feed_garbage(self, data: bytes) -> None:
        self._feed_bad(data, forged=False)

    @rule(
        kind=st.sampled_from(FORGERIES),
        valves=st.integers(0, 0x77),
        stim=st.integers(0, 3),
        k=st.integers(0, 1000),
        ack=st.booleans(),
    )
    def feed_forged_frame(self, kind: str, valves: int, stim: int, k: int, ack: bool) -> None:
        """Frames that look real (telemetry with the supply and stimulation on, an ack) but fail."""
        r = self.r
        decoder = r.connection.link.decoder
        nonce = decoder.expected_nonce or 0
        seq = ((decoder.last_seq or 0) + 1) & 0xFFFFFFFF
        message: Message
        if ack:
            message = Ack(seq, int(MsgType.VALVE), 0)
        else:
            last = r.connection.last
            device_ms = (last.device_ms + 10) if last is not None else 10
            message = Telemetry(device_ms, 30000, 3000, 30000, valves, stim, 0, 0, 100, 0, 0, 0, 0)
        if kind == "nonce" and decoder.expected_nonce is None:
            kind = "bitflip"  # without a session every intact frame is decoded
        self._feed_bad(forge(kind, message, seq, nonce, k), forged=True)

    def _feed_bad(self, data: bytes, *, forged: bool) -> None:
        """SR-23: bytes that fail decoding: no exception, nothing decoded, nothing energised."""
        r = self.r
        before = dict(r.connection.valves.commanded)
        bad_before = r.connection.link.decoder.bad
        snaps, notices, out = r.connection.feed(data, r.runner.now)
        ctl_out = r.ctl.take_output()
        problems = []
        if snaps:
            problems.append(f"decoded {len(snaps)} snapshot(s)")
        if notices:
            problems.append(f"notices {notices!r}")
        if energising_in(out + ctl_out):
            problems.append(f"energising output {energising_in(out + ctl_out)}")
        if r.connection.valves.commanded != before:
            problems.append(f"commanded {before} -> {r.connection.valves.commanded}")
        if forged and r.connection.link.decoder.bad <= bad_before:
            problems.append("the forged frame was not counted as bad")
        if problems and self.garbage_problem is None:
            self.garbage_problem = f"{data!r}: " + "; ".join(problems)
        # Whatever came of it goes where the runner would send it.
        for snap in snaps:
            self._on_snapshot(snap)
        for notice in notices:
            r.ctl.on_notice(notice, r.runner.now)
        r.runner.write(out + ctl_out + r.ctl.take_output())
        self.o.drain()

    # --- invariants (after every step; 1-3 on every sample as well) -------------------------

    def _failures(self, key: str) -> str:
        if self.obs is None:
            return ""
        self.o.drain()
        found = self.o.failures(key)
        return "\n".join(found[:5])

    @invariant()
    def inv_supply_open_only_in_a_freeze(self) -> None:
        """SR-13, SR-20, valve table of interfaces.md: the supply commanded open only in a
        freeze (every stop, thaw and other state commands it closed in the same step)."""
        if self.rig is None:
            return
        found = self._failures("supply")
        assert not found, found
        state = self.r.state
        assert not self.r.connection.valves.commanded[Valve.SUPPLY] or state in FREEZES, state

    @invariant()
    def inv_stim_and_freeze_exclusive(self) -> None:
        """SR-15: stimulation reported on with the supply reported open never goes unanswered.

        The strongest true statement. The device refuses a supply open while stimulation is
        on and a stimulation start while the supply is open, and the console stops
        stimulation before it opens the supply; `stim_stuck_on` only keeps an output on that
        was on, so it cannot make the overlap by itself. Only a supply valve stuck open while
        stimulating can: without one, no sample ever shows both; with one, every sample that
        shows both finds ALM_STIM_DURING_FREEZE active, no freeze state and the supply
        commanded closed (the overlap itself may last: a stuck valve and a stuck output
        ignore every command).
        """
        if self.rig is None:
            return
        found = self._failures("stim")
        assert not found, found
        last = self.r.connection.last
        if last is not None and last.stim_on and last.supply_open:
            problem = self._overlap_problem()
            assert not problem, problem

    @invariant()
    def inv_withdraw_lock(self) -> None:
        """SR-12, SR-13: withdraw_safe false from the first reported supply open of a
        procedure until the final (or stop) thaw lasted thaw_s, the tip read >= +2 C for 1 s
        and 2.5 x the tip's time to +2 C passed since the close; or, with the thermistor
        not trusted, 420 s since the close and confirm_timed_thaw. Recomputed from the
        samples; no timeout releases it."""
        if self.rig is None:
            return
        found = self._failures("sr12")
        assert not found, found
        if self.o.locked:
            assert not self.r.proc.withdraw_safe

    @invariant()
    def inv_freeze_to_ready_passes_a_thaw(self) -> None:
        """SR-12, SR-13, SR-20: freeze -> ready only through a thaw or a stop, and a release."""
        found = self._failures("path")
        assert not found, found

    @invariant()
    def inv_latched_alarm_needs_ack(self) -> None:
        """SR-21: a latching (high) alarm is cleared only after its acknowledgement."""
        found = self._failures("sr21")
        assert not found, found
        if self.rig is None:
            return
        for a in self.r.ctl.alarms.active():
            assert not ALARMS[a.alarm].latches or a.priority == Priority.HIGH

    @invariant()
    def inv_bad_frames_energise_nothing(self) -> None:
        """SR-23: a frame that fails decoding is dropped: nothing decoded, nothing energised,
        the commanded valves unchanged, no exception."""
        assert self.garbage_problem is None, self.garbage_problem

    def teardown(self) -> None:
        if self.obs is None:
            return
        obs = self.o
        obs.drain()
        for state in (
            "leak_test",
            "localize",
            "freeze_1",
            "freeze_2",
            "withdraw_locked",
            "complete",
            "aborted",
            "fault",
            "estop",
        ):
            if state in obs.states:
                _note(f"reached {state}")
        for how in set(obs.releases):
            _note(f"released ({how})")
        if obs.overlap_samples:
            _note("stim on with supply open (stuck valve)")
        raised = {e["alarm"] for e in self.r.of("alarm_raised")}
        _note(f"alarms raised: {len(raised)}")


ConsoleMachine.TestCase.settings = settings(
    max_examples=300,
    stateful_step_count=20,
    deadline=None,
    # The same 300 examples on every run: a CI result is reproducible here. Run with
    # --hypothesis-seed=random (or drop this) to explore new ones while developing.
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
TestConsoleMachine = ConsoleMachine.TestCase


# --- what the machine found, replayed on every run -------------------------------------------
#
# `derandomize` runs the same 300 examples every time, and a stateful test has no `@example`:
# the sequences the machine found (and the long waits it reaches only rarely) are replayed
# here step by step, with every invariant after each step, exactly as hypothesis runs them.

Step = tuple[str, dict[str, Any]]
START: dict[str, Any] = {
    "cycles": 1,
    "gas": "N2O",
    "seed": 0,
    "long_ok": False,
    "prelude": "none",
    "fault": None,
}


def replay(steps: list[Step]) -> ConsoleMachine:
    """Run `steps` (rule name, arguments) on a fresh machine, the invariants after each."""
    machine = ConsoleMachine()
    invariants = [getattr(machine, name) for name in dir(machine) if name.startswith("inv_")]
    for name, arguments in steps:
        getattr(machine, name)(**arguments)
        for check in invariants:
            check()
    machine.teardown()
    return machine


@pytest.mark.parametrize(
    "before",
    [
        [],  # before the first handshake
        [  # while reconnecting after a link loss
            ("inject_link_fault", {"spec": "link_drop:duration_s=3"}),
            ("let_time_pass", {"seconds": 1.5, "declare": False, "confirm": False}),
        ],
    ],
    ids=["before_the_handshake", "while_reconnecting"],
)
def test_stim_stop_without_a_device_session_does_not_raise(before: list[Step]) -> None:
    """SR-23 ("none crashes the daemon"), SR-26 (de-energising commands always go): the
    operator's stim_stop with no device session is accepted or refused, never an exception."""
    replay([("start", START), *before, ("simple_action", {"action": "stim_stop"})])


def test_a_supply_stuck_open_in_the_leak_test_locks_the_probe() -> None:
    """SR-12: the first reported supply open of a procedure locks, in whatever state."""
    m = replay(
        [
            ("start", START),
            ("inject_device_fault", {"spec": "valve_stuck_open:valve=supply"}),
            ("operator_drives_to", {"goal": "localized"}),
        ]
    )
    assert m.o.locked and m.r.proc.locked and not m.r.proc.withdraw_safe


@pytest.mark.parametrize(
    ("rule_name", "spec"),
    [
        ("inject_link_fault", "link_drop:duration_s=1"),
        ("inject_device_fault", "pressure_sensor_fail:sensor=exhaust,mode=rail_low"),
    ],
)
def test_a_stop_thaws_for_thaw_s_from_the_stop_itself(
    rule_name: str, spec: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SR-12, SR-13: a stop decided on a link notice or an interlock trip starts its thaw at
    that moment, not at the last sample before it (once 0.26 s and 0.01 s early). The ice of
    even a short freeze takes some 30 s to melt: this replay gets the time it needs."""
    monkeypatch.setattr(sys.modules[__name__], "BUDGET_S", 90.0)
    m = replay(
        [
            ("start", {**START, "prelude": "stopped"}),
            ("let_time_pass", {"seconds": 0.3, "declare": False, "confirm": False}),
            (rule_name, {"spec": spec}),
            ("operator_drives_to", {"goal": "finished"}),
        ]
    )
    stop = next(e["t_s"] for e in m.r.of("state_changed") if e["to"] == "fault")
    release = next(e["t_s"] for e in m.r.of("withdraw_safe") if e["safe"] and e["t_s"] > stop)
    assert release - stop >= m.r.config.procedure.thaw_s - EPS


def test_the_timed_path_needs_420_s_and_the_confirmation() -> None:
    """SR-13: with the thermistor declared suspect, confirm_timed_thaw is refused before
    420 s since the supply closed; after them it releases the lock."""
    m = replay(
        [
            ("start", {**START, "prelude": "freezing", "long_ok": True}),
            ("stop", {"how": "estop"}),
            ("simple_action", {"action": "declare_thermistor_suspect"}),
            ("simple_action", {"action": "confirm_timed_thaw"}),
            ("let_time_pass", {"seconds": 1.0, "declare": False, "confirm": True}),
        ]
    )
    confirms = [
        e["accepted"] for e in m.r.of("operator_action") if e["action"] == "confirm_timed_thaw"
    ]
    assert confirms == [False, True]
    assert m.o.releases == ["timed"] and not m.r.proc.locked


def test_no_timeout_releases_a_probe_whose_tip_never_warms() -> None:
    """SR-12, SR-14: a thermistor stuck cold keeps the lock for 420 s and more; ALM_THAW_SLOW
    at 300 s; a withdraw request is refused with ALM_PROBE_FROZEN."""
    m = replay(
        [
            ("start", {**START, "prelude": "thawing", "long_ok": True}),
            ("inject_device_fault", {"spec": "thermistor_stuck"}),  # stuck cold
            ("let_time_pass", {"seconds": 1.0, "declare": False, "confirm": False}),
            ("simple_action", {"action": "request_withdraw"}),
        ]
    )
    assert m.long_used and m.r.proc.locked and not m.r.proc.withdraw_safe
    raised = m.r.alarms_raised()
    assert "ALM_THAW_SLOW" in raised and "ALM_PROBE_FROZEN" in raised, raised


@pytest.mark.parametrize("stuck_output", [False, True])
def test_stimulation_with_a_supply_stuck_open_is_answered(stuck_output: bool) -> None:
    """SR-15: the only way to stimulation with the supply open is a valve stuck open while
    stimulating; every sample of it finds ALM_STIM_DURING_FREEZE active, no freeze and the
    supply commanded closed, even when the output ignores the stop as well."""
    m = replay(
        [
            ("start", {**START, "prelude": "stimulating"}),
            *([("inject_device_fault", {"spec": "stim_stuck_on"})] if stuck_output else []),
            ("inject_device_fault", {"spec": "valve_stuck_open:valve=supply"}),
            ("let_time_pass", {"seconds": 2.0, "declare": False, "confirm": False}),
        ]
    )
    assert m.o.overlap_samples > 0
    assert "ALM_STIM_DURING_FREEZE" in m.r.alarms_raised()

"""The procedure: when gas flows, and when the probe may move. A `transitions` machine, sans-I/O.

Inputs: snapshots (every sample), operator actions, link notices, interlock
trips, each with the time `t` (seconds, the daemon's monotonic or virtual
clock). Outputs: calls on an `Actuators` object (which turns intents into
commands and writes them at once) and events on an `emit` sink. The machine
never reads a clock, sleeps or touches a port.

Rules this module owns (`interfaces.md`, "States, valves and operator
actions"; `safety-requirements.md`):
- the flat public states and the valve positions of each;
- SR-12: `withdraw_safe` false from the first reported supply open until a
  measured thaw releases it; no timeout releases it by itself;
- SR-13: every stop (abort, emergency stop, fault) takes the safe state first,
  then a locked thaw released only by SR-12, or by the timed path when the
  thermistor is not to be trusted;
- SR-14: a thaw too slow raises `ALM_THAW_SLOW`; the lock stays;
- SR-17: parameters within the profile; SR-19: the checklist; SR-20: the
  emergency stop from any state, safe state in the same control step;
- SR-24: the leak test once per device session and after any reconnect.
The per-sample work is plain Python; a `transitions` trigger fires only when
something changes (DESIGN.md: a trigger costs 6-13 us).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from pydantic import ValidationError
from transitions import EventData, Machine

from console.actions import ArmParams, StimConfigureParams
from console.alarms import AlarmManager
from console.config import GasProfile, InterlockLimits, ProcedureParams, issues_from
from console.interlocks import Hold
from drivers.snapshot import Snapshot
from drivers.stimulator import StimSettings, StimulationError, Stimulator

FREEZES = ("freeze_1", "freeze_2", "freeze_3")
THAWS = ("thaw_1", "thaw_2", "thaw_3")
ENDS = ("aborted", "fault", "estop")
STATES = (
    "connecting",
    "self_test",
    "ready",
    "leak_test",
    "armed",
    "localize",
    "pressurize",
    *FREEZES,
    *THAWS,
    "withdraw_locked",
    "complete",
    *ENDS,
)
#: States of a procedure that has started (arm accepted) and not yet ended.
RUNNING = ("leak_test", "armed", "localize", "pressurize", *FREEZES, *THAWS, "withdraw_locked")
OUTCOME_OF_END = {"aborted": "aborted", "fault": "faulted", "estop": "estopped"}

Emit = Callable[..., None]


class Actuators(Protocol):
    """What the machine may ask of the device; the controller writes the commands at once."""

    def safe_state(self, reason: str, alarm: str | None) -> None: ...

    def valves(self, *, supply: bool, inlet: bool, vent: bool, max_open_ms: int = 0) -> None: ...

    def stim_configure(self, settings: StimSettings) -> None: ...

    def stim_start(self) -> None: ...

    def stim_stop(self) -> None: ...


class Procedure:
    """One console's procedure machine; `serve` runs many procedures on one instance."""

    state: str
    trigger: Callable[..., bool]  # added by transitions.Machine

    def __init__(
        self,
        params: ProcedureParams,
        limits: InterlockLimits,
        gas: GasProfile,
        stimulator: Stimulator,
        alarms: AlarmManager,
        actuators: Actuators,
        emit: Emit,
    ) -> None:
        self.base_params = params
        self.params = params
        self.limits = limits
        self.gas = gas
        self.stimulator = stimulator
        self.alarms = alarms
        self.act_on = actuators
        self.emit = emit
        self.t = 0.0
        self.leak_test_due = True
        self.identity_ok = False
        self.recovering = False  # SR-22: started locked after an interrupted session
        self._reset_procedure()
        self.machine = Machine(
            model=self,
            states=list(STATES),
            initial="connecting",
            auto_transitions=False,
            queued=True,
            send_event=True,
            after_state_change="_state_changed",
            finalize_event="_finalized",
        )
        m = self.machine
        m.add_transition("identified", ["connecting", "self_test"], "self_test")
        m.add_transition("self_test_passed", "self_test", "ready")
        m.add_transition("disconnect", ["self_test", "ready", "connecting"], "connecting")
        m.add_transition("arm", "ready", "leak_test", conditions="_leak_due")
        m.add_transition("arm", "ready", "armed", unless="_leak_due")
        m.add_transition("leak_passed", "leak_test", "armed")
        m.add_transition("leak_failed", "leak_test", "ready")
        m.add_transition("stim_started", ["armed", "localize"], "localize")
        m.add_transition("start_freeze", "localize", "pressurize")
        for k, (freeze, thaw) in enumerate(zip(FREEZES, THAWS, strict=True), start=1):
            m.add_transition(
                "supply_ready", "pressurize", freeze, conditions=lambda e, k=k: self.cycle == k
            )
            m.add_transition("freeze_done", freeze, thaw)
            m.add_transition(
                "thaw_done", thaw, "pressurize", conditions=lambda e, k=k: k < self.cycles
            )
            m.add_transition("thaw_done", thaw, "complete", conditions=["_final_k", "_released"])
            m.add_transition(
                "thaw_done", thaw, "withdraw_locked", conditions="_final_k", unless="_released"
            )
        m.add_transition("release", "withdraw_locked", "complete")
        m.add_transition("withdrawn", ["complete", *ENDS], "ready")
        m.add_transition("abort", list(RUNNING), "aborted")
        m.add_transition("fail", [*RUNNING, "complete"], "fault")
        m.add_transition("estop", list(STATES), "estop")

    # --- procedure bookkeeping ---------------------------------------------------------------

    def _reset_procedure(self) -> None:
        self.cycle = 1
        self.cycles = self.base_params.cycles
        self.params = self.base_params
        self.started = False
        self.finished: tuple[str, str] | None = None
        self.freeze_requested = False
        self.localized = False
        self.threshold_ma: float | None = None
        self.stim_settings: StimSettings | None = None
        self.stim_preset: str | None = None
        self.locked = False  # SR-12: since the first reported supply open of this procedure
        self.withdraw_safe = True
        self.state_since = self.t
        self.freeze_open_t: float | None = None
        self.thaw_start_t: float | None = None
        self.supply_closed_t: float | None = None
        self.tip_first_release_t: float | None = None
        self.tip_hold = Hold()
        self.window_hold = Hold()
        self.suspect = False  # SR-13: thermistor declared suspect
        self.timed_confirmed = False
        self.thaw_slow_raised = False
        self.supply_low_seen = False
        self.end_reason = ""
        self.leak_phase = ""
        self.leak_start: tuple[float, float] | None = None
        self.leak_samples: list[float] = []

    @property
    def in_procedure(self) -> bool:
        return self.state in RUNNING or self.state in ENDS or self.state == "complete"

    def _leak_due(self, event: EventData) -> bool:
        return self.leak_test_due

    def _final_k(self, event: EventData) -> bool:
        return self.state == THAWS[self.cycles - 1]

    def _released(self, event: EventData) -> bool:
        return not self.locked or self._release_ready(self.t)

    def _finalized(self, event: EventData) -> None:
        """Every attempted trigger that changed nothing is recorded, with the state it met."""
        if not event.result:
            name = event.event.name if event.event is not None else "?"
            self.emit("trigger_refused", trigger=name, state=self.state)

    def _state_changed(self, event: EventData) -> None:
        assert event.transition is not None and event.transition.dest is not None
        src, dst = event.transition.source, event.transition.dest
        self.state_since = self.t
        self.emit("state_changed", **{"from": src, "to": dst})
        if dst == "pressurize" and src in THAWS:
            self.cycle += 1
        self._enter(dst, event)

    # --- what each state commands (interfaces.md, the valve table) ------------------------------

    def _enter(self, state: str, event: EventData) -> None:
        act = self.act_on
        if state == "complete" and self.locked:
            self._unlock()  # reached only through SR-12's release (`_released`)
        if state in ("ready", "armed", "complete", "withdraw_locked", "connecting", "self_test"):
            return  # already safe: every path here came through a safe state
        if state == "leak_test":
            self.leak_phase = "fill"
            self.leak_start = None
            act.valves(supply=False, inlet=True, vent=False)
        elif state == "pressurize":
            self.window_hold.reset()
            act.stim_stop()  # SR-15: stimulation only in localize
            act.valves(supply=False, inlet=True, vent=False)
        elif state in FREEZES:
            act.stim_stop()  # SR-15: off before the gas; the device refuses an open otherwise
            self.freeze_open_t = None
            cap_ms = round((self.params.freeze_s + 2.0) * 1000)  # SR-25
            act.valves(supply=True, inlet=True, vent=False, max_open_ms=cap_ms)
        elif state in THAWS:
            self.thaw_start_t = self.t
            if state == THAWS[self.cycles - 1]:
                self._restart_tip_tracking()
                act.safe_state("final_thaw", None)
            else:
                act.valves(supply=False, inlet=True, vent=False)
        elif state in ENDS:
            # The safe state was commanded before the transition (`stop`); the thaw starts now.
            self.thaw_start_t = self.t

    # --- inputs: time and snapshots ------------------------------------------------------------

    def on_snapshot(self, s: Snapshot) -> None:
        """Per-sample work: plain checks; a trigger only when something changes."""
        self.t = t = s.t_s
        state = self.state
        if s.supply_open and self.started and not self.locked:
            self._lock()  # SR-12: from the first reported supply open of a procedure, any state
        if s.supply_open:
            if self.supply_closed_t is not None or self.tip_first_release_t is not None:
                self._restart_tip_tracking()
            self.supply_closed_t = None
        elif self.supply_closed_t is None:
            self.supply_closed_t = t  # SR-12 counts from the reported close
        if self.locked:
            self._track_thaw(s, t)
        if state in FREEZES:
            if self.freeze_open_t is None:
                if s.supply_open:
                    self.freeze_open_t = t  # freeze_s counts from the reported open
                    self._lock()
            elif t - self.freeze_open_t >= self.params.freeze_s - 1e-9:
                self.trigger("freeze_done")
        elif state == "pressurize":
            g = self.gas
            # SR-04, and SR-15's "verifies": the freeze (and its supply open) waits for the
            # device to report stimulation off, not only for the stop to have been sent.
            in_window = g.supply_min_psi <= s.supply_psi <= g.supply_max_psi
            self.window_hold.update(in_window and not s.stim_on, t)
            if self.window_hold.held(t, self.limits.supply_window_hold_s):
                self.trigger("supply_ready")
            elif t - self.state_since >= self.limits.pressurize_timeout_s:
                reason = "supply_low_timeout" if self.supply_low_seen else "pressurize_timeout"
                self.stop("fail", reason, None)
        elif state in THAWS:
            if t - (self.thaw_start_t or t) >= self.params.thaw_s - 1e-9:
                self.trigger("thaw_done")
        elif state == "leak_test":
            self._leak_step(s, t)
        if (
            self.locked
            and (state in ("withdraw_locked", *ENDS) or self.recovering)
            and self._release_ready(t)
        ):
            self._unlock()
            if self.state == "withdraw_locked":
                self.trigger("release")

    def _restart_tip_tracking(self) -> None:
        self.tip_first_release_t = None
        self.tip_hold.reset()

    def _track_thaw(self, s: Snapshot, t: float) -> None:
        """SR-12 and SR-14 bookkeeping in a releasing thaw, once the supply reported closed."""
        closed = self.supply_closed_t
        releasing = self.recovering or self.state in (
            THAWS[self.cycles - 1],
            "withdraw_locked",
            *ENDS,
        )
        if closed is None or not releasing:
            return
        above = s.tip_c >= self.limits.release_tip_c  # False for NaN (a rail): never releases
        if above and self.tip_first_release_t is None:
            self.tip_first_release_t = t
        self.tip_hold.update(above, t)
        if (
            not self.thaw_slow_raised
            and not self.timed_path()  # SR-10: suspended while the thermistor is not trusted
            and self.tip_first_release_t is None
            and t - closed >= self.limits.thaw_slow_s
        ):
            self.thaw_slow_raised = True  # SR-14: the lock stays; the timed path is offered
            self.alarms.raise_alarm(
                "ALM_THAW_SLOW",
                t,
                value=round(s.tip_c, 2),
                limit=self.limits.release_tip_c,
                device_ms=s.device_ms,
                first_over_device_ms=s.device_ms,
            )

    def timed_path(self) -> bool:
        """SR-13: the thermistor is not trusted; release by time and confirmation only."""
        return self.suspect or self.alarms.is_active("ALM_TEMP_SENSOR")

    def _release_ready(self, t: float) -> bool:
        """SR-12's three conditions (or SR-13's timed path); never a timeout alone."""
        closed = self.supply_closed_t
        if closed is None or self.thaw_start_t is None:
            return False
        if self.timed_path():
            return self.timed_confirmed and t - closed >= self.limits.timed_thaw_s - 1e-9
        if t - self.thaw_start_t < self.params.thaw_s - 1e-9:
            return False
        if not self.tip_hold.held(t, self.limits.release_hold_s):
            return False
        first = self.tip_first_release_t
        assert first is not None
        return t - closed >= self.params.release_factor * (first - closed) - 1e-9

    def _lock(self) -> None:
        if not self.locked:
            self.locked = True
            self._set_withdraw_safe(False)

    def start_locked(self, reason: str) -> None:
        """SR-22: the last session on this port may have left the probe frozen in tissue.

        Locked from now, released only by a measured thaw (SR-12's three conditions,
        counted from the first sample that reports the supply closed, with `thaw_s`
        from now) or SR-13's timed path. No procedure is armed meanwhile.
        """
        self.recovering = True
        self.thaw_start_t = self.t
        self.supply_closed_t = None
        self._restart_tip_tracking()
        self.emit("locked_start", reason=reason)
        self._lock()

    def _unlock(self) -> None:
        self.recovering = False
        self.locked = False
        self._set_withdraw_safe(True)
        self.alarms.condition_cleared("ALM_PROBE_FROZEN", self.t)

    def _set_withdraw_safe(self, safe: bool) -> None:
        if safe != self.withdraw_safe:
            self.withdraw_safe = safe
            self.emit("withdraw_safe", safe=safe)

    # --- leak test (SR-24) -----------------------------------------------------------------------

    def _leak_step(self, s: Snapshot, t: float) -> None:
        window = self.params.leak_window_s
        if self.leak_phase == "fill":
            if s.supply_psi >= self.gas.supply_min_psi and s.inlet_open and not s.vent_open:
                self.leak_phase = "settle"
                self.leak_start = (t, 0.0)
                self.act_on.valves(supply=False, inlet=False, vent=False)
            elif t - self.state_since >= 10.0:
                self._leak_result(False, None, "the line did not pressurise within 10 s")
        elif self.leak_phase == "settle" and self.leak_start is not None:
            # Wait for the inlet to report closed, then measure from the next sample.
            if not s.inlet_open:
                self.leak_phase = "hold"
                self.leak_start = (t, s.supply_psi)
        elif self.leak_phase == "hold" and self.leak_start is not None:
            t0, p0 = self.leak_start
            if t - t0 >= window - 1e-9:
                decay = p0 - s.supply_psi
                passed = decay <= self.params.leak_max_psi_per_s * window
                self._leak_result(passed, decay, "")

    def _leak_result(self, passed: bool, decay: float | None, why: str) -> None:
        window = self.params.leak_window_s
        self.emit(
            "leak_test",
            passed=passed,
            decay_psi=None if decay is None else round(decay, 3),
            window_s=window,
            **({"reason": why} if why else {}),
        )
        self.act_on.safe_state("leak_test_done", None if passed else "ALM_LEAK")
        if passed:
            self.leak_test_due = False
            self.alarms.condition_cleared("ALM_LEAK", self.t)
            self.trigger("leak_passed")
        else:
            self.alarms.raise_alarm(
                "ALM_LEAK",
                self.t,
                value=None if decay is None else round(decay / window, 3),
                limit=self.params.leak_max_psi_per_s,
            )
            self._finish("faulted", "leak_test_failed")
            self.trigger("leak_failed")

    # --- inputs: the device and the interlocks -----------------------------------------------

    def device_identified(self, accepted: bool) -> None:
        """A (re-)identification: a new device session, so the leak test is due again (SR-24)."""
        self.identity_ok = accepted
        self.leak_test_due = True
        if self.state in ("connecting", "self_test"):
            self.trigger("identified")

    def device_ready(self) -> None:
        """The safe state is verified after the identity (SR-01)."""
        if self.state == "self_test":
            self.trigger("self_test_passed")

    def device_lost(self, reason: str, alarm: str | None) -> None:
        """Link lost or device reset: the procedure takes its fault path, never resumes (SR-03)."""
        if self.state in RUNNING or self.state == "complete":
            self.stop("fail", reason, alarm)
        elif self.state in ("self_test", "ready", "connecting"):
            self.trigger("disconnect")

    def supply_low(self) -> None:
        """SR-06: this freeze ends early into its thaw; the next waits in `pressurize`."""
        self.supply_low_seen = True
        if self.state in FREEZES:
            self.trigger("freeze_done")

    def stop(self, how: str, reason: str, alarm: str | None) -> None:
        """abort, estop or fail: the safe state FIRST, in this control step, then the transition."""
        self.act_on.safe_state(reason, alarm)
        if how in self.machine.get_triggers(self.state):
            self.end_reason = reason
            self.trigger(how)

    # --- operator actions -----------------------------------------------------------------

    def act(self, action: str, params: Any, t: float) -> tuple[bool, str]:
        """Apply a validated operator action; every one is recorded with its outcome."""
        self.t = max(self.t, t)
        handler = getattr(self, f"_act_{action}")
        accepted, reason = handler(params)
        self.emit("operator_action", action=action, accepted=accepted, reason=reason)
        return accepted, reason

    def _not_here(self, action: str) -> tuple[bool, str]:
        return False, f"{action} is not allowed in state {self.state}"

    def _act_arm(self, p: ArmParams) -> tuple[bool, str]:
        if self.state != "ready":
            return self._not_here("arm")
        problems = p.checklist.problems()
        if problems:
            return False, "checklist: " + "; ".join(problems)
        if self.locked:  # SR-22: a locked start; a new procedure waits for the release
            self.alarms.raise_alarm("ALM_PROBE_FROZEN", self.t)
            return False, "the probe is still locked from an interrupted session: wait for the thaw"
        if not self.identity_ok:
            self.alarms.raise_alarm("ALM_IDENTITY", self.t)
            return False, "the device was refused at identification (ALM_IDENTITY)"
        blocking = self.alarms.blocking_freeze()
        if blocking:
            return False, f"alarms block a new procedure: {', '.join(blocking)} (acknowledge them)"
        update = {
            k: v
            for k, v in (("cycles", p.cycles), ("freeze_s", p.freeze_s), ("thaw_s", p.thaw_s))
            if v is not None
        }
        try:
            params = ProcedureParams.model_validate({**self.base_params.model_dump(), **update})
        except ValidationError as exc:
            return False, "; ".join("procedure." + i.message for i in issues_from(exc))
        self._reset_procedure()
        self.params = params
        self.cycles = params.cycles
        self.started = True
        self.emit("checklist_recorded", **p.checklist.model_dump())
        self.emit(
            "procedure_started",
            profile=params.profile,
            cycles=params.cycles,
            freeze_s=params.freeze_s,
            thaw_s=params.thaw_s,
        )
        self.trigger("arm")
        return True, ""

    def _act_stim_configure(self, p: StimConfigureParams) -> tuple[bool, str]:
        if self.state not in ("armed", "localize"):
            return self._not_here("stim_configure")
        try:
            if p.preset is not None:
                settings = self.stimulator.preset(p.preset)
            else:
                assert p.current_ma is not None and p.pulse_us is not None and p.rate_hz is not None
                settings = self.stimulator.check(p.current_ma, p.pulse_us, p.rate_hz)
        except StimulationError as exc:
            return False, str(exc)
        self.stim_settings = settings
        self.stim_preset = p.preset or self.stim_preset
        self.act_on.stim_configure(settings)
        return True, ""

    def _act_stim_start(self, p: object) -> tuple[bool, str]:
        if self.state not in ("armed", "localize"):
            return self._not_here("stim_start")  # SR-15: stimulation only in localize
        if self.stim_settings is None:
            return False, "configure stimulation first (stim_configure)"
        self.localized = False  # stimulating again: localization must be confirmed again
        self.act_on.stim_start()
        self.trigger("stim_started")
        return True, ""

    def _act_stim_stop(self, p: object) -> tuple[bool, str]:
        self.act_on.stim_stop()  # de-energising: always
        return True, ""

    def _act_confirm_localization(self, p: object) -> tuple[bool, str]:
        if self.state != "localize":
            return self._not_here("confirm_localization")
        self.act_on.stim_stop()
        self.localized = True
        self.threshold_ma = self.stim_settings.current_ma if self.stim_settings else None
        self.emit("localized", threshold_ma=self.threshold_ma, preset=self.stim_preset)
        return True, ""

    def _act_start_freeze(self, p: object) -> tuple[bool, str]:
        if self.state != "localize":
            return self._not_here("start_freeze")
        if not self.localized:
            return False, "confirm_localization first"
        if self.freeze_requested:
            return False, "start_freeze is given once per procedure"
        blocking = self.alarms.blocking_freeze()
        if blocking:
            return False, f"alarms block a new freeze: {', '.join(blocking)}"
        self.freeze_requested = True
        self.trigger("start_freeze")
        return True, ""

    def _act_abort(self, p: object) -> tuple[bool, str]:
        if self.state not in RUNNING:
            return self._not_here("abort")
        self.stop("abort", "operator_abort", None)
        return True, ""

    def _act_estop(self, p: object) -> tuple[bool, str]:
        self.stop("estop", "estop", "ALM_ESTOP")  # SR-20: the stop goes out first
        self.alarms.raise_alarm("ALM_ESTOP", self.t)
        return True, ""

    def _act_ack_alarm(self, p: Any) -> tuple[bool, str]:
        return self.alarms.acknowledge(p.alarm, self.t)

    def _act_silence_alarms(self, p: Any) -> tuple[bool, str]:
        return self.alarms.silence(p.duration_s, self.t)

    def _act_request_withdraw(self, p: object) -> tuple[bool, str]:
        if self.locked:
            self.alarms.raise_alarm("ALM_PROBE_FROZEN", self.t)  # SR-12
            return False, "the probe is frozen to the tissue: wait for the thaw (ALM_PROBE_FROZEN)"
        if self.state == "complete" or self.state in ENDS:
            if self.state == "estop":
                self.alarms.condition_cleared("ALM_ESTOP", self.t)  # it still latches until acked
            outcome = "completed" if self.state == "complete" else OUTCOME_OF_END[self.state]
            if self.started:
                self._finish(outcome, self.end_reason or outcome)
            self.trigger("withdrawn")
            return True, ""
        return False, f"nothing to withdraw from in state {self.state}; abort first"

    def _act_declare_thermistor_suspect(self, p: object) -> tuple[bool, str]:
        if not self.locked:
            return False, "the probe is not locked; nothing to time"
        self.suspect = True
        return True, ""

    def _act_confirm_timed_thaw(self, p: object) -> tuple[bool, str]:
        if not (self.locked and self.timed_path()):
            return False, "no timed thaw in progress (declare_thermistor_suspect first)"
        closed = self.supply_closed_t
        waited = 0.0 if closed is None else self.t - closed
        if waited < self.limits.timed_thaw_s - 1e-9:
            left = self.limits.timed_thaw_s - waited
            return (
                False,
                f"timed thaw: {left:.0f} s still to wait "
                f"({self.limits.timed_thaw_s:.0f} s after the supply closed)",
            )
        self.timed_confirmed = True
        if self._release_ready(self.t):
            self._unlock()
            if self.state == "withdraw_locked":
                self.trigger("release")
        return True, ""

    def _finish(self, outcome: str, reason: str) -> None:
        self.finished = (outcome, reason)
        self.emit("procedure_finished", outcome=outcome, reason=reason)
        self.started = False

    def end_now(self, reason: str) -> None:
        """The run ends without the operator (a signal, `--max-virtual-s`): outcome aborted.

        The safe state is commanded first if a procedure is running; the lock stays as
        measured, so the caller can exit 5 when the probe is still frozen.
        """
        if self.state in RUNNING:
            self.stop("abort", reason, None)
        else:
            self.act_on.safe_state(reason, None)
        if self.started or self.state in ENDS or self.state == "complete":
            self._finish("aborted", reason)

"""The console's decision loop: connection + procedure + alarms -> commands and events.

Both runners (real time and virtual time) call the same three methods each
turn: `on_snapshot`, `on_notice`, and `act` for operator actions; then they
write `take_output()` to the port at once. The procedure's intents become
commands here (the `Actuators` of `console.procedure`), in a safe order:
close the supply first, open it last. Events go to one sink, `emit(name,
fields)`, stamped with `t_s`; what records them (file, store, API) is the
runner's business.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

from console.actions import validate_action
from console.alarms import AlarmManager
from console.config import ConsoleConfig
from console.connection import (
    Connection,
    DeviceIdentified,
    DeviceWasReset,
    FastTrip,
    LinkDown,
    LinkUp,
    Notice,
    NotReadyError,
    SafeStateCommanded,
    SafeStateReported,
    SafeStateUnverified,
)
from console.estimates import Estimates
from console.interlocks import Clear, Context, Decision, Interlocks
from console.procedure import FREEZES, RUNNING, Procedure
from drivers.link import Acked, CommandFailed, LinkError, Nacked
from drivers.snapshot import Snapshot
from drivers.stimulator import StimSettings, Stimulator
from protocols import (
    DeviceEvent,
    DeviceKind,
    FaultReport,
    Heartbeat,
    Message,
    MsgType,
    NackReason,
    Valve,
)
from protocols.messages import LAYOUT_BY_CLASS

EventSink = Callable[[str, dict[str, Any]], None]

#: Open/close order for a set of valve intents: never a moment with the supply open
#: on an unpressurised or vented line.
_CLOSE_ORDER = (Valve.SUPPLY, Valve.INLET, Valve.VENT)
_OPEN_ORDER = (Valve.VENT, Valve.INLET, Valve.SUPPLY)
_VALVE_NAMES = {Valve.SUPPLY: "supply", Valve.INLET: "inlet", Valve.VENT: "vent"}
_TELEMETRY_EVERY_MS = 100  # telemetry events at 10 Hz (interfaces.md)
_HEALTH_EVERY_S = 5.0
_QUALITY_EVERY_S = 1.0

#: Alarms whose table action ends the procedure with the safe state (safety-requirements.md).
STOPPING = frozenset(
    {
        "ALM_SUPPLY_OVERPRESSURE",
        "ALM_EXHAUST_OVERPRESSURE",
        "ALM_NO_FLOW",
        "ALM_VALVE_FAULT",
        "ALM_TEMP_SENSOR",
        "ALM_STIM_DURING_FREEZE",
        "ALM_PRESSURE_SENSOR",
        "ALM_DEVICE_FAULT",
        "ALM_RECORD",  # SR-31: no freeze goes on without its record
    }
)


class Controller:
    def __init__(
        self,
        config: ConsoleConfig,
        connection: Connection,
        sink: EventSink,
        *,
        now: float = 0.0,
    ) -> None:
        self.config = config
        self.connection = connection
        self._sink = sink
        self.now = now
        self.stimulator = Stimulator(config.stimulation)
        self.alarms = AlarmManager(self._alarm_event)
        self.procedure = Procedure(
            config.procedure,
            config.interlocks,
            config.gas_profile,
            self.stimulator,
            self.alarms,
            self,
            self.emit,
        )
        self._out: list[bytes] = []
        self._last: Snapshot | None = None
        self._telemetry_ms: int | None = None
        self._health_at = now + _HEALTH_EVERY_S
        self.stim_settings: StimSettings | None = None
        self._stim_on = False
        self.interlocks = Interlocks(
            config.interlocks, config.gas_profile, config.stimulation.lead_max_ohm
        )
        # The fast path (DESIGN.md): SR-07's trip on the CRC-checked frame, before validation.
        connection.fast_rule = partial(
            self.interlocks.exhaust_fast_trip, connection.snapshots.exhaust
        )
        self._open_ms: int | None = None  # first reported supply open of the current freeze
        self._valve_fault = False
        self._awaiting_safe = False
        self._quality_at = now + _QUALITY_EVERY_S
        # The console's own estimates (gas used and left, ice-ball radius), from snapshots only.
        self.estimates = Estimates(config.probe.flow_g_per_s, config.cylinder.net_g)

    # --- events -------------------------------------------------------------------------------

    def emit(self, name: str, **fields: Any) -> None:
        self._sink(name, fields)
        if name == "state_changed":
            self._freeze_edges(str(fields["from"]), str(fields["to"]))

    def _freeze_edges(self, src: str, dst: str) -> None:
        """A freeze starts or ends: the estimates' cycle bookkeeping, `estimates` at its end."""
        if dst in FREEZES:
            self.estimates.freeze_started()
        if src in FREEZES:
            c = self.estimates.freeze_ended(FREEZES.index(src) + 1)
            self._sink(
                "estimates",
                {
                    "cycle": c.cycle,
                    "gas_used_g_est": c.gas_used_total_g_est,
                    "cycle_gas_used_g_est": c.gas_used_g_est,
                    "gas_left_g_est": c.gas_left_g_est,
                    "ice_radius_mm_est": c.ice_radius_mm_est,
                },
            )

    def _alarm_event(self, name: str, fields: dict[str, Any]) -> None:
        self._sink(name, fields)
        if name == "alarm_cleared":
            self.interlocks.forget(str(fields["alarm"]))  # it may trip again from now on
            if fields["alarm"] == "ALM_VALVE_FAULT":
                self._valve_fault = False

    def take_output(self) -> bytes:
        if not self._out:
            return b""
        out = b"".join(self._out)
        self._out.clear()
        return out

    def _send(self, message: Message) -> bool:
        kind = MsgType(LAYOUT_BY_CLASS[type(message)].msg_type).name.lower()
        try:
            self._out.append(self.connection.send(message, self.now))
        except NotReadyError as exc:
            # An energising intent with no ready device: refused here, recorded, made safe.
            self.emit("command_refused", command=kind, reason=str(exc))
            self.safe_state("not_ready", None)
            return False
        except LinkError as exc:
            # No device session (never identified, or re-identifying after a loss): nothing
            # can be sent. Only de-energising commands get here (an energising one is
            # NotReadyError first), and the device is already safe by its own watchdog and
            # by the hello that opens the next session (SR-01, SR-03).
            self.emit("command_refused", command=kind, reason=str(exc))
            return False
        return True

    # --- Actuators ------------------------------------------------------------------------------

    def safe_state(self, reason: str, alarm: str | None) -> None:
        wire, _ = self.connection.safe_state(self.now, reason, alarm)
        self._out.append(wire)
        self._awaiting_safe = True
        self.emit("safe_state_commanded", reason=reason, alarm=alarm)

    def valves(self, *, supply: bool, inlet: bool, vent: bool, max_open_ms: int = 0) -> None:
        wanted = {Valve.SUPPLY: supply, Valve.INLET: inlet, Valve.VENT: vent}
        commanded = self.connection.valves.commanded
        safe_first = [
            v for v in _CLOSE_ORDER if commanded[v] != wanted[v] and not _energises(v, wanted[v])
        ]
        energise = [
            v for v in _OPEN_ORDER if commanded[v] != wanted[v] and _energises(v, wanted[v])
        ]
        for valve in (*safe_first, *energise):
            cap = max_open_ms if valve == Valve.SUPPLY and wanted[valve] else 0
            message = self.connection.valves.command(valve, wanted[valve], max_open_ms=cap)
            if not self._send(message):
                return
            self.emit(
                "valve_commanded",
                valve=_VALVE_NAMES[valve],
                open=wanted[valve],
                max_open_s=cap / 1000 if cap else None,
            )

    def stim_configure(self, settings: StimSettings) -> None:
        self.stim_settings = settings
        if self._send(self.stimulator.configure(settings)):
            self._stim_event(on=self._stim_on)

    def stim_start(self) -> None:
        if self._send(self.stimulator.start()):
            self._stim_on = True
            self._stim_event(on=True)

    def stim_stop(self) -> None:
        self._stim_on = False
        if self._send(self.stimulator.stop()):
            self._stim_event(on=False)

    def _stim_event(self, *, on: bool) -> None:
        s = self.stim_settings
        self.emit(
            "stim_commanded",
            on=on,
            current_ma=None if s is None else s.current_ma,
            pulse_us=None if s is None else s.pulse_us,
            rate_hz=None if s is None else s.rate_hz,
        )

    # --- inputs ---------------------------------------------------------------------------------

    def on_snapshot(self, s: Snapshot) -> None:
        self.now = s.t_s
        last = self._last
        self._last = s
        if last is None or (last.supply_open, last.inlet_open, last.vent_open) != (
            s.supply_open,
            s.inlet_open,
            s.vent_open,
        ):
            for name, now_open, was in (
                ("supply", s.supply_open, last.supply_open if last else None),
                ("inlet", s.inlet_open, last.inlet_open if last else None),
                ("vent", s.vent_open, last.vent_open if last else None),
            ):
                if now_open != was:
                    self.emit("valve_reported", valve=name, open=now_open, device_ms=s.device_ms)
        if last is None or last.stim_on != s.stim_on:
            self.emit("stim_reported", on=s.stim_on, device_ms=s.device_ms)
        if self._telemetry_ms is None or s.device_ms - self._telemetry_ms >= _TELEMETRY_EVERY_MS:
            self._telemetry_ms = s.device_ms
            self.emit(
                "telemetry",
                device_ms=s.device_ms,
                tip_c=None if s.tip_c != s.tip_c else round(s.tip_c, 2),
                supply_psi=round(s.supply_psi, 2),
                exhaust_psi=round(s.exhaust_psi, 2),
                supply_open=s.supply_open,
                inlet_open=s.inlet_open,
                vent_open=s.vent_open,
                stim_on=s.stim_on,
            )
        if self._awaiting_safe and not (s.supply_open or s.inlet_open or s.stim_on) and s.vent_open:
            self._awaiting_safe = False
            self.emit("safe_state_reported", device_ms=s.device_ms)
        self.estimates.on_snapshot(s)  # before the decisions, so a freeze's end sees this sample
        self._judge(s)
        self.procedure.on_snapshot(s)

    # --- interlocks -------------------------------------------------------------------------------

    def _judge(self, s: Snapshot) -> None:
        """Every rule on every sample; the decisions' actions are written in this same step."""
        proc = self.procedure
        freezing = proc.state in FREEZES
        if not freezing:
            self._open_ms = None
        elif self._open_ms is None and s.supply_open:
            self._open_ms = s.device_ms
        # SR-09 first: commanded and reported disagree for 100 ms (judged before any other
        # rule's safe state changes what is commanded).
        valves = self.connection.valves
        if self._valve_fault:
            # "states agree" (alarm table): every valve reported where it was last commanded.
            c = valves.commanded
            if (c[Valve.SUPPLY], c[Valve.INLET], c[Valve.VENT]) == (
                s.supply_open,
                s.inlet_open,
                s.vent_open,
            ):
                self.alarms.condition_cleared("ALM_VALVE_FAULT", self.now)
        else:
            mismatches = valves.judge(s.supply_open, s.inlet_open, s.vent_open, s.device_ms)
            if mismatches:
                m = mismatches[0]
                self._valve_fault = True
                self._apply(
                    Decision(
                        "ALM_VALVE_FAULT",
                        float(m.duration_ms),
                        float(valves.mismatch_ms),
                        s.device_ms,
                        m.since_device_ms,
                    )
                )
        temp_alarm = self.alarms.is_active("ALM_TEMP_SENSOR")
        if temp_alarm and not s.tip_flags and proc.state not in RUNNING and not proc.locked:
            # "next procedure" (alarm table): the procedure it stopped is over, the probe
            # released, and the thermistor reads plausibly again; the ack clears it.
            self.alarms.condition_cleared("ALM_TEMP_SENSOR", self.now)
        ctx = Context(freezing, self._open_ms, temp_alarm)
        for verdict in self.interlocks.evaluate(s, ctx):
            self._apply(verdict)

    def _apply(self, verdict: Decision | Clear) -> None:
        """The alarm table's action for a decision (safety-requirements.md, "Alarm table")."""
        if isinstance(verdict, Clear):
            if verdict.alarm != "ALM_NO_FLOW":  # that one waits for the acknowledgement
                self.alarms.condition_cleared(verdict.alarm, self.now)
            return
        alarm = verdict.alarm
        proc = self.procedure
        proc.t = max(proc.t, self.now)
        if alarm in STOPPING:  # the safe state first, in this step; the record after
            if proc.state in RUNNING:
                proc.stop("fail", alarm.removeprefix("ALM_").lower(), alarm)
            else:
                self.safe_state(alarm.removeprefix("ALM_").lower(), alarm)
        self.alarms.raise_alarm(
            alarm,
            self.now,
            value=verdict.value,
            limit=verdict.limit,
            device_ms=verdict.device_ms,
            first_over_device_ms=verdict.first_over_device_ms,
        )
        if alarm == "ALM_SUPPLY_LOW":
            proc.supply_low()
        elif alarm == "ALM_STIM_LEAD":
            self.stim_stop()

    def on_notice(self, notice: Notice, t: float) -> None:
        self.now = max(self.now, t)
        proc = self.procedure
        proc.t = max(proc.t, self.now)  # a stop here starts its thaw now, not at the last sample
        if isinstance(notice, FastTrip):
            # The fast path's safe state is on the wire and the full path did not take the
            # same decision (the sample failed validation): it stands, recorded here.
            self.interlocks.taken(notice.alarm)
            self._apply(
                Decision(
                    notice.alarm,
                    notice.value,
                    notice.limit,
                    notice.device_ms,
                    notice.first_over_device_ms,
                )
            )
            return
        if isinstance(notice, DeviceIdentified):
            i = notice.identity
            self.emit(
                "device_identified",
                device_kind="simulator" if i.device_kind == DeviceKind.SIMULATOR else "hardware",
                firmware=i.firmware,
                protocol=i.protocol_version,
                device_serial=i.device_serial,
                probe_model=i.probe_model,
                probe_serial=i.probe_serial,
                probe_uses=i.probe_uses,
                gas={1: "N2O", 2: "CO2"}.get(i.gas, str(i.gas)),
                accepted=not notice.refusals,
                refusals=[r.code for r in notice.refusals],
                continuing=notice.continuing,
            )
            if notice.refusals:
                self.alarms.raise_alarm("ALM_IDENTITY", self.now)  # reasons: device_identified
            else:
                self.alarms.condition_cleared("ALM_IDENTITY", self.now)
            proc.device_identified(not notice.refusals)
        elif isinstance(notice, SafeStateCommanded):
            self.emit("safe_state_commanded", reason=notice.reason, alarm=notice.alarm)
        elif isinstance(notice, SafeStateReported):
            self.emit("safe_state_reported", device_ms=notice.device_ms)
            # A reset's condition is over once the device is re-identified and verified safe.
            self.alarms.condition_cleared("ALM_DEVICE_RESET", self.now)
            proc.device_ready()
        elif isinstance(notice, SafeStateUnverified):
            self.emit("safe_state_unverified", waited_s=round(notice.waited_s, 3))
        elif isinstance(notice, LinkDown):
            self.emit("link_lost", silent_s=round(notice.silent_s, 3))
            self.alarms.raise_alarm(
                "ALM_LINK_LOST",
                self.now,
                value=round(notice.silent_s, 3),
                limit=self.config.link.link_lost_s,
            )
            proc.device_lost("link_lost", "ALM_LINK_LOST")
        elif isinstance(notice, LinkUp):
            self.emit("link_restored", silent_s=round(notice.silent_s, 3))
            self.alarms.condition_cleared("ALM_LINK_LOST", self.now)
        elif isinstance(notice, DeviceWasReset):
            self.emit("device_reset", reason=notice.reason)
            self.alarms.raise_alarm("ALM_DEVICE_RESET", self.now)
            proc.device_lost("device_reset", "ALM_DEVICE_RESET")
        elif isinstance(notice, Acked):
            self._reply(
                "command_acked", notice.seq, notice.command, "duplicate" if notice.duplicate else ""
            )
        elif isinstance(notice, Nacked):
            self._reply("command_nacked", notice.seq, notice.command, _nack_name(notice.reason))
        elif isinstance(notice, CommandFailed):
            self._reply(
                "command_nacked",
                notice.seq,
                notice.command,
                f"no answer after {notice.attempts} attempts",
            )
        elif isinstance(notice, FaultReport):
            self.emit(
                "device_fault_report",
                device_ms=notice.device_ms,
                device_event=_device_event_name(notice.event),
                fault_flags=notice.fault_flags,
                status_flags=notice.status_flags,
            )

    def _reply(self, name: str, seq: int, command: Message, reason: str) -> None:
        if type(command) is Heartbeat:
            return
        kind = MsgType(LAYOUT_BY_CLASS[type(command)].msg_type).name.lower()
        self.emit(name, command=kind, command_seq=seq, reason=reason)

    def tick(self, t: float) -> None:
        """Once a turn, after the inputs: alarm silences, link health every 5 s."""
        self.now = max(self.now, t)
        self.alarms.tick(self.now)
        if self.now >= self._quality_at:
            self._quality_at = self.now + _QUALITY_EVERY_S
            good, bad, lost, window = self.connection.link.quality()
            if window >= self.config.link.quality_window_s - 1.0:
                last = self.connection.last
                device_ms = last.device_ms if last is not None else 0
                for verdict in self.interlocks.link_quality(good, bad, lost, window, device_ms):
                    self._apply(verdict)
        if self.now >= self._health_at:
            self._health_at = self.now + _HEALTH_EVERY_S
            h = self.connection.link.health()
            self.emit("link_health", good=h.good, bad=h.bad, lost=h.lost)

    # --- the record (SR-31) -------------------------------------------------------------------

    def record_failed(self, why: str) -> None:
        """A commit failed: the safe state (a running procedure ends), `ALM_RECORD`."""
        self.emit("record_failed", reason=why)
        self._apply(Decision("ALM_RECORD", None, None, self._device_ms(), None))

    def record_restored(self) -> None:
        """The store took every pending record: "store writable" (the ack clears it)."""
        self.emit("record_restored")
        self.alarms.condition_cleared("ALM_RECORD", self.now)

    def _device_ms(self) -> int | None:
        last = self.connection.last
        return None if last is None else last.device_ms

    def act(self, action: str, params: dict[str, Any] | None = None) -> tuple[bool, str]:
        """An operator action from any source; validated here (SR-30), recorded either way."""
        try:
            validated = validate_action(action, params or {})
        except ValueError as exc:  # pydantic's ValidationError is a ValueError
            reason = (
                str(exc).splitlines()[0]
                if "validation error" not in str(exc)
                else _first_error(exc)
            )
            self.emit("operator_action", action=action, accepted=False, reason=reason)
            return False, reason
        accepted, reason = self.procedure.act(action, validated, self.now)
        if accepted and action == "ack_alarm" and validated.alarm == "ALM_NO_FLOW":  # type: ignore[attr-defined]
            self.alarms.condition_cleared("ALM_NO_FLOW", self.now)  # "blocked until ack"
        return accepted, reason


def _energises(valve: Valve, is_open: bool) -> bool:
    return is_open != (valve == Valve.VENT)


def _device_event_name(code: int) -> str:
    try:
        return DeviceEvent(code).name.lower()
    except ValueError:
        return f"event {code}"


def _nack_name(reason: int) -> str:
    try:
        return NackReason(reason).name.lower()
    except ValueError:
        return f"reason {reason}"


def _first_error(exc: ValueError) -> str:
    from pydantic import ValidationError

    if isinstance(exc, ValidationError):
        e = exc.errors()[0]
        where = ".".join(str(x) for x in e["loc"])
        return f"{where} = {e.get('input')!r}: {e['msg']}"
    return str(exc)

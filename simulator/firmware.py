"""The emulated firmware: the device side of `docs/protocol.md`, rule by rule.

It is sans-I/O like the rest of the core: `receive(data, now)` takes the bytes
the host sent, `tick(now)` runs the timers (watchdog, freeze cap, stimulation
limit, boot announcements, telemetry), and `take_output()` returns the bytes
to send. The physics and the sensor chain are its hardware. It imports only
`protocols`, never the daemon, so it is an honest second implementation of
the specification: where the two disagree, one of them is wrong about the
spec, and the tests say which.

Section numbers below refer to `docs/protocol.md`.
"""

from __future__ import annotations

import math
import random
from collections import deque
from dataclasses import dataclass, field

from protocols import (
    PROTOCOL_VERSION,
    Ack,
    AckStatus,
    DeviceEvent,
    DeviceKind,
    EmergencyStop,
    FaultFlags,
    FaultReport,
    Frame,
    Gas,
    Heartbeat,
    Hello,
    Identity,
    Message,
    MsgType,
    Nack,
    NackReason,
    Reset,
    SafeState,
    StatusFlags,
    StimConfigure,
    StimFlags,
    StimStart,
    StimStop,
    StreamDecoder,
    Telemetry,
    ValveBits,
    ValveCommand,
    encode,
    is_energising,
)
from protocols.frontend import lead_ohm_to_counts
from simulator.physics import Physics, ValveName
from simulator.sensors import Sensors

U32 = 0xFFFFFFFF
VALVES: tuple[ValveName, ValveName, ValveName] = ("supply", "inlet", "vent")
# Plain ints on the per-sample path: IntFlag arithmetic costs a Python call per operator.
_REPORTED_BITS = (int(ValveBits.SUPPLY_OPEN), int(ValveBits.INLET_OPEN), int(ValveBits.VENT_OPEN))
_TARGET_BITS = (
    int(ValveBits.SUPPLY_TARGET_OPEN),
    int(ValveBits.INLET_TARGET_OPEN),
    int(ValveBits.VENT_TARGET_OPEN),
)
_SESSION_OPEN = int(StatusFlags.SESSION_OPEN)
_WATCHDOG_TRIPPED = int(StatusFlags.WATCHDOG_TRIPPED)
_FREEZE_CAP_EXPIRED = int(StatusFlags.FREEZE_CAP_EXPIRED)
_STIM_TIMED_OUT = int(StatusFlags.STIM_TIMED_OUT)
_SAFE_STATE = int(StatusFlags.SAFE_STATE)
_VALVE_FEEDBACK = int(FaultFlags.VALVE_FEEDBACK)
_STIM_HARDWARE = int(FaultFlags.STIM_HARDWARE)
_OUTPUT_ON = int(StimFlags.OUTPUT_ON)
_TARGET_ON = int(StimFlags.TARGET_ON)
_NACK_OF_REJECT = {
    "version": NackReason.WRONG_VERSION,
    "unknown_type": NackReason.UNKNOWN_TYPE,
    "payload": NackReason.BAD_LENGTH,
}


@dataclass(slots=True)
class DeviceIdentity:
    """What the device says about itself in `IDENTITY` (section 6.2)."""

    gas: str = "N2O"
    device_serial: str = "SIM-0001"
    probe_model: str = "CRYO-20G-90"
    probe_serial: str = "PRB-000001"
    probe_uses: int = 0
    protocol_version: int = PROTOCOL_VERSION
    firmware: tuple[int, int, int] = (0, 1, 0)
    device_kind: int = DeviceKind.SIMULATOR


@dataclass(frozen=True, slots=True)
class FirmwareParams:
    telemetry_hz: float = 100.0
    watchdog_s: float = 0.3
    stim_timeout_s: float = 60.0
    duplicate_window: int = 64
    announce_s: float = 1.0
    valve_feedback_s: float = 0.1
    max_open_ms_limit: int = 600_000

    def __post_init__(self) -> None:
        if not 50.0 <= self.telemetry_hz <= 1000.0:
            raise ValueError(f"telemetry_hz = {self.telemetry_hz} out of range 50..1000 Hz")


@dataclass(slots=True)
class _Session:
    nonce: int
    host_nonce: int
    last_valid_s: float
    highest_seq: int | None = None
    executed: deque[int] = field(default_factory=deque)
    executed_set: set[int] = field(default_factory=set)
    use_counted: bool = False
    watchdog_armed: bool = True


class Firmware:
    """One device's controller. Not thread-safe; driven by `SimulatedDevice`."""

    def __init__(
        self,
        physics: Physics,
        sensors: Sensors,
        identity: DeviceIdentity,
        rng: random.Random,
        params: FirmwareParams | None = None,
    ) -> None:
        self.physics = physics
        self.sensors = sensors
        self.identity = identity
        self.params = params or FirmwareParams()
        self.period_s = 1.0 / self.params.telemetry_hz
        self._rng = rng
        self._decoder = StreamDecoder(keep_rejects=True)
        self._out: list[bytes] = []
        #: Set by the `device_silent` fault: nothing is transmitted, everything else goes on.
        self.silent = False
        self.boots = 0
        #: Hellos that repeated the current session's host nonce (section 8.1 rule 7).
        self.repeated_hellos = 0
        self._boot(0.0)

    # --- state ------------------------------------------------------------------

    def _boot(self, now: float) -> None:
        """Power-up or reset (section 8.8): safe state, no session, time and seq from 0."""
        self.boots += 1
        self._boot_s = now
        self._seq = 0
        self._session: _Session | None = None
        self._announce_nonce = self._new_nonce()
        self._next_announce = now
        self._next_telemetry = now
        self._status: int = 0
        self._faults: int = 0
        self._cap_deadline: float | None = None
        self._stim_deadline: float | None = None
        self._stim_target = False
        self._mismatch_since: list[float | None] = [None, None, None]
        self._stim_mismatch_since: float | None = None
        self._decoder = StreamDecoder(keep_rejects=True)
        self._safe_state()

    def reboot(self, now: float) -> None:
        """The `firmware_reset` fault and the `RESET` command."""
        self._boot(now)
        self._report(now, DeviceEvent.BOOT)

    def _new_nonce(self) -> int:
        return self._rng.randrange(1, U32 + 1)

    def device_ms(self, now: float) -> int:
        return round((now - self._boot_s) * 1000.0) & U32

    @property
    def session_open(self) -> bool:
        return self._session is not None

    @property
    def session_nonce(self) -> int:
        return self._session.nonce if self._session else 0

    @property
    def status_flags(self) -> int:
        return self._status | self._live_status()

    @property
    def fault_flags(self) -> int:
        return self._faults

    def _safe_state(self) -> None:
        p = self.physics
        p.command_valve("supply", False)
        p.command_valve("inlet", False)
        p.command_valve("vent", True)
        self._stop_stim()
        self._cap_deadline = None

    def _stop_stim(self) -> None:
        self._stim_target = False
        self._stim_deadline = None
        self.physics.set_stim(False)

    # --- output -------------------------------------------------------------------

    def _send(self, message: Message, nonce: int | None = None) -> None:
        seq = self._seq
        self._seq = (seq + 1) & U32
        if not self.silent:
            self._out.append(encode(message, seq, self.session_nonce if nonce is None else nonce))

    def take_output(self) -> bytes:
        out = b"".join(self._out)
        self._out.clear()
        return out

    def _identity(self, session_nonce: int, host_nonce: int) -> Identity:
        i = self.identity
        return Identity(
            i.protocol_version,
            i.device_kind,
            *i.firmware,
            Gas[i.gas],
            i.probe_uses,
            session_nonce,
            host_nonce,
            i.device_serial,
            i.probe_model,
            i.probe_serial,
        )

    def _report(self, now: float, event: DeviceEvent) -> None:
        if self._session is not None:
            self._send(FaultReport(self.device_ms(now), event, self._faults, self.status_flags))

    # --- input --------------------------------------------------------------------

    def receive(self, data: bytes, now: float) -> None:
        """Take bytes from the host and act on every frame at once (section 8)."""
        frames = self._decoder.feed(data)
        rejects = self._decoder.rejects
        if rejects:
            for kind, header in rejects:
                if header.msg_type != MsgType.HELLO and header.msg_type != MsgType.HEARTBEAT:
                    self._send(Nack(header.seq, header.msg_type, _NACK_OF_REJECT[kind]))
            rejects.clear()
        for frame in frames:
            self._handle(frame, now)

    def _handle(self, frame: Frame, now: float) -> None:
        message = frame.message
        if isinstance(message, Hello):
            self._hello(message, now)
            return
        if isinstance(message, Identity | Telemetry | Ack | Nack | FaultReport):
            return  # device-to-host types coming the wrong way: nothing to do
        session = self._session
        ours = session is not None and frame.nonce == session.nonce
        if ours:
            assert session is not None
            session.last_valid_s = now
            session.watchdog_armed = True
        if isinstance(message, Heartbeat):
            return
        msg_type = frame.msg_type
        if session is not None and ours and frame.seq in session.executed_set:
            self._send(Ack(frame.seq, msg_type, AckStatus.DUPLICATE))
            return
        if is_energising(message):
            reason = self._refusal(frame, message, session, ours, now)
            if reason is not None:
                self._send(Nack(frame.seq, msg_type, reason))
                return
        if session is not None and ours:
            self._remember(session, frame.seq)
        self._send(Ack(frame.seq, msg_type, AckStatus.EXECUTED))
        self._execute(message, now)

    def _hello(self, hello: Hello, now: float) -> None:
        """Section 8.1: a hello ends any session, makes the device safe and opens a new one.

        Except the hello that opened the current session, repeated (a host's retry, or an
        old frame replayed on the line): it is answered with the current identity again and
        changes nothing, and it does not feed the watchdog (rule 7).
        """
        session = self._session
        if session is not None and hello.host_nonce == session.host_nonce:
            self.repeated_hellos += 1
            self._send(self._identity(session.nonce, hello.host_nonce), session.nonce)
            return
        self._safe_state()
        nonce = self._new_nonce()
        self._session = _Session(nonce=nonce, host_nonce=hello.host_nonce, last_valid_s=now)
        self._status = _SESSION_OPEN
        self._next_telemetry = now
        self._send(self._identity(nonce, hello.host_nonce), nonce)

    def _refusal(
        self, frame: Frame, message: Message, session: _Session | None, ours: bool, now: float
    ) -> NackReason | None:
        """Why an energising command must not run, or None (sections 6, 8.4, 8.5, 8.7)."""
        if session is None:
            return NackReason.NO_SESSION
        if not ours:
            return NackReason.FOREIGN_NONCE
        if isinstance(message, ValveCommand) and message.valve > 2:
            return NackReason.OUT_OF_RANGE  # an unknown valve is energising by definition
        expires = getattr(message, "expires_at_device_ms", 0)
        late = (self.device_ms(now) - expires) & U32
        if 0 < late < 1 << 31:
            return NackReason.EXPIRED
        if session.highest_seq is not None:
            behind = (session.highest_seq - frame.seq) & U32
            if self.params.duplicate_window <= behind < 1 << 31:
                return NackReason.STALE
        if self._faults:
            return NackReason.DEVICE_FAULT
        supply_closed = not self.physics.supply_open and not self.physics.valve_commanded_open(
            "supply"
        )
        if isinstance(message, ValveCommand):
            if message.valve == 0:
                if not 0 < message.max_open_ms <= self.params.max_open_ms_limit:
                    return NackReason.OUT_OF_RANGE
                if self._stim_target or self.physics.stim_on:
                    return NackReason.INTERLOCK
        elif isinstance(message, StimConfigure):
            if not (
                0 <= message.current_10ua <= 500
                and 50 <= message.pulse_us <= 1000
                and 1 <= message.rate_hz <= 100
            ):
                return NackReason.OUT_OF_RANGE
            if not supply_closed:
                return NackReason.INTERLOCK
        elif isinstance(message, StimStart) and not supply_closed:
            return NackReason.INTERLOCK
        return None

    def _remember(self, session: _Session, seq: int) -> None:
        session.executed.append(seq)
        session.executed_set.add(seq)
        if len(session.executed) > self.params.duplicate_window:
            session.executed_set.discard(session.executed.popleft())
        if session.highest_seq is None or 0 < (seq - session.highest_seq) & U32 < 1 << 31:
            session.highest_seq = seq

    def _execute(self, message: Message, now: float) -> None:
        p = self.physics
        if isinstance(message, ValveCommand):
            name = VALVES[message.valve]
            p.command_valve(name, bool(message.open))
            if name == "supply":
                if message.open:
                    self._cap_deadline = now + message.max_open_ms / 1000.0
                    self._status &= ~(_WATCHDOG_TRIPPED | _FREEZE_CAP_EXPIRED)
                    session = self._session
                    if session is not None and not session.use_counted:
                        session.use_counted = True  # section 8.9: one use per device session
                        self.identity.probe_uses = min(self.identity.probe_uses + 1, 0xFFFF)
                else:
                    self._cap_deadline = None
        elif isinstance(message, SafeState):
            self._safe_state()
        elif isinstance(message, EmergencyStop):
            self._safe_state()
            self._report(now, DeviceEvent.ESTOP)
        elif isinstance(message, StimConfigure):
            p.configure_stim(message.current_10ua / 100.0, message.pulse_us, message.rate_hz)
            self._stim_deadline = now + self.params.stim_timeout_s
        elif isinstance(message, StimStart):
            self._stim_target = True
            p.set_stim(True)
            self._stim_deadline = now + self.params.stim_timeout_s
            self._status &= ~_STIM_TIMED_OUT
        elif isinstance(message, StimStop):
            self._stop_stim()
        elif isinstance(message, Reset):
            self.reboot(now)

    # --- time -------------------------------------------------------------------------

    def next_deadline(self) -> float:
        """The next time `tick` has something to do at a fixed instant (telemetry, announce)."""
        if self._session is None:
            return self._next_announce
        return self._next_telemetry

    def tick(self, now: float) -> None:
        """Run the timers at `now` (call at least every telemetry period)."""
        session = self._session
        if session is None:
            if now >= self._next_announce - 1e-9:
                self._send(self._identity(self._announce_nonce, 0), self._announce_nonce)
                self._next_announce = now + self.params.announce_s
            return
        if session.watchdog_armed and now - session.last_valid_s >= self.params.watchdog_s - 1e-9:
            # SR-02: no valid frame for 300 ms.
            session.watchdog_armed = False
            self._safe_state()
            self._status |= _WATCHDOG_TRIPPED
            self._report(now, DeviceEvent.WATCHDOG_TRIP)
        if self._cap_deadline is not None and now >= self._cap_deadline - 1e-9:
            # SR-25: the freeze cap holds whatever the heartbeats say.
            self._cap_deadline = None
            self.physics.command_valve("supply", False)
            self._status |= _FREEZE_CAP_EXPIRED
            self._report(now, DeviceEvent.FREEZE_CAP_EXPIRED)
        if self._stim_deadline is not None and now >= self._stim_deadline - 1e-9:
            # SR-16: stimulation stops 60 s after the last start or configure.
            self._stop_stim()
            self._status |= _STIM_TIMED_OUT
            self._report(now, DeviceEvent.STIM_TIMEOUT)
        self._check_feedback(now)
        if now >= self._next_telemetry - 1e-9:
            self._send(self._telemetry(now))
            self._next_telemetry += self.period_s
            if self._next_telemetry <= now:
                self._next_telemetry = now + self.period_s

    def _check_feedback(self, now: float) -> None:
        """The device's own feedback checks: valves and stimulator follow their targets."""
        p = self.physics
        faults = 0
        limit = self.params.valve_feedback_s
        states = p.valve_states()  # (reported, commanded) in VALVES order
        mismatch_since = self._mismatch_since
        for i in range(3):
            if states[2 * i] != states[2 * i + 1]:
                since = mismatch_since[i]
                if since is None:
                    mismatch_since[i] = now
                elif now - since >= limit:
                    faults |= _VALVE_FEEDBACK
            elif mismatch_since[i] is not None:
                mismatch_since[i] = None
        if p.stim_on != self._stim_target:
            if self._stim_mismatch_since is None:
                self._stim_mismatch_since = now
            elif now - self._stim_mismatch_since >= limit:
                faults |= _STIM_HARDWARE
        else:
            self._stim_mismatch_since = None
        if faults != self._faults:
            event = DeviceEvent.FAULT_SET if faults & ~self._faults else DeviceEvent.FAULT_CLEARED
            self._faults = faults
            self._report(now, event)

    def _live_status(self) -> int:
        p = self.physics
        safe = not (p.supply_open or p.inlet_open or p.stim_on) and p.vent_open
        return _SAFE_STATE if safe else 0

    def _telemetry(self, now: float) -> Telemetry:
        p = self.physics
        tip, supply, exhaust = self.sensors.read(now, p.tip_c, p.supply_psi, p.exhaust_psi)
        valves = 0
        states = p.valve_states()  # (reported, commanded) in VALVES order
        for i in range(3):
            if states[2 * i]:
                valves |= _REPORTED_BITS[i]
            if states[2 * i + 1]:
                valves |= _TARGET_BITS[i]
        stim = (_OUTPUT_ON if p.stim_on else 0) | (_TARGET_ON if self._stim_target else 0)
        lead = p.lead_impedance_ohm
        return Telemetry(
            self.device_ms(now),
            supply,
            exhaust,
            tip,
            valves,
            stim,
            self.status_flags,
            round(p.stim_current_ma * 100.0),
            lead_ohm_to_counts(lead if math.isfinite(lead) else math.inf),
            round(p.stim_set_current_ma * 100.0),
            round(p.stim_pulse_us),
            round(p.stim_rate_hz),
            self._faults,
        )

"""One device connection, sans-I/O: handshake, SR-01 on every (re)connection, link loss, resets.

The same object runs under the real-time runtime (a serial port and the
monotonic clock) and under the virtual-time runner (the in-process simulator
and a number), so the safety behaviour is the same code in both (DESIGN.md,
"two clocks, one code path"). Inputs: bytes and the time; outputs: bytes to
write, snapshots, and notices of what happened.

What it guarantees, whatever drives it:
- SR-01: after every identity (first connection, reconnection, device reset)
  the safe state is commanded before anything else, then verified from
  telemetry (valves at their safe positions, stimulation off, the device's
  own "safe state" bit); not verified within `verify_s`: a notice.
- SR-03: no valid telemetry for `link_lost_s`: the safe state is commanded,
  then heartbeats stop so the device watchdog trips even if only one direction
  failed; hellos are then retried every `reconnect_s` and a reconnection is a
  new device session (re-identified, SR-01 again). Nothing is ever resumed.
- SR-18: the identity is checked; a refusal blocks energising commands only.
- SR-32: an unsolicited identity or device time going back is a device reset.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

from console.handshake import Expectation, Refusal, check_identity
from console.store import OpenedProbe
from drivers.link import (
    Acked,
    CommandFailed,
    DeviceReset,
    Identified,
    Link,
    LinkEvent,
    LinkLost,
    LinkParams,
    LinkRestored,
    Nacked,
    Tracer,
)
from drivers.snapshot import Snapshot, Snapshots
from drivers.valves import Valves, reported_safe
from protocols import (
    EmergencyStop,
    FaultReport,
    Identity,
    Message,
    StatusFlags,
    Telemetry,
    is_energising,
)

_SAFE_BIT = int(StatusFlags.SAFE_STATE)


class NotReadyError(Exception):
    """An energising command this connection must not send now (SR-01, SR-18)."""


# --- notices ---------------------------------------------------------------------------


class DeviceIdentified(NamedTuple):
    identity: Identity
    refusals: list[Refusal]
    continuing: bool


class SafeStateCommanded(NamedTuple):
    reason: str
    alarm: str | None


class SafeStateReported(NamedTuple):
    device_ms: int


class SafeStateUnverified(NamedTuple):
    waited_s: float


class LinkDown(NamedTuple):
    silent_s: float


class LinkUp(NamedTuple):
    silent_s: float


class DeviceWasReset(NamedTuple):
    reason: str


class FastTrip(NamedTuple):
    """A de-energising decision the fast path took on a CRC-checked frame (DESIGN.md).

    Its safe state is already on the wire. The full path normally takes the same
    decision on the same sample and records it as usual; when it does not (the
    sample failed validation, say), the loop hands this notice to the controller
    at the end of the turn, so the decision stands and is recorded all the same.
    """

    alarm: str
    value: float
    limit: float
    device_ms: int
    first_over_device_ms: int | None


#: The fast path's rule: judges a chunk's CRC-checked telemetry frames, in order, in raw counts.
FastRule = Callable[[list[Telemetry]], FastTrip | None]


Notice = (
    DeviceIdentified
    | SafeStateCommanded
    | SafeStateReported
    | SafeStateUnverified
    | LinkDown
    | LinkUp
    | DeviceWasReset
    | FastTrip
    | Acked
    | Nacked
    | CommandFailed
    | FaultReport
)


class ConnectionSetup(NamedTuple):
    link: LinkParams
    snapshots: Snapshots
    expectation: Expectation
    #: Looks a probe serial up in the registry (None for the in-process simulator: exempt).
    opened_before: Callable[[str], OpenedProbe | None] | None = None
    verify_s: float = 1.0
    reconnect_s: float = 1.0


class Connection:
    """The console's side of one device, from hello to close."""

    def __init__(
        self, setup: ConnectionSetup, nonces: Callable[[], int], *, tracer: Tracer | None = None
    ) -> None:
        self.setup = setup
        self.link = Link(setup.link, tracer=tracer)
        self.snapshots = setup.snapshots
        self.valves = Valves(mismatch_ms=100)
        self._nonces = nonces
        self.identity: Identity | None = None
        self.refusals: list[Refusal] = []
        self.lost = False
        self._lost_at = 0.0  # when the device last spoke before the link was lost
        #: None until the safe state is verified after the latest identity.
        self.safe_verified_ms: int | None = None
        self._verify_since: float | None = None
        self._next_hello: float | None = None
        self._previous: Identity | None = None
        self._reset_seen = False
        self.last: Snapshot | None = None
        #: The fast path (DESIGN.md): set by the controller, which owns the interlocks.
        self.fast_rule: FastRule | None = None
        #: A fast-path safe state written in this turn and not yet taken up by the full path.
        self.urgent: FastTrip | None = None

    # --- starting and commands ----------------------------------------------------------

    def open(self, now: float) -> bytes:
        """The first bytes of a connection: a delimiter (flushes the device's decoder), a hello."""
        self._next_hello = now + self.setup.reconnect_s
        return b"\x00" + self.link.hello(self._nonces(), now)

    @property
    def ready(self) -> bool:
        """Identified, the safe state verified, the link up."""
        return self.link.state == "open" and self.safe_verified_ms is not None and not self.lost

    @property
    def may_energise(self) -> bool:
        return self.ready and not self.refusals

    def send(self, command: Message, now: float) -> bytes:
        """Bytes for one command. Energising ones only when `may_energise` (SR-01, SR-18)."""
        if is_energising(command) and (not self.may_energise or self.urgent is not None):
            if self.urgent is not None:
                why = f"the safe state for {self.urgent.alarm} was commanded in this step"
            else:
                why = "refused device" if self.refusals else "connection not ready"
            raise NotReadyError(f"{type(command).__name__} not sent: {why}")
        return self.link.send(command, now)[1]

    def safe_state(self, now: float, reason: str, alarm: str | None = None) -> tuple[bytes, Notice]:
        """Command the safe state at once (never refused while a session is open).

        An emergency stop goes as the protocol's `ESTOP` (the same actions, reported by
        the device as an emergency stop); every other reason as `SAFE_STATE`.
        """
        if self.urgent is not None and alarm != "ALM_ESTOP":
            # The fast path already wrote this safe state in this turn: recorded, not resent.
            self.urgent = None
            return b"", SafeStateCommanded(reason, alarm)
        message: Message = self.valves.safe_state()
        if alarm == "ALM_ESTOP":
            message = EmergencyStop()
        wire = self.link.send(message, now)[1] if self.link.state == "open" else b""
        return wire, SafeStateCommanded(reason, alarm)

    # --- input ------------------------------------------------------------------------------

    def feed(self, data: bytes, now: float) -> tuple[list[Snapshot], list[Notice], bytes]:
        """Bytes from the device -> snapshots, notices, and bytes to write at once."""
        events, urgent = self.receive(data, now)
        snaps, notices, out = self.digest(events, now)
        return snaps, notices, urgent + out

    def receive(self, data: bytes, now: float) -> tuple[list[LinkEvent], bytes]:
        """The fast path: CRC-checked frames, and the safe state if the fast rule trips.

        The bytes returned are to be written before anything else is done with the
        frames (`digest`): the decision needs only the raw counts and the calibration
        of the one sensor its rule reads, no validation, no logging, no store.
        """
        events = self.link.receive(data, now)
        rule = self.fast_rule
        if rule is None or self.urgent is not None or not events or self.link.state != "open":
            return events, b""
        telemetry = [e for e in events if type(e) is Telemetry]
        if not telemetry:
            return events, b""
        trip = rule(telemetry)
        if trip is None:
            return events, b""
        self.urgent = trip
        return events, self.link.send(self.valves.safe_state(), now)[1]

    def digest(
        self, events: list[LinkEvent], now: float
    ) -> tuple[list[Snapshot], list[Notice], bytes]:
        """The link's events -> validated snapshots, notices, and bytes to write at once."""
        snaps: list[Snapshot] = []
        notices: list[Notice] = []
        out = b""
        convert = self.snapshots.convert
        for event in events:
            if type(event) is Telemetry:
                snap = convert(event, now)
                snaps.append(snap)
                self.last = snap
                if self._verify_since is not None and _is_safe(event):
                    self._verify_since = None
                    self.safe_verified_ms = event.device_ms
                    notices.append(SafeStateReported(event.device_ms))
            elif isinstance(event, Identified):
                out += self._identified(event.identity, now, notices)
            elif isinstance(event, DeviceReset):
                self._reset_seen = True
                notices.append(DeviceWasReset(event.reason))
                # Re-identify at once: a new device session, SR-01 again, nothing resumed.
                out += self.open(now)
            elif isinstance(event, LinkRestored):
                # Telemetry of the old session came back: the device watchdog may have
                # tripped meanwhile; start a new session rather than trust the old one.
                self._link_up(now, notices)
                out += self.open(now)
            elif isinstance(event, Acked | Nacked | CommandFailed | FaultReport):
                notices.append(event)
        return snaps, notices, out

    def _identified(self, identity: Identity, now: float, notices: list[Notice]) -> bytes:
        previous = self._previous
        continuing = (
            previous is not None
            and not self._reset_seen
            and previous.device_serial == identity.device_serial
            and previous.probe_serial == identity.probe_serial
        )
        lookup = self.setup.opened_before
        opened = lookup(identity.probe_serial) if lookup is not None else None
        self.refusals = check_identity(
            identity, self.setup.expectation, opened_before=opened, continuing=continuing
        )
        self.identity = self._previous = identity
        self._reset_seen = False
        self._link_up(now, notices)  # the device answered a new hello after a loss
        self.link.heartbeats_enabled = True
        self.safe_verified_ms = None
        self._verify_since = now
        self._next_hello = None
        self.snapshots.thermistor.reset()  # device time restarts with a new session
        notices.append(DeviceIdentified(identity, self.refusals, continuing))
        wire, commanded = self.safe_state(now, "connect")  # SR-01: before anything else
        notices.append(commanded)
        return wire

    def _link_up(self, now: float, notices: list[Notice]) -> None:
        """The device is heard again after a loss: once, whichever way it comes back."""
        if self.lost:
            self.lost = False
            notices.append(LinkUp(now - self._lost_at))

    # --- time --------------------------------------------------------------------------------

    def poll(self, now: float) -> tuple[bytes, list[Notice]]:
        out, events = self.link.poll(now)
        notices: list[Notice] = []
        for event in events:
            if isinstance(event, LinkLost):
                self.lost = True
                self._lost_at = now - event.silent_s
                notices.append(LinkDown(event.silent_s))
                wire, commanded = self.safe_state(now, "link_lost", "ALM_LINK_LOST")
                out += wire
                notices.append(commanded)
                # SR-03: then stop heartbeating, so the device watchdog trips whatever failed.
                self.link.heartbeats_enabled = False
                self._next_hello = now + self.setup.reconnect_s
            elif isinstance(event, CommandFailed):
                notices.append(event)
        if self._verify_since is not None and now - self._verify_since >= self.setup.verify_s:
            notices.append(SafeStateUnverified(now - self._verify_since))
            self._verify_since = None
        hello_due = self._next_hello is not None and now >= self._next_hello
        if hello_due and (self.lost or self.link.state != "open"):
            out += self.open(now)  # no answer yet, or the link is down: try a new session
        return out, notices


def _is_safe(t: Telemetry) -> bool:
    return reported_safe(t) and not t.stim_on and bool(t.status_flags & _SAFE_BIT)

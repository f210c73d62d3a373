"""The link: sequence numbers, acknowledgements, bounded retries, heartbeats, health.

Sans-I/O like the codec under it: every method takes the current monotonic
time as an argument and returns the bytes to write and the events it saw; the
runtime (the only place with a clock and a port) does the reading and writing.
So the same link runs over a serial port in real time and against the
simulator in virtual time, and its timing logic is tested with a fake clock.

Rules (`docs/protocol.md`, "Link rules"):
- the first frame of every connection is `Hello`; the device session opens
  when the `Identity` echoing our hello nonce arrives, and from then on only
  frames with that session nonce are accepted (SR-26);
- every command but the heartbeat is acknowledged; a command not acknowledged
  within `ack_timeout_s` is sent again with the same sequence number and bytes,
  at most `max_retries` times, then reported failed;
- energising commands get `expires_at_device_ms` = estimated device time +
  `command_ttl_ms`; the device refuses them late (SR-26);
- a heartbeat goes out whenever nothing was sent for `heartbeat_s` (SR-02),
  until the caller stops heartbeats (SR-03: after a link loss);
- no valid telemetry for `link_lost_s` is a link loss (SR-03); an identity we
  did not ask for, or device time going back, is a device reset (SR-32).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from typing import NamedTuple

from pydantic import BaseModel, ConfigDict, Field

from drivers.errors import DriverError
from protocols import (
    Ack,
    AckStatus,
    FaultReport,
    Frame,
    Heartbeat,
    Hello,
    Identity,
    Message,
    Nack,
    StimConfigure,
    StimStart,
    StreamDecoder,
    Telemetry,
    ValveCommand,
    encode,
    is_energising,
)
from protocols.messages import LAYOUT_BY_CLASS

U32 = 0xFFFFFFFF


class LinkError(DriverError):
    """The link cannot do what was asked (no session, device time unknown, ...)."""


class LinkParams(BaseModel):
    """Timing of the link. Owned by `drivers`; `console` composes it into its configuration."""

    model_config = ConfigDict(strict=True, extra="forbid", allow_inf_nan=False, frozen=True)

    baudrate: int = Field(115200, ge=9600, le=4_000_000, description="serial line rate, baud")
    heartbeat_s: float = Field(
        0.04,
        gt=0.0,
        le=0.05,
        description="send a heartbeat when nothing was sent for this long (SR-02)",
    )
    ack_timeout_s: float = Field(
        0.05, ge=0.005, le=1.0, description="resend a command not acknowledged within this"
    )
    max_retries: int = Field(
        3, ge=0, le=10, description="resends of one command before it is reported failed"
    )
    link_lost_s: float = Field(
        0.25, gt=0.0, le=0.25, description="no valid telemetry for this long is a link loss (SR-03)"
    )
    command_ttl_ms: int = Field(
        200,
        ge=10,
        le=1000,
        description="energising commands expire this long after the estimated device time (SR-26)",
    )
    quality_window_s: float = Field(
        5.0, ge=1.0, le=60.0, description="window of the link-quality ratio (SR-23)"
    )


# --- events the link reports --------------------------------------------------


class Identified(NamedTuple):
    """The device answered our hello: a device session is open."""

    identity: Identity
    seq: int


class DeviceReset(NamedTuple):
    """Evidence that the device rebooted or another session took over (SR-32)."""

    reason: str  # "unsolicited_identity" | "device_time_back"
    identity: Identity | None
    device_ms: int | None


class Acked(NamedTuple):
    seq: int
    command: Message
    rtt_s: float
    duplicate: bool


class Nacked(NamedTuple):
    seq: int
    command: Message
    reason: int


class CommandFailed(NamedTuple):
    """No acknowledgement after every retry."""

    seq: int
    command: Message
    attempts: int


class LinkLost(NamedTuple):
    silent_s: float


class LinkRestored(NamedTuple):
    silent_s: float


LinkEvent = (
    Telemetry
    | FaultReport
    | Identified
    | DeviceReset
    | Acked
    | Nacked
    | CommandFailed
    | LinkLost
    | LinkRestored
)

#: Called for every frame in and out: (direction "rx" | "tx", time, sequence number, message).
Tracer = Callable[[str, float, int, Message], None]


class LinkHealth(NamedTuple):
    good: int
    bad: int
    bad_by_kind: dict[str, int]
    lost: int
    sent: int
    retries: int
    failed: int
    heartbeats: int
    last_rx_s: float | None
    rtt_s: float | None


class _Pending:
    __slots__ = ("attempts", "command", "first_sent", "last_sent", "msg_type", "wire")

    def __init__(self, command: Message, wire: bytes, now: float) -> None:
        self.command = command
        self.msg_type: int = LAYOUT_BY_CLASS[type(command)].msg_type
        self.wire = wire
        self.first_sent = now
        self.last_sent = now
        self.attempts = 1


class Link:
    """Host side of the link to one device."""

    def __init__(self, params: LinkParams | None = None, *, tracer: Tracer | None = None) -> None:
        self.params = params or LinkParams()
        self.tracer = tracer
        self.decoder = StreamDecoder()
        self.state = "idle"  # idle -> hello_sent -> open; back to idle on close or reset
        self.heartbeats_enabled = True
        self.session_nonce = 0
        self.identity: Identity | None = None
        self.lost = False
        self._hello_nonce = 0
        self._next_seq = 0
        self._pending: dict[int, _Pending] = {}
        self._last_tx: float | None = None
        self._last_rx: float | None = None  # last valid telemetry
        self._opened_at = 0.0
        self._device_ms: int | None = None
        self._sent = self._retries = self._failed = self._heartbeats = 0
        self._rtt: float | None = None
        self._quality: deque[tuple[float, int, int, int]] = deque()

    # --- sending ---------------------------------------------------------------

    def hello(self, host_nonce: int, now: float) -> bytes:
        """Start a device session: forget the old one, return the hello frame to write."""
        if not 0 < host_nonce <= U32:
            raise LinkError(f"host nonce must be 1..{U32}, got {host_nonce}")
        self.decoder.end_session()
        self._pending.clear()
        self.state = "hello_sent"
        self.identity = None
        self.session_nonce = 0
        self._device_ms = None
        self._hello_nonce = host_nonce
        self._opened_at = now
        return self._frame(Hello(host_nonce), self._take_seq(), 0, now)

    def send(self, command: Message, now: float) -> tuple[int, bytes]:
        """Number and encode a command; track it for acknowledgement unless it is a heartbeat.

        Energising commands without an expiry get one from the estimated device time.
        Returns the sequence number and the bytes to write.
        """
        if self.state != "open":
            raise LinkError(
                f"no device session (link is {self.state}); send hello and wait for the identity"
            )
        if is_energising(command) and not getattr(command, "expires_at_device_ms", 0):
            command = self._with_expiry(command, now)
        seq = self._take_seq()
        wire = self._frame(command, seq, self.session_nonce, now)
        if type(command) is Heartbeat:
            self._heartbeats += 1
        else:
            self._sent += 1
            self._pending[seq] = _Pending(command, wire, now)
        return seq, wire

    def device_ms_at(self, now: float) -> int | None:
        """Estimated device time now, from the last telemetry and the time since it arrived."""
        if self._device_ms is None or self._last_rx is None:
            return None
        return (self._device_ms + int((now - self._last_rx) * 1000.0)) & U32

    def _with_expiry(self, command: Message, now: float) -> Message:
        device_ms = self.device_ms_at(now)
        if device_ms is None:
            raise LinkError(
                "device time unknown (no telemetry yet): an energising command cannot expire"
            )
        expires = (device_ms + self.params.command_ttl_ms) & U32
        if isinstance(command, ValveCommand | StimConfigure | StimStart):
            return command._replace(expires_at_device_ms=expires)
        raise LinkError(f"{type(command).__name__} carries no expiry")  # pragma: no cover

    def _take_seq(self) -> int:
        seq = self._next_seq
        self._next_seq = (seq + 1) & U32
        return seq

    def _frame(self, message: Message, seq: int, nonce: int, now: float) -> bytes:
        self._last_tx = now
        if self.tracer is not None:
            self.tracer("tx", now, seq, message)
        return encode(message, seq, nonce)

    # --- receiving -------------------------------------------------------------

    def receive(self, data: bytes, now: float) -> list[LinkEvent]:
        """Feed bytes read from the port; return what they meant, in order."""
        frames = self.decoder.feed(data)
        if not frames:
            return []
        events: list[LinkEvent] = []
        unchecked = self.decoder.expected_nonce is None  # decoded before any session began
        for frame in frames:
            # A session opened earlier in this chunk: its rules apply to the rest of it.
            session_began = unchecked and self.decoder.expected_nonce is not None
            if session_began and not self.decoder.admit(frame):
                continue
            message = frame.message
            if self.tracer is not None:
                self.tracer("rx", now, frame.seq, message)
            if isinstance(message, Telemetry):
                self._on_telemetry(message, now, events)
            elif isinstance(message, Ack | Nack):
                self._on_reply(message, now, events)
            elif isinstance(message, FaultReport):
                events.append(message)
            elif isinstance(message, Identity):
                self._on_identity(frame, message, now, events)
            # Commands coming from the device side are not ours to execute: ignored.
        return events

    def _on_telemetry(self, t: Telemetry, now: float, events: list[LinkEvent]) -> None:
        if self.state != "open":
            return
        previous = self._device_ms
        if previous is not None and ((t.device_ms - previous) & U32) >= 1 << 31:
            events.append(DeviceReset("device_time_back", None, t.device_ms))
        self._device_ms = t.device_ms
        if self.lost:
            self.lost = False
            events.append(LinkRestored(now - (self._last_rx or self._opened_at)))
        self._last_rx = now
        events.append(t)

    def _on_reply(self, reply: Ack | Nack, now: float, events: list[LinkEvent]) -> None:
        pending = self._pending.get(reply.command_seq)
        if pending is None or reply.command_type != pending.msg_type:
            return  # a late reply to a command already given up on, or not ours
        del self._pending[reply.command_seq]
        if isinstance(reply, Ack):
            self._rtt = now - pending.last_sent
            duplicate = reply.status == AckStatus.DUPLICATE
            events.append(Acked(reply.command_seq, pending.command, self._rtt, duplicate))
        else:
            events.append(Nacked(reply.command_seq, pending.command, reply.reason))

    def _on_identity(
        self, frame: Frame, identity: Identity, now: float, events: list[LinkEvent]
    ) -> None:
        if (
            self.state == "hello_sent"
            and identity.host_nonce == self._hello_nonce
            and frame.nonce == identity.session_nonce
        ):
            self.state = "open"
            self.session_nonce = identity.session_nonce
            self.identity = identity
            self.lost = False
            self._last_rx = None
            self._opened_at = now
            self.decoder.start_session(identity.session_nonce, frame.seq)
            events.append(Identified(identity, frame.seq))
        elif self.state == "open" and identity.session_nonce != self.session_nonce:
            self.state = "idle"
            self.decoder.end_session()
            self._pending.clear()
            events.append(DeviceReset("unsolicited_identity", identity, None))

    # --- time passing --------------------------------------------------------------

    def poll(self, now: float) -> tuple[bytes, list[LinkEvent]]:
        """Do what time asks for: retries, failures, a heartbeat, loss detection.

        Call it on every turn of the control loop, after `receive`.
        """
        out = b""
        events: list[LinkEvent] = []
        if self._pending:
            out = self._retry(now, events)
        if self.state == "open":
            silent = now - (self._last_rx if self._last_rx is not None else self._opened_at)
            if not self.lost and silent >= self.params.link_lost_s:
                self.lost = True
                events.append(LinkLost(silent))
            if (
                self.heartbeats_enabled
                and self._last_tx is not None
                and now - self._last_tx >= self.params.heartbeat_s
            ):
                out += self.send(Heartbeat(), now)[1]
        self._sample_quality(now)
        return out, events

    def idle_s(self, now: float) -> float:
        """How long from `now` `poll` has nothing to do (no heartbeat, retry or loss check
        falls due): the longest a real-time loop may wait for input before polling again."""
        due = math.inf
        if self._pending:
            first = min(p.last_sent for p in self._pending.values())
            due = first + self.params.ack_timeout_s
        if self.state == "open":
            if not self.lost:
                heard = self._last_rx if self._last_rx is not None else self._opened_at
                due = min(due, heard + self.params.link_lost_s)
            if self.heartbeats_enabled and self._last_tx is not None:
                due = min(due, self._last_tx + self.params.heartbeat_s)
        return max(0.0, due - now)

    def _retry(self, now: float, events: list[LinkEvent]) -> bytes:
        out = b""
        timeout = self.params.ack_timeout_s
        for seq, pending in list(self._pending.items()):
            if now - pending.last_sent < timeout:
                continue
            if pending.attempts > self.params.max_retries:
                del self._pending[seq]
                self._failed += 1
                events.append(CommandFailed(seq, pending.command, pending.attempts))
                continue
            pending.attempts += 1
            pending.last_sent = now
            self._retries += 1
            self._last_tx = now
            if self.tracer is not None:
                self.tracer("tx", now, seq, pending.command)
            out += pending.wire
        return out

    def pending(self) -> dict[int, Message]:
        """Commands sent and not yet acknowledged, by sequence number."""
        return {seq: p.command for seq, p in self._pending.items()}

    def close(self) -> None:
        self.state = "idle"
        self.decoder.end_session()
        self._pending.clear()

    # --- health --------------------------------------------------------------------

    def health(self) -> LinkHealth:
        d = self.decoder
        return LinkHealth(
            good=d.good,
            bad=d.bad,
            bad_by_kind={k: v for k, v in d.errors.items() if v},
            lost=d.lost,
            sent=self._sent,
            retries=self._retries,
            failed=self._failed,
            heartbeats=self._heartbeats,
            last_rx_s=self._last_rx,
            rtt_s=self._rtt,
        )

    def _sample_quality(self, now: float) -> None:
        q = self._quality
        if q and now - q[-1][0] < 1.0:
            return
        d = self.decoder
        q.append((now, d.good, d.bad, d.lost))
        while len(q) > 2 and now - q[1][0] >= self.params.quality_window_s:
            q.popleft()

    def quality(self) -> tuple[int, int, int, float]:
        """(good, bad, lost, window_s) over the last quality window (SR-23).

        Counters are sampled once a second, so the window is 5 s to within 1 s.
        """
        q = self._quality
        if len(q) < 2:
            return 0, 0, 0, 0.0
        (t0, g0, b0, l0), (t1, g1, b1, l1) = q[0], q[-1]
        return g1 - g0, b1 - b0, l1 - l0, t1 - t0

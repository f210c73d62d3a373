"""A host in lockstep with one simulated device, for simulator tests in virtual time.

The host side is the daemon's real link (`drivers.link`), so these tests also
prove the two independent implementations of docs/protocol.md agree.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from drivers.link import Acked, Link, LinkEvent, LinkParams, Nacked
from protocols import Frame, Message, Telemetry, encode
from protocols.frontend import DEFAULT_THERMISTOR, EXHAUST_CHANNEL, SUPPLY_CHANNEL
from simulator.device import SimConfig, SimulatedDevice


@dataclass
class Bench:
    config: SimConfig = field(default_factory=SimConfig)
    dt_s: float = 0.001
    heartbeats: bool = True

    def __post_init__(self) -> None:
        self.dev = SimulatedDevice(self.config)
        self.link = Link(LinkParams(max_retries=0, ack_timeout_s=1.0))
        self.t = 0.0
        self.telemetry: list[Telemetry] = []
        self.events: list[LinkEvent] = []
        self.raw: list[bytes] = []

    # --- time ---------------------------------------------------------------
    def run(self, seconds: float) -> None:
        steps = round(seconds / self.dt_s)
        for _ in range(steps):
            self.dev.advance(self.dt_s)
            self.t += self.dt_s
            self._pump()
            out, events = self.link.poll(self.t)
            self._record(events)
            if out and self.heartbeats:
                self.dev.receive(out)

    def _pump(self) -> None:
        data = self.dev.transmit()
        if data:
            self.raw.append(data)
            self._record(self.link.receive(data, self.t))

    def _record(self, events: list[LinkEvent]) -> None:
        for e in events:
            if isinstance(e, Telemetry):
                self.telemetry.append(e)
            else:
                self.events.append(e)

    # --- host actions ---------------------------------------------------------
    def connect(self, host_nonce: int = 0xABC) -> None:
        self.dev.receive(self.link.hello(host_nonce, self.t))
        self.run(0.02)
        assert self.link.state == "open", self.events

    def send(self, message: Message) -> int:
        seq, wire = self.link.send(message, self.t)
        self.dev.receive(wire)
        self._pump()
        return seq

    def send_raw(self, message: Message, seq: int, nonce: int | None = None) -> None:
        """A frame built by hand (expired, foreign, stale...), bypassing the link's rules."""
        self.dev.receive(encode(message, seq, self.link.session_nonce if nonce is None else nonce))
        self._pump()

    def reply_to(self, seq: int) -> Acked | Nacked:
        for e in reversed(self.events):
            if isinstance(e, Acked | Nacked) and e.seq == seq:
                return e
        raise AssertionError(f"no reply to {seq}: {self.events[-5:]}")

    # --- readings -------------------------------------------------------------
    @property
    def last(self) -> Telemetry:
        return self.telemetry[-1]

    def tip_c(self, t: Telemetry | None = None) -> float:
        return DEFAULT_THERMISTOR.counts_to_c((t or self.last).tip_counts)

    def supply_psi(self, t: Telemetry | None = None) -> float:
        return SUPPLY_CHANNEL.counts_to_psig((t or self.last).supply_counts)

    def exhaust_psi(self, t: Telemetry | None = None) -> float:
        return EXHAUST_CHANNEL.counts_to_psig((t or self.last).exhaust_counts)

    def status(self) -> dict[str, Any]:
        return self.dev.status()


def frames_of(data: bytes) -> list[Frame]:
    from protocols import StreamDecoder

    return StreamDecoder().feed(data)

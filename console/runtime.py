"""The real-time shell: the one control thread that owns the clock and the port.

Each turn (DESIGN.md, "one tick"): read whatever bytes the port has (waiting
at most `read_wait_s`), let the connection decide, **write its bytes at
once**, then hand snapshots and notices to the slower consumers (records,
logs, the live view) in the same thread. Time is `time.monotonic()` (SR-28):
a wall-clock jump changes only logged wall times. The heartbeat comes from
this loop (SR-02), so a stalled loop stops it and the device makes itself
safe.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType

from console.connection import Connection, Notice, SafeStateReported
from console.loop import Loop
from drivers.snapshot import Snapshot
from drivers.transport import Transport
from protocols import Message

Clock = Callable[[], float]


class Runtime(Loop):
    def __init__(
        self,
        transport: Transport,
        connection: Connection,
        *,
        clock: Clock = time.monotonic,
        read_wait_s: float = 0.005,
        on_snapshot: Callable[[Snapshot], None] | None = None,
        on_notice: Callable[[Notice, float], None] | None = None,
        take_output: Callable[[], bytes] | None = None,
    ) -> None:
        self.transport = transport
        self.connection = connection
        self.clock = clock
        self.read_wait_s = read_wait_s
        self.on_snapshot = on_snapshot
        self.on_notice = on_notice
        self.take_output = take_output
        self.stop_signal: int | None = None

    def now(self) -> float:
        return self.clock()

    def write(self, data: bytes) -> None:
        if data:
            self.transport.write(data)

    def start(self) -> None:
        self.write(self.connection.open(self.clock()))

    def step(self) -> None:
        # Wait for the device's bytes, but never past the link's next heartbeat, retry or
        # loss check (SR-02, SR-03): `read_wait_s` bounds only how late anything else runs.
        wait = min(self.read_wait_s, self.connection.link.idle_s(self.clock()))
        self.turn(self.transport.read(wait), self.clock())

    def send(self, command: Message) -> None:
        self.write(self.connection.send(command, self.clock()))

    def run_until(self, done: Callable[[], bool], timeout_s: float) -> bool:
        """Turn the loop until `done()`, a stop signal, or `timeout_s`; True if done."""
        end = self.clock() + timeout_s
        while self.stop_signal is None and self.clock() < end:
            self.step()
            if done():
                return True
        return False

    def make_safe(self, reason: str, timeout_s: float = 1.0) -> bool:
        """The exit path (SR-01): command the safe state, wait for telemetry to confirm it."""
        conn = self.connection
        if conn.link.state != "open":
            return False
        wire, commanded = conn.safe_state(self.clock(), reason)
        self.write(wire)
        if self.on_notice is not None:
            self.on_notice(commanded, self.clock())
        stop, self.stop_signal = self.stop_signal, None
        seen: list[int] = []

        def confirmed() -> bool:
            last = conn.last
            return last is not None and last.t_s >= sent_at and _safe(last)

        sent_at = self.clock()
        ok = self.run_until(confirmed, timeout_s)
        if ok and conn.last is not None:
            seen.append(conn.last.device_ms)
            if self.on_notice is not None:
                self.on_notice(SafeStateReported(conn.last.device_ms), self.clock())
        self.stop_signal = stop
        return ok

    @contextmanager
    def signals(self) -> Iterator[None]:
        """SIGINT/SIGTERM set `stop_signal`; the loop then ends on its next turn."""

        def handler(signum: int, frame: FrameType | None) -> None:
            self.stop_signal = signum

        old = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, previous in old.items():
                signal.signal(sig, previous)


def _safe(snap: Snapshot) -> bool:
    return not snap.supply_open and not snap.inlet_open and snap.vent_open and not snap.stim_on

"""Virtual time: the console's connection and an in-process device in lockstep.

The device is anything that can be stepped (`SteppableDevice`: the simulator
satisfies it without either side importing the other, DESIGN.md). Bytes go
both ways through the real codec; the clock is a number advanced by `dt_s`,
so a 12-minute procedure runs in seconds and exactly reproduces from a seed.
Only the composition root (the CLI, the test fixtures) builds the simulator.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from console.connection import Connection, Notice
from console.loop import Loop
from drivers.snapshot import Snapshot


class SteppableDevice(Protocol):
    def receive(self, data: bytes) -> None: ...

    def advance(self, dt_s: float) -> None: ...

    def transmit(self) -> bytes: ...


SnapshotSink = Callable[[Snapshot], None]
NoticeSink = Callable[[Notice, float], None]


class VirtualRunner(Loop):
    """Drives one connection against one device; the same five steps as the real-time loop."""

    def __init__(
        self,
        connection: Connection,
        device: SteppableDevice,
        *,
        dt_s: float = 0.005,
        on_snapshot: SnapshotSink | None = None,
        on_notice: NoticeSink | None = None,
        take_output: Callable[[], bytes] | None = None,
        after_advance: Callable[[], None] | None = None,
    ) -> None:
        self.connection = connection
        self.device = device
        self.dt_s = dt_s
        self.now = 0.0
        self.on_snapshot = on_snapshot
        self.on_notice = on_notice
        #: The decisions the callbacks took (commands), written in the same turn.
        self.take_output = take_output
        #: Called once the device has advanced, before the console reads it (test tools).
        self.after_advance = after_advance
        self.snapshots = 0

    def start(self) -> None:
        self.device.receive(self.connection.open(self.now))

    def write(self, data: bytes) -> None:
        if data:
            self.device.receive(data)

    def step(self) -> None:
        """One turn: time passes, read, decide, write; the same order as the real-time loop."""
        self.device.advance(self.dt_s)
        self.now = self.now + self.dt_s
        if self.after_advance is not None:
            self.after_advance()
        self.snapshots += self.turn(self.device.transmit(), self.now)

    def run(self, seconds: float) -> None:
        for _ in range(round(seconds / self.dt_s)):
            self.step()

    def run_until(self, done: Callable[[], bool], max_s: float) -> bool:
        """Step until `done()` or `max_s` of virtual time; True if done."""
        end = self.now + max_s
        while self.now < end - 1e-9:
            self.step()
            if done():
                return True
        return False

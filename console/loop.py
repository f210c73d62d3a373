"""One turn of the control loop, the same under both clocks (DESIGN.md, "One tick, end to end").

Read whatever arrived, let the connection decide and write its bytes at once,
then hand snapshots and notices to the consumers (the controller, which writes
its own decisions in the same turn), and only then the slower work.
"""

from __future__ import annotations

from collections.abc import Callable

from console.connection import Connection, Notice
from drivers.snapshot import Snapshot


class Loop:
    """Base of the real-time runtime and the virtual-time runner; subclasses own `write`."""

    connection: Connection
    on_snapshot: Callable[[Snapshot], None] | None
    on_notice: Callable[[Notice, float], None] | None
    take_output: Callable[[], bytes] | None
    #: After each input's decisions were written: the records' commit (SR-22). True when
    #: it did something that may have decided more (a commit, failed or not).
    after_input: Callable[[], bool] | None = None

    def write(self, data: bytes) -> None:
        raise NotImplementedError

    def settle(self) -> None:
        """Write what the consumers decided, then commit its records, before the next input.

        A commit failure may itself decide (SR-31: the safe state): written at once too.
        """
        take, after = self.take_output, self.after_input
        if take is not None:
            self.write(take())
        if after is not None and after() and take is not None:
            self.write(take())

    def turn(self, data: bytes, now: float) -> int:
        """Handle the bytes read at `now`; return how many snapshots they carried."""
        conn = self.connection
        events, urgent = conn.receive(data, now)
        if urgent:
            self.write(urgent)  # the fast path's safe state: before validation, logs, store
        snaps, notices, out = conn.digest(events, now)
        self.write(out)  # the connection's decisions first
        on_snapshot, on_notice = self.on_snapshot, self.on_notice
        if on_snapshot is not None:
            for snap in snaps:
                on_snapshot(snap)
                self.settle()
        if on_notice is not None:
            for notice in notices:
                on_notice(notice, now)
                self.settle()
        trip = conn.urgent
        if trip is not None:
            # The full path did not take the fast path's decision up: it stands.
            if on_notice is not None:
                on_notice(trip, now)
                self.settle()
            conn.urgent = None
        out, more = conn.poll(now)
        self.write(out)
        if on_notice is not None:
            for notice in more:
                on_notice(notice, now)
                self.settle()
        return len(snaps)

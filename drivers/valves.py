"""The three valves: intent -> commands, and commanded vs reported over device time (SR-09).

Every command the daemon sends updates what it wants; every telemetry frame
says what the position switches report. A disagreement that lasts
`mismatch_ms` of device time (SR-09: 100 ms, several times a healthy valve's
15 ms stroke) is reported with the device time it began. Device time, not the
host's clock, so the judgement is the same in virtual and real time (SR-28).
"""

from __future__ import annotations

from typing import NamedTuple

from protocols import SafeState, Telemetry, Valve, ValveBits, ValveCommand

VALVES = (Valve.SUPPLY, Valve.INLET, Valve.VENT)
NAMES = {Valve.SUPPLY: "supply", Valve.INLET: "inlet", Valve.VENT: "vent"}
SAFE_OPEN = {Valve.SUPPLY: False, Valve.INLET: False, Valve.VENT: True}
_BIT = {
    Valve.SUPPLY: int(ValveBits.SUPPLY_OPEN),
    Valve.INLET: int(ValveBits.INLET_OPEN),
    Valve.VENT: int(ValveBits.VENT_OPEN),
}
_SAFE_BITS = int(ValveBits.VENT_OPEN)
_POSITION_BITS = int(ValveBits.SUPPLY_OPEN | ValveBits.INLET_OPEN | ValveBits.VENT_OPEN)


class Mismatch(NamedTuple):
    valve: Valve
    commanded_open: bool
    reported_open: bool
    since_device_ms: int
    duration_ms: int


def reported_safe(t: Telemetry) -> bool:
    """Supply and inlet reported closed and the vent reported open (stimulation aside)."""
    return t.valves & _POSITION_BITS == _SAFE_BITS


class Valves:
    """What the daemon wants of each valve, checked against what the device reports."""

    __slots__ = ("_since", "commanded", "mismatch_ms")

    def __init__(self, mismatch_ms: int = 100) -> None:
        self.mismatch_ms = mismatch_ms
        #: Last commanded position per valve; the safe positions until told otherwise
        #: (the daemon commands the safe state first on every connection, SR-01).
        self.commanded: dict[Valve, bool] = dict(SAFE_OPEN)
        self._since: dict[Valve, int | None] = dict.fromkeys(VALVES)

    def command(self, valve: Valve, open: bool, *, max_open_ms: int = 0) -> ValveCommand:
        """The command for one valve; a supply open must carry its cap (SR-25)."""
        if valve == Valve.SUPPLY and open and max_open_ms <= 0:
            raise ValueError("a supply open must carry its maximum duration (SR-25)")
        self.commanded[valve] = open
        self._since[valve] = None  # a new intent restarts the clock
        return ValveCommand(valve, open, 0, max_open_ms if valve == Valve.SUPPLY and open else 0)

    def safe_state(self) -> SafeState:
        for valve in VALVES:
            if self.commanded[valve] != SAFE_OPEN[valve]:
                self._since[valve] = None
        self.commanded.update(SAFE_OPEN)
        return SafeState()

    def update(self, t: Telemetry) -> list[Mismatch]:
        """Mismatches that have lasted at least `mismatch_ms`, as of this sample."""
        bits = t.valves
        return self.judge(
            bool(bits & _BIT[Valve.SUPPLY]),
            bool(bits & _BIT[Valve.INLET]),
            bool(bits & _BIT[Valve.VENT]),
            t.device_ms,
        )

    def judge(self, supply: bool, inlet: bool, vent: bool, device_ms: int) -> list[Mismatch]:
        """`update` for positions already decoded (a snapshot)."""
        out: list[Mismatch] = []
        commanded = self.commanded
        for valve, reported in ((Valve.SUPPLY, supply), (Valve.INLET, inlet), (Valve.VENT, vent)):
            wanted = commanded[valve]
            if reported == wanted:
                self._since[valve] = None
                continue
            since = self._since[valve]
            if since is None:
                self._since[valve] = since = device_ms
            duration = device_ms - since
            if duration >= self.mismatch_ms:
                out.append(Mismatch(valve, wanted, reported, since, duration))
        return out

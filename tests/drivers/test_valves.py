"""The valve driver: commands, the safe state, commanded-vs-reported timing (SR-09)."""

from __future__ import annotations

import pytest

from drivers.valves import Valves, reported_safe
from protocols import SafeState, Telemetry, Valve, ValveBits, ValveCommand

SAFE = int(ValveBits.VENT_OPEN)
FREEZING = int(ValveBits.SUPPLY_OPEN | ValveBits.INLET_OPEN)


def tele(ms: int, valves: int) -> Telemetry:
    return Telemetry(ms, 0, 0, 0, valves, 0, 0, 0, 0, 0, 0, 0, 0)


def test_supply_open_must_carry_its_cap() -> None:
    """SR-25: every supply-open command carries its maximum duration."""
    v = Valves()
    with pytest.raises(ValueError, match="SR-25"):
        v.command(Valve.SUPPLY, True)
    assert v.command(Valve.SUPPLY, True, max_open_ms=182_000) == ValveCommand(
        Valve.SUPPLY, True, 0, 182_000
    )
    assert v.command(Valve.INLET, True, max_open_ms=5) == ValveCommand(Valve.INLET, True, 0, 0)


def test_a_moving_valve_is_not_a_mismatch() -> None:
    v = Valves()
    v.command(Valve.VENT, False)
    assert v.update(tele(0, SAFE)) == []
    assert v.update(tele(10, SAFE)) == []
    assert v.update(tele(20, 0)) == []  # reached after 15-20 ms


def test_disagreement_for_100_ms_is_reported_with_its_start() -> None:
    """SR-09: commanded and reported disagree for 100 ms."""
    v = Valves()
    v.command(Valve.SUPPLY, False)
    mismatches = [v.update(tele(ms, FREEZING | SAFE)) for ms in range(1000, 1110, 10)]
    assert all(m == [] for m in mismatches[:10])
    (supply, inlet) = mismatches[10]
    assert (supply.valve, supply.commanded_open, supply.reported_open) == (
        Valve.SUPPLY,
        False,
        True,
    )
    assert supply.since_device_ms == 1000 and supply.duration_ms == 100
    assert inlet.valve == Valve.INLET


def test_a_new_command_restarts_the_clock_and_agreement_clears_it() -> None:
    v = Valves()
    v.update(tele(0, SAFE | int(ValveBits.INLET_OPEN)))
    v.update(tele(90, SAFE | int(ValveBits.INLET_OPEN)))
    v.command(Valve.INLET, True)
    assert v.update(tele(100, SAFE | int(ValveBits.INLET_OPEN))) == []
    v.command(Valve.INLET, False)
    assert v.update(tele(110, SAFE | int(ValveBits.INLET_OPEN))) == []
    assert v.update(tele(200, SAFE | int(ValveBits.INLET_OPEN))) == []
    assert len(v.update(tele(210, SAFE | int(ValveBits.INLET_OPEN)))) == 1


def test_safe_state_updates_every_intent() -> None:
    v = Valves()
    v.command(Valve.VENT, False)
    v.command(Valve.INLET, True)
    assert v.safe_state() == SafeState()
    assert v.commanded == {Valve.SUPPLY: False, Valve.INLET: False, Valve.VENT: True}
    assert reported_safe(tele(0, SAFE)) and not reported_safe(tele(0, SAFE | FREEZING))

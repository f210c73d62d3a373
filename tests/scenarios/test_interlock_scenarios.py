"""Scenarios in Python for what the TOML library (tests/scenarios/*.toml) does not express yet.

Most safety requirements are proven by the scenario files of this folder, run
by test_library.py through `probe-console qa run`. The ones here need checks
the scenario language lacks (every sample after an alarm, a parametrised
fault). Each runs a whole procedure in virtual time (the scripted operator of
interfaces.md) against the in-process simulator with a fault from
docs/simulator.md, then checks the alarm, its priority, the outcome and exit
code, the safe state, the device-time bounds and that the probe was never
called safe to withdraw early. Bench-profile timings keep each run to a few
seconds of wall time; the rules are the clinical ones (SR-17: only durations
differ).
"""

from __future__ import annotations

from typing import Any

import pytest

from console.config import load_config
from console.simulation import SimulationResult, run_simulation
from simulator.device import SimConfig
from simulator.faults import parse_fault

BENCH = {
    "procedure.profile": "bench",
    "procedure.cycles": 1,
    "procedure.freeze_s": 40.0,
    "procedure.thaw_s": 10.0,
}


def scenario(*faults: str, gas: str = "N2O", **overrides: Any) -> SimulationResult:
    config = load_config(None, {**BENCH, "gas": gas, **overrides})
    return run_simulation(config, SimConfig(gas=gas, faults=tuple(parse_fault(f) for f in faults)))


def events(r: SimulationResult, name: str) -> list[dict[str, Any]]:
    return [e for e in r.events if e["event"] == name]


def raised(r: SimulationResult) -> dict[str, dict[str, Any]]:
    return {e["alarm"]: e for e in events(r, "alarm_raised")}


def assert_never_released_early(r: SimulationResult) -> None:
    """SR-12/SR-13: once locked, the probe is released only after the supply closed and a thaw."""
    flips = events(r, "withdraw_safe")
    if not flips:
        return
    assert flips[0]["safe"] is False
    closes = [
        e
        for e in events(r, "valve_reported")
        if e["valve"] == "supply" and not e["open"] and e["t_s"] > flips[0]["t_s"]
    ]
    for release in (f for f in flips if f["safe"]):
        assert closes and closes[0]["t_s"] < release["t_s"]
        warm = [
            t for t in events(r, "telemetry") if release["t_s"] - 1.0 <= t["t_s"] <= release["t_s"]
        ]
        timed = any(
            e["action"] == "confirm_timed_thaw" and e["accepted"]
            for e in events(r, "operator_action")
        )
        assert timed or all(t["tip_c"] is not None and t["tip_c"] >= 2.0 for t in warm)


def test_sr09_supply_stuck_open_is_isolated_by_the_inlet() -> None:
    """SR-09: a supply valve stuck open is isolated by closing the inlet."""
    config = load_config(None, {**BENCH, "procedure.cycles": 2})
    r = run_simulation(
        config, SimConfig(faults=(parse_fault("valve_stuck_open@thaw1+1"),)), max_virtual_s=300.0
    )
    alarm = raised(r)["ALM_VALVE_FAULT"]
    after = [t for t in events(r, "telemetry") if t["device_ms"] > alarm["device_ms"] + 100]
    assert after and all(not t["inlet_open"] and t["vent_open"] for t in after)
    assert after[-1]["supply_open"]  # still stuck: isolated, not closed
    assert r.locked and r.exit_code == 5  # never called safe: the supply never reported closed


@pytest.mark.parametrize("spec", ["thermistor_step@freeze1+20", "thermistor_short@thaw1+2"])
def test_sr10_implausible_readings(spec: str) -> None:
    """SR-10: a jump of more than 10 C within 100 ms, or a rail: ALM_TEMP_SENSOR."""
    r = scenario(spec)
    assert "ALM_TEMP_SENSOR" in raised(r)
    assert_never_released_early(r)


def test_sr10_stuck_thermistor_is_caught_before_no_flow() -> None:
    """SR-10 before SR-08: a reading stuck at the freeze start is a sensor fault, not no flow."""
    r = scenario("thermistor_stuck@localize+1")
    alarms = raised(r)
    assert "ALM_TEMP_SENSOR" in alarms and "ALM_NO_FLOW" not in alarms
    assert alarms["ALM_TEMP_SENSOR"]["limit"] == 2.0


def test_sr15_stimulation_stuck_on_prevents_the_freeze() -> None:
    """SR-15: stimulation that cannot be stopped: the device fault ends the procedure; the supply
    never opens while stimulation is on."""
    r = scenario("stim_stuck_on@localize+1")
    assert "ALM_DEVICE_FAULT" in raised(r)
    for t in events(r, "telemetry"):
        assert not (t["stim_on"] and t["supply_open"])
    assert r.outcome == "faulted" and not r.locked

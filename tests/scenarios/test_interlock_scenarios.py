"""One scenario per safety requirement: the simulator's fault, the console's answer, end to end.

Each runs a whole procedure in virtual time (the scripted operator of
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


def supply_closed_after_lock(r: SimulationResult) -> dict[str, Any]:
    """The first report of the supply closed after the probe was locked."""
    locked = next(e for e in events(r, "withdraw_safe") if not e["safe"])
    return next(
        e
        for e in events(r, "valve_reported")
        if e["valve"] == "supply" and not e["open"] and e["t_s"] >= locked["t_s"]
    )


def assert_safe_at_end(r: SimulationResult) -> None:
    """SR-01: the run ends with every valve reported at its safe position and stimulation off."""
    final = {e["valve"]: e["open"] for e in events(r, "valve_reported")}
    assert final == {"supply": False, "inlet": False, "vent": True}
    assert events(r, "stim_reported")[-1]["on"] is False
    assert (
        events(r, "safe_state_reported")[-1]["t_s"] >= events(r, "safe_state_commanded")[-1]["t_s"]
    )


@pytest.mark.parametrize("gas", ["N2O", "CO2"])
def test_nominal_bench_run_raises_no_alarm(gas: str) -> None:
    """The no-false-alarm side of SR-04..SR-16, SR-23, SR-32: a nominal run of each gas."""
    r = scenario(gas=gas)
    assert (r.outcome, r.exit_code) == ("completed", 0)
    assert raised(r) == {}
    assert_never_released_early(r)


def test_sr04_no_freeze_without_the_supply_window() -> None:
    """SR-04: the supply never reaches 600-800 psig: no freeze starts; 60 s in pressurize, fault."""
    r = scenario("cylinder_empty@localize+1")
    assert [e for e in events(r, "valve_reported") if e["valve"] == "supply" and e["open"]] == []
    assert (r.outcome, r.reason, r.exit_code, r.locked) == (
        "faulted",
        "pressurize_timeout",
        1,
        False,
    )
    pressurize = next(e for e in events(r, "state_changed") if e["to"] == "pressurize")
    fault = next(e for e in events(r, "state_changed") if e["to"] == "fault")
    assert fault["t_s"] - pressurize["t_s"] == pytest.approx(60.0, abs=0.05)


def test_sr04_a_freeze_starts_after_a_second_in_the_window() -> None:
    """SR-04: in a nominal run the supply was in the window for the last 1 s before the freeze."""
    r = scenario()
    freeze = next(e for e in events(r, "state_changed") if e["to"] == "freeze_1")
    window = [t for t in events(r, "telemetry") if freeze["t_s"] - 1.0 <= t["t_s"] <= freeze["t_s"]]
    assert len(window) >= 9 and all(600.0 <= t["supply_psi"] <= 800.0 for t in window)


def test_sr05_supply_overpressure() -> None:
    """SR-05: above 900 psig for 30 ms: safe state, ALM_SUPPLY_OVERPRESSURE (high), the end."""
    r = scenario("supply_overpressure@freeze1+5")
    alarm = raised(r)["ALM_SUPPLY_OVERPRESSURE"]
    assert alarm["priority"] == "high" and alarm["sr"] == ["SR-05"] and alarm["value"] > 900.0
    assert alarm["device_ms"] - alarm["first_over_device_ms"] >= 30
    assert r.outcome == "faulted" and r.reason == "supply_overpressure" and r.exit_code == 1
    assert_safe_at_end(r)
    assert_never_released_early(r)


def test_sr06_supply_low_ends_the_freeze_then_times_out() -> None:
    """SR-06: below 550 psig for 1 s: the freeze ends into its thaw (ALM_SUPPLY_LOW, medium);
    pressurize waits 60 s at most, then faulted with supply_low_timeout."""
    r = scenario("cylinder_empty@freeze1+10", **{"procedure.cycles": 2})
    alarm = raised(r)["ALM_SUPPLY_LOW"]
    assert alarm["priority"] == "medium"
    states = [e["to"] for e in events(r, "state_changed")]
    assert states[states.index("freeze_1") + 1] == "thaw_1"
    freeze = next(e for e in events(r, "state_changed") if e["from"] == "freeze_1")
    assert (
        freeze["t_s"] - next(e["t_s"] for e in events(r, "state_changed") if e["to"] == "freeze_1")
        < 20.0
    )
    assert (r.outcome, r.reason, r.exit_code) == ("faulted", "supply_low_timeout", 1)
    assert "freeze_2" not in states


def test_sr07_exhaust_blocked_closes_the_supply_within_100_ms_of_device_time() -> None:
    """SR-07: above 20 psig for 20 ms: safe state, ALM_EXHAUST_OVERPRESSURE; at most 100 ms of
    device time from the first sample over the limit to the supply reported closed."""
    for gas in ("N2O", "CO2"):
        r = scenario("exhaust_blocked@freeze1+5", gas=gas)
        alarm = raised(r)["ALM_EXHAUST_OVERPRESSURE"]
        assert alarm["priority"] == "high" and alarm["limit"] == 20.0
        closed = next(
            e
            for e in events(r, "valve_reported")
            if e["valve"] == "supply"
            and not e["open"]
            and e["device_ms"] >= alarm["first_over_device_ms"]
        )
        assert closed["device_ms"] - alarm["first_over_device_ms"] <= 100
        assert (r.outcome, r.reason) == ("faulted", "exhaust_overpressure")
        assert_safe_at_end(r)
        assert_never_released_early(r)


def test_sr07_exhaust_high_for_2_s() -> None:
    """SR-07: 15-20 psig for 2 s: ALM_EXHAUST_HIGH (medium), recorded."""
    r = scenario("exhaust_blocked:psi_per_s=2@freeze1+5")
    high = raised(r)["ALM_EXHAUST_HIGH"]
    assert high["priority"] == "medium"
    assert high["device_ms"] - high["first_over_device_ms"] >= 2000
    assert 15.0 <= high["value"] <= 20.0


def test_sr08_no_flow() -> None:
    """SR-08: supply open but exhaust below 5 psig after 2 s: ALM_NO_FLOW, the procedure ends."""
    r = scenario("orifice_clog:fraction=0.75@localize+1")
    alarm = raised(r)["ALM_NO_FLOW"]
    assert alarm["priority"] == "medium" and alarm["value"] < 5.0 and alarm["limit"] == 5.0
    assert alarm["device_ms"] - alarm["first_over_device_ms"] >= 2000
    assert (r.outcome, r.reason, r.exit_code) == ("faulted", "no_flow", 1)
    assert_never_released_early(r)


def test_sr09_valve_stuck_closed() -> None:
    """SR-09: commanded and reported disagree for 100 ms: ALM_VALVE_FAULT (high), safe state."""
    r = scenario("valve_stuck_closed@localize+1")
    alarm = raised(r)["ALM_VALVE_FAULT"]
    assert alarm["priority"] == "high"
    assert alarm["device_ms"] - alarm["first_over_device_ms"] >= 100
    assert r.outcome == "faulted" and r.reason == "valve_fault" and not r.locked
    assert_safe_at_end(r)


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


def test_sr10_thermistor_open_takes_the_timed_thaw() -> None:
    """SR-10, SR-13: ADC at a rail: ALM_TEMP_SENSOR (high), safe state; release only by the timed
    path (420 s after the supply closed plus confirm_timed_thaw)."""
    r = scenario("thermistor_open@freeze1+20")
    alarm = raised(r)["ALM_TEMP_SENSOR"]
    assert alarm["priority"] == "high" and alarm["value"] is None
    assert "ALM_THAW_SLOW" not in raised(r)  # SR-14 is suspended with the thermistor
    assert (r.outcome, r.reason, r.exit_code) == ("faulted", "temp_sensor", 1)
    closed = supply_closed_after_lock(r)
    release = next(e for e in events(r, "withdraw_safe") if e["safe"])
    assert release["t_s"] - closed["t_s"] >= 420.0
    confirm = [e for e in events(r, "operator_action") if e["action"] == "confirm_timed_thaw"]
    assert confirm and confirm[-1]["accepted"]


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


def test_sr11_weak_freeze_is_a_finding_and_the_procedure_continues() -> None:
    """SR-11: tip not at the target within 30 s of the reported open: ALM_WEAK_FREEZE (medium);
    the procedure continues."""
    r = scenario("orifice_clog:fraction=0.9@freeze1+2.5")
    alarm = raised(r)["ALM_WEAK_FREEZE"]
    assert alarm["priority"] == "medium" and alarm["value"] > -60.0 and alarm["limit"] == -60.0
    assert (r.outcome, r.exit_code) == ("completed", 0)


def test_sr14_thaw_too_slow_offers_the_timed_path() -> None:
    """SR-14: tip below +2 C 300 s after the supply closed: ALM_THAW_SLOW; the lock stays; the
    operator declares the thermistor suspect and confirms the timed thaw (SR-13)."""
    r = scenario("thermistor_stuck@thaw1+1")
    alarm = raised(r)["ALM_THAW_SLOW"]
    closed = supply_closed_after_lock(r)
    assert alarm["t_s"] - closed["t_s"] == pytest.approx(300.0, abs=0.05)
    release = next(e for e in events(r, "withdraw_safe") if e["safe"])
    assert release["t_s"] - closed["t_s"] >= 420.0
    actions = [e["action"] for e in events(r, "operator_action") if e["accepted"]]
    assert "declare_thermistor_suspect" in actions and "confirm_timed_thaw" in actions


def test_sr15_stimulation_stuck_on_prevents_the_freeze() -> None:
    """SR-15: stimulation that cannot be stopped: the device fault ends the procedure; the supply
    never opens while stimulation is on."""
    r = scenario("stim_stuck_on@localize+1")
    assert "ALM_DEVICE_FAULT" in raised(r)
    for t in events(r, "telemetry"):
        assert not (t["stim_on"] and t["supply_open"])
    assert r.outcome == "faulted" and not r.locked


def test_sr16_lead_off_stops_stimulation_and_the_operator_aborts() -> None:
    """SR-16: lead impedance above 20 kOhm: ALM_STIM_LEAD (low), stimulation stopped; abort."""
    r = scenario("stim_lead_off@localize+2")
    alarm = raised(r)["ALM_STIM_LEAD"]
    assert alarm["priority"] == "low" and alarm["limit"] == 20000.0
    stops = [e for e in events(r, "stim_commanded") if not e["on"] and e["t_s"] >= alarm["t_s"]]
    assert stops and stops[0]["t_s"] == alarm["t_s"]
    assert (r.outcome, r.reason, r.exit_code) == ("aborted", "operator_abort", 1)


def test_sr03_device_silent_mid_freeze() -> None:
    """SR-03: no valid telemetry for 250 ms: ALM_LINK_LOST, safe state, fault path, no resume."""
    r = scenario("device_silent:duration_s=2@freeze1+5")
    alarm = raised(r)["ALM_LINK_LOST"]
    assert alarm["priority"] == "high" and alarm["value"] >= 0.25
    assert (r.outcome, r.reason) == ("faulted", "link_lost")
    states = [e["to"] for e in events(r, "state_changed")]
    assert states.count("freeze_1") == 1
    assert_never_released_early(r)


def test_sr23_a_corrupting_line_is_degraded_but_the_procedure_completes() -> None:
    """SR-23: bad / (good + bad + lost) above 1 % over 5 s: ALM_LINK_DEGRADED (low), recorded;
    no corrupt frame accepted, nothing energised by one."""
    r = scenario("link_garbage:rate_hz=5,dir=to_host@freeze1+1")
    alarm = raised(r)["ALM_LINK_DEGRADED"]
    assert alarm["priority"] == "low" and alarm["value"] > 0.01
    assert (r.outcome, r.exit_code) == ("completed", 0)


def test_sr32_pressure_sensor_at_a_rail() -> None:
    """SR-32: a pressure channel at a rail for 30 ms: ALM_PRESSURE_SENSOR (high), safe state."""
    r = scenario("pressure_sensor_fail@freeze1+5")
    alarm = raised(r)["ALM_PRESSURE_SENSOR"]
    assert alarm["priority"] == "high"
    assert alarm["device_ms"] - alarm["first_over_device_ms"] >= 30
    assert "ALM_EXHAUST_OVERPRESSURE" not in raised(r)  # the failed sensor's rules are suspended
    assert (r.outcome, r.reason) == ("faulted", "pressure_sensor")
    assert_safe_at_end(r)


def test_sr32_device_reset_is_never_resumed() -> None:
    """SR-32: a firmware reset mid-freeze: ALM_DEVICE_RESET, SR-01, re-identification, no resume."""
    r = scenario("firmware_reset@freeze1+5")
    assert raised(r)["ALM_DEVICE_RESET"]["priority"] == "high"
    assert len(events(r, "device_identified")) == 2
    states = [e["to"] for e in events(r, "state_changed")]
    assert states.count("freeze_1") == 1 and "fault" in states
    assert r.outcome == "faulted" and r.reason == "device_reset"

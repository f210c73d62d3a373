"""Each driver reading the simulated device: engineering units agree with the simulator's truth."""

from __future__ import annotations

import math

import pytest

from drivers.pressure import PressureFlag
from drivers.snapshot import Snapshots
from drivers.stimulator import StimSettings, Stimulator
from drivers.thermistor import Thermistor, TipFlag
from drivers.valves import Valves
from protocols import Telemetry, Valve
from simulator.device import SimConfig
from simulator.faults import parse_fault
from tests.simulator.bench import Bench


def freezing(*faults: str, seconds: float = 10.0, gas: str = "N2O") -> tuple[Bench, Valves]:
    bench = Bench(SimConfig(gas=gas, faults=tuple(parse_fault(f) for f in faults)), dt_s=0.01)
    bench.connect()
    valves = Valves()
    for valve, is_open in ((Valve.VENT, False), (Valve.INLET, True)):
        bench.send(valves.command(valve, is_open))
    bench.run(1.0)
    bench.send(valves.command(Valve.SUPPLY, True, max_open_ms=60_000))
    bench.run(seconds)
    return bench, valves


@pytest.mark.parametrize(("gas", "floor"), [("N2O", -91.5), ("CO2", -81.5)])
def test_snapshots_agree_with_the_truth_while_freezing(gas: str, floor: float) -> None:
    bench, _ = freezing(gas=gas)
    snaps = Snapshots(Thermistor(floor_c=floor))
    truth = bench.dev.physics
    snap = snaps.convert(bench.last, bench.t)
    assert snap.tip_c == pytest.approx(truth.tip_c, abs=0.3)
    assert snap.supply_psi == pytest.approx(truth.supply_psi, abs=1.0)
    assert snap.exhaust_psi == pytest.approx(truth.exhaust_psi, abs=1.0)
    assert snap.supply_open and snap.inlet_open and not snap.vent_open
    assert (snap.tip_flags, snap.supply_flags, snap.exhaust_flags) == (0, 0, 0)


def test_thermistor_faults_reach_the_driver_flags() -> None:
    """SR-10: the driver flags rails and jumps as the simulator produces them."""
    bench, _ = freezing("thermistor_step@freeze1+3", seconds=4.0)
    th = Thermistor(floor_c=-91.5)
    flags = [th.judge(t.tip_counts, t.device_ms)[1] for t in bench.telemetry]
    assert any(f & TipFlag.TOO_FAST for f in flags)
    bench, _ = freezing("thermistor_open@freeze1+1", seconds=2.0)
    tip_c, flag = Thermistor(floor_c=-91.5).judge(bench.last.tip_counts, bench.last.device_ms)
    assert math.isnan(tip_c) and flag == TipFlag.RAIL_HIGH


def test_pressure_sensor_rail_reaches_the_driver() -> None:
    """SR-32: a rail from the simulated sensor is flagged by the driver."""
    bench, _ = freezing("pressure_sensor_fail@freeze1+1", seconds=2.0)
    snap = Snapshots(Thermistor(floor_c=-91.5)).convert(bench.last, bench.t)
    assert snap.exhaust_flags == PressureFlag.RAIL_HIGH and snap.supply_flags == 0


def test_valve_driver_sees_a_stuck_supply() -> None:
    """SR-09: commanded closed, reported open, for 100 ms of device time."""
    bench, valves = freezing("valve_stuck_open@freeze1+1", seconds=2.0)
    bench.send(valves.command(Valve.SUPPLY, False))
    mismatches: list[object] = []

    def watch(t: Telemetry) -> None:
        mismatches.extend(valves.update(t))

    n = len(bench.telemetry)
    bench.run(0.3)
    for t in bench.telemetry[n:]:
        watch(t)
    assert mismatches
    first = mismatches[0]
    assert first.valve == Valve.SUPPLY and first.duration_ms >= 100  # type: ignore[attr-defined]


def test_stimulator_driver_reads_the_simulated_electrode() -> None:
    """SR-16: measured current and lead impedance; an open lead is not ok."""
    stim = Stimulator()
    bench = Bench(SimConfig(faults=(parse_fault("stim_lead_off@localize+1"),)), dt_s=0.01)
    bench.connect()
    bench.send(stim.configure(StimSettings(0.45, 100, 2)))
    bench.send(stim.start())
    bench.run(0.5)
    reading = stim.reading(bench.last)
    assert reading.on and reading.current_ma == pytest.approx(0.45) and reading.lead_ok
    bench.run(1.0)
    reading = stim.reading(bench.last)
    assert reading.current_ma == 0.0 and reading.lead_ohm == math.inf and not reading.lead_ok

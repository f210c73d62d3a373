"""Every fault of the interfaces.md table changes what the device reports as docs/simulator.md says.

Each test runs the device in virtual time through the daemon's own link and
looks only at what crosses the wire (plus STATUS, the simulator's side
channel), which is what the console will see.
"""

from __future__ import annotations

import math

import pytest

from drivers.link import Acked, DeviceReset, LinkLost
from protocols import (
    FaultFlags,
    SafeState,
    StimConfigure,
    StimStart,
    StimStop,
    Valve,
    ValveCommand,
)
from protocols.frontend import ADC_MAX, LEAD_OPEN
from simulator.device import SimConfig, SimulatedDevice
from simulator.faults import FAULTS, FaultSpecError, fault_help, parse_fault
from tests.simulator.bench import Bench

OPEN_SUPPLY = ValveCommand(Valve.SUPPLY, True, 0, 240_000)


def freezing(*faults: str, gas: str = "N2O", seconds: float = 20.0, dt_s: float = 0.01) -> Bench:
    """Connected, pressurised and freezing for `seconds`, with `faults` scheduled."""
    bench = Bench(SimConfig(gas=gas, faults=tuple(parse_fault(f) for f in faults)), dt_s=dt_s)
    bench.connect()
    bench.send(ValveCommand(Valve.VENT, False))
    bench.send(ValveCommand(Valve.INLET, True))
    bench.run(1.0)
    bench.send(OPEN_SUPPLY)
    bench.run(seconds)
    return bench


def test_the_table_of_interfaces_md_is_complete() -> None:
    expected = {
        "exhaust_blocked": {"psi_per_s": 250.0},
        "supply_leak": {"psi_per_s": 3.0},
        "cylinder_empty": {},
        "supply_overpressure": {"psi": 950.0, "psi_per_s": 500.0},
        "valve_stuck_open": {"valve": "supply"},
        "valve_stuck_closed": {"valve": "supply"},
        "thermistor_open": {},
        "thermistor_short": {},
        "thermistor_drift": {"c_per_s": 0.5},
        "thermistor_stuck": {},
        "thermistor_step": {"c": 25.0},
        "pressure_sensor_fail": {"sensor": "exhaust", "mode": "rail_high"},
        "orifice_clog": {"fraction": 0.9},
        "liquid_carryover": {},
        "stim_stuck_on": {},
        "stim_lead_off": {},
        "firmware_reset": {},
        "device_silent": {"duration_s": math.inf},
        "link_drop": {"duration_s": 1.0, "dir": "both"},
        "link_garbage": {"rate_hz": 50.0, "dir": "both"},
        "link_corrupt": {"ber": 1e-4, "dir": "both"},
        "link_duplicate": {"rate_hz": 5.0, "dir": "both"},
        "link_replay": {"rate_hz": 5.0, "dir": "both"},
        "link_delay": {"delay_ms": 50.0, "dir": "both"},
        "link_foreign_nonce": {"rate_hz": 1.0},
    }
    assert set(FAULTS) == set(expected)
    for name, keys in expected.items():
        defaults = {k: key.default for k, key in FAULTS[name].keys.items()}
        assert keys.items() <= defaults.items(), name
        assert "duration_s" in defaults
    text = fault_help()
    assert all(name in text for name in expected)


@pytest.mark.parametrize(
    ("spec", "phase", "index", "offset"),
    [
        ("exhaust_blocked", "time", 0, 0.0),
        ("exhaust_blocked@95.5", "time", 0, 95.5),
        ("exhaust_blocked@freeze2+30", "freeze", 2, 30.0),
        ("thermistor_step@thaw1+5.5", "thaw", 1, 5.5),
        ("stim_lead_off@localize+2", "localize", 1, 2.0),
        ("link_drop:duration_s=2,dir=to_host@freeze1", "freeze", 1, 0.0),
    ],
)
def test_fault_syntax(spec: str, phase: str, index: int, offset: float) -> None:
    parsed = parse_fault(spec)
    assert (parsed.when.phase, parsed.when.index, parsed.when.offset_s) == (phase, index, offset)
    assert parse_fault(str(parsed)) == parsed


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        ("no_such_fault", "unknown fault"),
        ("exhaust_blocked:speed=3", "takes psi_per_s"),
        ("exhaust_blocked:psi_per_s=fast", "not a number"),
        ("exhaust_blocked:psi_per_s=nan", "not a number"),
        ("exhaust_blocked:psi_per_s=inf", "out of range"),
        ("valve_stuck_open:valve=drain", "must be one of"),
        ("exhaust_blocked@-3", "seconds >= 0"),
        ("exhaust_blocked@freeze0", "is not a phase"),
        ("exhaust_blocked@later", "is not a phase"),
    ],
)
def test_bad_fault_specs_are_refused_with_a_reason(spec: str, words: str) -> None:
    with pytest.raises(FaultSpecError, match=words):
        parse_fault(spec)


def test_a_phase_fault_starts_when_the_device_sees_that_phase() -> None:
    bench = freezing("exhaust_blocked@freeze1+2", seconds=1.5)
    assert bench.exhaust_psi() < 15.0
    bench.run(1.0)
    started = [e for e in bench.dev.fault_events if e.started]
    assert len(started) == 1
    assert started[0].t_s == pytest.approx(bench.dev.freeze_starts[0] + 2.0, abs=0.011)


def test_a_fault_ends_after_its_duration() -> None:
    bench = Bench(SimConfig(faults=(parse_fault("thermistor_open:duration_s=0.5@0.2"),)), dt_s=0.01)
    bench.connect()
    bench.run(0.3)
    assert bench.last.tip_counts == ADC_MAX
    bench.run(0.6)
    assert bench.last.tip_counts < ADC_MAX
    assert [e.started for e in bench.dev.fault_events] == [True, False]


def test_exhaust_blocked_crosses_20_psig_within_100_ms_and_the_tip_warms() -> None:
    """SR-07's premise: the blockage crosses 20 psig within 100 ms of onset, peaks below 50."""
    bench = freezing("exhaust_blocked@freeze1+20", seconds=19.9, dt_s=0.001)
    tip_before = bench.tip_c()
    n = len(bench.telemetry)
    bench.run(3.0)
    onset = bench.dev.fault_events[0].t_s * 1000.0
    after = bench.telemetry[n:]
    first_over = next(t for t in after if bench.exhaust_psi(t) > 20.0)
    assert first_over.device_ms - onset <= 100
    assert max(bench.exhaust_psi(t) for t in after) < 50.0
    assert bench.tip_c() > tip_before + 5.0


def test_supply_leak_shows_as_decay_with_inlet_and_vent_closed() -> None:
    """SR-24's premise: a leak decays the isolated line; without it the line holds."""
    for spec, rate in (("supply_leak", 3.0), ("supply_leak:psi_per_s=0.5", 0.5), (None, 0.0)):
        faults = (parse_fault(spec),) if spec else ()
        bench = Bench(SimConfig(faults=faults), dt_s=0.01)
        bench.connect()
        bench.send(ValveCommand(Valve.VENT, False))
        bench.send(ValveCommand(Valve.INLET, True))
        bench.run(2.0)
        bench.send(ValveCommand(Valve.INLET, False))
        bench.run(0.5)
        start = sum(bench.supply_psi(t) for t in bench.telemetry[-20:]) / 20
        bench.run(10.0)
        end = sum(bench.supply_psi(t) for t in bench.telemetry[-20:]) / 20
        assert (start - end) / 10.0 == pytest.approx(rate, abs=0.15), spec


def test_cylinder_empty_collapses_the_supply() -> None:
    """SR-06's premise."""
    bench = freezing("cylinder_empty@freeze1+5", seconds=15.0)
    assert bench.supply_psi() < 300.0


def test_supply_overpressure_passes_900_psig() -> None:
    """SR-05's premise: a failed regulator on a warm cylinder."""
    bench = freezing("supply_overpressure@freeze1+2", seconds=4.0)
    assert bench.supply_psi() > 900.0


@pytest.mark.parametrize("name", ["valve_stuck_open", "valve_stuck_closed"])
def test_stuck_valves_ignore_commands_and_the_device_flags_it(name: str) -> None:
    """SR-09's premise: commanded and reported disagree; the device's own check flags a fault."""
    bench = Bench(SimConfig(faults=(parse_fault(f"{name}:valve=inlet"),)), dt_s=0.01)
    bench.connect()
    bench.send(ValveCommand(Valve.INLET, name == "valve_stuck_closed"))
    bench.run(0.5)
    assert bench.last.inlet_open is (name == "valve_stuck_open")
    assert bench.last.fault_flags & FaultFlags.VALVE_FEEDBACK


def test_thermistor_faults() -> None:
    """SR-10's premises: rails, drift, stuck, step."""
    bench = Bench(
        SimConfig(faults=(parse_fault("thermistor_open@1"), parse_fault("thermistor_short@2")))
    )
    bench.dt_s = 0.01
    bench.connect()
    bench.run(1.5)
    assert bench.last.tip_counts == ADC_MAX
    bench.run(1.0)
    assert bench.last.tip_counts == 0

    bench = Bench(SimConfig(faults=(parse_fault("thermistor_drift:c_per_s=2@1"),)), dt_s=0.01)
    bench.connect()
    bench.run(6.0)
    assert bench.tip_c() - bench.dev.physics.tip_c == pytest.approx(10.0, abs=0.5)

    bench = freezing("thermistor_stuck@freeze1+1", seconds=8.0)
    stuck = [t.tip_counts for t in bench.telemetry[-300:]]
    assert len(set(stuck)) == 1 and bench.dev.physics.tip_c < bench.tip_c() - 20

    bench = Bench(SimConfig(faults=(parse_fault("thermistor_step@1"),)), dt_s=0.01)
    bench.connect()
    bench.run(0.95)
    before = bench.tip_c()
    bench.run(0.1)
    assert bench.tip_c() - before == pytest.approx(25.0, abs=0.5)


@pytest.mark.parametrize(
    ("spec", "field", "expected"),
    [
        ("pressure_sensor_fail", "exhaust_counts", ADC_MAX),
        ("pressure_sensor_fail:mode=rail_low", "exhaust_counts", 0),
        ("pressure_sensor_fail:sensor=supply", "supply_counts", ADC_MAX),
    ],
)
def test_pressure_sensor_rails(spec: str, field: str, expected: int) -> None:
    """SR-32's premise: a pressure channel at a rail."""
    bench = freezing(f"{spec}@freeze1+1", seconds=2.0)
    assert getattr(bench.last, field) == expected


def test_pressure_sensor_frozen() -> None:
    bench = freezing("pressure_sensor_fail:sensor=supply,mode=frozen@freeze1+1", seconds=3.0)
    assert len({t.supply_counts for t in bench.telemetry[-150:]}) == 1


def test_orifice_clog_lowers_flow_and_warms_the_tip() -> None:
    nominal = freezing(seconds=40.0)
    clogged = freezing("orifice_clog@freeze1+5", seconds=40.0)
    assert clogged.exhaust_psi() < nominal.exhaust_psi() - 5.0
    assert clogged.tip_c() > nominal.tip_c() + 10.0


def test_liquid_carryover_is_colder_and_dips_the_supply() -> None:
    nominal = freezing(seconds=30.0)
    carry = freezing("liquid_carryover@freeze1+5", seconds=30.0)
    assert carry.tip_c() < nominal.tip_c() - 1.0
    assert carry.supply_psi() < nominal.supply_psi() - 20.0


def test_stim_stuck_on_ignores_stop_and_the_device_flags_it() -> None:
    """SR-15's premise: stimulation reported on although stopped."""
    bench = Bench(SimConfig(faults=(parse_fault("stim_stuck_on@localize+1"),)), dt_s=0.01)
    bench.connect()
    bench.send(StimConfigure(100, 100, 2))
    bench.send(StimStart())
    bench.run(1.5)
    bench.send(StimStop())
    bench.run(0.5)
    assert bench.last.stim_on
    assert bench.last.fault_flags & FaultFlags.STIM_HARDWARE


def test_stim_lead_off_reads_open_and_no_current() -> None:
    """SR-16's premise: lead impedance above 20 kOhm."""
    bench = Bench(SimConfig(faults=(parse_fault("stim_lead_off@localize+1"),)), dt_s=0.01)
    bench.connect()
    bench.send(StimConfigure(100, 100, 2))
    bench.send(StimStart())
    bench.run(0.5)
    assert bench.last.stim_measured_10ua == 100 and bench.last.lead_impedance_10ohm < 2000
    bench.run(1.0)
    assert bench.last.lead_impedance_10ohm == LEAD_OPEN and bench.last.stim_measured_10ua == 0


def test_firmware_reset_is_seen_as_a_device_reset_in_the_safe_state() -> None:
    """SR-32's premise: new nonce, time restarts, safe state."""
    bench = freezing("firmware_reset@freeze1+2", seconds=3.0)
    assert any(isinstance(e, DeviceReset) for e in bench.events)
    status = bench.status()
    assert not status["valves"]["supply"]["open"] and status["valves"]["vent"]["open"]
    assert status["device_ms"] < 1500 and not status["session_open"]


def test_device_silent_stops_transmitting_but_obeys() -> None:
    """SR-03's premise: silence in one direction; the device still takes the safe state."""
    bench = freezing("device_silent@freeze1+1", seconds=2.0)
    assert any(isinstance(e, LinkLost) for e in bench.events)
    n = len(bench.telemetry)
    bench.send(SafeState())
    bench.run(0.5)
    assert len(bench.telemetry) == n
    assert not bench.status()["valves"]["supply"]["open"]


def test_link_drop_loses_bytes_for_its_duration() -> None:
    bench = freezing("link_drop:dir=to_host@freeze1+1", seconds=3.0)
    assert any(isinstance(e, LinkLost) for e in bench.events)
    assert bench.link.health().lost >= 90


def test_link_drop_toward_the_device_trips_its_watchdog() -> None:
    """SR-02/SR-03: one direction failing is enough for the device watchdog."""
    bench = freezing("link_drop:dir=to_device,duration_s=1@freeze1+1", seconds=2.0)
    assert not bench.status()["valves"]["supply"]["open"]


@pytest.mark.parametrize(
    ("spec", "kinds"),
    [
        ("link_garbage:dir=to_host", {"cobs", "short", "crc", "length", "oversize"}),
        ("link_corrupt:ber=1e-3,dir=to_host", {"cobs", "short", "crc", "length", "payload"}),
        ("link_duplicate:dir=to_host", {"duplicate"}),
        ("link_replay:dir=to_host", {"duplicate"}),
        ("link_foreign_nonce", {"nonce"}),
    ],
)
def test_link_faults_show_as_counted_bad_frames(spec: str, kinds: set[str]) -> None:
    """SR-23's premise: the daemon's decoder counts what the line did, and nothing crashes."""
    bench = freezing(f"{spec}@freeze1+1", seconds=10.0)
    health = bench.link.health()
    assert health.bad > 0
    assert set(health.bad_by_kind) <= kinds
    assert health.good > 500  # garbage without a delimiter spoils the frame it lands in


def test_link_delay_delays_the_answers() -> None:
    bench = freezing("link_delay:delay_ms=50,dir=to_host@freeze1+1", seconds=2.0)
    seq = bench.send(SafeState())
    bench.run(0.2)
    reply = bench.reply_to(seq)
    assert isinstance(reply, Acked) and reply.rtt_s >= 0.05 - 1e-9


def test_same_seed_and_faults_give_the_same_bytes() -> None:
    def run() -> bytes:
        bench = freezing("link_corrupt:ber=1e-4@freeze1+1", "link_garbage@3", seconds=5.0)
        return b"".join(bench.raw)

    assert run() == run()


def test_status_is_json_safe() -> None:
    import json

    dev = SimulatedDevice(SimConfig(faults=(parse_fault("stim_lead_off"),)))
    dev.advance(0.1)
    text = json.dumps(dev.status(), allow_nan=False)
    assert '"valves"' in text and '"gas_left_g"' in text

"""The first-order physics against the facts it was built from (`domain.md`).

Virtual time only: every test steps the model; nothing sleeps. The figures
each test checks serve the safety requirement named in its docstring: the
console's rules are only as meaningful as the device they are tested on.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import cache

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulator.gas import boiling_point_c, saturation_psig
from simulator.physics import (
    PHYSICS_FAULTS,
    SLOW_TICK_S,
    VALVE_NAMES,
    Physics,
    PhysicsError,
    PhysicsParams,
)

GASES = ("N2O", "CO2")
DT = 0.01
# The tip may never change faster than this (issue 3); the model caps itself a little lower.
MAX_RATE_C_PER_S = 60.0


def run(
    physics: Physics, seconds: float, dt: float = DT, each: Callable[[], None] | None = None
) -> None:
    """Step ``physics`` for ``seconds`` of device time, calling ``each`` after every step."""
    for _ in range(round(seconds / dt)):
        physics.step(dt)
        if each is not None:
            each()


def pressurized(gas: str = "N2O", dt: float = DT, **overrides: float) -> Physics:
    """A device in `pressurize`: vent closed, inlet open, the line full (2 s)."""
    physics = Physics(PhysicsParams(gas=gas, **overrides))  # type: ignore[arg-type]
    physics.command_valve("vent", False)
    physics.command_valve("inlet", True)
    run(physics, 2.0, dt)
    return physics


def freezing(gas: str = "N2O", seconds: float = 30.0, dt: float = DT) -> Physics:
    """A device whose supply valve has been open for ``seconds``."""
    physics = pressurized(gas, dt)
    physics.command_valve("supply", True)
    run(physics, seconds, dt)
    return physics


@dataclass(frozen=True)
class Thaw:
    """What a procedure's final thaw looked like, timed from the supply close."""

    plateau_s: float
    tip_clear_s: float
    free_s: float
    max_tip_while_iced_c: float
    inter_cycle_max_tip_c: float
    inter_cycle_ever_free: bool
    ice_at_close_j: float


def procedure(
    cycles: int, freeze_s: float, thaw_s: float = 30.0, gas: str = "N2O", dt: float = DT
) -> Thaw:
    """The valve sequence of `interfaces.md` (pressurize, freeze, thaw, ..., final thaw)."""
    physics = pressurized(gas, dt)
    inter_max = -math.inf
    inter_free = False
    for cycle in range(cycles):
        physics.command_valve("supply", True)
        run(physics, freeze_s, dt)
        physics.command_valve("supply", False)
        if cycle < cycles - 1:
            for _ in range(round(thaw_s / dt)):
                physics.step(dt)
                inter_max = max(inter_max, physics.tip_c)
                inter_free = inter_free or physics.probe_free
    ice_at_close = physics.ice_j
    physics.command_valve("inlet", False)
    physics.command_valve("vent", True)
    plateau = clear = free = math.nan
    max_iced = -math.inf
    t = 0.0
    while t < 900.0 and (math.isnan(clear) or math.isnan(free)):
        physics.step(dt)
        t += dt
        if physics.tip_iced:
            max_iced = max(max_iced, physics.tip_c)
        if math.isnan(plateau) and physics.tip_c >= -1.0:
            plateau = t
        if math.isnan(clear) and physics.tip_c >= 2.0:
            clear = t
        if math.isnan(free) and physics.probe_free:
            free = t
    return Thaw(plateau, clear, free, max_iced, inter_max, inter_free, ice_at_close)


@cache
def cached_procedure(cycles: int, freeze_s: float) -> Thaw:
    return procedure(cycles, freeze_s)


def within(value: float, fact: float, tolerance: float = 0.25) -> bool:
    return abs(value - fact) <= tolerance * fact


# -- gas data --------------------------------------------------------------------


def test_n2o_boiling_point_is_the_domain_table_and_extends_monotonically() -> None:
    """SR-10: the floor the console's plausibility check is built on (domain.md)."""
    for psig, celsius in ((0, -88.5), (10, -79.3), (15, -75.8), (25, -69.9)):
        assert boiling_point_c("N2O", psig) == pytest.approx(celsius, abs=1e-9)
    values = [boiling_point_c("N2O", p / 4) for p in range(0, 4 * 50 + 1)]
    assert all(b > a for a, b in itertools.pairwise(values))
    # Clausius-Clapeyron beyond the table: about -59 C at the probe's 50 psig rating.
    assert -62.0 < boiling_point_c("N2O", 50) < -56.0
    assert boiling_point_c("N2O", -3.0) == -88.5


def test_co2_sublimation_point_and_snow_range() -> None:
    """SR-10: -78.5 C at 0 psig; about -72..-69 C at 10-15 psig exhaust (domain.md)."""
    assert boiling_point_c("CO2", 0) == pytest.approx(-78.5)
    assert -72.5 <= boiling_point_c("CO2", 10) <= -71.0
    assert -70.0 <= boiling_point_c("CO2", 15) <= -68.5
    values = [boiling_point_c("CO2", p / 4) for p in range(0, 4 * 50 + 1)]
    assert all(b > a for a, b in itertools.pairwise(values))


def test_saturation_pressure_at_20_c() -> None:
    assert saturation_psig("N2O", 20.0) == pytest.approx(718.3)
    assert saturation_psig("CO2", 20.0) == pytest.approx(816.3)
    # Slopes near 20 C: 16.6 and 19.5 psi/K (domain.md).
    assert (saturation_psig("N2O", 21) - saturation_psig("N2O", 19)) / 2 == pytest.approx(
        16.6, abs=1.0
    )
    assert (saturation_psig("CO2", 21) - saturation_psig("CO2", 19)) / 2 == pytest.approx(
        19.5, abs=1.5
    )


# -- valves ----------------------------------------------------------------------


def test_start_up_is_the_unpowered_state() -> None:
    """SR-01: normally-closed supply and inlet, normally-open vent, nothing flowing."""
    physics = Physics()
    assert not physics.supply_open and not physics.inlet_open and physics.vent_open
    assert physics.supply_psi == 0.0 and physics.exhaust_psi == 0.0
    assert physics.tip_c == 37.0 and physics.probe_free and not physics.stim_on


def test_valves_take_valve_move_s_and_report_at_the_end_of_travel() -> None:
    """SR-09: the limit switch flips when the motion completes (15 ms by default)."""
    physics = Physics()
    physics.command_valve("supply", True)
    assert physics.valve_commanded_open("supply")
    positions = []
    for _ in range(14):
        physics.step(0.001)
        positions.append(physics.valve_position("supply"))
        assert not physics.valve_reported_open("supply")
    assert positions == pytest.approx([(i + 1) / 15 for i in range(14)])
    physics.step(0.001)
    assert physics.valve_position("supply") == 1.0 and physics.supply_open

    physics.command_valve("vent", False)
    run(physics, 0.014, 0.001)
    assert physics.vent_open
    physics.step(0.001)
    assert not physics.vent_open


def test_flow_scales_with_the_valve_position() -> None:
    physics = pressurized()
    physics.command_valve("supply", True)
    physics.step(0.005)
    third = physics.flow_g_per_s
    run(physics, 0.010, 0.005)
    full = physics.flow_g_per_s
    assert third == pytest.approx(full / 3, rel=0.02)
    assert 0.1 <= full <= 0.2


@pytest.mark.parametrize("valve", VALVE_NAMES)
def test_stuck_valves_ignore_commands(valve: str) -> None:
    """SR-09: a stuck valve goes to (or stays in) its stuck position whatever is commanded."""
    physics = Physics()
    physics.set_fault("valve_stuck_open", {"valve": valve})
    physics.command_valve(valve, False)  # type: ignore[arg-type]
    run(physics, 0.1)
    assert physics.valve_reported_open(valve)  # type: ignore[arg-type]
    assert not physics.valve_commanded_open(valve)  # type: ignore[arg-type]

    physics.set_fault("valve_stuck_closed", {"valve": valve})
    physics.command_valve(valve, True)  # type: ignore[arg-type]
    run(physics, 0.1)
    assert not physics.valve_reported_open(valve)  # type: ignore[arg-type]
    # Clearing the other direction leaves it stuck; clearing its own releases it.
    physics.clear_fault("valve_stuck_open", {"valve": valve})
    run(physics, 0.1)
    assert not physics.valve_reported_open(valve)  # type: ignore[arg-type]
    physics.clear_fault("valve_stuck_closed", {"valve": valve})
    run(physics, 0.1)
    assert physics.valve_reported_open(valve)  # type: ignore[arg-type]


def test_supply_valve_stuck_open_is_isolated_by_closing_the_inlet() -> None:
    """SR-09: with the supply stuck open, closing the inlet starves the probe."""
    physics = freezing(seconds=20.0)
    physics.set_fault("valve_stuck_open")
    physics.command_valve("supply", False)
    run(physics, 1.0)
    assert physics.supply_open and physics.cooling
    physics.command_valve("inlet", False)
    run(physics, 30.0)
    assert physics.supply_psi < 50.0
    assert physics.exhaust_psi < 1.0
    assert not physics.cooling


# -- supply line -----------------------------------------------------------------


@pytest.mark.parametrize("gas", GASES)
def test_supply_fills_to_the_regulator_and_droops_a_little_while_freezing(gas: str) -> None:
    """SR-04/SR-06: in the 600-800 psig window pressurised and while flowing."""
    physics = Physics(PhysicsParams(gas=gas))  # type: ignore[arg-type]
    physics.command_valve("vent", False)
    physics.command_valve("inlet", True)
    run(physics, 1.0)
    assert 690.0 <= physics.supply_psi <= 700.0
    physics.command_valve("supply", True)
    low, high = math.inf, -math.inf

    def watch() -> None:
        nonlocal low, high
        low, high = min(low, physics.supply_psi), max(high, physics.supply_psi)

    run(physics, 60.0, each=watch)
    assert 600.0 <= low <= high <= 800.0
    assert physics.supply_psi < 695.0  # it does droop


def test_cold_cylinder_supply_follows_the_cylinder_below_the_set_point() -> None:
    """SR-04: a 10 C N2O cylinder (565 psig) cannot reach the window."""
    physics = pressurized(cylinder_c=10.0)
    assert physics.supply_psi == pytest.approx(saturation_psig("N2O", 10.0), abs=1.0)
    assert physics.supply_psi < 600.0


def test_line_holds_with_inlet_and_vent_closed() -> None:
    """SR-24: no leak fault, no decay: a healthy device passes the leak test."""
    physics = pressurized()
    physics.command_valve("inlet", False)
    run(physics, 1.0)
    start = physics.supply_psi
    run(physics, 60.0)
    assert physics.supply_psi == pytest.approx(start, abs=1e-6)


@pytest.mark.parametrize("psi_per_s", [1.0, 3.0, 10.0])
def test_leak_decays_at_its_rate(psi_per_s: float) -> None:
    """SR-24: the leak shows as decay at psi_per_s with inlet and vent closed."""
    physics = pressurized()
    physics.command_valve("inlet", False)
    run(physics, 0.5)
    physics.set_fault("supply_leak", {"psi_per_s": psi_per_s})
    start = physics.supply_psi
    run(physics, 10.0)
    assert start - physics.supply_psi == pytest.approx(10.0 * psi_per_s, rel=1e-6)
    physics.clear_fault("supply_leak")
    held = physics.supply_psi
    run(physics, 5.0)
    assert physics.supply_psi == pytest.approx(held)


def test_vent_empties_the_line() -> None:
    """SR-01: the safe state (vent open, inlet closed) leaves no pressure in the line."""
    physics = pressurized()
    physics.command_valve("inlet", False)
    physics.command_valve("vent", True)
    run(physics, 0.3)
    assert physics.supply_psi < 0.45 * 700.0
    run(physics, 2.0)
    assert physics.supply_psi < 5.0


# -- exhaust and tip -------------------------------------------------------------


@pytest.mark.parametrize("gas", GASES)
def test_exhaust_while_flowing_and_after_closing(gas: str) -> None:
    """SR-07/SR-08: 11-13.5 psig mean while flowing, 0 psig once closed."""
    physics = freezing(gas, 5.0)
    samples: list[float] = []
    run(physics, 60.0, each=lambda: samples.append(physics.exhaust_psi))
    assert 11.0 <= sum(samples) / len(samples) <= 13.5
    physics.command_valve("supply", False)
    run(physics, 0.5)
    assert physics.exhaust_psi < 0.5
    run(physics, 2.5)
    assert physics.exhaust_psi == 0.0


def test_exhaust_scales_down_with_the_supply() -> None:
    """SR-08: an emptied line means no flow, hence no exhaust pressure."""
    physics = freezing(seconds=5.0)
    flowing, full = physics.exhaust_psi, physics.supply_psi
    physics.command_valve("inlet", False)
    run(physics, 3.0)
    assert physics.supply_psi < 0.7 * full
    assert physics.exhaust_psi == pytest.approx(flowing * physics.supply_psi / full, rel=0.05)
    run(physics, 40.0)
    assert physics.exhaust_psi < 0.1


@pytest.mark.parametrize("gas", GASES)
@pytest.mark.parametrize("dt", [0.001, 0.01])
def test_tip_cools_fast_but_never_faster_than_60_c_per_s(gas: str, dt: float) -> None:
    """SR-10/SR-11: -40 C within a few seconds, steady near the floor, 60 C/s at most.

    Checked at every step, freezing and thawing, at 1 ms and 10 ms.
    """
    physics = pressurized(gas, dt)
    physics.command_valve("supply", True)
    previous = physics.tip_c
    worst_rate = 0.0
    reached_minus_40_s = math.nan
    closest_to_floor = math.inf
    t = 0.0

    def watch() -> None:
        nonlocal previous, worst_rate, reached_minus_40_s, closest_to_floor, t
        t += dt
        worst_rate = max(worst_rate, abs(physics.tip_c - previous) / dt)
        previous = physics.tip_c
        closest_to_floor = min(closest_to_floor, physics.tip_c - physics.boiling_point_c)
        if math.isnan(reached_minus_40_s) and physics.tip_c <= -40.0:
            reached_minus_40_s = t

    run(physics, 30.0, dt, watch)
    steady = physics.tip_c
    physics.command_valve("supply", False)
    run(physics, 30.0, dt, watch)
    assert reached_minus_40_s <= 4.0
    assert worst_rate <= MAX_RATE_C_PER_S
    assert closest_to_floor >= 0.0
    if gas == "N2O":
        assert -80.0 <= steady <= -75.0
        assert steady <= -60.0  # SR-11's target
    else:
        assert -72.0 <= steady <= -68.0
        assert steady <= -50.0


def test_tip_warms_without_flow() -> None:
    """A 3 s freeze leaves a film of ice: the tip rises to the plateau, then past +2 C."""
    physics = freezing(seconds=3.0)
    cold = physics.tip_c
    assert cold < -30.0 and physics.tip_iced
    physics.command_valve("supply", False)
    run(physics, 2.0)
    assert physics.tip_c > cold + 25.0
    run(physics, 8.0)
    assert physics.tip_c >= 2.0


# -- exhaust blockage --------------------------------------------------------------


@pytest.mark.parametrize("gas", GASES)
def test_exhaust_blockage_crosses_20_psig_within_100_ms_and_peaks_below_50(gas: str) -> None:
    """SR-07: the blockage crosses 20 psig within 100 ms of onset, peak below 50 psig.

    The tip warms with the rising boiling point, and once the supply closes the
    trapped gas bleeds slowly.
    """
    physics = freezing(gas, 60.0, dt=0.001)
    tip_before = physics.tip_c
    physics.set_fault("exhaust_blocked")
    crossed_s = math.nan
    peak = 0.0
    previous = physics.tip_c
    worst_rate = 0.0
    for i in range(1, 10_001):
        physics.step(0.001)
        peak = max(peak, physics.exhaust_psi)
        worst_rate = max(worst_rate, abs(physics.tip_c - previous) / 0.001)
        previous = physics.tip_c
        if math.isnan(crossed_s) and physics.exhaust_psi > 20.0:
            crossed_s = i * 0.001
    assert crossed_s <= 0.100
    assert peak < 50.0
    assert physics.tip_c > tip_before + 10.0
    assert physics.tip_c >= physics.boiling_point_c
    assert worst_rate <= MAX_RATE_C_PER_S

    physics.command_valve("supply", False)
    run(physics, 1.0)
    one_s = physics.exhaust_psi
    run(physics, 4.0)
    assert 20.0 < physics.exhaust_psi < one_s  # bleeding, slowly
    physics.clear_fault("exhaust_blocked")
    run(physics, 1.0)
    assert physics.exhaust_psi < 0.1


def test_blocked_exhaust_rises_at_its_rate_only_while_gas_flows() -> None:
    """SR-07: psi_per_s is the rise rate; no flow, no rise."""
    physics = freezing(seconds=5.0)
    physics.set_fault("exhaust_blocked", {"psi_per_s": 100.0})
    start = physics.exhaust_psi
    run(physics, 0.05, 0.001)
    rise = physics.exhaust_psi - start
    assert 4.0 <= rise <= 5.0  # 100 psi/s * ~0.97 flow * 50 ms, less the slow bleed
    idle = pressurized()
    idle.set_fault("exhaust_blocked")
    run(idle, 1.0)
    assert idle.exhaust_psi == 0.0


# -- thaw and ice ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("cycles", "freeze_s", "tip_clear_fact_s"),
    [(1, 180.0, 100.0), (3, 180.0, 195.0), (3, 240.0, 220.0)],
)
def test_thaw_times_match_the_domain_figures(
    cycles: int, freeze_s: float, tip_clear_fact_s: float
) -> None:
    """SR-12/SR-13/SR-14: plateau within ~10 s, never above 0 C while iced, tip >= +2 C
    within 25 % of domain.md, and the whole probe free 75-120 s (within 25 %) later.
    """
    thaw = cached_procedure(cycles, freeze_s)
    assert thaw.plateau_s <= 10.0
    assert thaw.max_tip_while_iced_c <= 0.0
    assert within(thaw.tip_clear_s, tip_clear_fact_s)
    if cycles == 1:
        assert 75.0 <= thaw.tip_clear_s <= 125.0
        assert within(thaw.free_s, 2.0 * thaw.tip_clear_s)
    assert 75.0 * 0.75 <= thaw.free_s - thaw.tip_clear_s <= 120.0 * 1.25
    # SR-13: the slowest passive thaw frees the probe at about 340 s, well inside 420 s.
    assert thaw.free_s < 420.0
    if (cycles, freeze_s) == (3, 240.0):
        assert within(thaw.free_s, 340.0)
    # SR-14: none of these is "thaw too slow".
    assert thaw.tip_clear_s < 300.0


@pytest.mark.parametrize(("cycles", "freeze_s"), [(3, 180.0), (3, 240.0)])
def test_inter_cycle_thaw_never_frees_the_probe(cycles: int, freeze_s: float) -> None:
    """SR-12: 30 s between cycles only warms the ice; the tip stays at or below 0 C."""
    thaw = cached_procedure(cycles, freeze_s)
    assert thaw.inter_cycle_max_tip_c <= 0.0
    assert not thaw.inter_cycle_ever_free


def test_inter_cycle_thaw_warms_the_ice_and_melts_only_its_outside() -> None:
    """SR-12: the 30 s thaw first pays back the ice's sensible cold (its inside warms to
    0 C, the latent heat stays), then melts the outer shell; the tip stays on the plateau
    and most of the ball is there for the next freeze."""
    physics = freezing(seconds=180.0)
    physics.command_valve("supply", False)
    run(physics, 2 * SLOW_TICK_S)  # the valve's travel, and the last tick with gas in it
    ice = physics.ice_j
    run(physics, 3.0)
    assert physics.ice_j == ice
    run(physics, 27.0)
    assert 0.5 * ice < physics.ice_j < ice
    assert physics.tip_iced and -1.0 <= physics.tip_c <= 0.0


def test_tip_clears_before_the_probe_is_free_and_returns_toward_body_temperature() -> None:
    """SR-12: the distal tip clears first; the probe is free later; then 37 C."""
    physics = freezing(seconds=120.0)
    physics.command_valve("supply", False)
    seen_clear_while_stuck = False
    while not physics.probe_free:
        physics.step(DT)
        if physics.tip_c >= 2.0 and not physics.probe_free:
            seen_clear_while_stuck = True
    assert seen_clear_while_stuck
    assert physics.ice_j == 0.0
    run(physics, 120.0)
    assert physics.tip_c > 30.0


def test_short_freeze_thaws_in_seconds_and_is_never_free_below_0_c() -> None:
    """SR-13: an abort seconds into a freeze (bench profile) thaws quickly: the film of ice
    a 5 s freeze leaves is gone in seconds."""
    physics = freezing(seconds=5.0)
    physics.command_valve("supply", False)
    t = 0.0
    while not physics.probe_free:
        assert physics.tip_c < 0.0 or physics.tip_cold_j == 0.0
        physics.step(DT)
        t += DT
    assert physics.tip_c >= 0.0
    assert t < 30.0


@pytest.mark.parametrize("gas", GASES)
def test_co2_and_n2o_both_thaw_with_a_plateau(gas: str) -> None:
    thaw = procedure(1, 120.0, gas=gas)
    assert thaw.plateau_s <= 10.0
    assert thaw.max_tip_while_iced_c <= 0.0
    assert thaw.tip_clear_s < thaw.free_s


# -- step size and determinism -----------------------------------------------------


def test_one_and_ten_ms_steps_agree() -> None:
    """The figures above do not depend on the step: 1 ms and 10 ms agree closely."""
    fine = freezing(seconds=0.0, dt=0.001)
    coarse = freezing(seconds=0.0, dt=0.01)
    worst = {"tip_c": 0.0, "supply_psi": 0.0, "exhaust_psi": 0.0, "ice_j": 0.0}
    for phase_s in (30.0, 30.0):  # freezing, then thawing
        for _ in range(round(phase_s)):
            run(fine, 1.0, 0.001)
            run(coarse, 1.0, 0.01)
            for name in worst:
                difference = abs(getattr(fine, name) - getattr(coarse, name))
                worst[name] = max(worst[name], difference)
        fine.command_valve("supply", False)
        coarse.command_valve("supply", False)
    assert worst["tip_c"] < 0.5
    assert worst["supply_psi"] < 1.0
    assert worst["exhaust_psi"] < 0.1
    assert worst["ice_j"] < 1.0
    fine_thaw = procedure(1, 30.0, dt=0.001)
    coarse_thaw = procedure(1, 30.0, dt=0.01)
    assert fine_thaw.tip_clear_s == pytest.approx(coarse_thaw.tip_clear_s, abs=0.5)
    assert fine_thaw.free_s == pytest.approx(coarse_thaw.free_s, abs=0.5)


def _trajectory(dt: float) -> list[tuple[float, ...]]:
    physics = pressurized(dt=dt)
    physics.command_valve("supply", True)
    physics.set_fault("orifice_clog", {"fraction": 0.3})
    samples: list[tuple[float, ...]] = []

    def sample() -> None:
        samples.append(
            (
                physics.supply_psi,
                physics.exhaust_psi,
                physics.tip_c,
                physics.ice_j,
                physics.gas_used_g,
            )
        )

    run(physics, 20.0, dt, sample)
    physics.command_valve("supply", False)
    run(physics, 20.0, dt, sample)
    return samples


def test_same_parameters_give_identical_trajectories() -> None:
    """Determinism: the simulator's runs are reproducible bit for bit."""
    assert _trajectory(0.01) == _trajectory(0.01)
    assert _trajectory(0.003) == _trajectory(0.003)


# -- gas faults --------------------------------------------------------------------


@pytest.mark.parametrize("gas", GASES)
def test_cylinder_empty_collapses_the_supply_within_seconds(gas: str) -> None:
    """SR-06: with the liquid gone the supply falls below 550 psig within a few seconds."""
    physics = freezing(gas, 20.0)
    physics.set_fault("cylinder_empty")
    run(physics, 3.0)
    assert physics.supply_psi < 550.0
    run(physics, 5.0)
    assert physics.supply_psi < 50.0 and not physics.cooling
    physics.clear_fault("cylinder_empty")
    run(physics, 5.0)
    assert 600.0 <= physics.supply_psi <= 800.0


def test_gas_used_follows_the_flow() -> None:
    """A 3 x 3 min procedure uses ~80 g (domain.md, cylinder row)."""
    physics = pressurized()
    before = physics.gas_used_g
    assert 0.5 < before < 1.5  # the line's own content
    for _ in range(3):
        physics.command_valve("supply", True)
        run(physics, 180.0)
        physics.command_valve("supply", False)
        run(physics, 30.0)
    assert 60.0 <= physics.gas_used_g <= 100.0
    assert physics.gas_left_g == pytest.approx(3000.0 - physics.gas_used_g)


@pytest.mark.parametrize("gas", GASES)
def test_supply_overpressure_rises_toward_its_pressure(gas: str) -> None:
    """SR-05: a failed regulator takes the line above 900 psig (ramp at psi_per_s)."""
    physics = pressurized(gas)
    physics.set_fault("supply_overpressure")
    run(physics, 0.4)
    assert physics.regulator_psi == pytest.approx(900.0, abs=1.0)
    run(physics, 0.6)
    assert physics.supply_psi > 900.0
    run(physics, 2.0)
    assert physics.supply_psi == pytest.approx(950.0, abs=1.0)
    physics.clear_fault("supply_overpressure")
    run(physics, 2.0)
    assert physics.supply_psi == pytest.approx(700.0, abs=1.0)
    closed = pressurized(gas)
    closed.command_valve("inlet", False)
    closed.set_fault("supply_overpressure", {"psi": 1000.0, "psi_per_s": 200.0})
    run(closed, 3.0)
    assert closed.supply_psi < 701.0  # the inlet isolates the line


@pytest.mark.parametrize("gas", GASES)
def test_orifice_clog_cuts_the_flow_and_the_tip_warms(gas: str) -> None:
    """SR-08/SR-11: the default clog (0.9) leaves the exhaust below 5 psig and a weak freeze."""
    physics = freezing(gas, 60.0)
    flow, exhaust, tip = physics.flow_g_per_s, physics.exhaust_psi, physics.tip_c
    physics.set_fault("orifice_clog")
    run(physics, 30.0)
    assert physics.flow_g_per_s == pytest.approx(0.1 * flow, rel=0.05)
    assert physics.exhaust_psi < 5.0 < exhaust
    assert physics.tip_c > tip + 30.0
    assert physics.tip_c > (-60.0 if gas == "N2O" else -50.0)
    physics.clear_fault("orifice_clog")
    run(physics, 20.0)
    assert physics.tip_c == pytest.approx(tip, abs=0.5)


@pytest.mark.parametrize("gas", GASES)
def test_liquid_carryover_is_colder_faster_and_dips_the_supply(gas: str) -> None:
    normal = freezing(gas, 0.0)
    carry = freezing(gas, 0.0)
    carry.set_fault("liquid_carryover")
    times = {}
    for name, physics in (("normal", normal), ("carry", carry)):
        t = 0.0
        while physics.tip_c > -40.0:
            physics.step(DT)
            t += DT
        times[name] = t
        run(physics, 30.0)
    assert times["carry"] < 0.7 * times["normal"]
    assert carry.tip_c < normal.tip_c - 1.0
    assert carry.tip_c >= carry.boiling_point_c
    assert 600.0 <= carry.supply_psi < normal.supply_psi - 40.0


# -- stimulation and nerve -------------------------------------------------------


def test_stimulation_current_and_lead_impedance() -> None:
    """SR-15/SR-16: delivered current only when on; the lead check sees 2-5 kOhm or open."""
    physics = Physics()
    physics.configure_stim(1.0, 100.0, 2.0)
    assert physics.stim_current_ma == 0.0 and not physics.stim_on
    physics.set_stim(True)
    assert physics.stim_current_ma == 1.0
    assert 2000.0 <= physics.lead_impedance_ohm <= 5000.0
    physics.set_fault("stim_lead_off")
    assert physics.lead_impedance_ohm == math.inf
    assert physics.stim_current_ma == 0.0
    physics.clear_fault("stim_lead_off")
    assert physics.stim_current_ma == 1.0
    physics.set_stim(False)
    assert physics.stim_current_ma == 0.0


def test_stuck_stimulation_ignores_stop() -> None:
    """SR-15: stim_stuck_on keeps delivering after a stop."""
    physics = Physics()
    physics.configure_stim(0.5, 1000.0, 50.0)
    physics.set_stim(True)
    physics.set_fault("stim_stuck_on")
    physics.set_stim(False)
    assert physics.stim_on and physics.stim_current_ma == 0.5
    physics.clear_fault("stim_stuck_on")
    physics.set_stim(False)
    assert not physics.stim_on


@pytest.mark.parametrize(
    ("distance_mm", "low_ma", "high_ma"),
    [(0.0, 0.0, 0.2), (1.0, 0.3, 0.5), (2.0, 0.5, 2.0), (5.0, 5.0, 10.0), (8.0, 5.0, 20.0)],
)
def test_nerve_threshold_follows_distance(
    distance_mm: float, low_ma: float, high_ma: float
) -> None:
    """SR-16: near 0.3-0.5 mA, intraneural below 0.2 mA, far beyond the 5 mA limit."""
    physics = Physics(PhysicsParams(nerve_distance_mm=distance_mm))
    threshold = physics.nerve_threshold_ma(100.0)  # the motor preset's pulse
    assert low_ma < threshold < high_ma
    assert physics.nerve_responds(threshold + 0.01, 100.0, 2.0)
    assert not physics.nerve_responds(threshold - 0.01, 100.0, 2.0)
    # From 5 mm on, SR-16's 5 mA gets no response at any pulse width; intraneural,
    # any width responds below 0.2 mA.
    for pulse_us in (50.0, 100.0, 1000.0):
        assert physics.nerve_responds(5.0, pulse_us, 2.0) == (distance_mm < 5.0)
        assert (physics.nerve_threshold_ma(pulse_us) < 0.2) == (distance_mm == 0.0)


def test_longer_pulses_lower_the_threshold_a_little() -> None:
    physics = Physics()
    thresholds = [physics.nerve_threshold_ma(us) for us in (50.0, 100.0, 300.0, 1000.0)]
    assert thresholds == sorted(thresholds, reverse=True)
    assert 0.5 * thresholds[1] < thresholds[-1] < thresholds[1]
    assert not physics.nerve_responds(5.0, 100.0, 0.0)
    assert not physics.nerve_responds(5.0, 0.0, 2.0)


def test_nerve_responds_to_what_the_electrode_delivers() -> None:
    """The side channel (STATUS) follows the delivered current, not the set one."""
    physics = Physics()
    physics.configure_stim(1.0, 100.0, 2.0)
    assert not physics.nerve_responding
    physics.set_stim(True)
    assert physics.nerve_responding
    physics.set_fault("stim_lead_off")
    assert not physics.nerve_responding
    physics.clear_fault("stim_lead_off")
    physics.configure_stim(0.3, 100.0, 2.0)
    assert not physics.nerve_responding


# -- API checks --------------------------------------------------------------------


def test_fault_table_keys_and_defaults_match_interfaces_md() -> None:
    expected = {
        "exhaust_blocked": {"psi_per_s": 250.0},
        "supply_leak": {"psi_per_s": 3.0},
        "cylinder_empty": {},
        "supply_overpressure": {"psi": 950.0, "psi_per_s": 500.0},
        "orifice_clog": {"fraction": 0.9},
        "liquid_carryover": {},
        "valve_stuck_open": {"valve": "supply"},
        "valve_stuck_closed": {"valve": "supply"},
        "stim_lead_off": {},
        "stim_stuck_on": {},
    }
    assert {name: dict(info.keys) for name, info in PHYSICS_FAULTS.items()} == expected
    for info in PHYSICS_FAULTS.values():
        assert set(info.units) == set(info.keys) and info.summary


@pytest.mark.parametrize(
    ("name", "params"),
    [
        ("thermistor_open", {}),
        ("supply_leak", {"rate": 3.0}),
        ("supply_leak", {"psi_per_s": "fast"}),
        ("supply_leak", {"psi_per_s": -1.0}),
        ("orifice_clog", {"fraction": 1.5}),
        ("valve_stuck_open", {"valve": "exhaust"}),
        ("exhaust_blocked", {"psi_per_s": math.nan}),
    ],
)
def test_bad_faults_are_refused_and_change_nothing(
    name: str, params: dict[str, float | str]
) -> None:
    physics = Physics()
    with pytest.raises(PhysicsError):
        physics.set_fault(name, params)
    assert physics.faults == type(physics.faults)()


def test_faults_accept_numbers_given_as_text() -> None:
    """The fault spec parser may hand values over as they were written."""
    physics = Physics()
    physics.set_fault("supply_leak", {"psi_per_s": "2.5"})
    assert physics.faults.supply_leak_psi_per_s == 2.5


def test_bad_parameters_and_commands_are_refused() -> None:
    with pytest.raises(PhysicsError, match="gas"):
        PhysicsParams(gas="He")  # type: ignore[arg-type]
    with pytest.raises(PhysicsError, match="valve_move_s"):
        PhysicsParams(valve_move_s=0.0)
    with pytest.raises(PhysicsError, match="regulator_psig"):
        PhysicsParams(regulator_psig=-1.0)
    with pytest.raises(PhysicsError, match="feed_full_psi"):
        PhysicsParams(feed_full_psi=100.0)
    physics = Physics()
    with pytest.raises(PhysicsError, match="valve"):
        physics.command_valve("exhaust", True)  # type: ignore[arg-type]
    with pytest.raises(PhysicsError, match="dt_s"):
        physics.step(-0.01)
    physics.step(0.0)
    assert physics.time_s == 0.0


# -- invariants under random use -----------------------------------------------------

VALVE_ACTIONS = st.tuples(
    st.floats(0.0, 1.5),
    st.sampled_from(VALVE_NAMES),
    st.booleans(),
)
SOFT_FAULTS = (
    "supply_leak",
    "cylinder_empty",
    "supply_overpressure",
    "orifice_clog",
    "liquid_carryover",
)


@settings(max_examples=25, deadline=None)
@given(
    gas=st.sampled_from(GASES),
    dt=st.sampled_from([0.001, 0.005, 0.01, 0.02]),
    warm_up_s=st.floats(0.0, 20.0),
    actions=st.lists(VALVE_ACTIONS, min_size=1, max_size=25),
    faults=st.lists(
        st.tuples(st.integers(0, 24), st.sampled_from(SOFT_FAULTS), st.booleans()), max_size=6
    ),
)
def test_tip_never_below_its_floor_nor_faster_than_60_c_per_s(
    gas: str,
    dt: float,
    warm_up_s: float,
    actions: list[tuple[float, str, bool]],
    faults: list[tuple[int, str, bool]],
) -> None:
    """SR-10: whatever the valves do (and the faults but the blockage), the tip stays at or
    above the boiling point at the current exhaust, changes at most 60 C/s, and the
    pressures stay physical.
    """
    physics = freezing(gas, warm_up_s, dt)
    at_index = {index: (name, on) for index, name, on in faults}
    for index, (wait_s, valve, open_) in enumerate(actions):
        if index in at_index:
            name, on = at_index[index]
            (physics.set_fault if on else physics.clear_fault)(name)
        physics.command_valve(valve, open_)  # type: ignore[arg-type]
        for _ in range(max(1, round(wait_s / dt))):
            before = physics.tip_c
            physics.step(dt)
            assert abs(physics.tip_c - before) <= MAX_RATE_C_PER_S * dt + 1e-9
            assert physics.tip_c >= physics.boiling_point_c - 1e-9
            assert physics.tip_c <= 37.0 + 1e-9
            assert 0.0 <= physics.supply_psi <= 951.0
            assert 0.0 <= physics.exhaust_psi < 20.0
            if physics.tip_iced:
                assert physics.tip_c <= 0.0 or physics.cooling


@settings(max_examples=15, deadline=None)
@given(
    dt=st.sampled_from([0.001, 0.01, 0.02]),
    onset_s=st.floats(0.0, 30.0),
    psi_per_s=st.floats(100.0, 2000.0),
    open_s=st.floats(0.0, 2.0),
)
def test_blockage_never_exceeds_the_probe_rating(
    dt: float, onset_s: float, psi_per_s: float, open_s: float
) -> None:
    """SR-07: any blockage rate peaks below 50 psig; the tip still moves at most 60 C/s."""
    physics = freezing("N2O", onset_s, dt)
    physics.set_fault("exhaust_blocked", {"psi_per_s": psi_per_s})
    for seconds, supply_open in ((open_s, True), (5.0, False)):
        physics.command_valve("supply", supply_open)
        for _ in range(max(1, round(seconds / dt))):
            before = physics.tip_c
            physics.step(dt)
            assert physics.exhaust_psi < 50.0
            assert abs(physics.tip_c - before) <= MAX_RATE_C_PER_S * dt + 1e-9
            assert physics.tip_c >= boiling_point_c("N2O", 0.0)


def test_params_are_frozen_and_replaceable() -> None:
    params = PhysicsParams()
    with pytest.raises(AttributeError):
        params.gas = "CO2"  # type: ignore[misc]
    assert replace(params, gas="CO2").gas == "CO2"

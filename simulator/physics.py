"""The physics of the probe console: cylinder, gas, tip, ice ball, thaw, electrode, nerve.

This is the truth the simulated device measures: a separate sensor layer turns
it into ADC counts with seeded noise, and the emulated firmware drives the
valves, the stimulator and the faults through the methods below. The model is
sans-I/O and deterministic: `Physics.step` advances it by a time step the
caller chooses; nothing here reads a clock, sleeps or draws a random number,
so the same parameters and the same calls give the same trajectory, bit for
bit. The equations, their sources in `domain.md` and how well they match the
facts are in `docs/simulator.md, "Physics"`.

Every fast state relaxes with the exact exponential update
``x += (target - x) * (1 - exp(-dt / tau))``, so the result hardly depends on
the step (1 ms and 10 ms agree to a fraction of a degree or psi), and the
exponentials are computed once per distinct step size. The slow states (the
cylinder in `simulator/cylinder.py`, the ice ball in `simulator/ice.py`)
advance on a slow tick every `SLOW_TICK_S` of device time, whatever the step.
One `step` at 10 ms costs a few microseconds: a 1,100 s procedure is 110,000
of them and the whole stack must run at 300x real time (`DESIGN.md`, the
budget).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Final, Literal, get_args

from simulator.cylinder import Cylinder
from simulator.gas import GASES, GRID_CELLS_PER_PSI, GRID_LAST_CELL, GasName, boiling_grid
from simulator.ice import GAUGE_OD_MM, IceBall, IceParams, probe_radius_mm
from simulator.nerve import NerveModel, StimElectrode

__all__ = [
    "PHYSICS_FAULTS",
    "SLOW_TICK_S",
    "VALVE_NAMES",
    "FaultInfo",
    "Physics",
    "PhysicsError",
    "PhysicsFaults",
    "PhysicsParams",
    "ValveName",
]

ValveName = Literal["inlet", "supply", "vent"]
VALVE_NAMES: Final[tuple[ValveName, ...]] = get_args(ValveName)

FaultValue = float | str

# The cylinder and the ice ball change over seconds: they advance at this
# cadence of device time, whatever the step, so that a 10 ms step stays cheap.
SLOW_TICK_S: Final = 0.25
# A natural change of the cylinder pressure within one tick is taken at once;
# a larger one (emptied, refilled) is followed over cylinder_empty_tau_s.
_CYLINDER_SNAP_PSI: Final = 5.0

_GRID_CELLS_PER_PSI: Final = GRID_CELLS_PER_PSI
_GRID_LAST_CELL: Final = GRID_LAST_CELL


class PhysicsError(ValueError):
    """A parameter, fault or command the physics cannot take; the message says which."""


# Parameters the model divides by (time constants and references).
_DIVISORS: Final = frozenset(
    {
        "cylinder_empty_tau_s",
        "valve_move_s",
        "supply_fill_tau_s",
        "vent_tau_s",
        "probe_drain_tau_s",
        "flow_ref_psi",
        "exhaust_tau_s",
        "tip_cool_tau_s",
        "tip_thaw_tau_s",
        "tip_rewarm_tau_s",
        "cooled_length_mm",
        "ice_k_w_per_m_k",
        "tissue_k_w_per_m_k",
        "tissue_rho_c_j_per_ml_k",
        "ice_latent_j_per_ml",
        "shell_min_mm",
        "shell_rewarm_tau_s",
        "exhaust_trapped_tau_s",
        "carryover_tau_factor",
        "lead_impedance_ohm",
    }
)


@dataclass(frozen=True, slots=True)
class PhysicsParams:
    """Everything the model is built from; defaults are the `domain.md` figures.

    Units are in the names. The ice and thaw constants belong to the default
    probe (20 G, 90 mm shaft) and were fitted to the thaw row of `domain.md`;
    other probe models need their own values.
    """

    gas: GasName = "N2O"
    # Cylinder and regulator (domain.md, cylinder and console plumbing rows).
    # The liquid starts at cylinder_c; the room (ambient_c) warms it back
    # through cylinder_warm_w_per_k. A cold room: set both.
    regulator_psig: float = 700.0
    cylinder_c: float = 20.0
    ambient_c: float = 20.0
    cylinder_g: float = 3000.0
    cylinder_wall_j_per_k: float = 0.0
    cylinder_warm_w_per_k: float = 1.5
    cylinder_empty_tau_s: float = 1.0
    tissue_c: float = 37.0
    # Valves: actual position moves linearly over valve_move_s (issue 3: 15 ms).
    valve_move_s: float = 0.015
    # The default probe (domain.md, default probe row): the gauge sets the
    # shaft's radius, hence the ice ball's conduction.
    probe_gauge: int = 20
    probe_length_mm: float = 90.0
    # Supply line: fill through the inlet, empty through the vent, drain
    # through the probe (this last one sets the droop while freezing).
    supply_fill_tau_s: float = 0.2
    vent_tau_s: float = 0.3
    probe_drain_tau_s: float = 6.0
    # Flow through the probe at flow_ref_psi, valve fully open: 0.1-0.2 g/s.
    flow_ref_psi: float = 700.0
    flow_g_per_s: float = 0.15
    # Exhaust: back-pressure proportional to the flow; 12.3 psig at the
    # reference flow, about 11.9 psig at the drooped 677 psig supply.
    exhaust_nominal_psi: float = 12.3
    exhaust_tau_s: float = 0.1
    # Cooling: vapour fed below feed_none_psi gives no cooling, full above feed_full_psi.
    feed_none_psi: float = 250.0
    feed_full_psi: float = 500.0
    # Tip: the excess over the boiling point is the tissue load over the
    # squared cooling authority; 0.01 puts the nominal tip ~1.1 C above it.
    tip_load_ratio: float = 0.01
    tip_cool_tau_s: float = 2.5
    tip_thaw_tau_s: float = 1.6
    tip_rewarm_tau_s: float = 20.0
    melt_plateau_c: float = -0.5
    tip_max_rate_c_per_s: float = 58.0
    cooling_min_authority: float = 0.02
    # Of the refrigeration the gas carries (flow x refrigeration effect, about
    # 30 W for N2O), the share that reaches the tissue: about 4.6 W (domain.md:
    # 3-6 W; most of the cold leaves with the exhaust).
    cooling_tissue_share: float = 0.204
    # The ice ball (simulator/ice.py; fitted, docs/simulator.md "Ice ball").
    cooled_length_mm: float = 10.3
    cooled_length_exp: float = 1.0
    ice_ref_tip_c: float = -76.8
    ice_k_w_per_m_k: float = 1.31
    tissue_k_w_per_m_k: float = 0.301
    tissue_rho_c_j_per_ml_k: float = 3.6
    ice_latent_j_per_ml: float = 304.0
    ice_cp_j_per_ml_k: float = 1.9
    ice_sensible_share: float = 0.25
    shaft_surface_share: float = 0.553
    tip_flux_geometry: float = 0.889
    shaft_flux_geometry: float = 0.415
    shell_min_mm: float = 0.18
    shell_recovery_tip_per_s: float = 0.0
    shell_recovery_shaft_per_s: float = 0.012
    shell_rewarm_tau_s: float = 600.0
    # Faults with a physical parameter that is not a fault key.
    exhaust_blocked_peak_psi: float = 45.0
    exhaust_trapped_tau_s: float = 20.0
    carryover_dip_psi: float = 60.0
    carryover_cooling_gain: float = 3.0
    carryover_tau_factor: float = 0.4
    carryover_flow_gain: float = 2.0
    # Stimulation electrode and nerve (domain.md, nerve stimulation row):
    # motor fibres (short chronaxie, the 2 Hz / 100 us preset) and sensory
    # fibres (long chronaxie, the 50 Hz / 1000 us preset).
    lead_impedance_ohm: float = 3000.0
    stim_compliance_v: float = 60.0
    nerve_distance_mm: float = 1.0
    nerve_i0_ma: float = 0.15
    nerve_k_ma_per_mm2: float = 0.28
    nerve_chronaxie_us: float = 40.0
    nerve_sensory_i0_ma: float = 0.06
    nerve_sensory_k_ma_per_mm2: float = 0.14
    nerve_sensory_chronaxie_us: float = 400.0
    nerve_sensory_min_rate_hz: float = 20.0

    def __post_init__(self) -> None:
        if self.gas not in ("N2O", "CO2"):
            raise PhysicsError(f"gas = {self.gas!r}: expected 'N2O' or 'CO2'")
        for item in fields(self):
            value = getattr(self, item.name)
            if isinstance(value, str):
                continue
            if not math.isfinite(value):
                raise PhysicsError(f"{item.name} = {value!r}: must be a finite number")
            # Temperatures may be negative; nothing else may.
            if not item.name.endswith("_c") and value < 0:
                raise PhysicsError(f"{item.name} = {value!r}: must not be negative")
            if item.name in _DIVISORS and value <= 0:
                raise PhysicsError(f"{item.name} = {value!r}: must be positive")
        if self.feed_full_psi <= self.feed_none_psi:
            raise PhysicsError(
                f"feed_full_psi ({self.feed_full_psi}) must be above "
                f"feed_none_psi ({self.feed_none_psi})"
            )
        if self.ice_ref_tip_c >= 0:
            raise PhysicsError(f"ice_ref_tip_c = {self.ice_ref_tip_c!r}: must be below 0 C")
        if self.probe_gauge not in GAUGE_OD_MM:
            raise PhysicsError(
                f"probe_gauge = {self.probe_gauge!r}: expected a whole gauge "
                f"{min(GAUGE_OD_MM)}..{max(GAUGE_OD_MM)}"
            )
        if self.melt_plateau_c > 0:
            raise PhysicsError(f"melt_plateau_c = {self.melt_plateau_c!r}: must be <= 0 C")


@dataclass(frozen=True, slots=True)
class FaultInfo:
    """A physical fault of the `interfaces.md` table: its keys, defaults and units."""

    keys: Mapping[str, FaultValue]
    units: Mapping[str, str]
    summary: str


PHYSICS_FAULTS: Final[Mapping[str, FaultInfo]] = {
    "exhaust_blocked": FaultInfo(
        {"psi_per_s": 250.0},
        {"psi_per_s": "psi/s"},
        "exhaust rises past 20 psig within 100 ms while gas flows (peak below 50 psig), "
        "tip warms; after the supply closes the trapped gas bleeds slowly",
    ),
    "supply_leak": FaultInfo(
        {"psi_per_s": 3.0},
        {"psi_per_s": "psi/s"},
        "supply line loses pressure at psi_per_s; seen as decay with inlet and vent closed",
    ),
    "cylinder_empty": FaultInfo(
        {},
        {},
        "the cylinder is empty: cylinder and supply collapse; cleared, a full one is fitted",
    ),
    "supply_overpressure": FaultInfo(
        {"psi": 950.0, "psi_per_s": 500.0},
        {"psi": "psig", "psi_per_s": "psi/s"},
        "failed regulator on a warm cylinder: its output ramps toward psi at psi_per_s",
    ),
    "orifice_clog": FaultInfo(
        {"fraction": 0.9},
        {"fraction": "0..1"},
        "flow falls by fraction (for CO2: the snow plug): exhaust falls, tip warms",
    ),
    "liquid_carryover": FaultInfo({}, {}, "liquid reaches the tip: colder, faster, supply dips"),
    "valve_stuck_open": FaultInfo(
        {"valve": "supply"},
        {"valve": "inlet|supply|vent"},
        "the valve goes (or stays) open and ignores commands",
    ),
    "valve_stuck_closed": FaultInfo(
        {"valve": "supply"},
        {"valve": "inlet|supply|vent"},
        "the valve goes (or stays) closed and ignores commands",
    ),
    "stim_lead_off": FaultInfo({}, {}, "lead impedance open (infinite): no current flows"),
    "stim_stuck_on": FaultInfo({}, {}, "stimulation ignores stop"),
}


@dataclass(slots=True)
class PhysicsFaults:
    """The physical faults in force, as the firmware's fault layer sets them.

    ``None`` or zero means absent. Valve and stimulator faults live on the
    valves and the electrode; use `Physics.set_fault` for all of them.
    """

    exhaust_blocked_psi_per_s: float | None = None
    supply_leak_psi_per_s: float = 0.0
    cylinder_empty: bool = False
    overpressure_psi: float | None = None
    overpressure_psi_per_s: float = 500.0
    orifice_clog_fraction: float = 0.0
    liquid_carryover: bool = False


class _Valve:
    """A valve whose position moves linearly and whose limit switch reports the ends."""

    __slots__ = ("commanded", "position", "reported", "stuck")

    def __init__(self, open_: bool) -> None:
        self.commanded = open_
        self.position = 1.0 if open_ else 0.0
        self.reported = open_
        self.stuck: bool | None = None  # True: stuck open, False: stuck closed

    def target(self) -> float:
        wanted = self.commanded if self.stuck is None else self.stuck
        return 1.0 if wanted else 0.0

    def move(self, travel: float) -> bool:
        """Advance by ``travel`` (fraction of full stroke); True while still moving."""
        target = self.target()
        position = self.position
        # The 1e-9 absorbs rounding, so that 15 steps of 1 ms make 15 ms exactly.
        if position < target:
            position = target if position + travel >= target - 1e-9 else position + travel
        elif position > target:
            position = target if position - travel <= target + 1e-9 else position - travel
        self.position = position
        if position >= 1.0:
            self.reported = True
        elif position <= 0.0:
            self.reported = False
        return position != target


def _number(name: str, key: str, value: FaultValue) -> float:
    try:
        number = float(value)
    except ValueError:
        raise PhysicsError(f"fault {name}: {key} = {value!r} is not a number") from None
    if not math.isfinite(number) or number < 0:
        raise PhysicsError(f"fault {name}: {key} = {value!r} must be a finite number >= 0")
    return number


class Physics:
    """The device's physical truth, advanced by `step`.

    Start-up is the unpowered state: supply and inlet closed (normally
    closed), vent open (normally open), supply line at 0 psig, exhaust at 0,
    tip at tissue temperature, no ice, stimulation off; a full cylinder at
    ``cylinder_c``.
    """

    __slots__ = (
        "_coeffs",
        "_coeffs_dt",
        "_cool_s",
        "_cooling",
        "_cyl",
        "_cyl_target",
        "_cylinder",
        "_exhaust",
        "_floor",
        "_flow_frac",
        "_gas_at_tick",
        "_gas_used",
        "_grid",
        "_ice",
        "_inlet",
        "_line_e",
        "_line_k",
        "_moving",
        "_nerve",
        "_power_per_authority",
        "_power_sum",
        "_reg",
        "_slow_s",
        "_steady_sum",
        "_stim",
        "_supply",
        "_supply_valve",
        "_time_s",
        "_tip",
        "_tip_iced",
        "_tip_sum",
        "_valves",
        "_vent",
        "faults",
        "params",
    )

    def __init__(self, params: PhysicsParams | None = None) -> None:
        p = PhysicsParams() if params is None else params
        self.params: Final = p
        self.faults: Final = PhysicsFaults()
        self._grid = boiling_grid(p.gas)
        self._inlet = _Valve(False)
        self._supply_valve = _Valve(False)
        self._vent = _Valve(True)
        self._valves: dict[str, _Valve] = {
            "inlet": self._inlet,
            "supply": self._supply_valve,
            "vent": self._vent,
        }
        self._moving = False
        self._time_s = 0.0
        self._cylinder = Cylinder(
            p.gas,
            p.cylinder_g,
            p.cylinder_c,
            p.ambient_c,
            p.cylinder_wall_j_per_k,
            p.cylinder_warm_w_per_k,
        )
        self._cyl = self._cyl_target = self._cylinder.psig
        self._reg = min(p.regulator_psig, self._cyl)
        self._supply = 0.0
        self._exhaust = 0.0
        self._floor = self._grid[0]
        self._tip = p.tissue_c
        self._flow_frac = 0.0
        self._cooling = False
        self._gas_used = 0.0
        self._gas_at_tick = 0.0
        self._ice = IceBall(
            IceParams(
                probe_radius_mm=probe_radius_mm(p.probe_gauge),
                cooled_length_mm=p.cooled_length_mm,
                cooled_length_exp=p.cooled_length_exp,
                reference_tip_c=p.ice_ref_tip_c,
                tissue_c=p.tissue_c,
                ice_k_w_per_m_k=p.ice_k_w_per_m_k,
                tissue_k_w_per_m_k=p.tissue_k_w_per_m_k,
                tissue_rho_c_j_per_ml_k=p.tissue_rho_c_j_per_ml_k,
                latent_j_per_ml=p.ice_latent_j_per_ml,
                ice_cp_j_per_ml_k=p.ice_cp_j_per_ml_k,
                sensible_share=p.ice_sensible_share,
                shaft_surface_share=p.shaft_surface_share,
                tip_flux_geometry=p.tip_flux_geometry,
                shaft_flux_geometry=p.shaft_flux_geometry,
                shell_min_mm=p.shell_min_mm,
                shell_recovery_tip_per_s=p.shell_recovery_tip_per_s,
                shell_recovery_shaft_per_s=p.shell_recovery_shaft_per_s,
                shell_rewarm_tau_s=p.shell_rewarm_tau_s,
            )
        )
        self._tip_iced = False
        # Refrigeration reaching the tissue per unit of cooling authority, W.
        self._power_per_authority = (
            p.cooling_tissue_share * p.flow_g_per_s * GASES[p.gas].refrigeration_j_per_g
        )
        # The slow tick (cylinder and ice): time since the last one, and what
        # the gas did in it.
        self._slow_s = 0.0
        self._cool_s = 0.0
        self._tip_sum = 0.0
        self._steady_sum = 0.0
        self._power_sum = 0.0
        self._coeffs_dt = -1.0
        self._coeffs: tuple[float, ...] = ()
        self._line_k = -1.0
        self._line_e = 0.0
        self._stim = StimElectrode(p.lead_impedance_ohm, p.stim_compliance_v)
        self._nerve = NerveModel(
            distance_mm=p.nerve_distance_mm,
            i0_ma=p.nerve_i0_ma,
            k_ma_per_mm2=p.nerve_k_ma_per_mm2,
            chronaxie_us=p.nerve_chronaxie_us,
            sensory_i0_ma=p.nerve_sensory_i0_ma,
            sensory_k_ma_per_mm2=p.nerve_sensory_k_ma_per_mm2,
            sensory_chronaxie_us=p.nerve_sensory_chronaxie_us,
            sensory_min_rate_hz=p.nerve_sensory_min_rate_hz,
        )

    # ------------------------------------------------------------------ time

    def _make_coeffs(self, dt: float) -> tuple[float, ...]:
        """Everything `step` needs for one step size, in the order it unpacks them.

        Built once per distinct ``dt`` so that the hot path does no division,
        no exponential (but the supply line's, itself cached) and no attribute
        look-ups on the parameters.
        """
        p = self.params
        exp = math.exp
        e_trapped = exp(-dt / p.exhaust_trapped_tau_s)
        return (
            exp(-dt / p.cylinder_empty_tau_s),
            exp(-dt / p.exhaust_tau_s),
            e_trapped,
            p.exhaust_trapped_tau_s * (1.0 - e_trapped),
            exp(-dt / p.tip_cool_tau_s),
            exp(-dt / (p.tip_cool_tau_s * p.carryover_tau_factor)),
            exp(-dt / p.tip_thaw_tau_s),
            exp(-dt / p.tip_rewarm_tau_s),
            p.tip_max_rate_c_per_s * dt,
            dt / p.valve_move_s,
            1.0 / p.supply_fill_tau_s,
            1.0 / p.vent_tau_s,
            1.0 / p.probe_drain_tau_s,
            1.0 / p.flow_ref_psi,
            # Line content per psi, from the drain: flow_g_per_s at flow_ref_psi.
            p.flow_g_per_s * p.probe_drain_tau_s / p.flow_ref_psi * dt,
            1.0 / (p.feed_full_psi - p.feed_none_psi),
            self._power_per_authority * dt,
        )

    def step(self, dt_s: float) -> None:
        """Advance the physics by ``dt_s`` seconds of device time.

        Any step works; 1-20 ms is the intended range (the valves take 15 ms
        and the fastest fault, the exhaust blockage, needs a few steps inside
        its 100 ms). Order within a step: valves, cylinder and regulator,
        supply line, flow, exhaust, floor, tip; each reads the others' values
        of this step, so the truth is consistent at every instant. Every
        `SLOW_TICK_S` of device time the slow tick then advances the
        cylinder's temperature and the ice ball (they change over seconds).
        """
        if dt_s != self._coeffs_dt:
            if not dt_s > 0.0:
                if dt_s == 0.0:
                    return
                raise PhysicsError(
                    f"dt_s = {dt_s!r}: the step must be a positive number of seconds"
                )
            self._coeffs = self._make_coeffs(dt_s)
            self._coeffs_dt = dt_s
            self._line_k = -1.0
        (
            e_cyl,
            e_exh,
            e_trapped,
            trapped_gain,
            e_cool,
            e_cool_carry,
            e_thaw,
            e_rewarm,
            max_step,
            travel,
            k_fill,
            k_vent,
            k_drain,
            inv_flow_ref,
            line_g_per_psi_dt,
            inv_feed_span,
            power_dt,
        ) = self._coeffs
        p = self.params
        f = self.faults
        self._time_s += dt_s

        if self._moving:
            inlet = self._inlet.move(travel)
            supply_moving = self._supply_valve.move(travel)
            self._moving = self._vent.move(travel) or inlet or supply_moving
        pos_in = self._inlet.position
        pos_sup = self._supply_valve.position
        pos_vent = self._vent.position

        # Cylinder: the slow tick sets its pressure; a jump (empty, refilled)
        # is followed over cylinder_empty_tau_s.
        cyl = self._cyl
        if cyl != self._cyl_target:
            cyl_target = self._cyl_target
            cyl = cyl_target + (cyl - cyl_target) * e_cyl
            if -1e-9 < cyl - cyl_target < 1e-9:
                cyl = cyl_target
            self._cyl = cyl
        # Regulator: passes the cylinder below its set point; a failed one
        # ramps toward the fault pressure (the warm cylinder is assumed).
        goal = f.overpressure_psi
        if goal is None:
            reg = p.regulator_psig
            if cyl < reg:
                reg = cyl
        else:
            reg = self._reg
            ramp = f.overpressure_psi_per_s * dt_s
            if reg < goal:
                reg = reg + ramp if reg + ramp < goal else goal
            elif reg > goal:
                reg = reg - ramp if reg - ramp > goal else goal
        self._reg = reg
        carry = f.liquid_carryover
        if carry:
            reg -= p.carryover_dip_psi
            if reg < 0.0:
                reg = 0.0

        # Supply line: one node relaxing toward the weighted source.
        open_frac = pos_sup * (1.0 - f.orifice_clog_fraction)
        k_in = pos_in * k_fill
        k = k_in + pos_vent * k_vent + open_frac * k_drain
        supply = self._supply
        if k > 0.0:
            if k != self._line_k:
                self._line_k = k
                self._line_e = math.exp(-k * dt_s)
            target = k_in * reg / k
            new_supply = target + (supply - target) * self._line_e
            if k_in > 0.0:
                # What the cylinder gave: the inlet flow at the step's mean pressure.
                inflow = reg - 0.5 * (supply + new_supply)
                if inflow > 0.0:
                    drawn = k_in * inflow * line_g_per_psi_dt
                    if carry:
                        drawn *= p.carryover_flow_gain
                    self._gas_used += drawn
        else:
            new_supply = supply
        leak = f.supply_leak_psi_per_s
        if leak > 0.0:
            new_supply -= leak * dt_s
        if new_supply < 0.0:
            new_supply = 0.0
        supply = new_supply
        self._supply = supply

        # Flow through the probe, proportional to the supply (choked orifice).
        flow_frac = open_frac * supply * inv_flow_ref
        self._flow_frac = flow_frac

        # Exhaust back-pressure.
        exhaust = self._exhaust
        blocked = f.exhaust_blocked_psi_per_s
        if blocked is None:
            ex_target = p.exhaust_nominal_psi * flow_frac
            if exhaust != ex_target:
                exhaust = ex_target + (exhaust - ex_target) * e_exh
                if -1e-9 < exhaust - ex_target < 1e-9:
                    exhaust = ex_target
        else:
            exhaust = exhaust * e_trapped + blocked * flow_frac * trapped_gain
            if exhaust > p.exhaust_blocked_peak_psi:
                exhaust = p.exhaust_blocked_peak_psi
        self._exhaust = exhaust
        # The floor, inlined from gas.floor_from_grid (same grid, same result).
        grid = self._grid
        if exhaust <= 0.0:
            floor = grid[0]
        else:
            position = exhaust * _GRID_CELLS_PER_PSI
            cell = int(position)
            if cell >= _GRID_LAST_CELL:
                floor = grid[_GRID_LAST_CELL]
            else:
                low = grid[cell]
                floor = low + (grid[cell + 1] - low) * (position - cell)
        self._floor = floor

        # Cooling authority: flow, liquid-forming feed, carryover.
        feed = (supply - p.feed_none_psi) * inv_feed_span
        if feed >= 1.0:
            authority = flow_frac
        elif feed > 0.0:
            authority = flow_frac * feed
        else:
            authority = 0.0
        if carry:
            authority *= p.carryover_cooling_gain
        cooling = authority > p.cooling_min_authority
        self._cooling = cooling

        # Tip temperature.
        tip = self._tip
        iced = self._tip_iced
        if cooling:
            x = p.tip_load_ratio / (authority * authority)
            target = floor + (p.tissue_c - floor) * x / (1.0 + x)
            e = e_cool_carry if carry else e_cool
            if iced and target > p.melt_plateau_c:
                target = p.melt_plateau_c
        elif iced:
            target = p.melt_plateau_c
            e = e_thaw
        else:
            # No ice left at the tip: a tip still below the melt (a short
            # freeze) has little cold behind it and warms as fast as the
            # ice-covered one; from the plateau on, the cooled tissue around
            # it sets the pace back toward body temperature.
            target = p.tissue_c
            e = e_thaw if tip < p.melt_plateau_c else e_rewarm
        new_tip = target + (tip - target) * e
        if new_tip - tip > max_step:
            new_tip = tip + max_step
        elif tip - new_tip > max_step:
            new_tip = tip - max_step
        if new_tip < floor:
            # The back-pressure rose faster than the tip can follow: the liquid
            # stops boiling and the tip warms toward the new floor at its
            # fastest rate (only the exhaust blockage does this).
            new_tip = tip + max_step
            if new_tip > target:
                new_tip = target
        self._tip = new_tip

        # What the slow tick needs: how long, how cold and how strongly the
        # gas cooled since the last one.
        if cooling:
            self._cool_s += dt_s
            self._tip_sum += new_tip * dt_s
            self._steady_sum += target * dt_s
            self._power_sum += authority * power_dt
        slow = self._slow_s + dt_s
        if slow >= SLOW_TICK_S - 1e-9:
            self._slow_tick(slow)
            slow = 0.0
        self._slow_s = slow

    def _slow_tick(self, elapsed_s: float) -> None:
        """The cylinder and the ice ball, once every `SLOW_TICK_S`."""
        used = self._gas_used
        drawn = used - self._gas_at_tick
        self._gas_at_tick = used
        cylinder = self._cylinder
        if drawn > 0.0 or cylinder.temperature_c != cylinder.ambient_c:
            psig = cylinder.update(elapsed_s, drawn)
            if -_CYLINDER_SNAP_PSI < psig - self._cyl < _CYLINDER_SNAP_PSI:
                self._cyl = psig
            self._cyl_target = psig
        cool_s = self._cool_s
        ice = self._ice
        if cool_s > 0.0:
            ice.update(
                elapsed_s,
                cool_s,
                self._tip_sum / cool_s,
                self._power_sum / cool_s,
                self._steady_sum / cool_s,
            )
            self._cool_s = self._tip_sum = self._steady_sum = self._power_sum = 0.0
            self._tip_iced = ice.tip_iced
        elif ice.active or ice.shell_tip_j > 0.0 or ice.shell_shaft_j > 0.0:
            ice.update(elapsed_s, 0.0, 0.0, 0.0)
            self._tip_iced = ice.tip_iced

    # ---------------------------------------------------------------- valves

    def _valve(self, name: str) -> _Valve:
        try:
            return self._valves[name]
        except KeyError:
            raise PhysicsError(
                f"valve {name!r}: expected one of {', '.join(VALVE_NAMES)}"
            ) from None

    def command_valve(self, name: ValveName, open: bool) -> None:
        """Command a valve; it takes ``valve_move_s`` to get there (a stuck one never does)."""
        valve = self._valve(name)
        valve.commanded = bool(open)
        self._moving = True

    def valve_position(self, name: ValveName) -> float:
        """Actual opening, 0 (closed) .. 1 (open); flow scales with it."""
        return self._valve(name).position

    def valve_reported_open(self, name: ValveName) -> bool:
        """The limit-switch state: flips only when the motion completes."""
        return self._valve(name).reported

    def valve_commanded_open(self, name: ValveName) -> bool:
        return self._valve(name).commanded

    def valve_states(self) -> tuple[bool, bool, bool, bool, bool, bool]:
        """(reported, commanded) of supply, inlet and vent, in that order, in one call.

        The firmware reads all three every telemetry period; one call instead of six
        name lookups is a measurable share of the virtual-time budget.
        """
        s, i, v = self._supply_valve, self._inlet, self._vent
        return (s.reported, s.commanded, i.reported, i.commanded, v.reported, v.commanded)

    @property
    def inlet_open(self) -> bool:
        """Reported (limit-switch) state of the inlet valve."""
        return self._inlet.reported

    @property
    def supply_open(self) -> bool:
        """Reported (limit-switch) state of the supply valve."""
        return self._supply_valve.reported

    @property
    def vent_open(self) -> bool:
        """Reported (limit-switch) state of the vent valve."""
        return self._vent.reported

    # ---------------------------------------------------------------- faults

    def set_fault(self, name: str, params: Mapping[str, FaultValue] | None = None) -> None:
        """Put a physical fault of `PHYSICS_FAULTS` in force, keys defaulted.

        Setting a fault again replaces its parameters. Keys are those of the
        `interfaces.md` fault table; an unknown name or key, or a bad value,
        raises `PhysicsError` and changes nothing.
        """
        values = self._fault_values(name, params)
        f = self.faults
        if name == "exhaust_blocked":
            f.exhaust_blocked_psi_per_s = float(values["psi_per_s"])
        elif name == "supply_leak":
            f.supply_leak_psi_per_s = float(values["psi_per_s"])
        elif name == "cylinder_empty":
            if not f.cylinder_empty:
                f.cylinder_empty = True
                self._cylinder.empty()
                self._gas_at_tick = self._gas_used
                self._cyl_target = 0.0
        elif name == "supply_overpressure":
            if f.overpressure_psi is None:
                self._reg = min(self.params.regulator_psig, self._cyl)
            f.overpressure_psi = float(values["psi"])
            f.overpressure_psi_per_s = float(values["psi_per_s"])
        elif name == "orifice_clog":
            f.orifice_clog_fraction = float(values["fraction"])
        elif name == "liquid_carryover":
            f.liquid_carryover = True
        elif name in ("valve_stuck_open", "valve_stuck_closed"):
            self._valve(str(values["valve"])).stuck = name == "valve_stuck_open"
            self._moving = True
        elif name == "stim_lead_off":
            self._stim.lead_off = True
        else:  # stim_stuck_on
            self._stim.stuck_on = True

    def clear_fault(self, name: str, params: Mapping[str, FaultValue] | None = None) -> None:
        """End a fault (its ``duration_s`` ran out); clearing an absent one is harmless.

        For the valve faults ``valve`` says which valve; a valve stuck the
        other way is left alone. When it is released a valve moves back to
        its commanded state.
        """
        values = self._fault_values(name, params)
        f = self.faults
        if name == "exhaust_blocked":
            f.exhaust_blocked_psi_per_s = None
        elif name == "supply_leak":
            f.supply_leak_psi_per_s = 0.0
        elif name == "cylinder_empty":
            if f.cylinder_empty:
                # The empty cylinder is swapped for a full one at room temperature.
                f.cylinder_empty = False
                self._cylinder.refill()
                self._gas_at_tick = self._gas_used
                self._cyl_target = self._cylinder.psig
        elif name == "supply_overpressure":
            f.overpressure_psi = None
        elif name == "orifice_clog":
            f.orifice_clog_fraction = 0.0
        elif name == "liquid_carryover":
            f.liquid_carryover = False
        elif name in ("valve_stuck_open", "valve_stuck_closed"):
            valve = self._valve(str(values["valve"]))
            if valve.stuck is (name == "valve_stuck_open"):
                valve.stuck = None
                self._moving = True
        elif name == "stim_lead_off":
            self._stim.lead_off = False
        else:  # stim_stuck_on
            self._stim.stuck_on = False

    def _fault_values(
        self, name: str, params: Mapping[str, FaultValue] | None
    ) -> dict[str, FaultValue]:
        info = PHYSICS_FAULTS.get(name)
        if info is None:
            raise PhysicsError(
                f"fault {name!r} is not a physical fault; expected one of "
                f"{', '.join(sorted(PHYSICS_FAULTS))}"
            )
        given = dict(params or {})
        unknown = sorted(set(given) - set(info.keys))
        if unknown:
            allowed = ", ".join(info.keys) or "none"
            raise PhysicsError(
                f"fault {name}: unknown key(s) {', '.join(unknown)}; keys: {allowed}"
            )
        values: dict[str, FaultValue] = {}
        for key, default in info.keys.items():
            value = given.get(key, default)
            if key == "valve":
                if value not in VALVE_NAMES:
                    raise PhysicsError(
                        f"fault {name}: valve = {value!r}; expected one of {', '.join(VALVE_NAMES)}"
                    )
                values[key] = value
            else:
                values[key] = _number(name, key, value)
        if name == "orifice_clog" and float(values["fraction"]) > 1.0:
            raise PhysicsError(
                f"fault orifice_clog: fraction = {values['fraction']!r}; expected 0..1"
            )
        return values

    # ---------------------------------------------------------- stimulation

    def configure_stim(self, current_ma: float, pulse_us: float, rate_hz: float) -> None:
        """Set the pulse train; the firmware enforces SR-16's limits before this."""
        self._stim.configure(current_ma, pulse_us, rate_hz)

    def set_stim(self, on: bool) -> None:
        """Start or stop stimulation (a stuck-on output ignores the stop)."""
        self._stim.set_on(on)

    @property
    def stim_on(self) -> bool:
        return self._stim.on

    @property
    def stim_set_current_ma(self) -> float:
        return self._stim.set_current_ma

    @property
    def stim_pulse_us(self) -> float:
        return self._stim.pulse_us

    @property
    def stim_rate_hz(self) -> float:
        return self._stim.rate_hz

    @property
    def stim_current_ma(self) -> float:
        """The current actually delivered: the set current when on and connected, else 0."""
        return self._stim.current_ma

    @property
    def lead_impedance_ohm(self) -> float:
        """Measured lead impedance; ``math.inf`` with the lead off."""
        return self._stim.lead_impedance_ohm

    def nerve_threshold_ma(self, pulse_us: float = 100.0, rate_hz: float = 2.0) -> float:
        """The least current that gets any response from this pulse train (truth).

        At the motor preset's 2 Hz that is the motor threshold; from 20 Hz the
        lower of the motor and the sensory ones.
        """
        return self._nerve.threshold_ma(pulse_us, rate_hz)

    def nerve_motor_threshold_ma(self, pulse_us: float = 100.0) -> float:
        """The twitch threshold at this pulse width (truth)."""
        return self._nerve.motor_threshold_ma(pulse_us)

    def nerve_sensory_threshold_ma(self, pulse_us: float = 1000.0) -> float:
        """The paresthesia threshold at this pulse width, for a 20 Hz+ train (truth)."""
        return self._nerve.sensory_threshold_ma(pulse_us)

    def nerve_responds(self, current_ma: float, pulse_us: float, rate_hz: float) -> bool:
        """Whether the nerve would respond to these settings (truth, side channel)."""
        return self._nerve.responds(current_ma, pulse_us, rate_hz)

    @property
    def nerve_responding(self) -> bool:
        """Whether the nerve responds (twitch or paresthesia) to what is delivered now."""
        stim = self._stim
        return self._nerve.responds(stim.current_ma, stim.pulse_us, stim.rate_hz)

    @property
    def nerve_motor_responding(self) -> bool:
        """A twitch, from what the electrode delivers now."""
        stim = self._stim
        return self._nerve.motor_responds(stim.current_ma, stim.pulse_us, stim.rate_hz)

    @property
    def nerve_sensory_responding(self) -> bool:
        """Paresthesia the patient would report, from what is delivered now."""
        stim = self._stim
        return self._nerve.sensory_responds(stim.current_ma, stim.pulse_us, stim.rate_hz)

    # ----------------------------------------------------------------- truth

    @property
    def time_s(self) -> float:
        """Device time: the sum of the steps taken."""
        return self._time_s

    @property
    def cylinder_psi(self) -> float:
        """Cylinder pressure, psig: the liquid's saturation pressure while it lasts."""
        return self._cyl

    @property
    def cylinder_c(self) -> float:
        """Temperature of the cylinder's liquid, C (it cools as gas is drawn)."""
        return self._cylinder.temperature_c

    @property
    def cylinder(self) -> Cylinder:
        """The cylinder model itself (temperature, contents, pressure)."""
        return self._cylinder

    @property
    def cylinder_liquid_g(self) -> float:
        """Liquid left in the cylinder; once it is gone the pressure falls with the vapour."""
        return self._cylinder.liquid_g

    @property
    def regulator_psi(self) -> float:
        return self._reg

    @property
    def supply_psi(self) -> float:
        """Supply-line pressure, psig (truth; the sensor layer adds noise)."""
        return self._supply

    @property
    def exhaust_psi(self) -> float:
        """Exhaust-line back-pressure, psig."""
        return self._exhaust

    @property
    def tip_c(self) -> float:
        """Tip temperature, C."""
        return self._tip

    @property
    def boiling_point_c(self) -> float:
        """The thermal floor now: the gas's boiling point at the current exhaust."""
        return self._floor

    @property
    def co2_snow(self) -> bool:
        """CO2 expanding below its triple-point pressure: it makes snow at the tip."""
        triple = GASES[self.params.gas].triple_point
        return triple is not None and self._cooling and self._exhaust < triple[0]

    @property
    def flow_g_per_s(self) -> float:
        """Gas flowing through the probe now."""
        gain = self.params.carryover_flow_gain if self.faults.liquid_carryover else 1.0
        return self.params.flow_g_per_s * self._flow_frac * gain

    @property
    def cooling(self) -> bool:
        """Whether the gas is cooling the tip (flowing and fed well enough)."""
        return self._cooling

    @property
    def refrigeration_w(self) -> float:
        """What the gas expanding at the tip can absorb now (flow x refrigeration effect).

        About 30 W for N2O at the nominal flow; only `cooling_tissue_share` of it
        reaches the tissue, the rest leaves with the exhaust.
        """
        p = self.params
        feed = (self._supply - p.feed_none_psi) / (p.feed_full_psi - p.feed_none_psi)
        authority = self._flow_frac * min(1.0, max(0.0, feed))
        if self.faults.liquid_carryover:
            authority *= p.carryover_cooling_gain
        if authority <= p.cooling_min_authority:
            return 0.0
        return authority * p.flow_g_per_s * GASES[p.gas].refrigeration_j_per_g

    @property
    def tissue_cooling_max_w(self) -> float:
        """The most the gas can give the tissue at the reference flow (authority 1)."""
        return self._power_per_authority

    @property
    def tissue_cooling_w(self) -> float:
        """Heat the probe drew from the tissue over the last slow tick (a few watts)."""
        return self._ice.drawn_w

    @property
    def gas_used_g(self) -> float:
        """Gas drawn from the cylinder(s) so far, the line's fills and vents included."""
        return self._gas_used

    @property
    def gas_left_g(self) -> float:
        """Gas left in the cylinder, liquid and vapour (pressure cannot show it).

        `cylinder_empty` empties it; clearing that fault fits a full one, so
        after it ``gas_left_g`` is no longer the charge less ``gas_used_g``.
        """
        left = self._cylinder.left_g - (self._gas_used - self._gas_at_tick)
        return left if left > 0.0 else 0.0

    @property
    def ice_j(self) -> float:
        """Latent heat held by the ice ball (a 3-minute ball holds ~175 J)."""
        return self._ice.latent_j

    @property
    def ice_volume_ml(self) -> float:
        return self._ice.volume_ml

    @property
    def ice_radius_mm(self) -> float:
        """The ice ball's radius around the shaft, from the probe's axis (half its width)."""
        return self._ice.radius_mm

    @property
    def ice_width_mm(self) -> float:
        return self._ice.width_mm

    @property
    def ice_length_mm(self) -> float:
        """Along the shaft, from the ice beyond the tip to the proximal end of the ball."""
        return self._ice.length_mm

    @property
    def ice_tip_radius_mm(self) -> float:
        """How far the ice reaches beyond the closed tip."""
        return self._ice.tip_radius_mm

    @property
    def ice(self) -> IceBall:
        """The ice ball's whole state (zones, sensible cold, the tissue's shell)."""
        return self._ice

    @property
    def tip_cold_j(self) -> float:
        """Heat the ice must still take before the distal tip is free (latent + sensible)."""
        ice = self._ice
        return ice.v_tip * self.params.ice_latent_j_per_ml / 1000.0 + ice.sensible_tip_j

    @property
    def shaft_cold_j(self) -> float:
        """The same for the ice around the rest of the cooled length."""
        ice = self._ice
        return ice.v_shaft * self.params.ice_latent_j_per_ml / 1000.0 + ice.sensible_shaft_j

    @property
    def tip_iced(self) -> bool:
        """Ice touches the tip (the thermistor cannot read above 0 C)."""
        return self._tip_iced

    @property
    def probe_free(self) -> bool:
        """The whole probe surface is free of ice: withdrawing tears nothing.

        A tip still below 0 C is frozen to the tissue even without ice left
        (the first moments of a freeze, or right after a very short one).
        """
        return not self._ice.active and self._tip >= 0.0

"""Gas properties the physics needs, as data (`docs/simulator.md, "Physics"`).

Two curves per gas drive the model:

* the boiling (or, for CO2, sublimation) temperature against the exhaust
  back-pressure: the tip can never be colder than it (`domain.md`, physics
  table), so it is the thermal floor the tip cools toward. CO2 expanding below
  its triple point (-56.6 C, 75.1 psia = 60.4 psig) makes snow and sublimes;
  above it the liquid boils, on a flatter curve;
* the saturation pressure of the liquid against the cylinder temperature: the
  cylinder sits at it until the liquid is gone, and the regulator passes it on
  when it is below the set point.

A few constants per gas drive the cylinder and the cooling: the latent heat
of the liquid in the cylinder and its heat capacity (self-cooling as the
vapour is drawn), the share of a full charge that is still vapour when the
last liquid boils off (the tail), and the refrigeration effect at the tip.

The measured points are kept exactly as `domain.md` gives them. Where the
table stops, the curve is extended with the Clausius-Clapeyron relation
``ln(P_abs) = A - B / T`` fitted to the table, so it stays monotonic and
physically shaped up to and beyond the probe's 50 psig rating. Lookups go
through a precomputed grid, because the tip asks for its floor at every step.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final, Literal

__all__ = [
    "ATMOSPHERE_PSIA",
    "GASES",
    "GRID_CELLS_PER_PSI",
    "GRID_LAST_CELL",
    "GasName",
    "GasProperties",
    "boiling_grid",
    "boiling_point_c",
    "floor_from_grid",
    "saturation_psig",
    "saturation_segment",
]

GasName = Literal["N2O", "CO2"]

ATMOSPHERE_PSIA: Final = 14.7
KELVIN: Final = 273.15

# The grid the floor lookup uses: 0 .. _GRID_MAX_PSIG in steps of _GRID_STEP_PSI.
_GRID_STEP_PSI: Final = 0.5
_GRID_MAX_PSIG: Final = 120.0


@dataclass(frozen=True, slots=True)
class GasProperties:
    """One gas's curves, as published points plus the constant that extends them.

    ``boiling_table`` holds (exhaust psig, boiling C) points, increasing;
    ``clausius_clapeyron_k`` is ``B`` in ``ln(P_abs) = A - B / T`` (the latent
    heat over the gas constant) used beyond the last point;
    ``saturation_table`` holds (liquid C, saturation psig) points, increasing.
    The cylinder constants are at 20 C: ``latent_j_per_g`` (vaporisation),
    ``liquid_cp_j_per_g_k`` (saturated liquid), ``tail_fraction`` (vapour left
    of a full charge when the liquid is gone: vapour density over the 0.75 kg/L
    fill ratio); ``refrigeration_j_per_g`` is what a gram expanding at the tip
    can absorb before it leaves with the exhaust.
    """

    name: GasName
    boiling_table: tuple[tuple[float, float], ...]
    clausius_clapeyron_k: float
    saturation_table: tuple[tuple[float, float], ...]
    critical_c: float
    latent_j_per_g: float
    liquid_cp_j_per_g_k: float
    tail_fraction: float
    refrigeration_j_per_g: float
    triple_point: tuple[float, float] | None = None


def _cc_extension(
    last_psig: float, last_c: float, b_k: float, up_to_psig: float, step_psig: float
) -> tuple[tuple[float, float], ...]:
    """Points beyond a measured table, by Clausius-Clapeyron from its last point."""
    points: list[tuple[float, float]] = []
    inv_t0 = 1.0 / (last_c + KELVIN)
    ln_p0 = math.log(last_psig + ATMOSPHERE_PSIA)
    psig = last_psig + step_psig
    while psig <= up_to_psig + 1e-9:
        inv_t = inv_t0 - (math.log(psig + ATMOSPHERE_PSIA) - ln_p0) / b_k
        points.append((psig, 1.0 / inv_t - KELVIN))
        psig += step_psig
    return tuple(points)


# N2O: the four measured points of domain.md; B = 2000 K fits them within 0.2 C
# (ln(39.7/14.7) / (1/184.65 - 1/203.25) = 2004 K).
_N2O_MEASURED: Final = ((0.0, -88.5), (10.0, -79.3), (15.0, -75.8), (25.0, -69.9))
_N2O_B_K: Final = 2000.0
# CO2: -78.5 C sublimation at 0 psig (domain.md); below the triple point
# (-56.6 C at 75.1 psia, 60.4 psig) the sublimation curve with B = 3140 K, which
# passes through both points (the sublimation enthalpy, 26.1 kJ/mol, over R) and
# gives -72.0 C at 10 psig and -69.6 C at 15 psig: domain.md's "about -72 to
# -69 C at 10-15 psig exhaust" for the snow. Above the triple point the liquid
# boils: B = 2015 K (equation-of-state points: 5.18 bar at 216.6 K, 12.83 bar
# at 240 K), so the floor climbs more slowly there.
_CO2_MEASURED: Final = ((0.0, -78.5),)
_CO2_B_K: Final = 3140.0
_CO2_TRIPLE: Final = (60.4, -56.6)
_CO2_LIQUID_B_K: Final = 2015.0


def _co2_extension(up_to_psig: float, step_psig: float) -> tuple[tuple[float, float], ...]:
    """Sublimation up to the triple point, then the liquid's boiling curve."""
    triple_psig, triple_c = _CO2_TRIPLE
    below = [
        point
        for point in _cc_extension(0.0, -78.5, _CO2_B_K, triple_psig, step_psig)
        if point[0] < triple_psig - 1e-9
    ]
    above = _cc_extension(triple_psig, triple_c, _CO2_LIQUID_B_K, up_to_psig, step_psig)
    return (*below, _CO2_TRIPLE, *above)


N2O: Final = GasProperties(
    name="N2O",
    boiling_table=_N2O_MEASURED + _cc_extension(25.0, -69.9, _N2O_B_K, _GRID_MAX_PSIG, 5.0),
    clausius_clapeyron_k=_N2O_B_K,
    # domain.md: 0 C 453 psia, 10 C 580, 15 C 653, 20 C 733, 25 C 820, 30 C 915.
    saturation_table=(
        (0.0, 438.3),
        (10.0, 565.3),
        (15.0, 638.3),
        (20.0, 718.3),
        (25.0, 805.3),
        (30.0, 900.3),
        (36.4, 1036.3),
    ),
    critical_c=36.4,
    # Latent heat 170 J/g and d(h_liquid)/dT 2.8 J/(g K) at 20 C (CoolProp's
    # N2O ancillary equations); saturated vapour about 160 kg/m3 at 20 C;
    # refrigeration: the middle of domain.md's 167-249 kJ/kg.
    latent_j_per_g=170.0,
    liquid_cp_j_per_g_k=2.8,
    tail_fraction=0.21,
    refrigeration_j_per_g=208.0,
)

CO2: Final = GasProperties(
    name="CO2",
    boiling_table=_CO2_MEASURED + _co2_extension(_GRID_MAX_PSIG, 5.0),
    clausius_clapeyron_k=_CO2_B_K,
    # Equation-of-state values (34.9, 45.0, 57.3, 72.1 bar at 0, 10, 20, 30 C):
    # 816 psig at 20 C and about 19.5 psi/K there, as domain.md gives.
    saturation_table=((0.0, 491.0), (10.0, 638.0), (20.0, 816.3), (30.0, 1031.0), (31.0, 1055.3)),
    critical_c=31.0,
    # Saturated CO2 at 20 C (Perry's Table 2-241, between 290 and 300 K): latent
    # heat 149 J/g, liquid heat capacity about 3.1 J/(g K), vapour 195 kg/m3;
    # refrigeration: liquid at 20 C (h 560 kJ/kg) to vapour leaving near -70 C
    # (about 730 kJ/kg).
    latent_j_per_g=149.0,
    liquid_cp_j_per_g_k=3.1,
    tail_fraction=0.26,
    refrigeration_j_per_g=170.0,
    triple_point=_CO2_TRIPLE,
)

GASES: Final[dict[str, GasProperties]] = {"N2O": N2O, "CO2": CO2}


def _interpolate(table: tuple[tuple[float, float], ...], x: float) -> float:
    """Piecewise-linear through ``table``, extended linearly past its ends."""
    if x <= table[0][0]:
        (x0, y0), (x1, y1) = table[0], table[1]
    elif x >= table[-1][0]:
        (x0, y0), (x1, y1) = table[-2], table[-1]
    else:
        index = 1
        while table[index][0] < x:
            index += 1
        (x0, y0), (x1, y1) = table[index - 1], table[index]
    return y0 + (y1 - y0) * (x - x0) / (x1 - x0)


def _grid(gas: GasProperties) -> tuple[float, ...]:
    count = round(_GRID_MAX_PSIG / _GRID_STEP_PSI) + 2
    return tuple(_interpolate(gas.boiling_table, i * _GRID_STEP_PSI) for i in range(count))


_GRIDS: Final[dict[str, tuple[float, ...]]] = {name: _grid(gas) for name, gas in GASES.items()}
GRID_CELLS_PER_PSI: Final = 1.0 / _GRID_STEP_PSI
GRID_LAST_CELL: Final = round(_GRID_MAX_PSIG / _GRID_STEP_PSI)


def boiling_grid(gas: GasName) -> tuple[float, ...]:
    """The precomputed floor grid (one value per 0.5 psi), for the hot path."""
    return _GRIDS[gas]


def floor_from_grid(grid: tuple[float, ...], exhaust_psi: float) -> float:
    """The boiling point at ``exhaust_psi`` from a grid of `boiling_grid`.

    Below 0 psig the gas boils at its 0 psig point (the scavenger is at
    atmosphere); above the grid the last value holds, far beyond anything the
    exhaust can reach (the blockage peaks below 50 psig).
    """
    if exhaust_psi <= 0.0:
        return grid[0]
    position = exhaust_psi * GRID_CELLS_PER_PSI
    cell = int(position)
    if cell >= GRID_LAST_CELL:
        return grid[GRID_LAST_CELL]
    low = grid[cell]
    return low + (grid[cell + 1] - low) * (position - cell)


def boiling_point_c(gas: GasName, exhaust_psi: float) -> float:
    """The gas's boiling (CO2: sublimation) temperature at the exhaust back-pressure.

    This is the tip's thermal floor: no reading of a healthy thermistor can be
    colder. Exact at the measured points of `domain.md`, linear between them.
    """
    return floor_from_grid(_GRIDS[gas], exhaust_psi)


def saturation_segment(gas: GasName, liquid_c: float) -> tuple[float, float, float, float, float]:
    """The straight piece of the saturation curve around ``liquid_c``.

    Returns (valid from C, valid to C, x0 C, psig at x0, psi/K), so that the
    cylinder can follow its temperature without a table search at every
    update; the outer pieces extend to -inf / +inf as `saturation_psig` does.
    """
    table = GASES[gas].saturation_table
    index = 1
    while index < len(table) - 1 and table[index][0] < liquid_c:
        index += 1
    (x0, y0), (x1, y1) = table[index - 1], table[index]
    low = -math.inf if index == 1 else x0
    high = math.inf if index == len(table) - 1 else x1
    return low, high, x0, y0, (y1 - y0) / (x1 - x0)


def saturation_psig(gas: GasName, liquid_c: float) -> float:
    """Cylinder pressure with liquid present at ``liquid_c`` (gauge, psi).

    Above the critical temperature there is no liquid; the curve is then
    continued linearly, which is enough for the "warm cylinder" of the
    over-pressure fault.
    """
    return _interpolate(GASES[gas].saturation_table, liquid_c)

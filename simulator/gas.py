"""Gas properties the first-order physics needs, as data (`docs/simulator.md, "Physics"`).

Two curves per gas drive the model:

* the boiling (or, for CO2, sublimation) temperature against the exhaust
  back-pressure: the tip can never be colder than it (`domain.md`, physics
  table), so it is the thermal floor the tip cools toward;
* the saturation pressure of the liquid against the cylinder temperature: the
  cylinder sits at it until the liquid is gone, and the regulator passes it on
  when it is below the set point.

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
    """

    name: GasName
    boiling_table: tuple[tuple[float, float], ...]
    clausius_clapeyron_k: float
    saturation_table: tuple[tuple[float, float], ...]
    critical_c: float


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
# CO2: -78.5 C sublimation at 0 psig (domain.md); B = 3030 K is the sublimation
# enthalpy (25.2 kJ/mol) over R, which gives -71.8 C at 10 psig and -69.3 C at
# 15 psig: domain.md's "about -72 to -69 C at 10-15 psig exhaust" for the snow.
_CO2_MEASURED: Final = ((0.0, -78.5),)
_CO2_B_K: Final = 3030.0

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
)

CO2: Final = GasProperties(
    name="CO2",
    boiling_table=_CO2_MEASURED + _cc_extension(0.0, -78.5, _CO2_B_K, _GRID_MAX_PSIG, 5.0),
    clausius_clapeyron_k=_CO2_B_K,
    # Equation-of-state values (34.9, 45.0, 57.3, 72.1 bar at 0, 10, 20, 30 C):
    # 816 psig at 20 C and about 19.5 psi/K there, as domain.md gives.
    saturation_table=((0.0, 491.0), (10.0, 638.0), (20.0, 816.3), (30.0, 1031.0), (31.0, 1055.3)),
    critical_c=31.0,
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


def saturation_psig(gas: GasName, liquid_c: float) -> float:
    """Cylinder pressure with liquid present at ``liquid_c`` (gauge, psi).

    Above the critical temperature there is no liquid; the curve is then
    continued linearly, which is enough for the "warm cylinder" of the
    over-pressure fault.
    """
    return _interpolate(GASES[gas].saturation_table, liquid_c)

"""Cost of one physics step, freezing and idle, at the 10 ms step of a 100 Hz device;
with ``--figures``, the model's figures against the facts of `domain.md`.

Usage: python bench/physics.py [--steps N] [--rounds N] [--figures]

DESIGN.md's budget: about 25 us per sample for everything, physics included.
A measurement, not a test: figures move 3-10x on a shared machine. The
``--figures`` table is what `docs/simulator.md` ("Model against the facts")
quotes; `tests/simulator/test_fidelity.py` and `test_physics.py` hold each
figure to its tolerance.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from collections.abc import Callable

from simulator.gas import ATMOSPHERE_PSIA, GasName, boiling_point_c, saturation_psig
from simulator.physics import SLOW_TICK_S, Physics, PhysicsParams

DT = 0.01


def _per_step_us(physics: Physics, steps: int, rounds: int) -> tuple[float, float]:
    results = []
    step = physics.step
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(steps):
            step(DT)
        results.append((time.perf_counter() - start) / steps * 1e6)
    return statistics.median(results), min(results)


def _run(physics: Physics, seconds: float, each: Callable[[], None] | None = None) -> None:
    for _ in range(round(seconds / DT)):
        physics.step(DT)
        if each is not None:
            each()


def _pressurized(gas: str = "N2O", **overrides: float) -> Physics:
    physics = Physics(PhysicsParams(gas=gas, **overrides))  # type: ignore[arg-type]
    physics.command_valve("vent", False)
    physics.command_valve("inlet", True)
    _run(physics, 2.0)
    return physics


def _growth(gas: str = "N2O", **overrides: float) -> dict[int, tuple[float, float, float, float]]:
    """(volume mL, width mm, length mm, latent J) at marks of a freeze."""
    physics = _pressurized(gas, **overrides)
    physics.command_valve("supply", True)
    marks = {}
    t = 0
    for mark in (30, 60, 106, 120, 180):
        _run(physics, mark - t)
        t = mark
        marks[mark] = (
            physics.ice_volume_ml,
            physics.ice_width_mm,
            physics.ice_length_mm,
            physics.ice_j,
        )
    return marks


def _held_volume(tip_c: float, seconds: float) -> float:
    physics = Physics()
    power = physics.tissue_cooling_max_w * 0.967  # the nominal authority
    for _ in range(round(seconds / SLOW_TICK_S)):
        physics.ice.update(SLOW_TICK_S, SLOW_TICK_S, tip_c, power)
    return physics.ice.volume_ml


def _thaw(gas: str, cycles: int, freeze_s: float) -> tuple[float, float, float]:
    """(plateau, tip >= +2 C, probe free), seconds after the final close."""
    physics = _pressurized(gas)
    for cycle in range(cycles):
        physics.command_valve("supply", True)
        _run(physics, freeze_s)
        physics.command_valve("supply", False)
        if cycle < cycles - 1:
            _run(physics, 30.0)
    physics.command_valve("inlet", False)
    physics.command_valve("vent", True)
    plateau = clear = free = math.nan
    t = 0.0
    while t < 900.0 and math.isnan(free):
        physics.step(DT)
        t += DT
        if math.isnan(plateau) and physics.tip_c >= -1.0:
            plateau = t
        if math.isnan(clear) and physics.tip_c >= 2.0:
            clear = t
        if physics.probe_free:
            free = t
    return plateau, clear, free


def _procedure(gas: str) -> tuple[float, float, float, float, float]:
    """3 x 180 s: (supply low, supply high, gas used, cylinder drop K, sag psi)."""
    physics = _pressurized(gas)
    start_c, start_psi = physics.cylinder_c, physics.cylinder_psi
    low, high = math.inf, -math.inf

    def watch() -> None:
        nonlocal low, high
        low, high = min(low, physics.supply_psi), max(high, physics.supply_psi)

    for cycle in range(3):
        physics.command_valve("supply", True)
        _run(physics, 180.0, watch)
        physics.command_valve("supply", False)
        if cycle < 2:
            _run(physics, 30.0, watch)
    _run(physics, SLOW_TICK_S)
    return (
        low,
        high,
        physics.gas_used_g,
        start_c - physics.cylinder_c,
        start_psi - physics.cylinder_psi,
    )


def figures() -> None:
    """Print each figure of the model with its fact; the tests hold the tolerances."""
    rows: list[tuple[str, str, str]] = []
    gases: tuple[GasName, ...] = ("N2O", "CO2")
    for gas in gases:
        sat = saturation_psig(gas, 20.0) + ATMOSPHERE_PSIA
        slope = (saturation_psig(gas, 21.0) - saturation_psig(gas, 19.0)) / 2.0
        rows.append((f"{gas} P_sat at 20 C, slope", f"{sat:.1f} psia, {slope:.2f} psi/K", ""))
        low, high, used, drop, sag = _procedure(gas)
        rows.append(
            (
                f"{gas} 3 x 180 s from a full cylinder",
                f"supply {low:.1f}-{high:.1f} psig, used {used:.1f} g, "
                f"cylinder -{drop:.2f} K / -{sag:.1f} psi",
                "600-800 psig; ~80 g; 2-3 K / ~40 psi",
            )
        )
        physics = Physics(PhysicsParams(gas=gas))
        cylinder = physics.cylinder
        start = cylinder.temperature_c
        for _ in range(600):
            cylinder.update(0.1, 0.1)
        rows.append((f"{gas} 1 g/s for 1 min", f"-{start - cylinder.temperature_c:.2f} K", "~1 K"))
    for psig in (0, 10, 15, 25):
        rows.append((f"N2O floor at {psig} psig", f"{boiling_point_c('N2O', psig):.1f} C", "table"))
    for exhaust in (10.0, 15.0, 60.4):
        rows.append(
            (f"CO2 floor at {exhaust} psig", f"{boiling_point_c('CO2', exhaust):.1f} C", "")
        )
    for gas in ("N2O", "CO2"):
        g = _growth(gas)
        rows.append(
            (
                f"{gas} ball at 106 s",
                f"{g[106][1]:.2f} x {g[106][2]:.2f} mm, {g[106][0]:.3f} mL",
                "7.1 x 16 mm (20 %)",
            )
        )
        rows.append(
            (
                f"{gas} volume 120 s / 30 s",
                f"{g[120][0] / g[30][0]:.2f}",
                "1.6-2.6",
            )
        )
        increments = (g[60][0], g[120][0] - g[60][0], g[180][0] - g[120][0])
        rows.append(
            (
                f"{gas} volume per minute (1st, 2nd, 3rd)",
                ", ".join(f"{v:.3f}" for v in increments) + " mL",
                "decreasing",
            )
        )
        rows.append((f"{gas} latent heat at 180 s", f"{g[180][3]:.1f} J", "~175 J (10 %)"))
    for seconds in (120.0, 180.0):
        ratio = _held_volume(-70.0, seconds) / _held_volume(-50.0, seconds)
        rows.append((f"-70 / -50 C volume, {seconds:.0f} s held", f"{ratio:.2f}", "2 (25 %)"))
    sizes = {gauge: _growth(probe_gauge=gauge)[180][0] for gauge in (22, 20, 17, 14)}
    rows.append(
        (
            "volume at 180 s by gauge 22/20/17/14",
            " / ".join(f"{sizes[g]:.3f}" for g in (22, 20, 17, 14))
            + f" mL (14 G / 20 G = {sizes[14] / sizes[20]:.2f})",
            "larger probe, larger ball",
        )
    )
    for gas in ("N2O", "CO2"):
        for cycles, freeze_s, fact in ((1, 180.0, "100"), (3, 180.0, "195"), (3, 240.0, "220")):
            plateau, clear, free = _thaw(gas, cycles, freeze_s)
            rows.append(
                (
                    f"{gas} thaw after {cycles} x {freeze_s:.0f} s",
                    f"plateau {plateau:.1f} s, tip +2 C {clear:.1f} s, free {free:.1f} s "
                    f"({free - clear:.1f} s later)",
                    f"tip ~{fact} s, free 75-120 s later" if gas == "N2O" else "",
                )
            )
    physics = _pressurized()
    physics.command_valve("supply", True)
    peak = 0.0

    def watch_power() -> None:
        nonlocal peak
        peak = max(peak, physics.tissue_cooling_w)

    _run(physics, 180.0, watch_power)
    rows.append(
        (
            "cooling reaching the tissue (peak, at 180 s)",
            f"{peak:.2f} W, {physics.tissue_cooling_w:.2f} W of {physics.refrigeration_w:.1f} W",
            "3-6 W",
        )
    )
    width = max(len(r[0]) for r in rows)
    for name, model, fact in rows:
        print(f"{name:<{width}}  {model}  [{fact}]" if fact else f"{name:<{width}}  {model}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--figures", action="store_true", help="print the model's figures")
    args = parser.parse_args(argv)
    if args.figures:
        figures()
        return 0

    idle = Physics()
    freezing = Physics()
    freezing.command_valve("vent", False)
    freezing.command_valve("inlet", True)
    freezing.step(1.0)
    freezing.command_valve("supply", True)
    freezing.step(1.0)
    print(f"physics step at 10 ms, {args.rounds} x {args.steps} steps: median (best)")
    for name, physics in (("idle", idle), ("freezing", freezing)):
        median, best = _per_step_us(physics, args.steps, args.rounds)
        print(f"  {name:<9} {median:6.2f} us/step ({best:.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

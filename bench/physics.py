"""Cost of one physics step, freezing and idle, at the 10 ms step of a 100 Hz device.

Usage: python bench/physics.py [--steps N] [--rounds N]

DESIGN.md's budget: about 25 us per sample for everything, physics included.
A measurement, not a test: figures move 3-10x on a shared machine.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

from simulator.physics import Physics


def _per_step_us(physics: Physics, steps: int, rounds: int) -> float:
    results = []
    step = physics.step
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(steps):
            step(0.01)
        results.append((time.perf_counter() - start) / steps * 1e6)
    return statistics.median(results)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)

    idle = Physics()
    freezing = Physics()
    freezing.command_valve("vent", False)
    freezing.command_valve("inlet", True)
    freezing.step(1.0)
    freezing.command_valve("supply", True)
    freezing.step(1.0)
    print(f"physics step at 10 ms, median of {args.rounds} x {args.steps} steps")
    print(f"  idle      {_per_step_us(idle, args.steps, args.rounds):6.2f} us/step")
    print(f"  freezing  {_per_step_us(freezing, args.steps, args.rounds):6.2f} us/step")
    return 0


if __name__ == "__main__":
    sys.exit(main())

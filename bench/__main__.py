"""Run every performance benchmark of issue 12 and print one table: goal | measured | verdict.

Usage: python -m bench [--only peers,reaction,virtual,realtime,serve,soak] [--trials N]
                       [--rounds N] [--soak-hours H] [--realtime-s S]

Goals 1-2 are ratios measured in the same run (same process or same pty kind,
interleaved, medians); goals 3-5 are absolute and depend on the machine, which
is printed first. The soak here is shortened (`--soak-hours`, default 1 simulated
hour per bit-error rate); the full one is `python -m bench.soak --hours 24`.
Nothing here is a unit test: no wall-clock assertion runs in tests/.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
from collections.abc import Callable

from bench import peers, reaction, realtime, serve_cpu, soak, virtual

Row = tuple[str, str, bool | None]


def _machine() -> str:
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (
        f"{platform.python_implementation()} {platform.python_version()} on "
        f"{platform.system()} {platform.release()}, {os.cpu_count()} CPUs ({cpu}), "
        f"load {load:.2f}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="peers,reaction,virtual,realtime,serve,soak")
    parser.add_argument("--trials", type=int, default=2000, help="pty trials per mode")
    parser.add_argument("--rounds", type=int, default=7, help="codec rounds")
    parser.add_argument("--virtual-rounds", type=int, default=3)
    parser.add_argument("--soak-hours", type=float, default=1.0)
    parser.add_argument("--realtime-s", type=float, default=60.0)
    args = parser.parse_args(argv)
    wanted = set(args.only.split(","))
    print(_machine())
    steps: list[tuple[str, Callable[[], list[Row]]]] = [
        ("peers", lambda: list(peers.goals(peers.measure(args.rounds, 20_000)))),
        ("reaction", lambda: list(reaction.goals(reaction.measure(args.trials)))),
        ("virtual", lambda: list(virtual.goals(virtual.measure(args.virtual_rounds)))),
        ("realtime", lambda: list(realtime.goals(realtime.measure(args.realtime_s, 10.0)))),
        (
            "serve",
            lambda: list(
                serve_cpu.goals(
                    *serve_cpu.run(args.realtime_s, args.realtime_s, False)[:2], args.realtime_s
                )
            ),
        ),
        (
            "soak",
            lambda: list(
                soak.goals([soak.soak(b, args.soak_hours, "/var/tmp") for b in (1e-5, 1e-4)])
            ),
        ),
    ]
    rows: list[Row] = []
    for name, step in steps:
        if name not in wanted:
            continue
        print(f"running {name} ...", flush=True)
        try:
            rows.extend(step())
        except Exception as exc:  # a broken bench is a row, not a crash of the others
            rows.append((f"{name}", f"error: {type(exc).__name__}: {exc}", False))
    width = max(len(r[0]) for r in rows) if rows else 10
    print()
    print(f"{'goal':{width}s} | {'measured':s} | verdict")
    print("-" * (width + 30))
    for goal, measured, ok in rows:
        verdict = "n/a" if ok is None else ("PASS" if ok else "FAIL")
        print(f"{goal:{width}s} | {measured} | {verdict}")
    return 0 if all(ok is not False for _, _, ok in rows) else 1


if __name__ == "__main__":
    sys.exit(main())

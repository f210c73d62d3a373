"""Virtual-time speed of the default procedure, as a whole process (issue 12, goal 3).

Usage: python -m bench.virtual [--rounds N]

Runs `python -m console simulate --quiet` (the default procedure: N2O, 3 cycles
of 180 s freeze and 30 s thaw, seed 0, through the real codec, interlocks, state
machine and store) as a child process, start-up included, alternating a
database on disk (a temporary directory under /var/tmp) and on tmpfs
(/dev/shm), `--rounds` times each. Reports the medians of the wall time, the
child's CPU time, the device time simulated (the last event's `t_s`), the
speed (device time / wall time), the per-sample cost (wall / samples at
100 Hz) and the fsync share: (disk - tmpfs) / disk, same run, medians.
The goal (>= 300x) is absolute: it depends on the machine (see docs/performance.md).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
TELEMETRY_HZ = 100.0


def _one(db_dir: str) -> tuple[float, float, float]:
    """(wall s, child CPU s, device s) of one `simulate` run with its database in db_dir."""
    with tempfile.TemporaryDirectory(dir=db_dir) as tmp:
        events = Path(tmp) / "events.jsonl"
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        subprocess.run(
            [
                *(sys.executable, "-m", "console", "simulate", "--quiet"),
                *("--db", str(Path(tmp) / "s.sqlite3"), "--events", str(events)),
            ],
            check=True,
            env=env,
            cwd=ROOT,
        )
        wall = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        with events.open() as f:
            last: dict[str, Any] = {}
            for line in f:
                last = json.loads(line)
        return wall, cpu, float(last["t_s"])


def measure(rounds: int) -> dict[str, Any]:
    disk_dir = "/var/tmp" if os.path.isdir("/var/tmp") else tempfile.gettempdir()
    shm_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None
    runs: dict[str, list[tuple[float, float, float]]] = {"disk": [], "tmpfs": []}
    for _ in range(rounds):
        runs["disk"].append(_one(disk_dir))
        if shm_dir is not None:
            runs["tmpfs"].append(_one(shm_dir))
    out: dict[str, Any] = {"rounds": rounds}
    for where, rs in runs.items():
        if not rs:
            continue
        wall = statistics.median(r[0] for r in rs)
        cpu = statistics.median(r[1] for r in rs)
        device = statistics.median(r[2] for r in rs)
        out[where] = {
            "wall_s": wall,
            "cpu_s": cpu,
            "device_s": device,
            "speed": device / wall,
            "us_per_sample": wall / (device * TELEMETRY_HZ) * 1e6,
        }
    if runs["tmpfs"]:
        shares = [(d[0] - t[0]) / d[0] for d, t in zip(runs["disk"], runs["tmpfs"], strict=True)]
        out["fsync_share"] = statistics.median(shares)
    return out


def goals(r: dict[str, Any]) -> list[tuple[str, str, bool]]:
    rows = []
    for where in ("disk", "tmpfs"):
        if where in r:
            f = r[where]
            rows.append(
                (
                    f"3. default procedure >= 300x real time (db on {where})",
                    f"{f['speed']:.0f}x ({f['device_s']:.0f} s in {f['wall_s']:.1f} s, "
                    f"{f['us_per_sample']:.0f} us/sample)",
                    f["speed"] >= 300.0,
                )
            )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    r = measure(args.rounds)
    print(f"virtual time: `simulate` default procedure, {r['rounds']} rounds per place, medians")
    for where in ("disk", "tmpfs"):
        if where in r:
            f = r[where]
            print(
                f"  {where:5s} wall {f['wall_s']:6.2f} s  cpu {f['cpu_s']:6.2f} s  "
                f"device {f['device_s']:7.1f} s  {f['speed']:5.0f}x  "
                f"{f['us_per_sample']:5.0f} us/sample"
            )
    if "fsync_share" in r:
        print(f"  fsync share of the wall time on disk: {100 * r['fsync_share']:.0f} %")
    for goal, measured, ok in goals(r):
        print(f"  {goal}: {measured} {'PASS' if ok else 'FAIL'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

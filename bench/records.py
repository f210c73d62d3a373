"""What the session record costs: the default simulated procedure without a store, with one on
tmpfs, and with one on disk (fsync for real), interleaved over rounds, median.

Usage: python bench/records.py [--rounds N] [--disk DIR] [--tmpfs DIR]

The difference tmpfs - none is the record's CPU (canonical JSON, SHA-256, inserts);
disk - tmpfs is the fsync share (WAL, synchronous=FULL: one fsync per commit).
A measurement, not a test: figures move 3-10x on a shared machine.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import uuid
from pathlib import Path

from console.config import load_config
from console.events import EventStream
from console.records import Recorder
from console.simulation import Simulation
from console.wiring import record_with
from simulator.device import SimConfig


def _one(folder: Path | None) -> tuple[float, int, int, int]:
    """(wall s, samples, records, commits) of one default procedure."""
    config = load_config(None, {})
    holder: list[Simulation] = []
    stream = EventStream(lambda: holder[0].now if holder else 0.0)
    simulation = Simulation(config, SimConfig(seed=0), sink=stream)
    holder.append(simulation)
    recorder = None
    commits = [0]
    if folder is not None:
        recorder = Recorder(
            folder / f"{uuid.uuid4().hex}.sqlite3",
            uuid.uuid4().hex,
            command="bench",
            port=None,
            simulated=True,
        )
        stream.sinks.append(recorder)
        record_with(recorder, simulation.controller, simulation.runner, lambda: simulation.now)
        commit = recorder.commit

        def counted() -> bool:
            commits[0] += 1
            return commit()

        recorder.commit = counted  # type: ignore[method-assign]
    start = time.perf_counter()
    stream("session_started", {})
    simulation.run()
    stream("session_finished", {"outcome": "completed", "reason": "bench"})
    if recorder is not None:
        recorder.close(0)
    wall = time.perf_counter() - start
    return wall, simulation.runner.snapshots, stream.seq, commits[0]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--disk", type=Path, default=None, help="default: a folder under /var/tmp")
    parser.add_argument("--tmpfs", type=Path, default=Path("/dev/shm"))
    args = parser.parse_args(argv)
    disk = Path(tempfile.mkdtemp(dir=args.disk or "/var/tmp"))
    tmpfs = Path(tempfile.mkdtemp(dir=args.tmpfs))
    walls: dict[str, list[float]] = {"none": [], "tmpfs": [], "disk": []}
    samples = records = commits = 0
    for _ in range(args.rounds):
        for name, folder in (("none", None), ("tmpfs", tmpfs), ("disk", disk)):
            wall, samples, records, n = _one(folder)
            walls[name].append(wall)
            commits = max(commits, n)
    med = {k: statistics.median(v) for k, v in walls.items()}
    print(f"default procedure: {samples} samples, {records} records, {commits} commits")
    for name, wall in med.items():
        print(f"{name:>6}: {wall:6.2f} s wall, {wall / samples * 1e6:5.1f} us per sample")
    print(
        f"record CPU (tmpfs - none): {(med['tmpfs'] - med['none']) / samples * 1e6:.1f} us/sample; "
        f"fsync share (disk - tmpfs): {(med['disk'] - med['tmpfs']) / samples * 1e6:.1f} us/sample "
        f"= {(med['disk'] - med['tmpfs']) / max(commits, 1) * 1e3:.2f} ms per commit"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Soak in virtual time: default procedures back to back with random faults (issue 12, goal 5).

Usage: python -m bench.soak [--hours 24] [--ber 1e-5 1e-4] [--db-dir DIR]

For each bit-error rate, procedures (the default one: N2O, 3 x 180 s freeze) run
back to back until `--hours` of device time, each a fresh simulated device
(seed = its index) with `link_corrupt:ber=<ber>` in both directions for the
whole run; every other procedure also gets one device fault, drawn from a
seeded generator, at a random instant of its freezes. Every procedure goes
through the real codec, interlocks, state machine and the store (one SQLite
file per rate, a session record per procedure, as `simulate` writes it).

Checked:
- corrupt frames accepted: every frame the console's decoder accepts is
  re-encoded and looked up among the frames the device sent (a set per
  procedure); one not found is a corrupt (or foreign) frame accepted;
- invariants, after each procedure: the device physically safe (supply and
  inlet closed, vent open, stimulation off), the session record's hash chain
  verifies, no exception;
- completion: the share of fault-free procedures that complete (exit 0);
- ALM_LINK_DEGRADED raised and device watchdog trips, counted;
- resident memory (RSS) and the store's size at the end of each simulated hour (a
  soak shorter than two hours: after the first and the last procedure); the
  memory goal compares the first and the last figure, the store's growth is
  stated per simulated hour; the count of live Python objects after each
  procedure is printed too (RSS also moves with the allocator's high-water mark).
The full run (24 simulated hours per rate) takes about as long as 24 h / the
virtual-time speed of bench/virtual.py; `python -m bench` runs a shortened one.
"""

from __future__ import annotations

import argparse
import gc
import os
import random
import sqlite3
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from console.config import load_config
from console.events import EventStream
from console.records import Recorder, find_session, verify
from console.simulation import Simulation
from console.wiring import record_with
from protocols import Frame, StreamDecoder, encode
from simulator.device import SimConfig
from simulator.faults import parse_fault

DEVICE_FAULTS = [
    "exhaust_blocked",
    "supply_leak",
    "cylinder_empty",
    "supply_overpressure",
    "valve_stuck_closed",
    "thermistor_open",
    "thermistor_drift",
    "thermistor_stuck",
    "pressure_sensor_fail",
    "orifice_clog",
    "liquid_carryover",
    "firmware_reset",
    "device_silent:duration_s=1",
    "link_drop:duration_s=0.5",
]


def _rss_bytes() -> int:
    gc.collect()  # the previous procedure's objects (and this bench's frame sets) gone first
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE")


def _db_bytes(db: Path) -> int:
    return sum(p.stat().st_size for p in db.parent.glob(db.name + "*"))


class _Counts:
    def __init__(self) -> None:
        self.alarms: dict[str, int] = {}
        self.watchdog = 0

    def __call__(self, event: dict[str, Any]) -> None:
        name = event["event"]
        if name == "alarm_raised":
            self.alarms[event["alarm"]] = self.alarms.get(event["alarm"], 0) + 1
        elif name == "device_fault" and "watchdog" in str(event.get("event_kind", "")):
            self.watchdog += 1


def one_procedure(index: int, ber: float, db: Path, counts: _Counts) -> dict[str, Any]:
    rng = random.Random(index)
    faults = [f"link_corrupt:ber={ber}"]
    if index % 2:
        faults.append(
            f"{rng.choice(DEVICE_FAULTS)}@freeze{rng.randint(1, 3)}+{rng.randint(1, 170)}"
        )
    config = load_config(None, {"gas": "N2O"})
    sim_config = SimConfig(seed=index, gas="N2O", faults=tuple(parse_fault(f) for f in faults))
    session_id = uuid.uuid4().hex
    recorder = Recorder(db, session_id, command="simulate", port=None, simulated=True)
    holder: dict[str, Simulation] = {}
    stream = EventStream(lambda: holder["sim"].now if "sim" in holder else 0.0)
    stream.sinks.append(recorder)
    stream.sinks.append(counts)
    sim = Simulation(config, sim_config, sink=stream)
    holder["sim"] = sim
    record_with(recorder, sim.controller, sim.runner, lambda: sim.now)
    # The frames the device sent, and a check of every frame the console accepted.
    sent: set[bytes] = set()
    firmware = sim.device.firmware
    take = firmware.take_output

    def take_output() -> bytes:
        out = take()
        if out:
            sent.update(out.split(b"\x00"))
        return out

    firmware.take_output = take_output  # type: ignore[method-assign]
    bad: list[Any] = []

    class CheckedDecoder(StreamDecoder):
        def feed(self, data: bytes) -> list[Frame]:
            frames = super().feed(data)
            for f in frames:
                if encode(f.message, f.seq, f.nonce, f.version)[:-1] not in sent:
                    bad.append(f)
            return frames

    sim.connection.link.decoder = CheckedDecoder()  # fresh, as the link's own was
    stream("session_started", {"session_id": session_id, "simulated": True, "faults": faults})
    result = sim.run(max_virtual_s=3600.0)
    stream("session_finished", {"outcome": result.outcome, "reason": result.reason})
    recorder.close(result.exit_code)
    p = sim.device.physics
    safe = not (p.supply_open or p.inlet_open or p.stim_on) and p.vent_open
    with sqlite3.connect(db) as conn:
        verdict = verify(conn, find_session(conn, session_id))
    return {
        "faults": faults,
        "exit": result.exit_code,
        "device_s": result.virtual_s,
        "corrupt_accepted": len(bad),
        "safe": safe,
        "chain_ok": verdict.ok,
        "fault_free": index % 2 == 0,
    }


def soak(ber: float, hours: float, db_dir: str) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(dir=db_dir) as tmp:
        db = Path(tmp) / "soak.sqlite3"
        counts = _Counts()
        total_s, index, hour = 0.0, 0, 0
        rss: list[int] = []
        store: list[int] = []
        procs: list[dict[str, Any]] = []
        #: (device s so far, RSS, store bytes) after each procedure.
        by_procedure: list[tuple[float, int, int]] = []
        #: Python objects alive after each procedure (a leak shows here before in RSS).
        objects: list[int] = []
        start = time.perf_counter()
        while total_s < hours * 3600.0:
            r = one_procedure(index, ber, db, counts)
            procs.append(r)
            total_s += r["device_s"]
            index += 1
            by_procedure.append((total_s, _rss_bytes(), _db_bytes(db)))
            objects.append(len(gc.get_objects()))
            if total_s >= (hour + 1) * 3600.0:
                hour = int(total_s // 3600.0)
                rss.append(by_procedure[-1][1])
                store.append(by_procedure[-1][2])
        wall = time.perf_counter() - start
    if len(rss) < 2:  # a shortened soak: from the first procedure's end to the last's
        rss = [by_procedure[0][1], by_procedure[-1][1]]
        store = [by_procedure[0][2], by_procedure[-1][2]]
    free = [r for r in procs if r["fault_free"]]
    return {
        "ber": ber,
        "hours": total_s / 3600.0,
        "wall_s": wall,
        "procedures": len(procs),
        "fault_free_completed": sum(r["exit"] == 0 for r in free),
        "fault_free": len(free),
        "corrupt_accepted": sum(r["corrupt_accepted"] for r in procs),
        "invariant_breaks": sum((not r["safe"]) + (not r["chain_ok"]) for r in procs),
        "link_degraded": counts.alarms.get("ALM_LINK_DEGRADED", 0),
        "alarms": counts.alarms,
        "rss_mb": [x / 2**20 for x in rss],
        "objects": (objects[0], objects[-1]),
        "store_mb": [x / 2**20 for x in store],
    }


def goals(results: list[dict[str, Any]]) -> list[tuple[str, str, bool]]:
    rows = []
    for r in results:
        tag = f"5. soak ber {r['ber']:g}, {r['hours']:.1f} simulated h"
        growth = (r["rss_mb"][-1] / r["rss_mb"][0] - 1.0) if len(r["rss_mb"]) > 1 else 0.0
        ok = r["corrupt_accepted"] == 0 and r["invariant_breaks"] == 0 and growth < 0.05
        if r["ber"] <= 1e-5:
            ok = ok and r["fault_free_completed"] == r["fault_free"]
        per_h = r["store_mb"][-1] / max(r["hours"], 1e-9)
        rows.append(
            (
                tag,
                f"{r['procedures']} procedures, fault-free completed "
                f"{r['fault_free_completed']}/{r['fault_free']}, corrupt accepted "
                f"{r['corrupt_accepted']}, invariant breaks {r['invariant_breaks']}, "
                f"LINK_DEGRADED {r['link_degraded']}, RSS {r['rss_mb'][0]:.0f}->"
                f"{r['rss_mb'][-1]:.0f} MB ({100 * growth:+.1f} %), objects {r['objects'][0]}->"
                f"{r['objects'][1]}, store {per_h:.1f} MB/h",
                ok,
            )
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hours", type=float, default=24.0, help="simulated hours per rate")
    parser.add_argument("--ber", type=float, nargs="+", default=[1e-5, 1e-4])
    parser.add_argument("--db-dir", default=tempfile.gettempdir())
    args = parser.parse_args(argv)
    results = [soak(ber, args.hours, args.db_dir) for ber in args.ber]
    for r in results:
        print(
            f"  ber {r['ber']:g}: {r['hours']:.2f} h simulated in {r['wall_s']:.0f} s wall; "
            f"alarms {r['alarms']}; RSS (MB, hourly, or first and last procedure) "
            + " ".join(f"{x:.0f}" for x in r["rss_mb"])
            + "; store (MB) "
            + " ".join(f"{x:.1f}" for x in r["store_mb"])
        )
    for goal, measured, ok in goals(results):
        print(f"  {goal}: {measured} {'PASS' if ok else 'FAIL'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

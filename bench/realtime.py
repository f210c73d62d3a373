"""Real-time cost: `run` against `device-sim` at 100 Hz (issue 12, goal 4).

Usage: python -m bench.realtime [--seconds 60] [--settle 10]

Starts `probe-console device-sim --listen pty` (100 Hz telemetry), then
`probe-console run --port <pty>` with the all-clear checklist and the default
procedure (3 cycles of 180 s: it is still freezing when the measurement ends),
waits `--settle` seconds (start-up, handshake, leak test), then reads the `run`
process's CPU time (utime + stime from /proc/<pid>/stat) at the start and the
end of `--seconds`, and reports it as a share of one core. Both processes are
stopped with SIGTERM afterwards (the console makes the device safe on the way
out). The goal (< 5 % of one core) is absolute: it depends on the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from console.actions import clear_checklist

ROOT = Path(__file__).resolve().parent.parent
TICKS = os.sysconf("SC_CLK_TCK")


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime


def measure(seconds: float, settle: float) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "console"]
    with tempfile.TemporaryDirectory() as tmp:
        checklist = Path(tmp) / "checklist.json"
        checklist.write_text(json.dumps(clear_checklist().model_dump()))
        device = subprocess.Popen(
            [*cmd, "device-sim", "--listen", "pty", "--telemetry-hz", "100"],
            stdout=subprocess.PIPE,
            text=True,
            env=env,
            cwd=ROOT,
        )
        run = None
        try:
            assert device.stdout is not None
            line = device.stdout.readline().split()
            if not line or line[0] != "LISTENING":
                raise RuntimeError(f"device-sim said {line!r}")
            run = subprocess.Popen(
                [
                    *cmd,
                    *("run", "--port", line[1], "--checklist", str(checklist), "--quiet"),
                    *("--localize-ma", "0.5", "--db", str(Path(tmp) / "s.sqlite3")),
                    *("--events", str(Path(tmp) / "e.jsonl")),
                ],
                env=env,
                cwd=ROOT,
            )
            time.sleep(settle)
            if run.poll() is not None:
                raise RuntimeError(f"run ended early (exit {run.returncode})")
            cpu0, t0 = _cpu_s(run.pid), time.monotonic()
            dev0 = _cpu_s(device.pid)
            time.sleep(seconds)
            cpu1, t1 = _cpu_s(run.pid), time.monotonic()
            dev1 = _cpu_s(device.pid)
            if run.poll() is not None:
                raise RuntimeError(f"run ended during the measurement (exit {run.returncode})")
        finally:
            # The console first (it makes the device safe on its way out), then the device.
            for p in (run, device):
                if p is not None:
                    if p.poll() is None:
                        p.send_signal(signal.SIGTERM)
                    try:
                        p.wait(20)
                    except subprocess.TimeoutExpired:
                        p.kill()
    return {
        "seconds": t1 - t0,
        "run_share": (cpu1 - cpu0) / (t1 - t0),
        "device_share": (dev1 - dev0) / (t1 - t0),
    }


def goals(r: dict[str, Any]) -> list[tuple[str, str, bool]]:
    return [
        (
            "4. `run` vs `device-sim` at 100 Hz < 5 % of one core",
            f"{100 * r['run_share']:.1f} % over {r['seconds']:.0f} s "
            f"(device-sim {100 * r['device_share']:.1f} %)",
            r["run_share"] < 0.05,
        )
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--settle", type=float, default=10.0)
    args = parser.parse_args(argv)
    r = measure(args.seconds, args.settle)
    for goal, measured, ok in goals(r):
        print(f"  {goal}: {measured} {'PASS' if ok else 'FAIL'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

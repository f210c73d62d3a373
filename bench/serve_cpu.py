"""The real-time cost of `serve`: its process CPU time against `device-sim` at 100 Hz.

Usage: python bench/serve_cpu.py [--idle-s 60] [--freeze-s 60] [--subscriber]

Starts `device-sim --listen pty` and `serve --profile bench` as processes,
waits for `ready`, then reads serve's user + system CPU time
(`/proc/PID/stat`) over `--idle-s` seconds while idle in `ready`, then drives
a procedure through the API (arm, localize, start_freeze with a freeze of
`--freeze-s` + 10 s) and measures again over `--freeze-s` seconds in the
freeze. With `--subscriber`, one API client subscribed to every event
(telemetry included) reads all along. The goal (issue 13): < 5 % of one core
in steady state. The machine is shared: figures move between runs; this is a
measurement, the goal is checked by eye (and printed).
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from console.actions import clear_checklist  # noqa: E402
from console.client import Client, ConnectError  # noqa: E402

CONSOLE = [sys.executable, "-m", "console"]
CHECKLIST = clear_checklist().model_dump()  # all clear, as the scripted operator
TICK = os.sysconf("SC_CLK_TCK")


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime, stime


def measure(pid: int, seconds: float) -> float:
    """Percent of one core over `seconds` of wall time."""
    c0, t0 = cpu_s(pid), time.monotonic()
    time.sleep(seconds)
    c1, t1 = cpu_s(pid), time.monotonic()
    return 100.0 * (c1 - c0) / (t1 - t0)


def wait_state(sock: Path, *states: str, timeout_s: float = 60.0) -> dict[str, object]:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with Client(sock) as c:
                status = c.status()
            if status["state"] in states:
                return status
        except (ConnectError, FileNotFoundError):
            pass
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {states}")
        time.sleep(0.2)


def run(idle_s: float, freeze_s: float, subscriber: bool) -> tuple[float, float, int]:
    """(idle %, freeze %, events the subscriber received) of one core, for `serve`."""
    tmp = Path(tempfile.mkdtemp(prefix="serve-cpu-"))
    env = {
        **os.environ,
        "PROBE_CONSOLE_DB": str(tmp / "sessions.sqlite3"),
        "PROBE_CONSOLE_SOCKET": str(tmp / "run" / "api.sock"),
        "PYTHONPATH": str(ROOT),
    }
    sock = tmp / "run" / "api.sock"
    sim = subprocess.Popen(
        [*CONSOLE, "device-sim", "--listen", "pty"],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert sim.stdout is not None
    url = sim.stdout.readline().split()[1]
    serve = subprocess.Popen(
        [*CONSOLE, "serve", "--port", url, "--profile", "bench", "--quiet"],
        env=env,
        stdout=subprocess.DEVNULL,
    )
    received = [0]
    try:
        wait_state(sock, "ready")
        if subscriber:

            def read() -> None:
                with Client(sock, timeout_s=None) as c:
                    c.subscribe()
                    try:
                        for _ in c.events():
                            received[0] += 1
                    except ConnectError:
                        return  # serve stopped

            threading.Thread(target=read, daemon=True).start()
        time.sleep(2.0)  # past the start-up
        idle = measure(serve.pid, idle_s)
        with Client(sock) as c:
            c.call("arm", {"checklist": CHECKLIST, "cycles": 1, "freeze_s": freeze_s + 10.0})
            wait_state(sock, "armed")
            c.call("stim_configure", {"preset": "motor"})
            c.call("stim_start")
            c.call("confirm_localization")
            c.call("start_freeze")
        wait_state(sock, "freeze_1")
        time.sleep(2.0)
        freeze = measure(serve.pid, freeze_s)
    finally:
        serve.send_signal(signal.SIGTERM)
        serve.wait(timeout=30)
        sim.send_signal(signal.SIGTERM)
        sim.wait(timeout=10)
    return idle, freeze, received[0]


def goals(idle: float, freeze: float, seconds: float) -> list[tuple[str, str, bool]]:
    """The rows of `python -m bench`: serve's share of one core, idle and in a freeze."""
    return [
        (
            "4. `serve` vs `device-sim` at 100 Hz < 5 % of one core",
            f"idle {idle:.2f} %, in freeze_1 {freeze:.2f} % (over {seconds:g} s each)",
            max(idle, freeze) < 5.0,
        )
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--idle-s", type=float, default=60.0)
    parser.add_argument("--freeze-s", type=float, default=60.0)
    parser.add_argument("--subscriber", action="store_true")
    args = parser.parse_args()
    idle, freeze, received = run(args.idle_s, args.freeze_s, args.subscriber)
    print(f"serve idle in ready:  {idle:5.2f} % of one core over {args.idle_s:g} s")
    print(f"serve in freeze_1:    {freeze:5.2f} % of one core over {args.freeze_s:g} s")
    if args.subscriber:
        print(f"events received by the subscriber: {received}")
    print(f"goal < 5 % of one core: {'met' if max(idle, freeze) < 5.0 else 'NOT met'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""A `serve` process against `device-sim` on a pty, for the daemon's tests (bench profile)."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from console.actions import clear_checklist
from console.client import Client, ConnectError
from console.records import events, list_sessions
from tests.console.procs import CONSOLE, Sim

CHECKLIST = clear_checklist().model_dump()  # all clear, as the scripted operator


class Served:
    def __init__(self, proc: subprocess.Popen[bytes], socket: Path, db: Path, events: Path) -> None:
        self.proc = proc
        self.socket = socket
        self.db = db
        self.events_path = events

    def client(self, timeout_s: float = 10.0) -> Client:
        return Client(self.socket, timeout_s=timeout_s)

    def status(self) -> dict[str, Any]:
        with self.client() as c:
            return c.status()

    def call(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        with self.client() as c:
            return c.call(method, params)

    def wait(
        self, done: Callable[[dict[str, Any]], bool], timeout_s: float = 60.0
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        while True:
            status = self.status()
            if done(status):
                return status
            assert time.monotonic() < deadline, f"timed out; last status {status}"
            assert self.proc.poll() is None, "serve ended"
            time.sleep(0.1)

    def wait_state(self, *states: str, timeout_s: float = 60.0) -> dict[str, Any]:
        return self.wait(lambda s: s["state"] in states, timeout_s)

    def events(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.events_path.read_text().splitlines()]

    def stored(self) -> list[dict[str, Any]]:
        """The session record's events, from the store."""
        db = sqlite3.connect(self.db)
        try:
            last = list_sessions(db)[-1]
            return list(events(db, last.session_id))
        finally:
            db.close()

    def stop(self, sig: int = signal.SIGTERM, timeout_s: float = 20.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(timeout=timeout_s)


def start_serve(
    sim: Sim, tmp: Path, env: dict[str, str], *extra: str, socket: Path | None = None
) -> Served:
    socket = socket or tmp / "run" / "api.sock"
    events = tmp / "serve-events.jsonl"
    db = Path(env["PROBE_CONSOLE_DB"])
    out = (tmp / "serve.out").open("wb")
    err = (tmp / "serve.err").open("wb")
    proc = subprocess.Popen(
        [
            *CONSOLE,
            "serve",
            "--port",
            sim.url,
            "--socket",
            str(socket),
            "--profile",
            "bench",
            "--events",
            str(events),
            *extra,
        ],
        env=env,
        stdout=out,
        stderr=err,
    )
    out.close()
    err.close()
    served = Served(proc, socket, db, events)
    deadline = time.monotonic() + 30
    while True:
        if proc.poll() is not None:
            raise AssertionError(
                f"serve ended {proc.returncode}: {(tmp / 'serve.err').read_text()}"
            )
        try:
            if served.status()["state"] == "ready":
                return served
        except (ConnectError, FileNotFoundError):
            pass
        assert time.monotonic() < deadline, "serve never got ready"
        time.sleep(0.1)


def drive_to_freeze(served: Served, freeze_s: float, client: Client | None = None) -> None:
    """arm (1 cycle), localize at 0.5 mA, confirm, start_freeze; returns in `pressurize`."""
    c = client or served.client()
    try:
        arm = c.call(
            "arm", {"checklist": CHECKLIST, "cycles": 1, "freeze_s": freeze_s, "thaw_s": 5.0}
        )
        assert arm["accepted"] is True and arm["state"] in ("leak_test", "armed")
        served.wait_state("armed", timeout_s=40)
        c.call("stim_configure", {"current_ma": 0.5, "pulse_us": 100, "rate_hz": 2})
        assert c.call("stim_start")["state"] == "localize"
        c.call("confirm_localization")
        assert c.call("start_freeze")["state"] == "pressurize"
    finally:
        if client is None:
            c.close()

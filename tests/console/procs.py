"""Console and device-sim processes for the command-line tests."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys

CONSOLE = [sys.executable, "-m", "console"]


class Sim:
    def __init__(self, proc: subprocess.Popen[str], url: str, control: str) -> None:
        self.proc = proc
        self.url = url
        host, port = control.removeprefix("tcp://").split(":")
        self.control = (host, int(port))

    def ask(self, line: str) -> str:
        with socket.create_connection(self.control, timeout=5) as s:
            s.sendall(line.encode() + b"\n")
            data = b""
            while not data.endswith(b"\n"):
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
        return data.decode().strip()

    def status(self) -> dict[str, object]:
        return json.loads(self.ask("STATUS"))  # type: ignore[no-any-return]


def start_sim(*args: str) -> Sim:
    proc = subprocess.Popen(
        [*CONSOLE, "device-sim", "--listen", "pty", "--control", "tcp://127.0.0.1:0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    listening = proc.stdout.readline().split()
    control = proc.stdout.readline().split()
    assert listening[0] == "LISTENING" and control[0] == "CONTROL", (listening, control)
    return Sim(proc, listening[1], control[1])


def stop_sim(sim: Sim) -> None:
    sim.proc.send_signal(signal.SIGTERM)
    try:
        sim.proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        sim.proc.kill()
        sim.proc.wait()


def run(
    args: list[str], env: dict[str, str], timeout: float = 30
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CONSOLE, *args], capture_output=True, text=True, env=env, timeout=timeout, check=False
    )

"""The real-time servers and ``probe-console device-sim``, exercised like a bench.

The device runs behind a real pty or loopback TCP port in a background thread
(or as a separate process), and the clients are the daemon's own pieces:
pyserial through `drivers.transport.SerialTransport` and the host side of the
link, `drivers.link.Link`. So these tests check what a test engineer relies on:
a hello gets the configured identity, telemetry flows at about the configured
rate while heartbeats keep the session alive, the physics carries on across
reconnects, and a client that goes away is link loss to the firmware.

Every wait is bounded by a deadline of a few seconds; nothing sleeps 0.5 s or
more. Timing assertions are lenient (counts within wide bands, bounds that
hold under load), because these run in real time on shared machines.
"""

from __future__ import annotations

import json
import math
import os
import random
import re
import select
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

import pytest

from console import cli, device_sim
from drivers.link import Acked, Identified, Link, LinkEvent
from drivers.transport import SerialTransport
from protocols import DeviceKind, Gas, Identity, StatusFlags, Telemetry, ValveCommand
from simulator.device import SimConfig, SimulatedDevice
from simulator.firmware import DeviceIdentity
from simulator.server import LOOPBACK, ControlChannel, DeviceServer, PtyLine, TcpLine, json_safe

DEADLINE_S = 5.0
WINDOW_S = 0.45  # telemetry counting window; < 0.5 s
INLET, VENT = 1, 2


# --- clients ----------------------------------------------------------------------------------


class Port(Protocol):
    def read(self, max_wait_s: float) -> bytes: ...

    def write(self, data: bytes) -> None: ...

    def close(self) -> None: ...


class SocketPort:
    """A bare TCP client, for the tests that must know exactly when the line went away.

    (pyserial's socket:// close() sleeps 0.3 s after shutting the socket.)
    """

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection((LOOPBACK, port), timeout=DEADLINE_S)

    def read(self, max_wait_s: float) -> bytes:
        ready, _, _ = select.select([self.sock], [], [], max_wait_s)
        return self.sock.recv(65536) if ready else b""

    def write(self, data: bytes) -> None:
        self.sock.sendall(data)

    def close(self) -> None:
        self.sock.close()


class Host:
    """The host side of one device session: a port, a `Link`, and what arrived."""

    def __init__(self, port: Port) -> None:
        self.port = port
        self.link = Link()
        self.telemetry: list[Telemetry] = []
        self.events: list[LinkEvent] = []
        self.identity: Identity | None = None
        self.last_tx_s = 0.0

    def send(self, data: bytes) -> None:
        self.port.write(data)
        self.last_tx_s = time.monotonic()

    def pump(self, seconds: float, until: Callable[[], bool] | None = None) -> None:
        """Read, decode and heartbeat for `seconds`, or until `until()` holds."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            data = self.port.read(0.005)
            now = time.monotonic()
            events = self.link.receive(data, now) if data else []
            out, more = self.link.poll(now)
            if out:
                self.send(out)
            for event in events + more:
                self.events.append(event)
                if isinstance(event, Telemetry):
                    self.telemetry.append(event)
                elif isinstance(event, Identified):
                    self.identity = event.identity
            if until is not None and until():
                return

    def handshake(self) -> Identity:
        self.identity = None
        self.send(self.link.hello(random.randrange(1, 1 << 32), time.monotonic()))
        self.pump(DEADLINE_S, until=lambda: self.identity is not None and bool(self.telemetry))
        assert self.identity is not None, "no identity answered the hello"
        return self.identity

    def command(self, message: ValveCommand) -> None:
        seq, wire = self.link.send(message, time.monotonic())
        self.send(wire)

        def acked() -> bool:
            return any(isinstance(e, Acked) and e.seq == seq for e in self.events)

        self.pump(DEADLINE_S, until=acked)
        assert acked(), f"{message} was not acknowledged: {self.events[-5:]}"


class Control:
    """A control-channel client: one line out, one line back."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection((LOOPBACK, port), timeout=DEADLINE_S)
        self.file = self.sock.makefile("rb")

    def ask(self, line: str | bytes) -> str:
        raw = line.encode() if isinstance(line, str) else line
        self.sock.sendall(raw + b"\n")
        return self.answer()

    def answer(self) -> str:
        return self.file.readline().decode("utf-8").rstrip("\n")

    def status(self) -> dict[str, Any]:
        status: dict[str, Any] = json.loads(self.ask("STATUS"), parse_constant=_no_constants)
        return status

    def close(self) -> None:
        self.file.close()
        self.sock.close()


def _no_constants(name: str) -> None:
    raise AssertionError(f"non-standard JSON constant {name}")


# --- in-process servers --------------------------------------------------------------------

IDENTITY = DeviceIdentity(probe_model="CRYO-TEST", probe_serial="PRB-ABC123", probe_uses=7)


@contextmanager
def running(kind: str, *, gas: str = "N2O") -> Iterator[tuple[DeviceServer, ControlChannel]]:
    """A device server on a pty or TCP line, with its control channel, in a background thread."""
    logs: list[str] = []
    device = SimulatedDevice(SimConfig(seed=7, gas=gas, identity=IDENTITY))
    line = PtyLine() if kind == "pty" else TcpLine(0, log=logs.append)
    control = ControlChannel(0, log=logs.append)
    server = DeviceServer(device, line, control, log=logs.append)
    server.start()
    try:
        yield server, control
    finally:
        server.stop()
        assert server.error is None, logs
        assert server._thread is not None and not server._thread.is_alive()


@pytest.mark.pty
@pytest.mark.parametrize("kind", ["pty", "tcp"])
def test_pyserial_client_gets_identity_and_telemetry(kind: str) -> None:
    with running(kind, gas="CO2") as (server, _control):
        url = server.line.url
        assert url.startswith("/dev/") if kind == "pty" else url.startswith("socket://127.0.0.1:")
        with SerialTransport(url) as port:
            host = Host(port)
            identity = host.handshake()
            assert identity.device_kind == DeviceKind.SIMULATOR
            assert identity.gas == Gas.CO2
            assert (identity.probe_model, identity.probe_serial, identity.probe_uses) == (
                "CRYO-TEST",
                "PRB-ABC123",
                7,
            )
            host.telemetry.clear()
            host.pump(WINDOW_S)
            # 100 Hz: ~45 frames in the window; lenient for loaded machines.
            assert 25 <= len(host.telemetry) <= 70, len(host.telemetry)
            # The heartbeats kept the session: the watchdog never tripped.
            assert all(not t.status_flags & StatusFlags.WATCHDOG_TRIPPED for t in host.telemetry)
            assert host.telemetry[-1].status_flags & StatusFlags.SESSION_OPEN
            times = [t.device_ms for t in host.telemetry]
            assert times == sorted(times)


def test_tcp_reconnect_keeps_the_device_running() -> None:
    with running("tcp") as (server, control_channel):
        control = Control(control_channel.port)
        try:
            fault = control.ask("thermistor_drift:c_per_s=1")
            assert fault == "OK 1"
            with SerialTransport(server.line.url) as port:
                first = Host(port)
                first.handshake()
                first.pump(0.1)
                before_ms = first.telemetry[-1].device_ms
                nonce = first.link.session_nonce
            assert control.status()["server"]["client_connected"] is False
            with SerialTransport(server.line.url) as port:
                second = Host(port)
                second.handshake()
                after_ms = second.telemetry[-1].device_ms
                assert second.link.session_nonce != nonce
            # The device's clock ran on while nobody was connected (pyserial's
            # close alone waits 0.3 s): same device, no reboot, time never restarted.
            assert after_ms >= before_ms + 250
            status = control.status()
            assert status["device_ms"] >= after_ms
            (drift,) = status["faults"]
            assert drift.startswith("thermistor_drift:c_per_s=1@")
        finally:
            control.close()


def test_second_tcp_client_is_closed_at_once_and_the_first_keeps_its_line() -> None:
    with running("tcp") as (server, _control):
        assert isinstance(server.line, TcpLine)
        first = Host(SocketPort(server.line.port))
        try:
            first.handshake()
            intruder = socket.create_connection((LOOPBACK, server.line.port), timeout=DEADLINE_S)
            try:
                assert intruder.recv(100) == b""  # closed by the server: end of file
            finally:
                intruder.close()
            first.telemetry.clear()
            first.pump(0.2)
            assert len(first.telemetry) >= 5
        finally:
            first.port.close()


def test_disconnect_is_link_loss_and_the_watchdog_takes_the_safe_state() -> None:
    """SR-02: a client that disappears sends no more frames; 300 ms later the device is safe.

    The host opens the inlet and closes the vent (the line pressurised), then
    drops the connection without a word. STATUS must then show the watchdog
    trip and every valve back at its safe position, and never sooner than
    300 ms after the last frame the host sent.
    """
    with running("tcp") as (server, control_channel):
        assert isinstance(server.line, TcpLine)
        control = Control(control_channel.port)
        host = Host(SocketPort(server.line.port))
        try:
            host.handshake()
            host.command(ValveCommand(INLET, True))
            host.command(ValveCommand(VENT, False))
            host.pump(0.1)
            valves = control.status()["valves"]
            assert valves["inlet"]["open"] and not valves["vent"]["open"]

            host.port.close()  # no goodbye: no heartbeats from now on
            last_frame_s = host.last_tx_s
            deadline = time.monotonic() + DEADLINE_S
            while time.monotonic() < deadline:
                status = control.status()
                answered_s = time.monotonic()
                flags = status["status_flags"]
                valves = status["valves"]
                if (
                    flags & StatusFlags.WATCHDOG_TRIPPED
                    and flags & StatusFlags.SAFE_STATE
                    and not valves["inlet"]["open"]
                    and valves["vent"]["open"]
                ):
                    break
                time.sleep(0.01)
            else:
                pytest.fail(f"no watchdog trip after the disconnect: {status}")
            # The answer came after the trip, and the trip came >= 300 ms after the last frame.
            assert answered_s - last_frame_s >= 0.3 - 0.005
            assert answered_s - last_frame_s <= 2.0
            assert not valves["supply"]["open"] and not valves["supply"]["target_open"]
            assert status["server"]["client_connected"] is False
        finally:
            control.close()


# --- the control channel ------------------------------------------------------------------


def test_control_channel_commands() -> None:
    with running("tcp") as (_server, control_channel):
        control = Control(control_channel.port)
        try:
            status = control.status()
            assert set(status["valves"]) == {"supply", "inlet", "vent"}
            assert status["valves"]["vent"] == {"open": True, "target_open": True}
            for key in ("t_s", "device_ms", "stim", "nerve_responding", "gas_left_g"):
                assert key in status

            help_line = control.ask("HELP")
            assert help_line.startswith("OK ") and "STATUS" in help_line
            assert "CLEAR" in help_line and "exhaust_blocked" in help_line

            assert control.ask("exhaust_blocked") == "OK 1"
            assert control.ask("stim_lead_off") == "OK 2"
            assert control.ask("valve_stuck_open:valve=inlet@9999") == "OK 3"  # not yet
            status = control.status()  # the lead is open: infinite impedance -> null
            assert status["stim"]["lead_impedance_ohm"] is None
            names = [f.partition("@")[0] for f in status["faults"]]
            assert names == ["exhaust_blocked", "stim_lead_off"]

            # Without @ a fault applies now, and its duration counts from now.
            answer = control.ask("link_drop:duration_s=2")
            assert answer == "OK 4"
            assert any(f.startswith("link_drop:duration_s=2@") for f in control.status()["faults"])

            assert control.ask("CLEAR 1") == "OK"
            assert control.ask("clear 1").startswith("ERR ")
            assert control.ask("CLEAR x").startswith("ERR ")
            assert not any(f.startswith("exhaust_blocked") for f in control.status()["faults"])
            faults = json.loads(control.ask("FAULTS"))
            assert [(f["id"], f["started"]) for f in faults[:2]] == [(1, True), (2, True)]

            bad = control.ask("exhaust_blocked:psi_per_s=-3")
            assert bad.startswith("ERR ") and "psi_per_s" in bad
            assert control.ask("no_such_fault").startswith("ERR unknown fault")
        finally:
            control.close()


def test_malformed_control_input_never_kills_the_server() -> None:
    with running("tcp") as (server, control_channel):
        control = Control(control_channel.port)
        try:
            assert control.ask(b"\xff\xfe\x00garbage").startswith("ERR ")
            assert control.ask(b"").startswith("ERR ")
            assert control.ask(b"STATUS please").startswith("ERR ")
            assert control.ask(b"x" * 10_000).startswith("ERR line longer")
            # An over-long line split across reads: one ERR, the rest discarded.
            control.sock.sendall(b"y" * 70_000)
            time.sleep(0.05)
            control.sock.sendall(b"y" * 10 + b"\n")
            assert control.answer().startswith("ERR line longer")
            # Pipelined commands, CRLF: one answer each, in order.
            control.sock.sendall(b"HELP\r\nCLEAR 99\r\nSTATUS\r\n")
            assert control.answer().startswith("OK ")
            assert control.answer().startswith("ERR ")
            assert json.loads(control.answer())["valves"]
            # A client that leaves in the middle of a line.
            with socket.create_connection((LOOPBACK, control_channel.port), timeout=5) as gone:
                gone.sendall(b"exhaust_bl")
            assert "valves" in control.status()
        finally:
            control.close()
        assert server.call(lambda d: d.active_faults()) == []


def test_json_safe_turns_non_finite_numbers_into_null() -> None:
    value = {"a": math.inf, "b": [math.nan, 1.5, {"c": -math.inf}], "d": (1, "x"), "e": None}
    text = json.dumps(json_safe(value), allow_nan=False)
    assert json.loads(text) == {"a": None, "b": [None, 1.5, {"c": None}], "d": [1, "x"], "e": None}


def test_server_stops_from_another_thread_and_closes_its_ports() -> None:
    device = SimulatedDevice(SimConfig(seed=1))
    line = TcpLine(0, log=lambda _m: None)
    server = DeviceServer(device, line, log=lambda _m: None)
    thread = server.start()
    assert server.call(lambda d: d.now_s) >= 0.0
    started = time.monotonic()
    server.stop()
    assert not thread.is_alive()
    assert time.monotonic() - started < 1.0
    with pytest.raises(OSError):
        socket.create_connection((LOOPBACK, line.port), timeout=1).close()


# --- device-sim as a separate process -------------------------------------------------------


class Proc:
    """`probe-console device-sim` in its own process; stdout read line by line with deadlines."""

    def __init__(self, args: list[str], stderr_path: Path) -> None:
        self.stderr_path = stderr_path
        self._stderr = stderr_path.open("wb")
        self.popen = subprocess.Popen(
            [sys.executable, "-m", "console", "device-sim", *args],
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            stdin=subprocess.DEVNULL,
        )
        self._buffer = b""

    def line(self) -> str:
        assert self.popen.stdout is not None
        fd = self.popen.stdout.fileno()
        deadline = time.monotonic() + 10.0  # interpreter start-up included
        while b"\n" not in self._buffer:
            left = deadline - time.monotonic()
            assert left > 0, f"no line from device-sim; stderr: {self.stderr()}"
            ready, _, _ = select.select([fd], [], [], left)
            if ready:
                chunk = os.read(fd, 4096)
                assert chunk, f"device-sim closed stdout; stderr: {self.stderr()}"
                self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line.decode()

    def stderr(self) -> str:
        if not self._stderr.closed:
            self._stderr.flush()
        return self.stderr_path.read_text(errors="replace")

    def stop(self, sig: signal.Signals) -> int:
        self.popen.send_signal(sig)
        try:
            return self.popen.wait(DEADLINE_S)
        finally:
            self.close()

    def close(self) -> None:
        if self.popen.poll() is None:
            self.popen.kill()
            self.popen.wait(DEADLINE_S)
        if self.popen.stdout is not None:
            self.popen.stdout.close()
        self._stderr.close()


def test_device_sim_process_over_tcp_with_control(tmp_path: Path) -> None:
    proc = Proc(
        [
            "--listen",
            "tcp://127.0.0.1:0",
            "--control",
            "tcp://localhost:0",
            "--gas",
            "CO2",
            "--seed",
            "3",
            "--probe-model",
            "CRYO-22G-60",
            "--probe-serial",
            "PRB-PROC01",
            "--probe-uses",
            "4",
            "--fault",
            "thermistor_stuck@9999",
        ],
        tmp_path / "stderr.txt",
    )
    try:
        listening = proc.line()
        assert re.fullmatch(r"LISTENING socket://127\.0\.0\.1:\d+", listening), listening
        control_line = proc.line()
        match = re.fullmatch(r"CONTROL tcp://127\.0\.0\.1:(\d+)", control_line)
        assert match, control_line
        control = Control(int(match.group(1)))
        try:
            status = control.status()
            assert status["valves"]["supply"] == {"open": False, "target_open": False}
            assert status["valves"]["vent"]["open"] is True
            assert control.ask("exhaust_blocked") == "OK 2"  # 1 is --fault's
            assert control.ask("exhaust_blocked:bogus=1").startswith("ERR ")

            with SerialTransport(listening.split(" ", 1)[1]) as port:
                host = Host(port)
                identity = host.handshake()
                assert identity.gas == Gas.CO2
                assert (identity.probe_model, identity.probe_serial, identity.probe_uses) == (
                    "CRYO-22G-60",
                    "PRB-PROC01",
                    4,
                )
                assert control.status()["session_open"] is True
        finally:
            control.close()
        started = time.monotonic()
        assert proc.stop(signal.SIGTERM) == 0
        assert time.monotonic() - started < 2.0
    finally:
        proc.close()
    assert "Traceback" not in proc.stderr()


@pytest.mark.pty
def test_device_sim_process_on_a_pty(tmp_path: Path) -> None:
    proc = Proc(["--listen", "pty", "--telemetry-hz", "50"], tmp_path / "stderr.txt")
    try:
        listening = proc.line()
        match = re.fullmatch(r"LISTENING (/dev/\S+)", listening)
        assert match, listening
        with SerialTransport(match.group(1)) as port:
            host = Host(port)
            identity = host.handshake()
            assert re.fullmatch(r"PRB-[0-9A-F]{6}", identity.probe_serial)
            host.telemetry.clear()
            host.pump(WINDOW_S)
            assert 12 <= len(host.telemetry) <= 35, len(host.telemetry)  # 50 Hz
        assert proc.stop(signal.SIGINT) == 0
    finally:
        proc.close()
    assert "Traceback" not in proc.stderr()


def test_device_sim_fault_help_process() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "console", "device-sim", "--fault", "help"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "exhaust_blocked" in done.stdout and "link_drop" in done.stdout


def test_device_sim_bad_gas_process() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "console", "device-sim", "--listen", "pty", "--gas", "XE"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.count("\n") == 1, done.stderr
    assert "--gas" in done.stderr and "'XE'" in done.stderr and "N2O, CO2" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--gas", "argon"], "--gas = 'argon' must be one of N2O, CO2"),
        (["--telemetry-hz", "20"], "--telemetry-hz = 20 out of range 50..1000 Hz"),
        (["--telemetry-hz", "1001"], "--telemetry-hz = 1001 out of range 50..1000 Hz"),
        (["--telemetry-hz", "nan"], "--telemetry-hz = nan out of range 50..1000 Hz"),
        (["--telemetry-hz", "fast"], "--telemetry-hz = fast out of range 50..1000 Hz"),
        (["--fault", "bogus"], "--fault = 'bogus': unknown fault 'bogus'"),
        (["--fault", "link_drop:duration_s=x"], "--fault = 'link_drop:duration_s=x'"),
        (["--seed", "-1"], "--seed = -1 out of range 0.."),
        (["--seed", "one"], "--seed = 'one' is not an integer"),
        (["--probe-uses", "70000"], "--probe-uses = 70000 out of range 0..65535"),
        (["--protocol-version", "256"], "--protocol-version = 256 out of range 0..255"),
        (["--probe-model", "X" * 17], "--probe-model = 'XXXXXXXXXXXXXXXXX' must be 1..16"),
        (["--probe-serial", "PRB-\u00e9"], "--probe-serial = 'PRB-\u00e9' must be 1..16"),
        (["--listen", "tcp://0.0.0.0:4000"], "host '0.0.0.0' refused; only 127.0.0.1"),
        (["--listen", "tcp://192.168.1.5:4000"], "host '192.168.1.5' refused"),
        (["--listen", "/dev/ttyUSB0"], "--listen = '/dev/ttyUSB0' must be pty or tcp://"),
        (["--listen", "tcp://127.0.0.1:70000"], "--listen port = 70000 out of range 0..65535"),
        (["--control", "tcp://example.com:1"], "host 'example.com' refused"),
        (["--control", "pty"], "--control = 'pty' must be tcp://127.0.0.1:PORT"),
        (["--listen", None], "--listen is required"),
    ],
)
def test_bad_options_exit_2_with_one_line(
    argv: list[str | None], expected: str, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["device-sim", "--listen", "pty"]
    if argv[:1] == ["--listen"]:
        args = ["device-sim"] + ([] if argv[1] is None else [str(a) for a in argv])
    else:
        args += [str(a) for a in argv]
    parser = cli.build_parser([device_sim.register])
    assert cli.run(parser, args) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith("probe-console device-sim: error: ")
    assert err.count("\n") == 1, err
    assert expected in err, err
    assert "Traceback" not in err


def test_busy_port_exits_4(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.create_server((LOOPBACK, 0)) as taken:
        port = taken.getsockname()[1]
        parser = cli.build_parser([device_sim.register])
        assert cli.run(parser, ["device-sim", "--listen", f"tcp://127.0.0.1:{port}"]) == 4
    out, err = capsys.readouterr()
    assert out == ""
    assert "--listen: port already in use" in err


def test_device_sim_is_registered_in_the_cli() -> None:
    assert device_sim.register in cli.COMMANDS


def test_default_probe_serial_is_random_per_start() -> None:
    parser = cli.build_parser([device_sim.register])
    first = device_sim.check_options(parser.parse_args(["device-sim", "--listen", "pty"]))
    second = device_sim.check_options(parser.parse_args(["device-sim", "--listen", "pty"]))
    serials = {first.config.identity.probe_serial, second.config.identity.probe_serial}
    assert all(re.fullmatch(r"PRB-[0-9A-F]{6}", s) for s in serials)
    assert len(serials) == 2  # 1 in 16.7 million to collide
    assert first.listen_port is None and first.control_port is None
    assert first.config.telemetry_hz == 100.0 and first.config.gas == "N2O"

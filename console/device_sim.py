"""``probe-console device-sim``: the simulated device as a standalone process in real time.

Test engineers point ``run``, ``identify`` or ``monitor`` at it instead of a
bench. This module only parses and checks the options and wires a
`simulator.device.SimulatedDevice` to a `simulator.server.DeviceServer`; the
CLI is the composition root, the one place allowed to join the daemon's side
and the simulator's (DESIGN.md).

Scripts read the first stdout line, ``LISTENING <url>``, to learn where to
connect (the port may be 0, "any free one"), and with ``--control`` the second,
``CONTROL tcp://127.0.0.1:<port>``; both are flushed at once and nothing else is
ever written to stdout. Diagnostics go to stderr.
"""

from __future__ import annotations

import argparse
import errno
import math
import os
import re
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING

from protocols import PROTOCOL_VERSION
from protocols.messages import TEXT_FIELD_LEN
from simulator.device import SimConfig, SimulatedDevice
from simulator.faults import FaultSpec, FaultSpecError, fault_help, parse_fault
from simulator.firmware import DeviceIdentity
from simulator.server import (
    ControlChannel,
    DeviceServer,
    Line,
    PtyLine,
    TcpLine,
    stop_on_signals,
)

if TYPE_CHECKING:
    from console.cli import Subparsers

COMMAND = "device-sim"
PREFIX = f"probe-console {COMMAND}"

EXIT_OK = 0
EXIT_FAILED = 1
"""The server could not be started for a reason other than the options (e.g. no ptys)."""
EXIT_USAGE = 2
"""Invalid options; nothing started (interfaces.md, "Exit codes")."""
EXIT_PORT_BUSY = 4
"""The TCP port is taken: another instance (or program) owns it (interfaces.md)."""

GASES = ("N2O", "CO2")
TELEMETRY_HZ_MIN = 50.0
TELEMETRY_HZ_MAX = 1000.0
U16_MAX = 0xFFFF
U8_MAX = 0xFF
LOCAL_HOSTS = ("127.0.0.1", "localhost")

_TCP_URL = re.compile(r"^tcp://(?P<host>[^:/\s]+):(?P<port>\d{1,5})/?$")
_TEXT = re.compile(rf"^[\x20-\x7e]{{1,{TEXT_FIELD_LEN}}}$")


class OptionError(ValueError):
    """A bad option value; its message is the one line the user sees."""


@dataclass(frozen=True, slots=True)
class Options:
    """The checked options: what `run_device_sim` builds the device and server from."""

    listen_port: int | None  # None: a pty
    control_port: int | None
    config: SimConfig


def register(subparsers: Subparsers) -> None:
    """Add ``device-sim`` to the ``probe-console`` command line."""
    parser = subparsers.add_parser(
        COMMAND,
        help="run the simulated device in real time on a pty or a loopback TCP port",
        description=(
            "Run the simulated device in real time. The first stdout line is "
            "'LISTENING <url>' (a pty path or socket://127.0.0.1:PORT) for a client such "
            "as 'probe-console run --port <url>'; with --control the second is "
            "'CONTROL tcp://127.0.0.1:PORT', a line protocol for faults and STATUS "
            "(send HELP). One client at a time; the device keeps running across "
            "reconnects. Stop with SIGTERM or Ctrl-C (exit 0)."
        ),
    )
    # Values are taken as text and checked in the handler, so that every bad
    # value gets the same one-line message naming option, value and range.
    parser.add_argument(
        "--listen",
        metavar="pty|tcp://127.0.0.1:PORT",
        help="where the host connects: a new pty, or a loopback TCP port (0: any free port)",
    )
    parser.add_argument(
        "--control",
        metavar="tcp://127.0.0.1:PORT",
        help="also open the control channel on this loopback TCP port (0: any free port)",
    )
    parser.add_argument(
        "--gas", default="N2O", metavar="N2O|CO2", help="gas the device is plumbed for: N2O or CO2"
    )
    parser.add_argument(
        "--seed", default="0", metavar="N", help="random seed of noise, nonces and faults"
    )
    parser.add_argument(
        "--fault",
        action="append",
        default=[],
        metavar="SPEC",
        help="NAME[:key=value,...][@WHEN], repeatable; '--fault help' lists the faults",
    )
    parser.add_argument(
        "--telemetry-hz",
        default="100",
        metavar="HZ",
        help=f"telemetry rate, {TELEMETRY_HZ_MIN:g}..{TELEMETRY_HZ_MAX:g} Hz",
    )
    parser.add_argument(
        "--probe-model",
        default="CRYO-20G-90",
        metavar="TEXT",
        help="probe model the device reports",
    )
    parser.add_argument(
        "--probe-serial",
        default=None,
        metavar="TEXT",
        help="probe serial (default: random, PRB-xxxxxx)",
    )
    parser.add_argument(
        "--probe-uses", default="0", metavar="N", help="the probe's use count, 0..65535"
    )
    parser.add_argument(
        "--protocol-version",
        default=str(PROTOCOL_VERSION),
        metavar="N",
        help=f"protocol version the device speaks (default {PROTOCOL_VERSION})",
    )
    parser.set_defaults(handler=run_device_sim)


# --- checking ---------------------------------------------------------------------------------


def _integer(option: str, text: str, low: int, high: int | None, unit: str = "") -> int:
    span = f"{low}..{high}" if high is not None else f"{low}.."
    suffix = f" {unit}" if unit else ""
    try:
        value = int(text.strip(), 10)
    except ValueError:
        raise OptionError(f"{option} = {text!r} is not an integer ({span}{suffix})") from None
    if value < low or (high is not None and value > high):
        raise OptionError(f"{option} = {value} out of range {span}{suffix}")
    return value


def _local_port(option: str, text: str) -> int:
    m = _TCP_URL.match(text.strip())
    if m is None:
        expected = "pty or tcp://127.0.0.1:PORT" if option == "--listen" else "tcp://127.0.0.1:PORT"
        raise OptionError(f"{option} = {text!r} must be {expected} (PORT 0..65535)")
    host = m.group("host").lower()
    if host not in LOCAL_HOSTS:
        raise OptionError(
            f"{option} = {text!r}: host {m.group('host')!r} refused; only 127.0.0.1 or "
            "localhost (the simulator is never exposed to the network)"
        )
    return _integer(f"{option} port", m.group("port"), 0, 65535)


def _text(option: str, text: str) -> str:
    if not _TEXT.match(text):
        raise OptionError(
            f"{option} = {text!r} must be 1..{TEXT_FIELD_LEN} printable ASCII characters"
        )
    return text


def random_probe_serial() -> str:
    """A fresh probe serial per start, so each run looks like a new probe (SR-18 counting)."""
    return "PRB-" + os.urandom(3).hex().upper()


def check_options(args: argparse.Namespace) -> Options:
    """Turn the raw option text into `Options`, or raise `OptionError` naming the first problem."""
    if args.listen is None:
        raise OptionError("--listen is required: pty or tcp://127.0.0.1:PORT")
    listen = args.listen.strip()
    listen_port = None if listen.lower() == "pty" else _local_port("--listen", listen)
    control_port = None if args.control is None else _local_port("--control", args.control)

    gas = args.gas.strip().upper()
    if gas not in GASES:
        raise OptionError(f"--gas = {args.gas!r} must be one of {', '.join(GASES)}")
    seed = _integer("--seed", args.seed, 0, None)
    try:
        hz = float(args.telemetry_hz)
    except ValueError:
        hz = math.nan
    if not TELEMETRY_HZ_MIN <= hz <= TELEMETRY_HZ_MAX:  # NaN fails too
        raise OptionError(
            f"--telemetry-hz = {args.telemetry_hz} out of range "
            f"{TELEMETRY_HZ_MIN:g}..{TELEMETRY_HZ_MAX:g} Hz"
        )
    faults: list[FaultSpec] = []
    for spec in args.fault:
        try:
            faults.append(parse_fault(spec))
        except FaultSpecError as exc:
            raise OptionError(f"--fault = {spec!r}: {exc}") from None
    identity = DeviceIdentity(
        gas=gas,
        probe_model=_text("--probe-model", args.probe_model),
        probe_serial=_text(
            "--probe-serial",
            random_probe_serial() if args.probe_serial is None else args.probe_serial,
        ),
        probe_uses=_integer("--probe-uses", args.probe_uses, 0, U16_MAX),
        protocol_version=_integer("--protocol-version", args.protocol_version, 0, U8_MAX),
    )
    config = SimConfig(seed=seed, gas=gas, telemetry_hz=hz, identity=identity, faults=tuple(faults))
    return Options(listen_port, control_port, config)


# --- running ----------------------------------------------------------------------------------


def _error(message: str) -> None:
    print(f"{PREFIX}: error: {message}", file=sys.stderr, flush=True)


def _log(message: str) -> None:
    print(f"{COMMAND}: {message}", file=sys.stderr, flush=True)


def run_device_sim(args: argparse.Namespace) -> int:
    """The ``device-sim`` handler: check, build, announce, serve until a signal."""
    if any(spec.strip().lower() == "help" for spec in args.fault):
        print(fault_help(), flush=True)
        return EXIT_OK
    try:
        options = check_options(args)
        device = SimulatedDevice(options.config)
    except (OptionError, ValueError) as exc:
        _error(str(exc))
        return EXIT_USAGE

    line: Line | None = None
    control: ControlChannel | None = None
    try:
        line = PtyLine() if options.listen_port is None else TcpLine(options.listen_port, log=_log)
        if options.control_port is not None:
            control = ControlChannel(options.control_port, log=_log)
    except OSError as exc:
        if line is not None:
            line.close()
        what = "--control" if line is not None else "--listen"
        if exc.errno == errno.EADDRINUSE:
            _error(f"{what}: port already in use ({exc.strerror}); choose another or 0")
            return EXIT_PORT_BUSY
        _error(f"{what}: cannot open: {exc.strerror or exc}")
        return EXIT_FAILED

    server = DeviceServer(device, line, control, log=_log)
    with stop_on_signals(server):
        try:
            print(f"LISTENING {line.url}", flush=True)
            if control is not None:
                print(f"CONTROL {control.url}", flush=True)
        except BrokenPipeError:
            server.close()
            return EXIT_FAILED
        identity = options.config.identity
        _log(
            f"{identity.gas} device {identity.device_serial}, probe {identity.probe_model} "
            f"{identity.probe_serial} ({identity.probe_uses} uses), "
            f"telemetry {options.config.telemetry_hz:g} Hz, seed {options.config.seed}"
        )
        server.serve_forever()
    return EXIT_OK

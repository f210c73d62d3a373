"""The integrator's first tools on a bench: `identify`, `monitor`, `calibrate pressure`.

Each opens the port exclusively (SR-27), says hello, commands and verifies the
safe state like every connection (SR-01), and leaves the device in the safe
state on every exit path, a signal included. None of them ever energises
anything: `monitor` only watches, `calibrate pressure` measures a vented line.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from console.config import ConfigError, ConsoleConfig, calibration_toml, load_config
from console.connection import (
    DeviceIdentified,
    DeviceWasReset,
    LinkDown,
    LinkUp,
    Notice,
    SafeStateUnverified,
)
from console.portlock import PortLock, PortOwnedError, port_key
from console.records import Recorder, Recovery, recover_for, utc_now
from console.runtime import Runtime
from console.store import ProbeRegistry, StoreError, connect, default_db_path
from console.trace import FrameTrace
from console.wiring import connection_for
from drivers.errors import PortBusyError, TransportError
from drivers.pressure import zero_offset
from drivers.snapshot import Snapshot
from drivers.transport import open_transport
from protocols import DeviceKind

if TYPE_CHECKING:
    from console.cli import Subparsers
    from console.controller import Controller

EXIT_OK, EXIT_EARLY, EXIT_USAGE, EXIT_DEVICE, EXIT_OWNED = 0, 1, 2, 3, 4


class CommandExit(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


def _positive(name: str, value: float | None, high: float, unit: str) -> None:
    """Refuse NaN, infinity, zero and negatives for a duration or rate option (SR-30)."""
    if value is None:
        return
    if not (value == value and 0.0 < value <= high):
        raise CommandExit(EXIT_USAGE, f"{name} = {value} out of range (0, {high:g}] {unit}")


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--port", required=True, help="device path, pty path or socket://host:port")
    parser.add_argument("--config", type=Path, help="console.toml overriding the embedded defaults")
    parser.add_argument("--db", type=Path, help="the console's database (probe registry)")
    parser.add_argument("--trace", type=Path, help="write every frame in and out, decoded, here")
    parser.add_argument(
        "--timeout-s", type=float, default=5.0, help="how long to wait for the device (default 5)"
    )


def register(subparsers: Subparsers) -> None:
    p = subparsers.add_parser("identify", help="handshake with a device and print its identity")
    _common(p)
    p.add_argument("--json", action="store_true", help="print the identity as one JSON object")
    p.set_defaults(handler=identify)

    p = subparsers.add_parser(
        "monitor", help="live readings; makes the device safe, never energises"
    )
    _common(p)
    p.add_argument("--rate-hz", type=float, default=2.0, help="lines per second (default 2)")
    p.add_argument("--duration-s", type=float, help="stop after this long (default: until Ctrl-C)")
    p.set_defaults(handler=monitor)

    p = subparsers.add_parser("calibrate", help="bench calibration (bench profile only)")
    sub = p.add_subparsers(dest="what", metavar="WHAT", required=True)
    c = sub.add_parser("pressure", help="zero the pressure sensors with the line vented")
    _common(c)
    c.add_argument("--profile", choices=("clinical", "bench"), help="procedure profile")
    c.add_argument("--samples", type=int, default=200, help="samples to average (default 200)")
    c.add_argument(
        "--out", type=Path, default=Path("pressure-calibration.toml"), help="file to write"
    )
    c.set_defaults(handler=calibrate_pressure)


def recorded(
    args: argparse.Namespace,
    runtime: Runtime,
    command: str,
    body: Callable[[Recorder, Recovery], int],
) -> int:
    """A real-time command's session record (`run`, `serve`) around `body`: opened, dead
    sessions recovered (a locked start inherited, SR-22), closed with the exit code on every
    path; a store that fails is a usage error."""
    db_path = args.db or default_db_path()
    port = port_key(args.port)
    try:
        recorder = Recorder(db_path, uuid.uuid4().hex, command=command, port=port, simulated=False)
    except StoreError as exc:
        raise CommandExit(EXIT_USAGE, str(exc)) from None
    code: int | None = None
    try:
        code = body(recorder, recover_for(recorder, port, utc_now()))
        return code
    except StoreError as exc:
        raise CommandExit(EXIT_USAGE, str(exc)) from None
    finally:
        runtime.on_snapshot = runtime.on_notice = runtime.after_input = None  # record closed
        if not recorder.close(code):
            print(
                f"probe-console {command}: the session record {recorder.session_id} in "
                f"{db_path} is incomplete: {recorder.failed or 'it has no end'}",
                file=sys.stderr,
            )


def refused_after_handshake(controller: Controller, runtime: Runtime, recovery: Recovery) -> bool:
    """After the handshake's safe state (SR-01): SR-22's locked start if the recovery asks for
    it; True if the device is refused (SR-18) and nothing is locked, so nothing may start.
    (Locked, a refused device still waits for the thaw: the operator's arm is refused.)"""
    proc = controller.procedure
    if recovery.start_locked:
        proc.start_locked(recovery.why)
        runtime.settle()
    return bool(controller.connection.refusals) and not proc.locked


@contextmanager
def _device(
    args: argparse.Namespace, config: ConsoleConfig, command: str
) -> Iterator[tuple[Runtime, ProbeRegistry]]:
    """Lock, open, hello; on the way out, the safe state (SR-01), then release everything."""
    lock = PortLock(args.port)
    try:
        lock.acquire(command)
    except PortOwnedError as exc:
        raise CommandExit(EXIT_OWNED, str(exc)) from None
    except OSError as exc:
        raise CommandExit(
            EXIT_USAGE,
            f"cannot create the port lock {lock.path}: {exc.strerror or exc}; "
            "set PROBE_CONSOLE_SOCKET (its folder holds locks/) to a writable place",
        ) from None
    try:
        trace = FrameTrace(args.trace) if args.trace else None
    except OSError as exc:
        lock.release()
        raise CommandExit(EXIT_USAGE, f"--trace {args.trace}: {exc.strerror or exc}") from None
    try:
        try:
            registry = ProbeRegistry(connect(args.db or default_db_path()))
        except StoreError as exc:
            raise CommandExit(EXIT_USAGE, str(exc)) from None
        try:
            transport = open_transport(args.port, config.link.baudrate)
        except PortBusyError as exc:
            raise CommandExit(EXIT_OWNED, str(exc)) from None
        except TransportError as exc:
            raise CommandExit(EXIT_DEVICE, str(exc)) from None
        connection = connection_for(config, registry=registry, tracer=trace)
        runtime = Runtime(transport, connection)
        try:
            with runtime.signals():
                runtime.start()
                try:
                    yield runtime, registry
                finally:
                    # SR-01: every exit path, errors and signals included, ends safe.
                    reason = "signal" if runtime.stop_signal is not None else "exit"
                    # A port that is gone cannot carry it; the device watchdog then does (SR-02).
                    with contextlib.suppress(TransportError):
                        runtime.make_safe(reason)
        except TransportError as exc:
            raise CommandExit(EXIT_DEVICE, str(exc)) from None
        finally:
            transport.close()
            registry.db.close()
    finally:
        if trace is not None:
            trace.close()
        lock.release()


def _wait_identified(runtime: Runtime, timeout_s: float, port: str) -> None:
    conn = runtime.connection

    def identified() -> bool:
        return conn.identity is not None and conn.safe_verified_ms is not None

    if not runtime.run_until(identified, timeout_s):
        if runtime.stop_signal is not None:
            raise CommandExit(EXIT_EARLY, "stopped by a signal before the device answered")
        if conn.identity is not None:
            raise CommandExit(
                EXIT_DEVICE,
                f"{port} identified as {conn.identity.device_serial}, but telemetry did not "
                f"confirm the safe state within {timeout_s:g} s (SR-01): supply and inlet "
                "reported closed, vent reported open, stimulation off and the device's "
                "safe-state status bit; check the valve position switches (--trace shows them)",
            )
        raise CommandExit(
            EXIT_DEVICE,
            f"no identity from {port} within {timeout_s:g} s: check the cable, the baud rate "
            "(link.baudrate) and that the device is powered",
        )


def _load(args: argparse.Namespace, **overrides: object) -> ConsoleConfig:
    try:
        return load_config(args.config, overrides)
    except ConfigError as exc:
        raise CommandExit(EXIT_USAGE, "\n".join(exc.messages)) from None


def _run(args: argparse.Namespace, body: str) -> int:
    """Map the command's outcome to the exit codes of interfaces.md; no traceback."""
    name = "calibrate pressure" if body == "calibrate" else body
    try:
        _positive("--timeout-s", args.timeout_s, 3600.0, "s")
        _positive("--duration-s", getattr(args, "duration_s", None), 1e7, "s")
        _positive("--rate-hz", getattr(args, "rate_hz", None), 100.0, "Hz")
        return {"identify": _identify, "monitor": _monitor, "calibrate": _calibrate}[body](args)
    except CommandExit as exc:
        print(f"probe-console {name}: {exc}", file=sys.stderr)
        return exc.code
    except BrokenPipeError:
        # The reader went away (`monitor | head`): the device was left safe on the way out.
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - silence the interpreter's flush
        return EXIT_OK


def identify(args: argparse.Namespace) -> int:
    return _run(args, "identify")


def monitor(args: argparse.Namespace) -> int:
    return _run(args, "monitor")


def calibrate_pressure(args: argparse.Namespace) -> int:
    return _run(args, "calibrate")


# --- identify ----------------------------------------------------------------------------


def _identify(args: argparse.Namespace) -> int:
    config = _load(args)
    with _device(args, config, "identify") as (runtime, _):
        _wait_identified(runtime, args.timeout_s, args.port)
        conn = runtime.connection
        identity = conn.identity
        assert identity is not None
        info = {
            "device_kind": DeviceKind(identity.device_kind).name.lower()
            if identity.device_kind in (0, 1)
            else str(identity.device_kind),
            "firmware": identity.firmware,
            "protocol": identity.protocol_version,
            "device_serial": identity.device_serial,
            "probe_model": identity.probe_model,
            "probe_serial": identity.probe_serial,
            "probe_uses": identity.probe_uses,
            "gas": {1: "N2O", 2: "CO2"}.get(identity.gas, str(identity.gas)),
            "safe_state_verified_device_ms": conn.safe_verified_ms,
            "accepted": not conn.refusals,
            "refusals": [{"code": r.code, "message": r.message} for r in conn.refusals],
        }
    if args.json:
        print(json.dumps(info))
    else:
        for key, value in info.items():
            if key != "refusals":
                print(f"{key}: {value}")
        for refusal in conn.refusals:
            print(f"refused ({refusal.code}): {refusal.message}")
    if conn.refusals:
        return EXIT_DEVICE  # SR-18: handshake refused
    return EXIT_OK


# --- monitor -----------------------------------------------------------------------------


def _valves(s: Snapshot) -> str:
    def word(is_open: bool) -> str:
        return "open" if is_open else "closed"

    return f"supply={word(s.supply_open)} inlet={word(s.inlet_open)} vent={word(s.vent_open)}"


def reading_line(s: Snapshot, t0: float = 0.0) -> str:
    tip = "rail" if s.tip_c != s.tip_c else f"{s.tip_c:.1f}C"  # NaN at a rail
    flags = []
    if s.tip_flags:
        flags.append(f"tip_flags={s.tip_flags}")
    if s.supply_flags or s.exhaust_flags:
        flags.append(f"pressure_flags={s.supply_flags}/{s.exhaust_flags}")
    if s.fault_flags:
        flags.append(f"device_faults={s.fault_flags}")
    lead = "open" if s.lead_ohm == float("inf") else f"{s.lead_ohm:.0f}ohm"
    return (
        f"t={max(0.0, s.t_s - t0):.2f}s device_ms={s.device_ms} tip={tip} "
        f"supply={s.supply_psi:.1f}psig "
        f"exhaust={s.exhaust_psi:.1f}psig {_valves(s)} stim={'on' if s.stim_on else 'off'} "
        f"lead={lead}" + (" " + " ".join(flags) if flags else "")
    )


def notice_line(notice: Notice) -> str | None:
    if isinstance(notice, DeviceIdentified):
        refused = "; ".join(r.message for r in notice.refusals)
        ident = notice.identity
        line = f"device identified: {ident.device_serial} probe {ident.probe_serial}"
        return line + (f" (refused: {refused})" if refused else "")
    if isinstance(notice, LinkDown):
        return f"link lost ({notice.silent_s:.3f} s without telemetry): safe state commanded"
    if isinstance(notice, LinkUp):
        return "link back: re-identifying"
    if isinstance(notice, DeviceWasReset):
        return f"device reset ({notice.reason}): re-identifying"
    if isinstance(notice, SafeStateUnverified):
        return f"safe state NOT confirmed by telemetry after {notice.waited_s:.1f} s"
    return None


def _monitor(args: argparse.Namespace, out: TextIO | None = None) -> int:
    stream = out or sys.stdout
    config = _load(args)
    period = 1.0 / args.rate_hz
    with _device(args, config, "monitor") as (runtime, _):

        def on_notice(notice: Notice, now: float) -> None:
            line = notice_line(notice)
            if line:
                print(line, file=stream, flush=True)

        runtime.on_notice = on_notice
        _wait_identified(runtime, args.timeout_s, args.port)
        conn = runtime.connection
        start = runtime.now()
        next_line = start
        end = start + args.duration_s if args.duration_s is not None else float("inf")
        while runtime.stop_signal is None and runtime.now() < end:
            runtime.step()
            if conn.last is not None and runtime.now() >= next_line:
                print(reading_line(conn.last, start), file=stream, flush=True)
                next_line += period
    return EXIT_OK


# --- calibrate pressure ---------------------------------------------------------------------


def _calibrate(args: argparse.Namespace) -> int:
    config = _load(args, **{"--profile": args.profile})
    if config.procedure.profile != "bench":
        raise CommandExit(
            EXIT_USAGE, "calibrate pressure runs in the bench profile only: add --profile bench"
        )
    if not 10 <= args.samples <= 10_000:
        raise CommandExit(EXIT_USAGE, f"--samples = {args.samples} out of range 10..10000")
    if not args.out.parent.is_dir() or not os.access(args.out.parent, os.W_OK):
        raise CommandExit(
            EXIT_USAGE, f"--out {args.out}: its folder does not exist or is not writable"
        )
    supply: list[float] = []
    exhaust: list[float] = []
    with _device(args, config, "calibrate pressure") as (runtime, _):
        _wait_identified(runtime, args.timeout_s, args.port)
        # The safe state vents the line; let it settle before measuring.
        settle_end = runtime.now() + 2.0
        runtime.run_until(lambda: runtime.now() >= settle_end, 3.0)

        last = runtime.connection.last
        if last is not None and (last.supply_flags or last.exhaust_flags):
            raise CommandExit(
                EXIT_DEVICE,
                f"a pressure sensor reads at an ADC rail or out of range (supply flags "
                f"{last.supply_flags}, exhaust flags {last.exhaust_flags}): check its wiring "
                "before calibrating",
            )

        def collect(s: Snapshot) -> None:
            if s.vent_open and not (s.inlet_open or s.supply_open):
                supply.append(s.supply_psi - config.pressure.supply.offset_psi)
                exhaust.append(s.exhaust_psi - config.pressure.exhaust.offset_psi)

        runtime.on_snapshot = collect
        done = runtime.run_until(lambda: len(supply) >= args.samples, args.samples / 20 + 5)
        runtime.on_snapshot = None
        if not done:
            raise CommandExit(
                EXIT_DEVICE,
                f"only {len(supply)} vented samples of {args.samples}: is the vent open?",
            )
    try:
        supply_cal = zero_offset(supply).model_copy(update={"span": config.pressure.supply.span})
        exhaust_cal = zero_offset(exhaust).model_copy(update={"span": config.pressure.exhaust.span})
    except ValueError as exc:
        raise CommandExit(EXIT_DEVICE, str(exc)) from None
    args.out.write_text(calibration_toml(supply_cal, exhaust_cal), encoding="utf-8")
    print(f"supply offset {supply_cal.offset_psi:+.3f} psi, ", end="")
    print(f"exhaust offset {exhaust_cal.offset_psi:+.3f} psi")
    print(f'wrote {args.out}; load it with: pressure.calibration_file = "{args.out.resolve()}"')
    return EXIT_OK

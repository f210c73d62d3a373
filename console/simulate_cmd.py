"""`probe-console simulate`: one procedure against the built-in simulator, in virtual time.

The main job. Options, defaults, exit codes and events are fixed by
`interfaces.md`; the composition is `console.simulation`. Exit codes: 0
completed; 1 ended safely early with the probe unlocked; 2 invalid usage,
configuration or parameters (nothing started); 5 ended with the probe still
locked. The first SIGINT/SIGTERM: the safe state, verified, outcome `aborted`
with reason `signal:SIGINT|SIGTERM`, exit at once.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
import uuid
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

from console.config import ConfigError, ConsoleConfig, config_sha256, load_config
from console.events import EventFile, EventStream
from console.records import Recorder, recover, utc_now
from console.simulation import Simulation
from console.store import StoreError, default_db_path
from console.view import ProgressView, Summary
from console.wiring import record_with
from simulator.device import SimConfig
from simulator.faults import FaultSpec, FaultSpecError, fault_help, parse_fault
from simulator.firmware import DeviceIdentity

if TYPE_CHECKING:
    from console.cli import Subparsers

EXIT_USAGE = 2


def register(subparsers: Subparsers) -> None:
    p = subparsers.add_parser(
        "simulate",
        help="run one procedure against the built-in simulator in virtual time",
        description="One procedure against the built-in simulator, in virtual time, with the "
        "scripted operator of interfaces.md. Same options and seed give the same events.",
    )
    p.add_argument("--gas", help="N2O or CO2 (default N2O)")
    p.add_argument("--cycles", type=int, help="freeze-thaw cycles (default 3)")
    p.add_argument("--freeze-s", type=float, help="each freeze, s (default 180)")
    p.add_argument("--thaw-s", type=float, help="each thaw, s (default 30)")
    p.add_argument("--profile", help="clinical or bench (default clinical)")
    p.add_argument("--seed", type=int, default=0, help="the simulation's seed (default 0)")
    p.add_argument(
        "--fault",
        action="append",
        default=[],
        metavar="SPEC",
        help="NAME[:key=value,...][@WHEN]; --fault help lists them",
    )
    p.add_argument("--events", type=Path, help="write every event as a JSON line here")
    p.add_argument("--db", type=Path, help="the console's database")
    p.add_argument("--config", type=Path, help="console.toml overriding the embedded defaults")
    pace = p.add_mutually_exclusive_group()
    pace.add_argument("--realtime", action="store_true", help="run at the wall clock's pace")
    pace.add_argument("--speed", type=float, help="run at this multiple of real time")
    p.add_argument(
        "--max-virtual-s",
        type=float,
        default=3600.0,
        help="stop after this much device time (default 3600)",
    )
    p.add_argument("--quiet", action="store_true", help="print only errors")
    p.add_argument("--probe-model", default="CRYO-20G-90", help="the simulated probe's model")
    p.add_argument("--probe-serial", default="PRB-SIM-0001", help="the simulated probe's serial")
    p.add_argument("--probe-uses", type=int, default=0, help="the simulated probe's use count")
    p.add_argument(
        "--protocol-version", type=int, default=1, help="the simulated device's protocol version"
    )
    p.add_argument("--device-gas", help="the gas the simulated device reports (default: --gas)")
    p.set_defaults(handler=simulate)


class UsageError(Exception):
    pass


def _faults(specs: list[str]) -> tuple[FaultSpec, ...]:
    out = []
    for spec in specs:
        try:
            out.append(parse_fault(spec))
        except FaultSpecError as exc:
            raise UsageError(f"--fault {exc}") from None
    return tuple(out)


def _check_args(args: argparse.Namespace) -> None:
    value = args.max_virtual_s
    if not (value == value and 0.0 < value <= 7 * 86400.0):
        raise UsageError(f"--max-virtual-s = {value} out of range (0, 604800] s")
    if args.speed is not None and not (args.speed == args.speed and 0.0 < args.speed <= 1e6):
        raise UsageError(f"--speed = {args.speed} out of range (0, 1000000]")
    if not 0 <= args.probe_uses <= 0xFFFF:
        raise UsageError(f"--probe-uses = {args.probe_uses} out of range 0..65535")
    if not 0 <= args.protocol_version <= 0xFF:
        raise UsageError(f"--protocol-version = {args.protocol_version} out of range 0..255")
    if args.device_gas is not None and args.device_gas not in ("N2O", "CO2"):
        raise UsageError(f"--device-gas = {args.device_gas!r} must be one of N2O, CO2")
    for name in ("probe_model", "probe_serial"):
        text = getattr(args, name)
        if not (1 <= len(text) <= 16 and text.isascii() and text.isprintable()):
            option = "--" + name.replace("_", "-")
            raise UsageError(f"{option} = {text!r} must be 1..16 printable ASCII characters")


def _config(args: argparse.Namespace) -> ConsoleConfig:
    overrides: dict[str, object] = {
        "--gas": args.gas,
        "--profile": args.profile,
        "--cycles": args.cycles,
        "--freeze-s": args.freeze_s,
        "--thaw-s": args.thaw_s,
    }
    return load_config(args.config, overrides)


def simulate(args: argparse.Namespace) -> int:
    if args.fault == ["help"] or "help" in args.fault:
        print(fault_help())
        return 0
    try:
        _check_args(args)
        config = _config(args)
        faults = _faults(args.fault)
    except ConfigError as exc:
        for message in exc.messages:
            print(f"probe-console simulate: {message}", file=sys.stderr)
        return EXIT_USAGE
    except UsageError as exc:
        print(f"probe-console simulate: {exc}", file=sys.stderr)
        return EXIT_USAGE
    device_gas = args.device_gas or config.gas
    sim = SimConfig(
        seed=args.seed,
        gas=device_gas,
        identity=DeviceIdentity(
            device_serial="SIM-0001",
            probe_model=args.probe_model,
            probe_serial=args.probe_serial,
            probe_uses=args.probe_uses,
            protocol_version=args.protocol_version,
        ),
        faults=faults,
    )
    session_id = uuid.uuid4().hex
    try:
        events_file = EventFile(args.events) if args.events else None
    except OSError as exc:
        print(f"probe-console simulate: --events {args.events}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        db_path = args.db or default_db_path()
        recorder = Recorder(db_path, session_id, command="simulate", port=None, simulated=True)
        # Sessions left unfinished by a dead process; none of them locks this run: its
        # simulated device is new (SR-22's locked start is for `run` and `serve` on a port).
        interrupted = recover(db_path, port=None, by_session=session_id, now_ts=utc_now())
    except StoreError as exc:
        print(f"probe-console simulate: {exc}", file=sys.stderr)
        if events_file is not None:
            events_file.close()
        return EXIT_USAGE
    return _run(args, config, sim, events_file, recorder, interrupted.interrupted)


def _run(
    args: argparse.Namespace,
    config: ConsoleConfig,
    sim: SimConfig,
    events_file: EventFile | None,
    recorder: Recorder,
    interrupted: list[str],
) -> int:
    holder: dict[str, Simulation] = {}
    stream = EventStream(lambda: holder["sim"].now if "sim" in holder else 0.0)
    summary = Summary(freeze_target_c=config.gas_profile.freeze_target_c)
    view = ProgressView(sys.stdout, quiet=args.quiet)
    if events_file is not None:
        stream.sinks.append(events_file)
    stream.sinks.append(summary)
    stream.sinks.append(view.event)
    stream.sinks.append(recorder)
    simulation = Simulation(config, sim, sink=stream)
    holder["sim"] = simulation
    record_with(recorder, simulation.controller, simulation.runner, lambda: simulation.now)
    stream(
        "session_started",
        {
            "session_id": recorder.session_id,
            "version": _version(),
            "profile": config.procedure.profile,
            "gas": config.gas,
            "seed": sim.seed,
            "faults": [str(f) for f in sim.faults],
            "config_sha256": config_sha256(config),
            "simulated": True,
        },
    )
    for other in interrupted:
        stream("session_interrupted", {"interrupted_session_id": other})
    received: list[int] = []

    def on_signal(signum: int, frame: FrameType | None) -> None:
        received.append(signum)

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    speed = 1.0 if args.realtime else args.speed
    wall_start = time.monotonic()

    def pace(virtual_now: float) -> None:
        if speed is None:
            return
        ahead = virtual_now / speed - (time.monotonic() - wall_start)
        if ahead > 0.002:
            time.sleep(ahead)

    def stop() -> str | None:
        return f"signal:{signal.Signals(received[0]).name}" if received else None

    def on_step(s: Simulation) -> None:
        view.refresh(s.controller, s.now)

    view.start()
    try:
        result = simulation.run(
            max_virtual_s=args.max_virtual_s,
            stop=stop,
            pace=pace if speed else None,
            on_step=on_step,
        )
    finally:
        view.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    stream("session_finished", {"outcome": result.outcome, "reason": result.reason})
    if events_file is not None:
        events_file.close()
    if not recorder.close(result.exit_code):
        print(
            f"probe-console simulate: the session record {recorder.session_id} in "
            f"{recorder.path} is incomplete: {recorder.failed}",
            file=sys.stderr,
        )
    view.summary(summary.render(result.exit_code, time.monotonic() - wall_start, result.virtual_s))
    return result.exit_code


def _version() -> str:
    from console.cli import package_version

    return package_version()


__all__ = ["register", "simulate"]

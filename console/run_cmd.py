"""`probe-console run --port URL`: one procedure on a device, in real time.

The same controller, procedure and interlocks as `simulate`, on the real-time
runtime (the monotonic clock and a serial port). The checklist comes from a
file (SR-19); localization is the operator's: at each current step `run` asks
whether the nerve responded, or with `--localize-ma X` it stimulates at X,
takes X as the threshold and confirms without asking. A `hardware` device
needs `--profile bench` or a typed confirmation. Exit codes as `simulate`,
plus 3 (device unavailable or refused) and 4 (port owned).
"""

from __future__ import annotations

import argparse
import json
import select
import signal
import sys
import time
import tomllib
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from console.actions import Checklist
from console.bench_cmds import (
    EXIT_DEVICE,
    EXIT_USAGE,
    CommandExit,
    _device,
    _positive,
    _wait_identified,
    recorded,
    refused_after_handshake,
)
from console.config import ConfigError, ConsoleConfig, config_sha256, load_config
from console.controller import Controller
from console.events import EventFile, EventStream
from console.handshake import Refusal
from console.operator import ScriptedOperator
from console.records import Recorder, Recovery
from console.runtime import Runtime
from console.store import ProbeRegistry
from console.view import ProgressView, Summary
from console.wiring import record_with, remember_opened
from protocols import DeviceKind

if TYPE_CHECKING:
    from console.cli import Subparsers

EXIT_COMPLETED, EXIT_EARLY, EXIT_LOCKED = 0, 1, 5


def register(subparsers: Subparsers) -> None:
    p = subparsers.add_parser("run", help="run one procedure on a device in real time")
    p.add_argument("--port", required=True, help="device path, pty path or socket://host:port")
    p.add_argument(
        "--checklist", type=Path, required=True, help="the checklist (JSON or TOML) (SR-19)"
    )
    p.add_argument("--gas", help="N2O or CO2 (default N2O)")
    p.add_argument("--cycles", type=int, help="freeze-thaw cycles (default 3)")
    p.add_argument("--freeze-s", type=float, help="each freeze, s (default 180)")
    p.add_argument("--thaw-s", type=float, help="each thaw, s (default 30)")
    p.add_argument("--profile", help="clinical or bench (default clinical)")
    p.add_argument("--events", type=Path, help="write every event as a JSON line here")
    p.add_argument("--db", type=Path, help="the console's database (probe registry)")
    p.add_argument("--config", type=Path, help="console.toml overriding the embedded defaults")
    p.add_argument("--trace", type=Path, help="write every frame in and out, decoded, here")
    p.add_argument(
        "--localize-ma", type=float, help="stimulate at this current and take it as the threshold"
    )
    p.add_argument(
        "--timeout-s", type=float, default=5.0, help="how long to wait for the device (default 5)"
    )
    p.add_argument("--quiet", action="store_true", help="print only errors")
    p.set_defaults(handler=run)


def load_checklist(path: Path) -> Checklist:
    """The checklist file: a JSON or TOML object with the fields of interfaces.md (SR-19, SR-30)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise CommandExit(EXIT_USAGE, f"--checklist {path}: {exc.strerror or exc}") from None
    try:
        data: Any = (
            tomllib.loads(text)
            if path.suffix == ".toml"
            else json.loads(text, parse_constant=_refuse_constant)
        )
        return Checklist.model_validate(data)
    except (ValueError, ValidationError) as exc:
        first = str(exc).splitlines()
        detail = "; ".join(line.strip() for line in first[:3])
        raise CommandExit(EXIT_USAGE, f"--checklist {path}: {detail}") from None


def _refuse_constant(name: str) -> None:
    raise ValueError(f"{name} is not a value (SR-30)")


class _Prompt:
    """Asks the operator at the terminal without ever blocking the control loop (SR-02)."""

    def __init__(self, quiet: bool) -> None:
        self.asked: float | None = None
        self.quiet = quiet

    def __call__(self, current_ma: float) -> bool | None:
        if self.asked != current_ma:
            self.asked = current_ma
            print(
                f"stimulating at {current_ma:.2f} mA: did the nerve respond? [y/n] ",
                end="",
                flush=True,
            )
        ready, _, _ = select.select([sys.stdin], [], [], 0)
        if not ready:
            return None
        line = sys.stdin.readline()
        if not line:  # end of input: nobody is there to answer
            raise CommandExit(
                EXIT_USAGE, "no operator answer (standard input closed); use --localize-ma"
            )
        answer = line.strip().lower()
        if answer not in ("y", "n", "yes", "no"):
            self.asked = None  # ask again
            return None
        self.asked = None
        return answer.startswith("y")


def _confirm_hardware(config: ConsoleConfig) -> None:
    if config.procedure.profile == "bench":
        return
    if not sys.stdin.isatty():
        raise CommandExit(
            EXIT_USAGE,
            "the device says it is hardware: use --profile bench for bring-up, or run from a "
            "terminal to confirm a clinical procedure",
        )
    print(
        "The device says it is HARDWARE. Type YES to run a clinical procedure: ", end="", flush=True
    )
    if sys.stdin.readline().strip() != "YES":
        raise CommandExit(EXIT_USAGE, "not confirmed: nothing was started")


def run(args: argparse.Namespace) -> int:
    try:
        _positive("--timeout-s", args.timeout_s, 3600.0, "s")
        if args.localize_ma is not None:
            _positive("--localize-ma", args.localize_ma, 5.0, "mA")
        config = load_config(
            args.config,
            {
                "--gas": args.gas,
                "--profile": args.profile,
                "--cycles": args.cycles,
                "--freeze-s": args.freeze_s,
                "--thaw-s": args.thaw_s,
            },
        )
        checklist = load_checklist(args.checklist)
        problems = checklist.problems()
        if problems:  # SR-19: nothing is started with a contraindication
            raise CommandExit(EXIT_USAGE, "--checklist: " + "; ".join(problems))
        events_file = EventFile(args.events) if args.events else None
    except ConfigError as exc:
        for message in exc.messages:
            print(f"probe-console run: {message}", file=sys.stderr)
        return EXIT_USAGE
    except CommandExit as exc:
        print(f"probe-console run: {exc}", file=sys.stderr)
        return exc.code
    except OSError as exc:
        print(f"probe-console run: --events {args.events}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        return _run(args, config, checklist, events_file)
    except CommandExit as exc:
        print(f"probe-console run: {exc}", file=sys.stderr)
        return exc.code
    finally:
        if events_file is not None:
            events_file.close()


def _run(
    args: argparse.Namespace,
    config: ConsoleConfig,
    checklist: Checklist,
    events_file: EventFile | None,
) -> int:
    with _device(args, config, "run") as (runtime, registry):
        return recorded(
            args,
            runtime,
            "run",
            lambda recorder, recovery: _procedure(
                args, config, checklist, events_file, runtime, registry, recorder, recovery
            ),
        )


def _procedure(
    args: argparse.Namespace,
    config: ConsoleConfig,
    checklist: Checklist,
    events_file: EventFile | None,
    runtime: Runtime,
    registry: ProbeRegistry,
    recorder: Recorder,
    recovery: Recovery,
) -> int:
    start = runtime.now()
    stream = EventStream(lambda: runtime.now() - start, wall_clock=lambda: datetime.now(UTC))
    summary = Summary(freeze_target_c=config.gas_profile.freeze_target_c)
    view = ProgressView(sys.stdout, quiet=args.quiet)
    if events_file is not None:
        stream.sinks.append(events_file)
    stream.sinks += [summary, view.event, recorder]
    conn = runtime.connection
    controller = Controller(config, conn, stream, now=start)
    session_id = recorder.session_id

    stream.sinks.append(remember_opened(registry, conn, session_id))
    runtime.on_snapshot = controller.on_snapshot
    runtime.on_notice = controller.on_notice
    runtime.take_output = controller.take_output
    record_with(recorder, controller, runtime, lambda: runtime.now() - start)
    stream(
        "session_started",
        {
            "session_id": session_id,
            "version": _version(),
            "profile": config.procedure.profile,
            "gas": config.gas,
            "seed": None,
            "faults": [],
            "config_sha256": config_sha256(config),
            "simulated": False,
        },
    )
    for other in recovery.interrupted:
        stream("session_interrupted", {"interrupted_session_id": other})
    try:
        _wait_identified(runtime, args.timeout_s, args.port)
    except CommandExit as exc:
        stream("session_finished", {"outcome": "aborted", "reason": "device_unavailable"})
        raise exc from None
    identity = conn.identity
    assert identity is not None
    proc = controller.procedure
    if refused_after_handshake(controller, runtime, recovery):
        return _refused(stream, conn.refusals)
    if identity.device_kind == DeviceKind.HARDWARE and not conn.refusals:
        _confirm_hardware(config)
    operator = ScriptedOperator(
        _Prompt(args.quiet), fixed_ma=args.localize_ma, checklist=checklist.model_dump()
    )
    view.start()
    try:
        while runtime.stop_signal is None and not operator.done:
            runtime.step()
            controller.tick(runtime.now())
            operator.step(controller, runtime.now())
            runtime.settle()
            view.refresh(controller, runtime.now() - start)
    finally:
        view.stop()
    if runtime.stop_signal is not None:
        reason = f"signal:{signal.Signals(runtime.stop_signal).name}"
        proc.end_now(reason)
        runtime.settle()
        runtime.stop_signal = None
        runtime.make_safe(reason)
    else:
        runtime.make_safe("exit")  # SR-01: the safe state, verified, before the record ends
    if conn.refusals and not proc.locked:
        return _refused(stream, conn.refusals)
    outcome, reason = proc.finished or ("aborted", "not_started")
    stream("session_finished", {"outcome": outcome, "reason": reason})
    code = EXIT_LOCKED if proc.locked else EXIT_COMPLETED if outcome == "completed" else EXIT_EARLY
    view.summary(summary.render(code, time.monotonic() - start, runtime.now() - start, "run"))
    return code


def _refused(stream: EventStream, refusals: list[Refusal]) -> int:
    stream("session_finished", {"outcome": "aborted", "reason": "device_refused"})
    for refusal in refusals:
        print(f"probe-console run: refused ({refusal.code}): {refusal.message}", file=sys.stderr)
    return EXIT_DEVICE


def _version() -> str:
    from console.cli import package_version

    return package_version()

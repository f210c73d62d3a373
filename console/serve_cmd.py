"""`probe-console serve --port URL`: the daemon, driven by the local control API.

The shell of `run` kept running: one port lock, one connection, one
controller and one session record for the whole device session; the
operator's actions come from API clients instead of a script, so any number
of procedures (lesion sites) run one after the other (`request_withdraw`
brings the console back to `ready`). The API socket is served from the same
control thread (`console.apiserver`): a turn reads the device, decides and
writes, then takes what the clients sent, decides and writes, then records.
A reconnection goes through the connection's handshake only (SR-01, SR-18):
re-identified, the safe state verified, a freeze never resumed (SR-03).

Exit codes (interfaces.md): a signal while idle and unlocked 0; during a
procedure the safe state verified, then 5 if the probe is locked, else 1;
2 bad usage or configuration (or the socket taken); 3 device unavailable or
refused; 4 another instance owns the port.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from console.api import Api, Caller
from console.apiserver import ApiServer, SocketInUseError, ensure_free
from console.bench_cmds import (
    EXIT_DEVICE,
    EXIT_USAGE,
    CommandExit,
    _device,
    _positive,
    recorded,
    refused_after_handshake,
)
from console.config import ConfigError, ConsoleConfig, config_sha256, load_config
from console.controller import Controller
from console.events import EventFile, EventStream
from console.portlock import default_socket_path
from console.procedure import ENDS, RUNNING
from console.records import Recorder, Recovery
from console.runtime import Runtime
from console.store import ProbeRegistry
from console.view import event_line
from console.wiring import record_with, remember_opened
from drivers.errors import TransportError

if TYPE_CHECKING:
    from console.cli import Subparsers

EXIT_STOPPED, EXIT_EARLY, EXIT_LOCKED = 0, 1, 5


def register(subparsers: Subparsers) -> None:
    p = subparsers.add_parser(
        "serve", help="the daemon: a device session driven by the local control API"
    )
    p.add_argument("--port", required=True, help="device path, pty path or socket://host:port")
    p.add_argument(
        "--socket",
        type=Path,
        help="the API's UNIX socket (default: $PROBE_CONSOLE_SOCKET, $RUNTIME_DIRECTORY/api.sock, "
        "$XDG_RUNTIME_DIR/probe-console/api.sock, /tmp/probe-console-$UID/api.sock)",
    )
    p.add_argument("--db", type=Path, help="the session store (default as interfaces.md)")
    p.add_argument("--config", type=Path, help="console.toml overriding the embedded defaults")
    p.add_argument("--profile", help="clinical or bench (default clinical)")
    p.add_argument("--events", type=Path, help="write every event as a JSON line here")
    p.add_argument("--trace", type=Path, help="write every frame in and out, decoded, here")
    p.add_argument(
        "--timeout-s", type=float, default=5.0, help="how long to wait for the device (default 5)"
    )
    p.add_argument("--quiet", action="store_true", help="print only errors")
    p.set_defaults(handler=serve)


def serve(args: argparse.Namespace) -> int:
    try:
        _positive("--timeout-s", args.timeout_s, 3600.0, "s")
        config = load_config(args.config, {"--profile": args.profile})
        events_file = EventFile(args.events) if args.events else None
    except ConfigError as exc:
        for message in exc.messages:
            print(f"probe-console serve: {message}", file=sys.stderr)
        return EXIT_USAGE
    except CommandExit as exc:
        print(f"probe-console serve: {exc}", file=sys.stderr)
        return exc.code
    except OSError as exc:
        print(
            f"probe-console serve: --events {args.events}: {exc.strerror or exc}", file=sys.stderr
        )
        return EXIT_USAGE
    if args.socket is not None:
        # The port locks live beside the socket (interfaces.md): the same place for every command.
        os.environ["PROBE_CONSOLE_SOCKET"] = str(args.socket)
    socket_path = args.socket or default_socket_path()
    try:
        ensure_free(socket_path)  # before the port: a taken socket starts nothing
    except (SocketInUseError, OSError) as exc:
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        print(f"probe-console serve: --socket {socket_path}: {why}", file=sys.stderr)
        if events_file is not None:
            events_file.close()
        return EXIT_USAGE
    try:
        return _serve(args, config, events_file)
    except CommandExit as exc:
        print(f"probe-console serve: {exc}", file=sys.stderr)
        return exc.code
    finally:
        if events_file is not None:
            events_file.close()


def _serve(args: argparse.Namespace, config: ConsoleConfig, events_file: EventFile | None) -> int:
    with _device(args, config, "serve") as (runtime, registry):
        return recorded(
            args,
            runtime,
            "serve",
            lambda recorder, recovery: _daemon(
                args, config, events_file, runtime, registry, recorder, recovery
            ),
        )


READ_WAIT_S = 0.015
"""How long one turn may wait for the device's bytes when none are there. A frame ends
the wait at once (100 Hz: a turn per frame, no empty turn between frames), and the runtime
never waits past the link's next heartbeat, retry or loss check (SR-02, SR-03), so this
bounds only how late an API request is taken when the device is quiet."""


class _Lines:
    """Plain event lines on stdout (the journal under systemd); telemetry left out.

    Off a terminal stdout is made non-blocking: a reader that does not keep up loses
    lines (counted), it never holds the control loop. The record has every event.
    """

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.dropped = 0
        if not quiet and not sys.stdout.isatty():
            with contextlib.suppress(OSError, ValueError):
                os.set_blocking(sys.stdout.fileno(), False)

    def __call__(self, e: dict[str, Any]) -> None:
        if self.quiet or e["event"] == "telemetry":
            return
        line = event_line(e)
        if line is None and e["event"].startswith("api_client"):
            line = f"t={e['t_s']:8.2f}s {e['event']} uid {e['uid']} pid {e['pid']}"
        if line is not None:
            try:
                print(line, flush=True)
            except BlockingIOError:
                self.dropped += 1
            except OSError:
                self.quiet = True  # nobody reads stdout: the record still has everything


def _daemon(
    args: argparse.Namespace,
    config: ConsoleConfig,
    events_file: EventFile | None,
    runtime: Runtime,
    registry: ProbeRegistry,
    recorder: Recorder,
    recovery: Recovery,
) -> int:
    start = runtime.now()
    runtime.read_wait_s = READ_WAIT_S

    def session_time() -> float:
        return runtime.now() - start

    stream = EventStream(session_time, wall_clock=lambda: datetime.now(UTC))
    if events_file is not None:
        stream.sinks.append(events_file)
    stream.sinks += [_Lines(args.quiet), recorder]
    conn = runtime.connection
    controller = Controller(config, conn, stream, now=start)
    session_id = recorder.session_id
    stream.sinks.append(remember_opened(registry, conn, session_id))
    runtime.on_snapshot = controller.on_snapshot
    runtime.on_notice = controller.on_notice
    runtime.take_output = controller.take_output
    record_with(recorder, controller, runtime, session_time)
    api = Api(controller, stream, session_id=session_id, session_time=session_time)
    stream.sinks.append(api.on_event)
    socket_path = args.socket or default_socket_path()

    def handle(line: bytes, caller: Caller) -> dict[str, Any]:
        # Each request's commands written and its record committed before the next
        # request is taken (SR-22): an estop never waits behind another client's requests.
        response = api.handle_line(line, caller)
        runtime.settle()
        return response

    try:
        server = ApiServer(
            socket_path,
            handle,
            stream,
            allowed_uids=config.api.allowed_uids,
            max_clients=config.api.max_clients,
            clock=runtime.clock,
        )
    except (SocketInUseError, OSError) as exc:
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise CommandExit(EXIT_USAGE, f"--socket {socket_path}: {why}") from None
    stream.sinks.append(server.publish)

    def finish(outcome: str, reason: str) -> None:
        stream("api_summary", {"status_polls": api.status_polls, "procedures": api.procedures})
        stream("session_finished", {"outcome": outcome, "reason": reason})

    try:
        return _session(
            args,
            config,
            stream,
            runtime,
            controller,
            server,
            recovery,
            socket_path,
            finish,
            session_id,
        )
    finally:
        server.close(record=False)  # after session_finished: the subscribers have it


def _session(
    args: argparse.Namespace,
    config: ConsoleConfig,
    stream: EventStream,
    runtime: Runtime,
    controller: Controller,
    server: ApiServer,
    recovery: Recovery,
    socket_path: Path,
    finish: Callable[[str, str], None],
    session_id: str,
) -> int:
    from console.cli import package_version

    stream(
        "session_started",
        {
            "session_id": session_id,
            "version": package_version(),
            "profile": config.procedure.profile,
            "gas": config.gas,
            "seed": None,
            "faults": [],
            "config_sha256": config_sha256(config),
            "simulated": False,
            "command": "serve",
            "socket": str(socket_path),
        },
    )
    for other in recovery.interrupted:
        stream("session_interrupted", {"interrupted_session_id": other})
    conn = runtime.connection
    proc = controller.procedure

    def turn() -> None:
        runtime.step()
        controller.tick(runtime.now())
        server.poll()  # the clients' actions, decided and written in this same turn
        runtime.settle()

    # The device first: the API already answers `status` meanwhile (state `connecting`).
    deadline = runtime.now() + args.timeout_s
    while conn.identity is None or conn.safe_verified_ms is None:
        if runtime.stop_signal is not None:
            # Nothing started; the device, if any, is safe by its own watchdog (SR-02). A
            # start that inherited a lock (SR-22) ends locked: the next one starts locked.
            reason = f"signal:{signal.Signals(runtime.stop_signal).name}"
            if recovery.start_locked:
                finish("aborted", reason)
                return EXIT_LOCKED
            finish("completed", reason)
            return EXIT_STOPPED
        if runtime.now() >= deadline:
            finish("aborted", "device_unavailable")
            raise CommandExit(
                EXIT_DEVICE,
                f"no identity with a verified safe state from {args.port} within "
                f"{args.timeout_s:g} s: check the cable, the baud rate and the power",
            )
        turn()
    if refused_after_handshake(controller, runtime, recovery):
        finish("aborted", "device_refused")
        for refusal in conn.refusals:
            print(
                f"probe-console serve: refused ({refusal.code}): {refusal.message}",
                file=sys.stderr,
            )
        return EXIT_DEVICE
    if not args.quiet:
        print(f"SERVING {socket_path}", flush=True)
    try:
        while runtime.stop_signal is None:
            turn()
    except TransportError:
        # The port is gone (cable, device-sim stopped): nothing can be commanded; the
        # device's own watchdog makes it safe (SR-02). The record says so.
        during = proc.state in RUNNING or proc.state in ENDS
        if proc.state in RUNNING:
            proc.end_now("transport_lost")
        finish("aborted" if during or proc.locked else "completed", "transport_lost")
        raise
    signum = runtime.stop_signal
    reason = f"signal:{signal.Signals(signum).name}"
    # `complete` is over (finished, released, waiting for the withdraw): stopping is idle.
    in_procedure = proc.state in RUNNING or proc.state in ENDS
    if in_procedure:
        proc.end_now(reason)
        runtime.settle()
    runtime.stop_signal = None
    if not runtime.make_safe(reason):  # SR-01: verified from telemetry before the record ends
        print(
            "probe-console serve: the device did not confirm the safe state within 1 s; "
            "its watchdog makes it safe 300 ms after the last frame (SR-02): check it",
            file=sys.stderr,
        )
    if in_procedure or proc.locked:
        outcome = "aborted"
        code = EXIT_LOCKED if proc.locked else EXIT_EARLY
    else:
        outcome, code = "completed", EXIT_STOPPED
    finish(outcome, reason)
    return code

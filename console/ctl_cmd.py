"""`probe-console ctl ACTION ...`: one operator action (or `status`, `watch`) through the API.

Subcommands are spelled exactly as the actions (interfaces.md). Exit codes:
0 accepted, 1 refused (by an interlock or in this state), 2 invalid request
(usage, parameters, a checklist file that is not valid), 3 cannot connect or
not allowed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from console.actions import ACTIONS
from console.api import INTERNAL_ERROR, NOT_IN_STATE, REFUSED, ApiError
from console.bench_cmds import CommandExit
from console.client import Client, ConnectError
from console.view import event_line

if TYPE_CHECKING:
    from console.cli import Subparsers

EXIT_ACCEPTED, EXIT_REFUSED, EXIT_INVALID, EXIT_CONNECT = 0, 1, 2, 3
EXIT_INTERRUPTED = 130  # Ctrl-C before the answer: neither accepted nor refused as far as ctl knows

_HELP = {
    "arm": "start a procedure: the checklist recorded, the leak test when due",
    "stim_configure": "stimulation settings: --preset NAME or --current-ma, --pulse-us, --rate-hz",
    "stim_start": "stimulate (localize)",
    "stim_stop": "stop stimulating",
    "confirm_localization": "stop stimulating and record the current as the threshold",
    "start_freeze": "pressurize, then the freeze-thaw cycles",
    "abort": "end the procedure: the safe state, then a locked thaw",
    "estop": "emergency stop from any state (SR-20)",
    "ack_alarm": "acknowledge an alarm",
    "silence_alarms": "silence the audible alarms for up to 120 s",
    "request_withdraw": "withdraw once the thaw released the probe; back to ready",
    "declare_thermistor_suspect": "the thermistor is not to be trusted: the timed thaw path",
    "confirm_timed_thaw": "confirm the timed thaw once its time is over",
}


def register(subparsers: Subparsers) -> None:
    p = subparsers.add_parser("ctl", help="send an operator action to a running serve")
    p.add_argument("--socket", type=Path, help="the API socket (default as serve's)")
    p.add_argument("--timeout-s", type=float, default=10.0, help="wait for the answer (default 10)")
    p.add_argument("--json", action="store_true", help="print the response as JSON")
    sub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    for action in ACTIONS:
        a = sub.add_parser(action, help=_HELP[action])
        _json_too(a)
        if action == "arm":
            a.add_argument("--checklist", type=Path, required=True, help="JSON or TOML file")
            a.add_argument("--cycles", type=int, help="freeze-thaw cycles")
            a.add_argument("--freeze-s", type=float, help="each freeze, s")
            a.add_argument("--thaw-s", type=float, help="each thaw, s")
        elif action == "stim_configure":
            a.add_argument("--preset", help="a preset of the configuration (motor, sensory)")
            a.add_argument("--current-ma", type=float, help="mA")
            a.add_argument("--pulse-us", type=int, help="us")
            a.add_argument("--rate-hz", type=int, help="Hz")
        elif action == "ack_alarm":
            a.add_argument("alarm", help="the alarm id, e.g. ALM_NO_FLOW")
        elif action == "silence_alarms":
            a.add_argument("duration_s", type=float, help="seconds, at most 120")
        a.set_defaults(handler=ctl)
    s = sub.add_parser("status", help="the console's state, readings and alarms")
    _json_too(s)
    s.set_defaults(handler=ctl)
    w = sub.add_parser("watch", help="a live view: every event as it happens")
    _json_too(w)
    w.add_argument("--telemetry", action="store_true", help="also a line per telemetry event")
    w.add_argument("--count", type=int, help="stop after this many lines")
    w.set_defaults(handler=ctl)


def _json_too(parser: argparse.ArgumentParser) -> None:
    """`--json` accepted after the action as well as before it."""
    parser.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="print JSON")


def params_of(args: argparse.Namespace) -> dict[str, Any]:
    action = args.action
    if action == "arm":
        from console.run_cmd import load_checklist

        params: dict[str, Any] = {"checklist": load_checklist(args.checklist).model_dump()}
        for key in ("cycles", "freeze_s", "thaw_s"):
            if getattr(args, key) is not None:
                params[key] = getattr(args, key)
        return params
    if action == "stim_configure":
        return {
            key: getattr(args, key)
            for key in ("preset", "current_ma", "pulse_us", "rate_hz")
            if getattr(args, key) is not None
        }
    if action == "ack_alarm":
        return {"alarm": args.alarm}
    if action == "silence_alarms":
        return {"duration_s": args.duration_s}
    return {}


def ctl(args: argparse.Namespace) -> int:
    name = f"probe-console ctl {args.action}"
    try:
        params = params_of(args) if args.action in ACTIONS else {}
        with Client(args.socket, timeout_s=args.timeout_s) as client:
            if args.action == "watch":
                client.settimeout(None)  # a live view waits as long as it takes
                return _watch(client, args)
            method = args.action
            result = client.call(method, params if method in ACTIONS else None)
    except CommandExit as exc:
        print(f"{name}: {exc}", file=sys.stderr)
        return EXIT_INVALID
    except ConnectError as exc:
        print(f"{name}: {exc}", file=sys.stderr)
        return EXIT_CONNECT
    except ApiError as exc:
        if args.json:
            print(json.dumps({"code": exc.code, "message": exc.message, "data": exc.data}))
        # -32603: the daemon met a fault on this request and made the device safe: refused.
        refused = exc.code in (REFUSED, NOT_IN_STATE, INTERNAL_ERROR)
        kind = "refused" if refused else "invalid request"
        print(f"{name}: {kind} ({exc.code}): {exc.message}", file=sys.stderr)
        return EXIT_REFUSED if refused else EXIT_INVALID
    except KeyboardInterrupt:
        if args.action == "watch":
            return EXIT_ACCEPTED  # leaving the live view is its normal end
        print(
            f"{name}: interrupted before the answer: whether it was taken, "
            "`probe-console ctl status` tells",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED
    try:
        if args.json or args.action == "status":
            print(json.dumps(result, indent=None if args.json else 2), flush=True)
        else:
            extra = f": {result['reason']}" if result.get("reason") else ""
            print(f"accepted; state {result['state']}{extra}", flush=True)
    except BrokenPipeError:
        # The reader went away (`ctl status | head -1`): the request was accepted all the same.
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - silence the interpreter's flush
    return EXIT_ACCEPTED


def _watch(client: Client, args: argparse.Namespace) -> int:
    status = client.status()
    print(
        f"state {status['state']}, cycle {status['cycle']}/{status['cycles']}, "
        f"withdraw {'safe' if status['withdraw_safe'] else 'LOCKED'}, "
        f"alarms {', '.join(a['alarm'] for a in status['alarms']) or 'none'}",
        flush=True,
    )
    client.subscribe()
    seen = 0
    try:
        for event in client.events():
            line: str | None
            if args.json:
                line = json.dumps(event)
            elif event["event"] == "telemetry":
                line = (
                    f"t={event['t_s']:8.2f}s tip {event['tip_c']} C, supply "
                    f"{event['supply_psi']} psig, exhaust {event['exhaust_psi']} psig"
                    if args.telemetry
                    else None
                )
            else:
                line = event_line(event)
            if line is not None:
                print(line, flush=True)
                seen += 1
            if args.count is not None and seen >= args.count:
                break
            if event["event"] == "session_finished":
                break
    except BrokenPipeError:
        pass
    return EXIT_ACCEPTED

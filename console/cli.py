"""The ``probe-console`` command line, the composition root of the daemon.

Commands are added by listing a registration function in ``COMMANDS``. A
registration function receives the subparsers object, adds its own parser and
sets ``handler`` on it::

    def register(subparsers: Subparsers) -> None:
        parser = subparsers.add_parser("identify", help="...")
        parser.add_argument("--port", required=True)
        parser.set_defaults(handler=run_identify)

A handler takes the parsed arguments and returns the process exit code of
``interfaces.md``. The list is explicit rather than discovered so that what
the program can do is visible in one place and reviewed with every change.

User errors never show a traceback: argparse reports usage errors with the
usage line and exit code 2.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from importlib import metadata
from typing import TypeAlias

import console
from console import (
    bench_cmds,
    config_cmd,
    ctl_cmd,
    device_sim,
    qa_cmd,
    report_cmd,
    run_cmd,
    serve_cmd,
    sessions_cmd,
    simulate_cmd,
)

PROG = "probe-console"
DISTRIBUTION = "probe-console"

EXIT_USAGE = 2
"""Invalid usage, configuration or parameters; nothing started (interfaces.md)."""

Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"
Handler: TypeAlias = Callable[[argparse.Namespace], int]
Registrar: TypeAlias = Callable[[Subparsers], None]

COMMANDS: tuple[Registrar, ...] = (
    simulate_cmd.register,
    run_cmd.register,
    serve_cmd.register,
    ctl_cmd.register,
    bench_cmds.register,
    device_sim.register,
    config_cmd.register,
    sessions_cmd.register,
    report_cmd.register,
    qa_cmd.register,
)
"""Registration functions of the commands, in the order ``--help`` lists them."""


def package_version() -> str:
    """The installed distribution's version; the package's own when not installed.

    The fallback covers running from a source tree without installing it.
    """
    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        return console.__version__


def build_parser(commands: Sequence[Registrar] = COMMANDS) -> argparse.ArgumentParser:
    """The top-level parser with every command of ``commands`` registered."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description=(
            "Firmware-side daemon of a cryoneurolysis probe console: wire protocol, "
            "serial link, procedure state machine, interlocks and a device simulator."
        ),
    )
    parser.add_argument(
        "--version",
        action="version",
        version=f"{PROG} {package_version()}",
        help="print the version and exit",
    )
    subparsers = parser.add_subparsers(title="commands", dest="command", metavar="COMMAND")
    for register in commands:
        register(subparsers)
    return parser


def run(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> int:
    """Parse ``argv`` with ``parser`` and run the selected command's handler."""
    try:
        args = parser.parse_args(argv)
        handler: Handler | None = getattr(args, "handler", None)
        if handler is None:
            parser.error("a command is required (see --help)")
    except SystemExit as exit_:
        # --help, --version and usage errors end in argparse's exit(); return
        # its code so that main() can be called (and tested) like a function.
        return _exit_code(exit_)
    try:
        return handler(args)
    except KeyboardInterrupt:
        # Ctrl-C before a command installed its own handling (start-up): nothing was
        # energised yet, so there is nothing to make safe; no traceback for the user.
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 1


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``probe-console`` script and of ``python -m console``."""
    return run(build_parser(), argv)


def _exit_code(exit_: SystemExit) -> int:
    # argparse exits with an int status after printing its own message.
    code = exit_.code
    if code is None:
        return 0
    return code if isinstance(code, int) else EXIT_USAGE

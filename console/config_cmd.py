"""``probe-console config``: show the effective configuration, check a file, print the reference.

- ``config show [--config PATH] [--profile clinical|bench]`` prints the
  effective configuration as TOML: every key, the defaults filled in. That
  text is what ``config check`` accepts and loads back to an equal
  configuration, so it is the starting point for a site's ``console.toml``.
- ``config check FILE`` (``-``: standard input) exits 0 when the file is a
  valid configuration and 2 when it is not, one error per line on stderr
  (interfaces.md, "Exit codes"; SR-23, SR-30).
- ``config reference`` prints ``docs/configuration.md``, generated from the
  models.

All the knowledge is in `console.config`; this module only reads arguments
and files and writes text.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from console import __version__
from console.config import (
    PROFILES,
    ConfigError,
    ConsoleConfig,
    config_sha256,
    config_toml,
    configuration_reference,
    load_config,
    loads_config,
)

if TYPE_CHECKING:
    from console.cli import Subparsers

COMMAND = "config"
PREFIX = f"probe-console {COMMAND}"

EXIT_OK = 0
EXIT_INVALID = 2
"""Invalid configuration or usage (interfaces.md, "Exit codes")."""

STDIN = "-"


def register(subparsers: Subparsers) -> None:
    """Add ``config`` and its actions to the top-level parser."""
    parser = subparsers.add_parser(
        COMMAND,
        help="show the effective configuration or check a configuration file",
        description="Show the effective configuration, check a configuration file, or "
        "print the reference of every key (docs/configuration.md).",
    )
    actions = parser.add_subparsers(
        title="actions", dest="config_action", metavar="ACTION", required=True
    )

    show = actions.add_parser(
        "show",
        help="print the effective configuration as TOML",
        description="Print the effective configuration (embedded defaults, then --config, "
        "then --profile) as TOML that `config check` accepts.",
    )
    show.add_argument(
        "--config", type=Path, metavar="PATH", help="TOML file overriding the defaults"
    )
    show.add_argument(
        "--profile",
        metavar="|".join(PROFILES),
        help="procedure profile (SR-17); default: the file's, else clinical",
    )
    show.set_defaults(handler=run_show)

    check = actions.add_parser(
        "check",
        help="check a configuration file: exit 0 if valid, 2 if not",
        description="Check a configuration file: exit 0 when valid, 2 when not, with one "
        "line per error on stderr.",
    )
    check.add_argument("file", metavar="FILE", help=f"the TOML file; {STDIN} reads stdin")
    check.set_defaults(handler=run_check)

    reference = actions.add_parser(
        "reference",
        help="print the reference of every key (docs/configuration.md)",
        description="Print docs/configuration.md: every key with type, default, unit, "
        "range and the SR it serves, generated from the models.",
    )
    reference.set_defaults(handler=run_reference)


def show_text(config: ConsoleConfig) -> str:
    """The TOML of `config` with a comment header saying what it is."""
    header = (
        f"# probe-console {__version__}: effective configuration (config show)\n"
        f"# profile {config.procedure.profile}, gas {config.gas}, "
        f"config_sha256 {config_sha256(config)}\n"
        "# Every key is listed with its unit, default and range in docs/configuration.md.\n"
        "\n"
    )
    return header + config_toml(config)


def run_show(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.config, {"--profile": args.profile})
    except ConfigError as exc:
        return _invalid(exc, args.config)
    sys.stdout.write(show_text(config))
    return EXIT_OK


def run_check(args: argparse.Namespace) -> int:
    name: str = args.file
    try:
        if name == STDIN:
            config = loads_config(sys.stdin.read(), base_dir=Path.cwd(), source="<stdin>")
        else:
            config = load_config(Path(name))
    except ConfigError as exc:
        return _invalid(exc, "standard input" if name == STDIN else name)
    print(f"{name}: valid (config_sha256 {config_sha256(config)})")
    return EXIT_OK


def run_reference(args: argparse.Namespace) -> int:
    sys.stdout.write(configuration_reference())
    return EXIT_OK


def _invalid(exc: ConfigError, source: object) -> int:
    count = len(exc.messages)
    where = f" in {source}" if source is not None else ""
    lines = [f"{PREFIX}: invalid configuration{where} ({count} error{'s' * (count != 1)}):"]
    print("\n".join([*lines, *exc.messages]), file=sys.stderr)
    return EXIT_INVALID

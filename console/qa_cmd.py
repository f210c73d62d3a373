"""`probe-console qa run|list`: QA's scenario files, run and judged (docs/qa.md).

- ``qa run PATHS... [--junit PATH] [--port URL] [--db PATH] [--config PATH]``:
  every scenario under PATHS (files, or folders searched for ``*.toml``)
  against the built-in simulator in virtual time, or with ``--port`` against a
  device in real time (scenarios that need the simulator are SKIPPED there,
  never passed). A table of every expectation with its measured value;
  ``--junit`` writes JUnit XML; ``--report DIR`` an HTML page with the
  table and a plot of every scenario that ran (console/report/, needs the
  ``report`` extra).
- ``qa list PATHS...``: each scenario, its SRs and what it requires.

Exit codes (interfaces.md): 0 every expectation met; 1 an expectation failed
(or a scenario could not run); 2 an invalid scenario or usage (nothing is
run); 3 the device is unavailable (``--port``).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import textwrap
import time
import tomllib
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from console.config import ConfigError, load_config
from console.qa import (
    DeviceUnavailable,
    QaUsageError,
    RunStopped,
    ScenarioResult,
    fmt,
    junit_xml,
    run_on_port,
    run_virtual,
    skipped,
)
from console.scenario import ScenarioError, ScenarioFile, load_scenarios
from console.store import StoreError, default_db_path

if TYPE_CHECKING:
    from console.cli import Subparsers
    from console.report.scenarios import QaReport

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_DEVICE = 0, 1, 2, 3
PROG = "probe-console qa"


def register(subparsers: Subparsers) -> None:
    p = subparsers.add_parser(
        "qa",
        help="run QA's scenario files against the simulator or a device",
        description="Scenario files (TOML, docs/qa.md): run them and judge every expectation.",
    )
    sub = p.add_subparsers(dest="qa_command", metavar="WHAT", required=True)
    r = sub.add_parser(
        "run",
        help="run scenarios and judge every expectation",
        description="Run every scenario under PATHS (files, or folders searched for *.toml) "
        "against the built-in simulator in virtual time, or with --port against a device in "
        "real time. Exit 0: every expectation met; 1: one failed; 2: invalid scenario or "
        "usage; 3: device unavailable.",
    )
    r.add_argument("paths", nargs="+", type=Path, metavar="PATHS", help="scenario files or folders")
    r.add_argument("--junit", type=Path, metavar="PATH", help="write JUnit XML here")
    r.add_argument(
        "--report",
        type=Path,
        metavar="DIR",
        help="write DIR/index.html: the table of results and a plot of every scenario that ran "
        "(needs matplotlib: pip install 'probe-console[report]')",
    )
    r.add_argument(
        "--port",
        metavar="URL",
        help="run on this device in real time (hardware in the loop); scenarios that need the "
        "simulator are skipped",
    )
    r.add_argument(
        "--db",
        type=Path,
        metavar="PATH",
        help="record each scenario run as a session here (with --port always recorded, in the "
        "default store when not given)",
    )
    r.add_argument(
        "--config",
        type=Path,
        metavar="PATH",
        help="console.toml under every scenario's own settings",
    )
    r.add_argument(
        "--timeout-s",
        type=float,
        default=5.0,
        metavar="S",
        help="with --port: how long to wait for the device (default 5)",
    )
    r.add_argument("--quiet", action="store_true", help="print only failures and the summary")
    r.set_defaults(handler=qa_run)
    ls = sub.add_parser("list", help="list scenarios with their SRs and what they require")
    ls.add_argument(
        "paths", nargs="+", type=Path, metavar="PATHS", help="scenario files or folders"
    )
    ls.add_argument(
        "--db",
        type=Path,
        metavar="PATH",
        help="accepted like every qa command; list reads no store",
    )
    ls.add_argument(
        "--config", type=Path, metavar="PATH", help="console.toml the scenarios are checked against"
    )
    ls.set_defaults(handler=qa_list)


class _Usage(Exception):
    pass


def _wall_clock() -> datetime:
    """The shell's wall clock: the events' `ts` on a device and the JUnit timestamp only;
    durations use the monotonic clock (SR-28)."""
    return datetime.now(UTC)


class _Out:
    """Standard output that a closed reader (`qa run | head`) stops, not the run."""

    def __init__(self) -> None:
        self.closed = False

    def write(self, text: str) -> int:
        if not self.closed:
            try:
                sys.stdout.write(text)
            except BrokenPipeError:
                self._close()
        return len(text)

    def flush(self) -> None:
        if not self.closed:
            try:
                sys.stdout.flush()
            except BrokenPipeError:
                self._close()

    def _close(self) -> None:
        self.closed = True
        # Silence the interpreter's own flush at exit, as the bench tools do.
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115


def _base_config(path: Path | None) -> tuple[dict[str, Any] | None, Path | None]:
    """`--config`: checked on its own first, then laid under each scenario's settings."""
    if path is None:
        return None, None
    try:
        load_config(path)
    except ConfigError as exc:
        raise _Usage("\n".join(f"--config {path}: {m}" for m in exc.messages)) from None
    try:
        return tomllib.loads(path.read_text(encoding="utf-8")), path.parent
    except (OSError, tomllib.TOMLDecodeError) as exc:  # checked above; a race at most
        raise _Usage(f"--config {path}: {exc}") from None


def _load(args: argparse.Namespace) -> list[ScenarioFile]:
    base, base_dir = _base_config(args.config)
    return load_scenarios(args.paths, base, base_dir)


def _writable(path: Path, option: str) -> None:
    parent = path.parent if str(path.parent) else Path(".")
    if path.is_dir() or not parent.is_dir() or not os.access(parent, os.W_OK):
        raise _Usage(f"{option} {path}: its folder does not exist or is not writable")


def qa_list(args: argparse.Namespace) -> int:
    try:
        files = _load(args)
    except ScenarioError as exc:
        for message in exc.messages:
            print(f"{PROG} list: {message}", file=sys.stderr)
        return EXIT_USAGE
    except _Usage as exc:
        print(f"{PROG} list: {exc}", file=sys.stderr)
        return EXIT_USAGE
    width = max([len("SCENARIO"), *(len(sf.name) for sf in files)])
    out: Any = _Out()
    print(f"{'SCENARIO':<{width}}  {'REQUIRES':<9}  SR", file=out)
    for sf in files:
        print(
            f"{sf.name:<{width}}  {sf.scenario.requires:<9}  {', '.join(sf.scenario.sr)}", file=out
        )
        print(f"    {sf.path}", file=out)
        description = " ".join(sf.scenario.description.split())
        if description:
            print(
                textwrap.fill(description, 96, initial_indent="    ", subsequent_indent="    "),
                file=out,
            )
    print(f"{len(files)} scenario(s)", file=out)
    return EXIT_OK


def _report_setup(args: argparse.Namespace, stack: ExitStack) -> QaReport | None:
    """`--report DIR`: matplotlib present, the folder writable, a store to record in.

    Without `--db`, a virtual-time run records into a temporary store (the plots are
    drawn from the record); on a device the run is recorded in the default store anyway.
    """
    if args.report is None:
        return None
    from console.report.plot import ReportUnavailable, require_matplotlib

    try:
        require_matplotlib()
    except ReportUnavailable as exc:
        raise _Usage(f"--report: {exc}") from None
    from console.report.scenarios import QaReport

    folder: Path = args.report
    if folder.exists() and not folder.is_dir():
        raise _Usage(f"--report {folder} is a file: give a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _Usage(
            f"--report {folder}: cannot create the folder: {exc.strerror or exc}"
        ) from None
    if not os.access(folder, os.W_OK):
        raise _Usage(f"--report {folder}: the folder is not writable")
    if args.db is None and not args.port:
        temporary = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="qa-report-")))
        args.db = temporary / "sessions.sqlite3"
    db: Path = args.db or default_db_path()
    mode = f"on {args.port}" if args.port else "against the simulator"
    return QaReport(folder, db, f"probe-console qa run {mode}")


def qa_run(args: argparse.Namespace) -> int:
    with ExitStack() as stack:
        return _qa_run(args, stack)


def _qa_run(args: argparse.Namespace, stack: ExitStack) -> int:
    try:
        if not (args.timeout_s == args.timeout_s and 0.0 < args.timeout_s <= 3600.0):
            raise _Usage(f"--timeout-s = {args.timeout_s} out of range (0, 3600] s")
        if args.junit is not None:
            _writable(args.junit, "--junit")
        if args.db is not None:
            _writable(args.db, "--db")
        files = _load(args)
        report = _report_setup(args, stack)
    except ScenarioError as exc:
        for message in exc.messages:
            print(f"{PROG} run: {message}", file=sys.stderr)
        return EXIT_USAGE
    except _Usage as exc:
        print(f"{PROG} run: {exc}", file=sys.stderr)
        return EXIT_USAGE
    out: Any = _Out()
    mode = f"on {args.port} in real time" if args.port else "against the simulator, virtual time"
    if not args.quiet:
        print(f"{PROG} run: {len(files)} scenario(s) {mode}", file=out, flush=True)
    results: list[ScenarioResult] = []
    code = EXIT_OK
    stop: str | None = None
    for sf in files:
        if stop is not None:
            result = skipped(sf, f"not run: {stop}", "port" if args.port else "simulator")
            results.append(result)
            _print_result(result, out, quiet=args.quiet)
            continue
        try:
            if args.port:
                result = run_on_port(
                    sf, args.port, db=args.db, timeout_s=args.timeout_s, wall_clock=_wall_clock
                )
            else:
                result = run_virtual(sf, db=args.db, clock=time.monotonic)
        except DeviceUnavailable as exc:
            print(f"{PROG} run: device unavailable: {exc}", file=sys.stderr)
            result = ScenarioResult(sf, "error", reason=f"device unavailable: {exc}", mode="port")
            code, stop = EXIT_DEVICE, "the device is unavailable"
        except RunStopped as exc:
            print(f"{PROG} run: {exc}", file=sys.stderr)
            result = ScenarioResult(sf, "error", reason=str(exc), mode="port")
            stop = "the run was stopped"
        except (QaUsageError, StoreError) as exc:
            print(f"{PROG} run: {exc}", file=sys.stderr)
            return EXIT_USAGE
        except Exception as exc:  # a bug: this scenario errs, the others still run
            result = ScenarioResult(
                sf, "error", reason=f"the run failed: {type(exc).__name__}: {exc}"
            )
        results.append(result)
        _print_result(result, out, quiet=args.quiet)
        if report is not None:
            entry = report.add(result)
            if entry.no_plot and result.session_id is not None:
                print(f"{PROG} run: --report: {result.name}: {entry.no_plot}", file=sys.stderr)
    summary = _summary(results)
    print(summary, file=out)
    if report is not None:
        try:
            page = report.write(summary, _wall_clock().isoformat(timespec="seconds")[:19])
        except OSError as exc:
            print(f"{PROG} run: --report {args.report}: {exc.strerror or exc}", file=sys.stderr)
            return EXIT_USAGE
        print(f"report: {page}", file=out)
    if args.junit is not None:
        try:
            stamp = _wall_clock().isoformat(timespec="seconds").replace("+00:00", "")
            args.junit.write_text(junit_xml(results, timestamp=stamp), encoding="utf-8")
        except OSError as exc:
            print(f"{PROG} run: --junit {args.junit}: {exc.strerror or exc}", file=sys.stderr)
            return EXIT_USAGE
    if code == EXIT_OK and any(r.status in ("fail", "error") for r in results):
        code = EXIT_FAILED
    return code


def _print_result(r: ScenarioResult, out: TextIO, *, quiet: bool) -> None:
    if quiet and r.status in ("pass", "skip"):
        return
    head = f"{r.status.upper():<5} {r.name}  [{', '.join(r.file.scenario.sr)}]"
    if r.status in ("skip", "error"):
        print(f"{head}  {r.reason}", file=out, flush=True)
    else:
        print(
            f"{head}  outcome {r.outcome} ({r.outcome_reason}), exit {r.exit_code}, "
            f"{fmt(r.device_s, 1)} s device, {fmt(r.wall_s, 1)} s wall",
            file=out,
        )
    checks = [c for c in r.checks if not quiet or c.status != "pass"]
    if not checks:
        out.flush()
        return
    width = min(56, max(len(c.name) for c in checks))
    for c in checks:
        verdict = f"measured {c.measured}" + (f"  | expected {c.expected}" if c.expected else "")
        if len(c.name) <= width:
            print(f"      {c.status:<5} {c.name:<{width}}  {verdict}", file=out)
        else:  # a long label on its own line, the values under the column
            print(f"      {c.status:<5} {c.name}", file=out)
            print(f"      {'':<5} {'':<{width}}  {verdict}", file=out)
    out.flush()


def _summary(results: list[ScenarioResult]) -> str:
    def count(status: str) -> int:
        return sum(1 for r in results if r.status == status)

    checks = [c for r in results for c in r.checks]
    passed = sum(1 for c in checks if c.status == "pass")
    return (
        f"{len(results)} scenario(s): {count('pass')} passed, {count('fail')} failed, "
        f"{count('skip')} skipped, {count('error')} errors; {len(checks)} expectation(s): "
        f"{passed} passed, {len(checks) - passed} failed"
    )


__all__ = ["qa_list", "qa_run", "register"]

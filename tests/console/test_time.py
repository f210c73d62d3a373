"""SR-28: durations on a monotonic or device clock; a wall-clock jump changes only wall times."""

from __future__ import annotations

import ast
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from console.events import EventStream
from console.runtime import Runtime

ROOT = Path(__file__).resolve().parents[2]
#: The only modules allowed to read a clock: the real-time shells (DESIGN.md).
CLOCK_OWNERS = {
    "console/runtime.py",
    "console/events.py",
    "console/view.py",
    "console/simulate_cmd.py",
    "console/run_cmd.py",
    "console/serve_cmd.py",
    "console/apiserver.py",  # the API socket's shell: per-client timing on the runtime's clock
    "console/bench_cmds.py",
    "console/portlock.py",
    "console/qa_cmd.py",
    "console/records.py",  # wall-clock stamps of the session rows only (the store is I/O)
    "simulator/server.py",
}


def _clock_calls(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            if node.value.id == "time" and node.attr in {
                "time",
                "monotonic",
                "perf_counter",
                "sleep",
            }:
                found.append(f"time.{node.attr}")
            if node.value.id == "datetime" and node.attr in {"now", "utcnow"}:
                found.append(f"datetime.{node.attr}")
    return found


def test_only_the_shells_read_a_clock() -> None:
    """SR-28 and the sans-I/O core: no decision module reads the wall clock or any clock."""
    offenders = {}
    for package in ("protocols", "drivers", "simulator", "console"):
        for path in (ROOT / package).rglob("*.py"):
            rel = path.relative_to(ROOT).as_posix()
            calls = _clock_calls(path)
            if calls and rel not in CLOCK_OWNERS:
                offenders[rel] = calls
    assert offenders == {}


def test_the_real_time_runtime_measures_with_the_monotonic_clock() -> None:
    """SR-28: the control loop's durations come from time.monotonic, never the wall clock."""
    import inspect

    assert inspect.signature(Runtime.__init__).parameters["clock"].default is time.monotonic


def test_a_wall_clock_jump_changes_only_the_logged_wall_time() -> None:
    """SR-28: t_s follows the monotonic clock; only ts shows the jump."""
    mono = iter([1.0, 2.0, 3.0])
    walls = iter(
        [
            datetime(2026, 11, 28, 10, 0, 0, tzinfo=UTC),
            datetime(2026, 11, 28, 9, 0, 0, tzinfo=UTC),  # the wall clock jumped back an hour
            datetime(2026, 11, 28, 9, 0, 1, tzinfo=UTC),
        ]
    )
    seen: list[dict[str, object]] = []
    stream = EventStream(lambda: next(mono), wall_clock=lambda: next(walls))
    stream.sinks.append(seen.append)
    for name in ("a", "b", "c"):
        stream(name, {})
    assert [e["t_s"] for e in seen] == [1.0, 2.0, 3.0]
    assert [e["ts"] for e in seen] == [
        "2026-11-28T10:00:00.000Z",
        "2026-11-28T09:00:00.000Z",
        "2026-11-28T09:00:01.000Z",
    ]


def test_virtual_time_stamps_are_the_start_plus_t_s() -> None:
    start = datetime(2026, 11, 28, 10, 0, 0, tzinfo=UTC)
    t = iter([0.0, 12.5])
    seen: list[dict[str, object]] = []
    stream = EventStream(lambda: next(t), start_wall=start)
    stream.sinks.append(seen.append)
    stream("a", {})
    stream("b", {})
    assert seen[1]["ts"] == (start + timedelta(seconds=12.5)).isoformat(
        timespec="milliseconds"
    ).replace("+00:00", "Z")

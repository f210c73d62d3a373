"""`run --port` in real time against `device-sim` on a pty, as processes (bench profile)."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import pytest

from console.actions import clear_checklist
from tests.console.procs import CONSOLE, Sim, run

CHECKLIST = clear_checklist().model_dump()  # all clear, as the scripted operator
FAST = [
    "--profile",
    "bench",
    "--cycles",
    "1",
    "--freeze-s",
    "5",
    "--thaw-s",
    "5",
    "--localize-ma",
    "0.5",
]


@pytest.fixture
def checklist(tmp_path: Path) -> Path:
    path = tmp_path / "checklist.json"
    path.write_text(json.dumps(CHECKLIST))
    return path


def events_of(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_run_completes_a_procedure_and_remembers_the_probe(
    sim: Sim, env: dict[str, str], checklist: Path, tmp_path: Path
) -> None:
    """A whole procedure in real time; then SR-18: the same single-use probe is refused (exit 3)."""
    events = tmp_path / "events.jsonl"
    done = run(
        ["run", "--port", sim.url, "--checklist", str(checklist), "--events", str(events), *FAST],
        env,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    names = [e["event"] for e in events_of(events)]
    assert names[0] == "session_started" and names[-1] == "session_finished"
    finished = [e for e in events_of(events) if e["event"] == "procedure_finished"]
    assert finished[-1]["outcome"] == "completed"
    assert sim.status()["valves"]["supply"]["open"] is False
    again = run(["run", "--port", sim.url, "--checklist", str(checklist), *FAST], env, timeout=60)
    assert again.returncode == 3 and "probe_used" in again.stderr


def test_sigterm_mid_freeze_ends_in_the_safe_state(
    sim: Sim, env: dict[str, str], checklist: Path, tmp_path: Path
) -> None:
    """SR-01: the first SIGTERM during a procedure: the safe state (STATUS confirms), outcome
    aborted with reason signal:SIGTERM, exit 5 while the probe is locked."""
    events = tmp_path / "events.jsonl"
    args = [*FAST]
    args[args.index("--freeze-s") + 1] = "60"
    proc = subprocess.Popen(
        [
            *CONSOLE,
            "run",
            "--port",
            sim.url,
            "--checklist",
            str(checklist),
            "--events",
            str(events),
            *args,
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 40
    while time.monotonic() < deadline:
        if events.exists() and '"to":"freeze_1"' in events.read_text():
            break
        time.sleep(0.2)
    else:
        proc.kill()
        pytest.fail("never reached freeze_1")
    while not sim.status()["valves"]["supply"]["open"]:  # the supply opens 15 ms later
        assert time.monotonic() < deadline, "the supply never opened"
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=20) == 5
    status = sim.status()
    assert status["valves"]["supply"]["open"] is False and status["valves"]["vent"]["open"] is True
    finished = [e for e in events_of(events) if e["event"] == "session_finished"]
    assert finished == [{**finished[0], "outcome": "aborted", "reason": "signal:SIGTERM"}]


@pytest.mark.parametrize(
    ("content", "words"),
    [
        ({**CHECKLIST, "raynaud": True}, "raynaud is true"),
        ({**CHECKLIST, "extra": 1}, "Extra inputs"),
        ({k: v for k, v in CHECKLIST.items() if k != "raynaud"}, "raynaud"),
    ],
)
def test_a_bad_checklist_starts_nothing(
    content: dict[str, object], words: str, env: dict[str, str], tmp_path: Path
) -> None:
    """SR-19, SR-30: the checklist is strict; a contraindication starts nothing (exit 2)."""
    path = tmp_path / "checklist.json"
    path.write_text(json.dumps(content))
    done = run(["run", "--port", "/dev/null", "--checklist", str(path)], env)
    assert done.returncode == 2 and words in done.stderr and "Traceback" not in done.stderr


def test_run_needs_its_checklist(env: dict[str, str]) -> None:
    done = run(["run", "--port", "/dev/null"], env)
    assert done.returncode == 2 and "--checklist" in done.stderr


def test_run_over_tcp(env: dict[str, str], checklist: Path) -> None:
    """The same procedure against device-sim on a loopback TCP port (socket://)."""
    proc = subprocess.Popen(
        [*CONSOLE, "device-sim", "--listen", "tcp://127.0.0.1:0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().split()[1]
        assert url.startswith("socket://127.0.0.1:")
        done = run(["run", "--port", url, "--checklist", str(checklist), *FAST], env, timeout=60)
        assert done.returncode == 0, done.stderr
        assert "procedure finished: completed" in done.stdout
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=10)

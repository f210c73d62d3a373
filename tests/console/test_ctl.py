"""`probe-console ctl` against a running `serve`: subcommands spelled as the actions, exit codes."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from tests.console.procs import CONSOLE, run
from tests.console.served import CHECKLIST, Served


def ctl(served: Served, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return run(["ctl", "--socket", str(served.socket), *args], env)


def test_ctl_exit_codes(served: Served, env: dict[str, str], tmp_path: Path) -> None:
    """0 accepted, 1 refused, 2 invalid request (SR-30: NaN, out of range, a bad checklist),
    3 cannot connect; each answer says why, never with a traceback."""
    checklist = tmp_path / "checklist.json"
    checklist.write_text(json.dumps(CHECKLIST))
    status = ctl(served, env, "status")
    assert status.returncode == 0 and json.loads(status.stdout)["state"] == "ready"
    refused = ctl(served, env, "start_freeze")
    assert refused.returncode == 1 and "-32002" in refused.stderr
    nan = ctl(served, env, "silence_alarms", "nan")
    assert nan.returncode == 2 and "SR-30" in nan.stderr
    too_long = ctl(served, env, "--json", "silence_alarms", "121")
    assert too_long.returncode == 2
    assert json.loads(too_long.stdout)["data"]["field"] == "duration_s"
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({**CHECKLIST, "extra": 1}))
    invalid = ctl(served, env, "arm", "--checklist", str(bad))
    assert invalid.returncode == 2 and "Extra inputs" in invalid.stderr
    armed = ctl(served, env, "arm", "--checklist", str(checklist), "--cycles", "1")
    assert armed.returncode == 0, armed.stderr
    assert "accepted; state leak_test" in armed.stdout
    again = ctl(served, env, "arm", "--checklist", str(checklist))
    assert again.returncode == 1 and "not allowed in state" in again.stderr
    estop = ctl(served, env, "estop")
    assert estop.returncode == 0 and "state estop" in estop.stdout
    assert served.status()["state"] == "estop"
    for done in (status, refused, nan, too_long, invalid, armed, again, estop):
        assert "Traceback" not in done.stderr
    served.stop()
    gone = ctl(served, env, "status")
    assert gone.returncode == 3 and "cannot connect" in gone.stderr


def test_ctl_watch_shows_the_events(served: Served, env: dict[str, str]) -> None:
    """`ctl watch`: the status line, then a line per event as it happens."""
    watch = subprocess.Popen(
        [*CONSOLE, "ctl", "--socket", str(served.socket), "watch", "--count", "2"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert watch.stdout is not None
    first = watch.stdout.readline()
    assert first.startswith("state ready")
    with served.client() as c:
        c.call("estop")
    out, err = watch.communicate(timeout=30)
    assert watch.returncode == 0, err
    assert "state ready -> estop" in out
    served.stop()


def test_ctl_help_lists_every_action() -> None:
    from console.actions import ACTIONS

    done = subprocess.run([*CONSOLE, "ctl", "--help"], capture_output=True, text=True, check=False)
    assert done.returncode == 0
    for action in (*ACTIONS, "status", "watch"):
        assert action in done.stdout

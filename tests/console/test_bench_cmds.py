"""`identify`, `monitor`, `calibrate pressure` as processes against `device-sim` on a pty."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from console.config import load_config
from tests.console.procs import CONSOLE, Sim, run, start_sim, stop_sim


def test_identify_prints_the_identity(sim: Sim, env: dict[str, str], tmp_path: Path) -> None:
    """SR-01, SR-18: hello, identity checked, safe state verified; the frames traced."""
    trace = tmp_path / "trace.jsonl"
    done = run(["identify", "--port", sim.url, "--json", "--trace", str(trace)], env)
    assert done.returncode == 0, done.stderr
    info = json.loads(done.stdout)
    assert info["device_kind"] == "simulator" and info["accepted"] is True
    assert info["gas"] == "N2O" and info["probe_model"] == "CRYO-20G-90"
    assert info["safe_state_verified_device_ms"] is not None
    frames = [json.loads(line) for line in trace.read_text().splitlines()]
    sent = [f["type"] for f in frames if f["dir"] == "tx"]
    assert sent[:2] == ["Hello", "SafeState"]
    assert any(f["type"] == "Identity" and f["dir"] == "rx" for f in frames)


def test_identify_refuses_a_device_of_another_gas(env: dict[str, str]) -> None:
    """SR-18: gas must match the configuration; the refusal is exit 3 with its reason."""
    s = start_sim("--gas", "CO2")
    try:
        done = run(["identify", "--port", s.url], env)
    finally:
        stop_sim(s)
    assert done.returncode == 3
    assert "refused (gas)" in done.stdout and "plumbed for CO2" in done.stdout


def test_identify_refuses_a_used_single_use_probe(env: dict[str, str]) -> None:
    """SR-18: a single-use probe opened in an earlier device session is refused."""
    s = start_sim("--probe-uses", "1")
    try:
        done = run(["identify", "--port", s.url], env)
    finally:
        stop_sim(s)
    assert done.returncode == 3 and "refused (probe_used)" in done.stdout


def test_monitor_shows_readings_and_never_energises(sim: Sim, env: dict[str, str]) -> None:
    """SR-01: monitor commands the safe state on connect and never energises anything."""
    done = run(["monitor", "--port", sim.url, "--duration-s", "1.5", "--rate-hz", "4"], env)
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stdout.splitlines() if line.startswith("t=")]
    assert len(lines) >= 4
    assert "tip=37" in lines[-1] or "tip=36" in lines[-1]
    assert "supply=closed inlet=closed vent=open stim=off" in lines[-1]
    status = sim.status()
    assert status["valves"] == {
        "supply": {"open": False, "target_open": False},
        "inlet": {"open": False, "target_open": False},
        "vent": {"open": True, "target_open": True},
    }


def test_a_second_process_on_the_same_port_exits_4_naming_the_owner(
    sim: Sim, env: dict[str, str]
) -> None:
    """SR-27: one owner per port; the second instance exits 4 and names the owner."""
    first = subprocess.Popen(
        [*CONSOLE, "monitor", "--port", sim.url, "--duration-s", "20"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert first.stdout is not None
        first.stdout.readline()  # identified: the port is held
        second = run(["identify", "--port", sim.url, "--timeout-s", "2"], env)
        assert second.returncode == 4
        assert f"pid {first.pid}" in second.stderr and "monitor" in second.stderr
    finally:
        first.send_signal(signal.SIGINT)
        assert first.wait(timeout=10) == 0
    # The lock died with its owner: the port is free again.
    assert run(["identify", "--port", sim.url], env).returncode == 0


def test_calibrate_pressure_writes_a_file_the_configuration_loads(
    sim: Sim, env: dict[str, str], tmp_path: Path
) -> None:
    out = tmp_path / "cal.toml"
    refused = run(["calibrate", "pressure", "--port", sim.url, "--out", str(out)], env)
    assert refused.returncode == 2 and "bench profile" in refused.stderr and not out.exists()
    done = run(
        ["calibrate", "pressure", "--port", sim.url, "--profile", "bench", "--out", str(out)], env
    )
    assert done.returncode == 0, done.stderr
    config = load_config(None, {"pressure.calibration_file": str(out)})
    assert abs(config.pressure.supply.offset_psi) < 0.2  # the simulated line reads ~0 vented
    assert config.pressure.supply.span == 1.0


def test_no_device_on_the_port_exits_3(env: dict[str, str]) -> None:
    master, slave = os.openpty()
    try:
        start = time.monotonic()
        done = run(["identify", "--port", os.ttyname(slave), "--timeout-s", "1"], env)
        assert done.returncode == 3 and "no identity" in done.stderr
        assert time.monotonic() - start < 15
    finally:
        os.close(master)
        os.close(slave)
    missing = run(["identify", "--port", "/dev/does-not-exist"], env)
    assert missing.returncode == 3 and "/dev/does-not-exist" in missing.stderr
    assert "Traceback" not in missing.stderr


def test_a_bad_configuration_exits_2(env: dict[str, str], tmp_path: Path) -> None:
    bad = tmp_path / "console.toml"
    bad.write_text("[procedure]\nfreeze_s = nan\n")
    done = run(["identify", "--port", "/dev/null", "--config", str(bad)], env)
    assert done.returncode == 2 and "procedure.freeze_s" in done.stderr


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (
            ["identify", "--port", "/dev/null", "--timeout-s", "nan"],
            "--timeout-s = nan out of range",
        ),
        (["identify", "--port", "/dev/null", "--timeout-s", "0"], "--timeout-s = 0.0 out of range"),
        (
            ["monitor", "--port", "/dev/null", "--duration-s", "-5"],
            "--duration-s = -5.0 out of range",
        ),
        (["monitor", "--port", "/dev/null", "--rate-hz", "inf"], "--rate-hz = inf out of range"),
        (["identify", "--port", "/dev/null", "--trace", "/nonexistent/dir/t.jsonl"], "--trace"),
    ],
)
def test_bad_options_exit_2_without_a_traceback(
    args: list[str], words: str, env: dict[str, str]
) -> None:
    """SR-23/SR-30: a clear error, exit 2, nothing started."""
    done = run(args, env)
    assert done.returncode == 2, done.stderr
    assert words in done.stderr and "Traceback" not in done.stderr


def test_a_device_whose_safe_state_is_not_confirmed_is_named_as_such(env: dict[str, str]) -> None:
    """SR-01: identified, but telemetry never confirms the safe state: exit 3, and says why."""
    s = start_sim("--fault", "valve_stuck_closed:valve=vent")
    try:
        done = run(["identify", "--port", s.url, "--timeout-s", "2"], env)
    finally:
        stop_sim(s)
    assert done.returncode == 3
    assert "did not confirm the safe state" in done.stderr and "no identity" not in done.stderr

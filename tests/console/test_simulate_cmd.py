"""`probe-console simulate` as a separate process, checked against interfaces.md.

The contract under test: the options and their bad-value messages, the exit
codes (0 completed, 1 ended safely early and unlocked, 2 invalid, 3 handshake
refused, 5 still locked), the outcomes, the first-signal behaviour, the
events file (envelope `event`, `t_s`, `ts`, `seq`; every named event with its
fields) and the plain lines and summary off a terminal.

To keep the suite short, most runs use the bench profile with one short cycle
(`BENCH`, about 70 s of device time, 1-2 s of wall time); the full default
procedure (3 x 180 s) runs once per gas, both gases at the same time.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import re
import signal
import subprocess
import time
from datetime import datetime, timedelta
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest

from tests.console.procs import CONSOLE

Event = dict[str, Any]

BENCH = ["--profile", "bench", "--cycles", "1", "--freeze-s", "20", "--thaw-s", "10"]

#: interfaces.md, "Events": every name with the fields it must carry, at least.
CONTRACT_FIELDS: dict[str, set[str]] = {
    "session_started": {
        "session_id",
        "version",
        "profile",
        "gas",
        "seed",
        "faults",
        "config_sha256",
        "simulated",
    },
    "device_identified": {
        "device_kind",
        "firmware",
        "protocol",
        "device_serial",
        "probe_model",
        "probe_serial",
        "probe_uses",
        "gas",
    },
    "procedure_started": set(),
    "procedure_finished": {"outcome", "reason"},
    "state_changed": {"from", "to"},
    "checklist_recorded": set(),
    "leak_test": {"passed", "decay_psi", "window_s"},
    "localized": {"threshold_ma", "preset"},
    "valve_commanded": {"valve", "open"},
    "valve_reported": {"valve", "open", "device_ms"},
    "safe_state_commanded": {"reason", "alarm"},
    "safe_state_reported": {"device_ms"},
    "stim_commanded": {"on", "current_ma", "pulse_us", "rate_hz"},
    "stim_reported": {"on", "device_ms"},
    "command_acked": {"command", "command_seq", "reason"},
    "command_nacked": {"command", "command_seq", "reason"},
    "alarm_raised": {
        "alarm",
        "priority",
        "sr",
        "value",
        "limit",
        "device_ms",
        "first_over_device_ms",
    },
    "alarm_acknowledged": set(),
    "alarm_silenced": {"until_t_s"},
    "alarm_cleared": set(),
    "withdraw_safe": {"safe"},
    "operator_action": {"action", "accepted", "reason"},
    "link_lost": set(),
    "link_restored": set(),
    "link_health": {"good", "bad", "lost"},
    "fault_injected": {"fault", "params"},
    "telemetry": {
        "device_ms",
        "tip_c",
        "supply_psi",
        "exhaust_psi",
        "supply_open",
        "inlet_open",
        "vent_open",
        "stim_on",
    },
    "session_finished": {"outcome", "reason"},
}

#: What a nominal run must contain (alarms, nacks, link loss and faults need not occur).
NOMINAL_EVENTS = (
    "session_started",
    "device_identified",
    "procedure_started",
    "procedure_finished",
    "state_changed",
    "checklist_recorded",
    "leak_test",
    "localized",
    "valve_commanded",
    "valve_reported",
    "safe_state_commanded",
    "safe_state_reported",
    "stim_commanded",
    "stim_reported",
    "command_acked",
    "withdraw_safe",
    "operator_action",
    "link_health",
    "telemetry",
    "session_finished",
)

OUTCOMES = {"completed", "aborted", "faulted", "estopped", "interrupted"}
TS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,6})?Z$")
SR = re.compile(r"^SR-\d\d$")
CHECKLIST = (
    "patient_refusal",
    "haemostasis_disorder",
    "infection_at_site",
    "raynaud",
    "cryoglobulinaemia",
    "cold_urticaria",
    "site_is_face",
    "acknowledge_relative_contraindication",
)


# --- helpers -----------------------------------------------------------------------------------


class Run:
    """One finished `simulate` process: exit code, output, and its events file parsed."""

    def __init__(self, proc: subprocess.CompletedProcess[str], events_path: Path) -> None:
        self.returncode = proc.returncode
        self.stdout = proc.stdout
        self.stderr = proc.stderr
        self.events_path = events_path
        self.events = load_events(events_path) if events_path.exists() else []

    def named(self, name: str) -> list[Event]:
        return [e for e in self.events if e["event"] == name]

    def one(self, name: str) -> Event:
        found = self.named(name)
        assert len(found) == 1, (name, found)
        return found[0]

    def states(self) -> list[str]:
        return [e["to"] for e in self.named("state_changed")]

    def after(self, event: Event) -> list[Event]:
        return [e for e in self.events if e["seq"] > event["seq"]]


def load_events(path: Path) -> list[Event]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def make_env(base: Path) -> dict[str, str]:
    return {
        **os.environ,
        "PROBE_CONSOLE_DB": str(base / "sessions.sqlite3"),
        "PROBE_CONSOLE_SOCKET": str(base / "run" / "api.sock"),
    }


def simulate_cmd(events: Path | None, *args: str) -> list[str]:
    out = [*CONSOLE, "simulate", *args]
    return out if events is None else [*out, "--events", str(events)]


def simulate(tmp: Path, *args: str, name: str = "events.jsonl", timeout: float = 60) -> Run:
    events = tmp / name
    proc = subprocess.run(
        simulate_cmd(events, *args),
        capture_output=True,
        text=True,
        env=make_env(tmp),
        cwd=tmp,
        timeout=timeout,
        check=False,
    )
    assert "Traceback" not in proc.stderr, proc.stderr
    return Run(proc, events)


def check_envelope(events: list[Event]) -> None:
    """interfaces.md: every event has event, t_s, ts (UTC ISO 8601), seq; t_s never goes back."""
    assert events, "empty events file"
    start = _parse_ts(events[0]["ts"])
    for i, e in enumerate(events):
        assert {"event", "t_s", "ts", "seq"} <= e.keys(), e
        assert isinstance(e["event"], str) and e["event"], e
        assert isinstance(e["t_s"], int | float) and math.isfinite(e["t_s"]), e
        assert TS.match(e["ts"]), e
        assert e["seq"] == i + 1, (i, e)  # strictly increasing by 1, from 1
        # In virtual time `ts` is the start wall time plus `t_s` (to the millisecond).
        assert abs(_parse_ts(e["ts"]) - start - timedelta(seconds=e["t_s"])) <= timedelta(
            milliseconds=2
        ), e
    for a, b in itertools.pairwise(events):
        assert b["t_s"] >= a["t_s"], (a, b)
    assert events[0]["event"] == "session_started" and events[0]["t_s"] == 0
    assert events[-1]["event"] == "session_finished"
    assert [e["event"] for e in events].count("session_finished") == 1


def check_contract_fields(events: list[Event]) -> None:
    for e in events:
        wanted = CONTRACT_FIELDS.get(e["event"])
        if wanted is not None:
            assert wanted <= e.keys(), (sorted(wanted - e.keys()), e)


def _parse_ts(ts: str) -> datetime:
    return datetime.fromisoformat(ts.replace("Z", "+00:00"))


def check_ends_safe(run: Run, after: Event) -> None:
    """From `after` on: the safe state commanded, then reported; the device reports it last."""
    later = [e for e in run.events if e["seq"] >= after["seq"]]
    commanded = [e for e in later if e["event"] == "safe_state_commanded"]
    assert commanded, "no safe_state_commanded after " + after["event"]
    reported = [
        e for e in later if e["event"] == "safe_state_reported" and e["seq"] > commanded[0]["seq"]
    ]
    assert reported, "no safe_state_reported after the safe_state_commanded"
    last_valves = {e["valve"]: e["open"] for e in run.named("valve_reported")}
    assert last_valves == {"supply": False, "inlet": False, "vent": True}
    assert run.named("stim_reported")[-1]["on"] is False


def finished(run: Run) -> tuple[Event, Event]:
    """procedure_finished and session_finished, agreeing on outcome and reason."""
    proc = run.one("procedure_finished")
    sess = run.events[-1]
    assert sess["event"] == "session_finished"
    assert (proc["outcome"], proc["reason"]) == (sess["outcome"], sess["reason"])
    assert sess["outcome"] in OUTCOMES
    return proc, sess


# --- the full default procedure, once per gas ---------------------------------------------------


@pytest.fixture(scope="module")
def nominal(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Run]:
    """The default procedure (clinical, 3 x 180 s) for N2O and CO2, run side by side."""
    procs = {}
    for gas in ("N2O", "CO2"):
        tmp = tmp_path_factory.mktemp(f"nominal-{gas}")
        events = tmp / "events.jsonl"
        procs[gas] = (
            subprocess.Popen(
                simulate_cmd(events, "--gas", gas),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env=make_env(tmp),
                cwd=tmp,
            ),
            events,
        )
    runs = {}
    for gas, (proc, events) in procs.items():
        out, err = proc.communicate(timeout=120)
        runs[gas] = Run(subprocess.CompletedProcess(proc.args, proc.returncode, out, err), events)
    return runs


@pytest.mark.parametrize("gas", ["N2O", "CO2"])
def test_nominal_run_completes_with_every_required_event(nominal: dict[str, Run], gas: str) -> None:
    run = nominal[gas]
    assert run.returncode == 0, run.stderr
    assert run.stderr == ""
    events = run.events
    check_envelope(events)
    check_contract_fields(events)
    names = {e["event"] for e in events}
    missing = [n for n in NOMINAL_EVENTS if n not in names]
    assert not missing, missing
    assert not names & {"alarm_raised", "command_nacked", "link_lost", "fault_injected"}

    started = events[0]
    assert started["profile"] == "clinical" and started["gas"] == gas
    assert started["seed"] == 0 and started["faults"] == [] and started["simulated"] is True
    assert started["version"] == metadata.version("probe-console")
    assert re.fullmatch(r"[0-9a-f]{64}", started["config_sha256"])
    assert isinstance(started["session_id"], str) and started["session_id"]

    ident = run.one("device_identified")
    assert ident["device_kind"] == "simulator" and ident["gas"] == gas
    assert ident["protocol"] == 1 and isinstance(ident["firmware"], str)
    assert ident["probe_model"] == "CRYO-20G-90" and ident["probe_serial"] == "PRB-SIM-0001"
    assert ident["probe_uses"] == 0 and isinstance(ident["device_serial"], str)

    proc, sess = finished(run)
    assert (proc["outcome"], sess["outcome"]) == ("completed", "completed")
    assert run.one("procedure_started")["seq"] < proc["seq"]

    # Three cycles along the public path; each state change continues from the last one.
    changes = run.named("state_changed")
    for a, b in itertools.pairwise(changes):
        assert b["from"] == a["to"], (a, b)
    path = [s for s in run.states() if s not in ("connecting", "self_test", "ready")]
    path = [s for s in path if s != "withdraw_locked"]
    assert path == [
        "leak_test",
        "armed",
        "localize",
        "pressurize",
        "freeze_1",
        "thaw_1",
        "pressurize",
        "freeze_2",
        "thaw_2",
        "pressurize",
        "freeze_3",
        "thaw_3",
        "complete",
    ]
    # freeze_s (180) counted from the reported open; thaw_s (30) between cycles.
    at = {(e["from"], e["to"]): e["t_s"] for e in changes}
    for k in (1, 2, 3):
        assert 180 <= at[(f"freeze_{k}", f"thaw_{k}")] - at[("pressurize", f"freeze_{k}")] < 181
    for k in (1, 2):
        assert 30 <= at[(f"thaw_{k}", "pressurize")] - at[(f"freeze_{k}", f"thaw_{k}")] < 30.1

    checklist = run.one("checklist_recorded")
    assert set(CHECKLIST) <= checklist.keys()
    assert not any(checklist[k] for k in CHECKLIST[:7])

    leak = run.one("leak_test")
    assert leak["passed"] is True and leak["window_s"] > 0 and leak["decay_psi"] >= 0

    # The scripted operator: motor preset, 1.00 mA down in 0.10 mA steps, then bisection.
    localized = run.one("localized")
    assert localized["preset"] == "motor"
    on_currents = [e["current_ma"] for e in run.named("stim_commanded") if e["on"]]
    assert on_currents[0] == 1.0 and on_currents[1] == 0.9
    assert 0 < localized["threshold_ma"] <= 1.0
    assert round(localized["threshold_ma"] * 100, 6) == round(localized["threshold_ma"] * 100)
    assert on_currents[-1] == localized["threshold_ma"]

    for e in run.named("stim_commanded"):
        assert isinstance(e["on"], bool) and e["pulse_us"] > 0 and e["rate_hz"] > 0
    for e in run.named("valve_commanded") + run.named("valve_reported"):
        assert e["valve"] in ("supply", "inlet", "vent") and isinstance(e["open"], bool)
    assert {e["valve"] for e in run.named("valve_commanded")} == {"supply", "inlet", "vent"}
    # Reported on change only: a valve's reports alternate.
    for valve in ("supply", "inlet", "vent"):
        opens = [e["open"] for e in run.named("valve_reported") if e["valve"] == valve]
        assert all(a != b for a, b in itertools.pairwise(opens)), (valve, opens)
    stim = [e["on"] for e in run.named("stim_reported")]
    assert all(a != b for a, b in itertools.pairwise(stim)), stim
    assert any(stim)  # stimulation was reported on at least once

    for e in run.named("command_acked"):
        assert e["command"] != "heartbeat" and isinstance(e["command_seq"], int)
    commanded = run.named("safe_state_commanded")
    assert commanded and all("alarm" in e and e["reason"] for e in commanded)
    assert run.named("safe_state_reported")[-1]["seq"] > commanded[-1]["seq"]

    # SR-12: locked at the first supply open, released once, before the withdrawal.
    assert [e["safe"] for e in run.named("withdraw_safe")] == [False, True]
    actions = run.named("operator_action")
    assert all(e["accepted"] is True for e in actions), actions
    wanted_actions = ["arm", "stim_configure", "stim_start", "confirm_localization"]
    wanted_actions += ["start_freeze", "request_withdraw"]
    assert [a for a in wanted_actions if a not in {e["action"] for e in actions}] == []

    # link_health every 5 s.
    health = run.named("link_health")
    assert all(e["bad"] == 0 and e["lost"] == 0 and e["good"] > 0 for e in health)
    gaps = [b["t_s"] - a["t_s"] for a, b in itertools.pairwise(health)]
    assert gaps and all(4.9 <= g <= 5.1 for g in gaps), (min(gaps), max(gaps))
    assert abs(len(health) - events[-1]["t_s"] / 5) <= 2

    # Telemetry at 10 Hz or more, all the way through.
    tele = run.named("telemetry")
    spacing = [b["t_s"] - a["t_s"] for a, b in itertools.pairwise(tele)]
    assert max(spacing) <= 0.1 + 1e-6, max(spacing)
    device = [b["device_ms"] - a["device_ms"] for a, b in itertools.pairwise(tele)]
    assert max(device) <= 100 and min(device) > 0
    assert tele[0]["t_s"] < 0.2 and events[-1]["t_s"] - tele[-1]["t_s"] < 0.2
    for e in tele:
        assert all(isinstance(e[k], bool) for k in ("supply_open", "inlet_open", "vent_open"))
        assert isinstance(e["stim_on"], bool) and isinstance(e["tip_c"], int | float)
    assert min(e["tip_c"] for e in tele) < (-60 if gas == "N2O" else -50)  # freeze target


@pytest.mark.parametrize("gas", ["N2O", "CO2"])
def test_nominal_plain_lines_and_summary(nominal: dict[str, Run], gas: str) -> None:
    """Off a terminal: one plain line per state change, then the summary with the outcome."""
    run = nominal[gas]
    out = run.stdout
    assert "\x1b[" not in out  # no terminal control sequences in a pipe
    for e in run.named("state_changed"):
        assert f"state {e['from']} -> {e['to']}" in out, e
    assert "leak test passed" in out
    assert f"threshold {run.one('localized')['threshold_ma']:.2f} mA" in out
    summary = out[out.index("summary") :]
    assert re.search(r"outcome\s+completed \(completed\), exit 0", summary), summary
    for k in (1, 2, 3):
        assert f"cycle {k}" in summary
    assert re.search(r"alarms\s+none", summary)


# --- faults from the simulator's table (bench settings) ------------------------------------------


def test_exhaust_blocked_stops_the_freeze_in_time(tmp_path: Path) -> None:
    """SR-07: over 20 psig -> safe state, ALM_EXHAUST_OVERPRESSURE, supply closed in 100 ms."""
    run = simulate(tmp_path, *BENCH, "--fault", "exhaust_blocked@freeze1+5", "--quiet")
    assert run.returncode == 1, run.stderr
    check_envelope(run.events)
    check_contract_fields(run.events)
    fault = run.one("fault_injected")
    assert fault["fault"] == "exhaust_blocked" and fault["params"] == {
        "psi_per_s": 250.0,
        "duration_s": None,
    }
    alarm = next(e for e in run.named("alarm_raised") if e["alarm"] == "ALM_EXHAUST_OVERPRESSURE")
    assert alarm["priority"] == "high" and alarm["sr"] == ["SR-07"]
    assert all(SR.match(sr) for sr in alarm["sr"])
    assert alarm["value"] > alarm["limit"] == 20.0
    stop = next(
        e for e in run.named("safe_state_commanded") if e["alarm"] == "ALM_EXHAUST_OVERPRESSURE"
    )
    assert stop["seq"] <= alarm["seq"] + 1  # the stop in the same step as the alarm
    closed = next(
        e
        for e in run.after(stop)
        if e["event"] == "valve_reported" and e["valve"] == "supply" and not e["open"]
    )
    assert closed["device_ms"] - alarm["first_over_device_ms"] <= 100
    check_ends_safe(run, fault)
    proc, _ = finished(run)
    assert proc["outcome"] == "faulted"
    assert run.named("withdraw_safe")[-1]["safe"] is True  # unlocked by the measured thaw


def test_stim_lead_off_aborts_the_localization(tmp_path: Path) -> None:
    """SR-16: ALM_STIM_LEAD while localizing -> the scripted operator aborts; exit 1."""
    run = simulate(tmp_path, *BENCH, "--fault", "stim_lead_off@localize+2", "--quiet")
    assert run.returncode == 1, run.stderr
    check_envelope(run.events)
    check_contract_fields(run.events)
    assert run.one("fault_injected")["fault"] == "stim_lead_off"
    assert [e["alarm"] for e in run.named("alarm_raised")] == ["ALM_STIM_LEAD"]
    abort = next(e for e in run.named("operator_action") if e["action"] == "abort")
    assert abort["accepted"] is True
    assert not any(s.startswith("freeze_") or s == "pressurize" for s in run.states())
    assert "aborted" in run.states()
    assert not run.named("withdraw_safe")  # never locked
    check_ends_safe(run, abort)
    proc, _ = finished(run)
    assert proc["outcome"] == "aborted"


def test_thermistor_open_ends_after_the_timed_thaw(tmp_path: Path) -> None:
    """SR-10, SR-13: ALM_TEMP_SENSOR -> safe state; released only by the confirmed timed thaw."""
    run = simulate(tmp_path, *BENCH, "--fault", "thermistor_open@freeze1+5", "--quiet")
    assert run.returncode == 1, run.stderr
    check_envelope(run.events)
    check_contract_fields(run.events)
    assert run.one("fault_injected")["fault"] == "thermistor_open"
    alarm = next(e for e in run.named("alarm_raised") if e["alarm"] == "ALM_TEMP_SENSOR")
    assert alarm["sr"] == ["SR-10"] and alarm["priority"] == "high"
    assert any(e["alarm"] == "ALM_TEMP_SENSOR" for e in run.named("safe_state_commanded"))
    assert any(e["tip_c"] is None for e in run.named("telemetry"))  # a rail reads as null
    actions = {e["action"]: e for e in run.named("operator_action")}
    assert actions["declare_thermistor_suspect"]["accepted"] is True
    confirm = actions["confirm_timed_thaw"]
    assert confirm["accepted"] is True
    closed = next(
        e
        for e in run.after(alarm)
        if e["event"] == "valve_reported" and e["valve"] == "supply" and not e["open"]
    )
    released = run.named("withdraw_safe")[-1]
    assert released["safe"] is True
    assert released["t_s"] - closed["t_s"] >= 420 - 0.01  # timed_thaw_s after the close
    assert confirm["t_s"] - closed["t_s"] >= 420 - 0.01
    proc, _ = finished(run)
    assert (proc["outcome"], proc["reason"]) == ("faulted", "temp_sensor")


def test_supply_leak_fails_the_leak_test(tmp_path: Path) -> None:
    """SR-24: decay over the limit -> ALM_LEAK, back in ready, outcome faulted, exit 1."""
    run = simulate(tmp_path, *BENCH, "--fault", "supply_leak:psi_per_s=5", "--quiet")
    assert run.returncode == 1, run.stderr
    check_envelope(run.events)
    check_contract_fields(run.events)
    fault = run.one("fault_injected")
    assert fault["fault"] == "supply_leak" and fault["params"] == {
        "psi_per_s": 5.0,
        "duration_s": None,
    }
    leak = run.one("leak_test")
    assert leak["passed"] is False and leak["decay_psi"] > 1.5 * leak["window_s"]
    assert [e["alarm"] for e in run.named("alarm_raised")] == ["ALM_LEAK"]
    assert run.states()[-1] == "ready"
    assert "localize" not in run.states() and not run.named("localized")
    check_ends_safe(run, leak)
    proc, _ = finished(run)
    assert proc["outcome"] == "faulted"


def test_max_virtual_s_mid_freeze_exits_5_still_locked(tmp_path: Path) -> None:
    """`--max-virtual-s` reached: outcome aborted, reason max_virtual_s; locked -> exit 5."""
    run = simulate(tmp_path, *BENCH, "--max-virtual-s", "30", "--quiet")
    assert run.returncode == 5, run.stderr
    check_envelope(run.events)
    check_contract_fields(run.events)
    assert ("freeze_1", "aborted") in [(e["from"], e["to"]) for e in run.named("state_changed")]
    stop = next(e for e in run.named("safe_state_commanded") if e["reason"] == "max_virtual_s")
    assert 30 <= stop["t_s"] < 30.1
    check_ends_safe(run, stop)
    assert run.named("withdraw_safe")[-1]["safe"] is False  # the probe is still frozen in
    _, sess = finished(run)
    assert (sess["outcome"], sess["reason"]) == ("aborted", "max_virtual_s")
    assert run.events[-1]["t_s"] < 31


def test_a_stop_during_the_leak_test_ends_the_run_faulted(tmp_path: Path) -> None:
    """A stopping alarm before any supply open: procedure ends (faulted), never locked.

    interfaces.md: the scripted operator "withdraws when the lock releases"; the
    probe was never locked, so it withdraws at once and the run ends `faulted`
    with the alarm's reason, exit 1, not at `--max-virtual-s`.
    """
    run = simulate(
        tmp_path, *BENCH, "--fault", "pressure_sensor_fail@0", "--max-virtual-s", "120", "--quiet"
    )
    alarm = run.named("alarm_raised")[0]
    assert alarm["alarm"] == "ALM_PRESSURE_SENSOR"
    assert ("leak_test", "fault") in [(e["from"], e["to"]) for e in run.named("state_changed")]
    assert not run.named("withdraw_safe")  # never locked
    sess = run.events[-1]
    assert (sess["outcome"], sess["reason"]) == ("faulted", "pressure_sensor"), sess
    assert sess["t_s"] < 10
    assert run.returncode == 1


def test_a_refused_handshake_exits_3(tmp_path: Path) -> None:
    """interfaces.md, exit codes: 3 = device unavailable or handshake refused (SR-18).

    A single-use probe that reports a use is refused at identification, as
    `identify` against `device-sim --probe-uses 1` is (exit 3 there).
    """
    run = simulate(tmp_path, *BENCH, "--probe-uses", "1", "--quiet")
    ident = run.one("device_identified")
    assert ident["accepted"] is False and ident["refusals"] == ["probe_used"]
    assert not run.named("procedure_started")
    assert run.returncode == 3, (run.returncode, run.events[-1])


# --- bad parameters: exit 2, one clear line, nothing started -------------------------------------


def test_freeze_s_out_of_the_clinical_range_has_the_contract_message(tmp_path: Path) -> None:
    run = simulate(tmp_path, "--freeze-s", "300")
    assert run.returncode == 2
    assert "--freeze-s (procedure.freeze_s) = 300 out of range 120..240 s (clinical)" in run.stderr
    assert run.stderr.count("\n") == 1 and run.stdout == ""
    assert not run.events_path.exists()  # nothing started


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (["--cycles", "5"], "--cycles"),
        (["--gas", "XE"], "--gas"),
        (["--thaw-s", "nan"], "--thaw-s"),
        (["--fault", "nosuch"], "--fault"),
        (["--max-virtual-s", "0"], "--max-virtual-s"),
        (["--probe-uses", "-1"], "--probe-uses"),
    ],
    ids=lambda v: " ".join(v) if isinstance(v, list) else None,
)
def test_bad_parameters_exit_2_with_one_clear_line(
    tmp_path: Path, args: list[str], option: str
) -> None:
    run = simulate(tmp_path, *args)
    assert run.returncode == 2, run.stdout
    lines = run.stderr.splitlines()
    assert len(lines) == 1, run.stderr
    assert lines[0].startswith(f"probe-console simulate: {option}"), lines[0]
    value = args[1]
    assert value in lines[0], lines[0]
    assert run.stdout == "" and "Traceback" not in run.stderr
    assert not run.events_path.exists()  # nothing started


def test_fault_help_lists_every_fault_with_its_keys(tmp_path: Path) -> None:
    run = simulate(tmp_path, "--fault", "help")
    assert run.returncode == 0 and run.stderr == ""
    assert not run.events_path.exists()
    text = run.stdout
    faults = [
        "exhaust_blocked",
        "supply_leak",
        "cylinder_empty",
        "supply_overpressure",
        "valve_stuck_open",
        "valve_stuck_closed",
        "thermistor_open",
        "thermistor_short",
        "thermistor_drift",
        "thermistor_stuck",
        "thermistor_step",
        "pressure_sensor_fail",
        "orifice_clog",
        "liquid_carryover",
        "stim_stuck_on",
        "stim_lead_off",
        "firmware_reset",
        "device_silent",
        "link_drop",
        "link_garbage",
        "link_corrupt",
        "link_duplicate",
        "link_replay",
        "link_delay",
        "link_foreign_nonce",
    ]
    listed = {line.split()[0] for line in text.splitlines() if line.startswith("  ")}
    assert set(faults) <= listed, set(faults) - listed
    for key in ("psi_per_s=250", "psi_per_s=3", "psi=950", "valve=supply", "c_per_s=0.5", "c=25"):
        assert key in text, key
    for key in ("sensor=exhaust", "mode=rail_high", "fraction=0.9", "delay_ms=50", "ber=0.0001"):
        assert key in text, key


# --- determinism ---------------------------------------------------------------------------------


def _comparable(events: list[Event]) -> list[Event]:
    return [{k: v for k, v in e.items() if k not in ("ts", "session_id")} for e in events]


def test_the_same_seed_gives_the_same_events_and_another_seed_differs(tmp_path: Path) -> None:
    a = simulate(tmp_path, *BENCH, "--quiet", name="a.jsonl")
    b = simulate(tmp_path, *BENCH, "--quiet", name="b.jsonl")
    c = simulate(tmp_path, *BENCH, "--quiet", "--seed", "1", name="c.jsonl")
    assert a.returncode == b.returncode == c.returncode == 0
    assert a.events[0]["session_id"] != b.events[0]["session_id"]
    first, second = _comparable(a.events), _comparable(b.events)
    assert len(first) == len(second)
    for x, y in zip(first, second, strict=True):
        assert x == y
    other = _comparable(c.events)[1:]  # beyond session_started's own seed field
    assert other != first[1:]
    assert [e for e in other if e["event"] == "telemetry"] != [
        e for e in first if e["event"] == "telemetry"
    ]


# --- signals -------------------------------------------------------------------------------------


def _start(tmp: Path, *args: str) -> tuple[subprocess.Popen[str], Path]:
    events = tmp / "events.jsonl"
    proc = subprocess.Popen(
        simulate_cmd(events, *args),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=make_env(tmp),
        cwd=tmp,
    )
    return proc, events


def _wait_for_state(proc: subprocess.Popen[str], events: Path, state: str, limit_s: float) -> None:
    """Poll the events file (flushed every 0.5 s of wall time) for a state change to `state`."""
    marker = f'"to":"{state}"'
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        assert proc.poll() is None, "simulate ended before reaching " + state
        if events.exists() and any(
            '"state_changed"' in line and marker in line
            for line in events.read_text(encoding="utf-8").splitlines()
        ):
            return
        time.sleep(0.05)
    proc.kill()
    proc.communicate()
    pytest.fail(f"no state_changed to {state} within {limit_s} s")


def _stop_with(proc: subprocess.Popen[str], events: Path, signum: int) -> Run:
    proc.send_signal(signum)
    sent = time.monotonic()
    try:
        out, err = proc.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise
    assert time.monotonic() - sent < 5, "the first signal must end the run at once"
    assert "Traceback" not in err, err
    return Run(subprocess.CompletedProcess(proc.args, proc.returncode, out, err), events)


def test_sigterm_mid_freeze_ends_safe_and_locked_exit_5(tmp_path: Path) -> None:
    proc, events = _start(
        tmp_path, "--profile", "bench", "--cycles", "1", "--freeze-s", "60", "--thaw-s", "10",
        "--speed", "20", "--quiet",
    )  # fmt: skip
    _wait_for_state(proc, events, "freeze_1", 20)
    run = _stop_with(proc, events, signal.SIGTERM)
    assert run.returncode == 5, (run.stderr, run.events[-3:])
    check_envelope(run.events)
    check_contract_fields(run.events)
    assert ("freeze_1", "aborted") in [(e["from"], e["to"]) for e in run.named("state_changed")]
    stop = next(e for e in run.named("safe_state_commanded") if e["reason"] == "signal:SIGTERM")
    check_ends_safe(run, stop)
    assert run.named("withdraw_safe")[-1]["safe"] is False
    proc_end, sess = finished(run)
    assert (sess["outcome"], sess["reason"]) == ("aborted", "signal:SIGTERM")
    assert proc_end["seq"] > stop["seq"]


def test_sigint_before_any_freeze_ends_safe_exit_1(tmp_path: Path) -> None:
    proc, events = _start(
        tmp_path, "--profile", "bench", "--cycles", "1", "--freeze-s", "60", "--thaw-s", "10",
        "--speed", "5", "--quiet",
    )  # fmt: skip
    _wait_for_state(proc, events, "localize", 20)
    run = _stop_with(proc, events, signal.SIGINT)
    assert run.returncode == 1, (run.stderr, run.events[-3:])
    check_envelope(run.events)
    check_contract_fields(run.events)
    assert not any(s.startswith("freeze_") or s == "pressurize" for s in run.states())
    assert ("localize", "aborted") in [(e["from"], e["to"]) for e in run.named("state_changed")]
    stop = next(e for e in run.named("safe_state_commanded") if e["reason"] == "signal:SIGINT")
    check_ends_safe(run, stop)
    assert not run.named("withdraw_safe")  # never locked
    _, sess = finished(run)
    assert (sess["outcome"], sess["reason"]) == ("aborted", "signal:SIGINT")


# --- output for people ---------------------------------------------------------------------------


def test_quiet_prints_nothing_on_stdout(tmp_path: Path) -> None:
    db = tmp_path / "given.sqlite3"
    run = simulate(tmp_path, *BENCH, "--quiet", "--db", str(db))
    assert run.returncode == 0, run.stderr
    assert run.stdout == "" and run.stderr == ""
    assert run.events[-1]["outcome"] == "completed"
    assert db.exists()  # --db: the store is created


def test_a_closed_stdout_does_not_end_the_procedure(tmp_path: Path) -> None:
    """The view is for people: a reader that goes away (`simulate | head -1`) changes nothing.

    The procedure, its exit code and the events file are the same as with a reader.
    """
    proc, events = _start(tmp_path, *BENCH)
    assert proc.stdout is not None
    proc.stdout.close()  # the reader is gone before the first line
    try:
        err = proc.stderr.read() if proc.stderr is not None else ""
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert "Traceback" not in err, err
    run_events = load_events(events)
    assert run_events and run_events[-1]["event"] == "session_finished", (
        proc.returncode,
        len(run_events),
    )
    assert run_events[-1]["outcome"] == "completed"
    assert proc.returncode == 0

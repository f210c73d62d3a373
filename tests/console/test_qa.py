"""`probe-console qa run|list`: the scenario language, the runner, JUnit and hardware in the loop.

The contract (interfaces.md, issue 10): a scenario file is refused with its
path, the field and the reason (exit 2); the runner judges every expectation
and reports the measured value, pass or fail (exit 1 when one fails); JUnit
XML parses and counts right; with `--port` a scenario that needs the simulator
is SKIPPED, never passed (SR-30 for the strict files; the scenarios' own SRs
are named in them).

The scenarios here are small on purpose (faults that end the run in a few
seconds of virtual time); the library in tests/scenarios/ runs the long ones.
"""

from __future__ import annotations

import sqlite3
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from console.cli import main
from console.qa import Applied, Recording, evaluate, run_virtual
from console.scenario import ScenarioError, load_scenario, load_scenarios
from drivers.snapshot import Snapshot
from tests.console.procs import Sim, run

#: Ends in about 12 s of virtual time: the lead comes off, stimulation stops, the operator aborts.
LEAD_OFF = """
name = "lead_off"
description = "SR-16 in brief"
sr = ["SR-16"]
requires = "simulator"
profile = "bench"

[procedure]
cycles = 1
freeze_s = 20
thaw_s = 10

[[fault]]
spec = "stim_lead_off@localize+2"

[[expect]]
kind = "alarm"
alarm = "ALM_STIM_LEAD"
priority = "low"
limit = 20000

[[expect]]
kind = "event"
event = "stim_reported"
where = { on = false }
after = { alarm = "ALM_STIM_LEAD" }
within_ms = 100

[[expect]]
kind = "no_event"
event = "valve_reported"
where = { valve = "supply", open = true }

[[expect]]
kind = "outcome"
outcome = "aborted"
reason = "operator_abort"
exit_code = 1
locked = false
"""

#: The same run, expected wrongly on purpose: the alarm is low, not high; its limit is 20 kOhm.
LEAD_OFF_WRONG = LEAD_OFF.replace('name = "lead_off"', 'name = "lead_off_wrong"').replace(
    'priority = "low"\nlimit = 20000', 'priority = "high"\nlimit = { max = 10000 }'
)

#: On any device: the scenario arms (the leak test runs), aborts before any gas, withdraws.
ARM_ABORT = """
name = "arm_then_abort"
description = "arm, leak test, abort before any gas"
sr = ["SR-19", "SR-24"]
profile = "bench"
max_s = 30

[procedure]
leak_window_s = 2

[operator]
scripted = false

[[action]]
action = "arm"
on_state = "ready"
expect = "accepted"

[action.params.checklist]
patient_refusal = false
haemostasis_disorder = false
infection_at_site = false
raynaud = false
cryoglobulinaemia = false
cold_urticaria = false
site_is_face = false

[[action]]
action = "abort"
on_state = "armed"
expect = "accepted"

[[action]]
action = "request_withdraw"
on_state = "aborted"
expect = "accepted"

[[expect]]
kind = "event"
event = "leak_test"
where = { passed = true }
count = 1

[[expect]]
kind = "no_event"
event = "valve_commanded"
where = { valve = "supply", open = true }

[[expect]]
kind = "outcome"
outcome = "aborted"
reason = "operator_abort"
exit_code = 1
locked = false
"""


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def qa(*args: str | Path) -> int:
    return main(["qa", *(str(a) for a in args)])


# --- the runner -------------------------------------------------------------------------------


def test_a_passing_scenario_reports_every_expectation_with_its_measured_value(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, "lead_off.toml", LEAD_OFF)
    result = run_virtual(load_scenario(path))
    assert result.status == "pass", result.checks
    assert [c.status for c in result.checks] == ["pass"] * 4
    alarm = result.checks[0]
    assert "priority low" in alarm.measured and "limit 20000" in alarm.measured
    stim = result.checks[1]
    assert "ms after it (device time)" in stim.measured
    assert (result.outcome, result.outcome_reason, result.exit_code) == (
        "aborted",
        "operator_abort",
        1,
    )
    assert qa("run", path) == 0
    out = capsys.readouterr().out
    assert "PASS  lead_off  [SR-16]" in out
    assert "measured at " in out and "priority low" in out
    assert "1 scenario(s): 1 passed, 0 failed" in out


def test_a_failing_expectation_is_reported_with_the_measured_value(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, "wrong.toml", LEAD_OFF_WRONG)
    result = run_virtual(load_scenario(path))
    assert result.status == "fail"
    (bad,) = result.failed
    assert bad.name == "ALM_STIM_LEAD raised"
    assert "priority low" in bad.measured and "limit 20000" in bad.measured
    assert "priority high" in bad.expected and "limit <= 10000" in bad.expected
    assert qa("run", path) == 1
    out = capsys.readouterr().out
    assert "FAIL  lead_off_wrong" in out
    line = next(ln for ln in out.splitlines() if ln.strip().startswith("fail"))
    assert "ALM_STIM_LEAD raised" in line and "measured at" in line and "priority low" in line
    assert "expected raised; priority high" in line


def test_a_reference_that_never_happens_fails_rather_than_passes(tmp_path: Path) -> None:
    """An expectation that was not exercised proves nothing: `no_event` after a freeze that
    never came, and a safe state after an alarm never raised, both fail."""
    text = LEAD_OFF.replace(
        '[[expect]]\nkind = "outcome"',
        '[[expect]]\nkind = "no_event"\nevent = "alarm_raised"\nafter = { phase = "freeze1" }\n\n'
        '[[expect]]\nkind = "safe_state"\nafter = { alarm = "ALM_EXHAUST_OVERPRESSURE" }\n'
        'within_ms = 100\n\n[[expect]]\nkind = "outcome"',
    )
    result = run_virtual(load_scenario(write(tmp_path, "never.toml", text)))
    failed = {c.name: c for c in result.failed}
    assert set(failed) == {
        "no event alarm_raised",
        "safe state within 100 ms of ALM_EXHAUST_OVERPRESSURE raised",
    }
    assert all(c.measured.startswith("cannot judge:") for c in failed.values())


def test_actions_at_phases_wrong_ones_included_and_their_answers(tmp_path: Path) -> None:
    """SR-12: a withdraw requested during the freeze is refused with ALM_PROBE_FROZEN; an action
    whose moment never comes fails its line."""
    text = """
sr = ["SR-12"]
requires = "simulator"
profile = "bench"
[procedure]
cycles = 1
freeze_s = 20
thaw_s = 10
[[fault]]
spec = "exhaust_blocked@freeze1+3"
[[action]]
action = "request_withdraw"
at = "freeze1+1"
expect = "refused"
reason_contains = "frozen"
[[action]]
action = "stim_start"
at = "freeze2+1"
expect = "refused"
[[expect]]
kind = "alarm"
alarm = "ALM_PROBE_FROZEN"
priority = "medium"
after = { action = "request_withdraw" }
within_ms = 1
"""
    result = run_virtual(load_scenario(write(tmp_path, "withdraw.toml", text)))
    by_name = {c.name: c for c in result.checks}
    withdraw = by_name["action request_withdraw @freeze1+1 refused"]
    assert withdraw.status == "pass" and "ALM_PROBE_FROZEN" in withdraw.measured
    never = by_name["action stim_start @freeze2+1 refused"]
    assert never.status == "fail" and "never given" in never.measured
    assert by_name["ALM_PROBE_FROZEN raised"].status == "pass"


def test_max_s_ends_the_run_and_no_action_is_given_after_it(tmp_path: Path) -> None:
    """`max_s` reached: outcome aborted, reason max_virtual_s (as simulate's --max-virtual-s);
    an action timed after it is never given, and says so."""
    text = """
sr = ["SR-17"]
profile = "bench"
max_s = 5
[[action]]
action = "estop"
at_s = 10
[[expect]]
kind = "outcome"
outcome = "aborted"
reason = "max_virtual_s"
exit_code = 1
"""
    result = run_virtual(load_scenario(write(tmp_path, "short.toml", text)))
    action, outcome = result.checks
    assert (action.status, action.measured) == ("fail", "never given: its moment never came")
    assert outcome.status == "pass"
    assert result.device_s == pytest.approx(5.0, abs=1.1)


def test_sr07_bound_measured_in_device_time_and_a_too_tight_bound_fails(tmp_path: Path) -> None:
    """SR-07: the supply reported closed within 100 ms of device time of the first sample over
    20 psig; the same measurement against an impossible 5 ms bound fails with its value."""
    text = """
sr = ["SR-07"]
requires = "simulator"
profile = "bench"
[procedure]
cycles = 1
freeze_s = 20
thaw_s = 10
[[fault]]
spec = "exhaust_blocked@freeze1+3"
[[expect]]
kind = "safe_state"
state = "supply_closed"
after = { sample = "exhaust_psi", above = 20.0 }
within_ms = 100
[[expect]]
name = "too tight on purpose"
kind = "safe_state"
state = "supply_closed"
after = { sample = "exhaust_psi", above = 20.0 }
within_ms = 5
"""
    result = run_virtual(load_scenario(write(tmp_path, "sr07.toml", text)))
    ok, tight = result.checks
    assert ok.status == "pass" and "(device time" in ok.measured
    measured_ms = float(ok.measured.split(" ms")[0])
    assert 5 < measured_ms <= 100
    assert tight.status == "fail" and tight.measured == ok.measured


def _snap(t: float, tip: float, supply_open: bool) -> Snapshot:
    return Snapshot(
        t,
        round(t * 1000),
        tip,
        0,
        700.0,
        0,
        12.0 if supply_open else 0.0,
        0,
        supply_open,
        supply_open,
        not supply_open,
        False,
        0.0,
        3000.0,
        0,
        0,
    )


def test_withdraw_lock_catches_a_release_before_the_measured_thaw(tmp_path: Path) -> None:
    """SR-12 judged by the runner itself, on a made-up recording: a release while the tip is
    still cold, and too soon after the supply closed, fails with what was measured."""
    path = write(
        tmp_path,
        "lock.toml",
        'sr = ["SR-12"]\n[[expect]]\nkind = "withdraw_lock"\ntip_at_least_c = 2.0\n'
        "after_supply_closed_s = 30\n",
    )
    sf = load_scenario(path)
    samples = [_snap(i / 10, 30.0 if i < 10 else -40.0, 10 <= i < 50) for i in range(100)]
    events = [
        {"event": "procedure_started", "t_s": 0.5, "seq": 1},
        {"event": "withdraw_safe", "t_s": 1.0, "seq": 2, "safe": False},
        {"event": "withdraw_safe", "t_s": 9.0, "seq": 3, "safe": True},
    ]
    recording = Recording(events, samples, 0.0, "completed", "completed", 0, False, 10.0, {}, -60.0)
    (check,) = evaluate(sf, recording)
    assert check.status == "fail"
    assert "released at 9 s, 4 s after the supply closed (at 5 s)" in check.measured
    assert "tip never read >= 2 C" in check.measured
    recording.events.pop()  # never released: nothing was released early
    (check,) = evaluate(sf, recording)
    assert check.status == "pass" and "never released" in check.measured


def test_action_results_come_from_the_recording(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "a.toml",
        'sr = ["SR-19"]\n[[action]]\naction = "estop"\nat_s = 1\nexpect = "refused"\n'
        '[[expect]]\nkind = "no_alarms"\n',
    )
    sf = load_scenario(path)
    recording = Recording(
        [], [], 0.0, "aborted", "x", 1, False, 1.0, {0: Applied(1.0, True, "")}, -60.0
    )
    action, alarms = evaluate(sf, recording)
    assert (action.status, action.measured) == ("fail", "accepted at 1 s")
    assert alarms.status == "pass"


def test_db_records_each_scenario_run_as_a_session(tmp_path: Path) -> None:
    path = write(tmp_path, "lead_off.toml", LEAD_OFF)
    db = tmp_path / "qa.sqlite3"
    assert qa("run", path, "--db", db) == 0
    rows = (
        sqlite3.connect(db).execute("SELECT command, outcome, exit_code FROM sessions").fetchall()
    )
    assert rows == [("qa", "aborted", 1)]
    assert main(["sessions", "verify", "--db", str(db), _only_session(db)]) == 0


def _only_session(db: Path) -> str:
    (sid,) = sqlite3.connect(db).execute("SELECT session_id FROM sessions").fetchone()
    return str(sid)


# --- validation (SR-30): file, field, reason, exit 2 -------------------------------------------

BAD_CASES = [
    ('sr = ["SR-16"]\ncolour = 1\n[[expect]]\nkind = "no_alarms"\n', "colour: unknown key"),
    (
        'sr = ["SR-16"]\nseed = "3"\n[[expect]]\nkind = "no_alarms"\n',
        'seed = "3": expected an integer, got a string',
    ),
    (
        'sr = ["SR-16"]\nmax_s = nan\n[[expect]]\nkind = "no_alarms"\n',
        "max_s = nan: not a finite number",
    ),
    (
        'sr = ["SR-16"]\nmax_s = inf\n[[expect]]\nkind = "no_alarms"\n',
        "max_s = inf: not a finite number",
    ),
    (
        'sr = ["SR-7"]\n[[expect]]\nkind = "no_alarms"\n',
        'sr[1] = "SR-7": expected a requirement id',
    ),
    ('[[expect]]\nkind = "no_alarms"\n', "sr: required key missing"),
    ('sr = ["SR-16"]\n', "expect: required key missing"),
    (
        'sr = ["SR-07"]\n[[expect]]\nkind = "alarm"\nalarm = "ALM_EXHAUST_OVERPRESURE"\n',
        'expect[1].alarm = "ALM_EXHAUST_OVERPRESURE": unknown alarm '
        "(did you mean ALM_EXHAUST_OVERPRESSURE?)",
    ),
    (
        'sr = ["SR-07"]\n[[expect]]\nkind = "no_alarms"\n[[expect]]\nkind = "alarm"\n'
        'alarm = "ALM_EXHAUST_HIGH"\npriority = "urgent"\n',
        'expect[2].priority = "urgent": expected "high", "medium" or "low"',
    ),
    (
        'sr = ["SR-07"]\n[[expect]]\nkind = "alarm"\nalarm = "ALM_EXHAUST_HIGH"\nwithin = 3\n',
        "expect[1].within: unknown key (did you mean within_ms?)",
    ),
    (
        'sr = ["SR-07"]\n[[expect]]\nkind = "nope"\n',
        'expect[1]: kind = "nope" is not an expectation',
    ),
    (
        'sr = ["SR-07"]\n[[expect]]\nkind = "no_event"\nevent = "stim_reportd"\n',
        'expect[1].event = "stim_reportd": unknown event (did you mean stim_reported?)',
    ),
    (
        'sr = ["SR-07"]\n[[expect]]\nkind = "measure"\nquantity = "min_tip_c"\nmin = inf\n',
        "expect[1].min = inf: not a finite number",
    ),
    (
        'sr = ["SR-07"]\n[[expect]]\nkind = "safe_state"\nwithin_ms = 100\n'
        'after = { sample = "exhaust_psi", above = 20, alarm = "ALM_EXHAUST_HIGH" }\n',
        "expect[1].after: give exactly one of event, alarm, fault, state, action, phase, "
        "sample, at_s",
    ),
    (
        'sr = ["SR-07"]\nrequires = "simulator"\n[[fault]]\nspec = "exhaust_blockd@freeze1+5"\n'
        '[[expect]]\nkind = "no_alarms"\n',
        "fault[1].spec = \"exhaust_blockd@freeze1+5\": unknown fault 'exhaust_blockd'",
    ),
    (
        'sr = ["SR-07"]\n[[fault]]\nspec = "exhaust_blocked"\n[[expect]]\nkind = "no_alarms"\n',
        'a scenario that injects faults says requires = "simulator"',
    ),
    (
        'sr = ["SR-12"]\n[[action]]\naction = "request_withdraw"\nat = "frez1+3"\n'
        '[[expect]]\nkind = "no_alarms"\n',
        'action[1].at = "frez1+3": expected a phase like the fault WHEN syntax',
    ),
    (
        'sr = ["SR-19"]\n[[action]]\naction = "arm"\non_state = "ready"\n'
        '[[expect]]\nkind = "no_alarms"\n',
        "action[1]: params are not valid for arm",
    ),
    (
        'sr = ["SR-19"]\n[[action]]\naction = "arm"\nparams = { checklist = 1.5 }\nat_s = nan\n'
        'expect = "refused"\n[[expect]]\nkind = "no_alarms"\n',
        "action[1].at_s = nan: not a finite number",
    ),
    (
        'sr = ["SR-17"]\n[procedure]\nfreeze_s = 300\n[[expect]]\nkind = "no_alarms"\n',
        "procedure.freeze_s = 300 out of range 120..240 s (clinical)",
    ),
    (
        'sr = ["SR-17"]\n[procedure]\ncycles = 2.0\n[[expect]]\nkind = "no_alarms"\n',
        "procedure.cycles = 2.0: expected an integer, got a number",
    ),
    (
        'sr = ["SR-07"]\n[config.interlocks]\nexhaust_over_hold_s = 0.5\n'
        '[[expect]]\nkind = "no_alarms"\n',
        "config.interlocks.exhaust_over_hold_s = 0.5 out of range 0..0.02 s "
        "(may only be tightened)",
    ),
    ('sr = ["SR-07"\n', "not valid TOML"),
]


@pytest.mark.parametrize(("text", "message"), BAD_CASES)
def test_a_bad_scenario_is_refused_with_file_field_and_reason(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, message: str
) -> None:
    path = write(tmp_path, "bad.toml", text)
    with pytest.raises(ScenarioError) as caught:
        load_scenario(path)
    assert any(m.startswith(f"{path}: ") and message in m for m in caught.value.messages), (
        caught.value.messages
    )
    assert qa("run", path) == 2
    err = capsys.readouterr().err
    assert f"probe-console qa run: {path}: " in err and message in err
    assert "Traceback" not in err


def test_every_bad_file_is_reported_and_nothing_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write(tmp_path, "good.toml", LEAD_OFF)
    write(tmp_path, "bad1.toml", 'sr = ["SR-07"]\ncolour = 1\n[[expect]]\nkind = "no_alarms"\n')
    write(tmp_path, "bad2.toml", 'sr = ["SR-07"]\nseed = -1\n[[expect]]\nkind = "no_alarms"\n')
    assert qa("run", tmp_path) == 2
    captured = capsys.readouterr()
    assert "bad1.toml: colour: unknown key" in captured.err
    assert "bad2.toml: seed = -1:" in captured.err
    assert "PASS" not in captured.out  # nothing ran


def test_paths_and_names(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    assert qa("run", tmp_path / "missing.toml") == 2
    assert "no such file or folder" in capsys.readouterr().err
    assert qa("run", empty) == 2
    assert "no scenario files (*.toml) in this folder" in capsys.readouterr().err
    write(tmp_path, "a.toml", LEAD_OFF)
    write(tmp_path / "empty", "b.toml", LEAD_OFF)
    with pytest.raises(ScenarioError, match='"lead_off" is also the name of'):
        load_scenarios([tmp_path])
    assert qa("run", tmp_path / "a.toml", "--junit", tmp_path / "no" / "x.xml") == 2
    assert "--junit" in capsys.readouterr().err


# --- JUnit ---------------------------------------------------------------------------------------


def test_junit_parses_and_counts_right(tmp_path: Path) -> None:
    folder = tmp_path / "scenarios"
    folder.mkdir()
    write(folder, "a_pass.toml", LEAD_OFF)
    write(folder, "b_fail.toml", LEAD_OFF_WRONG)
    junit = tmp_path / "out" / "junit.xml"
    junit.parent.mkdir()
    assert qa("run", folder, "--junit", junit) == 1
    root = ET.parse(junit).getroot()
    (suite,) = root.iter("testsuite")
    assert (
        suite.get("tests"),
        suite.get("failures"),
        suite.get("errors"),
        suite.get("skipped"),
    ) == (
        "2",
        "1",
        "0",
        "0",
    )
    cases = {c.get("name"): c for c in suite.iter("testcase")}
    assert set(cases) == {"lead_off", "lead_off_wrong"}
    assert cases["lead_off"].find("failure") is None
    failure = cases["lead_off_wrong"].find("failure")
    assert failure is not None
    assert "1 of 4 expectations failed" in (failure.get("message") or "")
    assert "ALM_STIM_LEAD raised: measured at" in (failure.get("message") or "")
    assert "priority low" in (failure.text or "")
    sr = cases["lead_off"].find("properties/property[@name='sr']")
    assert sr is not None and sr.get("value") == "SR-16"


# --- qa list -----------------------------------------------------------------------------------


def test_list_shows_scenarios_their_srs_and_requires(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write(tmp_path, "lead_off.toml", LEAD_OFF)
    write(tmp_path, "arm.toml", ARM_ABORT)
    assert qa("list", tmp_path) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["SCENARIO", "REQUIRES", "SR"]
    assert out[1].split() == ["arm_then_abort", "any", "SR-19,", "SR-24"]
    assert out[2] == f"    {tmp_path / 'arm.toml'}"
    lead = out.index(next(ln for ln in out if ln.startswith("lead_off")))
    assert out[lead].split() == ["lead_off", "simulator", "SR-16"]
    assert out[lead + 2] == "    SR-16 in brief"
    assert out[-1] == "2 scenario(s)"
    write(tmp_path, "bad.toml", 'sr = ["SR-01"]\n')
    assert qa("list", tmp_path) == 2


# --- hardware in the loop ----------------------------------------------------------------------


def test_port_runs_what_it_can_and_skips_simulator_scenarios(
    sim: Sim, env: dict[str, str], tmp_path: Path
) -> None:
    """`--port` against device-sim in real time: the scenario that needs the simulator is
    SKIPPED (never passed), the other one runs on the device; JUnit counts both."""
    folder = tmp_path / "scenarios"
    folder.mkdir()
    write(folder, "a_arm_abort.toml", ARM_ABORT)
    write(folder, "b_lead_off.toml", LEAD_OFF)
    junit = tmp_path / "junit.xml"
    done = run(
        ["qa", "run", str(folder), "--port", sim.url, "--junit", str(junit)], env, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"2 scenario(s) on {sim.url} in real time" in done.stdout
    assert "PASS  arm_then_abort" in done.stdout
    assert 'SKIP  lead_off  [SR-16]  requires = "simulator"' in done.stdout
    assert "1 passed, 0 failed, 1 skipped" in done.stdout
    (suite,) = ET.parse(junit).getroot().iter("testsuite")
    assert (suite.get("tests"), suite.get("failures"), suite.get("skipped")) == ("2", "0", "1")
    cases = {c.get("name"): c for c in suite.iter("testcase")}
    assert cases["lead_off"].find("skipped") is not None
    assert cases["arm_then_abort"].find("skipped") is None
    mode = cases["arm_then_abort"].find("properties/property[@name='mode']")
    assert mode is not None and mode.get("value") == "port"
    valves = sim.status()["valves"]
    assert isinstance(valves, dict) and valves["supply"]["open"] is False  # left safe
    db = Path(env["PROBE_CONSOLE_DB"])
    rows = sqlite3.connect(db).execute("SELECT command, port, outcome FROM sessions").fetchall()
    assert rows == [("qa", str(Path(sim.url).resolve()), "aborted")]


def test_port_unavailable_exits_3(env: dict[str, str], tmp_path: Path) -> None:
    """Nothing listens on the port: exit 3; the scenario is an error, the rest are not run."""
    folder = tmp_path / "scenarios"
    folder.mkdir()
    write(folder, "a.toml", ARM_ABORT)
    write(folder, "b.toml", ARM_ABORT.replace('name = "arm_then_abort"', 'name = "again"'))
    junit = tmp_path / "junit.xml"
    done = run(
        ["qa", "run", str(folder), "--port", "socket://127.0.0.1:1", "--junit", str(junit)],
        env,
        timeout=30,
    )
    assert done.returncode == 3, done.stdout + done.stderr
    assert "device unavailable" in done.stderr
    assert "SKIP  again  [SR-19, SR-24]  not run: the device is unavailable" in done.stdout
    (suite,) = ET.parse(junit).getroot().iter("testsuite")
    assert (suite.get("tests"), suite.get("errors"), suite.get("skipped")) == ("2", "1", "1")

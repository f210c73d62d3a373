"""The procedure machine in virtual time: nominal paths, actions, stops, the lock."""

from __future__ import annotations

import functools
from typing import Any

import pytest

from console.actions import clear_checklist
from console.config import load_config
from console.procedure import ENDS, FREEZES, THAWS
from console.simulation import SimulationResult, run_simulation
from protocols import EmergencyStop, StreamDecoder
from simulator.device import SimConfig
from tests.console.rig import Rig

SAFE = (False, False, True)
PRESSURISED = (False, True, False)
FREEZING = (True, True, False)


@functools.cache
def nominal(gas: str, cycles: int, freeze_s: float, seed: int = 0) -> SimulationResult:
    config = load_config(
        None, {"gas": gas, "procedure.cycles": cycles, "procedure.freeze_s": freeze_s}
    )
    return run_simulation(config, SimConfig(seed=seed, gas=gas))


def expected_states(cycles: int) -> list[str]:
    path = ["connecting", "self_test", "ready", "leak_test", "armed", "localize"]
    for k in range(1, cycles + 1):
        path += ["pressurize", f"freeze_{k}", f"thaw_{k}"]
    return [*path, "withdraw_locked", "complete", "ready"]


def valves_of(state: str, cycles: int) -> tuple[bool, bool, bool] | None:
    """The valve table of interfaces.md (None: leak_test, whose positions change inside it)."""
    if state == "leak_test":
        return None
    if state == "pressurize":
        return PRESSURISED
    if state in FREEZES:
        return FREEZING
    if state in THAWS:
        return SAFE if state == f"thaw_{cycles}" else PRESSURISED
    return SAFE


def intervals(events: list[dict[str, Any]]) -> list[tuple[str, float, float]]:
    changes = [e for e in events if e["event"] == "state_changed"]
    out = []
    for a, b in zip(changes, [*changes[1:], None], strict=True):
        out.append((a["to"], a["t_s"], b["t_s"] if b else float("inf")))
    return out


NOMINAL = [
    ("N2O", 3, 180.0),
    ("CO2", 3, 180.0),
    ("N2O", 2, 120.0),
    ("CO2", 2, 240.0),
    ("N2O", 3, 240.0),
]


@pytest.mark.parametrize(("gas", "cycles", "freeze_s"), NOMINAL)
def test_nominal_procedure_follows_the_table_and_raises_nothing(
    gas: str, cycles: int, freeze_s: float
) -> None:
    """SR-12, SR-17, SR-24: the state path and valve table of interfaces.md, no alarm."""
    r = nominal(gas, cycles, freeze_s)
    assert (r.outcome, r.exit_code, r.locked) == ("completed", 0, False)
    states = [e["to"] for e in r.events if e["event"] == "state_changed"]
    assert ["connecting", *states] == expected_states(cycles)
    assert [e for e in r.events if e["event"] == "alarm_raised"] == []
    telemetry = [e for e in r.events if e["event"] == "telemetry"]
    for state, start, end in intervals(r.events):
        want = valves_of(state, cycles)
        if want is None:
            continue
        seen = {
            (t["supply_open"], t["inlet_open"], t["vent_open"])
            for t in telemetry
            if start + 0.1 <= t["t_s"] < end
        }
        assert seen <= {want}, (state, seen)
    freezes = [(s, a, b) for s, a, b in intervals(r.events) if s in FREEZES]
    for _, start, end in freezes:
        assert end - start == pytest.approx(
            freeze_s + 0.03, abs=0.05
        )  # counted from the reported open
    assert [e["passed"] for e in r.events if e["event"] == "leak_test"] == [True]


@pytest.mark.parametrize(("gas", "cycles", "freeze_s"), NOMINAL[:3])
def test_the_lock_is_released_only_by_a_measured_thaw(
    gas: str, cycles: int, freeze_s: float
) -> None:
    """SR-12: withdraw_safe false from the first reported supply open until thaw_s has passed,
    the tip read >= +2 C for 1 s, and release_factor x the tip's time to +2 C has passed."""
    r = nominal(gas, cycles, freeze_s)
    flips = [e for e in r.events if e["event"] == "withdraw_safe"]
    assert [f["safe"] for f in flips] == [False, True]
    first_open = next(
        e
        for e in r.events
        if e["event"] == "valve_reported" and e["valve"] == "supply" and e["open"]
    )
    assert flips[0]["t_s"] == pytest.approx(first_open["t_s"], abs=0.011)
    final_close = [
        e
        for e in r.events
        if e["event"] == "valve_reported" and e["valve"] == "supply" and not e["open"]
    ][-1]["t_s"]
    released = flips[1]["t_s"]
    telemetry = [e for e in r.events if e["event"] == "telemetry" and e["t_s"] > final_close]
    first_warm = next(t["t_s"] for t in telemetry if t["tip_c"] >= 2.0)
    assert all(t["tip_c"] >= 2.0 for t in telemetry if released - 1.0 <= t["t_s"] <= released)
    # The 10 Hz telemetry events see the first +2 C reading up to two event periods after
    # the console's own 100 Hz samples did (decimation, sensor noise around +2 C); the
    # factor multiplies that lag.
    assert released - final_close >= 2.5 * (first_warm - 0.2 - final_close)
    assert released - final_close >= 30.0
    # Nothing released it early: between the first open and the release it stayed locked.
    assert all(not f["safe"] for f in flips if first_open["t_s"] <= f["t_s"] < released)


def test_same_seed_same_events() -> None:
    config = load_config(
        None, {"procedure.profile": "bench", "procedure.freeze_s": 20.0, "procedure.cycles": 1}
    )
    a = run_simulation(config, SimConfig(seed=5))
    b = run_simulation(config, SimConfig(seed=5))
    assert a.events == b.events
    c = run_simulation(config, SimConfig(seed=6))
    assert [e for e in c.events if e["event"] == "telemetry"] != [
        e for e in a.events if e["event"] == "telemetry"
    ]


# --- operator actions in every state -------------------------------------------------------------


def reach(state: str) -> Rig:
    rig = Rig()
    rig.run_until("ready")
    if state == "ready":
        return rig
    assert rig.arm()[0]
    if state == "leak_test":
        return rig
    rig.run_until("armed")
    if state == "armed":
        return rig
    assert rig.act("stim_configure", preset="motor")[0]
    assert rig.act("stim_start")[0]
    if state == "localize":
        return rig
    assert rig.act("confirm_localization")[0]
    if state == "localized":
        return rig
    assert rig.act("start_freeze")[0]
    if state == "pressurize":
        return rig
    rig.run_until("freeze_1")
    rig.run(1.0)
    if state == "freeze_1":
        return rig
    if state in ENDS:
        how = {"aborted": "abort", "estop": "estop", "fault": None}[state]
        if how:
            assert rig.act(how)[0]
        else:
            rig.proc.stop("fail", "test_fault", None)
            rig.runner.write(rig.ctl.take_output())
        return rig
    rig.run_until("thaw_1")
    if state == "thaw_1":
        return rig
    rig.run_until("withdraw_locked")
    if state == "withdraw_locked":
        return rig
    rig.run_until("complete", max_s=400.0)
    return rig


STATES = [
    "ready",
    "leak_test",
    "armed",
    "localize",
    "localized",
    "pressurize",
    "freeze_1",
    "thaw_1",
    "withdraw_locked",
    "complete",
    "aborted",
    "fault",
    "estop",
]

# Where each action is accepted (interfaces.md): everything else must be refused with a reason.
ACCEPTED = {
    "arm": {"ready"},
    "stim_configure": {"armed", "localize", "localized"},
    "stim_start": {"localize", "localized"},  # armed: not configured yet
    "stim_stop": set(STATES),
    "confirm_localization": {"localize", "localized"},
    "start_freeze": {"localized"},
    "abort": {
        "leak_test",
        "armed",
        "localize",
        "localized",
        "pressurize",
        "freeze_1",
        "thaw_1",
        "withdraw_locked",
    },
    "request_withdraw": {"complete"},
    "declare_thermistor_suspect": {
        "freeze_1",
        "thaw_1",
        "withdraw_locked",
        "aborted",
        "fault",
        "estop",
    },
    "confirm_timed_thaw": set(),
    "ack_alarm": set(),
    "silence_alarms": {"estop"},  # ALM_ESTOP is active there
}
PARAMS: dict[str, dict[str, Any]] = {
    "arm": {"checklist": clear_checklist().model_dump()},
    "stim_configure": {"preset": "motor"},
    "ack_alarm": {"alarm": "ALM_NO_FLOW"},
    "silence_alarms": {"duration_s": 60.0},
}


@pytest.mark.parametrize("state", STATES)
@pytest.mark.parametrize("action", sorted(ACCEPTED))
def test_each_action_accepted_where_allowed_and_refused_elsewhere(action: str, state: str) -> None:
    """Every operator action of interfaces.md in every state: accepted, or refused with a reason."""
    rig = reach(state)
    accepted, reason = rig.act(action, **PARAMS.get(action, {}))
    assert accepted is (state in ACCEPTED[action]), (action, state, reason)
    assert accepted or reason
    recorded = rig.of("operator_action")[-1]
    assert (recorded["action"], recorded["accepted"], recorded["reason"]) == (
        action,
        accepted,
        reason,
    )


def test_request_withdraw_while_frozen_raises_probe_frozen() -> None:
    """SR-12: a withdraw request while locked is refused with ALM_PROBE_FROZEN."""
    rig = reach("freeze_1")
    accepted, reason = rig.act("request_withdraw")
    assert not accepted and "frozen" in reason
    assert rig.alarms_raised() == ["ALM_PROBE_FROZEN"]


@pytest.mark.parametrize("state", STATES)
def test_emergency_stop_from_every_state(state: str) -> None:
    """SR-20: from any state, the safe state in the same control step, ALM_ESTOP, then a locked
    thaw if the supply had opened (SR-13)."""
    rig = reach(state)
    was_locked = rig.proc.locked
    result = rig.ctl.act("estop", {})
    out = rig.ctl.take_output()
    assert result == (True, "")
    frames = StreamDecoder().feed(out)
    assert frames and isinstance(frames[0].message, EmergencyStop)  # the device's own stop
    assert rig.state == "estop" and "ALM_ESTOP" in rig.alarms_raised()
    names = [e["event"] for e in rig.events]
    tail = names[names.index("operator_action", len(names) - 8) - 4 :]
    assert tail.index("safe_state_commanded") < tail.index("alarm_raised")
    assert rig.proc.locked is was_locked
    rig.runner.write(out)
    rig.run(0.1)
    snap = rig.connection.last
    assert snap is not None and not snap.supply_open and not snap.inlet_open and snap.vent_open


@pytest.mark.parametrize(
    "state",
    ["leak_test", "armed", "localize", "pressurize", "freeze_1", "thaw_1", "withdraw_locked"],
)
def test_abort_from_every_running_state(state: str) -> None:
    """SR-13: abort takes the safe state, then a locked thaw if the supply opened."""
    rig = reach(state)
    locked = rig.proc.locked
    assert rig.act("abort") == (True, "")
    assert rig.state == "aborted" and rig.proc.withdraw_safe is not locked
    assert rig.of("safe_state_commanded")[-1]["reason"] == "operator_abort"
    if not locked:  # before the first supply open: not locked (SR-12)
        assert rig.act("request_withdraw") == (True, "")
        assert rig.state == "ready"
        assert rig.of("procedure_finished")[-1]["outcome"] == "aborted"


def test_an_aborted_freeze_stays_locked_until_measured_thaw() -> None:
    """SR-13: every stop thaws; release only by SR-12."""
    rig = reach("freeze_1")
    rig.run(3.0)
    rig.act("abort")
    assert not rig.proc.withdraw_safe
    rig.run(5.0)
    assert not rig.act("request_withdraw")[0]
    rig.run_until_released = None  # type: ignore[attr-defined]
    for _ in range(40_000):
        rig.step()
        if rig.proc.withdraw_safe:
            break
    assert rig.proc.withdraw_safe
    assert rig.act("request_withdraw") == (True, "")
    assert rig.of("procedure_finished")[-1]["outcome"] == "aborted"


def test_timed_thaw_path_needs_420_s_and_a_confirmation() -> None:
    """SR-13: with the thermistor declared suspect, release needs 420 s after the supply closed
    plus confirm_timed_thaw; no earlier."""
    rig = reach("freeze_1")
    rig.act("abort")
    assert rig.act("declare_thermistor_suspect") == (True, "")
    rig.run(100.0)
    accepted, reason = rig.act("confirm_timed_thaw")
    assert not accepted and "still to wait" in reason
    rig.run(321.0)
    assert not rig.proc.withdraw_safe  # time alone never releases it
    assert rig.act("confirm_timed_thaw") == (True, "")
    assert rig.proc.withdraw_safe


@pytest.mark.parametrize(
    ("checklist_change", "words"),
    [
        ({"raynaud": True}, "raynaud is true"),
        ({"patient_refusal": True}, "patient_refusal"),
        ({"site_is_face": True}, "acknowledge_relative_contraindication must be true"),
    ],
)
def test_arm_requires_the_checklist(checklist_change: dict[str, bool], words: str) -> None:
    """SR-19: arm requires the checklist; it is recorded."""
    rig = reach("ready")
    checklist = {**clear_checklist().model_dump(), **checklist_change}
    accepted, reason = rig.act("arm", checklist=checklist)
    assert not accepted and words in reason and rig.state == "ready"
    ok = {
        **checklist,
        "raynaud": False,
        "patient_refusal": False,
        "acknowledge_relative_contraindication": True,
    }
    assert rig.act("arm", checklist=ok)[0]
    assert rig.of("checklist_recorded")[-1].items() >= ok.items()


def test_arm_without_a_checklist_is_refused_as_invalid() -> None:
    rig = reach("ready")
    accepted, reason = rig.act("arm")
    assert not accepted and "checklist" in reason


@pytest.mark.parametrize(
    ("params", "words"),
    [
        ({"freeze_s": 300.0}, "out of range 5..240 s (bench)"),
        ({"cycles": 4}, "cycles"),
        ({"thaw_s": 1.0}, "thaw_s"),
    ],
)
def test_arm_parameters_out_of_profile_are_refused_before_anything_moves(
    params: dict[str, Any], words: str
) -> None:
    """SR-17: out of range is refused before anything moves."""
    rig = reach("ready")
    accepted, reason = rig.arm(**params)
    assert not accepted and words in reason and rig.state == "ready"
    assert rig.of("valve_commanded") == []


def test_leak_test_runs_once_per_device_session() -> None:
    """SR-24: once per device session, before the first freeze; not again for the next procedure."""
    rig = reach("complete")
    assert len(rig.of("leak_test")) == 1
    rig.act("request_withdraw")
    assert rig.arm()[0]
    assert rig.state == "armed"


def test_a_failed_leak_test_goes_back_to_ready_with_alm_leak() -> None:
    """SR-24: more than 1.5 psi/s: ALM_LEAK, back to ready, the procedure ends faulted."""
    rig = Rig("supply_leak:psi_per_s=5")
    rig.run_until("ready")
    rig.arm()
    rig.run_until("ready", max_s=30.0)
    (leak,) = rig.of("leak_test")
    assert leak["passed"] is False and leak["decay_psi"] > 1.5 * leak["window_s"]
    assert rig.alarms_raised() == ["ALM_LEAK"]
    assert rig.of("procedure_finished")[-1] == {
        **rig.of("procedure_finished")[-1],
        "outcome": "faulted",
    }


def test_link_loss_mid_freeze_takes_the_fault_path_and_never_resumes() -> None:
    """SR-03: ALM_LINK_LOST, safe state, the procedure ends faulted after its locked thaw;
    when the link comes back the device is re-identified and nothing resumes."""
    rig = Rig("link_drop:duration_s=1,dir=to_host@freeze1+2")
    rig.localize()
    rig.act("start_freeze")
    rig.run_until("freeze_1")
    rig.run(3.0)
    assert rig.state == "fault" and rig.proc.end_reason == "link_lost"
    assert "ALM_LINK_LOST" in rig.alarms_raised()
    assert rig.of("safe_state_commanded")[0]["reason"] == "connect"
    assert any(e["reason"] == "link_lost" for e in rig.of("safe_state_commanded"))
    rig.run(3.0)
    assert len(rig.of("device_identified")) == 2
    assert rig.state == "fault" and rig.proc.locked  # no freeze resumed, still locked
    status = rig.device.status()
    assert not status["valves"]["supply"]["open"] and status["valves"]["vent"]["open"]


def test_every_supply_open_carries_freeze_s_plus_2_s() -> None:
    """SR-25: the device closes the supply by itself 2 s after the freeze should have ended."""
    from protocols import ValveCommand

    rig = Rig()
    sent: list[ValveCommand] = []
    link = rig.connection.link
    original = link.send

    def spy(command: object, now: float) -> tuple[int, bytes]:
        if isinstance(command, ValveCommand) and command.valve == 0 and command.open:
            sent.append(command)
        return original(command, now)  # type: ignore[arg-type]

    link.send = spy  # type: ignore[method-assign]
    rig.localize()
    rig.act("start_freeze")
    rig.run_until("thaw_1")
    assert [c.max_open_ms for c in sent] == [round((rig.config.procedure.freeze_s + 2) * 1000)]


def test_the_leak_test_is_due_again_after_a_reconnect() -> None:
    """SR-24: once per device session and after any reconnect."""
    rig = Rig("link_drop:duration_s=1,dir=to_host@40")
    rig.run_until("ready")
    rig.arm()
    rig.run_until("armed")
    rig.act("abort")
    assert rig.act("request_withdraw")[0]
    rig.run(45.0 - rig.runner.now)
    assert len(rig.of("device_identified")) == 2
    rig.run_until("ready")
    accepted, reason = rig.arm()
    assert not accepted and "ALM_LINK_LOST" in reason  # latched: a new freeze waits for the ack
    assert rig.act("ack_alarm", alarm="ALM_LINK_LOST")[0]
    assert rig.arm()[0]
    assert rig.state == "leak_test"


def test_a_trigger_whose_guards_refuse_it_is_recorded() -> None:
    """DESIGN.md: every attempted event, refused ones included, is on record."""
    rig = reach("pressurize")
    rig.proc.cycle = 4  # no freeze_4: every guard of supply_ready says no
    rig.proc.trigger("supply_ready")  # queued machine: the answer is in the record
    assert rig.state == "pressurize"
    assert rig.of("trigger_refused")[-1] == {
        **rig.of("trigger_refused")[-1],
        "trigger": "supply_ready",
        "state": "pressurize",
    }


def _ack_and_arm_again(rig: Rig, alarm: str) -> None:
    """After the procedure that raised `alarm` is over: ack clears it, a new arm is taken."""
    assert rig.proc.withdraw_safe
    assert rig.act("request_withdraw") == (True, "")
    rig.run_until("ready")
    assert rig.act("ack_alarm", alarm=alarm)[0]
    assert alarm in [e["alarm"] for e in rig.of("alarm_cleared")]
    assert rig.arm() == (True, "")


def test_a_valve_fault_clears_when_the_states_agree_and_it_is_acknowledged() -> None:
    """SR-09, alarm table ("states agree, ack"): a valve stuck closed for a while raises
    ALM_VALVE_FAULT; once it follows its commands again the ack clears it and arming works."""
    rig = reach("pressurize")
    rig.device.inject_now("valve_stuck_closed:valve=supply,duration_s=3")
    rig.run_until("fault", max_s=30.0)
    assert "ALM_VALVE_FAULT" in rig.alarms_raised()
    refused = rig.act("ack_alarm", alarm="ALM_VALVE_FAULT")
    assert refused[0] and "ALM_VALVE_FAULT" not in [e["alarm"] for e in rig.of("alarm_cleared")]
    rig.run(5.0)  # the fault is over; the valves report what was commanded
    assert rig.alarms_raised().count("ALM_VALVE_FAULT") == 1
    assert "ALM_VALVE_FAULT" in [e["alarm"] for e in rig.of("alarm_cleared")]
    assert rig.act("request_withdraw") == (True, "")  # never opened: never locked
    rig.run_until("ready")
    assert rig.arm() == (True, "")


def test_a_link_loss_clears_once_the_device_is_heard_again_and_it_is_acknowledged() -> None:
    """SR-03, alarm table ("link back, re-identified, ack"): the device silent for 2 s
    mid-freeze; when it answers the next hello the link is restored (once), it is
    re-identified, and after the fault thaw the ack clears ALM_LINK_LOST and arming works."""
    rig = reach("freeze_1")
    rig.device.inject_now("device_silent:duration_s=2")
    rig.run_until("fault", max_s=5.0)
    rig.run(5.0)
    restored = rig.of("link_restored")
    assert len(restored) == 1 and 2.0 <= restored[0]["silent_s"] <= 2.6
    assert len(rig.of("device_identified")) == 2
    for _ in range(400):  # the fault thaw: released by SR-12's measured thaw
        if rig.proc.withdraw_safe:
            break
        rig.run(1.0)
    _ack_and_arm_again(rig, "ALM_LINK_LOST")


def test_a_temp_sensor_alarm_clears_at_the_next_procedure_after_its_ack() -> None:
    """SR-10, alarm table ("next procedure, ack"): ALM_TEMP_SENSOR blocks arming until the
    procedure it stopped is over (released by the timed path) with the reading plausible."""
    rig = reach("freeze_1")
    rig.device.inject_now("thermistor_open:duration_s=2")
    rig.run_until("fault", max_s=5.0)
    rig.run(421.0)
    assert rig.act("confirm_timed_thaw") == (True, "")
    rig.run(0.1)
    _ack_and_arm_again(rig, "ALM_TEMP_SENSOR")


def test_a_broken_thermistor_keeps_arming_blocked() -> None:
    """SR-10: with the thermistor still open, the ack does not clear ALM_TEMP_SENSOR and a new
    freeze stays blocked."""
    rig = reach("freeze_1")
    rig.device.inject_now("thermistor_open")
    rig.run_until("fault", max_s=5.0)
    rig.run(421.0)
    assert rig.act("confirm_timed_thaw") == (True, "")
    assert rig.act("request_withdraw") == (True, "")
    rig.run_until("ready")
    assert rig.act("ack_alarm", alarm="ALM_TEMP_SENSOR")[0]
    rig.run(2.0)
    accepted, reason = rig.arm()
    assert not accepted and "ALM_TEMP_SENSOR" in reason


def test_the_freeze_waits_for_stimulation_reported_off() -> None:
    """SR-15 ("commands it off and verifies"): with the stimulator output stuck on, the supply
    is never opened (pressurize holds while stimulation is reported on; the device's own fault
    flag then ends the procedure, SR-32)."""
    rig = reach("localize")
    rig.device.inject_now("stim_stuck_on")
    rig.run(0.5)
    assert rig.of("stim_reported")[-1]["on"]
    assert rig.act("confirm_localization")[0]
    assert rig.act("start_freeze")[0]
    rig.run(5.0)
    supply_opens = [e for e in rig.of("valve_commanded") if e["valve"] == "supply" and e["open"]]
    assert not supply_opens and rig.state == "fault"
    assert rig.alarms_raised() == ["ALM_DEVICE_FAULT"]


def test_pressurize_holds_while_stimulation_is_reported_on() -> None:
    """SR-15: a device that reports stimulation on (without a fault flag) keeps the procedure in
    pressurize, supply closed; once it reports off, the freeze follows after SR-04's 1 s."""
    rig = reach("pressurize")
    rig.runner.on_snapshot = lambda s: rig.ctl.on_snapshot(s._replace(stim_on=True))
    rig.run(5.0)
    assert rig.state == "pressurize"
    assert not [e for e in rig.of("valve_commanded") if e["valve"] == "supply" and e["open"]]
    rig.runner.on_snapshot = rig.ctl.on_snapshot
    rig.run_until("freeze_1", max_s=2.0)

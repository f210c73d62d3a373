"""The alarm manager (SR-21): table, latching, acknowledge, silence, break-through, records.

Time is a number passed in (sans-I/O): nothing here sleeps or reads a clock.
"""

from __future__ import annotations

import ast
import math
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

import console.alarms
from console.alarms import ALARMS, MAX_SILENCE_S, AlarmManager, AlarmSpec, AlarmState, Priority

ROOT = Path(__file__).resolve().parents[2]
REQUIREMENTS = ROOT / "docs" / "safety" / "requirements.md"

# The fields of each event (interfaces.md, "Events"; the two silence endings are ours).
EVENT_FIELDS = {
    "alarm_raised": {
        "alarm",
        "priority",
        "sr",
        "value",
        "limit",
        "device_ms",
        "first_over_device_ms",
    },
    "alarm_acknowledged": {"alarm"},
    "alarm_silenced": {"until_t_s", "duration_s"},
    "alarm_cleared": {"alarm"},
    "alarm_silence_broken": {"alarm", "priority"},
    "alarm_silence_ended": {"reason", "until_t_s"},
}

Event = tuple[str, dict[str, object]]


class Recorder:
    def __init__(self) -> None:
        self.events: list[Event] = []

    def __call__(self, name: str, fields: dict[str, object]) -> None:
        assert name in EVENT_FIELDS, name
        assert set(fields) == EVENT_FIELDS[name], (name, fields)
        assert "t_s" not in fields  # the caller stamps the time
        self.events.append((name, dict(fields)))

    def take(self) -> list[Event]:
        events, self.events = self.events, []
        return events

    def names(self) -> list[str]:
        return [name for name, _ in self.take()]


def make() -> tuple[AlarmManager, Recorder]:
    recorder = Recorder()
    return AlarmManager(recorder), recorder


# --- the table ------------------------------------------------------------------------


def doc_alarm_rows(text: str) -> list[list[str]]:
    """The cells of each row of the document's alarm table, in order."""
    lines = text.split("## Alarm table", 1)[1].splitlines()
    rows = []
    for line in lines:
        if line.startswith("| ALM_"):
            cells = [" ".join(cell.split()) for cell in line.strip().strip("|").split("|")]
            rows.append(cells)
    return rows


def test_the_alarm_table_is_the_documents_row_by_row() -> None:
    """SR-21: every alarm of the table, with its SR, priority, latching and freeze block."""
    rows = doc_alarm_rows(REQUIREMENTS.read_text(encoding="utf-8"))
    assert len(rows) == 21  # the parser found the table (it must not pass by not looking)
    assert [row[0] for row in rows] == list(ALARMS)
    for alarm, sr, priority, latches, action, blocks_until in rows:
        spec = ALARMS[alarm]
        assert spec.alarm == alarm
        assert spec.sr == tuple(f"SR-{n.strip()}" for n in sr.split(",")), alarm
        assert spec.priority == Priority(priority), alarm
        assert spec.latches is {"yes": True, "no": False}[latches], alarm
        assert spec.blocks_freeze is (blocks_until != "-"), alarm
        assert spec.action == action, alarm
        assert spec.blocks_until == blocks_until, alarm


def test_the_table_is_read_only_and_its_rows_frozen() -> None:
    with pytest.raises(TypeError):
        ALARMS["ALM_X"] = ALARMS["ALM_ESTOP"]  # type: ignore[index]
    with pytest.raises(AttributeError):
        ALARMS["ALM_ESTOP"].latches = False  # type: ignore[misc]
    assert isinstance(ALARMS["ALM_ESTOP"], AlarmSpec)


def test_priorities_order_by_urgency_not_alphabet() -> None:
    """SR-21: high > medium > low."""
    assert Priority.HIGH > Priority.MEDIUM > Priority.LOW
    assert Priority.LOW < Priority.HIGH  # alphabetically "low" > "high"
    assert max(Priority) is Priority.HIGH
    assert sorted(Priority) == [Priority.LOW, Priority.MEDIUM, Priority.HIGH]
    assert Priority("high") is Priority.HIGH and str(Priority.HIGH) == "high"


def test_the_manager_reads_no_clock() -> None:
    """Sans-I/O: time is an argument, so virtual and real time run the same code."""
    tree = ast.parse(Path(console.alarms.__file__).read_text(encoding="utf-8"))
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
    assert imported.isdisjoint({"time", "datetime", "threading", "asyncio", "sched"})


# --- raise -----------------------------------------------------------------------------


def test_a_raise_is_one_event_with_the_interface_fields() -> None:
    """SR-21: every raise is recorded; fields of interfaces.md, without t_s."""
    manager, rec = make()
    assert manager.raise_alarm(
        "ALM_EXHAUST_OVERPRESSURE",
        10.0,
        value=21.5,
        limit=20.0,
        device_ms=10_000,
        first_over_device_ms=9_980,
    )
    assert rec.take() == [
        (
            "alarm_raised",
            {
                "alarm": "ALM_EXHAUST_OVERPRESSURE",
                "priority": "high",
                "sr": ["SR-07"],
                "value": 21.5,
                "limit": 20.0,
                "device_ms": 10_000,
                "first_over_device_ms": 9_980,
            },
        )
    ]
    assert manager.active() == [
        AlarmState(
            alarm="ALM_EXHAUST_OVERPRESSURE",
            priority=Priority.HIGH,
            sr=("SR-07",),
            raised_t_s=10.0,
            acknowledged=False,
            condition_present=True,
            value=21.5,
            limit=20.0,
        )
    ]


def test_raising_an_active_alarm_again_is_silent() -> None:
    """SR-21: no duplicate records; the view keeps the recorded raise."""
    manager, rec = make()
    manager.raise_alarm("ALM_SUPPLY_LOW", 1.0, value=540.0, limit=550.0)
    rec.take()
    assert not manager.raise_alarm("ALM_SUPPLY_LOW", 2.0, value=500.0, limit=550.0)
    assert rec.take() == []
    [state] = manager.active()
    assert (state.raised_t_s, state.value) == (1.0, 540.0)


def test_an_unknown_alarm_id_is_a_programming_error() -> None:
    manager, rec = make()
    with pytest.raises(ValueError, match="ALM_NOPE"):
        manager.raise_alarm("ALM_NOPE", 0.0)
    with pytest.raises(ValueError, match="ALM_NOPE"):
        manager.condition_cleared("ALM_NOPE", 0.0)
    assert rec.take() == []


def test_views_order_and_filter() -> None:
    manager, _ = make()
    manager.raise_alarm("ALM_LINK_DEGRADED", 1.0)
    manager.raise_alarm("ALM_SUPPLY_LOW", 2.0)
    manager.raise_alarm("ALM_ESTOP", 3.0)
    manager.raise_alarm("ALM_RECORD", 4.0)
    assert [s.alarm for s in manager.active()] == [
        "ALM_ESTOP",
        "ALM_RECORD",
        "ALM_SUPPLY_LOW",
        "ALM_LINK_DEGRADED",
    ]
    assert manager.highest(4.0) is Priority.HIGH
    assert sorted(manager.blocking_freeze()) == ["ALM_ESTOP", "ALM_RECORD", "ALM_SUPPLY_LOW"]
    assert sorted(manager.latched_unacknowledged()) == ["ALM_ESTOP", "ALM_RECORD"]
    manager.acknowledge("ALM_ESTOP", 5.0)
    assert manager.latched_unacknowledged() == ["ALM_RECORD"]
    assert manager.is_active("ALM_ESTOP") and not manager.is_active("ALM_LEAK")
    assert make()[0].highest(0.0) is None


# --- latching and clearing ---------------------------------------------------------------


def test_a_latched_high_alarm_stays_after_its_condition_until_acknowledged() -> None:
    """SR-21: high alarms latch until acknowledged and cleared (condition first, then ack)."""
    manager, rec = make()
    manager.raise_alarm("ALM_EXHAUST_OVERPRESSURE", 1.0)
    rec.take()
    assert manager.condition_cleared("ALM_EXHAUST_OVERPRESSURE", 2.0) is False
    assert rec.take() == []
    assert manager.is_active("ALM_EXHAUST_OVERPRESSURE")
    assert manager.active()[0].condition_present is False
    assert manager.blocking_freeze() == ["ALM_EXHAUST_OVERPRESSURE"]
    assert manager.acknowledge("ALM_EXHAUST_OVERPRESSURE", 3.0) == (
        True,
        "acknowledged and cleared",
    )
    assert rec.take() == [
        ("alarm_acknowledged", {"alarm": "ALM_EXHAUST_OVERPRESSURE"}),
        ("alarm_cleared", {"alarm": "ALM_EXHAUST_OVERPRESSURE"}),
    ]
    assert manager.active() == []


def test_an_acknowledged_high_alarm_stays_until_its_condition_clears() -> None:
    """SR-21: high alarms latch until acknowledged and cleared (ack first, then condition)."""
    manager, rec = make()
    manager.raise_alarm("ALM_VALVE_FAULT", 1.0)
    accepted, reason = manager.acknowledge("ALM_VALVE_FAULT", 2.0)
    assert accepted and "condition" in reason
    assert rec.names() == ["alarm_raised", "alarm_acknowledged"]
    assert manager.is_active("ALM_VALVE_FAULT")
    assert manager.latched_unacknowledged() == []
    assert manager.condition_cleared("ALM_VALVE_FAULT", 3.0) is True
    assert rec.take() == [("alarm_cleared", {"alarm": "ALM_VALVE_FAULT"})]
    assert not manager.is_active("ALM_VALVE_FAULT")


def test_a_latched_alarm_whose_condition_returns_needs_the_condition_to_go_again() -> None:
    """SR-21: an ack clears a latched alarm only if its condition is gone at that moment."""
    manager, rec = make()
    manager.raise_alarm("ALM_PRESSURE_SENSOR", 1.0)
    manager.condition_cleared("ALM_PRESSURE_SENSOR", 2.0)
    assert manager.raise_alarm("ALM_PRESSURE_SENSOR", 3.0) is False  # not a new alarm
    assert rec.names() == ["alarm_raised"]
    assert manager.active()[0].condition_present is True
    manager.acknowledge("ALM_PRESSURE_SENSOR", 4.0)
    assert manager.is_active("ALM_PRESSURE_SENSOR")
    assert rec.names() == ["alarm_acknowledged"]
    manager.condition_cleared("ALM_PRESSURE_SENSOR", 5.0)
    assert rec.names() == ["alarm_cleared"]


def test_a_non_latching_alarm_clears_with_its_condition() -> None:
    """SR-21: only the latching rows of the table wait for an acknowledgement."""
    manager, rec = make()
    manager.raise_alarm("ALM_EXHAUST_HIGH", 1.0)
    assert manager.condition_cleared("ALM_EXHAUST_HIGH", 2.0) is True
    assert rec.names() == ["alarm_raised", "alarm_cleared"]
    assert manager.active() == []
    # Acknowledging one does not clear it while its condition lasts.
    manager.raise_alarm("ALM_SUPPLY_LOW", 3.0)
    assert manager.acknowledge("ALM_SUPPLY_LOW", 4.0)[0]
    assert manager.is_active("ALM_SUPPLY_LOW")
    manager.condition_cleared("ALM_SUPPLY_LOW", 5.0)
    assert rec.names() == ["alarm_raised", "alarm_acknowledged", "alarm_cleared"]


def test_clearing_what_is_not_active_changes_nothing() -> None:
    manager, rec = make()
    assert manager.condition_cleared("ALM_ESTOP", 1.0) is False
    manager.raise_alarm("ALM_ESTOP", 2.0)
    manager.condition_cleared("ALM_ESTOP", 3.0)
    assert manager.condition_cleared("ALM_ESTOP", 4.0) is False
    assert rec.names() == ["alarm_raised"]


@pytest.mark.parametrize(
    ("setup", "alarm", "reason"),
    [
        ([], "ALM_ESTOP", "ALM_ESTOP is not active"),
        (["raise", "ack"], "ALM_ESTOP", "ALM_ESTOP is already acknowledged"),
        ([], "ALM_NOPE", "unknown alarm 'ALM_NOPE'"),
        (["raise", "ack", "clear"], "ALM_ESTOP", "ALM_ESTOP is not active"),
    ],
)
def test_acknowledge_refusals_say_why_and_record_nothing(
    setup: list[str], alarm: str, reason: str
) -> None:
    """SR-21: an acknowledgement is refused, with its reason, when there is nothing to ack."""
    manager, rec = make()
    steps: dict[str, Callable[[], object]] = {
        "raise": lambda: manager.raise_alarm("ALM_ESTOP", 1.0),
        "ack": lambda: manager.acknowledge("ALM_ESTOP", 2.0),
        "clear": lambda: manager.condition_cleared("ALM_ESTOP", 3.0),
    }
    for step in setup:
        steps[step]()
    rec.take()
    accepted, why = manager.acknowledge(alarm, 4.0)
    assert not accepted
    assert why.startswith(reason)
    assert rec.take() == []


# --- silence ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "duration_s", [0.0, 0, -1.0, -0.0, 120.01, 121, math.nan, math.inf, -math.inf, 1e300]
)
def test_silence_out_of_range_is_refused_naming_value_and_range(duration_s: float) -> None:
    """SR-21: silence lasts at most 120 s (and more than 0 s)."""
    manager, rec = make()
    manager.raise_alarm("ALM_SUPPLY_LOW", 1.0)
    rec.take()
    accepted, reason = manager.silence(duration_s, 2.0)
    assert not accepted
    assert f"duration_s = {duration_s!r}" in reason
    assert "more than 0 and at most 120 s" in reason
    assert rec.take() == []
    assert manager.audible(2.0)


@pytest.mark.parametrize("duration_s", [True, "60", None])
def test_silence_of_a_non_number_is_refused(duration_s: object) -> None:
    manager, rec = make()
    manager.raise_alarm("ALM_SUPPLY_LOW", 1.0)
    rec.take()
    accepted, reason = manager.silence(duration_s, 2.0)  # type: ignore[arg-type]
    assert not accepted and "not a number" in reason
    assert rec.take() == []


@pytest.mark.parametrize("duration_s", [120, 120.0, 0.001, 60])
def test_silence_within_range_is_accepted(duration_s: float) -> None:
    """SR-21: up to and including 120 s."""
    manager, rec = make()
    manager.raise_alarm("ALM_SUPPLY_LOW", 1.0)
    rec.take()
    accepted, _ = manager.silence(duration_s, 2.0)
    assert accepted
    assert rec.take() == [
        ("alarm_silenced", {"until_t_s": 2.0 + duration_s, "duration_s": duration_s})
    ]
    assert not manager.audible(2.0)
    assert manager.silenced_until(2.0) == 2.0 + duration_s
    assert MAX_SILENCE_S == 120.0


def test_silence_with_nothing_active_is_refused() -> None:
    manager, rec = make()
    assert manager.silence(60.0, 1.0) == (False, "no active alarm to silence")
    assert rec.take() == []
    assert not manager.audible(1.0)


def test_a_silence_expires_and_tick_records_its_end_once() -> None:
    """SR-21: a silence lasts at most its duration; audible again at its end even unticked."""
    manager, rec = make()
    manager.raise_alarm("ALM_ESTOP", 0.0)
    manager.silence(120.0, 10.0)
    rec.take()
    assert not manager.audible(129.999)
    assert manager.audible(130.0)  # a query alone already knows; it records nothing
    assert rec.take() == []
    manager.tick(129.0)
    assert rec.take() == []
    manager.tick(130.0)
    assert rec.take() == [("alarm_silence_ended", {"reason": "expired", "until_t_s": 130.0})]
    manager.tick(131.0)
    assert rec.take() == []
    assert manager.silenced_until(131.0) is None


def test_an_expired_silence_is_recorded_before_the_next_change() -> None:
    """SR-21: the record keeps the order of events even when nobody ticked."""
    manager, rec = make()
    manager.raise_alarm("ALM_ESTOP", 0.0)
    manager.silence(10.0, 0.0)
    rec.take()
    manager.acknowledge("ALM_ESTOP", 20.0)
    assert rec.names() == ["alarm_silence_ended", "alarm_acknowledged"]


@pytest.mark.parametrize(
    ("silenced", "new", "breaks"),
    [
        ("ALM_SUPPLY_LOW", "ALM_ESTOP", True),  # medium silence, high raised
        ("ALM_LINK_DEGRADED", "ALM_SUPPLY_LOW", True),  # low silence, medium raised
        ("ALM_LINK_DEGRADED", "ALM_ESTOP", True),
        ("ALM_SUPPLY_LOW", "ALM_NO_FLOW", False),  # equal priority
        ("ALM_ESTOP", "ALM_RECORD", False),  # equal (high)
        ("ALM_ESTOP", "ALM_SUPPLY_LOW", False),  # lower
        ("ALM_SUPPLY_LOW", "ALM_STIM_LEAD", False),
    ],
)
def test_only_a_higher_priority_breaks_through_a_silence(
    silenced: str, new: str, breaks: bool
) -> None:
    """SR-21: a new alarm of higher priority breaks through the silence."""
    manager, rec = make()
    manager.raise_alarm(silenced, 0.0)
    manager.silence(120.0, 1.0)
    rec.take()
    manager.raise_alarm(new, 2.0)
    if breaks:
        assert rec.take() == [
            rec_raised(new),
            (
                "alarm_silence_broken",
                {"alarm": new, "priority": ALARMS[new].priority.value},
            ),
        ]
        assert manager.audible(2.0)
        assert manager.silenced_until(2.0) is None
    else:
        assert rec.take() == [rec_raised(new)]
        assert not manager.audible(2.0)


def rec_raised(alarm: str) -> Event:
    spec = ALARMS[alarm]
    return (
        "alarm_raised",
        {
            "alarm": alarm,
            "priority": spec.priority.value,
            "sr": list(spec.sr),
            "value": None,
            "limit": None,
            "device_ms": None,
            "first_over_device_ms": None,
        },
    )


def test_break_through_compares_with_the_alarms_active_when_the_silence_began() -> None:
    """SR-21: the threshold is the highest priority active when the silence began."""
    manager, rec = make()
    manager.raise_alarm("ALM_LINK_DEGRADED", 0.0)
    manager.silence(60.0, 1.0)
    manager.raise_alarm("ALM_SUPPLY_LOW", 2.0)  # breaks: medium > low
    assert manager.audible(2.0)
    manager.silence(60.0, 3.0)  # now covers medium
    manager.raise_alarm("ALM_NO_FLOW", 4.0)  # equal: stays silent
    assert not manager.audible(4.0)
    manager.raise_alarm("ALM_ESTOP", 5.0)
    assert manager.audible(5.0)
    assert rec.names().count("alarm_silence_broken") == 2


def test_a_silence_ends_when_no_alarm_is_left() -> None:
    """SR-21: a later alarm, of whatever priority, is not heard through an old silence."""
    manager, rec = make()
    manager.raise_alarm("ALM_SUPPLY_LOW", 0.0)
    manager.silence(120.0, 1.0)
    rec.take()
    manager.condition_cleared("ALM_SUPPLY_LOW", 2.0)
    assert rec.take() == [
        ("alarm_cleared", {"alarm": "ALM_SUPPLY_LOW"}),
        ("alarm_silence_ended", {"reason": "all_cleared", "until_t_s": 121.0}),
    ]
    manager.raise_alarm("ALM_NO_FLOW", 3.0)
    assert manager.audible(3.0)


def test_silencing_again_restarts_the_silence_and_an_identical_one_is_quiet() -> None:
    manager, rec = make()
    manager.raise_alarm("ALM_SUPPLY_LOW", 0.0)
    manager.silence(100.0, 10.0)
    assert manager.silence(10.0, 20.0)[0]  # may shorten: a deliberate, recorded choice
    assert manager.silenced_until(20.0) == 30.0
    assert manager.silence(10.0, 20.0) == (True, "already silenced until t_s = 30")
    assert rec.names() == ["alarm_raised", "alarm_silenced", "alarm_silenced"]


def test_acknowledging_does_not_mute() -> None:
    """SR-21: only a silence mutes; an acknowledged alarm that is still active sounds."""
    manager, _ = make()
    manager.raise_alarm("ALM_ESTOP", 0.0)
    manager.acknowledge("ALM_ESTOP", 1.0)
    assert manager.audible(1.0)


# --- the state machine -------------------------------------------------------------------

MACHINE_ALARMS = (
    "ALM_LINK_LOST",  # high, latches
    "ALM_ESTOP",  # high, latches
    "ALM_SUPPLY_LOW",  # medium
    "ALM_NO_FLOW",  # medium
    "ALM_LINK_DEGRADED",  # low
    "ALM_STIM_LEAD",  # low
)
DURATIONS = (-1.0, 0.0, 0.5, 5.0, 60.0, 120.0, 120.01, math.nan, math.inf)
# Actions come close together; time passes mostly by `tick`, often exactly to a silence's end.
STEPS = (0.0, 0.5)
TICKS = (0.5, 5.0, 60.0, 120.0, 121.0)


class _Model:
    """An independent statement of SR-21's rules, predicting the manager's events."""

    def __init__(self) -> None:
        self.active: dict[str, dict[str, bool]] = {}
        self.silence: tuple[float, Priority] | None = None
        self.events: list[Event] = []

    def expire(self, t: float) -> None:
        if self.silence is not None and t >= self.silence[0]:
            self.events.append(
                ("alarm_silence_ended", {"reason": "expired", "until_t_s": self.silence[0]})
            )
            self.silence = None

    def raise_(self, alarm: str, t: float) -> bool:
        self.expire(t)
        if alarm in self.active:
            self.active[alarm]["present"] = True
            return False
        self.active[alarm] = {"ack": False, "present": True}
        self.events.append(rec_raised(alarm))
        priority = ALARMS[alarm].priority
        if self.silence is not None and priority > self.silence[1]:
            self.events.append(
                ("alarm_silence_broken", {"alarm": alarm, "priority": priority.value})
            )
            self.silence = None
        return True

    def clear(self, alarm: str, t: float) -> bool:
        self.expire(t)
        state = self.active.get(alarm)
        if state is None or not state["present"]:
            return False
        state["present"] = False
        if ALARMS[alarm].latches and not state["ack"]:
            return False
        self._remove(alarm)
        return True

    def ack(self, alarm: str, t: float) -> bool:
        self.expire(t)
        state = self.active.get(alarm)
        if state is None or state["ack"]:
            return False
        state["ack"] = True
        self.events.append(("alarm_acknowledged", {"alarm": alarm}))
        if not state["present"]:
            self._remove(alarm)
        return True

    def silence_(self, duration: float, t: float) -> bool:
        self.expire(t)
        if not (0 < duration <= 120) or not self.active:  # NaN compares false
            return False
        new = (t + duration, max(ALARMS[a].priority for a in self.active))
        if new != self.silence:
            self.silence = new
            self.events.append(("alarm_silenced", {"until_t_s": new[0], "duration_s": duration}))
        return True

    def _remove(self, alarm: str) -> None:
        del self.active[alarm]
        self.events.append(("alarm_cleared", {"alarm": alarm}))
        if not self.active and self.silence is not None:
            self.events.append(
                ("alarm_silence_ended", {"reason": "all_cleared", "until_t_s": self.silence[0]})
            )
            self.silence = None


class AlarmMachine(RuleBasedStateMachine):
    """SR-21 under any sequence of raise, clear, acknowledge, silence and time passing."""

    def __init__(self) -> None:
        super().__init__()
        self.rec = Recorder()
        self.manager = AlarmManager(self.rec)
        self.model = _Model()
        self.t = 0.0
        # Observed from the calls and the record alone, for the latching invariant.
        self.raised: set[str] = set()
        self.acked_since_raise: set[str] = set()
        self.gone_since_present: set[str] = set()
        # The silence as the record tells it.
        self.recorded_silence_until: float | None = None

    def _snapshot(self) -> object:
        return (tuple(self.manager.active()), self.manager._silence)

    def _run(self, act: Callable[[], object], predict: Callable[[], object]) -> None:
        """Run the manager's call and the model's prediction, then check the record."""
        before = self._snapshot()
        got = act()
        want = predict()
        events, self.rec.events = self.rec.events, []
        expected, self.model.events = self.model.events, []
        assert events == expected
        if events:
            assert before != self._snapshot(), "an event without a state change"
        for name, fields in events:
            if name == "alarm_raised":
                self.raised.add(str(fields["alarm"]))
            elif name == "alarm_cleared":
                alarm = str(fields["alarm"])
                if ALARMS[alarm].latches:
                    assert alarm in self.acked_since_raise, "latched alarm cleared without ack"
                    assert alarm in self.gone_since_present, "latched alarm cleared, condition on"
                self.raised.discard(alarm)
                self.acked_since_raise.discard(alarm)
                self.gone_since_present.discard(alarm)
            elif name == "alarm_silenced":
                until = fields["until_t_s"]
                assert isinstance(until, float)
                self.recorded_silence_until = until
            elif name in ("alarm_silence_broken", "alarm_silence_ended"):
                self.recorded_silence_until = None
        accepted = got[0] if isinstance(got, tuple) else got
        assert accepted == want

    @rule(alarm=st.sampled_from(MACHINE_ALARMS), dt=st.sampled_from(STEPS))
    def raise_alarm(self, alarm: str, dt: float) -> None:
        self.t += dt
        self._run(
            lambda: self.manager.raise_alarm(alarm, self.t),
            lambda: self.model.raise_(alarm, self.t),
        )
        assert self.manager.is_active(alarm)
        self.gone_since_present.discard(alarm)

    @rule(alarm=st.sampled_from(MACHINE_ALARMS), dt=st.sampled_from(STEPS))
    def condition_cleared(self, alarm: str, dt: float) -> None:
        self.t += dt
        if self.manager.is_active(alarm):
            self.gone_since_present.add(alarm)
        self._run(
            lambda: self.manager.condition_cleared(alarm, self.t),
            lambda: self.model.clear(alarm, self.t),
        )

    @rule(alarm=st.sampled_from(MACHINE_ALARMS), dt=st.sampled_from(STEPS))
    def acknowledge(self, alarm: str, dt: float) -> None:
        self.t += dt
        was_unacked = self.manager.is_active(alarm) and alarm not in self.acked_since_raise
        if was_unacked:
            self.acked_since_raise.add(alarm)
        self._run(
            lambda: self.manager.acknowledge(alarm, self.t),
            lambda: self.model.ack(alarm, self.t),
        )

    # The same two actions aimed at an active alarm, so that clearing everything
    # under a silence, and latched alarms going both ways, happen often.
    @precondition(lambda self: bool(self.model.active))
    @rule(data=st.data(), dt=st.sampled_from(STEPS))
    def condition_cleared_of_an_active_one(self, data: st.DataObject, dt: float) -> None:
        self.condition_cleared(data.draw(st.sampled_from(sorted(self.model.active))), dt)

    @precondition(lambda self: bool(self.model.active))
    @rule(data=st.data(), dt=st.sampled_from(STEPS))
    def acknowledge_an_active_one(self, data: st.DataObject, dt: float) -> None:
        self.acknowledge(data.draw(st.sampled_from(sorted(self.model.active))), dt)

    @rule(duration=st.sampled_from(DURATIONS), dt=st.sampled_from(STEPS))
    def silence(self, duration: float, dt: float) -> None:
        self.t += dt
        self._run(
            lambda: self.manager.silence(duration, self.t),
            lambda: self.model.silence_(duration, self.t),
        )

    @rule(dt=st.sampled_from(TICKS))
    def tick(self, dt: float) -> None:
        self.t += dt
        self._run(lambda: self.manager.tick(self.t), lambda: self.model.expire(self.t))

    @invariant()
    def the_view_is_the_models(self) -> None:
        view = {s.alarm: s for s in self.manager.active()}
        assert set(view) == set(self.model.active)
        for alarm, state in view.items():
            assert state.acknowledged == self.model.active[alarm]["ack"]
            assert state.condition_present == self.model.active[alarm]["present"]

    @invariant()
    def a_latched_alarm_stays_until_acked_and_gone(self) -> None:
        """SR-21: high alarms latch until acknowledged and cleared."""
        for alarm in self.raised:
            released = alarm in self.acked_since_raise and alarm in self.gone_since_present
            if ALARMS[alarm].latches and not released:
                assert self.manager.is_active(alarm)
        for alarm in self.manager.latched_unacknowledged():
            assert ALARMS[alarm].latches and alarm not in self.acked_since_raise

    @invariant()
    def silent_only_inside_an_unbroken_unexpired_silence(self) -> None:
        """SR-21: an active alarm is heard unless a recorded, running silence covers now."""
        until = self.recorded_silence_until
        silenced = until is not None and self.t < until
        assert self.manager.audible(self.t) == (bool(self.manager.active()) and not silenced)
        if until is not None and silenced:
            # Asked ahead, without a tick: silent to the last instant, heard at its end.
            assert not self.manager.audible(until - 0.25)
            assert self.manager.audible(until)
            assert self.manager.silenced_until(until) is None
        assert self.rec.events == [], "a query recorded something"


AlarmMachine.TestCase.settings = settings(max_examples=200, stateful_step_count=25, deadline=None)
test_alarm_state_machine = AlarmMachine.TestCase

"""The alarm manager (SR-21): the alarm table as data, latching, acknowledge, silence, clear.

Sans-I/O like the rest of the core (DESIGN.md): time is an argument (`t_s`,
seconds on the daemon's monotonic or virtual clock) and nothing here reads a
clock, so the same behaviour runs in virtual and real time. The interlocks
decide *when* a condition starts and ends; this module only keeps what the
operator must see and hear, and records every change through `emit`.

`emit(event_name, fields)` receives the event's own fields only; the caller
stamps `t_s` (and the session) when it records the event, exactly as it does
for every other event of `interfaces.md`.

Rules, where SR-21 and the alarm table leave a choice:
- A latching alarm (the table's "latches" column) leaves the active list only
  when it has been acknowledged *and* its condition has gone, whichever comes
  last. A non-latching alarm leaves with its condition; it may still be
  acknowledged while it is active.
- Raising an alarm that is already active is never a new alarm and emits
  nothing: with its condition present it is a no-op; when its condition had
  gone (a latched alarm waiting for acknowledgement) the condition is marked
  present again, so a later acknowledgement no longer clears it by itself.
  The view keeps the value and limit of the recorded raise.
- Acknowledgement does not mute: only a silence does (`audible`).
- A silence covers the alarms active when it began. A newly raised alarm of
  higher priority than all of them ends it at once (`alarm_silence_broken`);
  one of equal or lower priority does not. It also ends when it expires
  (`alarm_silence_ended`, reason `expired`; emitted by `tick` or by the next
  call that takes a time) and when no alarm is left active (reason
  `all_cleared`), so an alarm raised after everything cleared sounds.
  Silencing again while silenced restarts the silence from now, with the
  alarms active now; a request that would change nothing is accepted quietly.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType

Emit = Callable[[str, dict[str, object]], None]

MAX_SILENCE_S = 120.0  # SR-21


class Priority(StrEnum):
    """IEC 60601-1-8 style priority; compares by urgency: HIGH > MEDIUM > LOW."""

    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"

    @property
    def rank(self) -> int:
        return _RANK[self]

    # str's own ordering is alphabetical ("high" < "low"): compare by urgency instead.
    def __lt__(self, other: str) -> bool:
        return self.rank < Priority(other).rank

    def __le__(self, other: str) -> bool:
        return self.rank <= Priority(other).rank

    def __gt__(self, other: str) -> bool:
        return self.rank > Priority(other).rank

    def __ge__(self, other: str) -> bool:
        return self.rank >= Priority(other).rank


_RANK = {Priority.LOW: 0, Priority.MEDIUM: 1, Priority.HIGH: 2}


@dataclass(frozen=True, slots=True)
class AlarmSpec:
    """One row of the alarm table of `safety-requirements.md`; texts copied verbatim."""

    alarm: str
    sr: tuple[str, ...]
    priority: Priority
    latches: bool
    action: str
    blocks_freeze: bool
    blocks_until: str


def _row(
    alarm: str, sr: str, priority: str, latches: str, action: str, blocks_until: str
) -> AlarmSpec:
    return AlarmSpec(
        alarm=alarm,
        sr=tuple(f"SR-{n.strip()}" for n in sr.split(",")),
        priority=Priority(priority),
        latches={"yes": True, "no": False}[latches],
        action=action,
        blocks_freeze=blocks_until != "-",
        blocks_until=blocks_until,
    )


# The alarm table of safety-requirements.md, row by row and in its order
# (tests/console/test_alarms.py checks it against docs/safety/requirements.md).
# fmt: off
_TABLE = (
    _row("ALM_LINK_LOST", "03", "high", "yes",
         "procedure ends (faulted), safe state, locked thaw",
         "link back, re-identified, ack"),
    _row("ALM_LINK_DEGRADED", "23", "low", "no", "recorded", "-"),
    _row("ALM_SUPPLY_OVERPRESSURE", "05", "high", "yes", "procedure ends, safe state",
         "<= 800 psig for 1 s in `pressurize`, ack"),
    _row("ALM_SUPPLY_LOW", "06", "medium", "no",
         "this freeze ends into its thaw; `pressurize` waits 60 s at most",
         "supply in window 1 s"),
    _row("ALM_EXHAUST_OVERPRESSURE", "07", "high", "yes", "procedure ends, safe state",
         "exhaust < 5 psig, ack"),
    _row("ALM_EXHAUST_HIGH", "07", "medium", "no", "recorded, shown", "-"),
    _row("ALM_NO_FLOW", "08", "medium", "no", "procedure ends, safe state", "ack"),
    _row("ALM_VALVE_FAULT", "09", "high", "yes", "procedure ends, safe state, inlet closed",
         "states agree, ack"),
    _row("ALM_TEMP_SENSOR", "10", "high", "yes",
         "procedure ends, safe state, SR-13 timed path", "next procedure, ack"),
    _row("ALM_WEAK_FREEZE", "11", "medium", "no",
         "recorded as a finding, procedure continues", "-"),
    _row("ALM_PROBE_FROZEN", "12", "medium", "no", "the request is refused", "-"),
    _row("ALM_THAW_SLOW", "14", "medium", "no",
         "lock stays; suspect-thermistor path offered", "-"),
    _row("ALM_STIM_DURING_FREEZE", "15", "high", "yes", "procedure ends, safe state", "ack"),
    _row("ALM_STIM_LEAD", "16", "low", "no", "stimulation stopped", "-"),
    _row("ALM_IDENTITY", "18", "medium", "no", "arming refused", "matching device"),
    _row("ALM_ESTOP", "20", "high", "yes", "safe state, locked thaw", "ack"),
    _row("ALM_LEAK", "24", "medium", "no", "back to `ready`", "leak test passes"),
    _row("ALM_PRESSURE_SENSOR", "32", "high", "yes", "procedure ends, safe state",
         "plausible 5 s, ack"),
    _row("ALM_DEVICE_FAULT", "32", "high", "yes", "procedure ends, safe state",
         "device clear, ack"),
    _row("ALM_DEVICE_RESET", "32", "high", "yes", "procedure ends, safe state, re-identify",
         "ack"),
    _row("ALM_RECORD", "31", "high", "yes", "safe state", "store writable, ack"),
)
# fmt: on

ALARMS: Mapping[str, AlarmSpec] = MappingProxyType({spec.alarm: spec for spec in _TABLE})


@dataclass(frozen=True, slots=True)
class AlarmState:
    """What the operator sees of one active alarm."""

    alarm: str
    priority: Priority
    sr: tuple[str, ...]
    raised_t_s: float
    acknowledged: bool
    condition_present: bool
    value: float | None
    limit: float | None


@dataclass(slots=True)
class _Active:
    spec: AlarmSpec
    raised_t_s: float
    value: float | None
    limit: float | None
    acknowledged: bool = False
    condition_present: bool = True


@dataclass(frozen=True, slots=True)
class _Silence:
    until_t_s: float
    covers: Priority  # the highest priority active when it began; only a higher one breaks it


class AlarmManager:
    """The active alarms and the silence; every change is one event through `emit`."""

    def __init__(self, emit: Emit) -> None:
        self._emit = emit
        self._active: dict[str, _Active] = {}
        self._silence: _Silence | None = None

    # --- inputs ------------------------------------------------------------------------

    def raise_alarm(
        self,
        alarm: str,
        t_s: float,
        *,
        value: float | None = None,
        limit: float | None = None,
        device_ms: int | None = None,
        first_over_device_ms: int | None = None,
    ) -> bool:
        """Raise `alarm`; True only when it was not active (then `alarm_raised` is emitted).

        An unknown alarm id is a programming error (ValueError), never an operator's.
        """
        spec = _spec(alarm)
        self._expire(t_s)
        current = self._active.get(alarm)
        if current is not None:
            current.condition_present = True
            return False
        self._active[alarm] = _Active(spec, t_s, value, limit)
        self._emit(
            "alarm_raised",
            {
                "alarm": alarm,
                "priority": spec.priority.value,
                "sr": list(spec.sr),
                "value": value,
                "limit": limit,
                "device_ms": device_ms,
                "first_over_device_ms": first_over_device_ms,
            },
        )
        silence = self._silence
        if silence is not None and spec.priority > silence.covers:
            self._silence = None
            self._emit("alarm_silence_broken", {"alarm": alarm, "priority": spec.priority.value})
        return True

    def condition_cleared(self, alarm: str, t_s: float) -> bool:
        """The condition that raised `alarm` is gone; True when the alarm is cleared by it.

        A latching alarm not yet acknowledged stays (SR-21) and is cleared by
        its acknowledgement. Not active, or its condition already gone: nothing.
        """
        _spec(alarm)
        self._expire(t_s)
        current = self._active.get(alarm)
        if current is None or not current.condition_present:
            return False
        current.condition_present = False
        if current.spec.latches and not current.acknowledged:
            return False
        self._clear(alarm)
        return True

    def acknowledge(self, alarm: str, t_s: float) -> tuple[bool, str]:
        """The operator's `ack_alarm`: (accepted, reason). Clears it if its condition is gone."""
        self._expire(t_s)
        if alarm not in ALARMS:
            return False, f"unknown alarm {alarm!r}; expected one of the alarm table's ids"
        current = self._active.get(alarm)
        if current is None:
            return False, f"{alarm} is not active"
        if current.acknowledged:
            return False, f"{alarm} is already acknowledged"
        current.acknowledged = True
        self._emit("alarm_acknowledged", {"alarm": alarm})
        if not current.condition_present:
            self._clear(alarm)
            return True, "acknowledged and cleared"
        return True, "acknowledged; it clears when its condition is gone"

    def silence(self, duration_s: float, t_s: float) -> tuple[bool, str]:
        """The operator's `silence_alarms`: (accepted, reason); 0 < duration_s <= 120 (SR-21)."""
        self._expire(t_s)
        if isinstance(duration_s, bool) or not isinstance(duration_s, int | float):
            return False, f"duration_s = {duration_s!r} is not a number of seconds"
        if not (math.isfinite(duration_s) and 0.0 < duration_s <= MAX_SILENCE_S):
            return False, (
                f"duration_s = {duration_s!r} out of range: more than 0 and at most "
                f"{MAX_SILENCE_S:g} s (SR-21)"
            )
        if not self._active:
            return False, "no active alarm to silence"
        silence = _Silence(t_s + duration_s, max(a.spec.priority for a in self._active.values()))
        if silence == self._silence:
            return True, f"already silenced until t_s = {silence.until_t_s:g}"
        self._silence = silence
        self._emit("alarm_silenced", {"until_t_s": silence.until_t_s, "duration_s": duration_s})
        return True, f"silenced until t_s = {silence.until_t_s:g}"

    def tick(self, t_s: float) -> None:
        """Let time pass: an expired silence ends (`alarm_silence_ended`)."""
        self._expire(t_s)

    # --- views -------------------------------------------------------------------------

    def is_active(self, alarm: str) -> bool:
        return alarm in self._active

    def active(self) -> list[AlarmState]:
        """The active alarms, most urgent first, then oldest first."""
        states = [
            AlarmState(
                alarm=alarm,
                priority=a.spec.priority,
                sr=a.spec.sr,
                raised_t_s=a.raised_t_s,
                acknowledged=a.acknowledged,
                condition_present=a.condition_present,
                value=a.value,
                limit=a.limit,
            )
            for alarm, a in self._active.items()
        ]
        states.sort(key=lambda s: (-s.priority.rank, s.raised_t_s))
        return states

    def highest(self, t_s: float) -> Priority | None:
        """The most urgent active priority, silenced or not (the visual indication)."""
        return max((a.spec.priority for a in self._active.values()), default=None)

    def audible(self, t_s: float) -> bool:
        """An alarm is active and no unbroken, unexpired silence covers `t_s`."""
        return bool(self._active) and self.silenced_until(t_s) is None

    def silenced_until(self, t_s: float) -> float | None:
        """The end of the silence running at `t_s`, or None."""
        silence = self._silence
        if silence is None or t_s >= silence.until_t_s:
            return None
        return silence.until_t_s

    def blocking_freeze(self) -> list[str]:
        """Active alarms whose table row blocks a new freeze (the procedure's guard)."""
        return [alarm for alarm, a in self._active.items() if a.spec.blocks_freeze]

    def latched_unacknowledged(self) -> list[str]:
        return [alarm for alarm, a in self._active.items() if a.spec.latches and not a.acknowledged]

    # --- internals ---------------------------------------------------------------------

    def _clear(self, alarm: str) -> None:
        del self._active[alarm]
        self._emit("alarm_cleared", {"alarm": alarm})
        silence = self._silence
        if not self._active and silence is not None:
            self._silence = None
            self._emit(
                "alarm_silence_ended", {"reason": "all_cleared", "until_t_s": silence.until_t_s}
            )

    def _expire(self, t_s: float) -> None:
        silence = self._silence
        if silence is not None and t_s >= silence.until_t_s:
            self._silence = None
            self._emit("alarm_silence_ended", {"reason": "expired", "until_t_s": silence.until_t_s})


def _spec(alarm: str) -> AlarmSpec:
    spec = ALARMS.get(alarm)
    if spec is None:
        raise ValueError(
            f"unknown alarm id {alarm!r}: raise only the ids of the alarm table "
            "(console.alarms.ALARMS)"
        )
    return spec

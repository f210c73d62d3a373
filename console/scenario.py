"""QA scenario files: one TOML file per scenario, strictly validated (SR-30), no Python needed.

A scenario says what to run (profile, gas, seed, procedure parameters, the
simulated device's identity, faults), what the operator does (the scripted
operator of `interfaces.md`, plus scenario actions at times, phases or state
entries, wrong ones included) and what must be seen (`[[expect]]` entries:
alarms raised or never raised, the safe state within N ms of device time,
the withdraw lock, outcome and exit code, measured values, events). The
language reference with an example of every field is `docs/qa.md`.

Loading is strict: unknown keys, NaN and infinity, strings where numbers
belong and out-of-range values are refused, never coerced; a bad file is
refused with its path, the field and the reason (`ScenarioError`, exit 2 of
`qa run`). Fault specs are parsed with the simulator's own parser, alarm,
event, state and action names are checked against the console's, so a typo
can never make an expectation pass by looking for something that cannot
happen.
"""

from __future__ import annotations

import difflib
import math
import re
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Final, Literal, TypeAlias, get_args

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from console.actions import ACTIONS, Checklist, validate_action
from console.alarms import ALARMS
from console.config import (
    NO_VALUE,
    ConfigError,
    ConsoleConfig,
    _Verbatim,
    format_error,
    loads_config,
    render_value,
)
from console.procedure import STATES
from simulator.faults import FAULTS, FaultSpec, FaultSpecError, parse_fault

_STRICT = ConfigDict(strict=True, extra="forbid", allow_inf_nan=False, frozen=True)

#: Every event name the console writes (interfaces.md "Events" and docs/events.md). An
#: expectation naming another is refused: `no_event` on a misspelt name would always pass.
EVENTS: Final[frozenset[str]] = frozenset(
    {
        "session_started",
        "session_interrupted",
        "device_identified",
        "procedure_started",
        "procedure_finished",
        "state_changed",
        "estimates",
        "trigger_refused",
        "checklist_recorded",
        "leak_test",
        "localized",
        "locked_start",
        "valve_commanded",
        "valve_reported",
        "safe_state_commanded",
        "safe_state_reported",
        "safe_state_unverified",
        "stim_commanded",
        "stim_reported",
        "command_acked",
        "command_nacked",
        "command_refused",
        "alarm_raised",
        "alarm_acknowledged",
        "alarm_silenced",
        "alarm_silence_broken",
        "alarm_silence_ended",
        "alarm_cleared",
        "withdraw_safe",
        "operator_action",
        "link_lost",
        "link_restored",
        "link_health",
        "device_reset",
        "device_fault_report",
        "fault_injected",
        "record_failed",
        "record_restored",
        "telemetry",
        "session_finished",
    }
)
OUTCOMES: Final = ("completed", "aborted", "faulted", "estopped", "interrupted")
SAMPLED: Final = ("tip_c", "supply_psi", "exhaust_psi")
Quantity: TypeAlias = Literal[
    "min_tip_c",
    "max_tip_c",
    "mean_tip_c",
    "min_supply_psi",
    "max_supply_psi",
    "mean_supply_psi",
    "min_exhaust_psi",
    "max_exhaust_psi",
    "mean_exhaust_psi",
    "time_below_target_s",
    "time_to_target_s",
    "duration_s",
    "threshold_ma",
]
QUANTITIES: Final[tuple[str, ...]] = get_args(Quantity)
_PRINTABLE_ID = re.compile(r"[!-~]{1,16}")


# --- small value types ----------------------------------------------------------------------


def _known(kind: str, names: Iterable[str]) -> BeforeValidator:
    """A string that must be one of `names`; the error suggests the closest one."""
    allowed = sorted(names)

    def check(value: object) -> object:
        if isinstance(value, str) and value not in allowed:
            close = difflib.get_close_matches(value, allowed, n=1)
            hint = f" (did you mean {close[0]}?)" if close else f"; known: {', '.join(allowed)}"
            raise ValueError(f"unknown {kind}{hint}")
        return value

    return BeforeValidator(check)


AlarmId = Annotated[str, _known("alarm", ALARMS)]
EventName = Annotated[str, _known("event", EVENTS)]
StateName = Annotated[str, _known("state", STATES)]
ActionName = Annotated[str, _known("action", ACTIONS)]
FaultName = Annotated[str, _known("fault", FAULTS)]

_SR = re.compile(r"SR-(\d{2})")


def _sr_id(value: object) -> object:
    if isinstance(value, str):
        m = _SR.fullmatch(value)
        if m is None or not 1 <= int(m.group(1)) <= 32:
            raise ValueError("expected a requirement id SR-01..SR-32 (two digits)")
    return value


SrId = Annotated[str, BeforeValidator(_sr_id)]


def _finite_tree(value: object, where: str = "") -> None:
    """Free-form tables (action params, `where`, `[config]`) hold no NaN or infinity (SR-30)."""
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{where or 'value'} = {render_value(value)}: not a finite number")
    if isinstance(value, dict):
        for key, inner in value.items():
            _finite_tree(inner, f"{where}.{key}" if where else str(key))
    elif isinstance(value, list):
        for i, inner in enumerate(value):
            _finite_tree(inner, f"{where}[{i + 1}]")


class Range(BaseModel):
    """`{ min = A, max = B }` (either may be left out); a plain number means exactly that."""

    model_config = _STRICT

    min: float | None = None
    max: float | None = None

    @model_validator(mode="after")
    def _ordered(self) -> Range:
        if self.min is None and self.max is None:
            raise ValueError("give min, max or both")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min ({self.min:g}) is above max ({self.max:g})")
        return self

    def holds(self, value: float) -> bool:
        tol = 1e-9 * max(1.0, abs(value))
        return (self.min is None or value >= self.min - tol) and (
            self.max is None or value <= self.max + tol
        )

    def __str__(self) -> str:
        if self.min is not None and self.max is not None:
            return (
                f"{_num(self.min)}"
                if self.min == self.max
                else f"{_num(self.min)}..{_num(self.max)}"
            )
        if self.min is not None:
            return f">= {_num(self.min)}"
        return f"<= {_num(self.max if self.max is not None else math.inf)}"


def _exact(value: object) -> object:
    if isinstance(value, int | float) and not isinstance(value, bool):
        if not math.isfinite(value):
            raise ValueError("not a finite number")
        return {"min": value, "max": value}
    return value


RangeField = Annotated[Range, BeforeValidator(_exact)]

Scalar: TypeAlias = str | int | float | bool
Where: TypeAlias = dict[str, Scalar | list[Scalar]]


def _problems(exc: ValidationError) -> str:
    """A nested model's errors in a line: ``checklist.raynaud: Field required``."""
    parts = []
    for e in exc.errors(include_url=False):
        where = ".".join(str(k) for k in e["loc"]) or "params"
        parts.append(f"{where}: {e['msg'].removeprefix('Value error, ')}")
    return "; ".join(parts)


def _num(value: float) -> str:
    if float(value).is_integer() and abs(value) < 1e15:
        return str(int(value))
    return f"{value:.6g}"


# --- phases: the fault WHEN syntax of interfaces.md -------------------------------------------

_PHASE = re.compile(
    r"^(?:(?P<kind>freeze|thaw)(?P<index>[1-9]\d*)|(?P<localize>localize))"
    r"(?:\+(?P<offset>\d+(?:\.\d+)?))?$"
)
_WINDOW = re.compile(r"^(?:(?P<kind>freeze|thaw)(?P<index>[1-9]\d*)|(?P<other>localize|run))$")


@dataclass(frozen=True, slots=True)
class Phase:
    """`freezeK+S`: S seconds after the K-th reported supply open; `thawK+S` after the K-th
    reported close that follows one; `localize+S` after stimulation was first reported on."""

    kind: Literal["freeze", "thaw", "localize", "run"]
    index: int = 1
    offset_s: float = 0.0

    @property
    def label(self) -> str:
        return self.kind if self.kind in ("localize", "run") else f"{self.kind}{self.index}"

    def __str__(self) -> str:
        return self.label + (f"+{_num(self.offset_s)}" if self.offset_s else "")


def parse_phase(text: str) -> Phase:
    m = _PHASE.match(text)
    if m is None:
        raise ValueError(
            "expected a phase like the fault WHEN syntax: freezeK+S, thawK+S (K >= 1) or "
            "localize+S (e.g. freeze1+30, thaw1+5.5, localize+2)"
        )
    offset = float(m.group("offset") or 0.0)
    if m.group("localize"):
        return Phase("localize", 1, offset)
    kind: Literal["freeze", "thaw"] = "freeze" if m.group("kind") == "freeze" else "thaw"
    return Phase(kind, int(m.group("index")), offset)


def parse_window(text: str) -> Phase:
    m = _WINDOW.match(text)
    if m is None:
        raise ValueError("expected run, localize, freezeK or thawK (K >= 1), e.g. freeze1")
    if m.group("other"):
        return Phase("run" if m.group("other") == "run" else "localize")
    kind: Literal["freeze", "thaw"] = "freeze" if m.group("kind") == "freeze" else "thaw"
    return Phase(kind, int(m.group("index")))


def _phase_text(value: object) -> object:
    if isinstance(value, str):
        parse_phase(value)
    return value


def _window_text(value: object) -> object:
    if isinstance(value, str) and value not in STATES:
        try:
            parse_window(value)
        except ValueError:
            raise ValueError(
                "expected run, localize, freezeK or thawK (K >= 1, e.g. freeze1: the supply "
                "reported open), or a state name (e.g. pressurize, freeze_1: the state's first "
                "visit)"
            ) from None
    return value


PhaseText = Annotated[str, BeforeValidator(_phase_text)]
WindowText = Annotated[str, BeforeValidator(_window_text)]


# --- references: "after an event" -----------------------------------------------------------

_ANCHORS: Final = ("event", "alarm", "fault", "state", "action", "phase", "sample", "at_s")
_COMPARISONS: Final = ("above", "at_least", "below", "at_most")


class Ref(BaseModel):
    """A moment of the run an expectation is measured from (exactly one anchor)."""

    model_config = _STRICT

    event: EventName | None = None
    alarm: AlarmId | None = None
    fault: FaultName | None = None
    state: StateName | None = None
    action: ActionName | None = None
    phase: PhaseText | None = None
    sample: Literal["tip_c", "supply_psi", "exhaust_psi"] | None = None
    at_s: float | None = Field(None, ge=0.0)
    where: Where = Field(default_factory=dict)
    nth: int = 1
    first_over: bool = False
    above: float | None = None
    at_least: float | None = None
    below: float | None = None
    at_most: float | None = None
    for_s: float = Field(0.0, ge=0.0, le=3600.0)
    during: WindowText | None = None

    @field_validator("where")
    @classmethod
    def _finite_where(cls, value: Where) -> Where:
        _finite_tree(value)
        return value

    @model_validator(mode="after")
    def _one_anchor(self) -> Ref:
        given = [name for name in _ANCHORS if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError(
                f"give exactly one of {', '.join(_ANCHORS)} (got {', '.join(given) or 'none'})"
            )
        anchor = given[0]
        if self.nth == 0:
            raise ValueError("nth counts from 1 (or from the end with -1, -2, ...); 0 is not one")
        if self.where and anchor not in ("event", "action"):
            raise ValueError("where is for event and action references")
        if self.first_over and anchor != "alarm":
            raise ValueError("first_over is for alarm references")
        compared = [name for name in _COMPARISONS if getattr(self, name) is not None]
        if anchor == "sample":
            if len(compared) != 1:
                raise ValueError(
                    f"a sample reference takes exactly one of {', '.join(_COMPARISONS)}"
                )
        elif compared or self.for_s or self.during is not None:
            raise ValueError(
                f"{', '.join(_COMPARISONS)}, for_s and during are for sample references"
            )
        if anchor in ("sample", "phase", "at_s") and self.nth != 1:
            raise ValueError(f"nth is not for {anchor} references")
        return self

    @property
    def anchor(self) -> str:
        return next(name for name in _ANCHORS if getattr(self, name) is not None)

    def __str__(self) -> str:
        nth = (
            ""
            if self.nth == 1
            else (f" #{self.nth}" if self.nth > 0 else f" #{self.nth} (from the end)")
        )
        where = "".join(f", {k}={render_value(v)}" for k, v in self.where.items())
        anchor = self.anchor
        if anchor == "event":
            return f"event {self.event}{where}{nth}"
        if anchor == "alarm":
            what = "first sample over its limit" if self.first_over else "raised"
            return f"{self.alarm} {what}{nth}"
        if anchor == "fault":
            return f"fault {self.fault} started{nth}"
        if anchor == "state":
            return f"state {self.state} entered{nth}"
        if anchor == "action":
            return f"action {self.action}{where}{nth}"
        if anchor == "phase":
            return f"phase {self.phase}"
        if anchor == "at_s":
            return f"t = {_num(self.at_s or 0.0)} s"
        name, limit = next(
            (n, getattr(self, n)) for n in _COMPARISONS if getattr(self, n) is not None
        )
        op = {"above": ">", "at_least": ">=", "below": "<", "at_most": "<="}[name]
        held = f" for {_num(self.for_s)} s" if self.for_s else ""
        during = f" in {self.during}" if self.during is not None else ""
        return f"first {self.sample} {op} {_num(limit)}{held}{during}"


# --- expectations ---------------------------------------------------------------------------


class _Expect(BaseModel):
    model_config = _STRICT

    #: QA's own label for the line in the results; a description is made up otherwise.
    name: str | None = Field(None, min_length=1)


class _Within(_Expect):
    after: Ref | None = None
    within_ms: float | None = Field(None, gt=0.0, le=3_600_000.0)
    at_least_ms: float | None = Field(None, ge=0.0, le=3_600_000.0)

    @model_validator(mode="after")
    def _within_needs_after(self) -> _Within:
        for name in ("within_ms", "at_least_ms"):
            if getattr(self, name) is not None and self.after is None:
                raise ValueError(f"{name} needs after (the event it is measured from)")
        if (
            self.within_ms is not None
            and self.at_least_ms is not None
            and self.at_least_ms > self.within_ms
        ):
            raise ValueError("at_least_ms is above within_ms")
        return self


class AlarmExpect(_Within):
    """The alarm is raised (its first raise, at or after `after` when given)."""

    kind: Literal["alarm"]
    alarm: AlarmId
    priority: Literal["high", "medium", "low"] | None = None
    sr: list[SrId] | None = None
    value: RangeField | None = None
    limit: RangeField | None = None


class NoAlarmExpect(_Expect):
    """This alarm is never raised in the run."""

    kind: Literal["no_alarm"]
    alarm: AlarmId


class NoAlarmsExpect(_Expect):
    """No alarm at all is raised, but those `allowed`."""

    kind: Literal["no_alarms"]
    allowed: list[AlarmId] = Field(default_factory=list)


class SafeStateExpect(_Expect):
    """The device reports the safe state (or only the supply closed) within N ms of device time."""

    kind: Literal["safe_state"]
    after: Ref
    within_ms: float = Field(gt=0.0, le=3_600_000.0)
    state: Literal["safe", "supply_closed"] = "safe"


class WithdrawLockExpect(_Expect):
    """`withdraw_safe` never turns true before its conditions, counted from the supply's close."""

    kind: Literal["withdraw_lock"]
    tip_at_least_c: float | None = Field(None, ge=-100.0, le=70.0)
    tip_for_s: float = Field(1.0, ge=0.0, le=600.0)
    after_supply_closed_s: float | None = Field(None, ge=0.0, le=7 * 86400.0)
    release_factor: float | None = Field(None, ge=1.0, le=10.0)
    released: bool | None = None

    @model_validator(mode="after")
    def _something(self) -> WithdrawLockExpect:
        if (
            self.tip_at_least_c is None
            and self.after_supply_closed_s is None
            and self.release_factor is None
            and self.released is None
        ):
            raise ValueError(
                "give at least one of tip_at_least_c, after_supply_closed_s, release_factor, "
                "released"
            )
        if self.release_factor is not None and self.tip_at_least_c is None:
            raise ValueError("release_factor needs tip_at_least_c (the tip reading it is timed to)")
        return self


class OutcomeExpect(_Expect):
    """How the run ended: outcome, reason, the exit code `simulate` would give, the lock."""

    kind: Literal["outcome"]
    outcome: Literal["completed", "aborted", "faulted", "estopped", "interrupted"] | None = None
    reason: str | None = None
    exit_code: Literal[0, 1, 3, 5] | None = None
    locked: bool | None = None

    @model_validator(mode="after")
    def _something(self) -> OutcomeExpect:
        if (
            self.outcome is None
            and self.reason is None
            and self.exit_code is None
            and self.locked is None
        ):
            raise ValueError("give at least one of outcome, reason, exit_code, locked")
        return self


class MeasureExpect(_Expect):
    """A value measured from every telemetry sample in a window, within a range."""

    kind: Literal["measure"]
    quantity: Quantity
    during: WindowText = "run"
    last_s: float | None = Field(None, gt=0.0, le=7 * 86400.0)
    target_c: float | None = Field(None, ge=-100.0, le=70.0)
    min: float | None = None
    max: float | None = None

    @model_validator(mode="after")
    def _range(self) -> MeasureExpect:
        if self.min is None and self.max is None:
            raise ValueError("give min, max or both")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min ({self.min:g}) is above max ({self.max:g})")
        if self.last_s is not None and self.quantity == "threshold_ma":
            raise ValueError("last_s is not for threshold_ma")
        if self.target_c is not None and self.quantity not in (
            "time_below_target_s",
            "time_to_target_s",
        ):
            raise ValueError("target_c is for time_below_target_s and time_to_target_s")
        return self

    @property
    def range(self) -> Range:
        return Range(min=self.min, max=self.max)


class EventExpect(_Within):
    """The event occurs (`count` times, default at least once), maybe within N ms of another."""

    kind: Literal["event"]
    event: EventName
    where: Where = Field(default_factory=dict)
    count: RangeField | None = None

    @field_validator("where")
    @classmethod
    def _finite_where(cls, value: Where) -> Where:
        _finite_tree(value)
        return value


class NoEventExpect(_Expect):
    """The event never occurs (after `after`, when given)."""

    kind: Literal["no_event"]
    event: EventName
    where: Where = Field(default_factory=dict)
    after: Ref | None = None
    within_ms: float | None = Field(None, gt=0.0, le=3_600_000.0)

    @model_validator(mode="after")
    def _within_needs_after(self) -> NoEventExpect:
        if self.within_ms is not None and self.after is None:
            raise ValueError("within_ms needs after (the event it is measured from)")
        return self

    @field_validator("where")
    @classmethod
    def _finite_where(cls, value: Where) -> Where:
        _finite_tree(value)
        return value


Expectation: TypeAlias = Annotated[
    AlarmExpect
    | NoAlarmExpect
    | NoAlarmsExpect
    | SafeStateExpect
    | WithdrawLockExpect
    | OutcomeExpect
    | MeasureExpect
    | EventExpect
    | NoEventExpect,
    Field(discriminator="kind"),
]
KINDS: Final = (
    "alarm",
    "no_alarm",
    "no_alarms",
    "safe_state",
    "withdraw_lock",
    "outcome",
    "measure",
    "event",
    "no_event",
)


# --- actions, faults, device, operator ----------------------------------------------------------


class ActionEntry(BaseModel):
    """One operator action of interfaces.md, at a time, a phase, or a state entry."""

    model_config = _STRICT

    action: ActionName
    params: dict[str, Any] = Field(default_factory=dict)
    at_s: float | None = Field(None, ge=0.0, le=7 * 86400.0)
    at: PhaseText | None = None
    on_state: StateName | None = None
    after_s: float = Field(0.0, ge=0.0, le=7 * 86400.0)
    expect: Literal["accepted", "refused"] | None = None
    reason_contains: str | None = Field(None, min_length=1)
    note: str = ""

    @field_validator("params")
    @classmethod
    def _finite_params(cls, value: dict[str, Any]) -> dict[str, Any]:
        _finite_tree(value)
        return value

    @model_validator(mode="after")
    def _when(self) -> ActionEntry:
        given = [n for n in ("at_s", "at", "on_state") if getattr(self, n) is not None]
        if len(given) != 1:
            raise ValueError(
                f"give exactly one of at_s, at, on_state (got {', '.join(given) or 'none'})"
            )
        if self.after_s and self.on_state is None:
            raise ValueError("after_s is for on_state (at takes its own +S)")
        if self.reason_contains is not None and self.expect != "refused":
            raise ValueError('reason_contains needs expect = "refused"')
        try:
            validate_action(self.action, self.params)
        except ValueError as exc:  # pydantic's ValidationError included
            if self.expect != "refused":
                detail = _problems(exc) if isinstance(exc, ValidationError) else str(exc)
                raise ValueError(
                    f"params are not valid for {self.action} ({detail}); a deliberately wrong "
                    'action says expect = "refused"'
                ) from None
        return self

    @property
    def when(self) -> str:
        if self.at_s is not None:
            return f"@{_num(self.at_s)} s"
        if self.at is not None:
            return f"@{self.at}"
        return f"on {self.on_state}" + (f"+{_num(self.after_s)} s" if self.after_s else "")


class FaultEntry(BaseModel):
    model_config = _STRICT

    spec: str = Field(min_length=1)
    note: str = ""

    @field_validator("spec")
    @classmethod
    def _parses(cls, value: str) -> str:
        if value.strip() == "help":
            raise ValueError("help is not a fault (probe-console simulate --fault help lists them)")
        try:
            parse_fault(value)
        except FaultSpecError as exc:
            raise ValueError(str(exc)) from None
        return value


class DeviceTable(BaseModel):
    """The simulated device's identity (SR-18); simulate's --probe-model ... options."""

    model_config = _STRICT

    probe_model: str = "CRYO-20G-90"
    probe_serial: str = "PRB-SIM-0001"
    probe_uses: int = Field(0, ge=0, le=0xFFFF)
    protocol_version: int = Field(1, ge=0, le=0xFF)
    gas: Literal["N2O", "CO2"] | None = None

    @field_validator("probe_model", "probe_serial")
    @classmethod
    def _text(cls, value: str) -> str:
        if not _PRINTABLE_ID.fullmatch(value):
            raise ValueError("must be 1..16 printable ASCII characters without spaces")
        return value


class OperatorTable(BaseModel):
    """Whether the scripted operator of interfaces.md runs, and what it gives."""

    model_config = _STRICT

    scripted: bool = True
    localize_ma: float | None = Field(None, ge=0.01, le=5.0)
    checklist: dict[str, Any] | None = None

    @field_validator("checklist")
    @classmethod
    def _checklist(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None:
            _finite_tree(value)
            try:
                Checklist.model_validate(value)
            except ValidationError as exc:
                raise ValueError(f"not a checklist of interfaces.md: {_problems(exc)}") from None
        return value


class ProcedureTable(BaseModel):
    """The procedure's parameters; their ranges depend on the profile (SR-17)."""

    model_config = _STRICT

    cycles: int | None = None
    freeze_s: float | None = None
    thaw_s: float | None = None
    leak_window_s: float | None = None


_CONFIG_OWNED: Final = {
    ("gas",): "gas",
    ("procedure", "profile"): "profile",
    ("procedure", "cycles"): "procedure.cycles",
    ("procedure", "freeze_s"): "procedure.freeze_s",
    ("procedure", "thaw_s"): "procedure.thaw_s",
    ("procedure", "leak_window_s"): "procedure.leak_window_s",
}


class Scenario(BaseModel):
    """One scenario file (docs/qa.md)."""

    model_config = _STRICT

    name: str | None = Field(None, min_length=1, max_length=200)
    description: str = ""
    sr: list[SrId] = Field(min_length=1)
    requires: Literal["simulator", "any"] = "any"
    profile: Literal["clinical", "bench"] = "clinical"
    gas: Literal["N2O", "CO2"] = "N2O"
    seed: int = Field(0, ge=0, le=2**32 - 1)
    max_s: float = Field(3600.0, gt=0.0, le=7 * 86400.0)
    procedure: ProcedureTable = Field(default_factory=ProcedureTable)
    config: dict[str, Any] = Field(default_factory=dict)
    device: DeviceTable | None = None
    operator: OperatorTable = Field(default_factory=OperatorTable)
    fault: list[FaultEntry] = Field(default_factory=list)
    action: list[ActionEntry] = Field(default_factory=list)
    expect: list[Expectation] = Field(min_length=1)

    @field_validator("config")
    @classmethod
    def _config(cls, value: dict[str, Any]) -> dict[str, Any]:
        _finite_tree(value)
        for keys, use in _CONFIG_OWNED.items():
            inner: Any = value
            for key in keys:
                inner = inner.get(key) if isinstance(inner, dict) else None
            if inner is not None:
                raise ValueError(
                    f"{'.'.join(keys)} is set by the scenario's own key {use}: use that"
                )
        return value

    @model_validator(mode="after")
    def _requires(self) -> Scenario:
        if self.requires != "simulator":
            if self.fault:
                raise ValueError('a scenario that injects faults says requires = "simulator"')
            if self.device is not None:
                raise ValueError(
                    "a scenario with a [device] table (the simulated identity) says "
                    'requires = "simulator"'
                )
        return self


# --- loading ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ScenarioIssue:
    """One thing wrong: ``FILE: FIELD = VALUE: REASON`` (the style of configuration errors)."""

    path: Path
    field: str  # dotted path in the file (`expect[3].priority`); "" for the file as a whole
    detail: str
    value: object = NO_VALUE

    @property
    def message(self) -> str:
        if not self.field:
            return f"{self.path}: {self.detail}"
        return f"{self.path}: {format_error(self.field, self.value, self.detail)}"


class ScenarioError(ValueError):
    """Invalid scenario files or paths: every problem found, `qa run` exits 2."""

    def __init__(self, issues: Sequence[ScenarioIssue]) -> None:
        self.issues = list(issues)
        self.messages = [i.message for i in self.issues]
        super().__init__("\n".join(self.messages))


@dataclass(frozen=True)
class ScenarioFile:
    """A validated scenario with everything it runs with."""

    path: Path
    scenario: Scenario
    config: ConsoleConfig
    faults: tuple[FaultSpec, ...]

    @property
    def name(self) -> str:
        return self.scenario.name or self.path.stem

    @property
    def needs_simulator(self) -> bool:
        return self.scenario.requires == "simulator"


def field_path(loc: Sequence[str | int]) -> str:
    """``expect[3].after.sample``: list entries counted from 1, union tags left out."""
    out = ""
    parts = list(loc)
    i = 0
    while i < len(parts):
        part = parts[i]
        if isinstance(part, int):
            out += f"[{part + 1}]"
            # A discriminated union puts the tag after the index: `expect[3].alarm.priority`.
            if i >= 1 and parts[i - 1] == "expect" and i + 1 < len(parts) and parts[i + 1] in KINDS:
                i += 1
        else:
            out += ("." if out else "") + part
        i += 1
    return out


_TYPE_NAMES: Final = {
    "float_type": "a number",
    "int_type": "an integer",
    "bool_type": "true or false",
    "string_type": "a string",
    "model_type": "a table",
    "model_attributes_type": "a table",
    "dict_type": "a table",
    "list_type": "an array",
}


def _kind(value: object) -> str:
    for types, name in (
        (bool, "a boolean"),
        (int, "an integer"),
        (float, "a number"),
        (str, "a string"),
        (dict, "a table"),
        (list, "an array"),
    ):
        if isinstance(value, types):
            return name
    return type(value).__name__


def _issue(path: Path, error: Mapping[str, Any]) -> ScenarioIssue:
    """A pydantic error as an issue naming the field, the value and what is allowed."""
    loc: tuple[str | int, ...] = tuple(error["loc"])
    kind: str = error["type"]
    value: object = error.get("input", NO_VALUE)
    if isinstance(value, dict | list) or value is None:
        value = NO_VALUE  # a whole table or array: the field says which
    ctx: Mapping[str, Any] = error.get("ctx") or {}
    where = field_path(loc)
    if kind == "extra_forbidden":
        value, detail = NO_VALUE, "unknown key"
        close = _close_key(loc)
        if close:
            detail += f" (did you mean {close}?)"
    elif kind == "missing":
        value, detail = NO_VALUE, "required key missing"
    elif kind == "finite_number":
        detail = "not a finite number (nan and inf are refused)"
    elif kind in _TYPE_NAMES:
        detail = f"expected {_TYPE_NAMES[kind]}, got {_kind(error.get('input'))}"
        if isinstance(value, float):
            value = _Verbatim(repr(value))  # 2.0 for an integer key: show the point
    elif kind == "literal_error":
        detail = f"expected {str(ctx.get('expected', '')).replace(chr(39), chr(34))}"
    elif kind == "union_tag_invalid":
        value = NO_VALUE
        detail = f'kind = "{ctx.get("tag")}" is not an expectation; kinds: {", ".join(KINDS)}'
    elif kind == "union_tag_not_found":
        value, detail = NO_VALUE, f"kind missing; kinds: {', '.join(KINDS)}"
    elif kind == "value_error":
        detail = str(error["msg"]).removeprefix("Value error, ")
    elif kind == "too_short" and error.get("input") == []:
        detail = "must not be empty"
    else:
        detail = str(error["msg"])
    return ScenarioIssue(path, where, detail, value)


def _close_key(loc: Sequence[str | int]) -> str | None:
    """A known key close to an unknown one, looked up on the model that refused it."""
    model: type[BaseModel] | None = Scenario
    previous: str | int | None = None
    for part in loc[:-1]:
        if model is None:
            return None
        if isinstance(part, int):
            pass
        elif previous is not None and isinstance(previous, int) and part in _KIND_MODELS:
            model = _KIND_MODELS[part]  # the tag of a discriminated union
        elif part in model.model_fields:
            model = _model_of(model.model_fields[part].annotation)
        else:
            return None
        previous = part
    if model is None:
        return None
    close = difflib.get_close_matches(str(loc[-1]), list(model.model_fields), n=1)
    return close[0] if close else None


def _model_of(annotation: Any) -> type[BaseModel] | None:
    """The model inside `X`, `X | None`, `list[X]` or an annotated union (its first member)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        found = _model_of(arg)
        if found is not None:
            return found
    return None


_KIND_MODELS: Final[dict[str, type[BaseModel]]] = {
    "alarm": AlarmExpect,
    "no_alarm": NoAlarmExpect,
    "no_alarms": NoAlarmsExpect,
    "safe_state": SafeStateExpect,
    "withdraw_lock": WithdrawLockExpect,
    "outcome": OutcomeExpect,
    "measure": MeasureExpect,
    "event": EventExpect,
    "no_event": NoEventExpect,
}


def _merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _config_field(field: str) -> str:
    """A configuration key as the scenario file spells it."""
    if field == "procedure.profile":
        return "profile"
    if field == "gas":
        return "gas"
    if field in (
        "procedure.cycles",
        "procedure.freeze_s",
        "procedure.thaw_s",
        "procedure.leak_window_s",
    ):
        return field
    return f"config.{field}"


def scenario_config(
    scenario: Scenario,
    path: Path,
    base: Mapping[str, Any] | None = None,
    base_dir: Path | None = None,
) -> ConsoleConfig:
    """The console configuration of a scenario: defaults, `--config`, `[config]`, its own keys."""
    tree = _merge(base or {}, scenario.config)
    p = scenario.procedure
    overrides: dict[str, object] = {
        "gas": scenario.gas,
        "procedure.profile": scenario.profile,
        "procedure.cycles": p.cycles,
        "procedure.freeze_s": p.freeze_s,
        "procedure.thaw_s": p.thaw_s,
        "procedure.leak_window_s": p.leak_window_s,
    }
    return loads_config(tree, overrides, base_dir=base_dir or path.parent, source=str(path))


def load_scenario(
    path: Path, base: Mapping[str, Any] | None = None, base_dir: Path | None = None
) -> ScenarioFile:
    """One file, validated; `ScenarioError` with every problem found in it."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ScenarioError([ScenarioIssue(path, "", f"cannot read: {reason}")]) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError([ScenarioIssue(path, "", f"not valid TOML: {exc}")]) from None
    try:
        scenario = Scenario.model_validate(data)
    except ValidationError as exc:
        issues = [_issue(path, e) for e in exc.errors(include_url=False)]
        raise ScenarioError(issues) from None
    try:
        config = scenario_config(scenario, path, base, base_dir)
    except ConfigError as exc:
        raise ScenarioError(
            [ScenarioIssue(path, _config_field(i.field), i.detail, i.value) for i in exc.issues]
        ) from None
    faults = tuple(parse_fault(f.spec) for f in scenario.fault)
    return ScenarioFile(path, scenario, config, faults)


def find_files(paths: Sequence[Path]) -> list[Path]:
    """Files as given, folders searched (recursively) for `*.toml`; in a stable order."""
    found: list[Path] = []
    issues: list[ScenarioIssue] = []
    for path in paths:
        if path.is_dir():
            inside = sorted(p for p in path.rglob("*.toml") if p.is_file())
            if not inside:
                issues.append(ScenarioIssue(path, "", "no scenario files (*.toml) in this folder"))
            found.extend(inside)
        elif path.is_file():
            found.append(path)
        else:
            issues.append(ScenarioIssue(path, "", "no such file or folder"))
    if issues:
        raise ScenarioError(issues)
    unique: list[Path] = []
    seen: set[Path] = set()
    for p in found:
        key = p.resolve()
        if key not in seen:
            seen.add(key)
            unique.append(p)
    return unique


def load_scenarios(
    paths: Sequence[Path], base: Mapping[str, Any] | None = None, base_dir: Path | None = None
) -> list[ScenarioFile]:
    """Every scenario under `paths`; `ScenarioError` with every problem of every file."""
    files = find_files(paths)
    loaded: list[ScenarioFile] = []
    issues: list[ScenarioIssue] = []
    for path in files:
        try:
            loaded.append(load_scenario(path, base, base_dir))
        except ScenarioError as exc:
            issues.extend(exc.issues)
    names: dict[str, Path] = {}
    for sf in loaded:
        other = names.get(sf.name)
        if other is not None:
            issues.append(
                ScenarioIssue(
                    sf.path,
                    "name",
                    f'"{sf.name}" is also the name of {other}: names must be unique',
                )
            )
        names[sf.name] = sf.path
    if issues:
        raise ScenarioError(issues)
    return loaded


__all__ = [
    "EVENTS",
    "KINDS",
    "QUANTITIES",
    "ActionEntry",
    "AlarmExpect",
    "EventExpect",
    "Expectation",
    "MeasureExpect",
    "NoAlarmExpect",
    "NoAlarmsExpect",
    "NoEventExpect",
    "OutcomeExpect",
    "Phase",
    "Range",
    "Ref",
    "SafeStateExpect",
    "Scenario",
    "ScenarioError",
    "ScenarioFile",
    "ScenarioIssue",
    "WithdrawLockExpect",
    "field_path",
    "find_files",
    "load_scenario",
    "load_scenarios",
    "parse_phase",
    "parse_window",
]

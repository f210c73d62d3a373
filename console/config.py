"""The one validated configuration of the console: every limit, one source of truth.

Each layer owns the parameter models it needs (the link's timings and the
sensors' calibrations in `drivers/`); this module composes them with the
console's own (gas profiles, probe models, procedure, interlock timings) into
`ConsoleConfig`, the one thing a user edits (DESIGN.md, principle 4).

- **Embedded defaults.** `ConsoleConfig()` is the configuration of
  `safety-requirements.md` and `domain.md`; everything runs with no file.
  `load_config(path, overrides)` lays a TOML file with the same tables, then
  the command line's values, over those defaults (tables merge key by key, so a
  file names only what it changes; a new probe model or stimulation preset is
  added beside the default ones).
- **Strict (SR-30).** Unknown keys, NaN and infinity (TOML's `nan` and `inf`
  too), strings or booleans where numbers belong, floats where integers
  belong and out-of-range values are refused, never coerced.
- **Tighten, never loosen.** Every SR number is the loosest value allowed: the
  Field bound on its loose side *is* the default, so a configuration can make
  an alarm earlier or stricter but never later or laxer. `_sr_limit` builds
  such a field and records which way is tighter and which SR it serves.
- **Profiles (SR-17).** `procedure.profile` chooses the clinical or bench
  ranges of cycles, freeze, thaw and leak window; every pressure and
  temperature limit is the same in both.
- **Errors** are one line each, naming the dotted key, the value and the
  allowed range with unit and profile:
  ``procedure.freeze_s = 300 out of range 120..240 s (clinical)``; a value
  given on the command line names its option first:
  ``--freeze-s (procedure.freeze_s) = 300 out of range 120..240 s (clinical)``.

`docs/configuration.md` is generated from these models by
`configuration_reference()` (`probe-console config reference`), and a test
fails when the committed page differs.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import math
import re
import tomllib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time
from pathlib import Path
from typing import Annotated, Any, Final, Literal, TypeAlias, get_args, get_origin

import annotated_types
import tomli_w
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic.fields import FieldInfo
from pydantic_core import PydanticCustomError

from drivers.link import LinkParams
from drivers.pressure import PressureCalibration
from drivers.stimulator import StimLimits, StimulationError, Stimulator
from drivers.thermistor import ThermistorParams
from protocols.messages import TEXT_FIELD_LEN

_STRICT = ConfigDict(strict=True, extra="forbid", allow_inf_nan=False, frozen=True)

Tighter: TypeAlias = Literal["lower", "higher"]
"""Which way a safety limit may move: ``lower`` means it may only be lowered."""

Profile: TypeAlias = Literal["clinical", "bench"]
PROFILES: Final[tuple[Profile, ...]] = ("clinical", "bench")
GasName: TypeAlias = Literal["N2O", "CO2"]
GASES: Final[tuple[GasName, ...]] = ("N2O", "CO2")

DEFAULT_PROBE_MODEL: Final = "CRYO-20G-90"
"""The default probe of domain.md: 20 G, 90 mm shaft, closed tip."""


def _sr_limit(
    default: float,
    *,
    sr: str,
    tighter: Tighter,
    description: str,
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
) -> Any:
    """A safety limit whose default is its loosest allowed value.

    ``tighter="lower"``: the default is the upper bound (give ``ge`` or ``gt``
    for the other side); ``tighter="higher"``: the default is the lower bound
    (give ``le``). The SR and the direction go into the JSON schema extras,
    where the error messages, the reference page and the tests read them.
    """
    if tighter == "lower":
        if le is not None:
            raise TypeError("tighter='lower' takes its upper bound from the default")
        le = default
    else:
        if ge is not None or gt is not None:
            raise TypeError("tighter='higher' takes its lower bound from the default")
        ge = default
    return Field(
        default,
        ge=ge,
        gt=gt,
        le=le,
        description=f"{description} ({sr})",
        json_schema_extra={"sr": sr, "tighter": tighter},
    )


def _refuse(detail: str, *, at: tuple[str, ...] = (), value: object = None) -> PydanticCustomError:
    """An error of ours: `detail` follows the value; `at` names a key below the raising field."""
    return PydanticCustomError("config", "{detail}", {"detail": detail, "at": at, "value": value})


# --- gas profiles --------------------------------------------------------------


class GasProfile(BaseModel):
    """What one gas allows: its thermal floor, the supply window, the hard pressure limits.

    The numbers are the same in the clinical and the bench profile (SR-17).
    `N2OProfile` and `CO2Profile` fix each gas's own defaults and bounds.
    """

    model_config = _STRICT

    boiling_c: float = _sr_limit(
        -88.5,
        sr="SR-10",
        tighter="higher",
        description="boiling (sublimation) point at 0 psig, C; the thermal floor",
    )
    floor_margin_c: float = _sr_limit(
        3.0,
        sr="SR-10",
        tighter="lower",
        ge=0.0,
        description="a tip reading colder than boiling_c minus this is a sensor fault, C",
    )
    supply_min_psi: float = _sr_limit(
        600.0,
        sr="SR-04",
        tighter="higher",
        le=800.0,
        description="a freeze starts only with the supply at or above this, psig",
    )
    supply_max_psi: float = _sr_limit(
        800.0,
        sr="SR-04",
        tighter="lower",
        ge=600.0,
        description="... and at or below this, psig; above supply_min_psi",
    )
    supply_over_psi: float = _sr_limit(
        900.0,
        sr="SR-05",
        tighter="lower",
        description="supply over-pressure: safe state, psig; above supply_max_psi",
    )
    supply_low_psi: float = _sr_limit(
        550.0,
        sr="SR-06",
        tighter="higher",
        le=800.0,
        description="supply low during a freeze: the freeze ends, psig; below supply_min_psi",
    )
    exhaust_over_psi: float = _sr_limit(
        20.0,
        sr="SR-07",
        tighter="lower",
        gt=0.0,
        description="exhaust blocked: safe state, psig",
    )
    exhaust_high_psi: float = _sr_limit(
        15.0,
        sr="SR-07",
        tighter="lower",
        gt=0.0,
        description="exhaust high: ALM_EXHAUST_HIGH, psig; below exhaust_over_psi",
    )
    exhaust_flow_min_psi: float = _sr_limit(
        5.0,
        sr="SR-08",
        tighter="higher",
        le=20.0,
        description="exhaust below this with the supply open is no flow, psig; "
        "below exhaust_high_psi",
    )
    freeze_target_c: float = _sr_limit(
        -60.0,
        sr="SR-11",
        tighter="lower",
        description="the tip must reach this within weak_freeze_s, C; above the sensor floor",
    )

    @property
    def sensor_floor_c(self) -> float:
        """SR-10: a reading colder than this is physically impossible (N2O -91.5, CO2 -81.5)."""
        return self.boiling_c - self.floor_margin_c

    @field_validator("supply_max_psi")
    @classmethod
    def _max_above_min(cls, value: float, info: ValidationInfo) -> float:
        return _above(value, info, "supply_min_psi", "psi")

    @field_validator("supply_over_psi")
    @classmethod
    def _over_above_window(cls, value: float, info: ValidationInfo) -> float:
        return _above(value, info, "supply_max_psi", "psi")

    @field_validator("supply_low_psi")
    @classmethod
    def _low_below_window(cls, value: float, info: ValidationInfo) -> float:
        return _below(value, info, "supply_min_psi", "psi")

    @field_validator("exhaust_high_psi")
    @classmethod
    def _high_below_over(cls, value: float, info: ValidationInfo) -> float:
        return _below(value, info, "exhaust_over_psi", "psi")

    @field_validator("exhaust_flow_min_psi")
    @classmethod
    def _flow_below_high(cls, value: float, info: ValidationInfo) -> float:
        return _below(value, info, "exhaust_high_psi", "psi")

    @field_validator("freeze_target_c")
    @classmethod
    def _target_above_floor(cls, value: float, info: ValidationInfo) -> float:
        boiling, margin = info.data.get("boiling_c"), info.data.get("floor_margin_c")
        if boiling is not None and margin is not None and value <= boiling - margin:
            floor = _num(boiling - margin)
            raise _refuse(f"must be above the sensor floor boiling_c - floor_margin_c ({floor} C)")
        return value


def _above(value: float, info: ValidationInfo, other: str, unit: str) -> float:
    bound = info.data.get(other)
    if bound is not None and value <= bound:
        raise _refuse(f"must be above {other} ({_num(bound)} {unit})")
    return value


def _below(value: float, info: ValidationInfo, other: str, unit: str) -> float:
    bound = info.data.get(other)
    if bound is not None and value >= bound:
        raise _refuse(f"must be below {other} ({_num(bound)} {unit})")
    return value


class N2OProfile(GasProfile):
    """Nitrous oxide: boils at -88.5 C; floor -91.5 C; freeze target -60 C."""

    boiling_c: float = _sr_limit(
        -88.5,
        sr="SR-10",
        tighter="higher",
        description="boiling point at 0 psig, C; the thermal floor",
    )
    freeze_target_c: float = _sr_limit(
        -60.0,
        sr="SR-11",
        tighter="lower",
        description="the tip must reach this within weak_freeze_s, C; above the sensor floor",
    )


class CO2Profile(GasProfile):
    """Carbon dioxide: sublimes at -78.5 C; floor -81.5 C; freeze target -50 C."""

    boiling_c: float = _sr_limit(
        -78.5,
        sr="SR-10",
        tighter="higher",
        description="sublimation point at 0 psig, C; the thermal floor",
    )
    freeze_target_c: float = _sr_limit(
        -50.0,
        sr="SR-11",
        tighter="lower",
        description="the tip must reach this within weak_freeze_s, C; above the sensor floor",
    )


class GasProfiles(BaseModel):
    """One profile per gas; `ConsoleConfig.gas` says which one the console is plumbed for."""

    model_config = _STRICT

    N2O: N2OProfile = Field(default_factory=N2OProfile, description="nitrous oxide")
    CO2: CO2Profile = Field(default_factory=CO2Profile, description="carbon dioxide")


# --- probes, cylinder, pressure sensors -------------------------------------------

_PROBE_NAME = re.compile(rf"[!-~]{{1,{TEXT_FIELD_LEN}}}")


class ProbeModel(BaseModel):
    """One probe model the console accepts (SR-18); the defaults are CRYO-20G-90's."""

    model_config = _STRICT

    gauge: int = Field(20, ge=10, le=30, description="shaft gauge, G")
    length_mm: float = Field(90.0, ge=10.0, le=300.0, description="shaft length, mm")
    thermistor: ThermistorParams = Field(
        default_factory=ThermistorParams, description="the tip thermistor's coefficients"
    )
    single_use: bool = Field(
        True, description="refused when opened in an earlier device session (SR-18)"
    )
    flow_g_per_s: float = Field(
        0.15, ge=0.05, le=0.5, description="nominal gas flow while freezing, for the gas estimate"
    )


class CylinderParams(BaseModel):
    """The gas cylinder, for the gas-left estimate (pressure does not show what is left)."""

    model_config = _STRICT

    net_g: float = Field(3000.0, gt=0.0, le=50_000.0, description="net gas of a full cylinder, g")


class PressureParams(BaseModel):
    """The two pressure sensors' calibrations (SR-32 judges their readings)."""

    model_config = _STRICT

    supply: PressureCalibration = Field(
        default_factory=PressureCalibration, description="supply sensor calibration"
    )
    exhaust: PressureCalibration = Field(
        default_factory=PressureCalibration, description="exhaust sensor calibration"
    )
    calibration_file: Path | None = Field(
        None,
        strict=False,  # a TOML string is a path; nothing numeric is coerced
        description="TOML file written by `probe-console calibrate pressure` whose [supply] "
        "and [exhaust] replace the two tables above; relative to the configuration "
        "file; a missing or bad file is a configuration error",
    )


class PressureCalibrationFile(BaseModel):
    """The file `probe-console calibrate pressure` writes: both sensors, nothing else."""

    model_config = _STRICT

    supply: PressureCalibration = Field(description="supply sensor calibration")
    exhaust: PressureCalibration = Field(description="exhaust sensor calibration")


# --- procedure and its profiles (SR-17) ------------------------------------------

PROFILE_RANGES: Final[Mapping[Profile, Mapping[str, tuple[float, float]]]] = {
    "clinical": {
        "cycles": (2, 3),
        "freeze_s": (120.0, 240.0),
        "thaw_s": (30.0, 120.0),
        "leak_window_s": (10.0, 10.0),
    },
    "bench": {
        "cycles": (1, 3),
        "freeze_s": (5.0, 240.0),
        "thaw_s": (5.0, 120.0),
        "leak_window_s": (2.0, 10.0),
    },
}
"""SR-17: the procedure parameters each profile allows (inclusive)."""


class ProcedureParams(BaseModel):
    """One procedure's parameters. Bench is for hardware bring-up and named in every record."""

    model_config = _STRICT

    profile: Profile = Field(
        "clinical", description="clinical, or bench for hardware bring-up (SR-17)"
    )
    cycles: int = Field(3, description="freeze-thaw cycles (SR-17)")
    freeze_s: float = Field(180.0, description="each freeze, from the reported supply open (SR-17)")
    thaw_s: float = Field(30.0, description="each thaw; the final one also needs SR-12 (SR-17)")
    release_factor: float = _sr_limit(
        2.5,
        sr="SR-12",
        tighter="higher",
        le=10.0,
        description="withdraw lock: time since the supply closed must reach this times the "
        "time the tip took to first read release_tip_c",
    )
    leak_window_s: float = Field(10.0, description="leak test window (SR-24, SR-17)")
    leak_max_psi_per_s: float = _sr_limit(
        1.5,
        sr="SR-24",
        tighter="lower",
        gt=0.0,
        description="leak test: the supply line may lose at most this, psi/s",
    )

    @field_validator("cycles", "freeze_s", "thaw_s", "leak_window_s")
    @classmethod
    def _within_profile(cls, value: float, info: ValidationInfo) -> float:
        # `profile` is declared first, so it is in `info.data` when valid; when
        # it is not, its own error is reported and the ranges cannot be judged.
        profile: Profile | None = info.data.get("profile")
        if profile is not None and info.field_name is not None:
            low, high = PROFILE_RANGES[profile][info.field_name]
            if not low <= value <= high:
                unit = unit_of(info.field_name)
                raise _refuse(f"out of range {_span(low, high, unit)} ({profile})")
        return value


# --- interlock timings ----------------------------------------------------------


class InterlockLimits(BaseModel):
    """Every SR timing and threshold the interlocks judge with; each may only be tightened.

    Debounces ("above L for T") are durations of device time with at least 2
    samples; a debounce of 0 means 2 consecutive samples.
    """

    model_config = _STRICT

    supply_window_hold_s: float = _sr_limit(
        1.0,
        sr="SR-04",
        tighter="higher",
        le=30.0,
        description="the supply must stay in the window this long before a freeze starts, s",
    )
    supply_over_hold_s: float = _sr_limit(
        0.03,
        sr="SR-05",
        tighter="lower",
        ge=0.0,
        description="supply above supply_over_psi this long: safe state, s",
    )
    supply_low_hold_s: float = _sr_limit(
        1.0,
        sr="SR-06",
        tighter="lower",
        ge=0.0,
        description="supply below supply_low_psi this long ends the freeze, s",
    )
    supply_low_timeout_s: float = _sr_limit(
        60.0,
        sr="SR-06",
        tighter="lower",
        gt=0.0,
        description="after a low supply, the procedure ends if the supply is not back in its "
        "window within this, s; above supply_window_hold_s",
    )
    exhaust_over_hold_s: float = _sr_limit(
        0.02,
        sr="SR-07",
        tighter="lower",
        ge=0.0,
        description="exhaust above exhaust_over_psi this long: safe state, s",
    )
    exhaust_close_within_s: float = _sr_limit(
        0.1,
        sr="SR-07",
        tighter="lower",
        gt=0.0,
        description="from the first sample over exhaust_over_psi to the supply reported "
        "closed, at most, s; above exhaust_over_hold_s",
    )
    exhaust_high_hold_s: float = _sr_limit(
        2.0,
        sr="SR-07",
        tighter="lower",
        ge=0.0,
        description="exhaust between exhaust_high_psi and exhaust_over_psi this long: "
        "ALM_EXHAUST_HIGH, s",
    )
    no_flow_exhaust_s: float = _sr_limit(
        2.0,
        sr="SR-08",
        tighter="lower",
        gt=0.0,
        description="supply open and exhaust still below exhaust_flow_min_psi after this: "
        "no flow, s",
    )
    no_flow_tip_s: float = _sr_limit(
        10.0,
        sr="SR-08",
        tighter="lower",
        gt=0.0,
        description="supply open and tip not below no_flow_tip_c after this: no flow, s",
    )
    no_flow_tip_c: float = _sr_limit(
        -20.0,
        sr="SR-08",
        tighter="lower",
        ge=-50.0,
        description="the tip must be below this no_flow_tip_s after the supply opens, C",
    )
    valve_mismatch_s: float = _sr_limit(
        0.1,
        sr="SR-09",
        tighter="lower",
        ge=0.0,
        description="commanded and reported valve state disagreeing this long: ALM_VALVE_FAULT, s",
    )
    tip_max_c: float = _sr_limit(
        60.0,
        sr="SR-10",
        tighter="lower",
        ge=40.0,
        description="a tip reading warmer than this is a sensor fault, C",
    )
    tip_step_c: float = _sr_limit(
        10.0,
        sr="SR-10",
        tighter="lower",
        gt=0.0,
        description="a tip change larger than this within tip_step_window_s is a sensor fault, C",
    )
    tip_step_window_s: float = _sr_limit(
        0.1,
        sr="SR-10",
        tighter="higher",
        le=1.0,
        description="the window of tip_step_c, s",
    )
    tip_stuck_c: float = _sr_limit(
        2.0,
        sr="SR-10",
        tighter="higher",
        le=20.0,
        description="a tip changing less than this in tip_stuck_s after the supply opens "
        "is stuck, C",
    )
    tip_stuck_s: float = _sr_limit(
        10.0,
        sr="SR-10",
        tighter="lower",
        gt=0.0,
        description="the window of tip_stuck_c after the supply opens, s",
    )
    weak_freeze_s: float = _sr_limit(
        30.0,
        sr="SR-11",
        tighter="lower",
        gt=0.0,
        description="the tip must reach the gas's freeze_target_c within this of the reported "
        "supply open, s",
    )
    release_tip_c: float = _sr_limit(
        2.0,
        sr="SR-12",
        tighter="higher",
        le=30.0,
        description="withdraw lock: the tip must read at least this ..., C",
    )
    release_hold_s: float = _sr_limit(
        1.0,
        sr="SR-12",
        tighter="higher",
        le=60.0,
        description="... for this long, s",
    )
    timed_thaw_s: float = _sr_limit(
        420.0,
        sr="SR-13",
        tighter="higher",
        le=3600.0,
        description="without a trusted thermistor, release needs this since the supply closed "
        "plus confirm_timed_thaw, s",
    )
    thaw_slow_s: float = _sr_limit(
        300.0,
        sr="SR-14",
        tighter="lower",
        gt=0.0,
        description="tip still below release_tip_c this long after the supply closed: "
        "ALM_THAW_SLOW, s",
    )
    pressurize_timeout_s: float = _sr_limit(
        60.0,
        sr="SR-04",
        tighter="lower",
        gt=0.0,
        description="`pressurize` waits at most this for the supply window, then faults "
        "(interfaces.md), s; above supply_window_hold_s",
    )
    link_degraded_ratio: float = _sr_limit(
        0.01,
        sr="SR-23",
        tighter="lower",
        ge=0.0,
        description="bad / (good + bad + lost) above this over link.quality_window_s: "
        "ALM_LINK_DEGRADED",
    )
    sensor_fault_hold_s: float = _sr_limit(
        0.03,
        sr="SR-32",
        tighter="lower",
        ge=0.0,
        description="a pressure reading at a rail or implausible this long: safe state, s",
    )
    sensor_plausible_restore_s: float = _sr_limit(
        5.0,
        sr="SR-32",
        tighter="higher",
        le=60.0,
        description="a pressure sensor must read plausibly this long before its alarm clears, s",
    )

    @field_validator("supply_low_timeout_s", "pressurize_timeout_s")
    @classmethod
    def _longer_than_window_hold(cls, value: float, info: ValidationInfo) -> float:
        return _above(value, info, "supply_window_hold_s", "s")

    @field_validator("exhaust_close_within_s")
    @classmethod
    def _close_after_debounce(cls, value: float, info: ValidationInfo) -> float:
        return _above(value, info, "exhaust_over_hold_s", "s")


class ApiParams(BaseModel):
    """The local control API of `serve` (SR-29): who may connect to its UNIX socket."""

    model_config = _STRICT

    allowed_uids: list[Annotated[int, Field(ge=0, le=4_294_967_294)]] = Field(
        default_factory=list,
        description=(
            "user ids allowed to call the control API besides the daemon's own (checked "
            "with the kernel's peer credentials, SO_PEERCRED; SR-29)"
        ),
    )
    max_clients: int = Field(8, ge=1, le=64, description="API clients connected at once")


# --- the composed configuration ------------------------------------------------

_COMPOSED_LIMITS: Final[Mapping[tuple[type[BaseModel], str], tuple[Tighter, str]]] = {
    (LinkParams, "heartbeat_s"): ("lower", "SR-02"),
    (LinkParams, "link_lost_s"): ("lower", "SR-03"),
    (LinkParams, "quality_window_s"): ("lower", "SR-23"),
    (StimLimits, "current_max_ma"): ("lower", "SR-16"),
    (StimLimits, "pulse_min_us"): ("higher", "SR-16"),
    (StimLimits, "pulse_max_us"): ("lower", "SR-16"),
    (StimLimits, "rate_min_hz"): ("higher", "SR-16"),
    (StimLimits, "rate_max_hz"): ("lower", "SR-16"),
    (StimLimits, "lead_max_ohm"): ("lower", "SR-16"),
}
"""The safety limits inside the drivers' models: which way is tighter, and the SR."""

QUALITY_WINDOW_MAX_S: Final = 5.0
"""SR-23 judges the link over 5 s; the link's own model allows up to 60 s, which
would dilute a burst of bad frames, so the composed configuration caps it."""

_COMPOSED_BOUNDS: Final[Mapping[tuple[type[BaseModel], str], Mapping[str, float]]] = {
    (LinkParams, "quality_window_s"): {"le": QUALITY_WINDOW_MAX_S},
}
"""Bounds the console adds to a driver's field (the driver's own still apply)."""


class ConsoleConfig(BaseModel):
    """The effective configuration: defaults, then the file, then the command line."""

    model_config = _STRICT

    gas: GasName = Field(
        "N2O", description="the gas the console is plumbed for; the device must agree (SR-18)"
    )
    link: LinkParams = Field(default_factory=LinkParams, description="the serial link")
    gases: GasProfiles = Field(default_factory=GasProfiles, description="per-gas limits")
    probes: dict[str, ProbeModel] = Field(
        default_factory=lambda: {DEFAULT_PROBE_MODEL: ProbeModel()},
        description="the probe models the console accepts, by the name the device reports",
    )
    probe_model: str = Field(
        DEFAULT_PROBE_MODEL,
        description="the probe model expected on the device; a key of `probes` (SR-18)",
    )
    cylinder: CylinderParams = Field(default_factory=CylinderParams, description="gas cylinder")
    pressure: PressureParams = Field(default_factory=PressureParams, description="pressure sensors")
    stimulation: StimLimits = Field(
        default_factory=StimLimits, description="neurostimulator limits and presets (SR-16)"
    )
    procedure: ProcedureParams = Field(
        default_factory=ProcedureParams, description="procedure parameters (SR-17)"
    )
    interlocks: InterlockLimits = Field(
        default_factory=InterlockLimits, description="interlock timings and thresholds"
    )
    api: ApiParams = Field(
        default_factory=ApiParams, description="the control API of `serve` (SR-29)"
    )

    @property
    def gas_profile(self) -> GasProfile:
        """The limits of the gas the console is plumbed for."""
        return self.gases.N2O if self.gas == "N2O" else self.gases.CO2

    @property
    def probe(self) -> ProbeModel:
        """The configured probe model."""
        return self.probes[self.probe_model]

    @field_validator("link")
    @classmethod
    def _link_within_sr(cls, link: LinkParams) -> LinkParams:
        for (model, name), bounds in _COMPOSED_BOUNDS.items():
            if model is LinkParams:
                value = getattr(link, name)
                if not _within(value, bounds):
                    raise _refuse(
                        _range_detail(model, name, tightened=True), at=(name,), value=value
                    )
        return link

    @field_validator("probes")
    @classmethod
    def _probe_names(cls, probes: dict[str, ProbeModel]) -> dict[str, ProbeModel]:
        for name in probes:
            if not _PROBE_NAME.fullmatch(name):
                raise _refuse(
                    f"a probe model name is 1..{TEXT_FIELD_LEN} printable ASCII characters "
                    "without spaces (the device reports it in a fixed-size field)",
                    at=(name,),
                )
        if not probes:
            raise _refuse("at least one probe model is needed")
        return probes

    @field_validator("probe_model")
    @classmethod
    def _known_probe(cls, name: str, info: ValidationInfo) -> str:
        probes: dict[str, ProbeModel] | None = info.data.get("probes")
        if probes is not None and name not in probes:
            raise _refuse(f"not a key of probes ({', '.join(sorted(probes))})")
        return name

    @field_validator("stimulation")
    @classmethod
    def _stimulation_consistent(cls, limits: StimLimits) -> StimLimits:
        for low, high, unit in (
            ("pulse_min_us", "pulse_max_us", "us"),
            ("rate_min_hz", "rate_max_hz", "Hz"),
        ):
            if getattr(limits, low) > getattr(limits, high):
                raise _refuse(
                    f"must not exceed {high} ({_num(getattr(limits, high))} {unit})",
                    at=(low,),
                    value=getattr(limits, low),
                )
        stimulator = Stimulator(limits)
        for name, preset in limits.presets.items():
            try:
                stimulator.check(preset.start_ma, preset.pulse_us, preset.rate_hz)
            except StimulationError as exc:
                raise _refuse(
                    f"outside stimulation's limits: {exc}", at=("presets", name)
                ) from None
        return limits


# --- errors --------------------------------------------------------------------


class _NoValue:
    def __repr__(self) -> str:
        return "NO_VALUE"


NO_VALUE: Final = _NoValue()
"""The value of an issue that has none to show (an unknown or missing key)."""


def format_error(field: str, value: object, detail: str, option: str | None = None) -> str:
    """One error line: ``[OPTION (]FIELD[)] [= VALUE] DETAIL``.

    ``format_error("procedure.freeze_s", 300, "out of range 120..240 s (clinical)",
    "--freeze-s")`` is ``--freeze-s (procedure.freeze_s) = 300 out of range 120..240 s
    (clinical)``. A range follows the value after a space; any other detail
    after a colon; without a value the detail follows the field after a colon.
    """
    head = f"{option} ({field})" if option else field
    if value is NO_VALUE:
        return f"{head}: {detail}"
    sep = " " if detail.startswith("out of range") else ": "
    return f"{head} = {render_value(value)}{sep}{detail}"


@dataclass(frozen=True)
class ConfigIssue:
    """One thing wrong with a configuration."""

    field: str
    """Dotted key (``procedure.freeze_s``), or the file for a file that cannot be read."""
    value: object
    """The value given, or `NO_VALUE`."""
    detail: str
    """What is wrong and what is allowed: ``out of range 120..240 s (clinical)``."""
    option: str | None = None
    """The command-line option that gave the value, if one did."""

    @property
    def message(self) -> str:
        return format_error(self.field, self.value, self.detail, self.option)


class ConfigError(ValueError):
    """An invalid configuration: the command line reports `messages` and exits 2 (SR-23)."""

    def __init__(self, issues: Sequence[ConfigIssue]) -> None:
        self.issues = list(issues)
        self.messages = [issue.message for issue in self.issues]
        super().__init__("\n".join(self.messages))


class _Verbatim(str):
    """A value already rendered."""


def render_value(value: object) -> str:
    """A value as the user wrote it in TOML (strings quoted, ``true``, ``nan``).

    Whole floats lose their ``.0`` (``--freeze-s 300`` parsed as a float still
    reads ``300``), except where the point is the error.
    """
    if isinstance(value, _Verbatim):
        return str(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return _num(value)
    if isinstance(value, str | Path):
        return json.dumps(str(value))
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, dict):
        return "{...}"
    if isinstance(value, list):
        return "[" + ", ".join(render_value(v) for v in value) + "]"
    return repr(value)


def _num(value: float) -> str:
    if isinstance(value, int):  # bool included
        return str(value)
    if math.isnan(value):
        return "nan"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    if value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


def _kind(value: object) -> str:
    kinds: tuple[tuple[type | tuple[type, ...], str], ...] = (
        (bool, "a boolean"),
        (int, "an integer"),
        (float, "a float"),
        (str, "a string"),
        (dict, "a table"),
        (list, "an array"),
        ((datetime, date, time), "a date or time"),
    )
    for types, name in kinds:
        if isinstance(value, types):
            return name
    return type(value).__name__


_UNIT_SUFFIXES: Final = (
    ("_g_per_s", "g/s"),
    ("_psi_per_s", "psi/s"),
    ("_psi", "psi"),
    ("_ms", "ms"),
    ("_s", "s"),
    ("_c", "C"),
    ("_hz", "Hz"),
    ("_us", "us"),
    ("_ma", "mA"),
    ("_ohm", "Ohm"),
    ("_k", "K"),
    ("_mm", "mm"),
    ("_g", "g"),
)
_UNIT_NAMES: Final = {"baudrate": "baud", "gauge": "G"}


def unit_of(name: str) -> str:
    """The unit a key's name carries (DESIGN.md: units in names); empty for a pure number."""
    if name in _UNIT_NAMES:
        return _UNIT_NAMES[name]
    for suffix, unit in _UNIT_SUFFIXES:
        if name.endswith(suffix):
            return unit
    return ""


def _extra(info: FieldInfo) -> Mapping[str, object]:
    extra = info.json_schema_extra
    return extra if isinstance(extra, dict) else {}


def safety_limit(model: type[BaseModel], name: str) -> tuple[Tighter, str] | None:
    """``(tighter, "SR-nn")`` when the key is a safety limit that may only be tightened."""
    extra = _extra(model.model_fields[name])
    tighter, sr = extra.get("tighter"), extra.get("sr")
    if tighter in ("lower", "higher") and isinstance(sr, str):
        return ("lower" if tighter == "lower" else "higher"), sr
    return _COMPOSED_LIMITS.get((model, name))


def _bounds(model: type[BaseModel], name: str) -> dict[str, float]:
    """The key's ``ge``/``gt``/``le``/``lt`` bounds, the console's own included."""
    found: dict[str, float] = {}
    for meta in model.model_fields[name].metadata:
        for key in ("ge", "gt", "le", "lt"):
            bound = getattr(meta, key, None)
            if isinstance(meta, annotated_types.BaseMetadata) and isinstance(bound, int | float):
                found[key] = float(bound)
    for key, bound in _COMPOSED_BOUNDS.get((model, name), {}).items():
        if key in ("le", "lt"):
            found.pop("le", None)
            found.pop("lt", None)
        else:
            found.pop("ge", None)
            found.pop("gt", None)
        found[key] = bound
    return found


def _within(value: float, bounds: Mapping[str, float]) -> bool:
    checks = {
        "ge": lambda b: value >= b,
        "gt": lambda b: value > b,
        "le": lambda b: value <= b,
        "lt": lambda b: value < b,
    }
    return all(checks[key](bound) for key, bound in bounds.items())


def _span(low: float | None, high: float | None, unit: str) -> str:
    text = f"{'' if low is None else _num(low)}..{'' if high is None else _num(high)}"
    return f"{text} {unit}" if unit else text


def _range_parts(model: type[BaseModel], name: str) -> tuple[str, list[str]]:
    bounds = _bounds(model, name)
    low = bounds.get("ge", bounds.get("gt"))
    high = bounds.get("le", bounds.get("lt"))
    notes = [f"{_num(bounds[k])} excluded" for k in ("gt", "lt") if k in bounds]
    return _span(low, high, unit_of(name)), notes


def range_text(model: type[BaseModel], name: str) -> str:
    """``0..0.05 s (0 excluded)``: a key's allowed range as the messages and the docs say it."""
    span, notes = _range_parts(model, name)
    return f"{span} ({'; '.join(notes)})" if notes else span


def _range_detail(model: type[BaseModel], name: str, *, tightened: bool) -> str:
    span, notes = _range_parts(model, name)
    if tightened:
        notes.append("may only be tightened")
    return f"out of range {span}" + (f" ({'; '.join(notes)})" if notes else "")


Loc: TypeAlias = tuple[str | int, ...]


def _strip_optional(tp: Any) -> Any:
    args = [a for a in get_args(tp) if a is not type(None)]
    if args and len(args) < len(get_args(tp)):
        return args[0] if len(args) == 1 else tp
    return tp


def _is_model(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, BaseModel)


def _walk(loc: Loc) -> Iterator[tuple[type[BaseModel] | None, str | None, Any]]:
    """For each step of `loc`: the owning model and key (None inside a table of
    entries), and the type found there. Stops where the type is unknown."""
    tp: Any = ConsoleConfig
    for key in loc:
        tp = _strip_optional(tp)
        if _is_model(tp):
            if not isinstance(key, str) or key not in tp.model_fields:
                return
            owner = tp
            tp = tp.model_fields[key].annotation
            yield owner, key, tp
        elif get_origin(tp) is dict:
            tp = get_args(tp)[1]
            yield None, None, tp
        else:
            return


def _field_at(loc: Loc) -> tuple[type[BaseModel], str] | None:
    steps = list(_walk(loc))
    if len(steps) != len(loc) or not steps:
        return None
    owner, key, _ = steps[-1]
    return (owner, key) if owner is not None and key is not None else None


def _model_at(loc: Loc) -> type[BaseModel] | None:
    if not loc:
        return ConsoleConfig
    steps = list(_walk(loc))
    if len(steps) != len(loc):
        return None
    tp = _strip_optional(steps[-1][2])
    return tp if _is_model(tp) else None


_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


def dotted(loc: Sequence[str | int]) -> str:
    """``probes.CRYO-20G-90.gauge``; keys that are not bare TOML keys are quoted."""
    return ".".join(str(k) if _BARE_KEY.fullmatch(str(k)) else json.dumps(str(k)) for k in loc)


_TYPE_NAMES: Final = {
    "float_type": "a number",
    "float_parsing": "a number",
    "int_type": "an integer",
    "int_parsing": "an integer",
    "int_from_float": "an integer",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "string_type": "a string",
    "model_type": "a table",
    "model_attributes_type": "a table",
    "dict_type": "a table",
    "path_type": "a path (a string)",
}
_RANGE_ERRORS: Final = frozenset(
    {"greater_than", "greater_than_equal", "less_than", "less_than_equal"}
)
_TIGHT_SIDE: Final = {
    "lower": frozenset({"less_than", "less_than_equal"}),
    "higher": frozenset({"greater_than", "greater_than_equal"}),
}


def _issue(error: Mapping[str, Any], options: Mapping[str, str]) -> ConfigIssue:
    """A pydantic error as a `ConfigIssue` that names the key, the value and what is allowed."""
    loc: Loc = tuple(error["loc"])
    kind: str = error["type"]
    value: object = error.get("input", NO_VALUE)
    ctx: Mapping[str, Any] = error.get("ctx") or {}
    if kind == "config":
        loc = loc + tuple(ctx.get("at", ()))
        if ctx.get("value") is not None:
            value = ctx["value"]
        elif ctx.get("at"):
            value = NO_VALUE
        detail = str(ctx["detail"])
    elif kind == "extra_forbidden":
        value, detail = NO_VALUE, "unknown key"
        model = _model_at(loc[:-1])
        if model is not None:
            close = difflib.get_close_matches(str(loc[-1]), list(model.model_fields), n=1)
            if close:
                detail += f" (did you mean {close[0]}?)"
    elif kind == "missing":
        value, detail = NO_VALUE, "required key missing"
    elif kind == "finite_number":
        detail = "not a finite number"
    elif kind in _RANGE_ERRORS and (found := _field_at(loc)) is not None:
        model, name = found
        limit = safety_limit(model, name)
        detail = _range_detail(model, name, tightened=bool(limit and kind in _TIGHT_SIDE[limit[0]]))
    elif kind in _TYPE_NAMES:
        detail = f"expected {_TYPE_NAMES[kind]}, got {_kind(value)}"
        if isinstance(value, float):
            value = _Verbatim(repr(value))  # 2.0 for an integer key: show the point
    elif kind == "literal_error":
        detail = f"expected {str(ctx.get('expected', '')).replace(chr(39), chr(34))}"
    elif kind == "value_error":
        value = NO_VALUE
        detail = str(error["msg"]).removeprefix("Value error, ")
    else:
        detail = str(error["msg"])
    field = dotted(loc)
    return ConfigIssue(field, value, detail, options.get(field))


def issues_from(
    exc: ValidationError, options: Mapping[str, str] | None = None
) -> list[ConfigIssue]:
    """Every error of a validation, in the models' order; `options` maps keys to CLI options."""
    return [_issue(error, options or {}) for error in exc.errors(include_url=False)]


# --- loading -------------------------------------------------------------------

CLI_OPTIONS: Final[Mapping[str, str]] = {
    "--gas": "gas",
    "--profile": "procedure.profile",
    "--cycles": "procedure.cycles",
    "--freeze-s": "procedure.freeze_s",
    "--thaw-s": "procedure.thaw_s",
}
"""Command-line options that set a configuration key (interfaces.md), for the messages."""


def _defaults_tree() -> dict[str, Any]:
    return ConsoleConfig().model_dump(mode="python")


def _merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _read_toml(path: Path, field: str, value: object = NO_VALUE) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ConfigError([ConfigIssue(field, value, f"cannot read: {reason}")]) from None
    return _parse_toml(text, field, value)


def _parse_toml(text: str, field: str, value: object = NO_VALUE) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([ConfigIssue(field, value, f"not valid TOML: {exc}")]) from None


def load_config(
    path: Path | None = None, overrides: Mapping[str, object] | None = None
) -> ConsoleConfig:
    """The effective configuration: defaults, then the TOML file at `path`, then `overrides`.

    `overrides` maps dotted keys (``procedure.freeze_s``) or command-line
    options of `CLI_OPTIONS` (``--freeze-s``) to values; ``None`` means "not
    given" and is skipped. A value from an option is reported under that
    option. Raises `ConfigError` with every problem found.
    """
    data = _read_toml(path, str(path)) if path is not None else {}
    return loads_config(data, overrides, base_dir=path.parent if path is not None else None)


def loads_config(
    data: str | Mapping[str, Any],
    overrides: Mapping[str, object] | None = None,
    *,
    base_dir: Path | None = None,
    source: str = "<configuration>",
) -> ConsoleConfig:
    """`load_config` for TOML text or an already parsed table (`source` names it in errors).

    A relative ``pressure.calibration_file`` is taken relative to `base_dir`
    (the configuration file's folder), else to the working directory.
    """
    tree = _parse_toml(data, source) if isinstance(data, str) else dict(data)
    tree = _absolute_calibration_file(tree, base_dir)
    options: dict[str, str] = {}
    for key, value in (overrides or {}).items():
        if value is None:
            continue
        field = key
        if key.startswith("-"):
            field = CLI_OPTIONS[key]  # a KeyError here is a programming error
            options[field] = key
        tree = _with_override(tree, field.split("."), value)
    try:
        config = ConsoleConfig.model_validate(_merge(_defaults_tree(), tree))
    except ValidationError as exc:
        raise ConfigError(issues_from(exc, options)) from None
    calibration = config.pressure.calibration_file
    if calibration is None:
        return config
    found = load_calibration_file(calibration)
    pressure = config.pressure.model_copy(update={"supply": found.supply, "exhaust": found.exhaust})
    return config.model_copy(update={"pressure": pressure})


def _with_override(tree: dict[str, Any], keys: Sequence[str], value: object) -> dict[str, Any]:
    """`tree` with `value` at the dotted `keys`; a table the file spoiled stays spoiled.

    When the file gives ``procedure = 3``, ``--freeze-s`` does not replace the
    bad value with a table: its error is reported, not hidden.
    """
    head, rest = keys[0], keys[1:]
    if not rest:
        return {**tree, head: value}
    inner = tree.get(head, {})
    if not isinstance(inner, dict):
        return tree
    return {**tree, head: _with_override(inner, rest, value)}


def _absolute_calibration_file(tree: dict[str, Any], base_dir: Path | None) -> dict[str, Any]:
    pressure = tree.get("pressure")
    if base_dir is None or not isinstance(pressure, dict):
        return tree
    given = pressure.get("calibration_file")
    if not isinstance(given, str) or not given or Path(given).is_absolute():
        return tree
    absolute = str((base_dir / given).absolute())
    return {**tree, "pressure": {**pressure, "calibration_file": absolute}}


def load_calibration_file(path: Path) -> PressureCalibrationFile:
    """The sensors' calibration written by `calibrate pressure`; `ConfigError` if unusable.

    Its messages name the configuration key and the file, then what is wrong
    inside it: ``pressure.calibration_file = "cal.toml": supply.span = 2 out of
    range 0.8..1.2``.
    """
    field, shown = "pressure.calibration_file", str(path)
    data = _read_toml(path, field, shown)
    try:
        return PressureCalibrationFile.model_validate(data)
    except ValidationError as exc:
        # The file's tables are PressureParams' own: locate them there for the ranges.
        inner = [_issue({**e, "loc": ("pressure", *e["loc"])}, {}) for e in exc.errors()]
        raise ConfigError(
            [ConfigIssue(field, shown, i.message.removeprefix("pressure.")) for i in inner]
        ) from None


def calibration_toml(supply: PressureCalibration, exhaust: PressureCalibration) -> str:
    """The text of a calibration file `load_calibration_file` reads back to the same values."""
    return tomli_w.dumps(
        PressureCalibrationFile(supply=supply, exhaust=exhaust).model_dump(mode="json")
    )


# --- output ---------------------------------------------------------------------


def config_tree(config: ConsoleConfig) -> dict[str, Any]:
    """The configuration as plain TOML/JSON data (an unset calibration file is left out)."""
    return config.model_dump(mode="json", exclude_none=True)


def config_toml(config: ConsoleConfig) -> str:
    """TOML that `load_config` reads back to an equal configuration (`config show`)."""
    return tomli_w.dumps(config_tree(config))


def canonical_json(config: ConsoleConfig) -> str:
    """Sorted keys, separators ``,`` and ``:``, floats by ``repr`` (interfaces.md)."""
    return json.dumps(
        config_tree(config), sort_keys=True, separators=(",", ":"), ensure_ascii=False
    )


def config_sha256(config: ConsoleConfig) -> str:
    """Stable hash of the effective configuration, for ``session_started.config_sha256``."""
    return hashlib.sha256(canonical_json(config).encode("utf-8")).hexdigest()


# --- the reference page (docs/configuration.md) ---------------------------------

REFERENCE_PATH: Final = "docs/configuration.md"
REGENERATE: Final = f"python -m console config reference > {REFERENCE_PATH}"

_INTRO: Final = f"""\
# Configuration reference

<!-- Generated by console.config.configuration_reference() from the models; do not
edit by hand. Regenerate with `{REGENERATE}`
(a test fails when this page and the models differ). -->

Everything runs with no file: the defaults below are the values of
`safety-requirements.md` and `domain.md`. `--config console.toml` lays a TOML
file with the same tables over them, then the command-line options
(`--gas`, `--profile`, `--cycles`, `--freeze-s`, `--thaw-s`) over that.
Tables merge key by key: a file names only what it changes, and a new probe
model or stimulation preset is added beside the default ones.

- `probe-console config show [--config PATH] [--profile clinical|bench]`
  prints the effective configuration as TOML, which `config check` accepts
  and which loads back to the same configuration.
- `probe-console config check FILE` (`-` reads standard input) exits 0 when
  the file is valid and 2 when it is not, one line per error on stderr.
- `session_started.config_sha256` is the SHA-256 of the effective
  configuration's canonical JSON (sorted keys, `,` and `:`, floats by `repr`).

## Rules

- **Strict (SR-30).** Unknown keys, `nan` and `inf`, strings or booleans
  where numbers belong, floats where integers belong and out-of-range values
  are refused, never coerced. Nothing starts with an invalid configuration
  (exit 2, SR-23).
- **Safety limits may only be tightened.** A key with an entry under "may
  only be" is a limit of a safety requirement whose default is the loosest
  value allowed: it may be moved that way only (an alarm earlier or stricter,
  never later or laxer), in both profiles.
- **Profiles (SR-17).** `procedure.profile` selects the ranges of the
  procedure's cycles, freeze, thaw and leak window; bench is for hardware
  bring-up and named in every record. Every pressure and temperature limit is
  the same in both profiles.
- **Units** are in the key names (`_psi` psig, `_c` C, `_s` seconds, `_ms`,
  `_hz`, `_us`, `_ma`, `_ohm`, `_g`, `_mm`).
- **Errors** name the key, the value and what is allowed, one per line:

  ```
  procedure.freeze_s = 300 out of range 120..240 s (clinical)
  --freeze-s (procedure.freeze_s) = 300 out of range 120..240 s (clinical)
  gases.N2O.supply_over_psi = 950 out of range ..900 psi (may only be tightened)
  link.heartbeat_s = nan: not a finite number
  procedure.colour: unknown key
  ```
"""

_TYPE_TEXT: Final[Mapping[Any, str]] = {
    int: "integer",
    float: "number",
    bool: "boolean",
    str: "string",
}


def _type_text(annotation: Any) -> str:
    if get_origin(annotation) is Literal:
        return " | ".join(json.dumps(a) for a in get_args(annotation))
    stripped = _strip_optional(annotation)
    if stripped is Path:
        return "path, optional" if stripped is not annotation else "path"
    return _TYPE_TEXT.get(stripped, getattr(stripped, "__name__", str(stripped)))


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _range_cell(model: type[BaseModel], name: str) -> str:
    if model is ProcedureParams and name in PROFILE_RANGES["clinical"]:
        unit = unit_of(name)
        return ", ".join(f"{p} {_span(*PROFILE_RANGES[p][name], unit)}" for p in PROFILES)
    if model is ConsoleConfig and name == "probe_model":
        return "a key of `probes`"
    text = range_text(model, name)
    return "" if text.startswith("..") and text.split(" ")[0] == ".." else text


def _tighten_cell(model: type[BaseModel], name: str) -> str:
    limit = safety_limit(model, name)
    if limit is None:
        return ""
    tighter, sr = limit
    return f"{'lowered' if tighter == 'lower' else 'raised'} ({sr})"


def _default_cell(value: object) -> str:
    if value is None:
        return "unset"
    return f"`{render_value(value)}`"


def _entry_model(annotation: Any) -> type[BaseModel] | None:
    if get_origin(annotation) is dict:
        entry = get_args(annotation)[1]
        return entry if _is_model(entry) else None
    return None


def _reference_sections(
    model: type[BaseModel],
    prefix: tuple[str, ...],
    default: BaseModel | None,
    intro: Sequence[str] | None = None,
) -> list[str]:
    """This table's keys, then its sub-tables'. `default` None: the model's own defaults."""
    rows: list[str] = []
    later: list[str] = []
    for name, info in model.model_fields.items():
        annotation = info.annotation
        sub = _strip_optional(annotation)
        if _is_model(sub):
            value = getattr(default, name) if default is not None else None
            later += _reference_sections(sub, (*prefix, name), value)
            continue
        entry = _entry_model(annotation)
        if entry is not None:
            entries = getattr(default, name) if default is not None else {}
            later += _entries_section(entry, (*prefix, name), entries)
            continue
        if default is not None:
            shown = _default_cell(getattr(default, name))
        elif info.is_required():
            shown = "required"
        else:
            shown = _default_cell(info.get_default(call_default_factory=True))
        cells = [
            f"`{name}`",
            _type_text(annotation),
            shown,
            unit_of(name),
            _range_cell(model, name),
            _tighten_cell(model, name),
            info.description or "",
        ]
        rows.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    if not rows:
        return later
    if intro is None:
        title = f"`[{'.'.join(prefix)}]`" if prefix else "Top level"
        doc = " ".join((model.__doc__ or "").strip().split("\n\n")[0].split())
        intro = [f"## {title}", "", *([doc, ""] if doc else [])]
    return [
        *intro,
        f"Model: `{model.__module__}.{model.__qualname__}`.",
        "",
        "| key | type | default | unit | range | may only be | description |",
        "|---|---|---|---|---|---|---|",
        *rows,
        "",
        *later,
    ]


def _entries_section(
    entry: type[BaseModel], prefix: tuple[str, ...], entries: Mapping[str, BaseModel]
) -> list[str]:
    """A table of named entries (`probes`, `stimulation.presets`): its defaults, then its keys."""
    path = ".".join(prefix)
    names = ", ".join(f"`{n}`" for n in entries) or "none"
    doc = " ".join((entry.__doc__ or "").strip().split("\n\n")[0].split())
    intro = [
        f"## `[{path}.<name>]`",
        "",
        f"Entries of `{path}`, by name; default entries: {names}.",
    ]
    if doc:
        intro += ["", doc]
    intro.append("")
    required = any(i.is_required() for i in entry.model_fields.values())
    if entries and required:
        # No defaults of its own: show the default entries' values.
        keys = [n for n, i in entry.model_fields.items() if not _is_model(i.annotation)]
        intro += ["| name | " + " | ".join(keys) + " |", "|---" * (len(keys) + 1) + "|"]
        for name, value in entries.items():
            cells = [f"`{name}`", *(_default_cell(getattr(value, k)) for k in keys)]
            intro.append("| " + " | ".join(cells) + " |")
        intro.append("")
    return _reference_sections(entry, (*prefix[:-1], f"{prefix[-1]}.<name>"), None, intro)


def configuration_reference() -> str:
    """`docs/configuration.md`: every key with its type, default, unit, range and SR."""
    profile_rows = [
        f"| `procedure.{name}` | "
        + " | ".join(_span(*PROFILE_RANGES[p][name], unit_of(name)) for p in PROFILES)
        + f" | `{render_value(getattr(ProcedureParams(), name))}` |"
        for name in PROFILE_RANGES["clinical"]
    ]
    options = [f"| `{option}` | `{field}` |" for option, field in CLI_OPTIONS.items()]
    lines = [
        _INTRO,
        "## Profiles (SR-17)",
        "",
        "| key | " + " | ".join(PROFILES) + " | default |",
        "|---|---|---|---|",
        *profile_rows,
        "",
        "## Command-line options that set a key",
        "",
        "| option | key |",
        "|---|---|",
        *options,
        "",
        *_reference_sections(ConsoleConfig, (), ConsoleConfig()),
        "## The calibration file",
        "",
        "`probe-console calibrate pressure` writes it; `pressure.calibration_file` names it.",
        "It holds exactly two tables, `[supply]` and `[exhaust]`, each with the keys of",
        "`[pressure.supply]` above (`offset_psi`, `span`); both are required, and a missing",
        "or invalid file is a configuration error, never silently skipped.",
        "",
    ]
    return "\n".join(lines)

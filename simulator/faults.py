"""The simulator's fault vocabulary: `NAME[:key=value,...][@WHEN]`.

One spec per `--fault`. `WHEN` is seconds since the simulator started (`@95`,
`@95.5`) or a phase plus seconds (`@freeze2+30`, `@thaw1+5.5`, `@localize+2`),
where `freezeK` is the K-th supply-open period the device sees, `thawK` the
time after it, and `localize` the first stimulation. Default `@0`. A fault
lasts until its `duration_s` or the end. The table below is the contract of
`interfaces.md` ("Faults"); `fault_help()` prints it for `--fault help`.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal


class FaultSpecError(ValueError):
    """A fault spec that cannot be parsed or names something unknown."""


@dataclass(frozen=True, slots=True)
class Key:
    """One parameter of a fault: its default, unit and, for words, the allowed values."""

    default: float | str
    unit: str = ""
    choices: tuple[str, ...] = ()
    minimum: float = 0.0


@dataclass(frozen=True, slots=True)
class FaultKind:
    name: str
    keys: MappingProxyType[str, Key]
    does: str
    link: bool = False  # acts on bytes, not on the device


def _kind(name: str, does: str, *, link: bool = False, **keys: Key) -> FaultKind:
    keys.setdefault("duration_s", Key(math.inf, "s"))
    return FaultKind(name, MappingProxyType(keys), does, link)


_VALVE = Key("supply", choices=("supply", "inlet", "vent"))
_DIR = Key("both", choices=("both", "to_host", "to_device"))

FAULTS: MappingProxyType[str, FaultKind] = MappingProxyType(
    {
        k.name: k
        for k in (
            _kind(
                "exhaust_blocked",
                "exhaust rises past 20 psig within 100 ms, tip warms",
                psi_per_s=Key(250.0, "psi/s", minimum=1.0),
            ),
            _kind(
                "supply_leak",
                "line pressure decays with inlet and vent closed",
                psi_per_s=Key(3.0, "psi/s"),
            ),
            _kind("cylinder_empty", "the liquid is gone: supply collapses"),
            _kind(
                "supply_overpressure",
                "a failed regulator on a warm cylinder",
                psi=Key(950.0, "psig"),
                psi_per_s=Key(500.0, "psi/s", minimum=1.0),
            ),
            _kind("valve_stuck_open", "the valve ignores commands, stays open", valve=_VALVE),
            _kind("valve_stuck_closed", "the valve ignores commands, stays closed", valve=_VALVE),
            _kind("thermistor_open", "thermistor ADC at the high rail"),
            _kind("thermistor_short", "thermistor ADC at the low rail"),
            _kind(
                "thermistor_drift",
                "reading drifts from truth",
                c_per_s=Key(0.5, "C/s", minimum=-100.0),
            ),
            _kind("thermistor_stuck", "reading frozen at its last value"),
            _kind(
                "thermistor_step",
                "one implausible jump of the reading (it stays offset)",
                c=Key(25.0, "C", minimum=-200.0),
            ),
            _kind(
                "pressure_sensor_fail",
                "a pressure channel at a rail or frozen",
                sensor=Key("exhaust", choices=("exhaust", "supply")),
                mode=Key("rail_high", choices=("rail_high", "rail_low", "frozen")),
            ),
            _kind(
                "orifice_clog",
                "flow falls, the tip warms (CO2 snow)",
                fraction=Key(0.9, "of flow lost"),
            ),
            _kind("liquid_carryover", "liquid reaches the tip: colder, faster, supply dips"),
            _kind("stim_stuck_on", "stimulation ignores stop"),
            _kind("stim_lead_off", "lead impedance open"),
            _kind("firmware_reset", "device reboots: safe state, new nonce, time restarts"),
            _kind("device_silent", "stops transmitting; still obeys commands and its watchdog"),
            _kind("link_drop", "bytes lost", link=True, duration_s=Key(1.0, "s"), dir=_DIR),
            _kind(
                "link_garbage",
                "random bytes inserted",
                link=True,
                rate_hz=Key(50.0, "Hz"),
                dir=_DIR,
            ),
            _kind("link_corrupt", "bit errors", link=True, ber=Key(1e-4, "per bit"), dir=_DIR),
            _kind("link_duplicate", "frames repeated", link=True, rate_hz=Key(5.0, "Hz"), dir=_DIR),
            _kind(
                "link_replay", "old frames replayed", link=True, rate_hz=Key(5.0, "Hz"), dir=_DIR
            ),
            _kind("link_delay", "bytes delayed", link=True, delay_ms=Key(50.0, "ms"), dir=_DIR),
            _kind(
                "link_foreign_nonce",
                "frames from another session injected (to the host)",
                link=True,
                rate_hz=Key(1.0, "Hz"),
            ),
        )
    }
)

Phase = Literal["time", "freeze", "thaw", "localize"]


@dataclass(frozen=True, slots=True)
class When:
    """When a fault starts: at `offset_s` since start, or after the `index`-th `phase` began."""

    phase: Phase = "time"
    index: int = 0
    offset_s: float = 0.0

    def __str__(self) -> str:
        if self.phase == "time":
            return f"@{self.offset_s:g}"
        label = "localize" if self.phase == "localize" else f"{self.phase}{self.index}"
        return f"@{label}+{self.offset_s:g}"


@dataclass(frozen=True, slots=True)
class FaultSpec:
    name: str
    params: MappingProxyType[str, float | str] = field(default_factory=lambda: MappingProxyType({}))
    when: When = When()

    @property
    def kind(self) -> FaultKind:
        return FAULTS[self.name]

    @property
    def duration_s(self) -> float:
        return float(self.params["duration_s"])

    def __str__(self) -> str:
        defaults = self.kind.keys
        shown = [
            f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}"
            for k, v in self.params.items()
            if v != defaults[k].default
        ]
        return self.name + (":" + ",".join(shown) if shown else "") + str(self.when)


_WHEN = re.compile(
    r"^(?:(?P<phase>freeze|thaw)(?P<index>[1-9]\d*)|(?P<localize>localize))"
    r"(?:\+(?P<offset>\d+(?:\.\d+)?))?$"
)


def _number(text: str, where: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise FaultSpecError(f"{where} = {text!r} is not a number") from None
    if math.isnan(value):
        raise FaultSpecError(f"{where} = {text!r} is not a number")
    return value


def _parse_when(text: str, spec: str) -> When:
    m = _WHEN.match(text)
    if m:
        offset = float(m.group("offset") or 0.0)
        if m.group("localize"):
            return When("localize", 1, offset)
        phase: Phase = "freeze" if m.group("phase") == "freeze" else "thaw"
        return When(phase, int(m.group("index")), offset)
    if text[:1].isalpha():
        raise FaultSpecError(
            f"{spec}: @WHEN = {text!r} is not a phase: use freezeK+S, thawK+S (K >= 1) "
            "or localize+S"
        )
    seconds = _number(text, f"{spec}: @WHEN")
    if not 0.0 <= seconds < math.inf:
        raise FaultSpecError(
            f"{spec}: @WHEN = {text!r} must be seconds >= 0 or a phase "
            "like freeze2+30, thaw1+5.5, localize+2"
        )
    return When("time", 0, seconds)


def parse_fault(spec: str) -> FaultSpec:
    """Parse one `--fault` value; raise `FaultSpecError` naming what is wrong."""
    text = spec.strip()
    body, _, when_text = text.partition("@")
    name, _, args = body.partition(":")
    kind = FAULTS.get(name)
    if kind is None:
        raise FaultSpecError(
            f"unknown fault {name!r} in {spec!r}; known: {', '.join(FAULTS)} "
            "(--fault help lists them with their keys)"
        )
    params: dict[str, float | str] = {k: key.default for k, key in kind.keys.items()}
    for item in filter(None, args.split(",")):
        key_name, eq, value = item.partition("=")
        key = kind.keys.get(key_name)
        if key is None or not eq:
            raise FaultSpecError(
                f"{spec!r}: {name} takes {', '.join(kind.keys)} as key=value; got {item!r}"
            )
        where = f"{spec!r}: {key_name}"
        if key.choices:
            if value not in key.choices:
                raise FaultSpecError(f"{where} = {value!r} must be one of {', '.join(key.choices)}")
            params[key_name] = value
        else:
            number = _number(value, where)
            if number < key.minimum or (number == math.inf and key_name != "duration_s"):
                raise FaultSpecError(f"{where} = {value} out of range {key.minimum:g}.. {key.unit}")
            params[key_name] = number
    when = _parse_when(when_text, repr(spec)) if when_text else When()
    return FaultSpec(name, MappingProxyType(params), when)


def fault_help() -> str:
    """The text of `--fault help`: every fault with its keys, units and defaults."""
    lines = [
        "Faults: NAME[:key=value,...][@WHEN], one per --fault.",
        "WHEN: seconds since start (@95, @95.5) or a phase plus seconds "
        "(@freeze2+30, @thaw1+5.5, @localize+2); default @0.",
        "Every fault also takes duration_s (default: until the end).",
        "",
    ]
    for kind in FAULTS.values():
        keys = []
        for key_name, key in kind.keys.items():
            if key_name == "duration_s" and key.default == math.inf:
                continue
            choices = f" [{'|'.join(key.choices)}]" if key.choices else ""
            unit = f" {key.unit}" if key.unit else ""
            default = f"{key.default:g}" if isinstance(key.default, float) else key.default
            keys.append(f"{key_name}={default}{unit}{choices}")
        lines.append(f"  {kind.name:<22} {kind.does}")
        if keys:
            lines.append(f"  {'':<22} keys: {'; '.join(keys)}")
    return "\n".join(lines)

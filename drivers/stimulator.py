"""The neurostimulator: settings -> commands within SR-16's limits, readings -> mA and Ohm.

Values off the 0.01 mA grid, or outside the limits, are refused with a
message naming the value and the allowed range, never rounded: a stimulator
that quietly delivers something else than what the operator chose would make
the localisation threshold a lie.
"""

from __future__ import annotations

import math
from typing import NamedTuple

from pydantic import BaseModel, ConfigDict, Field

from drivers.errors import DriverError
from protocols import StimConfigure, StimFlags, StimStart, StimStop, Telemetry
from protocols.frontend import STIM_MA_PER_COUNT, lead_counts_to_ohm


class StimulationError(DriverError, ValueError):
    """A stimulation setting outside SR-16's limits or off its grid."""


class StimPreset(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", allow_inf_nan=False, frozen=True)

    rate_hz: int = Field(ge=1, le=100, description="pulse rate, Hz")
    pulse_us: int = Field(ge=50, le=1000, description="pulse width, us")
    start_ma: float = Field(ge=0.0, le=5.0, description="starting current, mA")


class StimLimits(BaseModel):
    """SR-16. A profile may tighten these, never loosen them."""

    model_config = ConfigDict(strict=True, extra="forbid", allow_inf_nan=False, frozen=True)

    current_max_ma: float = Field(5.0, gt=0.0, le=5.0, description="highest current, mA")
    pulse_min_us: int = Field(50, ge=50, le=1000, description="shortest pulse, us")
    pulse_max_us: int = Field(1000, ge=50, le=1000, description="longest pulse, us")
    rate_min_hz: int = Field(1, ge=1, le=100, description="slowest rate, Hz")
    rate_max_hz: int = Field(100, ge=1, le=100, description="fastest rate, Hz")
    lead_max_ohm: float = Field(
        20_000.0, gt=0.0, le=20_000.0, description="lead impedance above which stimulation stops"
    )
    presets: dict[str, StimPreset] = Field(
        default_factory=lambda: {
            "motor": StimPreset(rate_hz=2, pulse_us=100, start_ma=1.0),
            "sensory": StimPreset(rate_hz=50, pulse_us=1000, start_ma=0.5),
        },
        description="named starting settings (SR-16: motor 2 Hz, 100 us, 1.00 mA; "
        "sensory 50 Hz, 1000 us, 0.50 mA)",
    )


class StimSettings(NamedTuple):
    current_ma: float
    pulse_us: int
    rate_hz: int


class StimReading(NamedTuple):
    on: bool
    target_on: bool
    current_ma: float
    lead_ohm: float  # inf when open
    lead_ok: bool


def _on_grid(current_ma: float) -> bool:
    counts = current_ma / STIM_MA_PER_COUNT
    return abs(counts - round(counts)) < 1e-6


class Stimulator:
    """Intent -> commands, readings -> engineering units. Knows nothing of the procedure."""

    __slots__ = ("limits",)

    def __init__(self, limits: StimLimits | None = None) -> None:
        self.limits = limits or StimLimits()

    def check(self, current_ma: float, pulse_us: int, rate_hz: int) -> StimSettings:
        """The settings if SR-16 allows them; `StimulationError` naming the first bad one."""
        lim = self.limits
        if not (isinstance(current_ma, int | float) and math.isfinite(current_ma)):
            raise StimulationError(f"current_ma = {current_ma!r} is not a number")
        if not 0.0 <= current_ma <= lim.current_max_ma:
            raise StimulationError(
                f"current_ma = {current_ma:g} out of range 0..{lim.current_max_ma:g} mA"
            )
        if not _on_grid(current_ma):
            raise StimulationError(
                f"current_ma = {current_ma!r} is not on the 0.01 mA grid (never rounded)"
            )
        if not lim.pulse_min_us <= pulse_us <= lim.pulse_max_us:
            raise StimulationError(
                f"pulse_us = {pulse_us} out of range {lim.pulse_min_us}..{lim.pulse_max_us} us"
            )
        if not lim.rate_min_hz <= rate_hz <= lim.rate_max_hz:
            raise StimulationError(
                f"rate_hz = {rate_hz} out of range {lim.rate_min_hz}..{lim.rate_max_hz} Hz"
            )
        return StimSettings(round(current_ma, 2), pulse_us, rate_hz)

    def preset(self, name: str) -> StimSettings:
        try:
            p = self.limits.presets[name]
        except KeyError:
            known = ", ".join(self.limits.presets)
            raise StimulationError(f"preset = {name!r} unknown; known: {known}") from None
        return self.check(p.start_ma, p.pulse_us, p.rate_hz)

    def configure(self, settings: StimSettings) -> StimConfigure:
        s = self.check(*settings)
        return StimConfigure(round(s.current_ma / STIM_MA_PER_COUNT), s.pulse_us, s.rate_hz)

    @staticmethod
    def start() -> StimStart:
        return StimStart()

    @staticmethod
    def stop() -> StimStop:
        return StimStop()

    def reading(self, t: Telemetry) -> StimReading:
        lead = lead_counts_to_ohm(t.lead_impedance_10ohm)
        return StimReading(
            bool(t.stim_flags & StimFlags.OUTPUT_ON),
            bool(t.stim_flags & StimFlags.TARGET_ON),
            t.stim_measured_10ua * STIM_MA_PER_COUNT,
            lead,
            lead <= self.limits.lead_max_ohm,
        )

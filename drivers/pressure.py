"""Pressure sensors: counts -> psig with per-sensor calibration, rails and plausible range (SR-32).

The nominal transfer function is the normative front end (`docs/protocol.md`
7.3); each physical sensor adds its own zero offset and span factor, measured
on the bench (`probe-console calibrate pressure`) and loaded from the
configuration.
"""

from __future__ import annotations

from enum import IntFlag

from pydantic import BaseModel, ConfigDict, Field

from protocols.frontend import (
    EXHAUST_CHANNEL,
    RAIL_HIGH_MIN,
    RAIL_LOW_MAX,
    SUPPLY_CHANNEL,
    PressureChannel,
)


class PressureCalibration(BaseModel):
    """One sensor's correction on top of the nominal channel: psig = nominal * span + offset."""

    model_config = ConfigDict(strict=True, extra="forbid", allow_inf_nan=False, frozen=True)

    offset_psi: float = Field(0.0, ge=-50.0, le=50.0, description="added after the span, psi")
    span: float = Field(1.0, ge=0.8, le=1.2, description="gain correction, ratio")


class PressureFlag(IntFlag):
    RAIL_LOW = 0x01
    RAIL_HIGH = 0x02
    OUT_OF_RANGE = 0x04  # readable, but outside what the line can physically hold


_RAIL_LOW = int(PressureFlag.RAIL_LOW)
_RAIL_HIGH = int(PressureFlag.RAIL_HIGH)
_OUT_OF_RANGE = int(PressureFlag.OUT_OF_RANGE)

#: SR-32's plausible ranges, psig.
SUPPLY_RANGE_PSI = (-10.0, 1200.0)
EXHAUST_RANGE_PSI = (-10.0, 100.0)


class PressureSensor:
    """One pressure channel as the daemon reads it."""

    __slots__ = (
        "_gain",
        "_offset",
        "_zero",
        "calibration",
        "channel",
        "high_psi",
        "low_psi",
        "name",
    )

    def __init__(
        self,
        name: str,
        channel: PressureChannel,
        calibration: PressureCalibration | None = None,
        plausible_psi: tuple[float, float] = SUPPLY_RANGE_PSI,
    ) -> None:
        self.name = name
        self.channel = channel
        self.calibration = calibration or PressureCalibration()
        self.low_psi, self.high_psi = plausible_psi
        self._zero = channel.zero_counts
        self._gain = channel.psig_per_count * self.calibration.span
        self._offset = self.calibration.offset_psi

    def to_psi(self, counts: int) -> float:
        """Calibrated psig; meaningful only inside the rails."""
        return (counts - self._zero) * self._gain + self._offset

    def judge(self, counts: int) -> tuple[float, int]:
        """(psig, PressureFlag bits) for one sample."""
        psi = (counts - self._zero) * self._gain + self._offset
        if counts <= RAIL_LOW_MAX:
            return psi, _RAIL_LOW
        if counts >= RAIL_HIGH_MIN:
            return psi, _RAIL_HIGH
        if psi < self.low_psi or psi > self.high_psi:
            return psi, _OUT_OF_RANGE
        return psi, 0

    def nominal_psi(self, counts: int) -> float:
        """The reading without this sensor's calibration (what calibration starts from)."""
        return self.channel.counts_to_psig(counts)


def supply_sensor(calibration: PressureCalibration | None = None) -> PressureSensor:
    return PressureSensor("supply", SUPPLY_CHANNEL, calibration, SUPPLY_RANGE_PSI)


def exhaust_sensor(calibration: PressureCalibration | None = None) -> PressureSensor:
    return PressureSensor("exhaust", EXHAUST_CHANNEL, calibration, EXHAUST_RANGE_PSI)


def zero_offset(nominal_readings_psi: list[float]) -> PressureCalibration:
    """The calibration that reads 0 psig for a vented line (span unchanged).

    Refuses to calibrate a line that is not vented: more than 20 psi away from
    zero is a pressurised line or a broken sensor, not an offset.
    """
    if not nominal_readings_psi:
        raise ValueError("no readings to calibrate from")
    mean = sum(nominal_readings_psi) / len(nominal_readings_psi)
    if abs(mean) > 20.0:
        raise ValueError(
            f"the line reads {mean:.1f} psig: vent it (vent open, inlet and supply closed) "
            "before zeroing; an offset over 20 psi means a faulty sensor"
        )
    return PressureCalibration(offset_psi=round(-mean, 3))

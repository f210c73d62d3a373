"""Pressure drivers: the front end's channels, per-sensor calibration, rails and SR-32's ranges."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from drivers.pressure import (
    PressureCalibration,
    PressureFlag,
    exhaust_sensor,
    supply_sensor,
    zero_offset,
)
from protocols.frontend import ADC_MAX, EXHAUST_CHANNEL, SUPPLY_CHANNEL


def test_defaults_are_the_normative_front_end() -> None:
    """docs/protocol.md 7.3: uncalibrated sensors read exactly the nominal channels."""
    for sensor, channel in ((supply_sensor(), SUPPLY_CHANNEL), (exhaust_sensor(), EXHAUST_CHANNEL)):
        for counts in (64, 6554, 31020, 58982, 65471):
            assert sensor.to_psi(counts) == pytest.approx(channel.counts_to_psig(counts))


@settings(max_examples=300)
@given(
    st.floats(-50.0, 50.0),
    st.floats(0.8, 1.2),
    st.floats(0.0, 1000.0),
)
def test_calibration_round_trip(offset: float, span: float, true_psi: float) -> None:
    """A sensor reading (true - offset) / span nominally is corrected back to the truth."""
    cal = PressureCalibration(offset_psi=offset, span=span)
    sensor = supply_sensor(cal)
    counts = SUPPLY_CHANNEL.psig_to_counts((true_psi - offset) / span)
    assert sensor.to_psi(counts) == pytest.approx(true_psi, abs=SUPPLY_CHANNEL.psig_per_count * 1.3)


@pytest.mark.parametrize(
    ("make", "psi", "flag"),
    [
        (supply_sensor, 700.0, 0),
        (supply_sensor, -10.5, PressureFlag.OUT_OF_RANGE),
        (supply_sensor, 1201.0, PressureFlag.OUT_OF_RANGE),
        (exhaust_sensor, 12.0, 0),
        (exhaust_sensor, 100.5, PressureFlag.OUT_OF_RANGE),
        (exhaust_sensor, -10.5, PressureFlag.OUT_OF_RANGE),
    ],
)
def test_plausible_ranges(make: object, psi: float, flag: int) -> None:
    """SR-32: outside -10..1200 psig (supply) or -10..100 psig (exhaust)."""
    sensor = make()  # type: ignore[operator]
    counts = sensor.channel.psig_to_counts(psi)
    assert sensor.judge(counts)[1] == flag


@pytest.mark.parametrize(
    ("counts", "flag"), [(0, PressureFlag.RAIL_LOW), (ADC_MAX, PressureFlag.RAIL_HIGH)]
)
def test_rails(counts: int, flag: int) -> None:
    """SR-32: a pressure reading at an ADC rail."""
    assert supply_sensor().judge(counts)[1] == flag
    assert exhaust_sensor().judge(counts)[1] == flag


def test_zero_offset_from_a_vented_line() -> None:
    cal = zero_offset([1.2, 0.8, 1.0])
    assert cal.offset_psi == pytest.approx(-1.0)
    with pytest.raises(ValueError, match="vent it"):
        zero_offset([700.0])
    with pytest.raises(ValueError):
        zero_offset([])


@pytest.mark.parametrize(
    "kwargs",
    [
        {"offset_psi": 51.0},
        {"span": 1.5},
        {"span": float("nan")},
        {"offset_psi": "1"},
        {"gain": 1.0},
    ],
)
def test_bad_calibrations_are_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        PressureCalibration(**kwargs)  # type: ignore[arg-type]

"""The stimulator driver: SR-16's limits and grid, presets, readings."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.stimulator import StimSettings, StimulationError, Stimulator
from protocols import StimConfigure, StimFlags, Telemetry
from protocols.frontend import LEAD_OPEN

STIM = Stimulator()


def test_presets_of_sr16() -> None:
    """SR-16: motor 2 Hz, 100 us, 1.00 mA; sensory 50 Hz, 1000 us, 0.50 mA."""
    assert STIM.preset("motor") == StimSettings(1.0, 100, 2)
    assert STIM.preset("sensory") == StimSettings(0.5, 1000, 50)
    with pytest.raises(StimulationError, match="unknown"):
        STIM.preset("maximal")


@settings(max_examples=300)
@given(st.integers(0, 500), st.integers(50, 1000), st.integers(1, 100))
def test_every_grid_value_is_accepted_exactly(counts: int, pulse: int, rate: int) -> None:
    """SR-16: 0-5.00 mA in 0.01 mA steps; the command carries exactly that value."""
    assert STIM.configure(StimSettings(counts / 100, pulse, rate)) == StimConfigure(
        counts, pulse, rate
    )


@pytest.mark.parametrize(
    ("settings_", "words"),
    [
        (StimSettings(0.005, 100, 2), "0.01 mA grid"),
        (StimSettings(1.234, 100, 2), "0.01 mA grid"),
        (StimSettings(5.01, 100, 2), "out of range 0..5 mA"),
        (StimSettings(-0.01, 100, 2), "out of range"),
        (StimSettings(math.nan, 100, 2), "not a number"),
        (StimSettings(1.0, 49, 2), "pulse_us = 49 out of range 50..1000 us"),
        (StimSettings(1.0, 1001, 2), "pulse_us"),
        (StimSettings(1.0, 100, 0), "rate_hz = 0 out of range 1..100 Hz"),
        (StimSettings(1.0, 100, 101), "rate_hz"),
    ],
)
def test_values_off_grid_or_range_are_refused_never_rounded(
    settings_: StimSettings, words: str
) -> None:
    """SR-16: other values refused, never rounded."""
    with pytest.raises(StimulationError, match=words):
        STIM.configure(settings_)


def test_readings() -> None:
    t = Telemetry(
        0, 0, 0, 0, 4, int(StimFlags.OUTPUT_ON | StimFlags.TARGET_ON), 0, 45, 300, 45, 100, 2, 0
    )
    r = STIM.reading(t)
    assert (
        r.on
        and r.target_on
        and r.current_ma == pytest.approx(0.45)
        and r.lead_ohm == 3000
        and r.lead_ok
    )
    r = STIM.reading(t._replace(lead_impedance_10ohm=LEAD_OPEN, stim_measured_10ua=0))
    assert r.lead_ohm == math.inf and not r.lead_ok


def test_lead_limit_is_20_kohm() -> None:
    """SR-16: lead impedance above 20 kOhm."""
    t = Telemetry(0, 0, 0, 0, 4, 1, 0, 100, 2000, 100, 100, 2, 0)
    assert STIM.reading(t).lead_ok
    assert not STIM.reading(t._replace(lead_impedance_10ohm=2001)).lead_ok

"""The normative sensor front end of docs/protocol.md (SR-10, SR-32 depend on it)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocols.frontend import (
    ADC_MAX,
    DEFAULT_THERMISTOR,
    EXHAUST_CHANNEL,
    LEAD_OPEN,
    RAIL_HIGH_MIN,
    RAIL_LOW_MAX,
    SUPPLY_CHANNEL,
    PressureChannel,
    at_rail,
    lead_counts_to_ohm,
    lead_ohm_to_counts,
    stim_ma_to_counts,
)

TH = DEFAULT_THERMISTOR


@pytest.mark.parametrize("tip_c", [-100.0, -91.5, -88.5, -60.0, 0.0, 37.0, 60.0, 70.0])
def test_thermistor_range_lies_inside_the_rails(tip_c: float) -> None:
    """SR-10: -100..+70 C inside the rails."""
    counts = TH.c_to_counts(tip_c)
    assert not at_rail(counts), (tip_c, counts)


def test_thermistor_resolves_half_a_degree_or_better_over_the_range() -> None:
    """SR-10: 0.5 C or better from -100 to +70 C: one count never spans more than 0.5 C."""
    worst = 0.0
    tip_c = -100.0
    while tip_c <= 70.0:
        counts = TH.c_to_counts(tip_c)
        step = abs(TH.counts_to_c(counts + 1) - TH.counts_to_c(counts))
        worst = max(worst, step)
        tip_c += 0.5
    assert worst <= 0.5
    assert worst < 0.06  # the figure the spec states


def test_open_and_short_thermistor_read_at_the_rails() -> None:
    """SR-10: an open sensor reads the high rail, a short the low rail."""
    assert TH.ohm_to_counts(math.inf) == ADC_MAX and at_rail(ADC_MAX)
    assert TH.ohm_to_counts(0.0) == 0 and at_rail(0)
    assert at_rail(RAIL_LOW_MAX) and not at_rail(RAIL_LOW_MAX + 1)
    assert at_rail(RAIL_HIGH_MIN) and not at_rail(RAIL_HIGH_MIN - 1)


@settings(max_examples=300)
@given(st.floats(-100.0, 70.0))
def test_thermistor_round_trip_within_one_count(tip_c: float) -> None:
    counts = TH.c_to_counts(tip_c)
    back = TH.counts_to_c(counts)
    step = abs(TH.counts_to_c(counts + 1) - TH.counts_to_c(counts - 1))
    assert abs(back - tip_c) <= step


def test_thermistor_reference_points() -> None:
    assert TH.c_to_ohm(25.0) == pytest.approx(10_000.0)
    assert TH.c_to_counts(25.0) == round(ADC_MAX * 10_000 / 110_000)


@pytest.mark.parametrize(
    ("channel", "low", "high"),
    [(SUPPLY_CHANNEL, -10.0, 1200.0), (EXHAUST_CHANNEL, -10.0, 100.0)],
    ids=["supply", "exhaust"],
)
def test_pressure_plausibility_ranges_are_readable_inside_the_rails(
    channel: PressureChannel, low: float, high: float
) -> None:
    """SR-32: readings just outside -10..1200 / -10..100 psig are distinguishable from rails."""
    for psig in (low - 1.0, low, 0.0, high, high + 1.0):
        counts = channel.psig_to_counts(psig)
        assert not at_rail(counts), psig
        assert channel.counts_to_psig(counts) == pytest.approx(psig, abs=channel.psig_per_count)


@settings(max_examples=300)
@given(st.sampled_from([SUPPLY_CHANNEL, EXHAUST_CHANNEL]), st.floats(-50.0, 1400.0))
def test_pressure_round_trip_within_one_count(channel: PressureChannel, psig: float) -> None:
    counts = channel.psig_to_counts(psig)
    if not at_rail(counts):
        assert abs(channel.counts_to_psig(counts) - psig) <= channel.psig_per_count


def test_pressure_saturates_like_a_converter() -> None:
    assert SUPPLY_CHANNEL.psig_to_counts(1e9) == ADC_MAX
    assert SUPPLY_CHANNEL.psig_to_counts(-1e9) == 0


def test_stimulation_and_lead_units() -> None:
    """SR-16: 0.01 mA grid; lead impedance in 10 Ohm, open above the field."""
    assert stim_ma_to_counts(5.0) == 500
    assert stim_ma_to_counts(0.01) == 1
    assert lead_ohm_to_counts(20_000) == 2000
    assert lead_ohm_to_counts(math.inf) == LEAD_OPEN
    assert lead_counts_to_ohm(LEAD_OPEN) == math.inf
    assert lead_counts_to_ohm(250) == 2500

"""The thermistor driver: the front end model with the probe coefficients; SR-10 reading rules."""

from __future__ import annotations

import math

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from drivers.thermistor import Thermistor, ThermistorParams, TipFlag
from protocols.frontend import ADC_MAX, DEFAULT_THERMISTOR, ThermistorFrontEnd

N2O_FLOOR = -91.5


def test_defaults_are_the_normative_front_end() -> None:
    """docs/protocol.md 7.2: the driver's default probe is the front end's default."""
    p = ThermistorParams()
    assert (p.r25_ohm, p.b_k, p.r_ref_ohm) == (
        DEFAULT_THERMISTOR.r25_ohm,
        DEFAULT_THERMISTOR.b_k,
        DEFAULT_THERMISTOR.r_ref_ohm,
    )


@settings(max_examples=300)
@given(st.floats(-100.0, 70.0), st.floats(5_000.0, 20_000.0), st.floats(3000.0, 4000.0))
def test_round_trip_with_any_valid_probe_coefficients(tip_c: float, r25: float, b: float) -> None:
    front = ThermistorFrontEnd(100_000.0, r25, b)
    try:
        params = ThermistorParams(r25_ohm=r25, b_k=b)
    except ValidationError:
        assume(False)  # coefficients that cannot resolve -100..+70 C are refused (below)
        raise
    th = Thermistor(params, floor_c=N2O_FLOOR)
    counts = front.c_to_counts(tip_c)
    step = abs(front.counts_to_c(counts + 1) - front.counts_to_c(counts - 1))
    assert abs(th.to_c(counts) - tip_c) <= max(step, 1e-9)


@pytest.mark.parametrize(
    ("counts", "flag"),
    [
        (0, TipFlag.RAIL_LOW),
        (63, TipFlag.RAIL_LOW),
        (ADC_MAX, TipFlag.RAIL_HIGH),
        (65472, TipFlag.RAIL_HIGH),
    ],
)
def test_rails_are_flagged_and_give_no_reading(counts: int, flag: TipFlag) -> None:
    """SR-10: open or short (ADC at its rails)."""
    tip_c, flags = Thermistor(floor_c=N2O_FLOOR).judge(counts, 0)
    assert math.isnan(tip_c) and flags == flag


@pytest.mark.parametrize(
    ("tip_c", "flag"),
    [(-91.4, 0), (-91.7, TipFlag.BELOW_FLOOR), (59.9, 0), (60.2, TipFlag.ABOVE_MAX)],
)
def test_gas_floor_and_maximum(tip_c: float, flag: int) -> None:
    """SR-10: colder than the gas floor minus 3 C, warmer than +60 C."""
    counts = DEFAULT_THERMISTOR.c_to_counts(tip_c)
    assert Thermistor(floor_c=N2O_FLOOR).judge(counts, 0)[1] == flag


def test_co2_floor() -> None:
    counts = DEFAULT_THERMISTOR.c_to_counts(-82.0)
    assert Thermistor(floor_c=-81.5).judge(counts, 0)[1] == TipFlag.BELOW_FLOOR
    assert Thermistor(floor_c=N2O_FLOOR).judge(counts, 0)[1] == 0


def _feed(th: Thermistor, samples: list[tuple[int, float]]) -> list[int]:
    return [th.judge(DEFAULT_THERMISTOR.c_to_counts(c), ms)[1] for ms, c in samples]


def test_more_than_10_c_within_100_ms_is_too_fast() -> None:
    """SR-10: changing by more than 10 C within 100 ms (a step of the reading)."""
    th = Thermistor(floor_c=N2O_FLOOR)
    flags = _feed(th, [(0, 20.0), (10, 20.0), (20, 31.0)])
    assert flags[-1] & TipFlag.TOO_FAST


def test_a_real_cooldown_is_not_too_fast() -> None:
    """The simulator's fastest cooling (under 60 C/s) changes under 10 C per 100 ms...
    mostly: 58 C/s is 5.8 C per 100 ms."""
    th = Thermistor(floor_c=N2O_FLOOR)
    flags = _feed(th, [(ms, 37.0 - 0.058 * ms) for ms in range(0, 2000, 10)])
    assert not any(f & TipFlag.TOO_FAST for f in flags)


def test_the_window_forgets_older_samples() -> None:
    th = Thermistor(floor_c=N2O_FLOOR)
    flags = _feed(th, [(0, 20.0), (100, 26.0), (200, 32.0), (300, 38.0)])
    assert not any(f & TipFlag.TOO_FAST for f in flags)
    flags = _feed(th, [(310, 38.0), (320, 49.0)])
    assert flags[-1] & TipFlag.TOO_FAST


@settings(max_examples=300)
@given(st.lists(st.tuples(st.integers(1, 30), st.floats(-80.0, 50.0)), min_size=1, max_size=60))
def test_rate_rule_matches_a_brute_force_window(steps: list[tuple[int, float]]) -> None:
    th = Thermistor(floor_c=N2O_FLOOR)
    ms = 0
    seen: list[tuple[int, float]] = []
    for gap, tip_c in steps:
        ms += gap
        counts = DEFAULT_THERMISTOR.c_to_counts(tip_c)
        reading, flags = th.judge(counts, ms)
        seen.append((ms, reading))
        window = [c for t, c in seen if ms - t <= 100]
        assert bool(flags & TipFlag.TOO_FAST) == (max(window) - min(window) > 10.0)


def test_coefficients_that_cannot_resolve_the_range_are_refused() -> None:
    """SR-10: the sensor chain must resolve -100..+70 C inside the rails at 0.5 C or better."""
    with pytest.raises(ValidationError, match="at an ADC rail"):
        ThermistorParams(r25_ohm=16_000.0, b_k=4000.0)
    with pytest.raises(ValidationError, match="at an ADC rail"):
        ThermistorParams(r_ref_ohm=5_000.0)


@pytest.mark.parametrize("field", ["r25_ohm", "b_k", "r_ref_ohm"])
def test_bad_coefficients_are_refused(field: str) -> None:
    for bad in (float("nan"), float("inf"), -1.0, "10000"):
        with pytest.raises(ValidationError):
            ThermistorParams(**{field: bad})  # type: ignore[arg-type]

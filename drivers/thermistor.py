"""The tip thermistor: ADC counts -> ohms -> C, and the rules a reading alone can break (SR-10).

Conversion follows the normative sensor front end (`docs/protocol.md` 7.2)
with the probe model's own R25 and B. The judgments here need nothing but the
readings themselves: a rail (open or short), colder than the gas floor minus
3 C, warmer than +60 C, more than 10 C of change within 100 ms of device time.
The "stuck" rule needs to know when the supply opened, so it belongs to the
interlocks (`console`), not here: drivers know nothing of the procedure.
"""

from __future__ import annotations

import math
from collections import deque
from enum import IntFlag
from typing import Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from protocols.frontend import RAIL_HIGH_MIN, RAIL_LOW_MAX, ThermistorFrontEnd, at_rail

#: SR-10: the chain must resolve this range inside the rails at this resolution or better.
RESOLVE_RANGE_C = (-100.0, 70.0)
RESOLUTION_C = 0.5


class ThermistorParams(BaseModel):
    """One probe model's thermistor and the board's divider (`docs/protocol.md` 7.2)."""

    model_config = ConfigDict(strict=True, extra="forbid", allow_inf_nan=False, frozen=True)

    r25_ohm: float = Field(10_000.0, gt=100.0, le=1e6, description="NTC resistance at 25 C, Ohm")
    b_k: float = Field(3435.0, ge=2000.0, le=6000.0, description="NTC beta constant, K")
    r_ref_ohm: float = Field(
        100_000.0, gt=1000.0, le=1e7, description="divider reference resistor, Ohm"
    )

    @model_validator(mode="after")
    def _resolves_the_range(self) -> Self:
        """SR-10: -100..+70 C inside the rails at 0.5 C or better (worst at the ends)."""
        front = ThermistorFrontEnd(self.r_ref_ohm, self.r25_ohm, self.b_k)
        for tip_c in RESOLVE_RANGE_C:
            counts = front.c_to_counts(tip_c)
            if at_rail(counts) or at_rail(counts - 1) or at_rail(counts + 1):
                raise ValueError(
                    f"with r25_ohm={self.r25_ohm:g}, b_k={self.b_k:g}, "
                    f"r_ref_ohm={self.r_ref_ohm:g}: {tip_c:+g} C reads {counts} counts, "
                    "at an ADC rail (SR-10 needs -100..+70 C inside the rails)"
                )
            step = abs(front.counts_to_c(counts + 1) - front.counts_to_c(counts - 1)) / 2
            if step > RESOLUTION_C:
                raise ValueError(
                    f"with these coefficients one count spans {step:.2f} C at {tip_c:+g} C; "
                    f"SR-10 needs {RESOLUTION_C} C or better"
                )
        return self


class TipFlag(IntFlag):
    """Why a tip reading is implausible (SR-10); 0 when it is plausible."""

    RAIL_LOW = 0x01  # short circuit
    RAIL_HIGH = 0x02  # open circuit
    BELOW_FLOOR = 0x04  # colder than the gas can make it
    ABOVE_MAX = 0x08
    TOO_FAST = 0x10  # more than max_step_c within step_window_ms


_RAIL_LOW = int(TipFlag.RAIL_LOW)
_RAIL_HIGH = int(TipFlag.RAIL_HIGH)
_BELOW_FLOOR = int(TipFlag.BELOW_FLOOR)
_ABOVE_MAX = int(TipFlag.ABOVE_MAX)
_TOO_FAST = int(TipFlag.TOO_FAST)


class Thermistor:
    """Converts and judges tip readings, sample by sample. Keeps 100 ms of history."""

    __slots__ = (
        "_counts_to_c",
        "_highs",
        "_lows",
        "floor_c",
        "max_c",
        "max_step_c",
        "params",
        "step_window_ms",
    )

    def __init__(
        self,
        params: ThermistorParams | None = None,
        *,
        floor_c: float,
        max_c: float = 60.0,
        max_step_c: float = 10.0,
        step_window_ms: int = 100,
    ) -> None:
        self.params = params or ThermistorParams()
        self.floor_c = floor_c  # the gas floor minus 3 C (N2O -91.5, CO2 -81.5)
        self.max_c = max_c
        self.max_step_c = max_step_c
        self.step_window_ms = step_window_ms
        p = self.params
        # The normative front end's model, with this probe's coefficients: never a second model.
        self._counts_to_c = ThermistorFrontEnd(p.r_ref_ohm, p.r25_ohm, p.b_k).counts_to_c
        # Monotonic queues of (device_ms, tip_c): the window's maximum and minimum at
        # their heads, O(1) per sample however fast the telemetry.
        self._highs: deque[tuple[int, float]] = deque()
        self._lows: deque[tuple[int, float]] = deque()

    def to_c(self, counts: int) -> float:
        """Temperature for a code inside the rails; NaN at a rail (there is no reading)."""
        if counts <= RAIL_LOW_MAX or counts >= RAIL_HIGH_MIN:
            return math.nan
        return self._counts_to_c(counts)

    def judge(self, counts: int, device_ms: int) -> tuple[float, int]:
        """(tip_c, TipFlag bits) for one sample; NaN and a rail flag when at a rail."""
        if counts <= RAIL_LOW_MAX:
            self.reset()
            return math.nan, _RAIL_LOW
        if counts >= RAIL_HIGH_MIN:
            self.reset()
            return math.nan, _RAIL_HIGH
        tip_c = self._counts_to_c(counts)
        flags = 0
        if tip_c < self.floor_c:
            flags = _BELOW_FLOOR
        elif tip_c > self.max_c:
            flags = _ABOVE_MAX
        oldest = device_ms - self.step_window_ms
        highs, lows = self._highs, self._lows
        while highs and highs[0][0] < oldest:
            highs.popleft()
        while lows and lows[0][0] < oldest:
            lows.popleft()
        while highs and highs[-1][1] <= tip_c:
            highs.pop()
        while lows and lows[-1][1] >= tip_c:
            lows.pop()
        sample = (device_ms, tip_c)
        highs.append(sample)
        lows.append(sample)
        if highs[0][1] - lows[0][1] > self.max_step_c:
            flags |= _TOO_FAST
        return tip_c, flags

    def reset(self) -> None:
        """Forget the history (a rail, or a new device session: device time restarted)."""
        self._highs.clear()
        self._lows.clear()

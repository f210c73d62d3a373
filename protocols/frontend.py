"""The normative sensor front end: what the raw counts of `Telemetry` mean.

Both ends of the wire use these definitions: the device (or the simulator)
turns physical values into counts, the daemon's drivers turn counts back into
engineering units, adding their own per-probe and per-sensor calibration on
top. `docs/protocol.md`, "Sensor front end", is the normative text.

- ADC: 16 bits, unsigned, ratiometric to the same reference as the sensors.
  Codes at or below `RAIL_LOW_MAX` or at or above `RAIL_HIGH_MIN` are "at a
  rail": an open or shorted sensor, never a reading.
- Thermistor: NTC from the ADC input to ground, `r_ref_ohm` from the reference
  to the input, so counts = 65535 * R / (R + r_ref). Beta model
  1/T = 1/T25 + ln(R / R25) / B. The default probe (R25 10 kOhm, B 3435 K,
  r_ref 100 kOhm) keeps -100..+70 C inside the rails at better than 0.06 C/count.
- Pressure: ratiometric transducers, 10 % of full scale at 0 psig and 90 % at
  the channel's span; supply 0..1500 psig, exhaust 0..150 psig.
- Stimulation current in units of 0.01 mA; lead impedance in units of 10 Ohm,
  `LEAD_OPEN` (0xFFFF) for an open lead or anything above 655.34 kOhm.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

ADC_MAX = 0xFFFF
RAIL_LOW_MAX = 63
RAIL_HIGH_MIN = ADC_MAX - 63  # 65472
KELVIN = 273.15
T25_K = 25.0 + KELVIN

#: Stimulation current: one count is 0.01 mA (the grid of SR-16).
STIM_MA_PER_COUNT = 0.01
#: Lead impedance: one count is 10 Ohm; `LEAD_OPEN` means open or out of range.
LEAD_OHM_PER_COUNT = 10
LEAD_OPEN = 0xFFFF


def at_rail(counts: int) -> bool:
    """True when an ADC code is in a rail band (open or short circuit)."""
    return counts <= RAIL_LOW_MAX or counts >= RAIL_HIGH_MIN


def clamp_counts(value: float) -> int:
    """Round a would-be ADC code and saturate it the way a converter does."""
    if value <= 0:
        return 0
    if value >= ADC_MAX:
        return ADC_MAX
    return round(value)


@dataclass(frozen=True, slots=True)
class ThermistorFrontEnd:
    """An NTC thermistor in a divider against a reference resistor."""

    r_ref_ohm: float = 100_000.0
    r25_ohm: float = 10_000.0
    b_k: float = 3435.0

    def counts_to_ohm(self, counts: int) -> float:
        """Thermistor resistance for a code inside the rails (callers check `at_rail` first)."""
        return self.r_ref_ohm * counts / (ADC_MAX - counts)

    def ohm_to_c(self, ohm: float) -> float:
        return 1.0 / (1.0 / T25_K + math.log(ohm / self.r25_ohm) / self.b_k) - KELVIN

    def c_to_ohm(self, tip_c: float) -> float:
        return self.r25_ohm * math.exp(self.b_k * (1.0 / (tip_c + KELVIN) - 1.0 / T25_K))

    def ohm_to_counts(self, ohm: float) -> int:
        if ohm == math.inf:
            return ADC_MAX
        return clamp_counts(ADC_MAX * ohm / (ohm + self.r_ref_ohm))

    def counts_to_c(self, counts: int) -> float:
        # counts_to_ohm then ohm_to_c, inlined (every sample): the same operations in the
        # same order, so the same float.
        ohm = self.r_ref_ohm * counts / (ADC_MAX - counts)
        return 1.0 / (1.0 / T25_K + math.log(ohm / self.r25_ohm) / self.b_k) - KELVIN

    def c_to_counts(self, tip_c: float) -> int:
        return self.ohm_to_counts(self.c_to_ohm(tip_c))


@dataclass(frozen=True, slots=True)
class PressureChannel:
    """A ratiometric pressure transducer: `zero_counts` at 0 psig, `full_counts` at `span_psig`."""

    span_psig: float
    zero_counts: int = 6554  # 10 % of full scale
    full_counts: int = 58982  # 90 % of full scale
    #: span / (full - zero), computed once: both directions run on every sample.
    psig_per_count: float = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        scale = self.span_psig / (self.full_counts - self.zero_counts)
        object.__setattr__(self, "psig_per_count", scale)

    def counts_to_psig(self, counts: int) -> float:
        return (counts - self.zero_counts) * self.psig_per_count

    def psig_to_counts(self, psig: float) -> int:
        value = self.zero_counts + psig / self.psig_per_count
        if value <= 0:
            return 0
        if value >= ADC_MAX:
            return ADC_MAX
        return round(value)


DEFAULT_THERMISTOR = ThermistorFrontEnd()
SUPPLY_CHANNEL = PressureChannel(span_psig=1500.0)
EXHAUST_CHANNEL = PressureChannel(span_psig=150.0)


def stim_ma_to_counts(current_ma: float) -> int:
    """0.01 mA counts for a current already on the 0.01 mA grid (drivers refuse others)."""
    return round(current_ma / STIM_MA_PER_COUNT)


def lead_ohm_to_counts(ohm: float) -> int:
    counts = ohm / LEAD_OHM_PER_COUNT
    return LEAD_OPEN if counts >= LEAD_OPEN else round(counts)


def lead_counts_to_ohm(counts: int) -> float:
    return math.inf if counts >= LEAD_OPEN else counts * LEAD_OHM_PER_COUNT

"""The stimulation electrode at the tip and the nerve it is meant to find.

Localisation is a threshold search: the operator (or the scripted operator of
`simulate`) lowers the current until the nerve stops responding, and the
threshold says how close the tip is. The model is the classic
current-distance relation of peripheral nerve stimulation,
``I = I0 + k * d**2``, times a strength-duration factor (Weiss/Lapicque
``1 + chronaxie / pulse``) normalised to a reference pulse, for two fibre
populations:

* **motor** fibres (large, myelinated, short chronaxie 40 us), read as a
  twitch at the motor preset's 2 Hz / 100 us. At 100 us: intraneural (d = 0)
  0.15 mA, the "aim" distance of 1 mm 0.43 mA, 2 mm 1.27 mA, 5 mm 7.15 mA. A
  1 ms pulse lowers them by a quarter, a 50 us one raises them by 29 %, so at
  5 mm no pulse width reaches a twitch within the 5 mA the console may
  deliver, and intraneural stays below 0.2 mA at any width (`domain.md`,
  nerve stimulation row; SR-16's limits);
* **sensory** fibres (thinner, long chronaxie 400 us), read as the patient's
  paresthesia under a 50-100 Hz train (the sensory preset: 50 Hz, 1000 us). At
  1000 us: intraneural 0.06 mA, 1 mm 0.20 mA, 2 mm 0.62 mA, 5 mm 3.56 mA. Long
  pulses reach them before the motor fibres (which need 0.32 mA at 1 mm and
  1 ms), short ones after (0.71 mA at 1 mm and 100 us): the reason the two
  presets differ. A train slower than `sensory_min_rate_hz` (20 Hz) is read by
  its twitch, not by what the patient feels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["NerveModel", "StimElectrode"]


def _threshold(
    i0_ma: float,
    k_ma_per_mm2: float,
    distance_mm: float,
    chronaxie_us: float,
    reference_us: float,
    pulse_us: float,
) -> float:
    if pulse_us <= 0.0:
        return math.inf
    strength_duration = (1.0 + chronaxie_us / pulse_us) / (1.0 + chronaxie_us / reference_us)
    return (i0_ma + k_ma_per_mm2 * distance_mm**2) * strength_duration


@dataclass(frozen=True, slots=True)
class NerveModel:
    """Motor and sensory thresholds against distance, pulse width and rate."""

    distance_mm: float = 1.0
    i0_ma: float = 0.15
    k_ma_per_mm2: float = 0.28
    chronaxie_us: float = 40.0
    reference_pulse_us: float = 100.0
    sensory_i0_ma: float = 0.06
    sensory_k_ma_per_mm2: float = 0.14
    sensory_chronaxie_us: float = 400.0
    sensory_reference_pulse_us: float = 1000.0
    sensory_min_rate_hz: float = 20.0

    def motor_threshold_ma(self, pulse_us: float = 100.0) -> float:
        """The least current that makes the muscle twitch at ``pulse_us``.

        A non-positive pulse carries no charge, so nothing can excite the nerve.
        """
        return _threshold(
            self.i0_ma,
            self.k_ma_per_mm2,
            self.distance_mm,
            self.chronaxie_us,
            self.reference_pulse_us,
            pulse_us,
        )

    def sensory_threshold_ma(self, pulse_us: float = 1000.0) -> float:
        """The least current the patient feels (paresthesia) at ``pulse_us``."""
        return _threshold(
            self.sensory_i0_ma,
            self.sensory_k_ma_per_mm2,
            self.distance_mm,
            self.sensory_chronaxie_us,
            self.sensory_reference_pulse_us,
            pulse_us,
        )

    def threshold_ma(self, pulse_us: float = 100.0, rate_hz: float = 2.0) -> float:
        """The least current that gets a response (either kind) from this pulse train."""
        motor = self.motor_threshold_ma(pulse_us)
        if rate_hz >= self.sensory_min_rate_hz:
            return min(motor, self.sensory_threshold_ma(pulse_us))
        return motor if rate_hz > 0.0 else math.inf

    def motor_responds(self, current_ma: float, pulse_us: float, rate_hz: float) -> bool:
        """A twitch (at any rate; a fast train makes it a sustained contraction)."""
        if rate_hz <= 0.0 or current_ma <= 0.0:
            return False
        return current_ma >= self.motor_threshold_ma(pulse_us)

    def sensory_responds(self, current_ma: float, pulse_us: float, rate_hz: float) -> bool:
        """Paresthesia the patient reports, under a train of at least 20 Hz."""
        if rate_hz < self.sensory_min_rate_hz or current_ma <= 0.0:
            return False
        return current_ma >= self.sensory_threshold_ma(pulse_us)

    def responds(self, current_ma: float, pulse_us: float, rate_hz: float) -> bool:
        """Whether a pulse train at these settings makes the nerve respond at all.

        Without pulses (``rate_hz <= 0``) there is nothing to respond to. Below
        20 Hz only the twitch counts (motor localisation); from 20 Hz either.
        """
        return self.motor_responds(current_ma, pulse_us, rate_hz) or self.sensory_responds(
            current_ma, pulse_us, rate_hz
        )


class StimElectrode:
    """A constant-current stimulator driving the tip electrode.

    The measured current equals the set current while stimulation is on and
    the source can drive it through the lead (``current * impedance`` within
    the compliance voltage); a disconnected lead is an open circuit, so no
    current flows and the impedance reads infinite, which is what the
    console's SR-16 lead check looks for.
    """

    __slots__ = (
        "_current_ma",
        "_on",
        "_pulse_us",
        "_rate_hz",
        "compliance_v",
        "lead_impedance_ohm_nominal",
        "lead_off",
        "stuck_on",
    )

    def __init__(self, lead_impedance_ohm: float = 3000.0, compliance_v: float = 60.0) -> None:
        self.lead_impedance_ohm_nominal = lead_impedance_ohm
        self.compliance_v = compliance_v
        self.lead_off = False
        self.stuck_on = False
        self._on = False
        self._current_ma = 0.0
        self._pulse_us = 100.0
        self._rate_hz = 2.0

    def configure(self, current_ma: float, pulse_us: float, rate_hz: float) -> None:
        """Set the pulse train; the limits of SR-16 are the firmware's to enforce."""
        self._current_ma = max(0.0, current_ma)
        self._pulse_us = max(0.0, pulse_us)
        self._rate_hz = max(0.0, rate_hz)

    def set_on(self, on: bool) -> None:
        """Start or stop; a stuck output ignores the stop (fault ``stim_stuck_on``)."""
        if not on and self.stuck_on:
            return
        self._on = on

    @property
    def on(self) -> bool:
        return self._on

    @property
    def set_current_ma(self) -> float:
        return self._current_ma

    @property
    def pulse_us(self) -> float:
        return self._pulse_us

    @property
    def rate_hz(self) -> float:
        return self._rate_hz

    @property
    def lead_impedance_ohm(self) -> float:
        """The impedance the stimulator measures: infinite with the lead off."""
        return math.inf if self.lead_off else self.lead_impedance_ohm_nominal

    @property
    def current_ma(self) -> float:
        """The current that actually flows through the tissue."""
        if not self._on or self.lead_off:
            return 0.0
        limit_ma = 1000.0 * self.compliance_v / self.lead_impedance_ohm_nominal
        return min(self._current_ma, limit_ma)

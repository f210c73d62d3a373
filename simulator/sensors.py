"""The device's sensor chain: physical truth -> ADC counts, with seeded noise and faults.

Counts follow the normative sensor front end of `docs/protocol.md` (section 7,
`protocols.frontend`), so the daemon's drivers read them exactly as they would
read a real board. The noise is Gaussian, drawn from the device's own seeded
generator: the same seed gives the same counts. Defaults stay well inside what
the issue allows (tip sigma <= 0.1 C, pressure sigma <= 0.3 psi) so that a
nominal run raises no alarm.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from protocols.frontend import (
    ADC_MAX,
    DEFAULT_THERMISTOR,
    EXHAUST_CHANNEL,
    SUPPLY_CHANNEL,
    PressureChannel,
    ThermistorFrontEnd,
)


@dataclass(frozen=True, slots=True)
class SensorParams:
    tip_sigma_c: float = 0.05
    pressure_sigma_psi: float = 0.15
    thermistor: ThermistorFrontEnd = DEFAULT_THERMISTOR
    supply: PressureChannel = SUPPLY_CHANNEL
    exhaust: PressureChannel = EXHAUST_CHANNEL


class Sensors:
    """Converts truth to counts. Fault state is plain attributes the fault layer sets."""

    __slots__ = (
        "_last",
        "_last_tip",
        "_rng",
        "exhaust_mode",
        "params",
        "supply_mode",
        "tip_drift_c_per_s",
        "tip_drift_since_s",
        "tip_mode",
        "tip_offset_c",
    )

    def __init__(self, rng: random.Random, params: SensorParams | None = None) -> None:
        self.params = params or SensorParams()
        self._rng = rng
        #: "ok" | "open" | "short" | "stuck"
        self.tip_mode = "ok"
        self.tip_offset_c = 0.0
        self.tip_drift_c_per_s = 0.0
        self.tip_drift_since_s = 0.0
        #: "ok" | "rail_high" | "rail_low" | "frozen"
        self.supply_mode = "ok"
        self.exhaust_mode = "ok"
        self._last_tip = 0
        self._last = {"supply": 0, "exhaust": 0}

    def read(
        self, t_s: float, tip_c: float, supply_psi: float, exhaust_psi: float
    ) -> tuple[int, int, int]:
        """(tip_counts, supply_counts, exhaust_counts) for the truth at time `t_s`."""
        p = self.params
        gauss = self._rng.gauss
        if self.tip_mode == "ok":
            reading = tip_c + gauss(0.0, p.tip_sigma_c) + self.tip_offset_c
            if self.tip_drift_c_per_s:
                reading += self.tip_drift_c_per_s * (t_s - self.tip_drift_since_s)
            tip = p.thermistor.c_to_counts(reading)
            self._last_tip = tip
        elif self.tip_mode == "stuck":
            tip = self._last_tip
        else:
            tip = ADC_MAX if self.tip_mode == "open" else 0
        sigma = p.pressure_sigma_psi
        supply = self._pressure(
            "supply", self.supply_mode, p.supply, supply_psi + gauss(0.0, sigma)
        )
        exhaust = self._pressure(
            "exhaust", self.exhaust_mode, p.exhaust, exhaust_psi + gauss(0.0, sigma)
        )
        return tip, supply, exhaust

    def _pressure(self, name: str, mode: str, channel: PressureChannel, psig: float) -> int:
        if mode == "ok":
            counts = channel.psig_to_counts(psig)
            self._last[name] = counts
            return counts
        if mode == "frozen":
            return self._last[name]
        return ADC_MAX if mode == "rail_high" else 0

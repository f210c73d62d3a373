"""The console's own estimates: gas used and left, and the ice ball's radius (issue 9, item 5).

Only what a real console sees goes in: the snapshots' reported supply-valve
state and tip temperature, with their `t_s`. The simulator's truth
(`SimulatedDevice.status()`) is for the tests that judge these figures, never
an input. Sans-I/O and clockless: time is the snapshots' `t_s`.

* **Gas used** = the reported supply-open time x the probe model's nominal
  `flow_g_per_s`; **gas left** = the cylinder's `net_g` minus that, which
  assumes a full cylinder at the start of the session (the console cannot
  weigh it, and the pressure of a liquefied gas does not show what is left).
* **Ice-ball radius** (mm, from the probe axis): a reduced model driven only by
  `tip_c` and the supply-open state. While the supply is open and the tip
  reads colder than `freezing_below_c`, the radius grows toward a steady radius
  proportional to how cold the tip is, at a rate that falls as the ball grows
  (diffusion-limited: ``dr/dt = k (r_ss - r) / (r + r0)``); while the supply is
  closed and the tip sits near the melting plateau it shrinks at a constant
  rate; a tip that reads above `melted_above_c` has no ice around it.
  The constants are fitted against the simulator (docs/estimates.md).

`on_snapshot` runs on every 100 Hz sample: plain floats, no allocation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from drivers.snapshot import Snapshot

__all__ = ["CycleEstimate", "Estimates", "IceModel"]

#: A longer gap between snapshots (a lost link) counts only this much supply-open time:
#: the device's own watchdog closes the supply when the console goes silent.
MAX_GAP_S = 0.5


@dataclass(frozen=True, slots=True)
class IceModel:
    """The reduced ice-ball model's constants (fitted against the simulator, docs/estimates.md)."""

    k_mm2_per_s: float = 0.0442  # growth rate constant k
    r0_mm: float = 0.425  # radius offset of the growth rate (the probe's own radius and film)
    steady_mm_per_c: float = 0.0532  # steady radius per degree C below 0 at the tip
    shrink_mm_per_s: float = 0.0100  # thaw: melt rate on the plateau
    freezing_below_c: float = -20.0  # the gas boils at the tip: the ball grows
    plateau_above_c: float = -10.0  # supply closed and the tip back near 0 C: the ball melts
    melted_above_c: float = 3.0  # the tip is above melting: no ice left


@dataclass(frozen=True, slots=True)
class CycleEstimate:
    """One freeze's estimates, taken when the freeze ends."""

    cycle: int
    gas_used_g_est: float  # during this freeze
    gas_used_total_g_est: float  # since the session started
    gas_left_g_est: float
    ice_radius_mm_est: float  # at the end of the freeze


class Estimates:
    """Gas used and left, and the ice-ball radius, from the snapshots alone."""

    __slots__ = (
        "_cycle_start_open_s",
        "_last_open",
        "_last_t",
        "cycles",
        "flow_g_per_s",
        "ice_radius_mm_est",
        "model",
        "net_g",
        "supply_open_s",
    )

    def __init__(self, flow_g_per_s: float, net_g: float, model: IceModel | None = None) -> None:
        self.flow_g_per_s = float(flow_g_per_s)
        self.net_g = float(net_g)
        self.model = model or IceModel()
        self.supply_open_s = 0.0
        self.ice_radius_mm_est = 0.0
        self.cycles: list[CycleEstimate] = []
        self._last_t: float | None = None
        self._last_open = False
        self._cycle_start_open_s: float | None = None

    @property
    def gas_used_g_est(self) -> float:
        return self.supply_open_s * self.flow_g_per_s

    @property
    def gas_left_g_est(self) -> float:
        """Assumes a full cylinder (`net_g`) at the session start; never below 0."""
        return max(0.0, self.net_g - self.gas_used_g_est)

    def on_snapshot(self, s: Snapshot) -> None:
        t = s.t_s
        last_t = self._last_t
        self._last_t = t
        if last_t is None:
            self._last_open = s.supply_open
            return
        dt = t - last_t
        if dt <= 0.0:
            self._last_open = s.supply_open
            return
        if dt > MAX_GAP_S:
            dt = MAX_GAP_S
        if self._last_open:
            self.supply_open_s += dt
        self._last_open = s.supply_open
        tip = s.tip_c
        if tip != tip:  # NaN: the thermistor at a rail; hold the estimate
            return
        m = self.model
        r = self.ice_radius_mm_est
        if s.supply_open and tip < m.freezing_below_c:
            steady = -tip * m.steady_mm_per_c
            if r < steady:
                r += dt * m.k_mm2_per_s * (steady - r) / (r + m.r0_mm)
                if r > steady:
                    r = steady
        elif tip > m.melted_above_c:
            r = 0.0
        elif not s.supply_open and tip > m.plateau_above_c and r > 0.0:
            r -= dt * m.shrink_mm_per_s
            if r < 0.0:
                r = 0.0
        self.ice_radius_mm_est = r

    # --- cycles (called by the controller on the procedure's freeze states) -----------------

    def freeze_started(self) -> None:
        self._cycle_start_open_s = self.supply_open_s

    def freeze_ended(self, cycle: int) -> CycleEstimate:
        start = self._cycle_start_open_s
        self._cycle_start_open_s = None
        used = self.gas_used_g_est
        cycle_used = used if start is None else (self.supply_open_s - start) * self.flow_g_per_s
        estimate = CycleEstimate(
            cycle,
            _round(cycle_used, 2),
            _round(used, 2),
            _round(self.gas_left_g_est, 1),
            _round(self.ice_radius_mm_est, 2),
        )
        self.cycles.append(estimate)
        return estimate


def _round(x: float, digits: int) -> float:
    return round(x, digits) if math.isfinite(x) else x

"""One telemetry frame in engineering units: the immutable snapshot the console judges.

`Snapshots.convert` is on the per-sample path (DESIGN.md: about 25 us for
everything per sample): it builds one tuple from plain arithmetic, with the
plausibility flags the sensors can judge alone. Interlocks and the procedure
work on snapshots, never on raw counts.
"""

from __future__ import annotations

import math
from typing import NamedTuple

from drivers.pressure import PressureSensor, exhaust_sensor, supply_sensor
from drivers.thermistor import Thermistor
from protocols import StimFlags, Telemetry, ValveBits
from protocols.frontend import LEAD_OHM_PER_COUNT, LEAD_OPEN, STIM_MA_PER_COUNT

_SUPPLY = int(ValveBits.SUPPLY_OPEN)
_INLET = int(ValveBits.INLET_OPEN)
_VENT = int(ValveBits.VENT_OPEN)
_STIM_ON = int(StimFlags.OUTPUT_ON)


class Snapshot(NamedTuple):
    """The device's state at `device_ms`, received at `t_s` on the daemon's clock."""

    t_s: float
    device_ms: int
    tip_c: float  # NaN when the thermistor is at a rail
    tip_flags: int  # drivers.thermistor.TipFlag
    supply_psi: float
    supply_flags: int  # drivers.pressure.PressureFlag
    exhaust_psi: float
    exhaust_flags: int
    supply_open: bool
    inlet_open: bool
    vent_open: bool
    stim_on: bool
    stim_current_ma: float
    lead_ohm: float  # inf when open
    status_flags: int  # protocols.StatusFlags
    fault_flags: int  # protocols.FaultFlags


_new_tuple = tuple.__new__


class Snapshots:
    """Converts telemetry into snapshots with one probe's thermistor and the calibrated sensors."""

    __slots__ = ("exhaust", "supply", "thermistor")

    def __init__(
        self,
        thermistor: Thermistor,
        supply: PressureSensor | None = None,
        exhaust: PressureSensor | None = None,
    ) -> None:
        self.thermistor = thermistor
        self.supply = supply or supply_sensor()
        self.exhaust = exhaust or exhaust_sensor()

    def convert(self, t: Telemetry, t_s: float) -> Snapshot:
        tip_c, tip_flags = self.thermistor.judge(t.tip_counts, t.device_ms)
        supply_psi, supply_flags = self.supply.judge(t.supply_counts)
        exhaust_psi, exhaust_flags = self.exhaust.judge(t.exhaust_counts)
        valves = t.valves
        lead = t.lead_impedance_10ohm
        # tuple.__new__: what Snapshot(...) calls, without the generated __new__'s frame.
        return _new_tuple(
            Snapshot,
            (
                t_s,
                t.device_ms,
                tip_c,
                tip_flags,
                supply_psi,
                supply_flags,
                exhaust_psi,
                exhaust_flags,
                bool(valves & _SUPPLY),
                bool(valves & _INLET),
                bool(valves & _VENT),
                bool(t.stim_flags & _STIM_ON),
                t.stim_measured_10ua * STIM_MA_PER_COUNT,
                math.inf if lead >= LEAD_OPEN else lead * LEAD_OHM_PER_COUNT,
                t.status_flags,
                t.fault_flags,
            ),
        )

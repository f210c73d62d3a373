"""The interlocks: each safety rule a small judge of the current snapshot and a short history.

Every rule returns `Decision`s: the alarm, its SRs, the measured value, the
limit, the device time of the sample that decided and of the first sample
over the limit. What each alarm *does* is the alarm table's business
(`console.controller` applies it); the rules only judge. Debounces are
durations of device time with at least two samples ("above L for T", the SR
preamble), so they keep their meaning at any telemetry rate.

Order (safety-requirements.md): the sensor rules first (SR-32, SR-10), then the
rules that use the sensors; a failed pressure sensor suspends the rules that
read it; an active `ALM_TEMP_SENSOR` suspends the temperature rules (SR-08's
tip part, SR-11; SR-12's release and SR-14 are suspended by the procedure).
Per sample this is a handful of comparisons: no allocation unless a rule
trips, no `transitions` trigger, no pydantic (DESIGN.md, the budget).
"""

from __future__ import annotations

from typing import NamedTuple

from console.config import GasProfile, InterlockLimits
from console.connection import FastTrip
from drivers.pressure import PressureFlag, PressureSensor
from drivers.snapshot import Snapshot
from drivers.thermistor import TipFlag
from protocols import Telemetry

_PRESSURE_BAD = int(PressureFlag.RAIL_LOW | PressureFlag.RAIL_HIGH | PressureFlag.OUT_OF_RANGE)


class Decision(NamedTuple):
    alarm: str
    value: float | None
    limit: float | None
    device_ms: int | None  # None: not decided on a sample (SR-31, before any telemetry)
    first_over_device_ms: int | None


class Clear(NamedTuple):
    """The condition behind an alarm is gone (SR-21 clears non-latching alarms on this)."""

    alarm: str


class Hold:
    """The SR preamble's debounce: every sample of the last T inside, and at least 2 samples.

    Unit-agnostic: the interlocks feed device milliseconds, the procedure seconds.
    """

    __slots__ = ("count", "since")

    def __init__(self) -> None:
        self.since: float | None = None
        self.count = 0

    def update(self, inside: bool, t: float) -> None:
        if inside:
            if self.since is None:
                self.since = t
                self.count = 0
            self.count += 1
        else:
            self.since = None
            self.count = 0

    def held(self, t: float, duration: float) -> bool:
        return self.since is not None and self.count >= 2 and t - self.since >= duration - 1e-9

    @property
    def since_ms(self) -> int | None:
        return None if self.since is None else int(self.since)

    def reset(self) -> None:
        self.since = None
        self.count = 0


class Context(NamedTuple):
    """What the rules need to know beyond the sample: the procedure's phase."""

    freezing: bool  # a freeze state: the supply is meant to be open
    open_since_ms: int | None  # device time of the first reported supply open of this freeze
    temp_sensor_alarm: bool  # ALM_TEMP_SENSOR active: temperature rules suspended


class Interlocks:
    """All the rules, with their short histories. One instance per connection."""

    def __init__(self, limits: InterlockLimits, gas: GasProfile, lead_max_ohm: float) -> None:
        self.limits = limits
        self.gas = gas
        self.lead_max_ohm = lead_max_ohm
        ms = 1000.0
        self._sensor_hold_ms = limits.sensor_fault_hold_s * ms
        self._restore_ms = limits.sensor_plausible_restore_s * ms
        self._over_ms = limits.supply_over_hold_s * ms
        self._low_ms = limits.supply_low_hold_s * ms
        self._window_ms = limits.supply_window_hold_s * ms
        self._exhaust_over_ms = limits.exhaust_over_hold_s * ms
        self._exhaust_high_ms = limits.exhaust_high_hold_s * ms
        self._no_flow_exhaust_ms = limits.no_flow_exhaust_s * ms
        self._no_flow_tip_ms = limits.no_flow_tip_s * ms
        self._stuck_ms = limits.tip_stuck_s * ms
        self._weak_ms = limits.weak_freeze_s * ms
        self.supply_failed = False
        self.exhaust_failed = False
        self._supply_bad = Hold()
        self._exhaust_bad = Hold()
        self._supply_good = Hold()
        self._exhaust_good = Hold()
        self._over = Hold()
        self._over_clear = Hold()
        self._low = Hold()
        self._low_clear = Hold()
        self._exhaust_over = Hold()
        self._exhaust_high = Hold()
        self._tripped: set[str] = set()
        self._freeze_ms: int | None = None
        self._freeze_min = self._freeze_max = 0.0
        self._weak_checked = False
        self._stuck_checked = False
        self._no_flow_checked = False
        self._tip_no_flow_checked = False
        self._fault_flags = 0

    def _trip(
        self,
        out: list[Decision | Clear],
        alarm: str,
        value: float | None,
        limit: float | None,
        s: Snapshot,
        first: int | None,
    ) -> None:
        if alarm not in self._tripped:
            self._tripped.add(alarm)
            out.append(Decision(alarm, value, limit, s.device_ms, first))

    def _clear(self, out: list[Decision | Clear], alarm: str) -> None:
        if alarm in self._tripped:
            self._tripped.discard(alarm)
            out.append(Clear(alarm))

    def evaluate(self, s: Snapshot, ctx: Context) -> list[Decision | Clear]:
        """Judge one sample, rule by rule in the SRs' order; only what changed comes back."""
        out: list[Decision | Clear] = []
        self._sr32_pressure_sensors(s, out)
        self._sr32_device_fault(s, out)
        temp_ok = self._sr10_thermistor(s, ctx, out)
        if ctx.freezing and ctx.open_since_ms is not None:
            self._freeze_rules(s, ctx.open_since_ms, temp_ok, out)
        if not self.supply_failed and not s.supply_flags:
            self._sr05_sr06_supply(s, ctx, out)
        if not self.exhaust_failed and not s.exhaust_flags:
            self._sr07_exhaust(s, out)
        self._sr15_sr16_stimulation(s, out)
        return out

    def exhaust_fast_trip(self, sensor: PressureSensor, frames: list[Telemetry]) -> FastTrip | None:
        """SR-07's trip judged on raw telemetry, before validation (DESIGN.md, the fast path).

        The same rule as `_sr07_exhaust` on the same samples: the exhaust channel's
        calibration and plausibility, the rule suspended while SR-32 holds the sensor
        failed, above the limit for the hold time and at least two samples. It reads
        the rule's history and changes nothing: the full path still judges every
        sample and takes the same decision on the same sample, so the record is the
        one it always was; only the close command goes out sooner.
        """
        if self.exhaust_failed or "ALM_EXHAUST_OVERPRESSURE" in self._tripped:
            return None
        hold = self._exhaust_over
        since, count = hold.since, hold.count
        limit, hold_ms = self.gas.exhaust_over_psi, self._exhaust_over_ms
        judge = sensor.judge
        for t in frames:  # the frames before the deciding one move the history, as they will
            psi, flags = judge(t.exhaust_counts)
            if flags:
                continue  # the rule skips an implausible sample (SR-32 judges it)
            if psi > limit:
                ms = t.device_ms
                if since is None:
                    since, count = ms, 0
                count += 1
                if count >= 2 and ms - since >= hold_ms - 1e-9:
                    return FastTrip(
                        "ALM_EXHAUST_OVERPRESSURE", round(psi, 2), limit, ms, int(since)
                    )
            else:
                since, count = None, 0
        return None

    def taken(self, alarm: str) -> None:
        """A decision taken outside `evaluate` (the fast path): not decided again."""
        self._tripped.add(alarm)

    def _sr32_pressure_sensors(self, s: Snapshot, out: list[Decision | Clear]) -> None:
        """SR-32: a pressure channel at a rail or outside its plausible range for 30 ms;
        the rules that read a failed sensor are suspended until it is plausible for 5 s."""
        ms = s.device_ms
        self._supply_bad.update(bool(s.supply_flags & _PRESSURE_BAD), ms)
        self._exhaust_bad.update(bool(s.exhaust_flags & _PRESSURE_BAD), ms)
        self._supply_good.update(not s.supply_flags, ms)
        self._exhaust_good.update(not s.exhaust_flags, ms)
        if not self.supply_failed and self._supply_bad.held(ms, self._sensor_hold_ms):
            self.supply_failed = True
            self._trip(
                out,
                "ALM_PRESSURE_SENSOR",
                round(s.supply_psi, 2),
                None,
                s,
                self._supply_bad.since_ms,
            )
        if not self.exhaust_failed and self._exhaust_bad.held(ms, self._sensor_hold_ms):
            self.exhaust_failed = True
            self._trip(
                out,
                "ALM_PRESSURE_SENSOR",
                round(s.exhaust_psi, 2),
                None,
                s,
                self._exhaust_bad.since_ms,
            )
        if self.supply_failed and self._supply_good.held(ms, self._restore_ms):
            self.supply_failed = False
        if self.exhaust_failed and self._exhaust_good.held(ms, self._restore_ms):
            self.exhaust_failed = False
        if "ALM_PRESSURE_SENSOR" in self._tripped and not (
            self.supply_failed or self.exhaust_failed
        ):
            self._clear(out, "ALM_PRESSURE_SENSOR")

    def _sr32_device_fault(self, s: Snapshot, out: list[Decision | Clear]) -> None:
        """SR-32: any device fault flag."""
        if s.fault_flags:
            self._trip(out, "ALM_DEVICE_FAULT", float(s.fault_flags), None, s, s.device_ms)
        elif "ALM_DEVICE_FAULT" in self._tripped:
            self._clear(out, "ALM_DEVICE_FAULT")

    def _sr10_thermistor(self, s: Snapshot, ctx: Context, out: list[Decision | Clear]) -> bool:
        """SR-10, before SR-08: the reading's own plausibility. True if temperature is trusted."""
        if s.tip_flags:
            value = None if s.tip_c != s.tip_c else round(s.tip_c, 2)
            limit = self.limits.tip_max_c if s.tip_flags & TipFlag.ABOVE_MAX else None
            if s.tip_flags & TipFlag.BELOW_FLOOR:
                limit = self.gas.sensor_floor_c
            self._trip(out, "ALM_TEMP_SENSOR", value, limit, s, s.device_ms)
        return not ctx.temp_sensor_alarm and not s.tip_flags

    def _freeze_rules(
        self, s: Snapshot, open_ms: int, temp_ok: bool, out: list[Decision | Clear]
    ) -> None:
        """SR-10 (stuck), SR-08, SR-11: judged at fixed times after the reported supply open."""
        lim, gas = self.limits, self.gas
        if self._freeze_ms != open_ms:
            self._freeze_ms = open_ms
            self._freeze_min = self._freeze_max = s.tip_c
            self._weak_checked = self._stuck_checked = False
            self._no_flow_checked = self._tip_no_flow_checked = False
        since = s.device_ms - open_ms
        tip = s.tip_c
        if tip == tip:  # not NaN
            self._freeze_min = min(self._freeze_min, tip)
            self._freeze_max = max(self._freeze_max, tip)
        # SR-10 stuck: less than 2 C of change in the 10 s after the supply opens.
        if not self._stuck_checked and since >= self._stuck_ms:
            self._stuck_checked = True
            change = self._freeze_max - self._freeze_min
            if temp_ok and change < lim.tip_stuck_c:
                self._trip(out, "ALM_TEMP_SENSOR", round(change, 2), lim.tip_stuck_c, s, open_ms)
                temp_ok = False
        # SR-08: exhaust below 5 psig after 2 s, or the tip not below -20 C after 10 s.
        if (
            not self._no_flow_checked
            and since >= self._no_flow_exhaust_ms
            and not self.exhaust_failed
        ):
            self._no_flow_checked = True
            if s.exhaust_psi < gas.exhaust_flow_min_psi:
                self._trip(
                    out,
                    "ALM_NO_FLOW",
                    round(s.exhaust_psi, 2),
                    gas.exhaust_flow_min_psi,
                    s,
                    open_ms,
                )
        if not self._tip_no_flow_checked and since >= self._no_flow_tip_ms and temp_ok:
            self._tip_no_flow_checked = True
            if not tip < lim.no_flow_tip_c:
                self._trip(out, "ALM_NO_FLOW", round(tip, 2), lim.no_flow_tip_c, s, open_ms)
        # SR-11: the target within 30 s of the reported open (a finding; the freeze goes on).
        if not self._weak_checked and since >= self._weak_ms and temp_ok:
            self._weak_checked = True
            if self._freeze_min > gas.freeze_target_c:
                self._trip(
                    out,
                    "ALM_WEAK_FREEZE",
                    round(self._freeze_min, 2),
                    gas.freeze_target_c,
                    s,
                    open_ms,
                )

    def _sr05_sr06_supply(self, s: Snapshot, ctx: Context, out: list[Decision | Clear]) -> None:
        """SR-05: above 900 psig for 30 ms. SR-06: below 550 psig for 1 s during a freeze.
        Only plausible readings of a working sensor reach here (SR-32)."""
        ms, gas = s.device_ms, self.gas
        self._over.update(s.supply_psi > gas.supply_over_psi, ms)
        if self._over.held(ms, self._over_ms):
            self._trip(
                out,
                "ALM_SUPPLY_OVERPRESSURE",
                round(s.supply_psi, 2),
                gas.supply_over_psi,
                s,
                self._over.since_ms,
            )
        if "ALM_SUPPLY_OVERPRESSURE" in self._tripped:
            self._over_clear.update(s.supply_psi <= gas.supply_max_psi, ms)
            if self._over_clear.held(ms, self._window_ms):
                self._clear(out, "ALM_SUPPLY_OVERPRESSURE")
        self._low.update(ctx.freezing and s.supply_psi < gas.supply_low_psi, ms)
        if self._low.held(ms, self._low_ms):
            self._trip(
                out,
                "ALM_SUPPLY_LOW",
                round(s.supply_psi, 2),
                gas.supply_low_psi,
                s,
                self._low.since_ms,
            )
        if "ALM_SUPPLY_LOW" in self._tripped:
            self._low_clear.update(gas.supply_min_psi <= s.supply_psi <= gas.supply_max_psi, ms)
            if self._low_clear.held(ms, self._window_ms):
                self._clear(out, "ALM_SUPPLY_LOW")

    def _sr07_exhaust(self, s: Snapshot, out: list[Decision | Clear]) -> None:
        """SR-07: above 20 psig for 20 ms (safe state); 15-20 psig for 2 s (recorded)."""
        ms, gas, exhaust = s.device_ms, self.gas, s.exhaust_psi
        self._exhaust_over.update(exhaust > gas.exhaust_over_psi, ms)
        if self._exhaust_over.held(ms, self._exhaust_over_ms):
            self._trip(
                out,
                "ALM_EXHAUST_OVERPRESSURE",
                round(exhaust, 2),
                gas.exhaust_over_psi,
                s,
                self._exhaust_over.since_ms,
            )
        elif exhaust < gas.exhaust_flow_min_psi and "ALM_EXHAUST_OVERPRESSURE" in self._tripped:
            self._clear(out, "ALM_EXHAUST_OVERPRESSURE")
        self._exhaust_high.update(gas.exhaust_high_psi <= exhaust <= gas.exhaust_over_psi, ms)
        if self._exhaust_high.held(ms, self._exhaust_high_ms):
            self._trip(
                out,
                "ALM_EXHAUST_HIGH",
                round(exhaust, 2),
                gas.exhaust_high_psi,
                s,
                self._exhaust_high.since_ms,
            )
        elif exhaust < gas.exhaust_high_psi and "ALM_EXHAUST_HIGH" in self._tripped:
            self._clear(out, "ALM_EXHAUST_HIGH")

    def _sr15_sr16_stimulation(self, s: Snapshot, out: list[Decision | Clear]) -> None:
        """SR-15: stimulation reported on with the supply open. SR-16: lead above 20 kOhm."""
        if s.stim_on and s.supply_open:
            self._trip(out, "ALM_STIM_DURING_FREEZE", s.stim_current_ma, 0.0, s, s.device_ms)
        elif "ALM_STIM_DURING_FREEZE" in self._tripped and not s.stim_on:
            self._clear(out, "ALM_STIM_DURING_FREEZE")
        if s.stim_on and s.lead_ohm > self.lead_max_ohm:
            lead = None if s.lead_ohm == float("inf") else s.lead_ohm
            self._trip(out, "ALM_STIM_LEAD", lead, self.lead_max_ohm, s, s.device_ms)
        elif "ALM_STIM_LEAD" in self._tripped and (
            not s.stim_on or s.lead_ohm <= self.lead_max_ohm
        ):
            self._clear(out, "ALM_STIM_LEAD")

    def link_quality(
        self, good: int, bad: int, lost: int, window_s: float, device_ms: int
    ) -> list[Decision | Clear]:
        """SR-23: bad / (good + bad + lost) above 1 % over the 5 s window."""
        out: list[Decision | Clear] = []
        total = good + bad + lost
        if window_s <= 0 or total == 0:
            return out
        ratio = bad / total
        if ratio > self.limits.link_degraded_ratio:
            if "ALM_LINK_DEGRADED" not in self._tripped:
                self._tripped.add("ALM_LINK_DEGRADED")
                out.append(
                    Decision(
                        "ALM_LINK_DEGRADED",
                        round(ratio, 4),
                        self.limits.link_degraded_ratio,
                        device_ms,
                        None,
                    )
                )
        elif "ALM_LINK_DEGRADED" in self._tripped:
            self._clear(out, "ALM_LINK_DEGRADED")
        return out

    def forget(self, alarm: str) -> None:
        """The alarm manager cleared it: the rule may trip again."""
        self._tripped.discard(alarm)

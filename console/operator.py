"""The scripted operator of `interfaces.md`: what `simulate` (and `qa run`) do in place of a person.

Checklist all clear; `arm`; `stim_configure {preset: motor}`, `stim_start`;
the current from 1.00 mA down in 0.10 mA steps while the nerve responds, then
bisection to 0.01 mA; the threshold configured and recorded by
`confirm_localization`; `start_freeze`; `request_withdraw` when the lock
releases. No response at the start, or `ALM_STIM_LEAD`: `abort`. `ALM_LEAK`
(back in `ready`): the procedure has ended (faulted). After `ALM_THAW_SLOW`
or with `ALM_TEMP_SENSOR`: `declare_thermistor_suspect`, then
`confirm_timed_thaw` once allowed. A locked start (SR-22, after an
interrupted session): wait in `ready` for the measured release, then arm.

The nerve's response is read from the simulator's side channel (a person
would watch the muscle); the operator never looks at anything else the
console cannot see.
"""

from __future__ import annotations

from collections.abc import Callable

from console.actions import clear_checklist
from console.controller import Controller
from console.procedure import ENDS

GRID = 100  # counts of 0.01 mA per mA


class ScriptedOperator:
    def __init__(
        self,
        nerve_responds: Callable[[float], bool | None],
        *,
        preset: str = "motor",
        dwell_s: float = 1.0,
        start_ma: float = 1.00,
        fixed_ma: float | None = None,
        checklist: dict[str, object] | None = None,
    ) -> None:
        #: `run --checklist FILE`; the simulator's operator has everything clear.
        self.checklist = checklist if checklist is not None else clear_checklist().model_dump()
        #: Asked once a dwell with the current being delivered (mA); None: no answer yet,
        #: ask again next turn (a person at a prompt). The simulator answers at once.
        self.nerve_responds = nerve_responds
        #: `run --localize-ma X`: stimulate at X, take X as the threshold, no search.
        self.fixed_counts = None if fixed_ma is None else round(fixed_ma * GRID)
        self.preset = preset
        self.dwell_s = dwell_s
        self.start_counts = round(start_ma * GRID)
        self.phase = "arm"
        self.done = False
        self.why = ""
        self._next_t = 0.0
        self._counts = self.start_counts
        self._hi: int | None = None  # lowest current seen to respond
        self._lo: int | None = None  # highest current seen not to respond
        self._declared = False
        self._pulse_us = 100
        self._rate_hz = 2

    def _act(self, ctl: Controller, action: str, **params: object) -> bool:
        return ctl.act(action, dict(params))[0]

    def _configure(self, ctl: Controller, counts: int) -> None:
        self._counts = counts
        self._act(
            ctl,
            "stim_configure",
            current_ma=counts / GRID,
            pulse_us=self._pulse_us,
            rate_hz=self._rate_hz,
        )

    def _finish(self, why: str) -> None:
        self.done = True
        self.why = why

    def step(self, ctl: Controller, t: float) -> None:
        """Called once a turn after the console's own work; acts at most once per dwell."""
        if self.done:
            return
        proc = ctl.procedure
        state = proc.state
        alarms = ctl.alarms
        if self.phase == "arm":
            if state == "ready" and proc.locked:  # SR-22's locked start: wait for the release
                self._timed_thaw(ctl, t)
            elif state == "ready":
                if self._act(ctl, "arm", checklist=self.checklist):
                    self.phase = "armed"
                else:
                    self._finish("arm refused")
            return
        if self.phase == "armed":
            if state == "ready":  # the leak test failed: the procedure ended (faulted)
                self._finish("leak test failed")
            elif state not in ("leak_test", "armed"):  # stopped by an alarm meanwhile
                self.phase = "ending"
            elif state == "armed":
                self._act(ctl, "stim_configure", preset=self.preset)
                settings = ctl.stim_settings
                if settings is not None:
                    self._pulse_us, self._rate_hz = settings.pulse_us, settings.rate_hz
                self._counts = (
                    self.fixed_counts if self.fixed_counts is not None else self.start_counts
                )
                self._configure(ctl, self._counts)
                self._act(ctl, "stim_start")
                self.phase = "search"
                self._next_t = t + self.dwell_s
            return
        if self.phase in ("search", "bisect"):
            if state != "localize":  # stopped by an alarm meanwhile
                self.phase = "ending"
                return
            if alarms.is_active("ALM_STIM_LEAD"):
                self._act(ctl, "abort")
                self.phase = "ending"
                return
            if t < self._next_t:
                return
            self._next_t = t + self.dwell_s
            self._localize(ctl)
            return
        if self.phase in ("procedure", "ending"):
            self._procedure(ctl, t)

    def _localize(self, ctl: Controller) -> None:
        counts = self._counts
        if self.fixed_counts is not None:
            self._confirm(ctl, counts)
            return
        responds = self.nerve_responds(counts / GRID)
        if responds is None:
            self._next_t = 0.0  # no answer yet: ask again next turn, stimulation goes on
            return
        if responds:
            self._hi = counts
        else:
            self._lo = counts
        if self._hi is None:  # no response at the starting current
            self._act(ctl, "abort")
            self.phase = "ending"
            return
        if self.phase == "search" and responds and counts > 0:
            self._configure(ctl, max(0, counts - 10))
            return
        self.phase = "bisect"
        lo = self._lo if self._lo is not None else -1
        hi = self._hi
        if hi - lo > 1:
            self._configure(ctl, (hi + lo) // 2 if lo >= 0 else max(0, hi - 1))
            return
        self._confirm(ctl, hi)  # the threshold: the lowest current that responded

    def _confirm(self, ctl: Controller, counts: int) -> None:
        self._configure(ctl, counts)
        self._act(ctl, "confirm_localization")
        self._act(ctl, "start_freeze")
        self.phase = "procedure"

    def _procedure(self, ctl: Controller, t: float) -> None:
        proc = ctl.procedure
        if proc.state == "ready":
            self._finish("procedure ended")
            return
        self._timed_thaw(ctl, t)
        ended = proc.state == "complete" or proc.state in ENDS
        if proc.withdraw_safe and ended and self._act(ctl, "request_withdraw"):
            self._finish("withdrawn")

    def _timed_thaw(self, ctl: Controller, t: float) -> None:
        """SR-13's path when the thermistor is not to be trusted: declare, wait, confirm."""
        proc = ctl.procedure
        alarms = ctl.alarms
        if (
            proc.locked
            and not self._declared
            and (alarms.is_active("ALM_THAW_SLOW") or alarms.is_active("ALM_TEMP_SENSOR"))
        ):
            self._declared = self._act(ctl, "declare_thermistor_suspect")
        if proc.locked and proc.timed_path() and not proc.timed_confirmed:
            closed = proc.supply_closed_t
            if closed is not None and t - closed >= ctl.config.interlocks.timed_thaw_s:
                self._act(ctl, "confirm_timed_thaw")

"""Progress for people: a live view while a procedure runs, plain lines off a terminal, a summary.

Everything here reads events and the controller's state after the control
step's decisions were written: it never delays a safety decision (DESIGN.md).
On a terminal, a rich `Live` panel is refreshed at most 4 times a second of
wall time; off a terminal (a pipe, a file, CI) the same information comes as
plain lines; `--quiet` shows only errors. Strings from the device are never
interpreted as markup.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, field
from typing import Any, TextIO

from rich.console import Console
from rich.live import Live
from rich.table import Table
from rich.text import Text

from console.controller import Controller

Event = dict[str, Any]

#: Events worth a line of their own in the plain output.
_LINE_EVENTS = {
    "device_identified",
    "state_changed",
    "leak_test",
    "localized",
    "withdraw_safe",
    "alarm_raised",
    "alarm_cleared",
    "fault_injected",
    "link_lost",
    "link_restored",
    "procedure_finished",
    "session_finished",
    "estimates",
}


def event_line(e: Event) -> str | None:
    name = e["event"]
    t = f"t={e['t_s']:8.2f}s"
    if name == "state_changed":
        return f"{t} state {e['from']} -> {e['to']}"
    if name == "device_identified":
        refused = f" REFUSED: {', '.join(e['refusals'])}" if e.get("refusals") else ""
        return (
            f"{t} device {e['device_serial']} ({e['device_kind']}, firmware {e['firmware']}), "
            f"probe {e['probe_model']} {e['probe_serial']}, gas {e['gas']}{refused}"
        )
    if name == "leak_test":
        verdict = "passed" if e["passed"] else "FAILED"
        return f"{t} leak test {verdict}: decay {e['decay_psi']} psi over {e['window_s']:g} s"
    if name == "localized":
        return f"{t} localized: threshold {e['threshold_ma']:.2f} mA ({e['preset']})"
    if name == "withdraw_safe":
        return f"{t} withdraw {'SAFE' if e['safe'] else 'LOCKED: do not move the probe'}"
    if name == "alarm_raised":
        value = "" if e.get("value") is None else f" value {e['value']}"
        limit = "" if e.get("limit") is None else f" limit {e['limit']}"
        return f"{t} ALARM {e['alarm']} ({e['priority']}, {', '.join(e['sr'])}){value}{limit}"
    if name == "alarm_cleared":
        return f"{t} alarm {e['alarm']} cleared"
    if name == "fault_injected":
        return f"{t} fault injected: {e['spec']}"
    if name in ("link_lost", "link_restored"):
        return f"{t} {name.replace('_', ' ')}"
    if name == "estimates":
        return f"{t} cycle {e['cycle']}: {estimates_text(e)}"
    if name == "procedure_finished":
        return f"{t} procedure finished: {e['outcome']} ({e['reason']})"
    return None


def estimates_text(e: Event) -> str:
    """The console's estimates, labelled as such (docs/estimates.md)."""
    return (
        f"gas used ~{e['gas_used_g_est']:.0f} g (est.), left ~{e['gas_left_g_est']:.0f} g (est.); "
        f"ice ball ~{e['ice_radius_mm_est']:.1f} mm (est.)"
    )


@dataclass
class Summary:
    """What the end-of-run summary shows, gathered from the events as they pass."""

    freeze_target_c: float
    cycles: dict[int, dict[str, float]] = field(default_factory=dict)
    estimates: dict[int, Event] = field(default_factory=dict)
    threshold_ma: float | None = None
    alarms: list[str] = field(default_factory=list)
    outcome: str = ""
    reason: str = ""
    session_id: str = ""
    _cycle: int | None = None
    _last_t: float | None = None

    def __call__(self, e: Event) -> None:
        name = e["event"]
        if name == "state_changed":
            to = e["to"]
            self._cycle = int(to.rsplit("_", 1)[1]) if to.startswith("freeze_") else None
            if self._cycle is not None:
                self.cycles.setdefault(
                    self._cycle, {"min_tip_c": float("inf"), "below_target_s": 0.0}
                )
            self._last_t = None
        elif name == "telemetry" and self._cycle is not None:
            tip = e.get("tip_c")
            stats = self.cycles[self._cycle]
            if tip is not None:
                stats["min_tip_c"] = min(stats["min_tip_c"], tip)
                if tip <= self.freeze_target_c and self._last_t is not None:
                    stats["below_target_s"] += e["t_s"] - self._last_t
            self._last_t = e["t_s"]
        elif name == "estimates":
            self.estimates[int(e["cycle"])] = e
        elif name == "localized":
            self.threshold_ma = e["threshold_ma"]
        elif name == "alarm_raised":
            self.alarms.append(f"{e['alarm']} at t={e['t_s']:.2f}s ({e['priority']})")
        elif name == "session_finished":
            self.outcome, self.reason = e["outcome"], e["reason"]
        elif name == "session_started":
            self.session_id = e["session_id"]

    def render(
        self, exit_code: int, wall_s: float, virtual_s: float, command: str = "simulate"
    ) -> Table:
        table = Table(title=f"probe-console {command}: summary", show_header=False, box=None)
        table.add_column(style="bold")
        table.add_column()
        table.add_row("outcome", Text(f"{self.outcome} ({self.reason}), exit {exit_code}"))
        if self.session_id:
            table.add_row("session", Text(self.session_id))
            table.add_row("report", Text(f"probe-console report {self.session_id[:12]}"))
        for k, stats in sorted(self.cycles.items()):
            low = stats["min_tip_c"]
            low_text = "no reading" if low == float("inf") else f"{low:.1f} C"
            est = self.estimates.get(k)
            est_text = "" if est is None else f"; {estimates_text(est)}"
            table.add_row(
                f"cycle {k}",
                Text(
                    f"min tip {low_text}; {stats['below_target_s']:.0f} s "
                    f"at or below {self.freeze_target_c:g} C{est_text}"
                ),
            )
        threshold = "-" if self.threshold_ma is None else f"{self.threshold_ma:.2f} mA"
        table.add_row("localization threshold", Text(threshold))
        table.add_row("alarms", Text("; ".join(self.alarms) or "none"))
        speed = virtual_s / wall_s if wall_s > 0 else float("inf")
        table.add_row(
            "time", Text(f"{virtual_s:.1f} s of device time in {wall_s:.1f} s ({speed:.0f}x)")
        )
        return table


class _Console(Console):
    """A closed stdout (`simulate | head`) must not end a procedure: stop printing instead."""

    def on_broken_pipe(self) -> None:
        self.quiet = True
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())  # the interpreter's last flush goes nowhere
        except (OSError, ValueError):
            pass


class ProgressView:
    """Live panel on a terminal, plain lines elsewhere, nothing but errors with `quiet`."""

    def __init__(self, out: TextIO, *, quiet: bool, terminal: bool | None = None) -> None:
        self.console = _Console(file=out, highlight=False, markup=False, emoji=False)
        self.quiet = quiet
        self.terminal = self.console.is_terminal if terminal is None else terminal
        self.live: Live | None = None
        self._next_refresh = 0.0

    def start(self) -> None:
        if self.terminal and not self.quiet:
            self.live = Live(console=self.console, refresh_per_second=4, transient=True)
            self.live.start()

    def event(self, e: Event) -> None:
        if self.quiet or e["event"] not in _LINE_EVENTS:
            return
        line = event_line(e)
        if line is None:
            return
        if self.live is not None:
            self.live.console.print(Text(line))
        else:
            self.console.print(Text(line), soft_wrap=True)

    def refresh(self, ctl: Controller, now: float) -> None:
        if self.live is None:
            return
        wall = time.monotonic()
        if wall < self._next_refresh:
            return
        self._next_refresh = wall + 0.25
        self.live.update(status_table(ctl, now))

    def stop(self) -> None:
        if self.live is not None:
            self.live.stop()
            self.live = None

    def summary(self, table: Table) -> None:
        if not self.quiet:
            self.console.print(table)


def status_table(ctl: Controller, now: float) -> Table:
    proc = ctl.procedure
    last = ctl.connection.last
    table = Table(show_header=False, box=None)
    table.add_column(style="bold")
    table.add_column()
    table.add_row("time", Text(f"{now:.1f} s"))
    table.add_row("state", Text(f"{proc.state}  (cycle {proc.cycle}/{proc.cycles})"))
    countdown = _countdown(ctl, now)
    if countdown is not None:
        table.add_row("countdown", Text(f"{countdown:.0f} s"))
    if last is not None:
        tip = "rail" if last.tip_c != last.tip_c else f"{last.tip_c:.1f} C"
        table.add_row("tip", Text(tip))
        table.add_row(
            "supply / exhaust", Text(f"{last.supply_psi:.0f} / {last.exhaust_psi:.1f} psig")
        )
    est = ctl.estimates
    now_est = {
        "gas_used_g_est": est.gas_used_g_est,
        "gas_left_g_est": est.gas_left_g_est,
        "ice_radius_mm_est": est.ice_radius_mm_est,
    }
    table.add_row("estimates", Text(estimates_text(now_est)))
    alarms = ", ".join(a.alarm for a in ctl.alarms.active()) or "none"
    table.add_row("alarms", Text(alarms))
    table.add_row(
        "withdraw", Text("SAFE" if proc.withdraw_safe else "LOCKED: do not move the probe")
    )
    return table


def _countdown(ctl: Controller, now: float) -> float | None:
    proc = ctl.procedure
    if proc.state.startswith("freeze_") and proc.freeze_open_t is not None:
        return max(0.0, proc.params.freeze_s - (now - proc.freeze_open_t))
    if proc.state.startswith("thaw_") and proc.thaw_start_t is not None:
        return max(0.0, proc.params.thaw_s - (now - proc.thaw_start_t))
    return None

"""What a report shows, read from the session store: series, states, markers, limits, cycles.

Everything comes from the store's record of the session (`console.records`):
the `telemetry` index (the 10 Hz telemetry events, typed), the `alarms` index,
and the chained records for the state changes, the injected faults and the
console's own estimates. Only the limits come from outside the record: the
store keeps the configuration's hash, not the configuration, so the caller
gives the `ConsoleConfig` (a QA scenario's own; for `report`, the defaults or
`--config`) and the page says which.
"""

from __future__ import annotations

import json
import math
import sqlite3
from bisect import bisect_left, bisect_right
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

from console.config import ConsoleConfig
from console.records import SessionRow
from console.sessions_cmd import Summary, summarise

#: Records read besides the telemetry: the bands, the fault markers and the estimates.
_MARKED_EVENTS = ("state_changed", "fault_injected", "estimates")


@dataclass(frozen=True)
class Series:
    """The telemetry of a session, one list per column of the store's `telemetry` index.

    A missing tip reading (a thermistor at a rail is recorded as null) is NaN here,
    so that the plotted line has a gap there rather than a made-up value.
    """

    t_s: list[float]
    tip_c: list[float]
    supply_psi: list[float]
    exhaust_psi: list[float]
    supply_open: list[bool]
    inlet_open: list[bool]
    vent_open: list[bool]
    stim_on: list[bool]


#: Telemetry events come at 10 Hz; a longer silence than this is a gap (a lost link, a
#: device reset) and the plot shows it as one rather than draw a line across it.
GAP_S = 1.0


def gaps(t_s: list[float], min_s: float = GAP_S) -> list[tuple[float, float]]:
    """The (from, to) times between consecutive samples more than `min_s` apart."""
    return [(a, b) for a, b in pairwise(t_s) if b - a > min_s]


@dataclass(frozen=True)
class Band:
    """The console was in `state` from `start_s` to `end_s` (session time)."""

    state: str
    start_s: float
    end_s: float


@dataclass(frozen=True)
class Marker:
    """An alarm raised or a fault injected at `t_s`."""

    kind: str  # "alarm" or "fault"
    name: str  # the alarm id or the fault name
    t_s: float
    detail: str


@dataclass(frozen=True)
class Limits:
    """The limits drawn on the plots (the gas profile's, `console.config.GasProfile`)."""

    gas: str
    freeze_target_c: float
    supply_min_psi: float
    supply_max_psi: float
    supply_over_psi: float
    supply_low_psi: float
    exhaust_high_psi: float
    exhaust_over_psi: float
    #: Where the numbers come from, as the page says it.
    source: str

    @classmethod
    def of(cls, config: ConsoleConfig, gas: str | None, source: str) -> Limits:
        """The limits of `gas` (the session's) in `config`; `config.gas` when not known."""
        name = gas if gas in ("N2O", "CO2") else config.gas
        p = config.gases.N2O if name == "N2O" else config.gases.CO2
        return cls(
            name,
            p.freeze_target_c,
            p.supply_min_psi,
            p.supply_max_psi,
            p.supply_over_psi,
            p.supply_low_psi,
            p.exhaust_high_psi,
            p.exhaust_over_psi,
            source,
        )


@dataclass(frozen=True)
class Cycle:
    """One freeze: its coldest tip reading, its time below target and the console's estimates."""

    number: int  # 1, 2, ... over the whole session
    procedure: int  # 1, 2, ... (`serve` may hold several)
    state: str  # freeze_1, freeze_2, ...
    start_s: float
    end_s: float
    min_tip_c: float | None
    below_target_s: float
    ice_radius_mm_est: float | None
    gas_used_g_est: float | None


@dataclass
class SessionReport:
    """Everything the plot and the page of one session need."""

    session: SessionRow
    summary: Summary
    series: Series
    bands: list[Band]
    markers: list[Marker]
    cycles: list[Cycle]
    limits: Limits
    end_s: float
    gas_used_g_est: float | None = None
    gas_left_g_est: float | None = None

    @property
    def gas(self) -> str | None:
        started = self.summary.session_started or {}
        gas = started.get("gas")
        return gas if isinstance(gas, str) else None


def read_series(db: sqlite3.Connection, session_id: str) -> Series:
    rows = db.execute(
        "SELECT t_s, tip_c, supply_psi, exhaust_psi, supply_open, inlet_open, vent_open, stim_on "
        "FROM telemetry WHERE session_id = ? ORDER BY seq",
        (session_id,),
    ).fetchall()
    return Series(
        [float(r[0]) for r in rows],
        [math.nan if r[1] is None else float(r[1]) for r in rows],
        [float(r[2]) for r in rows],
        [float(r[3]) for r in rows],
        [bool(r[4]) for r in rows],
        [bool(r[5]) for r in rows],
        [bool(r[6]) for r in rows],
        [bool(r[7]) for r in rows],
    )


def _marked(db: sqlite3.Connection, session_id: str) -> list[dict[str, Any]]:
    marks = ",".join("?" for _ in _MARKED_EVENTS)
    rows = db.execute(
        f"SELECT body FROM records WHERE session_id = ? AND event IN ({marks}) ORDER BY seq",
        (session_id, *_MARKED_EVENTS),
    ).fetchall()
    out: list[dict[str, Any]] = []
    for (body,) in rows:
        try:
            e = json.loads(body)
        except ValueError:
            continue  # a damaged record: the chain's verdict on the page says so
        if isinstance(e, dict):
            out.append(e)
    return out


def bands(changes: list[dict[str, Any]], end_s: float) -> list[Band]:
    """The states from the `state_changed` records; the first state is `connecting` at 0."""
    out: list[Band] = []
    state, start = "connecting", 0.0
    for e in changes:
        t = float(e["t_s"])
        out.append(Band(state, start, t))
        state, start = str(e.get("to")), t
    out.append(Band(state, start, max(end_s, start)))
    return [b for b in out if b.end_s > b.start_s or b is out[-1]]


def _fault_detail(e: dict[str, Any]) -> str:
    params = e.get("params") or {}
    shown = ", ".join(f"{k}={v}" for k, v in params.items() if v is not None)
    return f"{e.get('spec') or e.get('fault')}" + (f" ({shown})" if shown else "")


def markers(summary: Summary, faults: list[dict[str, Any]]) -> list[Marker]:
    out = [
        Marker(
            "alarm",
            str(a["alarm"]),
            float(a["raised_t_s"]),
            f"{a['priority']}, {','.join(a.get('sr') or [])}: value {a['value']}, "
            f"limit {a['limit']}",
        )
        for a in summary.alarms
        if a.get("raised_t_s") is not None
    ]
    out += [Marker("fault", str(e.get("fault")), float(e["t_s"]), _fault_detail(e)) for e in faults]
    return sorted(out, key=lambda m: m.t_s)


def cycles(
    series: Series,
    state_bands: list[Band],
    estimates: list[dict[str, Any]],
    target_c: float,
    procedure_starts: list[float],
) -> list[Cycle]:
    """One `Cycle` per freeze band, in order, with the estimates event that ended it.

    The time below target adds up the sample intervals (to the next sample, cut at the
    band's end) whose reading is colder than `target_c`.
    """
    out: list[Cycle] = []
    unused = list(estimates)
    t, tip = series.t_s, series.tip_c
    for b in state_bands:
        if not b.state.startswith("freeze_"):
            continue
        coldest: float | None = None
        below = 0.0
        for i in range(bisect_left(t, b.start_s), bisect_right(t, b.end_s)):
            value = tip[i]
            if value != value:  # NaN: no reading
                continue
            if coldest is None or value < coldest:
                coldest = value
            if value < target_c and i + 1 < len(t):
                below += max(0.0, min(t[i + 1], b.end_s) - t[i])
        estimate: dict[str, Any] | None = None
        for e in unused:
            if float(e["t_s"]) >= b.start_s - 1e-9:
                estimate = e
                unused.remove(e)
                break
        out.append(
            Cycle(
                len(out) + 1,
                max(1, bisect_right(procedure_starts, b.start_s)),
                b.state,
                b.start_s,
                b.end_s,
                coldest,
                round(below, 2),
                _float(estimate, "ice_radius_mm_est"),
                _float(estimate, "cycle_gas_used_g_est"),
            )
        )
    return out


def _float(e: dict[str, Any] | None, key: str) -> float | None:
    value = None if e is None else e.get(key)
    return float(value) if isinstance(value, int | float) else None


def load(
    db: sqlite3.Connection, session: SessionRow, config: ConsoleConfig, limits_source: str
) -> SessionReport:
    """The report of `session`, with the limits of its gas in `config` (`limits_source`)."""
    summary = summarise(db, session)
    series = read_series(db, session.session_id)
    marked = _marked(db, session.session_id)
    end_candidates = [0.0, *series.t_s[-1:]]
    if summary.session_finished and isinstance(summary.session_finished.get("t_s"), int | float):
        end_candidates.append(float(summary.session_finished["t_s"]))
    last = db.execute(
        "SELECT MAX(t_s) FROM records WHERE session_id = ?", (session.session_id,)
    ).fetchone()
    if last is not None and last[0] is not None:
        end_candidates.append(float(last[0]))
    end_s = max(end_candidates)
    started = summary.session_started or {}
    gas = started.get("gas") if isinstance(started.get("gas"), str) else None
    limits = Limits.of(config, gas, limits_source)
    state_bands = bands([e for e in marked if e["event"] == "state_changed"], end_s)
    estimates = [e for e in marked if e["event"] == "estimates"]
    report = SessionReport(
        session,
        summary,
        series,
        state_bands,
        markers(summary, [e for e in marked if e["event"] == "fault_injected"]),
        cycles(
            series,
            state_bands,
            estimates,
            limits.freeze_target_c,
            [float(p["started_t_s"]) for p in summary.procedures],
        ),
        limits,
        end_s,
    )
    if estimates:
        report.gas_used_g_est = _float(estimates[-1], "gas_used_g_est")
        report.gas_left_g_est = _float(estimates[-1], "gas_left_g_est")
    return report

"""The figure of one session: states, tip temperature, supply and exhaust, valves and stimulation.

matplotlib is imported here only, and only when `require_matplotlib` or
`figure` is called, with the headless Agg backend; the figure is a plain
`matplotlib.figure.Figure` (no pyplot, so no global figure list and no GUI).
Every plotted series, limit and marker carries a `gid` naming what it is
(`tip_c`, `limit:freeze_target_c`, `alarm:ALM_...`, `fault:exhaust_blocked`),
so that a test can read the data behind the picture. A series is broken (a
NaN point, x and y) where the telemetry has a gap longer than `GAP_S`, and the
gap is hatched grey: no line is drawn across a time nothing was recorded.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

from console.report.data import GAP_S, Band, Limits, SessionReport, gaps

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

INSTALL_HINT = (
    "pip install 'probe-console[report]' (in a source checkout: pip install -e '.[report]')"
)

#: The valve and stimulation lanes of the bottom panel, top to bottom: (gid, label, lane).
LANES = (
    ("supply_open", "supply", 3),
    ("inlet_open", "inlet", 2),
    ("vent_open", "vent", 1),
    ("stim_on", "stim", 0),
)
LANE_HEIGHT = 0.8  # a lane is at `lane` when closed/off and `lane + LANE_HEIGHT` when open/on

_STATE_COLOURS = {
    "connecting": "#d9d9d9",
    "self_test": "#d9d9d9",
    "ready": "#eeeeee",
    "leak_test": "#fff2a8",
    "armed": "#cfe8ff",
    "localize": "#b3d9ff",
    "pressurize": "#ffd59e",
    "withdraw_locked": "#d8b4a0",
    "complete": "#b8e6b8",
    "aborted": "#ff9e9e",
    "fault": "#ff9e9e",
    "estop": "#ff6e6e",
}


class ReportUnavailable(Exception):
    """matplotlib is not installed: the message says how to install it."""


def require_matplotlib() -> None:
    """Import matplotlib with the Agg backend, or raise `ReportUnavailable` with the hint."""
    try:
        import matplotlib
    except ImportError:
        raise ReportUnavailable(
            f"plots need matplotlib, which is not installed; install it with: {INSTALL_HINT}"
        ) from None
    matplotlib.use("Agg")


def state_colour(state: str) -> str:
    if state.startswith("freeze_"):
        return "#7fb2ff"
    if state.startswith("thaw_"):
        return "#ffc2d6"
    return _STATE_COLOURS.get(state, "#e0e0e0")


def figure(report: SessionReport, title: str) -> Figure:
    """The figure of `report`, five panels over session time (see the module docstring)."""
    require_matplotlib()
    from matplotlib.figure import Figure

    fig = Figure(figsize=(12.0, 10.5), dpi=100, layout="constrained")
    axes: list[Axes] = list(
        fig.subplots(5, 1, sharex=True, height_ratios=(0.55, 2.2, 1.6, 1.4, 1.2))
    )
    states, tip, supply, exhaust, lanes = axes
    fig.suptitle(title, fontsize=11)
    s, lim = report.series, report.limits
    end = max(report.end_s, s.t_s[-1] if s.t_s else 0.0, 1.0)

    _states(states, report.bands, end)
    for ax in (tip, supply, exhaust, lanes):
        _freeze_shading(ax, report.bands)

    holes = gaps(s.t_s)
    for ax in (tip, supply, exhaust, lanes):
        _gap_shading(ax, holes)
    t = _broken(s.t_s, s.t_s)

    def series(ax: Axes, gid: str, colour: str, label: str) -> None:
        values = _broken(s.t_s, getattr(s, gid))
        ax.plot(t, values, color=colour, linewidth=1.2, label=label, gid=gid)

    series(tip, "tip_c", "#1f4e9e", "tip")
    _limit(tip, "freeze_target_c", lim.freeze_target_c, "#1f77b4", "--", "freeze target {:g} C")
    tip.set_ylabel("tip (C)")
    if not s.t_s:
        tip.text(0.5, 0.5, "no telemetry recorded", transform=tip.transAxes, ha="center")

    series(supply, "supply_psi", "#2c7a2c", "supply")
    supply.axhspan(
        lim.supply_min_psi,
        lim.supply_max_psi,
        color="#2ca02c",
        alpha=0.12,
        label=f"supply window {lim.supply_min_psi:g}-{lim.supply_max_psi:g} psig",
        gid="limit:supply_window",
    )
    _limit(supply, "supply_over_psi", lim.supply_over_psi, HARD, "--", "over-pressure {:g} psig")
    _limit(supply, "supply_low_psi", lim.supply_low_psi, SOFT, ":", "supply low {:g} psig")
    supply.set_ylabel("supply (psig)")

    series(exhaust, "exhaust_psi", "#8c564b", "exhaust")
    _limit(
        exhaust, "exhaust_over_psi", lim.exhaust_over_psi, HARD, "--", "exhaust blocked {:g} psig"
    )
    _limit(exhaust, "exhaust_high_psi", lim.exhaust_high_psi, SOFT, ":", "exhaust high {:g} psig")
    exhaust.set_ylabel("exhaust (psig)")

    for gid, _, lane in LANES:
        values = getattr(s, gid)
        lanes.plot(
            t,
            _broken(s.t_s, [lane + LANE_HEIGHT * v for v in values]),
            drawstyle="steps-post",
            linewidth=1.4,
            gid=gid,
        )
    lanes.set_yticks([lane + LANE_HEIGHT / 2 for _, _, lane in LANES])
    lanes.set_yticklabels([label for _, label, _ in LANES])
    lanes.set_ylim(-0.3, len(LANES) + 0.1)
    lanes.set_ylabel("open / on")
    lanes.set_xlabel("session time t_s (s)")

    _markers(report, axes)
    for ax in (tip, supply, exhaust):
        ax.grid(True, alpha=0.3)
        ax.legend(loc="upper right", fontsize=7, framealpha=0.8)
    lanes.grid(True, axis="x", alpha=0.3)
    lanes.set_xlim(0.0, end)
    return fig


def _states(ax: Axes, bands: list[Band], end: float) -> None:
    for b in bands:
        width = max(b.end_s - b.start_s, end / 2000.0)
        ax.broken_barh(
            [(b.start_s, width)],
            (0.0, 1.0),
            facecolors=state_colour(b.state),
            gid=f"state:{b.state}",
        )
        if width > end / 25.0:
            ax.text(
                b.start_s + width / 2,
                0.5,
                b.state,
                ha="center",
                va="center",
                fontsize=7,
                clip_on=True,
            )
    ax.set_ylim(0.0, 1.0)
    ax.set_yticks([])
    ax.set_ylabel("state", rotation=0, ha="right", va="center")


HARD, SOFT = "#d62728", "#ff7f0e"  # a limit that stops the procedure; one that warns


def _limit(ax: Axes, name: str, value: float, colour: str, style: str, label: str) -> None:
    """A limit line, its `gid` `limit:<name>` (the tests read it back)."""
    ax.axhline(
        value,
        color=colour,
        linestyle=style,
        linewidth=1,
        label=label.format(value),
        gid=f"limit:{name}",
    )


def _broken(t_s: list[float], values: list[float] | list[bool]) -> list[float]:
    """`values` with a NaN inserted after each sample that is followed by a gap."""
    out: list[float] = []
    for i, v in enumerate(values):
        out.append(float(v))
        if i + 1 < len(t_s) and t_s[i + 1] - t_s[i] > GAP_S:
            out.append(math.nan)
    return out


def _gap_shading(ax: Axes, holes: list[tuple[float, float]]) -> None:
    for n, (a, b) in enumerate(holes):
        ax.axvspan(
            a,
            b,
            facecolor="none",
            edgecolor="#999999",
            hatch="//",
            linewidth=0,
            label="no telemetry" if n == 0 else None,
            gid="gap",
        )


def _freeze_shading(ax: Axes, bands: list[Band]) -> None:
    for b in bands:
        if b.state.startswith("freeze_"):
            ax.axvspan(b.start_s, b.end_s, color="#7fb2ff", alpha=0.12, linewidth=0)


def _markers(report: SessionReport, panels: list[Axes]) -> None:
    """A vertical line per alarm (red) and fault (purple, dashed) on every panel, named on top."""
    top = panels[0]
    for n, m in enumerate(report.markers):
        colour, style = ("#d62728", "-") if m.kind == "alarm" else ("#7b2cbf", "--")
        for ax in panels:
            ax.axvline(
                m.t_s, color=colour, linestyle=style, linewidth=1.1, gid=f"{m.kind}:{m.name}"
            )
        top.annotate(
            m.name,
            xy=(m.t_s, 1.0),
            xycoords=("data", "axes fraction"),
            xytext=(2, 2 + 9 * (n % 3)),
            textcoords="offset points",
            fontsize=7,
            color=colour,
            rotation=0,
            annotation_clip=False,
        )


def write_png(fig: Figure, path: Path) -> None:
    fig.savefig(path, format="png")


def limits_text(limits: Limits) -> str:
    return (
        f"{limits.gas}: freeze target {limits.freeze_target_c:g} C, supply window "
        f"{limits.supply_min_psi:g}-{limits.supply_max_psi:g} psig (low {limits.supply_low_psi:g},"
        f" over {limits.supply_over_psi:g}), exhaust high {limits.exhaust_high_psi:g}, blocked "
        f"{limits.exhaust_over_psi:g} psig"
    )

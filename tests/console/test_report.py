"""`probe-console report ID` and `qa run --report DIR`: the plots hold what the store holds.

One short simulated session is recorded once for the module (2 cycles of 120 s,
the exhaust blocked 30 s into the second freeze: a complete cycle with its
estimates, a cut one, a fault and alarms). The figures are checked by the data
behind them (each artist's `gid` names what it shows), the pages by parsing them.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from contextlib import closing
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from matplotlib.collections import PolyCollection
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Rectangle

from console import cli
from console.config import load_config
from console.report.data import Series, SessionReport, load
from console.report.plot import LANE_HEIGHT, LANES, figure
from console.sessions_cmd import open_store

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = ROOT / "tests" / "scenarios"
FAULT = "exhaust_blocked@freeze2+30"
HINT = "pip install 'probe-console[report]'"


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """(db, session id) of a simulated session with two freezes, a fault and alarms."""
    db = tmp_path_factory.mktemp("report") / "sessions.sqlite3"
    code = cli.main(
        [
            *("simulate", "--cycles", "2", "--freeze-s", "120", "--fault", FAULT),
            *("--db", str(db), "--quiet"),
        ]
    )
    assert code == 1  # ended safely early: the exhaust blocked
    with closing(sqlite3.connect(db)) as conn:
        (sid,) = conn.execute("SELECT session_id FROM sessions").fetchone()
    return db, str(sid)


@pytest.fixture(scope="module")
def report(recorded: tuple[Path, str]) -> SessionReport:
    db, sid = recorded
    with open_store(db) as store:
        return load(store.db, store.find(sid), load_config(), "defaults")


@pytest.fixture(scope="module")
def fig(report: SessionReport) -> Figure:
    return figure(report, "test")


def _rows(db: Path, sql: str, *params: object) -> list[tuple[Any, ...]]:
    with closing(sqlite3.connect(db)) as conn:
        return conn.execute(sql, params).fetchall()


def _lines(fig: Figure, gid: str) -> list[Line2D]:
    return [a for ax in fig.axes for a in ax.get_lines() if a.get_gid() == gid]


def _points(line: Line2D) -> list[tuple[float, float]]:
    """The line's points, without the breaks drawn at telemetry gaps (x is NaN there)."""
    xs = line.get_xdata()
    ys = line.get_ydata()
    return [(float(x), float(y)) for x, y in zip(xs, ys, strict=True) if x == x]  # type: ignore[arg-type]


def _xs(line: Line2D) -> list[float]:
    return [x for x, _ in _points(line)]


def _ys(line: Line2D) -> list[float]:
    return [y for _, y in _points(line)]


# --- the data behind the figure -------------------------------------------------------------


def test_every_series_is_the_stored_telemetry(recorded: tuple[Path, str], fig: Figure) -> None:
    db, sid = recorded
    rows = _rows(
        db,
        "SELECT t_s, tip_c, supply_psi, exhaust_psi, supply_open, inlet_open, vent_open, "
        "stim_on FROM telemetry WHERE session_id = ? ORDER BY seq",
        sid,
    )
    assert len(rows) > 1000
    times = [r[0] for r in rows]
    for column, gid in enumerate(("tip_c", "supply_psi", "exhaust_psi"), start=1):
        (line,) = _lines(fig, gid)
        assert _xs(line) == times
        assert _ys(line) == [r[column] for r in rows]
    for column, (gid, _, lane) in enumerate(LANES, start=4):
        (line,) = _lines(fig, gid)
        assert _xs(line) == times
        assert [round((y - lane) / LANE_HEIGHT, 9) for y in _ys(line)] == [r[column] for r in rows]
    assert any(r[4] for r in rows) and any(r[7] for r in rows)  # the supply and stim both on


def test_a_telemetry_gap_breaks_the_lines_and_is_shaded(report: SessionReport) -> None:
    s = report.series
    keep = [i for i, t in enumerate(s.t_s) if not 100.0 <= t < 110.0]  # 10 s without telemetry
    holed = dataclasses.replace(
        report,
        series=Series(*([getattr(s, f.name)[i] for i in keep] for f in dataclasses.fields(s))),
    )
    fig = figure(holed, "gap")
    (tip,) = _lines(fig, "tip_c")
    xs = [float(x) for x in tip.get_xdata()]  # type: ignore[union-attr]
    breaks = [i for i, x in enumerate(xs) if x != x]
    assert len(breaks) == 1
    before, after = xs[breaks[0] - 1], xs[breaks[0] + 1]
    assert before < 100.0 and after >= 110.0
    assert _xs(tip) == holed.series.t_s
    shaded = [p for p in fig.axes[1].patches if p.get_gid() == "gap"]
    assert len(shaded) == 1
    assert shaded[0].get_x() == before and shaded[0].get_width() == pytest.approx(after - before)  # type: ignore[attr-defined]


def test_the_limits_are_drawn(fig: Figure) -> None:
    n2o = load_config().gases.N2O
    (target,) = _lines(fig, "limit:freeze_target_c")
    assert set(_ys(target)) == {n2o.freeze_target_c}
    (over,) = _lines(fig, "limit:exhaust_over_psi")
    assert set(_ys(over)) == {n2o.exhaust_over_psi}
    (supply_over,) = _lines(fig, "limit:supply_over_psi")
    assert set(_ys(supply_over)) == {n2o.supply_over_psi}
    window = [p for ax in fig.axes for p in ax.patches if p.get_gid() == "limit:supply_window"]
    assert len(window) == 1
    (band,) = window
    assert isinstance(band, Rectangle)
    assert (band.get_y(), band.get_y() + band.get_height()) == (
        n2o.supply_min_psi,
        n2o.supply_max_psi,
    )


def test_the_state_bands_follow_the_state_changes(recorded: tuple[Path, str], fig: Figure) -> None:
    db, sid = recorded
    changes = [
        json.loads(body)
        for (body,) in _rows(
            db,
            "SELECT body FROM records WHERE session_id = ? AND event = 'state_changed' "
            "ORDER BY seq",
            sid,
        )
    ]
    bars = [c for c in fig.axes[0].collections if isinstance(c, PolyCollection) and c.get_gid()]
    drawn = [
        (str(c.get_gid()).removeprefix("state:"), c.get_paths()[0].vertices[0][0]) for c in bars
    ]
    expected = [("connecting", 0.0)] + [(c["to"], c["t_s"]) for c in changes]
    # zero-length states (entered and left at the same t_s) have no band
    kept = [
        (state, t)
        for i, (state, t) in enumerate(expected)
        if i + 1 == len(expected) or expected[i + 1][1] > t
    ]
    assert [(s, round(float(t), 6)) for s, t in drawn] == kept
    names = [s for s, _ in drawn]
    assert "freeze_1" in names and "thaw_1" in names and "freeze_2" in names and "fault" in names


def test_fault_and_alarm_markers_are_at_the_recorded_times(
    recorded: tuple[Path, str], fig: Figure
) -> None:
    db, sid = recorded
    faults = [
        json.loads(body)
        for (body,) in _rows(
            db,
            "SELECT body FROM records WHERE session_id = ? AND event = 'fault_injected'",
            sid,
        )
    ]
    assert [f["fault"] for f in faults] == ["exhaust_blocked"]
    alarms = _rows(db, "SELECT alarm, raised_t_s FROM alarms WHERE session_id = ?", sid)
    assert "ALM_EXHAUST_OVERPRESSURE" in {a for a, _ in alarms}
    for ax in fig.axes:  # on every panel
        markers = [
            (str(line.get_gid()), _xs(line)[0])
            for line in ax.get_lines()
            if str(line.get_gid()).startswith(("alarm:", "fault:"))
        ]
        expected = [(f"fault:{f['fault']}", f["t_s"]) for f in faults]
        expected += [(f"alarm:{name}", t) for name, t in alarms]
        assert sorted(markers) == sorted(expected)
    # the fault is injected 30 s after the second supply open, the trip follows it
    (fault_t,) = [f["t_s"] for f in faults]
    trip = min(t for name, t in alarms if name == "ALM_EXHAUST_OVERPRESSURE")
    assert 0 <= trip - fault_t < 0.5


def test_cycles_are_the_telemetry_and_the_estimates(
    recorded: tuple[Path, str], report: SessionReport
) -> None:
    db, sid = recorded
    assert [c.state for c in report.cycles] == ["freeze_1", "freeze_2"]
    estimates = [
        json.loads(body)
        for (body,) in _rows(
            db, "SELECT body FROM records WHERE session_id = ? AND event = 'estimates'", sid
        )
    ]
    for cycle, estimate in zip(report.cycles, estimates, strict=True):
        tips = [
            tip
            for (tip,) in _rows(
                db,
                "SELECT tip_c FROM telemetry WHERE session_id = ? AND t_s >= ? AND t_s <= ?",
                sid,
                cycle.start_s,
                cycle.end_s,
            )
        ]
        assert cycle.min_tip_c == min(tips)
        assert cycle.ice_radius_mm_est == estimate["ice_radius_mm_est"]
        assert cycle.gas_used_g_est == estimate["cycle_gas_used_g_est"]
        assert 0 < cycle.below_target_s < cycle.end_s - cycle.start_s
    full, cut = report.cycles
    assert full.end_s - full.start_s == pytest.approx(120.0, abs=0.5)
    assert cut.end_s - cut.start_s == pytest.approx(30.0, abs=0.5)
    assert report.gas_used_g_est == estimates[-1]["gas_used_g_est"]


# --- the pages ---------------------------------------------------------------------------------


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.images: list[str] = []
        self.text: list[str] = []
        self.anchors: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "img" and a.get("src"):
            self.images.append(str(a["src"]))
        if tag == "a" and a.get("href"):
            self.anchors.append(str(a["href"]))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def _parse(path: Path) -> _Page:
    page = _Page()
    page.feed(path.read_text(encoding="utf-8"))
    return page


def _self_contained(folder: Path, page: _Page, tmp_path: Path) -> None:
    """Every image is a relative file in the folder, and still is once the folder is copied."""
    copy = tmp_path / "copied"
    shutil.copytree(folder, copy)
    for src in page.images:
        assert "/" not in src and ":" not in src, src
        assert (copy / src).is_file()
        assert (copy / src).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_report_writes_a_page_with_its_plot_and_summary(
    recorded: tuple[Path, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db, sid = recorded
    out = tmp_path / "out"
    assert cli.main(["report", sid[:6], "--db", str(db), "--out", str(out)]) == 0
    assert capsys.readouterr().out.strip() == str(out / "index.html")
    page = _parse(out / "index.html")
    assert page.images == [f"session-{sid}.png"]
    _self_contained(out, page, tmp_path)
    text = " ".join(page.text)
    for expected in (
        sid,
        "faulted (exhaust_overpressure)",
        "verified (",
        "freeze_1",
        "freeze_2",
        "ALM_EXHAUST_OVERPRESSURE",
        FAULT,
        "PRB-SIM-0001",  # the identity
        "profile clinical",
    ):
        assert expected in text, expected


def test_report_of_a_tampered_session_says_so_and_exits_1(
    recorded: tuple[Path, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db, sid = recorded
    copy = tmp_path / "copy.sqlite3"
    with closing(sqlite3.connect(db)) as src, closing(sqlite3.connect(copy)) as dst:
        src.backup(dst)
        dst.execute(
            'UPDATE records SET body = CAST(REPLACE(CAST(body AS TEXT), \'"outcome":"faulted"\', '
            '\'"outcome":"completed"\') AS BLOB) WHERE session_id = ? AND event = '
            "'procedure_finished'",
            (sid,),
        )
        dst.commit()
    out = tmp_path / "out"
    assert cli.main(["report", sid, "--db", str(copy), "--out", str(out)]) == 1
    assert "NOT verified" in capsys.readouterr().err
    assert "NOT verified" in " ".join(_parse(out / "index.html").text)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["ffffffff"], "no session 'ffffffff'"),
        (["ab"], "at least 4 hex digits"),
    ],
)
def test_report_user_errors_exit_2(
    recorded: tuple[Path, str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    message: str,
) -> None:
    db, _ = recorded
    assert cli.main(["report", *args, "--db", str(db), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "o").exists()


def test_report_without_a_database_or_into_a_file_exits_2(
    recorded: tuple[Path, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["report", "abcd", "--db", str(tmp_path / "none.sqlite3")]) == 2
    assert "no database at" in capsys.readouterr().err
    db, sid = recorded
    afile = tmp_path / "afile"
    afile.write_text("x")
    assert cli.main(["report", sid, "--db", str(db), "--out", str(afile)]) == 2
    assert "is a file" in capsys.readouterr().err


def test_qa_report_lists_every_scenario_and_embeds_every_plot(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    scenarios = ["sr07_exhaust_blocked_n2o", "sr18_identity_wrong_gas"]
    out = tmp_path / "qa"
    db = tmp_path / "qa.sqlite3"
    paths = [str(SCENARIOS / f"{name}.toml") for name in scenarios]
    assert cli.main(["qa", "run", *paths, "--report", str(out), "--db", str(db), "--quiet"]) == 0
    assert f"report: {out / 'index.html'}" in capsys.readouterr().out
    page = _parse(out / "index.html")
    text = " ".join(page.text)
    for name in scenarios:
        assert name in text
    for name in scenarios:  # each scenario's SRs, as its file lists them
        srs = tomllib.loads((SCENARIOS / f"{name}.toml").read_text(encoding="utf-8"))["sr"]
        assert ", ".join(srs) in text
    assert "ALM_EXHAUST_OVERPRESSURE raised" in text and "PASS" in text
    assert len(page.images) == len(scenarios) == len(set(page.images))
    assert sorted(p.name for p in out.glob("*.png")) == sorted(page.images)
    _self_contained(out, page, tmp_path)
    # every summary row links to its scenario's section
    assert page.anchors == ["#s1", "#s2"]
    # the plot is drawn from the scenario's record: its fault and trip where the store has them
    with open_store(db) as store:
        sessions = store.db.execute("SELECT session_id FROM sessions ORDER BY rowid").fetchall()
        sr07 = store.find(sessions[0][0])
        rep = load(store.db, sr07, load_config(), "defaults")
    (fault,) = [m for m in rep.markers if m.kind == "fault"]
    alarm_t = _rows(
        db,
        "SELECT raised_t_s FROM alarms WHERE session_id = ? AND alarm = ?",
        sr07.session_id,
        "ALM_EXHAUST_OVERPRESSURE",
    )
    fig = figure(rep, "sr07")
    (line,) = [
        ln for ln in fig.axes[1].get_lines() if ln.get_gid() == "alarm:ALM_EXHAUST_OVERPRESSURE"
    ]
    assert _xs(line)[0] == alarm_t[0][0]
    assert fault.t_s <= alarm_t[0][0]


def test_qa_report_without_db_records_into_a_temporary_store(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "qa"
    path = str(SCENARIOS / "sr18_identity_wrong_gas.toml")
    assert cli.main(["qa", "run", path, "--report", str(out), "--quiet"]) == 0
    page = _parse(out / "index.html")
    assert len(page.images) == 1 and (out / page.images[0]).is_file()
    assert not Path(os.environ["PROBE_CONSOLE_DB"]).exists()  # the user's store is untouched


# --- without matplotlib --------------------------------------------------------------------------


def _without_matplotlib(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    code = (
        "import sys; sys.modules['matplotlib'] = None; "
        "from console.cli import main; sys.exit(main(sys.argv[1:]))"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=60,
        check=False,
    )


@pytest.fixture
def no_matplotlib_runs(recorded: tuple[Path, str], tmp_path: Path) -> Iterator[list[str]]:
    db, sid = recorded
    yield [
        f"report {sid} --db {db} --out {tmp_path / 'r'}",
        f"qa run {SCENARIOS / 'sr18_identity_wrong_gas.toml'} --report {tmp_path / 'q'}",
    ]


def test_without_matplotlib_the_commands_say_how_to_install_it(
    no_matplotlib_runs: list[str], tmp_path: Path
) -> None:
    for command in no_matplotlib_runs:
        done = _without_matplotlib(command.split(), tmp_path)
        assert done.returncode == 2, (command, done.stderr)
        assert HINT in done.stderr
        assert "Traceback" not in done.stderr
        assert done.stdout == ""  # nothing ran
    assert not (tmp_path / "r").exists() and not (tmp_path / "q").exists()


def test_nothing_else_imports_matplotlib(tmp_path: Path) -> None:
    done = _without_matplotlib(["sessions", "list", "--db", str(tmp_path / "x.sqlite3")], tmp_path)
    assert "Traceback" not in done.stderr
    done = _without_matplotlib(["--help"], tmp_path)
    assert done.returncode == 0 and "report" in done.stdout


def test_a_plot_that_cannot_be_drawn_does_not_stop_the_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(report: SessionReport, title: str) -> Figure:
        raise ValueError("no luck")

    monkeypatch.setattr("console.report.scenarios.figure", broken)
    out = tmp_path / "qa"
    path = str(SCENARIOS / "sr18_identity_wrong_gas.toml")
    assert cli.main(["qa", "run", path, "--report", str(out), "--quiet"]) == 0
    assert "cannot draw it: ValueError: no luck" in capsys.readouterr().err
    page = _parse(out / "index.html")
    assert page.images == []
    assert "No plot: cannot draw it: ValueError: no luck" in " ".join(page.text)


def test_a_skipped_scenario_is_listed_with_its_reason_and_no_plot(tmp_path: Path) -> None:
    from console.qa import skipped
    from console.report.scenarios import QaReport
    from console.scenario import load_scenarios

    (sf,) = load_scenarios([SCENARIOS / "sr18_identity_wrong_gas.toml"])
    report = QaReport(tmp_path, tmp_path / "none.sqlite3", "qa run on a device")
    entry = report.add(skipped(sf, 'requires = "simulator"', "port"))
    assert entry.png is None and entry.no_plot == "the scenario did not run"
    page = _parse(report.write("1 scenario(s): 1 skipped", "2026-11-28T10:00:00"))
    text = " ".join(page.text)
    assert page.images == []
    assert "sr18_identity_wrong_gas" in text and "SKIP" in text and 'requires = "simulator"' in text

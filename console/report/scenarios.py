"""The report of a QA run (`qa run --report DIR`): a summary table and one plot per scenario.

Each scenario that ran is recorded as a session (in `--db`, or else in a
temporary store the command throws away); its plot and summary are drawn from
that record right after it ran, so a whole library never sits in memory, and a
QA plot is the same picture `report ID` draws of the same session. The limits
are the scenario's own configuration's.
"""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

from console.qa import ScenarioResult
from console.report.data import load
from console.report.page import QaEntry, qa_page, session_summary
from console.report.plot import figure, write_png
from console.sessions_cmd import SessionsError, open_store

PAGE = "index.html"


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("._")[:80] or "scenario"


class QaReport:
    """Collects the scenarios of one run and writes `folder/index.html` at the end."""

    def __init__(self, folder: Path, db: Path, heading: str) -> None:
        self.folder = folder
        self.db = db
        self.heading = heading
        self.entries: list[QaEntry] = []

    def add(self, result: ScenarioResult) -> QaEntry:
        """The scenario's entry; its plot is written now (a failure is said on the page)."""
        sf = result.file
        entry = QaEntry(
            name=result.name,
            path=str(sf.path),
            sr=list(sf.scenario.sr),
            status=result.status,
            reason=result.reason,
            outcome=result.outcome,
            outcome_reason=result.outcome_reason,
            exit_code=result.exit_code,
            device_s=result.device_s,
            checks=list(result.checks),
            session_id=result.session_id,
        )
        self.entries.append(entry)
        if result.session_id is None:
            entry.no_plot = (
                "the scenario did not run"
                if result.status in ("skip", "error")
                else ("the run was not recorded")
            )
            return entry
        png = f"{len(self.entries):02d}-{_slug(result.name)}.png"
        try:
            with open_store(self.db) as store:
                session = store.find(result.session_id)
                report = load(
                    store.db, session, sf.config, f"the scenario's configuration ({sf.path})"
                )
            write_png(figure(report, f"{result.name}: {result.status.upper()}"), self.folder / png)
        except (OSError, SessionsError, sqlite3.Error) as exc:
            entry.no_plot = f"cannot draw it: {exc}"
            return entry
        except Exception as exc:  # a bug in drawing: the run and the other scenarios go on
            entry.no_plot = f"cannot draw it: {type(exc).__name__}: {exc}"
            return entry
        entry.png = png
        entry.summary = session_summary(report, show=False)
        return entry

    def write(self, totals: str, generated: str) -> Path:
        """`generated`: the wall-clock time the page names (the command's clock)."""
        page = self.folder / PAGE
        text = qa_page(self.entries, heading=self.heading, totals=totals, generated=generated)
        page.write_text(text, encoding="utf-8")
        return page

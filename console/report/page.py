"""The HTML pages: one recorded session (`report ID`) and one QA run (`qa run --report DIR`).

One file each, `index.html`, with inline CSS and no script; the plots are PNG
files beside it, linked by bare relative names, so the folder reads offline and
can be copied or archived anywhere. Every value from a record is escaped.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from html import escape
from typing import Any

from console.qa import Check, Status
from console.report.data import Cycle, SessionReport
from console.report.plot import limits_text
from console.sessions_cmd import show_lines

_CSS = """
body { font-family: sans-serif; margin: 1.5em; color: #222; }
h1 { font-size: 1.4em; } h2 { font-size: 1.15em; margin-top: 2em; }
table { border-collapse: collapse; margin: 0.5em 0 1em; font-size: 0.9em; }
th, td { border: 1px solid #bbb; padding: 0.2em 0.5em; text-align: left; vertical-align: top; }
th { background: #eee; }
.pass { color: #176317; font-weight: bold; } .fail, .error { color: #b00; font-weight: bold; }
.skip { color: #777; font-weight: bold; }
.bad { color: #b00; font-weight: bold; }
img { max-width: 100%; border: 1px solid #ccc; }
pre { background: #f6f6f6; padding: 0.5em; font-size: 0.85em; overflow-x: auto; }
"""


def _doc(title: str, body: Iterable[str]) -> str:
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{escape(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
        + "\n".join(body)
        + "\n</body>\n</html>\n"
    )


def _num(value: float | None, digits: int = 2, unit: str = "") -> str:
    if value is None or value != value:
        return "-"
    return f"{value:.{digits}f}{unit}"


def _table(head: Sequence[str], rows: Iterable[Sequence[str]], cls: str = "") -> str:
    """A table whose cells are already HTML (escape values before); no header row if empty."""
    attr = f' class="{cls}"' if cls else ""
    out = [f"<table{attr}>"]
    if head:
        out.append("<tr>" + "".join(f"<th>{h}</th>" for h in head) + "</tr>")
    out += ["<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows]
    out.append("</table>")
    return "\n".join(out)


def cycles_table(cycles: Sequence[Cycle]) -> str:
    if not cycles:
        return "<p>No freeze in this session.</p>"
    rows = [
        [
            str(c.number),
            str(c.procedure),
            escape(c.state),
            f"{c.start_s:.2f}-{c.end_s:.2f}",
            _num(c.end_s - c.start_s, 1),
            _num(c.min_tip_c, 1),
            _num(c.below_target_s, 1),
            _num(c.ice_radius_mm_est, 2),
            _num(c.gas_used_g_est, 2),
        ]
        for c in cycles
    ]
    head = [
        "cycle",
        "procedure",
        "state",
        "t_s (s)",
        "freeze (s)",
        "min tip (C)",
        "below target (s)",
        "ice ball radius est. (mm)",
        "gas used est. (g)",
    ]
    return _table(head, rows)


def alarms_table(alarms: Sequence[dict[str, Any]]) -> str:
    if not alarms:
        return "<p>No alarm.</p>"
    rows = [
        [
            escape(str(a.get("alarm"))),
            escape(str(a.get("priority"))),
            escape(", ".join(a.get("sr") or [])),
            _t(a.get("raised_t_s")),
            escape(str(a.get("value"))),
            escape(str(a.get("limit"))),
            _t(a.get("acknowledged_t_s")),
            _t(a.get("cleared_t_s")),
        ]
        for a in alarms
    ]
    head = ["alarm", "priority", "SR", "raised t_s", "value", "limit", "acknowledged", "cleared"]
    return _table(head, rows)


def _t(value: object) -> str:
    return f"{value}" if isinstance(value, int | float) else "-"


def session_summary(report: SessionReport, *, show: bool = True) -> list[str]:
    """The summary of one session: the outcome, the chain, the estimates, `sessions show`'s
    lines (with `show`), the cycles, the alarms and the faults."""
    s = report.summary
    chain = (
        f"verified ({s.chain.checked} records)"
        if s.chain.ok
        else f'<span class="bad">NOT verified: {escape(s.chain.problem)}</span>'
    )
    outcome = s.session.outcome or "not finished"
    facts = [
        ("outcome", escape(f"{outcome} ({s.session.reason or '-'})")),
        ("hash chain", chain),
        ("gas used (estimate)", _num(report.gas_used_g_est, 2, " g")),
        ("gas left (estimate)", _num(report.gas_left_g_est, 1, " g")),
        ("limits drawn", escape(f"{limits_text(report.limits)}; from {report.limits.source}")),
    ]
    shown = ["<pre>" + escape("\n".join(show_lines(s))) + "</pre>"] if show else []
    return [
        _table([], ([f"<b>{k}</b>", v] for k, v in facts)),
        *shown,
        "<h3>Cycles</h3>",
        cycles_table(report.cycles),
        "<h3>Alarms</h3>",
        alarms_table(s.alarms),
        "<h3>Faults injected</h3>",
        _faults(report),
    ]


def _faults(report: SessionReport) -> str:
    faults = [m for m in report.markers if m.kind == "fault"]
    if not faults:
        return "<p>None.</p>"
    return _table(
        ["fault", "t_s", "spec"], ([escape(m.name), _t(m.t_s), escape(m.detail)] for m in faults)
    )


def session_page(report: SessionReport, png: str | None, generated: str) -> str:
    sid = report.session.session_id
    body = [
        f"<h1>Session {escape(sid)}</h1>",
        f"<p>probe-console report, generated {escape(generated)} (UTC)</p>",
    ]
    if png is not None:
        body.append(f'<p><img src="{escape(png)}" alt="plots of session {escape(sid)}"></p>')
    body += session_summary(report)
    return _doc(f"probe-console session {sid}", body)


# --- QA -----------------------------------------------------------------------------------------


@dataclass
class QaEntry:
    """One scenario of a QA run as the page shows it."""

    name: str
    path: str
    sr: list[str]
    status: Status
    reason: str
    outcome: str
    outcome_reason: str
    exit_code: int | None
    device_s: float
    checks: list[Check]
    session_id: str | None = None
    png: str | None = None
    #: Why there is no plot ("" when there is one).
    no_plot: str = ""
    summary: list[str] = field(default_factory=list)  # HTML fragments of the session summary


def _status(status: str) -> str:
    return f'<span class="{escape(status)}">{escape(status.upper())}</span>'


def _anchor(n: int) -> str:
    return f"s{n}"


def qa_page(entries: Sequence[QaEntry], *, heading: str, totals: str, generated: str) -> str:
    rows: list[str] = []
    for n, e in enumerate(entries, 1):
        checks = e.checks or [Check("(not run)", e.status, e.reason or "-", "")]
        span = len(checks)
        for i, c in enumerate(checks):
            cells = []
            if i == 0:
                cells += [
                    f'<td rowspan="{span}"><a href="#{_anchor(n)}">{escape(e.name)}</a></td>',
                    f'<td rowspan="{span}">{escape(", ".join(e.sr))}</td>',
                    f'<td rowspan="{span}">{_status(e.status)}</td>',
                ]
            cells += [
                f"<td>{escape(c.name)}</td>",
                f"<td>{escape(c.expected)}</td>",
                f"<td>{escape(c.measured)}</td>",
                f"<td>{_status(c.status) if e.checks else ''}</td>",
            ]
            rows.append("<tr>" + "".join(cells) + "</tr>")
    head = ["scenario", "SR", "result", "expectation", "expected", "measured", "verdict"]
    table = (
        '<table class="summary">\n<tr>'
        + "".join(f"<th>{h}</th>" for h in head)
        + "</tr>\n"
        + "\n".join(rows)
        + "\n</table>"
    )
    body = [
        f"<h1>{escape(heading)}</h1>",
        f"<p>Generated {escape(generated)} (UTC). {escape(totals)}</p>",
        table,
    ]
    for n, e in enumerate(entries, 1):
        body.append(f'<h2 id="{_anchor(n)}">{_status(e.status)} {escape(e.name)}</h2>')
        facts = [f"file {e.path}", f"SR {', '.join(e.sr) or '-'}"]
        if e.status in ("skip", "error"):
            facts.append(e.reason)
        else:
            facts.append(
                f"outcome {e.outcome} ({e.outcome_reason}), exit {e.exit_code}, "
                f"{e.device_s:.1f} s device time"
            )
        if e.session_id:
            facts.append(f"session {e.session_id}")
        body.append("<p>" + "<br>".join(escape(f) for f in facts) + "</p>")
        if e.png is not None:
            body.append(f'<p><img src="{escape(e.png)}" alt="plots of {escape(e.name)}"></p>')
        elif e.no_plot:
            body.append(f"<p>No plot: {escape(e.no_plot)}</p>")
        body += e.summary
    return _doc(heading, body)

"""docs/procedure-diagram.md is generated from the procedure machine and kept current."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from console import diagram
from console.diagram import (
    DIAGRAM_PATH,
    REGENERATE,
    diagram_document,
    diagram_procedure,
    machine_edges,
    procedure_mermaid,
)
from console.procedure import STATES
from tests.console.rig import Rig

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / DIAGRAM_PATH
EDGE = re.compile(r"^    (\w+) --> (\w+): (\w+)(?: \[(.+)\])?$")


def edge_lines(text: str) -> list[tuple[str, str, str, str]]:
    return [
        (m[1], m[2], m[3], m[4] or "")
        for m in (EDGE.match(line) for line in text.splitlines())
        if m
    ]


def test_committed_diagram_is_current() -> None:
    committed = PAGE.read_text(encoding="utf-8") if PAGE.is_file() else ""
    assert committed == diagram_document(), (
        f"{DIAGRAM_PATH} differs from the machine in console/procedure.py; regenerate it "
        f"from the project root with:\n    {REGENERATE}"
    )


def test_the_page_holds_exactly_the_generated_mermaid() -> None:
    text = PAGE.read_text(encoding="utf-8")
    fenced = re.findall(r"^```mermaid\n(.*?)^```$", text, flags=re.M | re.S)
    assert fenced == [procedure_mermaid()], f"regenerate with: {REGENERATE}"


def test_every_state_appears() -> None:
    mermaid = procedure_mermaid()
    named = {s for source, dest, *_ in edge_lines(mermaid) for s in (source, dest)}
    assert set(STATES) <= named, sorted(set(STATES) - named)
    assert "    [*] --> connecting\n" in mermaid


def test_every_transition_of_the_machine_appears_once() -> None:
    """Read from the console's own procedure (the controller's, not the diagram's stand-in)."""
    machine = Rig().proc.machine
    shown = edge_lines(procedure_mermaid())
    expected = [
        (source, t.dest or source, trigger)
        for trigger, event in machine.events.items()
        for source, transitions in event.transitions.items()
        for t in transitions
    ]
    assert sorted((s, d, tr) for s, d, tr, _ in shown) == sorted(expected)
    assert len(shown) == len(set(shown))


def test_conditions_are_shown_readably() -> None:
    shown = {(s, d, tr): cond for s, d, tr, cond in edge_lines(procedure_mermaid())}
    assert shown["ready", "leak_test", "arm"] == "_leak_due"
    assert shown["ready", "armed", "arm"] == "!_leak_due"
    for k in (1, 2, 3):
        assert shown["pressurize", f"freeze_{k}", "supply_ready"] == f"cycle == {k}"
        assert shown[f"thaw_{k}", "pressurize", "thaw_done"] == f"{k} < cycles"
        assert shown[f"thaw_{k}", "complete", "thaw_done"] == "_final_k & _released"
        assert shown[f"thaw_{k}", "withdraw_locked", "thaw_done"] == "_final_k & !_released"
    assert "<lambda>" not in procedure_mermaid()


def test_output_is_deterministic_and_sorted_by_the_machines_state_order() -> None:
    assert procedure_mermaid() == procedure_mermaid()
    order = {s: i for i, s in enumerate(STATES)}
    keys = [(order[s], order[d], tr, c) for s, d, tr, c in edge_lines(procedure_mermaid())]
    assert keys == sorted(keys)
    assert len(machine_edges(diagram_procedure().machine)) == len(keys)


def test_main_prints_the_page(capsys: pytest.CaptureFixture[str]) -> None:
    assert diagram.main() == 0
    assert capsys.readouterr().out == diagram_document()


def test_python_dash_m_regenerates_the_page() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "console.diagram"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout == diagram_document()

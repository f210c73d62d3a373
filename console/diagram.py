"""The procedure's state diagram, read from the `transitions` machine itself (DESIGN.md).

`procedure_mermaid()` builds a `Procedure` with inert stand-ins for its
collaborators (nothing is commanded, nothing is recorded) and walks
`machine.events[...].transitions`: one mermaid `stateDiagram-v2` line per
transition, `source --> dest: trigger [conditions]`, with `!` before an
`unless` condition and `&` between conditions, the notation of transitions'
own GraphMachine. The walk is ours rather than GraphMachine's because the
machine guards the cycle transitions with lambdas, which GraphMachine labels
`<lambda>`; here a lambda is shown as its expression with its default
arguments filled in (`cycle == 2`), read from the source with `ast`.

The output is deterministic: states in the machine's order, transitions
sorted by source, destination, trigger and conditions, no timestamps.
`docs/procedure-diagram.md` is this module's output (`diagram_document()`);
regenerate it with ``python -m console.diagram > docs/procedure-diagram.md``
(a test fails when the page and the machine differ).
"""

from __future__ import annotations

import ast
import inspect
import sys
from collections.abc import Callable
from typing import Any, Final, NamedTuple

from transitions import Machine

from console.alarms import AlarmManager
from console.config import ConsoleConfig, InterlockLimits, ProcedureParams
from console.procedure import Procedure
from drivers.stimulator import StimSettings, Stimulator

DIAGRAM_PATH: Final = "docs/procedure-diagram.md"
REGENERATE: Final = f"python -m console.diagram > {DIAGRAM_PATH}"
TITLE: Final = "# Procedure state diagram"


class _NoActuators:
    """The machine's `Actuators`, doing nothing: building the diagram commands no device."""

    def safe_state(self, reason: str, alarm: str | None) -> None:
        return None

    def valves(self, *, supply: bool, inlet: bool, vent: bool, max_open_ms: int = 0) -> None:
        return None

    def stim_configure(self, settings: StimSettings) -> None:
        return None

    def stim_start(self) -> None:
        return None

    def stim_stop(self) -> None:
        return None


def _no_event(*args: object, **fields: object) -> None:
    return None


def diagram_procedure() -> Procedure:
    """A `Procedure` with default parameters and inert collaborators, only to be read."""
    return Procedure(
        ProcedureParams(),
        InterlockLimits(),
        ConsoleConfig().gas_profile,
        Stimulator(),
        AlarmManager(lambda name, fields: None),
        _NoActuators(),
        _no_event,
    )


class Edge(NamedTuple):
    """One transition of the machine as the diagram shows it."""

    source: str
    dest: str
    trigger: str
    conditions: str  # "" when unguarded; else "a & !b"

    def line(self) -> str:
        label = f"{self.trigger} [{self.conditions}]" if self.conditions else self.trigger
        return f"{self.source} --> {self.dest}: {label}"


def machine_edges(machine: Machine) -> list[Edge]:
    """Every transition of `machine`, in a stable order (the states' order, then by name)."""
    order = {name: i for i, name in enumerate(machine.states)}
    edges: set[Edge] = set()
    for trigger, event in machine.events.items():
        for source, transitions in event.transitions.items():
            for t in transitions:
                dest = t.dest if t.dest is not None else source  # an internal transition
                guards = " & ".join(
                    ("" if c.target else "!") + condition_text(c.func) for c in t.conditions
                )
                edges.add(Edge(source, dest, trigger, guards))
    return sorted(edges, key=lambda e: (order[e.source], order[e.dest], e.trigger, e.conditions))


def condition_text(func: str | Callable[..., Any]) -> str:
    """A condition as the diagram names it: a method name, or a lambda's expression."""
    if isinstance(func, str):
        return func
    name: str = getattr(func, "__name__", type(func).__name__)
    if name != "<lambda>":
        return name
    return _lambda_expression(func) or name


def _lambda_expression(func: Callable[..., Any]) -> str | None:
    """The body of a lambda with its defaults filled in and `self.` dropped; None if unreadable."""
    code = getattr(func, "__code__", None)
    if code is None:
        return None
    try:
        tree = ast.parse(inspect.getsource(inspect.getmodule(func) or func))
    except (OSError, TypeError, SyntaxError):
        return None
    found = [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.Lambda) and node.lineno == code.co_firstlineno
    ]
    if len(found) != 1:
        return None
    node = found[0]
    positional = [*node.args.posonlyargs, *node.args.args]
    defaults: dict[str, object] = dict(
        zip(
            (a.arg for a in positional[len(positional) - len(func.__defaults__ or ()) :]),
            func.__defaults__ or (),
            strict=True,
        )
    )
    defaults.update(getattr(func, "__kwdefaults__", None) or {})
    return ast.unparse(_Fill(defaults).visit(node.body))


class _Fill(ast.NodeTransformer):
    """Replace default-bound names by their values and `self.x` by `x`."""

    def __init__(self, values: dict[str, object]) -> None:
        self.values = values

    def visit_Name(self, node: ast.Name) -> ast.expr:
        if node.id in self.values:
            value = self.values[node.id]
            if value is None or isinstance(value, int | float | str):
                return ast.Constant(value)
        return node

    def visit_Attribute(self, node: ast.Attribute) -> ast.expr:
        if isinstance(node.value, ast.Name) and node.value.id == "self":
            return ast.Name(node.attr, ast.Load())
        self.generic_visit(node)
        return node


def procedure_mermaid() -> str:
    """The mermaid `stateDiagram-v2` text of the procedure machine, ending with a newline."""
    machine = diagram_procedure().machine
    edges = machine_edges(machine)
    lines = ["stateDiagram-v2"]
    if machine.initial is not None:
        lines.append(f"    [*] --> {machine.initial}")
    linked = {e.source for e in edges} | {e.dest for e in edges}
    lines += [f"    {state}" for state in machine.states if state not in linked]
    lines += [f"    {e.line()}" for e in edges]
    return "\n".join(lines) + "\n"


def diagram_document() -> str:
    """The page `docs/procedure-diagram.md`: a title, how it is made, the diagram."""
    return (
        f"{TITLE}\n\n"
        "Generated from the `transitions` machine in `console/procedure.py` by "
        f"`console/diagram.py`; do not edit by hand, regenerate with `{REGENERATE}`.\n\n"
        f"```mermaid\n{procedure_mermaid()}```\n"
    )


def main() -> int:
    sys.stdout.write(diagram_document())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The traceability matrix hazard -> SR -> code -> tests, generated from the tree.

    python -m tests.safety.matrix            # print the matrix
    python -m tests.safety.matrix --write    # write docs/safety/traceability.md
    python -m tests.safety.matrix --check    # exit 1 when the committed file is stale

Where the matrix comes from:
- the SRs and their titles: ``docs/safety/requirements.md``;
- pending SRs: ``docs/safety/pending.toml``;
- code: every ``SR-nn`` mention in a ``.py`` file under ``console/``, ``drivers/``,
  ``protocols/`` and ``simulator/``, attributed to the innermost function or class
  around it (``path::Class.method``), or to the module;
- tests: every mention in a ``.py`` or ``.toml`` file under ``tests/`` (the gate's own
  files excepted), attributed the same way for Python (``path::test_name``) and to
  the scenario for TOML (its top-level ``name`` when it has one);
- hazards: the ``### HAZ-nn Title`` sections of ``docs/safety/hazards.md`` and the
  SRs each names in its ``**SRs:**`` item.

Everything is sorted, and no line numbers are kept, so the output changes only
when an attribution changes. The functions are small and pure enough to be tested
on made-up inputs (``tests/safety/test_matrix.py``): a gate must not pass by
failing to look. Like the other gate modules this one writes requirement ids only
through ``sr_id``, and the scan skips it all the same.
"""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import NamedTuple

from tests.safety.test_traceability import (
    GATE_FILES,
    PENDING,
    REQUIREMENTS,
    ROOT,
    pending_entries,
    requirement_entries,
)

HAZARDS = ROOT / "docs" / "safety" / "hazards.md"
MATRIX = ROOT / "docs" / "safety" / "traceability.md"
CODE_DIRS = ("console", "drivers", "protocols", "simulator")
TEST_DIRS = ("tests",)
CODE_SUFFIXES = frozenset({".py"})
TEST_SUFFIXES = frozenset({".py", ".toml"})
REGENERATE = "python -m tests.safety.matrix --write"

_MENTION = re.compile(r"\bSR-\d{2}\b")
_HAZ_HEADING = re.compile(r"^### (HAZ-\d{2}) (.+?)\s*$")
_ITEM = re.compile(r"^- \*\*([^*]+?):\*\*\s*(.*)$")
_BACKTICKED = re.compile(r"`([^`]+)`")
_REF = re.compile(r"^[\w./-]+\.(?:py|toml)(?:::[\w.:]+)?$")
_SUMMARY_ROW = re.compile(r"^\|\s*(HAZ-\d{2})\s*\|(.*)\|\s*$")
_LEVELS = re.compile(r"\b[SP][1-5]\b")
_SKIPPED_PARTS = frozenset({"__pycache__", ".git", ".mypy_cache", ".ruff_cache", ".venv"})


class Ref(NamedTuple):
    """A place that names an SR: a file and, in it, a symbol ("" for the module)."""

    path: str  # relative to the repository root, with "/"
    symbol: str

    def __str__(self) -> str:
        return f"{self.path}::{self.symbol}" if self.symbol else self.path


class Hazard(NamedTuple):
    hazard_id: str
    title: str
    srs: tuple[str, ...]
    code: tuple[str, ...]  # references as written: path or path::Qual.name
    tests: tuple[str, ...]
    items: tuple[tuple[str, str], ...]  # (label, text) of its items, in order

    @property
    def fields(self) -> tuple[str, ...]:
        return tuple(label for label, _ in self.items)

    def item(self, label: str) -> str:
        return dict(self.items).get(label, "")


# --- scanning ---------------------------------------------------------------------------


def scopes(tree: ast.Module) -> list[tuple[int, int, str]]:
    """``(first line, last line, qualified name)`` of every function and class.

    A definition's first line is its first decorator's, so that an id named in a
    ``@pytest.mark.parametrize`` belongs to the test it decorates.
    """
    found: list[tuple[int, int, str]] = []

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                name = f"{prefix}{child.name}"
                first = min([child.lineno, *(d.lineno for d in child.decorator_list)])
                found.append((first, child.end_lineno or child.lineno, name))
                visit(child, name + ".")
            else:
                visit(child, prefix)

    visit(tree, "")
    return found


def python_mentions(text: str) -> dict[str, set[str]]:
    """SR id -> the symbols of a Python source that name it ("" for module level).

    Comments count as much as docstrings and strings (the project's convention is
    to name an SR in a comment). A file that does not parse (being edited) still
    counts, with every mention at module level.
    """
    try:
        spans = scopes(ast.parse(text))
    except SyntaxError:
        spans = []
    found: dict[str, set[str]] = {}
    for lineno, line in enumerate(text.splitlines(), start=1):
        ids = set(_MENTION.findall(line))
        if not ids:
            continue
        inside = [(last - first, name) for first, last, name in spans if first <= lineno <= last]
        symbol = min(inside)[1] if inside else ""
        for sr in ids:
            found.setdefault(sr, set()).add(symbol)
    return found


def toml_mentions(text: str) -> dict[str, set[str]]:
    """SR id -> the scenario that names it: its top-level ``name``, else "" (the file).

    The whole text counts, comments included; a file that does not parse still counts.
    """
    try:
        name = tomllib.loads(text).get("name")
    except tomllib.TOMLDecodeError:
        name = None
    label = name.strip() if isinstance(name, str) and name.strip() else ""
    return {sr: {label} for sr in set(_MENTION.findall(text))}


def source_files(
    root: Path, dirs: Iterable[str], suffixes: frozenset[str], exclude: frozenset[Path]
) -> list[Path]:
    """The files to scan, sorted; caches and the excluded files left out."""
    files: list[Path] = []
    for top in dirs:
        base = root / top
        if not base.is_dir():
            continue
        for path in base.rglob("*"):
            if path.suffix not in suffixes or not path.is_file():
                continue
            if _SKIPPED_PARTS & set(path.relative_to(root).parts):
                continue
            if path.resolve() in exclude:
                continue
            files.append(path)
    return sorted(files)


def scan(
    root: Path,
    dirs: Iterable[str],
    suffixes: frozenset[str],
    exclude: frozenset[Path] = frozenset(),
) -> dict[str, list[Ref]]:
    """SR id -> every place under ``root/dirs`` that names it, sorted."""
    found: dict[str, set[Ref]] = {}
    for path in source_files(root, dirs, suffixes, exclude):
        text = path.read_text(encoding="utf-8", errors="replace")
        named = toml_mentions(text) if path.suffix == ".toml" else python_mentions(text)
        rel = path.relative_to(root).as_posix()
        for sr, symbols in named.items():
            found.setdefault(sr, set()).update(Ref(rel, s) for s in symbols)
    return {sr: sorted(refs) for sr, refs in sorted(found.items())}


# --- the hazard analysis ------------------------------------------------------------------


def _items(lines: Sequence[str]) -> list[tuple[str, str]]:
    """The ``- **Label:** text`` items of a section, continuation lines joined."""
    items: list[tuple[str, str]] = []
    for line in lines:
        match = _ITEM.match(line)
        if match:
            items.append((match.group(1).strip(), match.group(2).strip()))
        elif items and line.startswith("  ") and line.strip():
            label, text = items[-1]
            items[-1] = (label, f"{text} {line.strip()}")
    return items


def references(text: str) -> list[str]:
    """The backticked file references of an item: ``path`` or ``path::Name.name``."""
    return [ref for ref in _BACKTICKED.findall(text) if _REF.match(ref)]


def parse_hazards(text: str) -> list[Hazard]:
    """Every ``### HAZ-nn Title`` section, in order, with its SRs and references."""
    hazards: list[Hazard] = []
    current: tuple[str, str] | None = None
    body: list[str] = []

    def close() -> None:
        if current is None:
            return
        items = _items(body)
        values = dict(items)
        hazards.append(
            Hazard(
                hazard_id=current[0],
                title=current[1],
                srs=tuple(_MENTION.findall(values.get("SRs", ""))),
                code=tuple(references(values.get("Code", ""))),
                tests=tuple(references(values.get("Tests", ""))),
                items=tuple(items),
            )
        )

    for line in text.splitlines():
        heading = _HAZ_HEADING.match(line)
        if heading or line.startswith(("## ", "# ")):
            close()
            current, body = None, []
            if heading:
                current = (heading.group(1), heading.group(2))
        elif current is not None:
            body.append(line)
    close()
    return hazards


class SummaryRow(NamedTuple):
    severity: str  # "S4"
    before: str  # "P3"
    after: str  # "P2"
    srs: tuple[str, ...]


def summary_rows(text: str) -> dict[str, SummaryRow]:
    """HAZ id -> its row of the summary table: the first S level, the first two P levels
    (before and after control) and the SRs of its last cell."""
    rows: dict[str, SummaryRow] = {}
    for line in text.splitlines():
        match = _SUMMARY_ROW.match(line.strip())
        if match:
            cells = match.group(2).split("|")
            levels = _LEVELS.findall(" ".join(cells[:-1]))
            sev = [x for x in levels if x.startswith("S")]
            prob = [x for x in levels if x.startswith("P")]
            rows[match.group(1)] = SummaryRow(
                sev[0] if sev else "",
                prob[0] if prob else "",
                prob[1] if len(prob) > 1 else "",
                tuple(_MENTION.findall(cells[-1])),
            )
    return rows


def hazards_by_sr(hazards: Iterable[Hazard]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for hazard in hazards:
        for sr in hazard.srs:
            if hazard.hazard_id not in found.setdefault(sr, []):
                found[sr].append(hazard.hazard_id)
    return found


def defined_names(tree: ast.Module) -> set[str]:
    """Qualified names a reference may use: functions, classes, and names assigned
    at module or class level (``TestMachine = Machine.TestCase``, a constant)."""
    names: set[str] = set()

    def targets(node: ast.stmt) -> list[str]:
        if isinstance(node, ast.Assign):
            return [t.id for t in node.targets if isinstance(t, ast.Name)]
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            return [node.target.id]
        return []

    def visit(body: Iterable[ast.stmt], prefix: str) -> None:
        for node in body:
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                names.add(prefix + node.name)
                if isinstance(node, ast.ClassDef):
                    visit(node.body, f"{prefix}{node.name}.")
            names.update(prefix + name for name in targets(node))

    visit(tree.body, "")
    return names


def resolve(root: Path, ref: str, under: Sequence[str]) -> str | None:
    """Why ``ref`` names nothing in the tree, or None when it names something.

    ``path::A.b`` and pytest's ``path::A::b`` are the same reference.
    """
    path, _, symbol = ref.partition("::")
    if not any(path == top or path.startswith(top.rstrip("/") + "/") for top in under):
        return f"{ref}: not under {', '.join(under)}"
    file = root / path
    if not file.is_file():
        return f"{ref}: no file {path}"
    if not symbol:
        return None
    if file.suffix != ".py":
        return f"{ref}: only Python files have symbols"
    try:
        tree = ast.parse(file.read_text(encoding="utf-8"))
    except SyntaxError as exc:
        return f"{ref}: {path} does not parse ({exc.msg}, line {exc.lineno})"
    dotted = symbol.replace("::", ".")
    if dotted not in defined_names(tree):
        return f"{ref}: {path} defines no {dotted}"
    return None


REQUIRED_ITEMS = (
    "Hazard",
    "Sequence of events",
    "Hazardous situation",
    "Harm",
    "Severity",
    "Probability",
    "Software risk control",
    "SRs",
    "Code",
    "Tests",
    "Residual risk",
)


def hazard_problems(
    hazards: Sequence[Hazard],
    summary: Mapping[str, SummaryRow],
    known: Sequence[str],
    pending: Iterable[str],
    root: Path,
    tested: Mapping[str, Sequence[Ref]],
) -> list[str]:
    """Everything wrong with the hazard analysis, given the SRs and the test scan."""
    problems: list[str] = []
    known_ids, pending_ids = set(known), set(pending)
    ids = [h.hazard_id for h in hazards]
    if not hazards:
        problems.append("no ### HAZ-nn sections found")
    for hazard_id in sorted({i for i in ids if ids.count(i) > 1}):
        problems.append(f"{hazard_id} is defined more than once")
    for hazard in hazards:
        where = hazard.hazard_id
        missing = [label for label in REQUIRED_ITEMS if label not in hazard.fields]
        if missing:
            problems.append(f"{where} lacks the items {missing}")
        if not hazard.srs:
            problems.append(f"{where} names no SR")
        for sr in hazard.srs:
            if sr not in known_ids:
                problems.append(f"{where} names {sr}, which is not a requirement")
        all_pending = bool(hazard.srs) and set(hazard.srs) <= pending_ids
        if not hazard.code and not all_pending:
            problems.append(f"{where} names no code (allowed only when all its SRs are pending)")
        if not hazard.tests and not all_pending:
            problems.append(f"{where} names no test (allowed only when all its SRs are pending)")
        for ref in hazard.code:
            why = resolve(root, ref, CODE_DIRS)
            if why:
                problems.append(f"{where} Code {why}")
        for ref in hazard.tests:
            why = resolve(root, ref, TEST_DIRS)
            if why:
                problems.append(f"{where} Tests {why}")
            elif not _names_one_of(ref, hazard.srs, tested):
                problems.append(
                    f"{where} Tests {ref}: names none of the hazard's SRs {list(hazard.srs)}"
                )
        row = summary.get(where)
        if row is None:
            problems.append(f"{where} has no row in the summary table")
            continue
        if sorted(row.srs) != sorted(hazard.srs):
            problems.append(
                f"{where}: the summary table says {list(row.srs)}, "
                f"the section says {list(hazard.srs)}"
            )
        severity = _LEVELS.findall(hazard.item("Severity"))[:1]
        if severity != [row.severity]:
            problems.append(
                f"{where}: the summary table says severity {row.severity or 'none'}, "
                f"the section says {severity[0] if severity else 'none'}"
            )
        probability = hazard.item("Probability")
        for when, level in (("before", row.before), ("after", row.after)):
            said = re.search(rf"\b{when} (P[1-5])\b", probability)
            if said is None or said.group(1) != level:
                problems.append(
                    f"{where}: the summary table says {when} {level or 'none'}, the section "
                    f"says {said.group(1) if said else 'nothing'} ('{when} Pn' expected)"
                )
    for hazard_id in sorted(set(summary) - set(ids)):
        problems.append(f"{hazard_id} is in the summary table but has no section")
    return problems


def _names_one_of(ref: str, srs: Iterable[str], tested: Mapping[str, Sequence[Ref]]) -> bool:
    """Whether the test ``ref`` (a file, or a symbol and what it contains) names one of ``srs``."""
    path, _, symbol = ref.partition("::")
    dotted = symbol.replace("::", ".")
    for sr in srs:
        for place in tested.get(sr, ()):
            if place.path != path:
                continue
            if not dotted or place.symbol == dotted or place.symbol.startswith(dotted + "."):
                return True
    return False


# --- the matrix ----------------------------------------------------------------------------


def _grouped(refs: Iterable[Ref]) -> list[str]:
    """One line per file: ``- `path`: `a`, `b` ``; "(module)" for module-level mentions."""
    by_file: dict[str, list[str]] = {}
    for ref in refs:
        by_file.setdefault(ref.path, []).append(ref.symbol)
    lines = []
    for path, symbols in sorted(by_file.items()):
        names = sorted(set(symbols))
        shown = ", ".join("(module)" if not s else f"`{s}`" for s in names)
        lines.append(f"- `{path}`: {shown}")
    return lines


def _scenario_lines(refs: Iterable[Ref]) -> list[str]:
    lines = []
    for ref in sorted(refs):
        lines.append(f"- `{ref.path}`" + (f" ({ref.symbol})" if ref.symbol else ""))
    return lines


def status_of(
    sr: str, code: Mapping[str, object], tests: Mapping[str, object], pending: Mapping[str, str]
) -> str:
    if sr in pending:
        return "pending"
    if sr not in tests:
        return "UNTESTED"
    if sr not in code:
        return "NO CODE"
    return "traced"


def render(
    titles: Mapping[str, str],
    pending: Mapping[str, str],
    hazards: Sequence[Hazard],
    code: Mapping[str, Sequence[Ref]],
    tests: Mapping[str, Sequence[Ref]],
) -> str:
    """The whole matrix as Markdown; a pure function of its inputs."""
    by_sr = hazards_by_sr(hazards)
    out = [
        "# Traceability matrix: hazard -> SR -> code -> tests",
        "",
        "<!-- generated by tests/safety/matrix.py: do not edit by hand -->",
        "",
        f"Generated from the tree by `{REGENERATE}`; "
        "`tests/safety/test_matrix.py` fails when this file is not what the generator "
        "produces now. Sources: the SRs of [requirements.md](requirements.md), the "
        "hazards of [hazards.md](hazards.md), [pending.toml](pending.toml), every "
        "`SR-nn` mention in the code (`console/`, `drivers/`, `protocols/`, "
        "`simulator/`, `.py`) and in the tests (`tests/`, `.py` and `.toml`). A "
        "mention is listed under the innermost function or class around it "
        "(`Class.method`; run a test method with pytest as `file::Class::method`), "
        "`(module)` when it is outside any; a TOML file under the `name` it declares.",
        "",
        "Status: `traced` (code and tests name it), `pending` (listed in pending.toml "
        "with what is still to be built), `UNTESTED` or `NO CODE` (the gate fails).",
        "",
        "## Summary",
        "",
        "| SR | title | hazards | code symbols | test symbols | TOML files | status |",
        "|---|---|---|---|---|---|---|",
    ]
    for sr, title in titles.items():
        sr_tests = tests.get(sr, [])
        toml = [r for r in sr_tests if r.path.endswith(".toml")]
        haz = ", ".join(by_sr.get(sr, [])) or "-"
        out.append(
            f"| {sr} | {title} | {haz} | {len(code.get(sr, []))} | "
            f"{len(sr_tests) - len(toml)} | {len(toml)} | {status_of(sr, code, tests, pending)} |"
        )
    out += ["", "## Hazards", "", "| hazard | title | SRs |", "|---|---|---|"]
    for hazard in hazards:
        out.append(f"| {hazard.hazard_id} | {hazard.title} | {', '.join(hazard.srs)} |")
    for sr, title in titles.items():
        sr_tests = tests.get(sr, [])
        out += ["", f"## {sr} {title}", ""]
        out.append(f"Hazards: {', '.join(by_sr.get(sr, [])) or 'none'}.")
        out.append(f"Status: {status_of(sr, code, tests, pending)}.")
        if sr in pending:
            out += ["", f"Pending: {' '.join(pending[sr].split())}"]
        out += ["", "Code:", ""]
        out += _grouped(code.get(sr, [])) or ["- none"]
        out += ["", "Tests:", ""]
        out += _grouped(r for r in sr_tests if r.path.endswith(".py")) or ["- none"]
        scenarios = [r for r in sr_tests if r.path.endswith(".toml")]
        if scenarios:
            out += ["", "Scenarios and other TOML files:", ""]
            out += _scenario_lines(scenarios)
    return "\n".join(out) + "\n"


class Inputs(NamedTuple):
    titles: dict[str, str]
    pending: dict[str, str]
    hazards: list[Hazard]
    hazards_text: str
    code: dict[str, list[Ref]]
    tests: dict[str, list[Ref]]


def gather(root: Path = ROOT) -> Inputs:
    """Everything the matrix and its checks need, read from the tree at ``root``."""
    safety = root / "docs" / "safety"
    titles = dict(requirement_entries((safety / REQUIREMENTS.name).read_text(encoding="utf-8")))
    pending, _ = pending_entries((safety / PENDING.name).read_text(encoding="utf-8"), titles)
    hazards_file = safety / HAZARDS.name
    hazards_text = hazards_file.read_text(encoding="utf-8") if hazards_file.is_file() else ""
    exclude = frozenset(p.resolve() for p in GATE_FILES)
    return Inputs(
        titles=titles,
        pending=pending,
        hazards=parse_hazards(hazards_text),
        hazards_text=hazards_text,
        code=scan(root, CODE_DIRS, CODE_SUFFIXES),
        tests=scan(root, TEST_DIRS, TEST_SUFFIXES, exclude),
    )


def generate(root: Path = ROOT) -> str:
    i = gather(root)
    return render(i.titles, i.pending, i.hazards, i.code, i.tests)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    text = generate()
    if args == ["--write"]:
        MATRIX.write_text(text, encoding="utf-8")
        print(f"wrote {MATRIX.relative_to(ROOT)}", file=sys.stderr)
        return 0
    if args == ["--check"]:
        current = MATRIX.read_text(encoding="utf-8") if MATRIX.is_file() else ""
        if current != text:
            print(f"{MATRIX.relative_to(ROOT)} is stale: run {REGENERATE}", file=sys.stderr)
            return 1
        return 0
    if args:
        print(
            f"usage: python -m tests.safety.matrix [--write | --check]; got {args}", file=sys.stderr
        )
        return 2
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

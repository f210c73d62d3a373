"""The gate of the traceability matrix and of the hazard analysis.

On this repository it fails when:
- ``docs/safety/traceability.md`` is not what ``tests/safety/matrix.py`` produces
  from the tree now (the message says how to regenerate it);
- an SR is named by no code under ``console/``, ``drivers/``, ``protocols/`` or
  ``simulator/`` and is not pending;
- an SR is covered by no hazard of ``docs/safety/hazards.md``;
- the hazard analysis names code or tests that do not exist, tests that name none
  of the hazard's SRs, or disagrees with its own summary table.
(That every SR is named by a test or pending stays the rule of
``test_traceability.py``.)

The scanning, parsing and checking functions are tested on made-up trees and texts
too: a gate must not pass by failing to look. Like the other gate modules this one
writes requirement ids only through ``sr_id``, and the scan skips it.
"""

from __future__ import annotations

import difflib
from pathlib import Path

import pytest

from tests.safety import matrix
from tests.safety.matrix import (
    Hazard,
    Ref,
    SummaryRow,
    hazard_problems,
    hazards_by_sr,
    parse_hazards,
    python_mentions,
    references,
    render,
    resolve,
    scan,
    summary_rows,
    toml_mentions,
)
from tests.safety.test_traceability import GATE_FILES, ROOT, sr_id, untraced

A, B, C, D = sr_id(1), sr_id(2), sr_id(3), sr_id(4)


# -- the gate on this repository ---------------------------------------------------------


@pytest.fixture(scope="module")
def inputs() -> matrix.Inputs:
    return matrix.gather()


def test_the_committed_matrix_is_what_the_generator_produces(inputs: matrix.Inputs) -> None:
    expected = render(inputs.titles, inputs.pending, inputs.hazards, inputs.code, inputs.tests)
    path = matrix.MATRIX
    committed = path.read_text(encoding="utf-8") if path.is_file() else ""
    if committed != expected:
        diff = difflib.unified_diff(
            committed.splitlines(), expected.splitlines(), "committed", "generated", lineterm=""
        )
        shown = "\n".join(list(diff)[:40])
        pytest.fail(
            f"{path.relative_to(ROOT)} is not what the tree gives now; regenerate it "
            f"from the repository root with:\n    {matrix.REGENERATE}\n"
            f"and commit it with the change that moved it.\n{shown}"
        )


def test_every_sr_is_named_in_code_or_pending(inputs: matrix.Inputs) -> None:
    missing = untraced(inputs.titles, inputs.code, inputs.pending)
    assert not missing, (
        "these SRs are named by no code in "
        f"{', '.join(matrix.CODE_DIRS)} and are not pending:\n"
        + "\n".join(f"  {sr} {inputs.titles[sr]}" for sr in missing)
        + "\nName each in a comment or docstring of the code that implements it, or list "
        "it in docs/safety/pending.toml with what is still to be built."
    )


def test_every_sr_is_covered_by_a_hazard(inputs: matrix.Inputs) -> None:
    missing = untraced(inputs.titles, hazards_by_sr(inputs.hazards), ())
    assert not missing, (
        "no hazard of docs/safety/hazards.md names these SRs:\n"
        + "\n".join(f"  {sr} {inputs.titles[sr]}" for sr in missing)
        + "\nAdd the SR to the **SRs:** item (and the summary row) of the hazard it controls."
    )


def test_the_hazard_analysis_names_what_exists(inputs: matrix.Inputs) -> None:
    problems = hazard_problems(
        inputs.hazards,
        summary_rows(inputs.hazards_text),
        list(inputs.titles),
        inputs.pending,
        ROOT,
        inputs.tests,
    )
    assert not problems, "docs/safety/hazards.md:\n" + "\n".join(f"  {p}" for p in problems)


def test_the_gate_modules_are_excluded_and_name_no_requirement() -> None:
    for path in GATE_FILES:
        assert path.is_file(), f"{path} is listed as a gate module but does not exist"
        assert python_mentions(path.read_text(encoding="utf-8")) == {}, path


def test_the_command_line() -> None:
    assert matrix.main(["--no-such-option"]) == 2
    assert matrix.main(["--check"]) in (0, 1)


# -- scanning, on made-up inputs -------------------------------------------------------------


def test_python_mentions_are_attributed_to_the_innermost_scope() -> None:
    source = f'''"""Module docstring naming {A}."""
import pytest

# a comment at module level: {B}


class Interlocks:
    """{C}: the class docstring."""

    def rule(self) -> None:
        x = 1  # {D} in a comment

        def inner() -> None:
            """{A} inside a nested function."""


@pytest.mark.parametrize("sr", ["{B}"])
def test_decorated(sr: str) -> None:
    pass


async def test_async() -> None:
    """{C} and {C} again, {D}a and X{D} are not ids."""
'''
    assert python_mentions(source) == {
        A: {"", "Interlocks.rule.inner"},
        B: {"", "test_decorated"},
        C: {"Interlocks", "test_async"},
        D: {"Interlocks.rule"},
    }


def test_python_mentions_of_a_file_that_does_not_parse_are_module_level() -> None:
    assert python_mentions(f"def broken(:\n    '{A}'\n") == {A: {""}}
    assert python_mentions("x = 1\n") == {}


def test_toml_mentions_belong_to_the_scenario_name_or_the_file() -> None:
    named = f'# {A} in a comment\nname = "sr01_thing"\nsr = ["{B}"]\n[[expect]]\nname = "{C}"\n'
    assert toml_mentions(named) == {A: {"sr01_thing"}, B: {"sr01_thing"}, C: {"sr01_thing"}}
    assert toml_mentions(f'sr = ["{A}"]\n') == {A: {""}}
    assert toml_mentions(f'name = "x"\nsr = ["{A}"\n') == {A: {""}}  # does not parse
    assert toml_mentions(f'name = 3\nsr = ["{A}"]\n') == {A: {""}}
    assert toml_mentions('name = "quiet"\n') == {}


def test_scan_reads_the_listed_folders_and_suffixes_only(tmp_path: Path) -> None:
    def write(rel: str, text: str) -> Path:
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return path

    write("console/rules.py", f"def trip() -> None:\n    pass  # {A}\n")
    write("console/sub/deep.py", f'"""{B}"""\n')
    write("console/__pycache__/rules.py", f"# {C}\n")
    write("console/notes.md", f"{C}\n")
    write("elsewhere/other.py", f"# {C}\n")
    write("tests/scenarios/s.toml", f'name = "s"\nsr = ["{A}"]\n')
    write("tests/scenarios/t.py", f"def test_t() -> None:\n    '{D}'\n")
    gate = write("tests/safety/gate.py", f"# {C}\n")

    assert scan(tmp_path, ("console", "missing"), frozenset({".py"})) == {
        A: [Ref("console/rules.py", "trip")],
        B: [Ref("console/sub/deep.py", "")],
    }
    assert scan(tmp_path, ("tests",), frozenset({".py", ".toml"}), frozenset({gate})) == {
        A: [Ref("tests/scenarios/s.toml", "s")],
        D: [Ref("tests/scenarios/t.py", "test_t")],
    }
    assert str(Ref("a.py", "")) == "a.py" and str(Ref("a.py", "K.f")) == "a.py::K.f"


# -- the hazard analysis, on made-up inputs -----------------------------------------------


HAZARDS_TEXT = f"""# Hazards

| hazard | situation | harm | severity | before | after | SRs |
|---|---|---|---|---|---|---|
| HAZ-01 | frozen | tearing | S4 | P4 | P2 (R) | {A}, {B} |
| HAZ-02 | pending | remote | S3 | P2 | P2 | {D} |

## Hazards

### HAZ-01 Probe moved while frozen
- **Hazard:** ice.
- **Sequence of events:** the operator pulls
  the probe too early.
- **Hazardous situation:** frozen.
- **Harm:** tearing.
- **Severity:** S4 (critical).
- **Probability:** before P4; after P2.
- **Software risk control:** the lock.
- **SRs:** {A}, {B}
- **Code:** `console/proc.py::Procedure.lock` (the lock),
  `console/proc.py::LIMIT`, `console/proc.py`, `not/a/ref`
- **Tests:** `tests/test_proc.py::test_lock`, `tests/test_proc.py::TestLock::test_it`,
  `tests/s.toml`
- **Residual risk:** some.

Text after the items is ignored: `console/ignored.py::X`.

### HAZ-02 Remote control
- **Hazard:** h.
- **Sequence of events:** s.
- **Hazardous situation:** s.
- **Harm:** h.
- **Severity:** S3.
- **Probability:** before P2; after P2.
- **Software risk control:** pending.
- **SRs:** {D}
- **Code:** none yet.
- **Tests:** none yet.
- **Residual risk:** r.

## Residual risk

### not a hazard heading
"""


def test_parse_hazards_reads_sections_items_and_references() -> None:
    first, second = parse_hazards(HAZARDS_TEXT)
    assert (first.hazard_id, first.title, first.srs) == (
        "HAZ-01",
        "Probe moved while frozen",
        (A, B),
    )
    assert first.code == (
        "console/proc.py::Procedure.lock",
        "console/proc.py::LIMIT",
        "console/proc.py",
    )
    assert first.tests == (
        "tests/test_proc.py::test_lock",
        "tests/test_proc.py::TestLock::test_it",
        "tests/s.toml",
    )
    assert first.item("Sequence of events") == "the operator pulls the probe too early."
    assert first.fields == matrix.REQUIRED_ITEMS
    assert (second.hazard_id, second.srs, second.code, second.tests) == ("HAZ-02", (D,), (), ())
    assert hazards_by_sr([first, second]) == {A: ["HAZ-01"], B: ["HAZ-01"], D: ["HAZ-02"]}
    assert summary_rows(HAZARDS_TEXT) == {
        "HAZ-01": SummaryRow("S4", "P4", "P2", (A, B)),
        "HAZ-02": SummaryRow("S3", "P2", "P2", (D,)),
    }
    assert references("`a.py`, `b.toml`, `c.md`, `x y.py`, `d.py::K::f`") == [
        "a.py",
        "b.toml",
        "d.py::K::f",
    ]


def _tree(root: Path) -> None:
    (root / "console").mkdir()
    (root / "console" / "proc.py").write_text(
        "LIMIT: int = 3\n\n\nclass Procedure:\n    KIND = 'x'\n\n"
        "    def lock(self) -> None:\n        def hidden() -> None:\n            pass\n"
    )
    (root / "console" / "broken.py").write_text("def (:\n")
    (root / "tests").mkdir()
    (root / "tests" / "test_proc.py").write_text(
        f"def test_lock() -> None:\n    '{A}'\n\n\nclass TestLock:\n"
        f"    def test_it(self) -> None:\n        '{B}'\n\n"
        "    def test_quiet(self) -> None:\n        pass\n"
    )
    (root / "tests" / "s.toml").write_text(f'name = "s"\nsr = ["{B}"]\n')


def test_resolve_finds_functions_methods_classes_and_assignments(tmp_path: Path) -> None:
    _tree(tmp_path)
    code, tests = ("console",), ("tests",)
    for ref in (
        "console/proc.py",
        "console/proc.py::Procedure",
        "console/proc.py::Procedure.lock",
        "console/proc.py::Procedure::lock",
        "console/proc.py::Procedure.KIND",
        "console/proc.py::LIMIT",
    ):
        assert resolve(tmp_path, ref, code) is None, ref
    assert resolve(tmp_path, "tests/test_proc.py::TestLock::test_it", tests) is None
    assert resolve(tmp_path, "tests/s.toml", tests) is None
    assert resolve(tmp_path, "console/proc.py::Procedure.unlock", code) == (
        "console/proc.py::Procedure.unlock: console/proc.py defines no Procedure.unlock"
    )
    assert resolve(tmp_path, "console/proc.py::Procedure.lock.hidden", code) is not None
    assert resolve(tmp_path, "console/proc.py::hidden", code) is not None
    assert resolve(tmp_path, "console/gone.py", code) == "console/gone.py: no file console/gone.py"
    assert resolve(tmp_path, "tests/test_proc.py", code) == (
        "tests/test_proc.py: not under console"
    )
    assert resolve(tmp_path, "consoleX/proc.py", code) == "consoleX/proc.py: not under console"
    assert resolve(tmp_path, "tests/s.toml::s", tests) == (
        "tests/s.toml::s: only Python files have symbols"
    )
    assert "does not parse" in str(resolve(tmp_path, "console/broken.py::f", code))


def test_hazard_problems_on_a_made_up_tree(tmp_path: Path) -> None:
    _tree(tmp_path)
    hazards = parse_hazards(HAZARDS_TEXT)
    summary = summary_rows(HAZARDS_TEXT)
    known = [A, B, C, D]
    tested = scan(tmp_path, ("tests",), frozenset({".py", ".toml"}))

    assert hazard_problems(hazards, summary, known, [D], tmp_path, tested) == []

    # HAZ-02 names no code and no test: allowed only while all its SRs are pending.
    assert hazard_problems(hazards, summary, known, [], tmp_path, tested) == [
        "HAZ-02 names no code (allowed only when all its SRs are pending)",
        "HAZ-02 names no test (allowed only when all its SRs are pending)",
    ]

    broken = HAZARDS_TEXT.replace("Procedure.lock` (the", "Procedure.unlock` (the")
    broken = broken.replace("test_proc.py::test_lock`", "test_proc.py::TestLock::test_quiet`")
    broken = broken.replace("- **SRs:** " + f"{A}, {B}", "- **SRs:** " + f"{A}, {sr_id(99)}")
    broken = broken.replace("- **Harm:** tearing.\n", "")
    broken = broken.replace("- **Severity:** S4 (critical).", "- **Severity:** S3.")
    broken = broken.replace("before P4; after P2.", "P4 then P2.")
    broken = broken.replace(f"| P2 | {D} |", f"| P2 | {C} |")
    broken += "| HAZ-07 | lonely | row | S1 | P1 | P1 | - |\n"
    broken += broken[broken.index("### HAZ-02") : broken.index("## Residual risk")]
    problems = hazard_problems(
        parse_hazards(broken), summary_rows(broken), known, [D], tmp_path, tested
    )
    assert problems == [
        "HAZ-02 is defined more than once",
        "HAZ-01 lacks the items ['Harm']",
        f"HAZ-01 names {sr_id(99)}, which is not a requirement",
        "HAZ-01 Code console/proc.py::Procedure.unlock: console/proc.py defines no "
        "Procedure.unlock",
        "HAZ-01 Tests tests/test_proc.py::TestLock::test_quiet: names none of the hazard's "
        f"SRs ['{A}', '{sr_id(99)}']",
        "HAZ-01 Tests tests/test_proc.py::TestLock::test_it: names none of the hazard's "
        f"SRs ['{A}', '{sr_id(99)}']",
        f"HAZ-01 Tests tests/s.toml: names none of the hazard's SRs ['{A}', '{sr_id(99)}']",
        f"HAZ-01: the summary table says ['{A}', '{B}'], the section says ['{A}', '{sr_id(99)}']",
        "HAZ-01: the summary table says severity S4, the section says S3",
        "HAZ-01: the summary table says before P4, the section says nothing ('before Pn' expected)",
        "HAZ-01: the summary table says after P2, the section says nothing ('after Pn' expected)",
        f"HAZ-02: the summary table says ['{C}'], the section says ['{D}']",
        f"HAZ-02: the summary table says ['{C}'], the section says ['{D}']",
        "HAZ-07 is in the summary table but has no section",
    ]
    assert hazard_problems([], {}, known, [], tmp_path, tested) == ["no ### HAZ-nn sections found"]


# -- rendering, on made-up inputs ------------------------------------------------------------


def test_render_lists_status_hazards_code_and_tests_per_sr() -> None:
    titles = {A: "Traced", B: "Pending", C: "Untested", D: "Uncoded"}
    pending = {B: "the  rest\n  of it"}
    hazards = [Hazard("HAZ-01", "Frozen", (A, B), (), (), ())]
    code = {
        A: [Ref("console/a.py", ""), Ref("console/a.py", "K.f"), Ref("console/b.py", "g")],
        C: [Ref("console/c.py", "h")],
    }
    tests = {
        A: [Ref("tests/s.toml", "s"), Ref("tests/t.py", "test_a"), Ref("tests/u.toml", "")],
        B: [Ref("tests/t.py", "test_b")],
        D: [Ref("tests/t.py", "test_d")],
    }
    text = render(titles, pending, hazards, code, tests)

    assert f"| {A} | Traced | HAZ-01 | 3 | 1 | 2 | traced |" in text
    assert f"| {B} | Pending | HAZ-01 | 0 | 1 | 0 | pending |" in text
    assert f"| {C} | Untested | - | 1 | 0 | 0 | UNTESTED |" in text
    assert f"| {D} | Uncoded | - | 0 | 1 | 0 | NO CODE |" in text
    assert f"| HAZ-01 | Frozen | {A}, {B} |" in text
    section_a = text[text.index(f"## {A} Traced") : text.index(f"## {B} Pending")]
    assert "- `console/a.py`: (module), `K.f`\n- `console/b.py`: `g`\n" in section_a
    assert "Tests:\n\n- `tests/t.py`: `test_a`\n" in section_a
    assert "- `tests/s.toml` (s)\n- `tests/u.toml`\n" in section_a
    section_b = text[text.index(f"## {B} Pending") : text.index(f"## {C} Untested")]
    assert "Pending: the rest of it\n" in section_b and "Code:\n\n- none\n" in section_b
    assert "Hazards: none." in text[text.index(f"## {C} Untested") :]
    assert text.endswith("\n") and matrix.REGENERATE in text
    assert render(titles, pending, hazards, code, tests) == text


def test_generate_on_a_made_up_repository(tmp_path: Path) -> None:
    safety = tmp_path / "docs" / "safety"
    safety.mkdir(parents=True)
    (safety / "requirements.md").write_text(
        f"- **{A} Safe by default.** Text.\n- **{B} Device watchdog.** Text.\n"
    )
    (safety / "pending.toml").write_text(f'[{B}]\ntodo = "the watchdog"\n')
    (safety / "hazards.md").write_text(
        f"| HAZ-01 | x | y | S3 | P3 | P1 | {A} |\n\n### HAZ-01 Energised at start\n"
        f"- **SRs:** {A}\n"
    )
    _tree(tmp_path)
    text = matrix.generate(tmp_path)
    assert f"| {A} | Safe by default | HAZ-01 | 0 | 1 | 0 | NO CODE |" in text
    assert f"| {B} | Device watchdog | - | 0 | 1 | 1 | pending |" in text
    assert "- `tests/test_proc.py`: `TestLock.test_it`\n" in text

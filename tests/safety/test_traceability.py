"""The traceability gate: every safety requirement is tested or pending.

Each SR of ``docs/safety/requirements.md`` must be named (``SR-nn``) by a test
file under ``tests/`` or be listed in ``docs/safety/pending.toml`` with what is
still to be built. The project copy of the requirements must match its source
in the product specification when that is present beside the checkout.

The parsing and scanning are small functions so that they are tested here on
made-up trees and texts as well: the gate must not pass by failing to look.
This module writes requirement ids only through ``sr_id`` so that it never
names one itself; it is excluded from the scan all the same, with the other
gate modules (``matrix.py``, the generator of ``docs/safety/traceability.md``,
and its test ``test_matrix.py``).
"""

from __future__ import annotations

import difflib
import re
import tomllib
from collections.abc import Iterable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
REQUIREMENTS = ROOT / "docs" / "safety" / "requirements.md"
PENDING = ROOT / "docs" / "safety" / "pending.toml"
SOURCE = ROOT.parent / "shared" / "safety-requirements.md"
TESTS = ROOT / "tests"
#: The gate's own modules (this one, the matrix generator and its test): they name no
#: requirement themselves and are never evidence for one.
GATE_FILES = frozenset(
    Path(__file__).resolve().parent / name
    for name in ("test_traceability.py", "matrix.py", "test_matrix.py")
)

SR_COUNT = 32
COPY_MARKER = "<!-- copy of ../shared/safety-requirements.md"
SCANNED_SUFFIXES = frozenset({".py", ".toml"})
PENDING_KEYS = frozenset({"todo"})

_ENTRY = re.compile(r"\*\*(SR-\d{2}) ([^*]+?)\.?\*\*")
_MENTION = re.compile(r"\bSR-\d{2}\b")
_ALARM_ROW = re.compile(r"^\|\s*ALM_\w+\s*\|.*$", re.MULTILINE)


def sr_id(number: int) -> str:
    return f"SR-{number:02d}"


EXPECTED_IDS = tuple(sr_id(n) for n in range(1, SR_COUNT + 1))


def requirement_entries(text: str) -> list[tuple[str, str]]:
    """``(id, title)`` of every ``**SR-nn Title.**`` entry, in order, duplicates kept."""
    return [(sr, title.strip()) for sr, title in _ENTRY.findall(text)]


def alarm_rows(text: str) -> list[str]:
    """The alarm table's rows, whitespace inside cells normalised."""
    return [" ".join(row.split()) for row in _ALARM_ROW.findall(text)]


def pending_entries(text: str, known: Iterable[str]) -> tuple[dict[str, str], list[str]]:
    """The ``todo`` of each pending SR, and every problem found in the list."""
    known_ids = set(known)
    pending: dict[str, str] = {}
    problems: list[str] = []
    for key, value in tomllib.loads(text).items():
        if key not in known_ids:
            problems.append(f"[{key}] is not a known SR")
            continue
        if not isinstance(value, dict):
            problems.append(f"{key} must be a table [{key}] with a todo")
            continue
        unknown = sorted(set(value) - PENDING_KEYS)
        if unknown:
            problems.append(f"[{key}] has unknown keys {unknown}; allowed: {sorted(PENDING_KEYS)}")
        todo = value.get("todo")
        if not isinstance(todo, str) or not todo.strip():
            problems.append(f"[{key}] needs a non-empty todo saying what is still to be built")
            continue
        pending[key] = todo
    return pending, problems


def mentions(root: Path, exclude: frozenset[Path] = frozenset()) -> dict[str, list[Path]]:
    """SR ids named in the ``.py`` and ``.toml`` files under ``root``, with their files."""
    found: dict[str, list[Path]] = {}
    for path in sorted(root.rglob("*")):
        if path.suffix not in SCANNED_SUFFIXES or not path.is_file():
            continue
        if path.resolve() in exclude:
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        for sr in sorted(set(_MENTION.findall(text))):
            found.setdefault(sr, []).append(path)
    return found


def untraced(required: Iterable[str], named: Iterable[str], pending: Iterable[str]) -> list[str]:
    """The required SRs that are neither named by a test nor pending, in order."""
    covered = set(named) | set(pending)
    return [sr for sr in required if sr not in covered]


def copy_differences(copy_text: str, source_text: str) -> list[str]:
    """How the project copy differs from its source; empty when it is faithful."""
    problems: list[str] = []
    copy_titles = dict(requirement_entries(copy_text))
    source_titles = dict(requirement_entries(source_text))
    for sr in sorted(source_titles.keys() - copy_titles.keys()):
        problems.append(f"{sr} ({source_titles[sr]}) is in the source but not in the copy")
    for sr in sorted(copy_titles.keys() - source_titles.keys()):
        problems.append(f"{sr} ({copy_titles[sr]}) is in the copy but not in the source")
    for sr in sorted(copy_titles.keys() & source_titles.keys()):
        if copy_titles[sr] != source_titles[sr]:
            problems.append(
                f"{sr} title differs: copy {copy_titles[sr]!r}, source {source_titles[sr]!r}"
            )

    copy_rows, source_rows = alarm_rows(copy_text), alarm_rows(source_text)
    problems += [f"alarm row missing from the copy: {r}" for r in source_rows if r not in copy_rows]
    problems += [f"alarm row not in the source: {r}" for r in copy_rows if r not in source_rows]

    marker = copy_text.find(COPY_MARKER)
    if marker < 0:
        problems.append(f"the copy has no {COPY_MARKER!r} line before the copied text")
        return problems
    copied = copy_text[marker:].split("\n", 1)[1].strip().splitlines()
    original = source_text.split("\n", 1)[1].strip().splitlines()
    if copied != original:
        diff = difflib.unified_diff(original, copied, "source", "copy", n=0, lineterm="")
        problems.append("the copied text differs from the source:\n" + "\n".join(list(diff)[:20]))
    return problems


# -- the gate on this repository ---------------------------------------------


def test_requirements_name_each_sr_once_with_a_title() -> None:
    entries = requirement_entries(REQUIREMENTS.read_text(encoding="utf-8"))
    ids = [sr for sr, _ in entries]
    duplicates = sorted({sr for sr in ids if ids.count(sr) > 1})
    assert not duplicates, f"{REQUIREMENTS.name} names these SRs more than once: {duplicates}"
    missing = sorted(set(EXPECTED_IDS) - set(ids))
    unexpected = sorted(set(ids) - set(EXPECTED_IDS))
    assert not missing and not unexpected, (
        f"{REQUIREMENTS.name} must hold {EXPECTED_IDS[0]}..{EXPECTED_IDS[-1]}: "
        f"missing {missing}, unexpected {unexpected}"
    )
    assert all(title for _, title in entries)


def test_project_copy_matches_its_source() -> None:
    # Without the product specification beside the checkout (a bare clone in
    # CI) there is nothing to compare; the other checks still run.
    sources = [SOURCE] if SOURCE.is_file() else []
    for source in sources:
        problems = copy_differences(
            REQUIREMENTS.read_text(encoding="utf-8"), source.read_text(encoding="utf-8")
        )
        assert not problems, f"{REQUIREMENTS} no longer matches {source}:\n" + "\n".join(problems)


def test_pending_entries_name_known_srs_and_what_is_left() -> None:
    _, problems = pending_entries(PENDING.read_text(encoding="utf-8"), EXPECTED_IDS)
    assert not problems, f"{PENDING}:\n" + "\n".join(problems)


def test_every_sr_is_named_by_a_test_or_pending() -> None:
    titles = dict(requirement_entries(REQUIREMENTS.read_text(encoding="utf-8")))
    pending, _ = pending_entries(PENDING.read_text(encoding="utf-8"), titles)
    missing = untraced(titles, mentions(TESTS, GATE_FILES), pending)
    assert not missing, (
        "these safety requirements are named by no test under tests/ and are not "
        f"pending in {PENDING.relative_to(ROOT)}:\n"
        + "\n".join(f"  {sr} {titles[sr]}" for sr in missing)
        + "\nName each in the test that verifies it (id, marker or docstring), or list it "
        "as pending with what is still to be built."
    )


# -- the gate's own machinery, on made-up inputs ---------------------------------


def test_gate_reports_an_sr_neither_tested_nor_pending(tmp_path: Path) -> None:
    tests = tmp_path / "tests"
    (tests / "unit").mkdir(parents=True)
    (tests / "scenarios").mkdir()
    (tests / "unit" / "test_a.py").write_text(f'"""Verifies {sr_id(1)}."""\n')
    (tests / "scenarios" / "b.toml").write_text(f'srs = ["{sr_id(2)}"]\n')
    (tests / "unit" / "notes.md").write_text(f"{sr_id(3)} is only described here\n")
    gate = tests / "test_gate.py"
    gate.write_text(f"# names {sr_id(4)} but is the gate itself\n")
    (tests / "unit" / "test_c.py").write_text(f"# {sr_id(5)}a and X{sr_id(6)} are not ids\n")
    pending = tomllib.loads(f'[{sr_id(7)}]\ntodo = "build it"\n')

    named = mentions(tests, frozenset({gate.resolve()}))

    assert named == {
        sr_id(1): [tests / "unit" / "test_a.py"],
        sr_id(2): [tests / "scenarios" / "b.toml"],
    }
    required = [sr_id(n) for n in range(1, 9)]
    assert untraced(required, named, pending) == [sr_id(n) for n in (3, 4, 5, 6, 8)]
    assert untraced(required, named, required) == []


def test_pending_list_problems_are_reported() -> None:
    text = (
        f'"{sr_id(4)}" = "not a table"\n'
        f'[{sr_id(1)}]\ntodo = "runtime core"\n'
        f'[{sr_id(2)}]\ntodo = "  "\n'
        f'[{sr_id(3)}]\ntodo = "x"\nowner = "me"\n'
        f'[{sr_id(99)}]\ntodo = "not a requirement"\n'
    )
    pending, problems = pending_entries(text, [sr_id(n) for n in range(1, 5)])

    assert pending == {sr_id(1): "runtime core", sr_id(3): "x"}
    assert problems == [
        f"{sr_id(4)} must be a table [{sr_id(4)}] with a todo",
        f"[{sr_id(2)}] needs a non-empty todo saying what is still to be built",
        f"[{sr_id(3)}] has unknown keys ['owner']; allowed: ['todo']",
        f"[{sr_id(99)}] is not a known SR",
    ]


def test_requirement_entries_and_copy_comparison() -> None:
    source = (
        "# Safety requirements\n\nPreamble.\n"
        f"- **{sr_id(1)} Safe by default.** Text one.\n"
        f"- **{sr_id(5)} Supply over-pressure** (regulator failure). Text five.\n\n"
        "| alarm | SR |\n|---|---|\n| ALM_A | 01 |\n| ALM_B | 05 |\n"
    )
    assert requirement_entries(source) == [
        (sr_id(1), "Safe by default"),
        (sr_id(5), "Supply over-pressure"),
    ]
    copy = f"# Controlled copy\n\nHeader naming {sr_id(9)}.\n\n{COPY_MARKER} -->\n\n"
    copy += source.split("\n", 1)[1]
    # The header's plain mention of an id is not an entry.
    assert copy_differences(copy, source) == []

    changed = copy.replace("Safe by default.", "Safe on start.").replace("| ALM_B | 05 |\n", "")
    problems = copy_differences(changed, source)
    assert problems[0] == (
        f"{sr_id(1)} title differs: copy 'Safe on start', source 'Safe by default'"
    )
    assert problems[1] == "alarm row missing from the copy: | ALM_B | 05 |"
    assert problems[2].startswith("the copied text differs from the source:")
    assert len(problems) == 3

    assert copy_differences(source, source)[-1].startswith("the copy has no")

"""The QA scenario library: `probe-console qa run tests/scenarios` passes, so CI runs it.

Each `*.toml` here is one scenario in QA's own language (docs/qa.md) naming
the SRs it verifies in `sr` (the traceability gate scans these files too).
This test runs the whole folder in process, in virtual time against the
simulator, and asserts from the JUnit XML that every scenario passed: none
failed, none erred, none was skipped. On a failure, pytest shows the captured
table with every expectation's measured value.
"""

from __future__ import annotations

import tomllib
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from console.cli import main

LIBRARY = Path(__file__).resolve().parent

#: Ports of tests/scenarios/test_interlock_scenarios.py that must stay in the library.
REQUIRED = {
    "nominal_n2o": "no false alarm, N2O",
    "nominal_co2": "no false alarm, CO2",
    "sr07_exhaust_blocked_n2o": "SR-07's 100 ms bound, N2O",
    "sr07_exhaust_blocked_co2": "SR-07's 100 ms bound, CO2",
    "sr12_withdraw_during_freeze": "a wrong action: withdraw during a freeze",
    "sr15_stim_during_freeze": "a wrong action: stimulation during a freeze",
    "sr04_start_with_low_supply": "a wrong start: low supply",
    "sr19_arm_without_checklist": "a wrong action: arm without the checklist",
}


def test_every_library_scenario_passes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Every scenario of the library passes; the SRs each verifies are in its own `sr`."""
    junit = tmp_path / "library.xml"
    code = main(["qa", "run", str(LIBRARY), "--junit", str(junit)])
    out = capsys.readouterr().out
    assert code == 0, out
    (suite,) = ET.parse(junit).getroot().iter("testsuite")
    files = sorted(LIBRARY.glob("*.toml"))
    assert suite.get("tests") == str(len(files))
    assert (suite.get("failures"), suite.get("errors"), suite.get("skipped")) == ("0", "0", "0")
    names = {case.get("name") for case in suite.iter("testcase")}
    missing = {name: why for name, why in REQUIRED.items() if name not in names}
    assert not missing, missing


def test_the_library_runs_both_gases_and_names_its_srs() -> None:
    gases = set()
    for path in LIBRARY.glob("*.toml"):
        data = tomllib.loads(path.read_text(encoding="utf-8"))
        gases.add(data.get("gas", "N2O"))
        assert data["sr"], path
        assert data.get("requires", "any") == "simulator" or not data.get("fault"), path
    assert gases == {"N2O", "CO2"}

"""Fixtures shared by the command-line tests: a temp database and socket, a device-sim process."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.console.procs import Sim, start_sim, stop_sim


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {
        **os.environ,
        "PROBE_CONSOLE_DB": str(tmp_path / "sessions.sqlite3"),
        "PROBE_CONSOLE_SOCKET": str(tmp_path / "run" / "api.sock"),
    }


@pytest.fixture
def sim() -> Iterator[Sim]:
    s = start_sim("--seed", "3")
    yield s
    stop_sim(s)

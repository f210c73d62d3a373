"""Fixtures shared by the command-line tests: a temp database and socket, a device-sim
process, a `serve` process on it."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.console.procs import Sim, start_sim, stop_sim
from tests.console.served import Served, start_serve


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


@pytest.fixture
def served(sim: Sim, env: dict[str, str], tmp_path: Path) -> Iterator[Served]:
    s = start_serve(sim, tmp_path, env)
    yield s
    if s.proc.poll() is None:
        s.proc.kill()
        s.proc.wait()

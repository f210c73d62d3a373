"""Every test keeps its records and locks in its own temporary folder, never in the user's."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _private_state(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = tmp_path_factory.mktemp("state")
    monkeypatch.setenv("PROBE_CONSOLE_DB", str(state / "sessions.sqlite3"))
    monkeypatch.setenv("PROBE_CONSOLE_SOCKET", str(state / "run" / "api.sock"))

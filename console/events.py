"""The events file: one JSON object a line, with the envelope of interfaces.md.

Every event has `event`, `t_s` (seconds since the session record started, on
the daemon's monotonic or virtual clock, never going back), `ts` (UTC ISO
8601; in virtual time the start wall time plus `t_s`, so the same seed gives
the same file but for `ts` and `session_id`) and `seq`. Lines are written as
they happen and flushed in small batches (at least every 0.5 s of wall time
and at the end), so a crash loses at most the last half second of the file;
the session store (issue 8) is the durable record.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

Event = dict[str, Any]


def json_safe(value: Any) -> Any:
    """JSON-safe: NaN and infinity become null (JSON has neither)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value


class EventStream:
    """Stamps events with the envelope and hands them to the sinks (file, view, store)."""

    def __init__(
        self,
        clock: Callable[[], float],
        *,
        start_wall: datetime | None = None,
        wall_clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.clock = clock
        self.start_wall = start_wall or datetime.now(UTC)
        #: In real time `ts` is the wall clock now; in virtual time start + t_s.
        self.wall_clock = wall_clock
        self.sinks: list[Callable[[Event], None]] = []
        self.seq = 0

    def __call__(self, name: str, fields: dict[str, Any]) -> None:
        self.seq += 1
        t_s = round(self.clock(), 6)
        wall = self.wall_clock() if self.wall_clock else self.start_wall + timedelta(seconds=t_s)
        event = {
            "event": name,
            "t_s": t_s,
            "ts": wall.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "seq": self.seq,
            **fields,
        }
        for sink in self.sinks:
            sink(event)


class EventFile:
    """The `--events PATH` sink."""

    def __init__(self, path: Path, *, flush_s: float = 0.5) -> None:
        self._file: IO[str] = path.open("w", encoding="utf-8")
        self._lines: list[str] = []
        self._flush_s = flush_s
        self._last_flush = time.monotonic()

    def __call__(self, event: Event) -> None:
        self._lines.append(json.dumps(json_safe(event), allow_nan=False, separators=(",", ":")))
        if len(self._lines) >= 200 or time.monotonic() - self._last_flush >= self._flush_s:
            self.flush()

    def flush(self) -> None:
        if self._lines:
            self._file.write("\n".join(self._lines) + "\n")
            self._file.flush()
            self._lines.clear()
        self._last_flush = time.monotonic()

    def close(self) -> None:
        self.flush()
        self._file.close()

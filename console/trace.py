"""`--trace PATH`: every frame in and out, decoded, with time, as JSON lines.

For integrators bringing up a board: what exactly went over the wire and
when. Written by the control thread after the frame is handled; lines are
flushed in batches (every 100 frames and on close) so tracing does not put a
write system call on every sample.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import IO

from protocols import Message

_BATCH = 100


class FrameTrace:
    def __init__(self, path: Path) -> None:
        self._file: IO[str] = path.open("w", encoding="utf-8")
        self._lines: list[str] = []

    def __call__(self, direction: str, t_s: float, seq: int, message: Message) -> None:
        record = {
            "t_s": round(t_s, 6),
            "dir": direction,
            "seq": seq,
            "type": type(message).__name__,
            **{k: v for k, v in message._asdict().items()},
        }
        self._lines.append(json.dumps(record, default=int))
        if len(self._lines) >= _BATCH:
            self.flush()

    def flush(self) -> None:
        if self._lines:
            self._file.write("\n".join(self._lines) + "\n")
            self._file.flush()
            self._lines.clear()

    def close(self) -> None:
        self.flush()
        self._file.close()

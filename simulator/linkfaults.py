"""Wire-level faults: what a bad cable, a noisy line or a confused peer does to bytes.

A `Pipe` sits on one direction of the simulated line and applies the link
faults in force (drop, garbage, bit errors, duplicated and replayed frames,
delay, frames from another session). Random choices come from the device's
seeded generator, so a run is reproducible. Rates are Poisson processes:
`rate_hz` is the mean number of events a second.
"""

from __future__ import annotations

import math
import random
from collections import deque

from protocols import Telemetry, encode

_DELIM = b"\x00"


class Pipe:
    """One direction of the line. `process` takes bytes as sent and returns bytes as received."""

    __slots__ = (
        "_bits_to_flip",
        "_delayed",
        "_history",
        "_next",
        "_partial",
        "_rng",
        "ber",
        "delay_s",
        "drop",
        "rates",
    )

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng
        self.drop = 0  # number of active drop faults
        self.ber = 0.0
        self.delay_s = 0.0
        #: Active event rates by kind: "garbage", "duplicate", "replay", "foreign".
        self.rates: dict[str, float] = {}
        self._next: dict[str, float] = {}
        self._bits_to_flip = 0
        self._delayed: deque[tuple[float, bytes]] = deque()
        self._history: deque[bytes] = deque(maxlen=256)
        self._partial = b""

    def set_rate(self, kind: str, rate_hz: float, now: float) -> None:
        if rate_hz > 0:
            self.rates[kind] = rate_hz
            self._next[kind] = now + self._rng.expovariate(rate_hz)
        else:
            self.rates.pop(kind, None)
            self._next.pop(kind, None)

    def set_ber(self, ber: float) -> None:
        self.ber = ber
        self._bits_to_flip = self._geometric() if ber > 0 else 0

    def _geometric(self) -> int:
        """Bits until the next error, for independent errors at rate `ber`."""
        if self.ber >= 1.0:
            return 0
        return int(math.log(1.0 - self._rng.random()) / math.log(1.0 - self.ber))

    def process(self, data: bytes, now: float) -> bytes:
        """Apply the faults to `data` sent at `now`; return what arrives now."""
        if data:
            self._remember(data)  # replay needs frames from before the fault began
        if self.rates:
            data = self._events(data, now)
        if self.ber > 0 and data:
            data = self._corrupt(data)
        if self.drop:
            data = b""
        if self.delay_s > 0 or self._delayed:
            if data:
                self._delayed.append((now + self.delay_s, data))
            data = self._release(now)
        return data

    def _remember(self, data: bytes) -> None:
        pieces = (self._partial + data).split(_DELIM)
        self._partial = pieces.pop()
        for piece in pieces:
            if piece:
                self._history.append(piece + _DELIM)

    def _events(self, data: bytes, now: float) -> bytes:
        out = data
        rng = self._rng
        for kind, rate in self.rates.items():
            while self._next[kind] <= now:
                self._next[kind] += rng.expovariate(rate)
                if kind == "garbage":
                    out += bytes(rng.randrange(256) for _ in range(rng.randint(1, 16)))
                elif kind == "duplicate" and self._history:
                    out += self._history[-1]
                elif kind == "replay" and len(self._history) > 1:
                    out += self._history[rng.randrange(len(self._history) - 1)]
                elif kind == "foreign":
                    out += _DELIM + _foreign_frame(rng)
        return out

    def _corrupt(self, data: bytes) -> bytes:
        bits = len(data) * 8
        if self._bits_to_flip >= bits:
            self._bits_to_flip -= bits
            return data
        buf = bytearray(data)
        pos = self._bits_to_flip
        while pos < bits:
            buf[pos >> 3] ^= 1 << (pos & 7)
            pos += 1 + self._geometric()
        self._bits_to_flip = pos - bits
        return bytes(buf)

    def _release(self, now: float) -> bytes:
        out = b""
        while self._delayed and self._delayed[0][0] <= now + 1e-9:
            out += self._delayed.popleft()[1]
        return out

    def pending(self, now: float) -> bytes:
        """Delayed bytes whose time has come, with no new input."""
        return self._release(now) if self._delayed else b""


def _foreign_frame(rng: random.Random) -> bytes:
    """A plausible telemetry frame from another device session (a random nonce)."""
    t = Telemetry(rng.randrange(1 << 31), 31000, 10900, 64000, 0x33, 0, 1, 0, 250, 0, 0, 0, 0)
    return encode(t, rng.randrange(1 << 32), rng.randrange(1, 1 << 32))

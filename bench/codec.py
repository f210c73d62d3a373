"""Codec throughput: frames per second encoded and decoded, against the line rate.

Usage: python bench/codec.py [--rounds N] [--frames N]

Measures, in one process, the median of several rounds:
- encode of a telemetry frame and of a valve command (message -> wire bytes);
- decode of a telemetry stream through `StreamDecoder` (COBS, CRC-32, header,
  sequence and nonce checks, typed message), fed in 512-byte reads;
and compares them with the frame rate a serial line can carry for the same
frame size (8N1: 10 bits a byte) at 115200 and 921600 baud. Absolute figures
move 3-10x between runs on a shared machine; the ratio to the line rate is the
figure that matters. No assertion here: this is a measurement, not a test.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from collections.abc import Callable

from protocols import StreamDecoder, Telemetry, ValveCommand, encode
from protocols.messages import Valve

NONCE = 0x5EED0001
TELEMETRY = Telemetry(123456, 31020, 10923, 64070, 0x33, 0, 0x01, 0, 250, 100, 100, 2, 0)
VALVE = ValveCommand(Valve.SUPPLY, True, 123656, 182000)
READ_SIZE = 512


def _rate(fn: Callable[[], int], rounds: int) -> float:
    """Median items per second over `rounds` runs of `fn` (which returns its item count)."""
    rates = []
    for _ in range(rounds):
        start = time.perf_counter()
        count = fn()
        rates.append(count / (time.perf_counter() - start))
    return statistics.median(rates)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--frames", type=int, default=20_000, help="frames per round")
    args = parser.parse_args(argv)
    n = args.frames

    def encode_telemetry() -> int:
        for seq in range(n):
            encode(TELEMETRY, seq, NONCE)
        return n

    def encode_command() -> int:
        for seq in range(n):
            encode(VALVE, seq, NONCE)
        return n

    stream = b"".join(encode(TELEMETRY, seq, NONCE) for seq in range(1, n + 1))
    chunks = [stream[i : i + READ_SIZE] for i in range(0, len(stream), READ_SIZE)]

    def decode_stream() -> int:
        decoder = StreamDecoder()
        decoder.start_session(NONCE, 0)
        got = 0
        for chunk in chunks:
            got += len(decoder.feed(chunk))
        if got != n or decoder.bad or decoder.lost:
            raise SystemExit(f"decode check failed: {got} of {n}, bad {decoder.bad}")
        return got

    frame_bytes = len(encode(TELEMETRY, 1, NONCE))
    results = {
        "encode telemetry": _rate(encode_telemetry, args.rounds),
        "encode valve command": _rate(encode_command, args.rounds),
        "decode telemetry stream": _rate(decode_stream, args.rounds),
    }
    line = {baud: baud / 10 / frame_bytes for baud in (115200, 921600)}

    print(
        f"codec bench: {platform.python_implementation()} {platform.python_version()}, "
        f"{platform.machine()}, {args.rounds} rounds x {n} frames, median"
    )
    print(f"telemetry frame on the wire: {frame_bytes} bytes (delimiter included)")
    print(f"{'operation':<26}{'frames/s':>12}{'us/frame':>10}{'x 115200':>10}{'x 921600':>10}")
    for name, rate in results.items():
        print(
            f"{name:<26}{rate:>12,.0f}{1e6 / rate:>10.2f}"
            f"{rate / line[115200]:>10.0f}{rate / line[921600]:>10.1f}"
        )
    for baud, fps in line.items():
        print(f"line limit at {baud} baud: {fps:,.0f} frames/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

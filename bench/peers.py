"""Codec throughput against pinned peers, pymavlink and pymodbus (issue 12, goal 1).

Usage: python -m bench.peers [--rounds N] [--frames N]

One process; in each round every candidate runs once, in the same order, and
the ratios are taken within the round; the figure is the median over rounds.
Candidates (messages per second):
- ours decode: `StreamDecoder` with a session (COBS, CRC-32, header, nonce and
  sequence checks, the typed `Telemetry`), fed one frame per call;
- ours decode + validation: the same, then `Snapshots.convert` (calibration,
  thermistor and pressure plausibility, the engineering-unit snapshot);
- ours receive path: decode + validation fed in 512-byte reads, compared with
  the frame rate of a 921600-baud line (8N1: 10 bits a byte) for the same frame;
- ours encode: `encode(ValveCommand)`, the frame of a command;
- pymavlink: MAVLink2 `parse_char` of SCALED_PRESSURE, one message per call
  (pure-Python parser, as pip installs it), and `command_long_encode().pack()`;
- pymodbus: `FramerRTU.handleFrame` of a 10-register read-holding-registers
  response (CRC-16, PDU decode).
Needs the `bench` extra (`pip install -e .[bench]`); without the peers the
goals that name them are reported as not measured.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

from drivers.snapshot import Snapshots
from drivers.thermistor import Thermistor
from protocols import StreamDecoder, Telemetry, ValveCommand, encode
from protocols.messages import Valve

NONCE = 0x5EED0001
TELEMETRY = Telemetry(123456, 31020, 10923, 64070, 0x33, 0, 0x01, 0, 250, 100, 100, 2, 0)
VALVE = ValveCommand(Valve.SUPPLY, True, 123656, 182000)
READ_SIZE = 512
LINE_BAUD = 921600


def _peers() -> dict[str, Any]:
    out: dict[str, Any] = {}
    try:
        import pymavlink  # type: ignore[import-untyped]
        from pymavlink.dialects.v20 import common as mavlink2  # type: ignore[import-untyped]

        out["mavlink"] = mavlink2
        out["pymavlink_version"] = getattr(pymavlink, "__version__", "?")
    except ImportError:
        pass
    try:
        import pymodbus
        from pymodbus.framer import FramerRTU
        from pymodbus.pdu import DecodePDU
        from pymodbus.pdu.register_message import ReadHoldingRegistersResponse

        out["modbus"] = (FramerRTU, DecodePDU, ReadHoldingRegistersResponse)
        out["pymodbus_version"] = pymodbus.__version__
    except ImportError:
        pass
    if "pymavlink_version" in out:
        from importlib.metadata import version

        out["pymavlink_version"] = version("pymavlink")
    return out


def candidates(n: int) -> tuple[dict[str, Callable[[], int]], dict[str, Any]]:
    """name -> a run of `n` messages (returns n); and facts about the frames."""
    frames = [encode(TELEMETRY._replace(device_ms=seq * 10), seq, NONCE) for seq in range(1, n + 1)]
    stream = b"".join(frames)
    chunks = [stream[i : i + READ_SIZE] for i in range(0, len(stream), READ_SIZE)]
    runs: dict[str, Callable[[], int]] = {}

    def decoder() -> StreamDecoder:
        d = StreamDecoder()
        d.start_session(NONCE, 0)
        return d

    def ours_decode() -> int:
        feed = decoder().feed
        got = 0
        for f in frames:
            got += len(feed(f))
        assert got == n
        return n

    def ours_validate() -> int:
        feed = decoder().feed
        convert = Snapshots(Thermistor(floor_c=-91.5)).convert
        got = 0
        for f in frames:
            for frame in feed(f):
                convert(frame.message, 0.0)  # type: ignore[arg-type]
                got += 1
        assert got == n
        return n

    def ours_receive() -> int:
        feed = decoder().feed
        convert = Snapshots(Thermistor(floor_c=-91.5)).convert
        got = 0
        for c in chunks:
            for frame in feed(c):
                convert(frame.message, 0.0)  # type: ignore[arg-type]
                got += 1
        assert got == n
        return n

    def ours_encode() -> int:
        for seq in range(n):
            encode(VALVE, seq, NONCE)
        return n

    runs.update(
        ours_decode=ours_decode,
        ours_validate=ours_validate,
        ours_receive=ours_receive,
        ours_encode=ours_encode,
    )
    peers = _peers()
    facts: dict[str, Any] = {"frame_len": len(frames[0])}
    if "mavlink" in peers:
        m2 = peers["mavlink"]
        facts["pymavlink"] = peers["pymavlink_version"]
        sender = m2.MAVLink(None)
        msgs = [
            m2.MAVLink_scaled_pressure_message(i * 10, 1013.25, 0.5, 2512, 0).pack(sender)
            for i in range(n)
        ]
        facts["mavlink_len"] = len(msgs[0])

        def mavlink_parse() -> int:
            mav = m2.MAVLink(None)
            parse = mav.parse_char
            got = 0
            for b in msgs:
                if parse(b) is not None:
                    got += 1
            assert got == n
            return n

        def mavlink_encode() -> int:
            mav = m2.MAVLink(None)
            for _ in range(n):
                mav.command_long_encode(1, 1, 400, 0, 1.0, 0, 0, 0, 0, 0, 0).pack(mav)
            return n

        runs.update(mavlink_parse=mavlink_parse, mavlink_encode=mavlink_encode)
    if "modbus" in peers:
        framer_cls, decode_pdu, response = peers["modbus"]
        facts["pymodbus"] = peers["pymodbus_version"]
        raw = framer_cls(decode_pdu(False)).buildFrame(
            response(registers=list(range(10)), dev_id=1)
        )
        facts["modbus_len"] = len(raw)

        def modbus_decode() -> int:
            handle = framer_cls(decode_pdu(False)).handleFrame
            got = 0
            for _ in range(n):
                if handle(raw, 0, 0)[1] is not None:
                    got += 1
            assert got == n
            return n

        runs["modbus_decode"] = modbus_decode
    return runs, facts


#: (goal text, numerator, denominator or None for the line rate, at least)
GOALS: list[tuple[str, str, str | None, float]] = [
    ("1. decode >= 8x pymavlink parse_char", "ours_decode", "mavlink_parse", 8.0),
    ("1. decode + validation >= 2x pymavlink parse", "ours_validate", "mavlink_parse", 2.0),
    ("1. decode + validation >= 3x pymodbus RTU decode", "ours_validate", "modbus_decode", 3.0),
    ("1. command encode >= 8x pymavlink encode+pack", "ours_encode", "mavlink_encode", 8.0),
    ("1. receive path >= 50x a 921600-baud line", "ours_receive", None, 50.0),
]


def measure(rounds: int, n: int) -> dict[str, Any]:
    runs, facts = candidates(n)
    for fn in runs.values():  # warm up
        fn()
    rates: dict[str, list[float]] = {k: [] for k in runs}
    for _ in range(rounds):
        for name, fn in runs.items():
            start = time.perf_counter()
            count = fn()
            rates[name].append(count / (time.perf_counter() - start))
    line_fps = LINE_BAUD / 10 / facts["frame_len"]
    ratios: dict[str, float | None] = {}
    for text, num, den, _ in GOALS:
        if num not in rates or (den is not None and den not in rates):
            ratios[text] = None
            continue
        per_round = [
            rates[num][i] / (rates[den][i] if den is not None else line_fps) for i in range(rounds)
        ]
        ratios[text] = statistics.median(per_round)
    return {
        "rates": {k: statistics.median(v) for k, v in rates.items()},
        "ratios": ratios,
        "facts": facts,
        "line_fps": line_fps,
        "rounds": rounds,
        "n": n,
    }


def goals(r: dict[str, Any]) -> list[tuple[str, str, bool | None]]:
    rows: list[tuple[str, str, bool | None]] = []
    for text, _, _, floor in GOALS:
        ratio = r["ratios"][text]
        if ratio is None:
            rows.append((text, "not measured (pip install -e .[bench])", None))
        else:
            rows.append((text, f"{ratio:.1f}x", ratio >= floor))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--frames", type=int, default=20_000, help="messages per run")
    args = parser.parse_args(argv)
    r = measure(args.rounds, args.frames)
    f = r["facts"]
    print(
        f"codec peers: {r['rounds']} interleaved rounds of {r['n']} messages, medians; "
        f"pymavlink {f.get('pymavlink', '-')}, pymodbus {f.get('pymodbus', '-')}"
    )
    for name, rate in r["rates"].items():
        print(f"  {name:15s} {rate:12,.0f} msg/s")
    print(f"  line: {r['line_fps']:,.0f} frames/s of {f['frame_len']} bytes at {LINE_BAUD} baud")
    for text, measured, ok in goals(r):
        verdict = "n/a" if ok is None else ("PASS" if ok else "FAIL")
        print(f"  {text}: {measured} {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

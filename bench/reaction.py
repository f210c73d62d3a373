"""Interlock reaction over a real pty pair, against the raw pty floor (issue 12, goal 2).

Usage: python -m bench.reaction [--trials N]

The daemon end is the real runtime (`console.runtime.Runtime` over
`drivers.transport.SerialTransport` on the pty's slave path), with the real
connection, controller, interlocks and procedure. The bench-only hook
(`_daemon_in_freeze`) starts it directly in a freeze: the same composition runs
the scripted operator in virtual time up to `freeze_1`, then the runtime takes
the same connection and controller over to the pty, its clock continuing from
the virtual one. Nothing in `console/` knows about the bench.

The peer (this process) streams telemetry with the session's nonce and
sequence numbers, acknowledges the daemon's commands, and per trial sends two
samples over 20 psig exhaust and then the deciding one (the third, 20 ms after
the first: SR-07's hold). Timings, all `time.perf_counter_ns`:
- in-daemon: from the return of the `os.read` that completes the deciding frame
  to the return of the `os.write` of the close (`SAFE_STATE`) frame; taken by
  a shim around `os` in pyserial's POSIX module, inside the daemon process;
- end to end: the peer's `os.write` of the deciding frame -> the return of the
  peer's `os.read` that completes the close frame;
- the floor: a bare `os.read`/`os.write` echo of a frame of the same size in
  another process over the same kind of pty pair, timed the same two ways.
Two modes, each `--trials` times: hot (frames back to back) and paced (1 ms
idle before the deciding frame). Between trials the bench re-arms SR-07 in the
daemon (the alarm is latched after the first trip; the close is what is timed).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import select
import statistics
import sys
import time
import tty
from dataclasses import dataclass
from multiprocessing.connection import Connection as Pipe
from typing import Any

from protocols import (
    Ack,
    Heartbeat,
    SafeState,
    StreamDecoder,
    Telemetry,
    encode,
)
from protocols.frontend import EXHAUST_CHANNEL
from protocols.messages import LAYOUT_BY_CLASS

OVER_PSI = 30.0
NORMAL_PSI = 8.0
MODES = ("hot", "paced")
PACE_S = 0.001


def _pct(values: list[int], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] / 1000.0  # us


@dataclass
class Figures:
    p50_us: float
    p99_us: float

    @classmethod
    def of(cls, values_ns: list[int]) -> Figures:
        return cls(_pct(values_ns, 0.50), _pct(values_ns, 0.99))


# --- the daemon -------------------------------------------------------------------------


class _OsShim:
    """Stands for `os` in pyserial's POSIX module: times each read's and write's return."""

    def __init__(self, real: Any) -> None:
        self._real = real
        self.reads: list[int] = []  # perf_counter_ns at the return of each non-empty read
        self.writes: list[tuple[int, int, bytes, bool]] = []  # (ns, last read ns, data, fast)
        self.fast: Any = lambda: False
        self.write_starts: list[int] = []
        #: (ns entering, ns leaving) the connection's fast path, for the breakdown.
        self.mark: list[int] = [0, 0]
        self.marks: list[tuple[int, ...]] = []

    def read(self, fd: int, n: int) -> bytes:
        data: bytes = self._real.read(fd, n)
        if data:
            self.reads.append(time.perf_counter_ns())
        return data

    def write(self, fd: int, data: Any) -> int:
        start = time.perf_counter_ns()
        written: int = self._real.write(fd, data)
        now = time.perf_counter_ns()
        self.writes.append((now, self.reads[-1] if self.reads else 0, bytes(data), self.fast()))
        self.write_starts.append(start)
        self.marks.append(tuple(self.mark))
        return written

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


def _daemon_in_freeze() -> Any:
    """Bench-only hook: the default composition driven in virtual time into `freeze1`."""
    from console.config import load_config
    from console.simulation import Simulation
    from simulator.device import SimConfig

    config = load_config(
        None,
        {
            "gas": "N2O",
            "procedure.profile": "bench",
            "procedure.cycles": 1,
            "procedure.freeze_s": 240.0,
            "procedure.thaw_s": 30.0,
        },
    )
    sim = Simulation(config, SimConfig(seed=0, gas="N2O"))
    captured: list[Telemetry] = []
    receive = sim.connection.link.receive

    def capture(data: bytes, now: float) -> Any:
        events = receive(data, now)
        captured.extend(e for e in events if type(e) is Telemetry)
        return events

    sim.connection.link.receive = capture  # type: ignore[method-assign]
    sim.runner.start()
    while str(sim.controller.procedure.state) != "freeze_1" or not (
        sim.connection.last is not None and sim.connection.last.supply_open
    ):
        sim.step()
        if sim.runner.now > 120.0:
            raise RuntimeError(f"never reached freeze1 (in {sim.controller.procedure.state})")
    for _ in range(50):  # half a second of freeze: the flow is established
        sim.step()
    sim.connection.link.receive = receive  # type: ignore[method-assign]
    return sim, captured[-1]


def _daemon(slave_path: str, pipe: Pipe, seconds: float) -> None:
    import serial.serialposix as posix

    from console.runtime import Runtime
    from drivers.transport import SerialTransport

    sim, last = _daemon_in_freeze()
    conn, ctl = sim.connection, sim.controller
    decoder = conn.link.decoder
    pipe.send((conn.link.session_nonce, decoder.last_seq, last))
    shim = _OsShim(os)
    shim.fast = lambda: conn.urgent is not None  # a write of the fast path's close
    receive, mark = conn.receive, shim.mark

    def timed_receive(data: bytes, now: float) -> Any:
        mark[0] = time.perf_counter_ns()
        out = receive(data, now)
        mark[1] = time.perf_counter_ns()
        return out

    conn.receive = timed_receive
    posix.os = shim  # type: ignore[attr-defined]
    transport = SerialTransport(slave_path, exclusive=False)
    offset = time.monotonic() - sim.runner.now
    runtime = Runtime(
        transport,
        conn,
        clock=lambda: time.monotonic() - offset,
        read_wait_s=0.002,
        on_snapshot=ctl.on_snapshot,
        on_notice=ctl.on_notice,
        take_output=ctl.take_output,
    )
    pipe.send("ready")
    interlocks = ctl.interlocks
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if pipe.poll():
            break
        runtime.step()
        ctl.tick(runtime.now())
        runtime.settle()
        # Bench-only: re-arm SR-07 so that the next trial decides again.
        interlocks._tripped.discard("ALM_EXHAUST_OVERPRESSURE")
    transport.close()
    posix.os = os  # type: ignore[attr-defined]
    closes, others = [], 0
    parts: list[tuple[int, int, int, int]] = []
    for i, (written_ns, read_ns, data, fast) in enumerate(shim.writes):
        if any(type(f.message) is SafeState for f in StreamDecoder().feed(data)):
            if fast:
                closes.append(written_ns - read_ns)
                start, (rx_in, rx_out) = shim.write_starts[i], shim.marks[i]
                parts.append((rx_in - read_ns, rx_out - rx_in, start - rx_out, written_ns - start))
            else:
                others += 1
    pipe.send((closes, others, parts))


# --- the echo ---------------------------------------------------------------------------


def _echo(slave_fd: int, pipe: Pipe, frame_len: int) -> None:
    times: list[int] = []
    pipe.send("ready")
    buf = b""
    while True:
        r, _, _ = select.select([slave_fd], [], [], 0.5)
        if not r:
            if pipe.poll():
                break
            continue
        data = os.read(slave_fd, 4096)
        t_read = time.perf_counter_ns()
        buf += data
        if b"\x00" in data and len(buf) >= frame_len:
            frame, _, buf = buf.partition(b"\x00")
            os.write(slave_fd, frame + b"\x00")
            times.append(time.perf_counter_ns() - t_read)
    pipe.send(times)


# --- the peer ---------------------------------------------------------------------------


class _Peer:
    def __init__(self, fd: int, nonce: int, seq: int, template: Telemetry) -> None:
        self.fd = fd
        self.nonce = nonce
        self.seq = seq
        self.t = template
        self.ms = template.device_ms
        self.decoder = StreamDecoder()
        self.acks: list[bytes] = []
        self.safe_seen = 0

    def frame(self, exhaust_psi: float) -> bytes:
        self.seq += 1
        self.ms += 10
        t = self.t._replace(
            device_ms=self.ms, exhaust_counts=EXHAUST_CHANNEL.psig_to_counts(exhaust_psi)
        )
        return encode(t, self.seq, self.nonce)

    def _ack_bytes(self) -> bytes:
        out = b"".join(self.acks)
        self.acks.clear()
        return out

    def write(self, data: bytes) -> None:
        os.write(self.fd, self._ack_bytes() + data)

    def drain(self, wait_s: float = 0.0) -> None:
        while select.select([self.fd], [], [], wait_s)[0]:
            self._take(os.read(self.fd, 4096))
            wait_s = 0.0

    def _take(self, data: bytes) -> bool:
        """Decode what the daemon wrote, acknowledge its commands; True if a close came."""
        closed = False
        for f in self.decoder.feed(data):
            m = f.message
            if type(m) is Heartbeat:
                continue
            self.seq += 1
            msg_type = LAYOUT_BY_CLASS[type(m)].msg_type
            self.acks.append(encode(Ack(f.seq, msg_type), self.seq, self.nonce))
            if type(m) is SafeState:
                closed = True
        return closed

    def until_close(self) -> int:
        while True:
            data = os.read(self.fd, 4096)
            t = time.perf_counter_ns()
            if self._take(data):
                return t


def _raw_pty() -> tuple[int, int, str]:
    master, slave = os.openpty()
    tty.setraw(master)
    tty.setraw(slave)
    return master, slave, os.ttyname(slave)


def measure(trials: int) -> dict[str, Any]:
    ctx = mp.get_context("fork")
    results: dict[str, Any] = {}
    # The daemon.
    master, slave, path = _raw_pty()
    here, there = ctx.Pipe()
    seconds = 600.0
    daemon = ctx.Process(target=_daemon, args=(path, there, seconds), daemon=True)
    daemon.start()
    nonce, seq, template = here.recv()
    assert here.recv() == "ready"
    peer = _Peer(master, nonce, seq, template)
    frame_len = len(peer.frame(NORMAL_PSI))
    e2e: dict[str, list[int]] = {m: [] for m in MODES}
    for _ in range(20):  # the runtime settles on the pty
        peer.write(peer.frame(NORMAL_PSI))
        peer.drain(0.01)
    for i in range(trials * 2):
        mode = MODES[i % 2]  # interleaved
        peer.write(peer.frame(NORMAL_PSI))
        peer.drain(0.002)
        peer.write(peer.frame(OVER_PSI))
        peer.write(peer.frame(OVER_PSI))
        if mode == "paced":
            peer.drain(PACE_S)
        deciding = peer.frame(OVER_PSI)
        acks = peer._ack_bytes()
        if acks:
            os.write(master, acks)
        t0 = time.perf_counter_ns()
        os.write(master, deciding)
        t1 = peer.until_close()
        e2e[mode].append(t1 - t0)
        peer.drain(0.001)
    here.send("stop")
    in_daemon, other_closes, parts = here.recv()
    daemon.join(10)
    os.close(master)
    os.close(slave)
    # The closes are in trial order, modes interleaved; extra closes (none expected) fail loud.
    if len(in_daemon) != 2 * trials:
        raise RuntimeError(f"{len(in_daemon)} closes for {2 * trials} trials")
    results["daemon_in"] = {m: Figures.of(in_daemon[k::2]) for k, m in enumerate(MODES)}
    results["daemon_e2e"] = {m: Figures.of(e2e[m]) for m in MODES}
    # The floor: a bare echo of the same frame size.
    master, slave, _ = _raw_pty()
    here, there = ctx.Pipe()
    echo = ctx.Process(target=_echo, args=(slave, there, frame_len), daemon=True)
    echo.start()
    assert here.recv() == "ready"
    echo_e2e: dict[str, list[int]] = {m: [] for m in MODES}
    frame = peer.frame(OVER_PSI)
    for i in range(trials * 2):
        mode = MODES[i % 2]
        if mode == "paced":
            time.sleep(PACE_S)
        t0 = time.perf_counter_ns()
        os.write(master, frame)
        got = b""
        while not got.endswith(b"\x00") or len(got) < len(frame):
            got += os.read(master, 4096)
        echo_e2e[mode].append(time.perf_counter_ns() - t0)
    here.send("stop")
    echo_in = here.recv()
    echo.join(10)
    os.close(master)
    os.close(slave)
    results["echo_in"] = {m: Figures.of(echo_in[k::2]) for k, m in enumerate(MODES)}
    results["echo_e2e"] = {m: Figures.of(echo_e2e[m]) for m in MODES}
    results["frame_len"] = frame_len
    results["other_closes"] = other_closes
    results["breakdown_us"] = {
        name: statistics.median(p[k] for p in parts) / 1000.0
        for k, name in enumerate(
            ("os.read -> fast path", "fast path (decode, rule, encode)", "-> os.write", "os.write")
        )
    }
    results["trials"] = trials
    return results


def goals(r: dict[str, Any]) -> list[tuple[str, str, bool]]:
    rows = []
    for m in MODES:
        d, e, x = r["daemon_in"][m], r["echo_e2e"][m], r["daemon_e2e"][m]
        ratio50, ratio99 = d.p50_us / e.p50_us, d.p99_us / e.p99_us
        rows.append(
            (
                f"2. reaction {m}: in-daemon p50, p99 <= 0.6x echo round trip",
                f"{d.p50_us:.0f}/{d.p99_us:.0f} us vs echo {e.p50_us:.0f}/{e.p99_us:.0f} us "
                f"= {ratio50:.2f}x/{ratio99:.2f}x",
                ratio50 <= 0.6 and ratio99 <= 0.6,
            )
        )
        ratio = x.p99_us / e.p99_us
        rows.append(
            (
                f"2. reaction {m}: end-to-end p99 <= 3x echo p99",
                f"{x.p99_us:.0f} us vs {e.p99_us:.0f} us = {ratio:.2f}x (p50 {x.p50_us:.0f} us)",
                ratio <= 3.0,
            )
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=2000, help="trials per mode")
    args = parser.parse_args(argv)
    r = measure(args.trials)
    print(
        f"pty reaction, {r['trials']} trials per mode, frame {r['frame_len']} bytes, "
        f"{r['other_closes']} safe states by the full path (not timed)"
    )
    for key in ("daemon_in", "daemon_e2e", "echo_in", "echo_e2e"):
        for m in MODES:
            f = r[key][m]
            print(f"  {key:11s} {m:6s} p50 {f.p50_us:8.1f} us  p99 {f.p99_us:8.1f} us")
    print(
        "  in-daemon breakdown, medians: "
        + ", ".join(f"{k} {v:.1f} us" for k, v in r["breakdown_us"].items())
    )
    for goal, measured, ok in goals(r):
        print(f"  {goal}: {measured} {'PASS' if ok else 'FAIL'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

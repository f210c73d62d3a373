"""The real-time shell around one `SimulatedDevice`: a pty or loopback TCP line, a control channel.

Everything else in `simulator/` is sans-I/O and runs in lockstep; this module is
the one place that owns a clock, sockets, a pty and threads, so that the same
device can also stand in for hardware behind a real serial URL (`probe-console
run --port /dev/pts/7` or `--port socket://127.0.0.1:40411`).

The loop is a single thread: it waits in `select` on the line, the control
connections and a wake-up socket for no longer than the time to the next
telemetry frame, lets the device's time catch up with `time.monotonic()`,
feeds it what the host wrote, and writes what it produced. Writes never block:
when nobody is connected or the peer does not read, the bytes are dropped, as
a real serial line drops them. The device keeps running between clients, so a
disconnect is exactly what link loss is to the firmware: its own 300 ms
watchdog (SR-02) takes the safe state.

Both listeners bind to 127.0.0.1 only, whatever the caller asks: the simulator
must never be reachable from the network.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import json
import math
import os
import queue
import selectors
import signal
import socket
import sys
import threading
import time
import tty
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from types import FrameType
from typing import Any, Final, Protocol, TypeVar

from simulator.device import SimulatedDevice
from simulator.faults import FAULTS, FaultSpecError, parse_fault

__all__ = [
    "LOOPBACK",
    "ControlChannel",
    "DeviceServer",
    "Line",
    "PtyLine",
    "TcpLine",
    "json_safe",
    "stop_on_signals",
]

LOOPBACK: Final = "127.0.0.1"
"""The only address the servers bind: no network exposure, ever."""

_READ_SIZE: Final = 65536
_MAX_LINE: Final = 4096
"""Longest control command; a longer line is answered `ERR` and discarded, never buffered."""
_MAX_CONTROL_OUT: Final = 1 << 20
"""A control client that lets this much output pile up is not reading: it is dropped."""
_MAX_CONTROL_CLIENTS: Final = 16

T = TypeVar("T")
Log = Callable[[str], None]


def _stderr_log(message: str) -> None:
    print(f"device-sim: {message}", file=sys.stderr, flush=True)


def json_safe(value: Any) -> Any:
    """`value` with every non-finite float replaced by None, so the JSON is strict.

    `json.dumps` would otherwise write `Infinity`/`NaN`, which strict parsers
    (and the console's own API, interfaces.md) reject.
    """
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value


# --- the device's line ---------------------------------------------------------------------


class Line(Protocol):
    """Where the host's bytes come from and the device's go: a pty or one TCP client.

    The server calls these from its one loop thread only.
    """

    @property
    def url(self) -> str:
        """The pyserial URL a client opens: a pty path or socket://127.0.0.1:PORT."""
        ...

    @property
    def client_connected(self) -> bool | None:
        """Whether a client is attached; None where the line cannot tell (a pty)."""
        ...

    def attach(self, selector: selectors.BaseSelector, on_data: Callable[[bytes], None]) -> None:
        """Register with the loop; `on_data` receives the host's bytes as they arrive."""
        ...

    def write(self, data: bytes) -> int:
        """Send without blocking; return how many bytes were dropped."""
        ...

    def close(self) -> None:
        """Release every descriptor. Idempotent."""
        ...


class PtyLine:
    """A pseudo-terminal: the client opens the slave's path like a USB serial port.

    The master is raw (no echo, no line editing, no CR/LF rewriting: the frames
    are binary) and non-blocking. The server keeps its own slave descriptor
    open for its whole life: otherwise a read on the master fails with EIO
    whenever no client has the slave open, and the path could disappear
    between clients. The price is that a pty cannot tell whether a client is
    attached; bytes written while nobody reads stay in the kernel's buffer
    until it is full and are then dropped (pyserial flushes them on open).
    """

    def __init__(self) -> None:
        master, slave = os.openpty()
        try:
            tty.setraw(master)
            tty.setraw(slave)
            os.set_blocking(master, False)
            self._url = os.ttyname(slave)
        except BaseException:
            os.close(master)
            os.close(slave)
            raise
        self._master: int | None = master
        self._slave: int | None = slave
        self._on_data: Callable[[bytes], None] | None = None

    @property
    def url(self) -> str:
        return self._url

    @property
    def client_connected(self) -> bool | None:
        return None

    def attach(self, selector: selectors.BaseSelector, on_data: Callable[[bytes], None]) -> None:
        assert self._master is not None, "the pty line is closed"
        self._on_data = on_data
        selector.register(self._master, selectors.EVENT_READ, self._readable)

    def _readable(self) -> None:
        if self._master is None:
            return
        try:
            data = os.read(self._master, _READ_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            if exc.errno == errno.EIO:  # no slave open at all; cannot happen while we hold one
                return
            raise
        if data and self._on_data is not None:
            self._on_data(data)

    def write(self, data: bytes) -> int:
        if self._master is None:
            return len(data)
        try:
            return len(data) - os.write(self._master, data)
        except (BlockingIOError, InterruptedError):
            return len(data)
        except OSError as exc:
            if exc.errno == errno.EIO:
                return len(data)
            raise

    def close(self) -> None:
        for fd in (self._master, self._slave):
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._master = self._slave = None


class TcpLine:
    """A loopback TCP port that takes ONE client at a time, like a serial line has one end.

    A second client while one is attached is accepted and closed at once (it
    sees end-of-file): the listening socket stays open, so the port number
    never changes and a reconnect after the first client leaves just works.
    A client leaving is link loss to the device, which keeps running.
    """

    def __init__(self, port: int = 0, *, log: Log = _stderr_log) -> None:
        self._log = log
        self._listener: socket.socket | None = socket.create_server((LOOPBACK, port), backlog=4)
        self._listener.setblocking(False)
        self._port: int = self._listener.getsockname()[1]
        self._client: socket.socket | None = None
        self._selector: selectors.BaseSelector | None = None
        self._on_data: Callable[[bytes], None] | None = None

    @property
    def port(self) -> int:
        return self._port

    @property
    def url(self) -> str:
        return f"socket://{LOOPBACK}:{self._port}"

    @property
    def client_connected(self) -> bool | None:
        return self._client is not None

    def attach(self, selector: selectors.BaseSelector, on_data: Callable[[bytes], None]) -> None:
        assert self._listener is not None, "the TCP line is closed"
        self._selector = selector
        self._on_data = on_data
        selector.register(self._listener, selectors.EVENT_READ, self._accept)

    def _accept(self) -> None:
        if self._listener is None:
            return
        try:
            conn, peer = self._listener.accept()
        except (BlockingIOError, InterruptedError, ConnectionAbortedError):
            return
        if self._client is not None and self._client_alive():
            # One end of a serial line has one partner: refuse, keep the current one.
            self._log(f"refused a second client from {peer[0]}:{peer[1]}: one client at a time")
            with contextlib.suppress(OSError):
                conn.close()
            return
        conn.setblocking(False)
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._client = conn
        if self._selector is not None:
            self._selector.register(conn, selectors.EVENT_READ, self._readable)
        self._log(f"client connected from {peer[0]}:{peer[1]}")

    def _client_alive(self) -> bool:
        """Whether the current client is still there, so a quick reconnect is never refused.

        The old client's end-of-file and the new client's connection can be
        reported by the same `select`; peeking settles which came first.
        """
        assert self._client is not None
        try:
            if self._client.recv(1, socket.MSG_PEEK):
                return True
        except (BlockingIOError, InterruptedError):
            return True
        except OSError:
            pass
        self._drop_client("client disconnected")
        return False

    def _readable(self) -> None:
        client = self._client
        if client is None:
            return
        try:
            data = client.recv(_READ_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self._drop_client(f"client connection failed: {exc}")
            return
        if not data:
            self._drop_client("client disconnected")
            return
        if self._on_data is not None:
            self._on_data(data)

    def _drop_client(self, why: str) -> None:
        client = self._client
        if client is None:
            return
        self._client = None
        if self._selector is not None:
            with contextlib.suppress(KeyError, ValueError):
                self._selector.unregister(client)
        with contextlib.suppress(OSError):
            client.close()
        self._log(f"{why}; the device runs on, its watchdog sees link loss")

    def write(self, data: bytes) -> int:
        client = self._client
        if client is None:
            return len(data)
        try:
            return len(data) - client.send(data)
        except (BlockingIOError, InterruptedError):
            return len(data)
        except OSError as exc:
            self._drop_client(f"client connection failed: {exc}")
            return len(data)

    def close(self) -> None:
        if self._client is not None:
            with contextlib.suppress(OSError):
                self._client.close()
            self._client = None
        if self._listener is not None:
            with contextlib.suppress(OSError):
                self._listener.close()
            self._listener = None


# --- the control channel --------------------------------------------------------------------


@dataclasses.dataclass(slots=True)
class _ControlClient:
    sock: socket.socket
    inbox: bytearray = dataclasses.field(default_factory=bytearray)
    outbox: bytearray = dataclasses.field(default_factory=bytearray)
    discarding: bool = False  # inside an over-long line: skip to its end


_HELP: Final = (
    "OK commands (one per line, one answer line each): "
    "<fault spec> -> OK <id> | ERR <reason> (NAME[:key=value,...][@WHEN], "
    "without @ it applies now); CLEAR <id> -> OK | ERR; "
    "STATUS -> one JSON line; FAULTS -> one JSON line of fault starts and ends; HELP. "
    "Faults: " + ", ".join(FAULTS)
)


class ControlChannel:
    """A loopback TCP line protocol for test tools: inject and clear faults, read the truth.

    Several clients may connect. Each line is one command and gets exactly one
    answer line; whatever a client sends (binary, over-long lines, unknown
    words) is answered `ERR ...` and never stops the server.
    """

    def __init__(self, port: int = 0, *, log: Log = _stderr_log) -> None:
        self._log = log
        self._listener: socket.socket | None = socket.create_server((LOOPBACK, port), backlog=8)
        self._listener.setblocking(False)
        self._port: int = self._listener.getsockname()[1]
        self._clients: dict[socket.socket, _ControlClient] = {}
        self._selector: selectors.BaseSelector | None = None
        self._execute: Callable[[str], str] | None = None

    @property
    def port(self) -> int:
        return self._port

    @property
    def url(self) -> str:
        return f"tcp://{LOOPBACK}:{self._port}"

    def attach(self, selector: selectors.BaseSelector, execute: Callable[[str], str]) -> None:
        assert self._listener is not None, "the control channel is closed"
        self._selector = selector
        self._execute = execute
        selector.register(self._listener, selectors.EVENT_READ, self._accept)

    def _accept(self) -> None:
        if self._listener is None or self._selector is None:
            return
        try:
            conn, _peer = self._listener.accept()
        except (BlockingIOError, InterruptedError, ConnectionAbortedError):
            return
        if len(self._clients) >= _MAX_CONTROL_CLIENTS:
            with contextlib.suppress(OSError):
                conn.sendall(b"ERR too many control clients\n")
                conn.close()
            return
        conn.setblocking(False)
        client = _ControlClient(conn)
        self._clients[conn] = client
        self._selector.register(conn, selectors.EVENT_READ, lambda: self._readable(client))

    def _readable(self, client: _ControlClient) -> None:
        try:
            data = client.sock.recv(_READ_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._drop(client)
            return
        if not data:
            self._drop(client)
            return
        client.inbox += data
        while True:
            end = client.inbox.find(b"\n")
            if end < 0:
                break
            line = bytes(client.inbox[:end])
            del client.inbox[: end + 1]
            if client.discarding:
                client.discarding = False
                continue
            if len(line) > _MAX_LINE:
                self._answer(client, f"ERR line longer than {_MAX_LINE} bytes; ignored")
                continue
            self._answer(client, self._run(line))
        if len(client.inbox) > _MAX_LINE:
            client.inbox.clear()
            if not client.discarding:
                client.discarding = True
                self._answer(client, f"ERR line longer than {_MAX_LINE} bytes; ignored")
        self._flush(client)

    def _run(self, raw: bytes) -> str:
        try:
            line = raw.decode("utf-8").strip()
        except UnicodeDecodeError:
            return "ERR not UTF-8 text; HELP lists the commands"
        if self._execute is None:
            return "ERR not running"
        try:
            return self._execute(line)
        except Exception as exc:  # a bad command must never stop the device
            self._log(f"control command {line!r} failed: {exc!r}")
            return f"ERR internal error: {type(exc).__name__}: {exc}".replace("\n", " ")

    def _answer(self, client: _ControlClient, answer: str) -> None:
        client.outbox += answer.replace("\n", " ").encode("utf-8") + b"\n"

    def _flush(self, client: _ControlClient) -> None:
        if client.outbox:
            try:
                sent = client.sock.send(client.outbox)
            except (BlockingIOError, InterruptedError):
                sent = 0
            except OSError:
                self._drop(client)
                return
            del client.outbox[:sent]
        if len(client.outbox) > _MAX_CONTROL_OUT:
            self._log("dropped a control client that does not read its answers")
            self._drop(client)
            return
        if self._selector is not None and client.sock in self._clients:
            events = selectors.EVENT_READ | (selectors.EVENT_WRITE if client.outbox else 0)
            key = self._selector.get_key(client.sock)
            if key.events != events:
                self._selector.modify(client.sock, events, self._handler(client, events))

    def _handler(self, client: _ControlClient, events: int) -> Callable[[], None]:
        if events & selectors.EVENT_WRITE:

            def both() -> None:
                self._flush(client)
                if client.sock in self._clients:
                    self._readable(client)

            return both
        return lambda: self._readable(client)

    def _drop(self, client: _ControlClient) -> None:
        if self._clients.pop(client.sock, None) is None:
            return
        if self._selector is not None:
            with contextlib.suppress(KeyError, ValueError):
                self._selector.unregister(client.sock)
        with contextlib.suppress(OSError):
            client.sock.close()

    def close(self) -> None:
        for client in list(self._clients.values()):
            self._drop(client)
        if self._listener is not None:
            with contextlib.suppress(OSError):
                self._listener.close()
            self._listener = None


# --- the loop -------------------------------------------------------------------------------


class DeviceServer:
    """Drives one `SimulatedDevice` from the monotonic clock behind a `Line`.

    `serve_forever()` runs the loop in the calling thread until `stop()`;
    `start()` runs it in a background thread (tests). The device is not
    thread-safe: while the loop runs, touch it only through `call()`, which
    runs a function in the loop's thread.
    """

    def __init__(
        self,
        device: SimulatedDevice,
        line: Line,
        control: ControlChannel | None = None,
        *,
        log: Log = _stderr_log,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.device = device
        self.line = line
        self.control = control
        self._log = log
        self._clock = clock
        self._period_s = 1.0 / device.config.telemetry_hz
        self._selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._stopping = False
        self._closed = False
        self._calls: queue.SimpleQueue[tuple[Callable[[SimulatedDevice], Any], Future[Any]]] = (
            queue.SimpleQueue()
        )
        self._thread: threading.Thread | None = None
        self.error: BaseException | None = None
        """What ended a background loop, if it was not `stop()`."""
        self.tx_dropped_bytes = 0
        """Device bytes lost because no client was reading, as on a real line."""
        self._selector.register(self._wake_r, selectors.EVENT_READ, self._drain_wake)
        line.attach(self._selector, device.receive)
        if control is not None:
            control.attach(self._selector, self.execute)

    # --- running and stopping ------------------------------------------------------------

    def serve_forever(self) -> None:
        """Run the device in real time until `stop()`; then close everything."""
        device = self.device
        line = self.line
        period = self._period_s
        last = self._clock()
        try:
            while not self._stopping:
                # Wake for the next telemetry frame (or sooner), never later than one period.
                due = device.next_deadline_s() - device.now_s
                events = self._selector.select(min(period, max(0.0, due)))
                now = self._clock()
                if now > last:
                    # Time first: bytes that arrived are received at the device's "now".
                    device.advance(now - last)
                    last = now
                for key, _mask in events:
                    key.data()
                self._run_calls()
                out = device.transmit()
                if out:
                    self.tx_dropped_bytes += line.write(out)
        finally:
            self.close()

    def start(self) -> threading.Thread:
        """Run `serve_forever()` in a daemon thread; `stop()` ends it."""
        if self._thread is not None:
            raise RuntimeError("the server is already running")

        def run() -> None:
            try:
                self.serve_forever()
            except BaseException as exc:
                self.error = exc
                self._log(f"server loop failed: {exc!r}")

        self._thread = threading.Thread(target=run, name=f"device-sim {self.line.url}", daemon=True)
        self._thread.start()
        return self._thread

    def stop(self, timeout_s: float | None = 5.0) -> None:
        """Ask the loop to end; safe from any thread and from a signal handler.

        From another thread it also waits (up to `timeout_s`) for a background
        loop started with `start()` to finish.
        """
        self._stopping = True
        with contextlib.suppress(OSError):
            self._wake_w.send(b"\x00")
        thread = self._thread
        if thread is not None and thread is not threading.current_thread() and timeout_s:
            thread.join(timeout_s)

    def close(self) -> None:
        """Close the line, the control channel and the loop's own sockets. Idempotent.

        Called from outside a running background loop, it stops the loop
        instead and lets the loop close what it is using.
        """
        if self._closed:
            return
        thread = self._thread
        if thread is not None and thread.is_alive() and thread is not threading.current_thread():
            self.stop()
            return
        self._closed = True
        self._stopping = True
        self.line.close()
        if self.control is not None:
            self.control.close()
        self._selector.close()
        self._wake_r.close()
        self._wake_w.close()
        while True:
            try:
                _fn, future = self._calls.get_nowait()
            except queue.Empty:
                break
            future.cancel()

    def __enter__(self) -> DeviceServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
        self.close()

    def _drain_wake(self) -> None:
        with contextlib.suppress(OSError):
            self._wake_r.recv(4096)

    # --- the device, from other threads -------------------------------------------------------

    def call(self, fn: Callable[[SimulatedDevice], T], timeout_s: float = 5.0) -> T:
        """Run `fn(device)` in the loop's thread and return its result (tests, tools)."""
        future: Future[T] = Future()
        self._calls.put((fn, future))
        with contextlib.suppress(OSError):
            self._wake_w.send(b"\x00")
        return future.result(timeout_s)

    def _run_calls(self) -> None:
        while True:
            try:
                fn, future = self._calls.get_nowait()
            except queue.Empty:
                return
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(fn(self.device))
            except BaseException as exc:
                future.set_exception(exc)

    # --- control commands -------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        """`STATUS`: the device's own status plus what the server knows about the line."""
        status = self.device.status()
        status["server"] = {
            "url": self.line.url,
            "client_connected": self.line.client_connected,
            "tx_dropped_bytes": self.tx_dropped_bytes,
        }
        return status

    def execute(self, line: str) -> str:
        """One control command -> its one answer line. Raises nothing for bad input."""
        word, _, rest = line.strip().partition(" ")
        command = word.upper()
        rest = rest.strip()
        if not word:
            return "ERR empty line; HELP lists the commands"
        if command == "HELP" and not rest:
            return _HELP
        if command == "STATUS" and not rest:
            return json.dumps(json_safe(self.status()), allow_nan=False)
        if command == "FAULTS" and not rest:
            events = [
                {
                    "t_s": round(e.t_s, 3),
                    "id": e.fault_id,
                    "spec": e.spec,
                    "started": e.started,
                }
                for e in self.device.fault_events
            ]
            return json.dumps(json_safe(events), allow_nan=False)
        if command == "CLEAR":
            try:
                fault_id = int(rest)
            except ValueError:
                return f"ERR CLEAR takes a fault id (the number OK answered), got {rest!r}"
            if self.device.clear(fault_id):
                return "OK"
            return f"ERR no pending or active fault with id {fault_id}"
        if command in ("HELP", "STATUS", "FAULTS"):
            return f"ERR {command} takes no arguments"
        return self._inject(line.strip())

    def _inject(self, text: str) -> str:
        try:
            spec = parse_fault(text)
        except FaultSpecError as exc:
            return f"ERR {exc}"
        try:
            # "Without @ it applies now": a duration then counts from now, not from the start.
            fault_id = self.device.inject(spec) if "@" in text else self.device.inject_now(spec)
        except ValueError as exc:
            return f"ERR {exc}"
        self._log(f"fault {fault_id} injected: {spec}")
        return f"OK {fault_id}"


@contextlib.contextmanager
def stop_on_signals(
    server: DeviceServer, signals: tuple[signal.Signals, ...] = (signal.SIGTERM, signal.SIGINT)
) -> Iterator[None]:
    """Make SIGTERM and SIGINT end `serve_forever()` cleanly (main thread only).

    The handler only sets a flag and wakes the loop, so the loop closes its
    sockets itself and the process exits 0 rather than dying mid-write.
    """

    def handler(signum: int, _frame: FrameType | None) -> None:
        server.stop(timeout_s=None)

    previous = {sig: signal.signal(sig, handler) for sig in signals}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)

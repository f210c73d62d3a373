"""Byte transports: the one place where `drivers` touches a port.

Everything above this module (the link, the device drivers, the runtime) sees
a `Transport`: "give me the bytes that are here, waiting at most this long",
"send these bytes", "close". Keeping that surface this small is what lets the
same link code run over a USB serial adapter, a pty to the simulator, a TCP
socket, pyserial's `loop://`, and an in-process `MemoryTransport` pair in
virtual time.

`read()` hands back whatever has arrived, never one byte at a time and never a
fixed count: the framing layer (`protocols/`) reassembles frames from arbitrary
chunks, and per-byte reads would cost a syscall and a Python call per byte on
the per-sample budget.

There is deliberately no fallback: `open_transport()` opens the port it was
given or raises `TransportError`. A device that fails to open must never
quietly become a simulator.
"""

from __future__ import annotations

import contextlib
import errno
import os
import queue
import select
from collections.abc import Callable
from types import TracebackType
from typing import Protocol, Self, runtime_checkable

import serial

from drivers.errors import PortBusyError, TransportError

__all__ = [
    "MemoryTransport",
    "SerialTransport",
    "Transport",
    "WireHook",
    "memory_pair",
    "open_transport",
]

# Upper bound for one non-blocking read when the driver cannot say how much is
# waiting (pyserial's socket:// reports in_waiting as 0 or 1, not a count).
_READ_CHUNK = 4096

# A write that cannot complete within this time means the device is not taking
# data (hardware flow control held, adapter wedged). The control thread must
# not block forever on it: it has a valve to close.
_DEFAULT_WRITE_TIMEOUT_S = 1.0

_URL_HINT = "check the port path (/dev/ttyUSB0, a pty path) or use socket://host:port"


@runtime_checkable
class Transport(Protocol):
    """A bidirectional byte stream to one device.

    Not thread-safe: it belongs to the one control thread (see DESIGN.md).
    """

    @property
    def url(self) -> str:
        """Where the bytes go, as the user wrote it; for messages and records."""
        ...

    def read(self, max_wait_s: float) -> bytes:
        """Return the bytes available now; if none, wait up to `max_wait_s` for some.

        Returns b"" when nothing arrived in time: silence is a normal reading
        for the link's health, not an error. Raises `TransportError` only when
        the port itself failed.
        """
        ...

    def write(self, data: bytes) -> None:
        """Send all of `data` or raise `TransportError`."""
        ...

    def close(self) -> None:
        """Release the port. Safe to call more than once, and never raises."""
        ...

    def __enter__(self) -> Self: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


# --------------------------------------------------------------------------
# pyserial


def _os_detail(exc: BaseException) -> str:
    """A short "[Errno N] reason" where one exists.

    pyserial's own texts repeat the port name and the errno twice, or wrap the
    OSError that says what happened (socket://, read failures); the user gets
    the port name once, from us, and the reason.
    """
    for candidate in (exc, exc.__context__):
        if not isinstance(candidate, OSError) or not isinstance(candidate.errno, int):
            continue
        if isinstance(candidate, serial.SerialException) or not candidate.strerror:
            return f"[Errno {candidate.errno}] {os.strerror(candidate.errno)}"
        # e.g. socket.gaierror, whose errno is not an errno and os.strerror cannot name
        return f"[Errno {candidate.errno}] {candidate.strerror}"
    return str(exc)


def _open_error(url: str, exc: BaseException) -> TransportError:
    """Translate a failed open into what the user can do about it."""
    text = str(exc)
    code = getattr(exc, "errno", None)
    if "Could not exclusively lock port" in text:
        return PortBusyError(
            f"cannot open {url}: another process holds its exclusive lock "
            f"({_os_detail(exc)}); stop the other probe-console instance or program "
            "using the port, then retry",
            url=url,
        )
    if code == errno.EBUSY:
        return PortBusyError(
            f"cannot open {url}: {_os_detail(exc)}; another program has the device "
            "open exclusively (e.g. a terminal program or ModemManager): close it, then retry",
            url=url,
        )
    if code in (errno.EACCES, errno.EPERM):
        return TransportError(
            f"cannot open {url}: {_os_detail(exc)}; add your user to the group that owns "
            "the device (often 'dialout') and log in again",
            url=url,
        )
    if isinstance(exc, ValueError):
        # pyserial raises ValueError for an unknown URL scheme and for bad settings.
        return TransportError(
            f"cannot open {url}: {exc}; {_URL_HINT}, and check the baud rate", url=url
        )
    if url.lower().startswith("socket://"):
        return TransportError(
            f"cannot open {url}: {_os_detail(exc)}; check the host and port "
            "(socket://host:port) and that the device server is listening there",
            url=url,
        )
    return TransportError(f"cannot open {url}: {_os_detail(exc)}; {_URL_HINT}", url=url)


class SerialTransport:
    """A pyserial port opened by URL: a device path, a pty path, socket://, loop://.

    `exclusive=True` asks pyserial to take a non-blocking `flock(LOCK_EX)` on
    device and pty paths (SR-27). That lock is advisory: it stops a second
    probe-console (or any program that also locks), not a `cat` or `screen`
    that opens the port without locking; and a second pyserial user that opens
    it without `exclusive` silently discards the owner's pending input (its
    open() flushes the tty). SR-27's per-port lock file in the runtime is still
    needed on top. pyserial's socket:// and loop:// classes store the flag and
    ignore it, so passing it there is harmless.

    The port timeout is kept at 0 (non-blocking) and raised to `max_wait_s`
    only while waiting for the first byte of an idle read; on a POSIX port
    each timeout change costs a `flock` and a `tcgetattr` (pyserial
    reconfigures the port), so the busy path, where bytes are already waiting,
    never changes it.
    """

    __slots__ = ("_closed", "_fd", "_port", "_timeout_s", "_url", "_write_timeout_s")

    def __init__(
        self,
        url: str,
        baudrate: int = 115200,
        *,
        exclusive: bool = True,
        write_timeout_s: float = _DEFAULT_WRITE_TIMEOUT_S,
    ) -> None:
        self._url = url
        self._write_timeout_s = write_timeout_s
        self._closed = True
        try:
            self._port = serial.serial_for_url(
                url,
                baudrate=baudrate,
                timeout=0,
                write_timeout=write_timeout_s,
                # None, not False: pyserial's False means "flock(LOCK_UN) on every
                # reconfigure", None means "leave locks alone".
                exclusive=True if exclusive else None,
            )
        except (OSError, ValueError) as exc:  # serial.SerialException is an OSError
            raise _open_error(url, exc) from exc
        self._timeout_s: float = 0.0
        # A POSIX port (device or pty path) is waited on with select() on its descriptor,
        # its timeout left at 0: no reconfiguration per idle read (issue 12: that was a
        # fifth of `run`'s CPU time at 100 Hz). socket:// and loop:// keep the timeout.
        fd = getattr(self._port, "fd", None)
        self._fd: int | None = fd if isinstance(fd, int) else None
        self._closed = False

    @property
    def url(self) -> str:
        return self._url

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"SerialTransport({self._url!r}, {state})"

    def _set_timeout(self, timeout_s: float) -> None:
        if timeout_s != self._timeout_s:
            # Record first: if pyserial fails half-way, the next call retries.
            self._timeout_s = -1.0
            self._port.timeout = timeout_s
            self._timeout_s = timeout_s

    def read(self, max_wait_s: float) -> bytes:
        if self._closed:
            raise TransportError(f"{self._url} is closed; open it again", url=self._url)
        port = self._port
        try:
            if self._fd is not None:
                wait = max_wait_s if max_wait_s > 0 else 0.0  # also catches NaN
                if not select.select((self._fd,), (), (), wait)[0]:
                    return b""
                # Timeout 0: one select and one read, returns what is there.
                return port.read(max(port.in_waiting, _READ_CHUNK))
            self._set_timeout(0.0)
            waiting = port.in_waiting
            if waiting:
                # Timeout 0: one select and one read, returns what is there.
                return port.read(max(waiting, _READ_CHUNK))
            if not max_wait_s > 0:  # also catches NaN
                return b""
            self._set_timeout(max_wait_s)
            # pyserial returns short (here: empty) data on timeout; that is the
            # "nothing arrived" answer, not an error.
            first = port.read(1)
            self._set_timeout(0.0)
            if not first:
                return b""
            return first + port.read(max(port.in_waiting, _READ_CHUNK))
        except OSError as exc:  # serial.SerialException is an OSError
            raise TransportError(
                f"reading {self._url} failed: {_os_detail(exc)}; "
                "the device was unplugged, powered off or its server stopped: "
                "check the connection and reconnect",
                url=self._url,
            ) from exc

    def write(self, data: bytes) -> None:
        if self._closed:
            raise TransportError(f"{self._url} is closed; open it again", url=self._url)
        try:
            written = self._port.write(data)
        except serial.SerialTimeoutException as exc:
            raise TransportError(
                f"writing {len(data)} bytes to {self._url} timed out after "
                f"{self._write_timeout_s} s: the device is not taking data "
                "(flow control held, adapter or device hung); check it and reconnect",
                url=self._url,
            ) from exc
        except queue.Full as exc:
            # Only pyserial's loop://, whose buffer holds 4096 bytes.
            raise TransportError(
                f"writing to {self._url} failed: its buffer is full; read before writing more",
                url=self._url,
            ) from exc
        except OSError as exc:  # serial.SerialException is an OSError
            raise TransportError(
                f"writing to {self._url} failed: {_os_detail(exc)}; "
                "the device was unplugged, powered off or its server stopped: "
                "check the connection and reconnect",
                url=self._url,
            ) from exc
        if written is not None and written != len(data):
            raise TransportError(
                f"writing to {self._url} was cut short: {written} of {len(data)} bytes sent; "
                "reconnect",
                url=self._url,
            )

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        # Closing happens on the fail-safe paths; a port that is already gone has
        # nothing left to release. (pyserial's socket:// close() sleeps 0.3 s.)
        with contextlib.suppress(OSError):
            self._port.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def open_transport(url: str, baudrate: int = 115200) -> Transport:
    """Open the port the user named, exclusively, or raise `TransportError`.

    The single entry point the CLI uses for `--port URL`. It only ever returns
    a `SerialTransport`: there is no fallback to a simulator or anything else
    when the port is missing, busy or refuses the connection.
    """
    return SerialTransport(url, baudrate, exclusive=True)


# --------------------------------------------------------------------------
# in-process null modem

WireHook = Callable[[bytes], bytes]
"""Rewrites the bytes one end writes before the peer sees them: return them
unchanged, altered (bit errors), shortened (a split: keep the rest and return
it on a later call) or b"" (dropped)."""


class _Cable:
    """The state both ends share: whether the pair is still connected."""

    __slots__ = ("connected",)

    def __init__(self) -> None:
        self.connected = True


class MemoryTransport:
    """One end of an in-process null modem, for sans-I/O tests in virtual time.

    `read()` never waits, whatever `max_wait_s` says: in virtual time the test
    decides when bytes arrive, so a wait could only be a real-time stall.
    `on_write` injects wire-level faults on the bytes this end sends, the way
    pymodbus's null modem does; `inject()` puts bytes on the wire towards this
    end directly (garbage, the delayed rest of a split). Closing either end
    unplugs the cable: the other end can still read what had already arrived,
    but writing from either end raises `TransportError`.

    Not thread-safe, by design: one control thread.
    """

    __slots__ = ("_cable", "_closed", "_inbox", "_peer", "_url", "on_write")

    def __init__(self, url: str, cable: _Cable, on_write: WireHook | None = None) -> None:
        self._url = url
        self._cable = cable
        self._inbox = bytearray()
        self._peer: MemoryTransport | None = None
        self._closed = False
        self.on_write = on_write

    @property
    def url(self) -> str:
        return self._url

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"MemoryTransport({self._url!r}, {state}, {len(self._inbox)} bytes waiting)"

    def read(self, max_wait_s: float = 0.0) -> bytes:
        if self._closed:
            raise TransportError(f"{self._url} is closed; open a new pair", url=self._url)
        if not self._inbox:
            return b""
        data = bytes(self._inbox)
        self._inbox.clear()
        return data

    def write(self, data: bytes) -> None:
        if self._closed:
            raise TransportError(f"{self._url} is closed; open a new pair", url=self._url)
        if not self._cable.connected or self._peer is None:
            raise TransportError(
                f"writing to {self._url} failed: the other end closed the pair",
                url=self._url,
            )
        hook = self.on_write
        self._peer._inbox += hook(bytes(data)) if hook is not None else data

    def inject(self, data: bytes) -> None:
        """Make `data` arrive at this end as if it came over the wire, unhooked."""
        if self._closed:
            raise TransportError(f"{self._url} is closed; open a new pair", url=self._url)
        self._inbox += data

    def close(self) -> None:
        self._closed = True
        self._cable.connected = False

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def memory_pair(
    *,
    on_write_a: WireHook | None = None,
    on_write_b: WireHook | None = None,
) -> tuple[MemoryTransport, MemoryTransport]:
    """Two connected ends: what one writes, the other reads.

    By convention the first end is the daemon's and the second the device's.
    Each hook applies to the bytes its own end writes.
    """
    cable = _Cable()
    a = MemoryTransport("memory://a", cable, on_write_a)
    b = MemoryTransport("memory://b", cable, on_write_b)
    a._peer = b
    b._peer = a
    return a, b

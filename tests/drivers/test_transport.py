"""Transports: the in-memory null modem, and pyserial over a real pty, a TCP
socket and loop://.

Every wait is bounded: reads use small `max_wait_s` values inside loops with a
deadline, sockets have timeouts, and the pty master is read through select().
"""

from __future__ import annotations

import errno
import os
import select
import socket
import time
import tty
from collections.abc import Callable, Iterator

import pytest
import serial

from drivers.errors import DriverError, PortBusyError, TransportError
from drivers.transport import (
    MemoryTransport,
    SerialTransport,
    Transport,
    memory_pair,
    open_transport,
)

DEADLINE_S = 5.0
POLL_S = 0.05

ALL_BYTES = bytes(range(256))
# Frame-like byte strings: 0x00 delimiters, and the bytes a cooked tty would
# eat or rewrite (CR, LF, ^C, ^D, ^Q, ^S, ^Z, DEL, ^\, ^U, ^W, ^V).
FRAMES = [
    b"\x00" + ALL_BYTES + b"\x00",
    b"\x00\x00\x00",
    b"\x01\x0d\x0a\x0d\x00",
    b"\x03\x04\x11\x13\x1a\x7f\x1c\x15\x17\x16\x00",
    bytes(reversed(ALL_BYTES)) + b"\x00",
    b"\xff" * 64 + b"\x00",
]
STREAM = b"".join(FRAMES)


def read_at_least(transport: Transport, count: int) -> tuple[bytes, int]:
    """Read until `count` bytes have arrived; returns them and the number of non-empty reads."""
    got = bytearray()
    reads = 0
    deadline = time.monotonic() + DEADLINE_S
    while len(got) < count and time.monotonic() < deadline:
        chunk = transport.read(POLL_S)
        if chunk:
            reads += 1
            got += chunk
    return bytes(got), reads


def fd_read_at_least(fd: int, count: int) -> bytes:
    got = bytearray()
    deadline = time.monotonic() + DEADLINE_S
    while len(got) < count and time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], POLL_S)
        if ready:
            got += os.read(fd, 65536)
    return bytes(got)


def sock_read_at_least(conn: socket.socket, count: int) -> bytes:
    got = bytearray()
    deadline = time.monotonic() + DEADLINE_S
    while len(got) < count and time.monotonic() < deadline:
        try:
            chunk = conn.recv(65536)
        except TimeoutError:
            continue
        if not chunk:
            break
        got += chunk
    return bytes(got)


# --------------------------------------------------------------------------
# in-memory null modem


def test_memory_pair_carries_bytes_both_ways() -> None:
    host, device = memory_pair()
    host.write(b"\x00command\x00")
    device.write(ALL_BYTES)
    assert device.read(0.0) == b"\x00command\x00"
    assert host.read(0.0) == ALL_BYTES
    assert host.read(0.0) == b""
    assert device.read(0.0) == b""


def test_memory_chunks_arrive_in_order_and_read_returns_all_queued() -> None:
    host, device = memory_pair()
    for frame in FRAMES:
        device.write(frame)
    assert host.read(0.0) == STREAM
    device.write(b"a")
    device.write(b"b")
    assert host.read(0.0) == b"ab"


def test_memory_read_never_waits() -> None:
    host, _device = memory_pair()
    started = time.monotonic()
    assert host.read(30.0) == b""
    assert time.monotonic() - started < 1.0


def test_memory_write_copies_the_callers_buffer() -> None:
    host, device = memory_pair()
    buf = bytearray(b"abc")
    host.write(bytes(buf))
    buf[0] = 0x7A
    assert device.read(0.0) == b"abc"


def test_on_write_hook_can_split_a_frame_across_reads() -> None:
    held = bytearray()

    def split_in_half(data: bytes) -> bytes:
        """Deliver what was held back plus the first half; hold the second half."""
        out = bytes(held) + data[: len(data) // 2]
        held[:] = data[len(data) // 2 :]
        return out

    host, device = memory_pair(on_write_b=split_in_half)
    frame = FRAMES[0]
    device.write(frame)
    first = host.read(0.0)
    assert first == frame[: len(frame) // 2]
    device.write(b"")  # the next write releases the held half
    assert first + host.read(0.0) == frame


def test_on_write_hook_can_corrupt_bytes() -> None:
    def flip_bit(data: bytes) -> bytes:
        return bytes([data[0] ^ 0x01]) + data[1:]

    host, device = memory_pair()
    device.on_write = flip_bit
    device.write(b"\x10\x20")
    assert host.read(0.0) == b"\x11\x20"
    device.on_write = None
    device.write(b"\x10\x20")
    assert host.read(0.0) == b"\x10\x20"


def test_on_write_hook_can_drop_bytes_one_direction_only() -> None:
    host, device = memory_pair(on_write_a=lambda data: b"")
    host.write(b"lost")
    device.write(b"kept")
    assert device.read(0.0) == b""
    assert host.read(0.0) == b"kept"


def test_inject_delivers_bytes_to_that_end_without_hooks() -> None:
    host, device = memory_pair(on_write_b=lambda data: b"")
    host.inject(b"\xde\xad")
    device.write(b"dropped")
    assert host.read(0.0) == b"\xde\xad"


def test_memory_close_unplugs_both_ends() -> None:
    host, device = memory_pair()
    device.write(b"before")
    device.close()
    device.close()  # idempotent
    assert host.read(0.0) == b"before"  # what arrived before the unplug is still there
    assert host.read(0.0) == b""
    with pytest.raises(TransportError, match="other end closed"):
        host.write(b"x")
    with pytest.raises(TransportError, match="memory://b is closed"):
        device.write(b"x")
    with pytest.raises(TransportError, match="closed"):
        device.read(0.0)
    with pytest.raises(TransportError):
        device.inject(b"x")


def test_memory_context_manager_closes() -> None:
    host, device = memory_pair()
    with host as same:
        assert same is host
    with pytest.raises(TransportError):
        device.write(b"x")


def test_both_implementations_satisfy_the_protocol() -> None:
    host, device = memory_pair()
    assert isinstance(host, Transport)
    assert isinstance(device, MemoryTransport)
    assert (host.url, device.url) == ("memory://a", "memory://b")
    with SerialTransport("loop://") as loop:
        assert isinstance(loop, Transport)
    assert issubclass(PortBusyError, TransportError)
    assert issubclass(TransportError, DriverError)


# --------------------------------------------------------------------------
# a real pty pair


@pytest.fixture
def pty_pair() -> Iterator[tuple[int, str]]:
    """A raw pty: the master fd plays the device, the slave path is the port.

    Raw mode on both ends: pyserial makes the slave raw itself when it opens
    it, but until then (and for any peer that is not pyserial) the line
    discipline would echo, translate CR/LF and act on ^C/^S.
    """
    master, slave = os.openpty()
    tty.setraw(master)
    tty.setraw(slave)
    path = os.ttyname(slave)
    try:
        yield master, path
    finally:
        for fd in (master, slave):
            try:
                os.close(fd)
            except OSError as exc:
                assert exc.errno == errno.EBADF


def test_pty_device_to_transport_all_byte_values(pty_pair: tuple[int, str]) -> None:
    master, path = pty_pair
    with SerialTransport(path) as port:
        assert port.url == path
        for frame in FRAMES:
            os.write(master, frame)
        got, reads = read_at_least(port, len(STREAM))
    assert got == STREAM
    assert set(got) == set(range(256))
    assert reads < len(FRAMES) * 4  # chunks, not one byte per read


def test_pty_transport_to_device_all_byte_values(pty_pair: tuple[int, str]) -> None:
    master, path = pty_pair
    with SerialTransport(path) as port:
        for frame in FRAMES:
            port.write(frame)
        assert fd_read_at_least(master, len(STREAM)) == STREAM


def test_pty_read_returns_what_is_there_in_few_reads(pty_pair: tuple[int, str]) -> None:
    master, path = pty_pair
    payload = bytes(range(256)) * 12  # 3 KiB, within the pty's buffer
    with SerialTransport(path) as port:
        os.write(master, payload)
        got, reads = read_at_least(port, len(payload))
    assert got == payload
    assert reads <= 10


def test_pty_second_exclusive_open_is_port_busy(pty_pair: tuple[int, str]) -> None:
    _master, path = pty_pair
    with SerialTransport(path):
        with pytest.raises(PortBusyError) as caught:
            SerialTransport(path)
        assert path in str(caught.value)
        assert "exclusive lock" in str(caught.value)
        assert caught.value.url == path
        assert isinstance(caught.value.__cause__, serial.SerialException)
    # closing releases the lock
    with SerialTransport(path) as again:
        assert again.read(0.0) == b""


def test_pty_exclusive_lock_is_only_advisory(pty_pair: tuple[int, str]) -> None:
    """SR-27's serial lock is flock(): an opener that does not lock gets in anyway.

    This is why the runtime adds a per-port lock file; the test pins the
    pyserial behaviour the SOUP list describes.
    """
    _master, path = pty_pair
    with SerialTransport(path), SerialTransport(path, exclusive=False) as intruder:
        assert intruder.read(0.0) == b""


def test_open_transport_opens_exclusively(pty_pair: tuple[int, str]) -> None:
    _master, path = pty_pair
    with open_transport(path) as port:
        assert isinstance(port, SerialTransport)
        with pytest.raises(PortBusyError):
            open_transport(path)


def test_pty_device_gone_raises_transport_error(pty_pair: tuple[int, str]) -> None:
    master, path = pty_pair
    port = SerialTransport(path)
    try:
        os.close(master)
        with pytest.raises(TransportError, match=r"reading .* failed") as caught:
            port.read(POLL_S)
        assert path in str(caught.value)
        with pytest.raises(TransportError, match=r"writing to .* failed"):
            port.write(b"\x00")
    finally:
        port.close()


def test_pty_write_that_cannot_drain_times_out(pty_pair: tuple[int, str]) -> None:
    """Nobody reads the master: the write must fail in bounded time, not hang."""
    _master, path = pty_pair
    with SerialTransport(path, write_timeout_s=0.1) as port:
        started = time.monotonic()
        with pytest.raises(TransportError, match="timed out"):
            port.write(b"\x55" * (4 * 1024 * 1024))
        assert time.monotonic() - started < DEADLINE_S


# --------------------------------------------------------------------------
# socket:// and loop://


@pytest.fixture
def tcp_server() -> Iterator[socket.socket]:
    """A listening loopback socket on a free port.

    The kernel completes the TCP handshake from the listen backlog, so the
    test can open the transport first and accept() afterwards in the same
    thread: no server thread to leak or race.
    """
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(DEADLINE_S)
    try:
        yield server
    finally:
        server.close()


def socket_url(server: socket.socket) -> str:
    host, port = server.getsockname()[:2]
    return f"socket://{host}:{port}"


def test_socket_url_both_ways(tcp_server: socket.socket) -> None:
    url = socket_url(tcp_server)
    with SerialTransport(url) as port:  # exclusive=True is ignored by socket://
        conn, _ = tcp_server.accept()
        with conn:
            conn.settimeout(POLL_S)
            conn.sendall(STREAM)
            got, reads = read_at_least(port, len(STREAM))
            assert got == STREAM
            # pyserial's socket:// in_waiting says 0 or 1, never a count: the
            # transport must still read chunks, not single bytes.
            assert reads < len(FRAMES) * 4
            port.write(STREAM)
            assert sock_read_at_least(conn, len(STREAM)) == STREAM


def test_socket_peer_closing_raises_transport_error(tcp_server: socket.socket) -> None:
    url = socket_url(tcp_server)
    with SerialTransport(url) as port:
        conn, _ = tcp_server.accept()
        conn.sendall(b"last words")
        conn.close()
        got = bytearray()
        with pytest.raises(TransportError, match="disconnected"):
            deadline = time.monotonic() + DEADLINE_S
            while time.monotonic() < deadline:
                got += port.read(POLL_S)
        assert got == b"last words"


def test_socket_refused_raises_transport_error() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        free_port = probe.getsockname()[1]
    url = f"socket://127.0.0.1:{free_port}"
    with pytest.raises(TransportError, match="listening there") as caught:
        SerialTransport(url)
    assert not isinstance(caught.value, PortBusyError)
    assert url in str(caught.value)


def test_loop_round_trip() -> None:
    with SerialTransport("loop://") as port:
        port.write(ALL_BYTES)
        got, _reads = read_at_least(port, len(ALL_BYTES))
    assert got == ALL_BYTES


# --------------------------------------------------------------------------
# waiting, closing, failing to open


def _silent_pty(request: pytest.FixtureRequest) -> SerialTransport:
    _master, path = request.getfixturevalue("pty_pair")
    return SerialTransport(path)


def _silent_socket(request: pytest.FixtureRequest) -> SerialTransport:
    server = request.getfixturevalue("tcp_server")
    port = SerialTransport(socket_url(server))
    conn, _ = server.accept()
    request.addfinalizer(conn.close)
    return port


def _silent_loop(request: pytest.FixtureRequest) -> SerialTransport:
    return SerialTransport("loop://")


@pytest.mark.parametrize(
    "make", [_silent_pty, _silent_socket, _silent_loop], ids=["pty", "socket", "loop"]
)
def test_read_with_nothing_there_returns_empty_after_waiting(
    request: pytest.FixtureRequest, make: Callable[[pytest.FixtureRequest], SerialTransport]
) -> None:
    with make(request) as port:
        assert port.read(0.0) == b""
        started = time.monotonic()
        assert port.read(0.05) == b""
        elapsed = time.monotonic() - started
        assert port.read(-1.0) == b""  # a negative wait is no wait, not a ValueError
    assert 0.02 <= elapsed < DEADLINE_S


def test_serial_transport_closed_use_raises_and_close_is_idempotent() -> None:
    port = SerialTransport("loop://")
    port.close()
    port.close()
    with pytest.raises(TransportError, match="loop:// is closed"):
        port.read(0.0)
    with pytest.raises(TransportError, match="loop:// is closed"):
        port.write(b"x")
    assert "closed" in repr(port)


def test_nonexistent_path_raises_transport_error_with_the_path(tmp_path: os.PathLike[str]) -> None:
    path = os.path.join(os.fspath(tmp_path), "ttyUSB-not-there")
    with pytest.raises(TransportError) as caught:
        SerialTransport(path)
    message = str(caught.value)
    assert path in message
    assert "No such file or directory" in message
    assert "socket://" in message  # says what the user can do
    assert not isinstance(caught.value, serial.SerialException)
    assert not isinstance(caught.value, PortBusyError)
    assert caught.value.url == path


def test_open_transport_never_falls_back() -> None:
    with pytest.raises(TransportError, match="/dev/ttyUSB-probe-console-none"):
        open_transport("/dev/ttyUSB-probe-console-none")
    with pytest.raises(TransportError, match="not known"):
        open_transport("sim://device")

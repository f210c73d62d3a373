"""The control API's UNIX socket, served from the control thread without ever waiting (SR-29).

`poll()` is called once a turn of the control loop: it accepts, reads and
writes only what the kernel has ready (non-blocking sockets and a selector
with a zero timeout), so no client can hold the loop. On accept, the caller's
uid comes from the kernel (`SO_PEERCRED`) and is checked against the
allow-list (the daemon's own uid is always allowed); anyone else gets -32003
and the connection closes. There is no TCP listener at all.

Each client has a bounded queue of outgoing messages (and a small kernel
send buffer). Responses and events are never dropped; telemetry is dropped
(and counted) first, once the queue is half full; a client whose queue is
full is disconnected (`api_client_closed`, reason `too_slow`). A client that
disconnects changes nothing.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import selectors
import socket
import stat
import struct
import time
from collections import deque
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from console.api import CALLER_NOT_ALLOWED, MAX_LINE, Caller
from console.events import json_safe

Emit = Callable[[str, dict[str, Any]], None]
LineHandler = Callable[[bytes, Caller], dict[str, Any]]

SOCKET_MODE = 0o660
QUEUE_MESSAGES = 1000
QUEUE_BYTES = 4 * 1024 * 1024
"""...and at most this many bytes of them (an answer may echo a 64 KiB bad value)."""
"""Outgoing messages a client may have waiting; telemetry is dropped above half of it."""
SEND_BUFFER = 64 * 1024
"""The kernel's send buffer per client: a never-reading client fills it quickly."""
LINES_PER_TURN = 32
"""Requests taken from one client per turn: one client cannot monopolise a turn."""
TURN_BUDGET_S = 0.002
"""Time one poll may spend on requests; the rest wait for the next turn (the device's
frames and the heartbeat come first, SR-02)."""
_CRED = struct.Struct("3i")


class SocketInUseError(Exception):
    """Another process listens on the socket path."""


def ensure_free(path: Path) -> None:
    """No other process listens on `path`; a stale socket file (its owner gone) is removed."""
    if not (path.exists() or path.is_symlink()):
        return
    if not stat.S_ISSOCK(os.lstat(path).st_mode):
        raise SocketInUseError(f"{path} exists and is not a socket")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(1.0)  # a live daemon with a full backlog must not hang the start
    try:
        probe.connect(str(path))
    except ConnectionRefusedError:
        path.unlink()  # a stale socket of an instance that is gone: nobody accepts on it
    except OSError as exc:  # EACCES, a timeout...: not provably stale, never removed
        raise SocketInUseError(f"cannot tell whether {path} is in use: {exc}") from None
    else:
        raise SocketInUseError(f"another process listens on {path}: stop it or give --socket PATH")
    finally:
        probe.close()


def check_directory(directory: Path) -> None:
    """The socket's folder must be ours (or root's) and writable by nobody else: in a shared
    folder such as /tmp another user could have made it first and swap the socket for theirs."""
    st = os.stat(directory)
    if st.st_uid not in (os.getuid(), 0):
        raise SocketInUseError(f"{directory} belongs to uid {st.st_uid}, not to this user")
    if st.st_mode & stat.S_IWOTH:
        raise SocketInUseError(f"{directory} is writable by everybody: chmod o-w it")


def peer_credentials(sock: socket.socket) -> tuple[int, int, int]:
    """(pid, uid, gid) of the peer, from the kernel (SO_PEERCRED), not from anything it says."""
    raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _CRED.size)
    pid, uid, gid = _CRED.unpack(raw)
    return pid, uid, gid


class Client:
    """One connected caller: its credentials, its input buffer and its bounded output queue."""

    def __init__(self, sock: socket.socket, caller: Caller, limit: int) -> None:
        self.sock = sock
        self.caller = caller
        self.limit = limit
        self.inbuf = bytearray()
        self.out: deque[tuple[bytes, bool]] = deque()  # (line, is_telemetry)
        self.telemetry_queued = 0
        self.queued_bytes = 0
        self.last_active = 0.0  # the clock at its connection and at its latest request
        self.sending = b""
        self.dropped_telemetry = 0
        self.sent = 0
        self.closing: str | None = None  # why, once it is to be closed
        self.eof = False  # the caller sent its last byte; its last lines are still served
        self.mute = False  # its end no longer takes our bytes; what it sent is still served
        self.want_write = False

    def enqueue(self, line: bytes, *, telemetry: bool = False) -> bool:
        """Queue a line; False if the client cannot keep up (it is then to be closed)."""
        if telemetry and (
            len(self.out) >= self.limit // 2 or self.queued_bytes >= QUEUE_BYTES // 2
        ):
            self.dropped_telemetry += 1
            return True
        while len(self.out) >= self.limit or self.queued_bytes + len(line) > QUEUE_BYTES:
            if self.telemetry_queued and self._drop_one_telemetry():
                self.dropped_telemetry += 1
            else:
                return False
        self.out.append((line, telemetry))
        self.queued_bytes += len(line)
        if telemetry:
            self.telemetry_queued += 1
        return True

    def _drop_one_telemetry(self) -> bool:
        for i, (line, tel) in enumerate(self.out):
            if tel:
                del self.out[i]
                self.telemetry_queued -= 1
                self.queued_bytes -= len(line)
                return True
        return False

    def flush(self) -> bool:
        """Send what the kernel takes now; True while something is still waiting."""
        while True:
            if not self.sending:
                if not self.out:
                    return False
                chunks = []
                size = 0
                while self.out and size < 16384:
                    line, tel = self.out.popleft()
                    self.queued_bytes -= len(line)
                    if tel:
                        self.telemetry_queued -= 1
                    chunks.append(line)
                    size += len(line)
                self.sending = b"".join(chunks)
            try:
                n = self.sock.send(self.sending)
            except BlockingIOError:
                return True
            self.sent += n
            self.sending = self.sending[n:]
            if self.sending:
                return True


class ApiServer:
    def __init__(
        self,
        path: Path,
        handler: LineHandler,
        emit: Emit,
        *,
        allowed_uids: Iterable[int],
        max_clients: int = 8,
        queue_messages: int = QUEUE_MESSAGES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.clock = clock
        self._deadline = 0.0
        self.path = path
        self.handler = handler
        self.emit = emit
        self.allowed = frozenset({os.getuid(), *allowed_uids})
        self.max_clients = max_clients
        self.queue_messages = queue_messages
        self.clients: dict[int, Client] = {}
        self.selector = selectors.DefaultSelector()
        self.listener = self._listen(path)
        self.selector.register(self.listener, selectors.EVENT_READ, None)
        self._pending: set[Client] = set()

    # --- the socket ------------------------------------------------------------------------

    @staticmethod
    def _listen(path: Path) -> socket.socket:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o770)
        check_directory(path.parent)
        ensure_free(path)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o117)  # created 0660 from the start: no window with a wider mode
        try:
            sock.bind(str(path))
        except OSError:
            sock.close()
            raise
        finally:
            os.umask(old)
        os.chmod(path, SOCKET_MODE)
        sock.listen(16)
        sock.setblocking(False)
        return sock

    def close(self, *, record: bool = True) -> None:
        """Closes every client (their last queued lines sent if the kernel takes them now)."""
        if not record:
            self.emit = lambda name, fields: None
        for client in list(self.clients.values()):
            with contextlib.suppress(OSError):
                client.flush()
            self._close(client, "server_stopped")
        self.selector.unregister(self.listener)
        self.listener.close()
        self.selector.close()
        with contextlib.suppress(OSError):
            self.path.unlink()

    # --- the turn --------------------------------------------------------------------------

    def poll(self) -> None:
        """Everything ready now, nothing that would wait. Called once a control-loop turn."""
        self._deadline = self.clock() + TURN_BUDGET_S
        if self._pending:
            pending, self._pending = self._pending, set()
            for waiting in pending:
                if waiting.closing is None:
                    self._lines(waiting)
        for key, events in self.selector.select(0):
            client: Client | None = key.data
            if client is None:
                self._accept()
                continue
            if events & selectors.EVENT_READ and client.closing is None:
                self._read(client)
            if events & selectors.EVENT_WRITE and client.closing is None:
                self._flush(client)
        done = [
            c
            for c in self.clients.values()
            if c.closing is not None or (c.eof and c not in self._pending)
        ]
        for client in done:
            self._close(client, client.closing or "disconnected")

    def _accept(self) -> None:
        for _ in range(8):
            try:
                sock, _ = self.listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # EMFILE and the like: the loop goes on
                self.emit("api_accept_failed", {"reason": os.strerror(exc.errno or errno.EIO)})
                return
            try:
                sock.setblocking(False)
                pid, uid, gid = peer_credentials(sock)
            except OSError as exc:
                sock.close()
                self.emit("api_accept_failed", {"reason": os.strerror(exc.errno or errno.EIO)})
                continue
            if uid not in self.allowed:  # SR-29: the kernel's word, checked before any request
                self.emit("api_client_refused", {"uid": uid, "pid": pid, "reason": "uid"})
                _goodbye(sock, CALLER_NOT_ALLOWED, f"uid {uid} is not allowed (SR-29)")
                continue
            if len(self.clients) >= self.max_clients:
                # Full: the longest idle client makes room, so that a new caller (an estop
                # from another terminal) always gets in (interfaces.md: any allowed client).
                idle = min(self.clients.values(), key=lambda c: c.last_active)
                self._close(idle, "evicted_idle")
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER)
            client = Client(sock, Caller(uid=uid, pid=pid, gid=gid), self.queue_messages)
            client.last_active = self.clock()
            try:
                self.selector.register(sock, selectors.EVENT_READ, client)
            except (OSError, ValueError) as exc:
                sock.close()
                self.emit("api_accept_failed", {"reason": str(exc)})
                continue
            self.clients[sock.fileno()] = client
            self.emit("api_client_connected", {"uid": uid, "pid": pid})

    def _read(self, client: Client) -> None:
        if client.eof:
            return  # its last lines wait for their turn; it is closed once they are served
        if len(client.inbuf) > 2 * MAX_LINE:
            return  # lines still waiting for their turn: the kernel holds the rest (back-pressure)
        try:
            data = client.sock.recv(MAX_LINE + 1)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            client.closing = "reset"
            return
        if not data:
            # Whatever it sent before it went is served and recorded (SR-29), a last line
            # without its newline too; nobody may read the answers.
            client.eof = True
            if client.inbuf and not client.inbuf.endswith(b"\n"):
                client.inbuf += b"\n"
            self._lines(client)
            return
        client.inbuf += data
        self._lines(client)

    def _lines(self, client: Client) -> None:
        buf = client.inbuf
        for _ in range(LINES_PER_TURN):
            if self.clock() > self._deadline and buf.find(b"\n") >= 0:
                self._pending.add(client)  # this turn's time for requests is spent
                return
            end = buf.find(b"\n")
            if end < 0:
                break
            line = bytes(buf[:end]).rstrip(b"\r")
            del buf[: end + 1]
            if line.strip():
                client.last_active = self.clock()
                self._respond(client, self.handler(line, client.caller))
            if client.closing is not None:
                return
        else:
            if buf.find(b"\n") >= 0:  # beyond this turn's share: the next turn, not the selector
                self._pending.add(client)
                return
        if len(buf) > MAX_LINE:  # no newline within 64 KiB: answered, then closed
            self._respond(client, self.handler(bytes(buf), client.caller))
            buf.clear()
            client.closing = "message_too_long"

    def _respond(self, client: Client, response: dict[str, Any]) -> None:
        if client.mute:
            return
        line = (json.dumps(response, separators=(",", ":"), allow_nan=False) + "\n").encode()
        if not client.enqueue(line):
            client.closing = "too_slow"
            return
        self._flush(client)

    def _flush(self, client: Client) -> None:
        try:
            waiting = client.flush()
        except OSError:
            # Gone, or no longer reading: its answers are dropped, but whatever it sent before
            # is still read, served and recorded; it is closed at its end of input.
            client.mute = True
            client.out.clear()
            client.sending = b""
            client.telemetry_queued = client.queued_bytes = 0
            return
        want = selectors.EVENT_READ | (selectors.EVENT_WRITE if waiting else 0)
        if client.want_write != waiting:
            client.want_write = waiting
            self.selector.modify(client.sock, want, client)

    def _close(self, client: Client, reason: str) -> None:
        fd = client.sock.fileno()
        with contextlib.suppress(KeyError, ValueError):
            self.selector.unregister(client.sock)
        self.clients.pop(fd, None)
        self._pending.discard(client)
        with contextlib.suppress(OSError):
            client.sock.close()
        c = client.caller
        self.emit(
            "api_client_closed",
            {
                "uid": c.uid,
                "pid": c.pid,
                "reason": reason,
                "requests": c.requests,
                "status_polls": c.status_polls,
                "dropped_telemetry": client.dropped_telemetry,
            },
        )

    # --- events to subscribers -------------------------------------------------------------

    def publish(self, event: dict[str, Any]) -> None:
        """An event sink: to every subscriber's queue, never waiting for any of them."""
        subscribers = [
            c
            for c in self.clients.values()
            if c.caller.subscribed and not c.closing and not c.mute
        ]
        if not subscribers:
            return
        message = {"jsonrpc": "2.0", "method": "event", "params": json_safe(event)}
        line = (json.dumps(message, separators=(",", ":"), allow_nan=False) + "\n").encode()
        telemetry = event["event"] == "telemetry"
        for client in subscribers:
            if not client.enqueue(line, telemetry=telemetry):
                client.closing = "too_slow"  # closed at the end of the next poll
            elif not client.want_write:
                self._flush(client)


def _goodbye(sock: socket.socket, code: int, message: str) -> None:
    """The error line, then the end; what the caller already sent is read and ignored
    (closing on unread input would reset the connection before it reads the error)."""
    line = json.dumps({"jsonrpc": "2.0", "id": None, "error": {"code": code, "message": message}})
    with contextlib.suppress(OSError):
        sock.send(line.encode() + b"\n")
        sock.shutdown(socket.SHUT_WR)
    with contextlib.suppress(OSError):
        sock.recv(MAX_LINE)
    with contextlib.suppress(OSError):
        sock.close()

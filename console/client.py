"""A Python client of `serve`'s control API (JSON-RPC 2.0, one message a line, a UNIX socket).

    with Client() as c:                      # the default socket of interfaces.md
        c.call("arm", {"checklist": {...}})  # -> {"accepted": True, "state": "leak_test", ...}
        print(c.status()["state"])
        for event in c.events():             # after subscribe(): every event, as it happens
            ...

A refused or invalid request raises `ApiError` (its `code` and `data` as the
server sent them); a socket that cannot be reached, or a caller the server
does not allow (-32003), raises `ConnectError`.
"""

from __future__ import annotations

import itertools
import json
import socket
from collections import deque
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from console.api import CALLER_NOT_ALLOWED, MAX_LINE, ApiError
from console.portlock import default_socket_path


class ConnectError(Exception):
    """The socket cannot be reached, or the server does not allow this caller."""


class Client:
    def __init__(self, path: Path | str | None = None, *, timeout_s: float | None = 10.0) -> None:
        self.path = Path(path) if path is not None else default_socket_path()
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock.settimeout(timeout_s)
        try:
            self._sock.connect(str(self.path))
        except OSError as exc:
            self._sock.close()
            raise ConnectError(f"cannot connect to {self.path}: {exc.strerror or exc}") from None
        self._buf = b""
        self._ids = itertools.count(1)
        self._events: deque[dict[str, Any]] = deque()

    def close(self) -> None:
        self._sock.close()

    def settimeout(self, timeout_s: float | None) -> None:
        self._sock.settimeout(timeout_s)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # --- the wire ----------------------------------------------------------------------------

    def send_line(self, line: bytes) -> None:
        """Send raw bytes as one message (tests of the server's validation use this)."""
        self._sock.sendall(line + b"\n")

    def read_message(self) -> dict[str, Any]:
        """The next message from the server (response or notification)."""
        while b"\n" not in self._buf:
            try:
                chunk = self._sock.recv(65536)
            except OSError as exc:
                raise ConnectError(f"connection to {self.path} failed: {exc}") from None
            if not chunk:
                raise ConnectError(f"the server closed the connection ({self.path})")
            self._buf += chunk
            if len(self._buf) > 16 * MAX_LINE and b"\n" not in self._buf:
                raise ConnectError("the server sent a message longer than allowed")
        line, self._buf = self._buf.split(b"\n", 1)
        message: dict[str, Any] = json.loads(line)
        return message

    def call(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """One request, its result; raises ApiError for an error response."""
        rid = next(self._ids)
        request: dict[str, Any] = {"jsonrpc": "2.0", "id": rid, "method": method}
        if params is not None:
            request["params"] = params
        try:
            line = json.dumps(request, allow_nan=False, separators=(",", ":")).encode()
        except ValueError as exc:
            raise ApiError(-32602, f"invalid params: {exc} (SR-30)") from None
        try:
            self.send_line(line)
        except OSError as exc:
            # Refused at accept (-32003): the server's last word may be waiting to be read.
            message = self.read_message()
            error = message.get("error") or {}
            raise ConnectError(str(error.get("message") or exc)) from None
        while True:
            message = self.read_message()
            if "method" in message:  # a notification while waiting: kept for events()
                self._events.append(message["params"])
                continue
            if message.get("id") not in (rid, None):
                continue
            error = message.get("error")
            if error is not None:
                code = int(error.get("code", 0))
                if code == CALLER_NOT_ALLOWED:
                    raise ConnectError(str(error.get("message")))
                raise ApiError(code, str(error.get("message")), error.get("data"))
            result: dict[str, Any] = message["result"]
            return result

    def status(self) -> dict[str, Any]:
        return self.call("status")

    def act(self, action: str, **params: Any) -> dict[str, Any]:
        return self.call(action, params)

    def subscribe(self) -> dict[str, Any]:
        return self.call("subscribe")

    def events(self) -> Iterator[dict[str, Any]]:
        """Events after `subscribe()`, as they come (blocking up to the timeout each)."""
        while True:
            while self._events:
                yield self._events.popleft()
            message = self.read_message()
            if message.get("method") == "event":
                yield message["params"]

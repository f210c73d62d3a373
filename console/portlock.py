"""SR-27: one owner per port. An exclusive `fcntl` lock on a per-port lock file, owner inside.

pyserial's `exclusive=True` is only an advisory `flock` on the device node and
means nothing for `socket://` ports (docs/dependencies.md); this lock covers
every kind of port the same way and names its owner, so a second instance can
say who holds the port (exit 4). The kernel drops the lock when the owner
dies, even by `kill -9`: a stale lock file is never a problem.

Location (`interfaces.md`): a `locks/` directory beside the API socket:
`$PROBE_CONSOLE_SOCKET`'s directory, else `$RUNTIME_DIRECTORY`, else
`$XDG_RUNTIME_DIR/probe-console`, else `/tmp/probe-console-$UID`.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Self


class PortOwnedError(Exception):
    """Another process owns the port; the message names it."""


def default_socket_path(env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    if env.get("PROBE_CONSOLE_SOCKET"):
        return Path(env["PROBE_CONSOLE_SOCKET"])
    if env.get("RUNTIME_DIRECTORY"):
        return Path(env["RUNTIME_DIRECTORY"].split(":")[0]) / "api.sock"
    if env.get("XDG_RUNTIME_DIR"):
        return Path(env["XDG_RUNTIME_DIR"]) / "probe-console" / "api.sock"
    return Path(f"/tmp/probe-console-{os.getuid()}") / "api.sock"


def default_lock_dir(env: Mapping[str, str] | None = None) -> Path:
    return default_socket_path(env).parent / "locks"


def port_key(url: str) -> str:
    """One name per port: the resolved path of a device or pty, or the URL itself."""
    return url if "://" in url else os.path.realpath(url)


def lock_name(url: str) -> str:
    """A file name for a port's lock."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", port_key(url)).strip("_") + ".lock"


class PortLock:
    """Held for the life of a command that talks to a port."""

    def __init__(self, url: str, lock_dir: Path | None = None) -> None:
        self.url = url
        self.path = (lock_dir or default_lock_dir()) / lock_name(url)
        self._fd: int | None = None

    def acquire(self, command: str = "") -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o770)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o660)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            owner = os.read(fd, 4096).decode("utf-8", "replace").strip()
            os.close(fd)
            raise PortOwnedError(
                f"port {self.url} is owned by another probe-console: {_describe(owner)}"
            ) from None
        os.ftruncate(fd, 0)
        record = {
            "pid": os.getpid(),
            "command": command or " ".join(sys.argv),
            "port": self.url,
            "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        os.write(fd, (json.dumps(record) + "\n").encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing drops the lock; the file stays, harmless
            self._fd = None

    def __enter__(self) -> Self:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()


def _describe(owner: str) -> str:
    try:
        record = json.loads(owner)
        return f"pid {record['pid']} ({record['command']}) since {record['since']}"
    except (ValueError, KeyError, TypeError):
        return owner or "unknown owner"

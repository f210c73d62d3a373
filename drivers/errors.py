"""The drivers package's exceptions.

One hierarchy so that the runtime can catch "the HAL failed" in one place
(`DriverError`) and still tell the cases the CLI maps to different exit codes
apart: a port that cannot be used at all (`TransportError`, exit 3) and a port
that another instance owns (`PortBusyError`, exit 4, SR-27). The link and
device drivers add their own subclasses as they are built.

Messages are written for the person at the console: which port, what went
wrong, and what they can do about it.
"""

from __future__ import annotations

__all__ = ["DriverError", "PortBusyError", "TransportError"]


class DriverError(Exception):
    """Base class: anything raised on purpose by `drivers`."""


class TransportError(DriverError):
    """The byte stream to the device cannot be opened, read or written.

    `url` names the port so that a log record or an exit message can say which
    one without parsing the text; it is None only when no port was involved.
    """

    def __init__(self, message: str, *, url: str | None = None) -> None:
        super().__init__(message)
        self.url = url


class PortBusyError(TransportError):
    """Another process holds the port's exclusive lock (SR-27: one owner).

    Separate from `TransportError` because the remedy differs: the port is
    fine, someone else is using it, and starting anyway would put two
    controllers on one probe.
    """

"""Exceptions of the wire protocol.

Decoding never raises on input from the line (bad frames are counted, see
`StreamDecoder`); these are for the local caller that asks to encode a value
the wire cannot carry, or to decode a single frame it expects to be valid.
"""


class ProtocolError(Exception):
    """Base of every error raised by `protocols`."""


class EncodeError(ProtocolError, ValueError):
    """A message field is outside what its wire type or the spec allows."""


class FrameError(ProtocolError, ValueError):
    """A single frame failed a check; `kind` names the check (see `ErrorKind`)."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(f"{kind}: {detail}")
        self.kind = kind
        self.detail = detail

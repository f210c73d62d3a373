"""Frames on the wire: COBS, 0x00 delimiters, a 12-byte header and CRC-32.

    wire  = COBS(header || payload || crc32_le(header || payload)) || 0x00
    header = version u8 | msg_type u8 | seq u32 | nonce u32 | payload_len u16   (little-endian)

The version is always the first byte and the header layout is frozen across
versions, so any receiver can tell which version sent a frame. `docs/protocol.md`
is the normative specification; this module is its executable form.

The stream decoder takes chunks split anywhere (garbage included), yields every
intact frame in order, resynchronises at the next delimiter, and counts each
rejected frame by kind. It never raises on input and has no per-byte loop: it
splits on the delimiter with `bytes.split` and leaves COBS to the C extension.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable
from typing import Any, NamedTuple

from cobs import cobs

from protocols.errors import EncodeError, FrameError
from protocols.messages import (
    LAYOUT_BY_CLASS,
    LAYOUTS,
    PROTOCOL_VERSION,
    VERSION_INDEPENDENT_TYPES,
    Message,
    MsgType,
)

HEADER = struct.Struct("<BBIIH")
HEADER_SIZE = HEADER.size  # 12
CRC = struct.Struct("<I")
CRC_SIZE = CRC.size  # 4
#: Largest payload a receiver accepts (the largest message, Identity, is 64 bytes).
MAX_PAYLOAD = 255
MAX_FRAME = HEADER_SIZE + MAX_PAYLOAD + CRC_SIZE
#: Largest COBS-encoded frame, delimiter excluded: one overhead byte per 254 bytes, plus one.
MAX_ENCODED = MAX_FRAME + MAX_FRAME // 254 + 1
DELIMITER = b"\x00"
#: zlib.crc32(data + crc32(data).to_bytes(4, "little")) for any data (CRC-32/ISO-HDLC).
CRC_RESIDUE = 0x2144DF1C
_unpack_header = HEADER.unpack_from
SEQ_MODULUS = 1 << 32

#: The kinds of rejected frame a decoder counts. `docs/protocol.md`, "Errors".
ERROR_KINDS = (
    "cobs",  # not valid COBS
    "short",  # shorter than header + CRC
    "crc",  # CRC-32 mismatch
    "length",  # header's payload length disagrees with the frame size
    "version",  # another protocol version (hello and identity excepted)
    "unknown_type",  # message type not defined in this version
    "payload",  # payload size wrong for the message type
    "oversize",  # no delimiter within MAX_ENCODED bytes
    "nonce",  # not the current device session's nonce
    "duplicate",  # sequence number not newer than the last accepted one
)


class Header(NamedTuple):
    version: int
    msg_type: int
    seq: int
    nonce: int
    payload_len: int


#: Rejections that happen after the header passed its CRC: the header can be trusted.
_HEADER_VALID_KINDS = frozenset({"version", "unknown_type", "payload"})


class Frame(NamedTuple):
    version: int
    msg_type: int
    seq: int
    nonce: int
    message: Message


#: Message class -> (type, payload size, one struct for header and payload), for every
#: message whose payload is its fields as they are (not Identity, whose text is converted):
#: one pack call per frame. "<" has no padding, so the bytes are those of the two packs.
_FRAMERS: dict[type, tuple[int, int, struct.Struct]] = {
    cls: (lay.msg_type, lay.struct.size, struct.Struct(HEADER.format + lay.struct.format[1:]))
    for cls, lay in LAYOUT_BY_CLASS.items()
    if lay.struct.format.startswith("<") and cls.__name__ != "Identity"
}
_crc_pack = CRC.pack
_cobs_encode = cobs.encode


def encode(message: Message, seq: int, nonce: int, version: int = PROTOCOL_VERSION) -> bytes:
    """Encode `message` into one complete wire frame, trailing delimiter included."""
    framer = _FRAMERS.get(type(message))
    try:
        if framer is not None:
            msg_type, size, packer = framer
            body = packer.pack(version, msg_type, seq, nonce, size, *message)
        else:
            layout = LAYOUT_BY_CLASS.get(type(message))
            if layout is None:
                raise EncodeError(f"{type(message).__name__} is not a protocol message")
            payload = layout.pack(message)
            body = HEADER.pack(version, layout.msg_type, seq, nonce, len(payload)) + payload
    except struct.error as exc:
        raise EncodeError(f"{type(message).__name__} {message!r}: {exc}") from exc
    frame: bytes = _cobs_encode(body + _crc_pack(_crc32(body)))
    return frame + DELIMITER


#: msg_type -> (payload size, unpack_from, the message class): one lookup per frame.
_DECODERS: dict[int, tuple[int, Callable[[bytes, int], tuple[Any, ...]], type[Any]]] = {
    t: (lay.struct.size, lay.unpack, lay.cls) for t, lay in LAYOUTS.items()
}
_new_tuple = tuple.__new__
_cobs_decode = cobs.decode
_CobsError = cobs.DecodeError
_crc32 = zlib.crc32
_OVERHEAD = HEADER_SIZE + CRC_SIZE


def _decode_body(raw: bytes) -> Frame | str:
    """Decode one COBS-encoded frame (delimiter stripped) into a Frame, or an error kind.

    On every received frame: the typed values are built with `tuple.__new__`
    (what a NamedTuple's own constructor calls, without its Python-level frame).
    """
    try:
        body: bytes = _cobs_decode(raw)
    except _CobsError:
        return "cobs"
    size = len(body)
    if size < _OVERHEAD:
        return "short"
    # CRC over header, payload and the appended little-endian CRC leaves a constant residue.
    if _crc32(body) != CRC_RESIDUE:
        return "crc"
    version, msg_type, seq, nonce, length = _unpack_header(body)
    if length != size - _OVERHEAD:
        return "length"
    if version != PROTOCOL_VERSION and msg_type not in VERSION_INDEPENDENT_TYPES:
        return "version"
    decoder = _DECODERS.get(msg_type)
    if decoder is None:
        return "unknown_type"
    payload_size, unpack, cls = decoder
    if length != payload_size:
        return "payload"
    message = _new_tuple(cls, unpack(body, HEADER_SIZE))
    return _new_tuple(Frame, (version, msg_type, seq, nonce, message))


def decode_frame(raw: bytes) -> Frame:
    """Decode one frame (with or without its trailing delimiter); raise `FrameError` if bad.

    For tools and tests; the receive path uses `StreamDecoder`, which never raises.
    """
    if raw.endswith(DELIMITER):
        raw = raw[:-1]
    if DELIMITER in raw:
        raise FrameError("cobs", "a frame must not contain the 0x00 delimiter")
    result = _decode_body(raw)
    if isinstance(result, str):
        raise FrameError(result, "frame rejected")
    return result


class StreamDecoder:
    """Incremental decoder of a byte stream into frames; never raises on input.

    Without a session (`expected_nonce is None`) every intact frame is yielded.
    With one (`start_session`), frames of another nonce are dropped and counted
    as `nonce`, except hello and identity, which are always yielded so the link
    can see a device reset or a version mismatch (SR-18, SR-32); frames whose
    sequence number is not newer than the last accepted one are dropped as
    `duplicate`, and gaps are counted in `lost` (SR-23).
    """

    __slots__ = (
        "_buf",
        "_discarding",
        "bytes_in",
        "errors",
        "expected_nonce",
        "good",
        "keep_rejects",
        "last_seq",
        "lost",
        "rejects",
    )

    def __init__(self, *, keep_rejects: bool = False) -> None:
        #: With `keep_rejects`, frames whose header passed the CRC but which were refused
        #: (`version`, `unknown_type`, `payload`) are listed in `rejects` as (kind, header),
        #: so a device can answer them with a NACK naming their sequence number.
        self.keep_rejects = keep_rejects
        self.rejects: list[tuple[str, Header]] = []
        self._buf = b""
        self._discarding = False
        self.expected_nonce: int | None = None
        self.last_seq: int | None = None
        self.good = 0
        self.lost = 0
        self.bytes_in = 0
        self.errors: dict[str, int] = dict.fromkeys(ERROR_KINDS, 0)

    @property
    def bad(self) -> int:
        return sum(self.errors.values())

    def start_session(self, nonce: int, seq: int) -> None:
        """Accept only `nonce` from now on, the frame numbered `seq` being the last one seen."""
        self.expected_nonce = nonce
        self.last_seq = seq

    def end_session(self) -> None:
        self.expected_nonce = None
        self.last_seq = None

    def feed(self, data: bytes) -> list[Frame]:
        """Take any chunk of the stream; return the frames it completed, in order."""
        self.bytes_in += len(data)
        if DELIMITER not in data:
            if not self._discarding:
                self._buf += data
                if len(self._buf) > MAX_ENCODED:
                    self._overflow()
            return []
        parts = (self._buf + data).split(DELIMITER)
        tail = parts.pop()
        if self._discarding:
            # The bytes up to this delimiter belong to an oversize frame already counted.
            parts[0] = b""
            self._discarding = False
        frames: list[Frame] = []
        errors = self.errors
        for raw in parts:
            if not raw:
                continue  # empty frame between delimiters: a flush, not an error
            if len(raw) > MAX_ENCODED:
                errors["oversize"] += 1
                continue
            result = _decode_body(raw)
            if isinstance(result, str):
                errors[result] += 1
                if self.keep_rejects and result in _HEADER_VALID_KINDS:
                    self.rejects.append((result, Header._make(_unpack_header(cobs.decode(raw)))))
                continue
            expected = self.expected_nonce
            if expected is not None:
                # _session_check, inlined: it runs on every frame of a session.
                if result.nonce != expected:
                    if result.msg_type not in VERSION_INDEPENDENT_TYPES:
                        errors["nonce"] += 1
                        continue
                else:
                    step = (result.seq - (self.last_seq or 0)) % SEQ_MODULUS
                    if step == 0 or step >= SEQ_MODULUS // 2:
                        errors["duplicate"] += 1
                        continue
                    self.lost += step - 1
                    self.last_seq = result.seq
            self.good += 1
            frames.append(result)
        self._buf = b""
        if len(tail) > MAX_ENCODED:
            self._overflow()
        else:
            self._buf = tail
        return frames

    def _session_check(self, frame: Frame) -> str | None:
        """The session's nonce and sequence rules: None if admitted, else the error kind."""
        if frame.nonce != self.expected_nonce:
            return None if frame.msg_type in VERSION_INDEPENDENT_TYPES else "nonce"
        step = (frame.seq - (self.last_seq or 0)) % SEQ_MODULUS
        if step == 0 or step >= SEQ_MODULUS // 2:
            return "duplicate"
        self.lost += step - 1
        self.last_seq = frame.seq
        return None

    def admit(self, frame: Frame) -> bool:
        """Apply the session's rules to a frame `feed` returned before the session began.

        A chunk can hold the identity that opens a session and frames after it; `feed`
        decoded them all before the caller could `start_session`. The caller passes those
        later frames through here, so they get the same checks (and counts) as any other.
        """
        if self.expected_nonce is None:
            return True
        refused = self._session_check(frame)
        if refused is None:
            return True
        self.good -= 1
        self.errors[refused] += 1
        return False

    def _overflow(self) -> None:
        self.errors["oversize"] += 1
        self._buf = b""
        self._discarding = True


__all__ = [
    "CRC_SIZE",
    "DELIMITER",
    "ERROR_KINDS",
    "HEADER_SIZE",
    "MAX_ENCODED",
    "MAX_PAYLOAD",
    "Frame",
    "Header",
    "MsgType",
    "StreamDecoder",
    "decode_frame",
    "encode",
]

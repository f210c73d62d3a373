"""The codec: round trips, hostile input, resynchronisation, bit errors (SR-23, SR-26)."""

from __future__ import annotations

import struct
import zlib

import pytest
from cobs import cobs
from hypothesis import given, settings
from hypothesis import strategies as st

from protocols import (
    ERROR_KINDS,
    EncodeError,
    FrameError,
    Hello,
    Identity,
    SafeState,
    StreamDecoder,
    Telemetry,
    ValveCommand,
    decode_frame,
    encode,
)
from protocols.framing import (
    CRC_RESIDUE,
    HEADER,
    MAX_ENCODED,
    MAX_FRAME,
    Frame,
)
from protocols.messages import PROTOCOL_VERSION, Ack, Heartbeat, MsgType, Valve
from tests.protocols.strategies import messages, nonces, seqs

DECODER_EXAMPLES = settings(max_examples=500, deadline=None)

TELEMETRY = Telemetry(123456, 40000, 12000, 30000, 0x77, 0, 0x11, 0, 250, 100, 100, 2, 0)
IDENTITY = Identity(1, 1, 0, 3, 1, 1, 0, 0xC0FFEE01, 0xABCD, "SIM-0001", "CRYO-20G-90", "PRB-42")
VALVE_OPEN = ValveCommand(Valve.SUPPLY, True, 5000, 182000)
ACK = Ack(17, MsgType.VALVE, 0)
SAMPLES = [TELEMETRY, IDENTITY, VALVE_OPEN, ACK, SafeState()]


def _decode_all(
    stream: bytes, chunks: list[int] | None = None
) -> tuple[list[Frame], StreamDecoder]:
    decoder = StreamDecoder()
    frames: list[Frame] = []
    if chunks is None:
        frames.extend(decoder.feed(stream))
    else:
        pos = 0
        for size in chunks:
            frames.extend(decoder.feed(stream[pos : pos + size]))
            pos += size
        frames.extend(decoder.feed(stream[pos:]))
    return frames, decoder


def test_crc_parameters_match_the_spec() -> None:
    """SR-26: CRC-32/ISO-HDLC, check value 0xCBF43926, residue 0x2144DF1C."""
    assert zlib.crc32(b"123456789") == 0xCBF43926
    data = b"any frame body"
    assert zlib.crc32(data + zlib.crc32(data).to_bytes(4, "little")) == CRC_RESIDUE


@DECODER_EXAMPLES
@given(messages, seqs, nonces)
def test_every_message_round_trips(message: object, seq: int, nonce: int) -> None:
    wire = encode(message, seq, nonce)  # type: ignore[arg-type]
    assert wire.endswith(b"\x00") and b"\x00" not in wire[:-1]
    frame = decode_frame(wire)
    assert frame == Frame(PROTOCOL_VERSION, frame.msg_type, seq, nonce, message)  # type: ignore[arg-type]
    assert type(frame.message) is type(message)


@DECODER_EXAMPLES
@given(st.binary(max_size=2048), st.lists(st.integers(1, 64), max_size=40))
def test_arbitrary_bytes_never_raise(data: bytes, chunks: list[int]) -> None:
    """SR-23: any input is dropped and counted, never an exception."""
    frames, decoder = _decode_all(data, chunks)
    assert decoder.good == len(frames)
    assert set(decoder.errors) == set(ERROR_KINDS)
    assert decoder.bytes_in == len(data)


@DECODER_EXAMPLES
@given(
    st.lists(st.tuples(messages, seqs, nonces), min_size=1, max_size=12),
    st.lists(st.binary(max_size=80), min_size=13, max_size=13),
    st.lists(st.integers(1, 97), max_size=60),
)
def test_frames_in_garbage_split_anywhere_are_all_recovered_in_order(
    items: list[tuple[object, int, int]], garbage: list[bytes], chunks: list[int]
) -> None:
    stream = b""
    for i, (message, seq, nonce) in enumerate(items):
        # Garbage before each frame; the delimiter after it is where the decoder resynchronises.
        stream += garbage[i] + b"\x00" + encode(message, seq, nonce)  # type: ignore[arg-type]
    stream += garbage[-1]
    frames, _ = _decode_all(stream, chunks)
    assert [(f.message, f.seq, f.nonce) for f in frames] == items


def _flip(wire: bytes, *bits: int) -> bytes:
    buf = bytearray(wire)
    for bit in bits:
        buf[bit // 8] ^= 1 << (bit % 8)
    return bytes(buf)


@pytest.mark.parametrize("message", SAMPLES, ids=lambda m: type(m).__name__)
def test_every_single_bit_flip_is_rejected(message: object) -> None:
    """SR-26: exhaustively, no single bit error in a frame (delimiter included) yields a frame."""
    wire = encode(message, 7, 0x12345678)  # type: ignore[arg-type]
    for bit in range(len(wire) * 8):
        # A trailing delimiter forces the decoder to look at whatever the flip left.
        frames, decoder = _decode_all(_flip(wire, bit) + b"\x00")
        assert frames == [], f"bit {bit} flipped was accepted"
        assert decoder.bad >= 1 or bit >= (len(wire) - 1) * 8


@DECODER_EXAMPLES
@given(st.sampled_from(SAMPLES), st.data())
def test_random_double_bit_flips_are_rejected(message: object, data: st.DataObject) -> None:
    wire = encode(message, 99, 0xCAFEF00D)  # type: ignore[arg-type]
    nbits = (len(wire) - 1) * 8  # the delimiter's flips are covered above
    a = data.draw(st.integers(0, nbits - 1))
    b = data.draw(st.integers(0, nbits - 1).filter(lambda x: x != a))
    frames, decoder = _decode_all(_flip(wire, a, b) + b"\x00")
    assert frames == []
    assert decoder.bad >= 1


def _raw_frame(
    version: int, msg_type: int, payload: bytes, *, length: int | None = None, crc_xor: int = 0
) -> bytes:
    """A frame built by hand, to exercise each check of the decoder."""
    body = (
        HEADER.pack(version, msg_type, 1, 2, len(payload) if length is None else length) + payload
    )
    return cobs.encode(body + struct.pack("<I", zlib.crc32(body) ^ crc_xor)) + b"\x00"


@pytest.mark.parametrize(
    ("wire", "kind"),
    [
        (b"\x05\x01\x02\x00", "cobs"),  # code byte runs past the end
        (cobs.encode(b"\x01\x10\x00") + b"\x00", "short"),
        (_raw_frame(1, MsgType.TELEMETRY, bytes(24), crc_xor=1), "crc"),
        (_raw_frame(1, MsgType.TELEMETRY, bytes(24), length=23), "length"),
        (_raw_frame(2, MsgType.TELEMETRY, bytes(24)), "version"),
        (_raw_frame(1, 0x7F, b""), "unknown_type"),
        (_raw_frame(1, MsgType.TELEMETRY, bytes(23)), "payload"),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_each_rejection_is_counted_by_kind(wire: bytes, kind: str) -> None:
    """SR-23: corrupt, truncated, unknown-type and wrong-version frames are dropped and counted."""
    frames, decoder = _decode_all(wire)
    assert frames == []
    assert decoder.errors[kind] == 1
    assert decoder.bad == 1
    with pytest.raises(FrameError) as err:
        decode_frame(wire)
    assert err.value.kind == kind


def test_hello_and_identity_of_another_version_are_still_decoded() -> None:
    """SR-18 needs the identity of a device that speaks another version."""
    hello = encode(Hello(5, 9), 0, 0, version=9)
    identity = encode(IDENTITY._replace(protocol_version=9), 1, IDENTITY.session_nonce, version=9)
    frames, decoder = _decode_all(hello + identity)
    assert [f.version for f in frames] == [9, 9]
    assert frames[1].message.protocol_version == 9  # type: ignore[union-attr]
    assert decoder.bad == 0


def test_oversize_input_is_dropped_once_and_the_decoder_resynchronises() -> None:
    decoder = StreamDecoder()
    junk = b"\x01" * (MAX_ENCODED + 10)
    assert decoder.feed(junk[:100]) == []
    assert decoder.feed(junk[100:]) == []
    assert decoder.feed(b"\x02" * 50) == []
    frames = decoder.feed(b"\x00" + encode(TELEMETRY, 3, 4))
    assert [f.message for f in frames] == [TELEMETRY]
    assert decoder.errors["oversize"] == 1
    assert MAX_ENCODED > MAX_FRAME


def test_sequence_gaps_are_lost_and_old_frames_are_duplicates() -> None:
    """SR-23/SR-26: gaps counted as lost; repeated or replayed frames dropped."""
    decoder = StreamDecoder()
    decoder.start_session(nonce=7, seq=10)
    wire = b"".join(encode(TELEMETRY, seq, 7) for seq in (11, 12, 15, 15, 13, 16))
    frames = decoder.feed(wire)
    assert [f.seq for f in frames] == [11, 12, 15, 16]
    assert decoder.lost == 2
    assert decoder.errors["duplicate"] == 2


def test_sequence_wraps_around() -> None:
    decoder = StreamDecoder()
    decoder.start_session(nonce=7, seq=0xFFFFFFFE)
    frames = decoder.feed(b"".join(encode(TELEMETRY, s, 7) for s in (0xFFFFFFFF, 0, 1)))
    assert [f.seq for f in frames] == [0xFFFFFFFF, 0, 1]
    assert decoder.lost == 0


def test_foreign_nonce_is_dropped_but_identity_and_hello_pass() -> None:
    """SR-26: a foreign nonce is refused; an identity still reaches the link (SR-32)."""
    decoder = StreamDecoder()
    decoder.start_session(nonce=7, seq=0)
    wire = encode(TELEMETRY, 1, 8) + encode(IDENTITY, 2, 8) + encode(TELEMETRY, 1, 7)
    frames = decoder.feed(wire)
    assert [type(f.message) for f in frames] == [Identity, Telemetry]
    assert decoder.errors["nonce"] == 1


@pytest.mark.parametrize(
    "message",
    [
        ValveCommand(Valve.SUPPLY, True, -1, 0),
        ValveCommand(Valve.SUPPLY, True, 1 << 32, 0),
        Telemetry(0, 70000, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0),
        IDENTITY._replace(probe_serial="x" * 17),
        IDENTITY._replace(device_serial="é"),
        IDENTITY._replace(probe_model="a\x00b"),
    ],
)
def test_values_the_wire_cannot_carry_are_refused_on_encode(message: object) -> None:
    with pytest.raises(EncodeError):
        encode(message, 1, 1)  # type: ignore[arg-type]


def test_sequence_and_nonce_out_of_range_are_refused() -> None:
    with pytest.raises(EncodeError):
        encode(Heartbeat(), 1 << 32, 0)
    with pytest.raises(EncodeError):
        encode(Heartbeat(), 0, -1)


def test_non_messages_are_refused() -> None:
    with pytest.raises(EncodeError):
        encode((1, 2), 1, 1)  # type: ignore[arg-type]


def test_decode_frame_refuses_embedded_delimiters() -> None:
    with pytest.raises(FrameError):
        decode_frame(encode(TELEMETRY, 1, 1) + encode(TELEMETRY, 2, 1))


def test_empty_frames_between_delimiters_are_not_errors() -> None:
    frames, decoder = _decode_all(b"\x00\x00" + encode(ACK, 1, 1) + b"\x00")
    assert len(frames) == 1
    assert decoder.bad == 0


def test_a_device_can_keep_the_header_of_a_refused_frame_to_nack_it() -> None:
    decoder = StreamDecoder(keep_rejects=True)
    decoder.feed(_raw_frame(2, MsgType.VALVE, bytes(10)) + _raw_frame(1, 0x7F, b"\x01"))
    decoder.feed(_raw_frame(1, MsgType.TELEMETRY, bytes(24), crc_xor=1))  # CRC bad: no header
    assert [(kind, h.msg_type, h.seq) for kind, h in decoder.rejects] == [
        ("version", MsgType.VALVE, 1),
        ("unknown_type", 0x7F, 1),
    ]
    assert StreamDecoder().rejects == []


@pytest.mark.parametrize(
    ("message", "energising"),
    [
        (ValveCommand(Valve.SUPPLY, True), True),
        (ValveCommand(Valve.INLET, True), True),
        (ValveCommand(Valve.VENT, False), True),
        (ValveCommand(Valve.SUPPLY, False), False),
        (ValveCommand(Valve.VENT, True), False),
        (ValveCommand(9, False), True),  # unknown valve: never assumed harmless, never raises
        (SafeState(), False),
        (Heartbeat(), False),
    ],
)
def test_energising_classification(message: object, energising: bool) -> None:
    """SR-26: what counts as energising decides which checks a command gets."""
    from protocols import is_energising

    assert is_energising(message) is energising  # type: ignore[arg-type]

"""Typed messages of the wire protocol and their payload layouts.

Every message is an immutable `NamedTuple`: cheap to build on the receive path
(one `struct.unpack_from` and one tuple per frame, DESIGN.md's per-sample budget)
and typed for the layers above. Payload layouts are little-endian and fixed per
message type; `docs/protocol.md` is the normative description of each field.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from enum import IntEnum, IntFlag
from typing import Any, NamedTuple

from protocols.errors import EncodeError

#: The protocol version this package speaks. Always the first byte of a frame.
PROTOCOL_VERSION = 1

#: Fixed width of the ASCII text fields of `Identity` (NUL padded).
TEXT_FIELD_LEN = 16


class MsgType(IntEnum):
    HELLO = 0x01
    IDENTITY = 0x02
    TELEMETRY = 0x10
    VALVE = 0x20
    SAFE_STATE = 0x21
    STIM_CONFIGURE = 0x22
    STIM_START = 0x23
    STIM_STOP = 0x24
    HEARTBEAT = 0x25
    ESTOP = 0x26
    RESET = 0x27
    ACK = 0x30
    NACK = 0x31
    FAULT_REPORT = 0x40


#: Types whose layout is frozen across every protocol version and which a
#: receiver always decodes, so that a version mismatch can be reported (SR-18).
VERSION_INDEPENDENT_TYPES = frozenset({MsgType.HELLO, MsgType.IDENTITY})


class Valve(IntEnum):
    SUPPLY = 0
    INLET = 1
    VENT = 2


#: The position each valve takes in the safe state (SR-01): vent normally open.
SAFE_POSITION_OPEN = {Valve.SUPPLY: False, Valve.INLET: False, Valve.VENT: True}


class Gas(IntEnum):
    N2O = 1
    CO2 = 2


class DeviceKind(IntEnum):
    HARDWARE = 0
    SIMULATOR = 1


class AckStatus(IntEnum):
    EXECUTED = 0
    DUPLICATE = 1  # a retry of a command already executed: acknowledged, not run again


class NackReason(IntEnum):
    EXPIRED = 1
    FOREIGN_NONCE = 2
    NO_SESSION = 3
    UNKNOWN_TYPE = 4
    BAD_LENGTH = 5
    OUT_OF_RANGE = 6
    WRONG_VERSION = 7
    STALE = 8
    INTERLOCK = 9
    DEVICE_FAULT = 10


class ValveBits(IntFlag):
    """`Telemetry.valves`: low nibble reported position, high nibble target position."""

    SUPPLY_OPEN = 0x01
    INLET_OPEN = 0x02
    VENT_OPEN = 0x04
    SUPPLY_TARGET_OPEN = 0x10
    INLET_TARGET_OPEN = 0x20
    VENT_TARGET_OPEN = 0x40


class StimFlags(IntFlag):
    OUTPUT_ON = 0x01  # the output stage is driving the electrode
    TARGET_ON = 0x02  # the device intends stimulation to be on


class StatusFlags(IntFlag):
    SESSION_OPEN = 0x01
    WATCHDOG_TRIPPED = 0x02
    FREEZE_CAP_EXPIRED = 0x04
    STIM_TIMED_OUT = 0x08
    SAFE_STATE = 0x10  # every valve at its safe position and stimulation off


class FaultFlags(IntFlag):
    VALVE_FEEDBACK = 0x0001
    SENSOR = 0x0002
    STIM_HARDWARE = 0x0004
    POWER = 0x0008
    OVERTEMPERATURE = 0x0010
    INTERNAL = 0x0020


class DeviceEvent(IntEnum):
    """Why a `FaultReport` was sent."""

    FAULT_SET = 1
    FAULT_CLEARED = 2
    WATCHDOG_TRIP = 3
    FREEZE_CAP_EXPIRED = 4
    STIM_TIMEOUT = 5
    ESTOP = 6
    BOOT = 7


# --- messages ---------------------------------------------------------------


class Hello(NamedTuple):
    """Host -> device, first frame of every connection; starts a device session."""

    host_nonce: int
    protocol_version: int = PROTOCOL_VERSION


class Identity(NamedTuple):
    """Device -> host: the answer to `Hello` (or unsolicited after a boot)."""

    protocol_version: int
    device_kind: int
    firmware_major: int
    firmware_minor: int
    firmware_patch: int
    gas: int
    probe_uses: int
    session_nonce: int
    host_nonce: int  # echo of the hello's nonce; 0 when unsolicited
    device_serial: str
    probe_model: str
    probe_serial: str

    @property
    def firmware(self) -> str:
        return f"{self.firmware_major}.{self.firmware_minor}.{self.firmware_patch}"


class Telemetry(NamedTuple):
    """Device -> host, the device's complete state, sent periodically (100 Hz nominal)."""

    device_ms: int
    supply_counts: int
    exhaust_counts: int
    tip_counts: int
    valves: int  # ValveBits
    stim_flags: int  # StimFlags
    status_flags: int  # StatusFlags
    stim_measured_10ua: int
    lead_impedance_10ohm: int  # frontend.LEAD_OPEN when open or out of range
    stim_set_10ua: int
    stim_pulse_us: int
    stim_rate_hz: int
    fault_flags: int  # FaultFlags

    @property
    def supply_open(self) -> bool:
        return bool(self.valves & ValveBits.SUPPLY_OPEN)

    @property
    def inlet_open(self) -> bool:
        return bool(self.valves & ValveBits.INLET_OPEN)

    @property
    def vent_open(self) -> bool:
        return bool(self.valves & ValveBits.VENT_OPEN)

    @property
    def stim_on(self) -> bool:
        return bool(self.stim_flags & StimFlags.OUTPUT_ON)


class ValveCommand(NamedTuple):
    """Move one valve. Opening supply/inlet or closing the vent energises (expiry applies);
    a supply open also carries its maximum duration, enforced by the device (SR-25)."""

    valve: int
    open: bool
    expires_at_device_ms: int = 0
    max_open_ms: int = 0


class SafeState(NamedTuple):
    """Supply and inlet closed, vent open, stimulation off. Always executed."""


class StimConfigure(NamedTuple):
    current_10ua: int
    pulse_us: int
    rate_hz: int
    expires_at_device_ms: int = 0


class StimStart(NamedTuple):
    expires_at_device_ms: int = 0


class StimStop(NamedTuple):
    pass


class Heartbeat(NamedTuple):
    """Feeds the device watchdog (SR-02); never acknowledged."""


class EmergencyStop(NamedTuple):
    pass


class Reset(NamedTuple):
    """Ask the device to reboot (it comes back in the safe state with a new nonce)."""


class Ack(NamedTuple):
    command_seq: int
    command_type: int
    status: int = AckStatus.EXECUTED


class Nack(NamedTuple):
    command_seq: int
    command_type: int
    reason: int


class FaultReport(NamedTuple):
    device_ms: int
    event: int  # DeviceEvent
    fault_flags: int
    status_flags: int


Message = (
    Hello
    | Identity
    | Telemetry
    | ValveCommand
    | SafeState
    | StimConfigure
    | StimStart
    | StimStop
    | Heartbeat
    | EmergencyStop
    | Reset
    | Ack
    | Nack
    | FaultReport
)

#: Commands that move the device away from its safe state (SR-26 expiry applies).
ENERGISING_TYPES = frozenset({MsgType.STIM_CONFIGURE, MsgType.STIM_START})


def is_energising(message: Message) -> bool:
    """True when executing `message` could move the device away from its safe state.

    Valve commands energise when they move a valve away from its safe position
    (open supply or inlet, close the vent); every other command that can only
    de-energise is always executed by the device (SR-26).
    """
    if type(message) is ValveCommand:
        safe_open = SAFE_POSITION_OPEN.get(message.valve)  # type: ignore[call-overload]
        # An unknown valve is treated as energising: it gets every check, then a refusal.
        return safe_open is None or safe_open != bool(message.open)
    return type(message) in (StimConfigure, StimStart)


# --- payload layouts ---------------------------------------------------------


class _Layout(NamedTuple):
    msg_type: MsgType
    cls: type[Any]
    struct: struct.Struct
    pack: Callable[[Any], bytes]
    unpack: Callable[[bytes, int], tuple[Any, ...]]


def _layout(msg_type: MsgType, cls: type[Any], fmt: str) -> _Layout:
    s = struct.Struct(fmt)
    return _Layout(msg_type, cls, s, lambda m: s.pack(*m), s.unpack_from)


def _text(value: str, field: str) -> bytes:
    try:
        raw = value.encode("ascii")
    except UnicodeEncodeError as exc:
        raise EncodeError(f"{field} = {value!r} is not ASCII") from exc
    if len(raw) > TEXT_FIELD_LEN or b"\x00" in raw:
        raise EncodeError(
            f"{field} = {value!r} must be at most {TEXT_FIELD_LEN} ASCII characters, no NUL"
        )
    return raw


def _untext(raw: bytes) -> str:
    return raw.split(b"\x00", 1)[0].decode("ascii", "replace")


_IDENTITY = struct.Struct("<BBBBBBHII16s16s16s")


def _pack_identity(i: Identity) -> bytes:
    return _IDENTITY.pack(
        i.protocol_version,
        i.device_kind,
        i.firmware_major,
        i.firmware_minor,
        i.firmware_patch,
        i.gas,
        i.probe_uses,
        i.session_nonce,
        i.host_nonce,
        _text(i.device_serial, "device_serial"),
        _text(i.probe_model, "probe_model"),
        _text(i.probe_serial, "probe_serial"),
    )


def _unpack_identity(buf: bytes, offset: int) -> tuple[Any, ...]:
    v = _IDENTITY.unpack_from(buf, offset)
    return (*v[:9], _untext(v[9]), _untext(v[10]), _untext(v[11]))


LAYOUTS: dict[int, _Layout] = {
    lay.msg_type: lay
    for lay in (
        _layout(MsgType.HELLO, Hello, "<IB"),
        _Layout(MsgType.IDENTITY, Identity, _IDENTITY, _pack_identity, _unpack_identity),
        _layout(MsgType.TELEMETRY, Telemetry, "<IHHHBBBHHHHBH"),
        _layout(MsgType.VALVE, ValveCommand, "<B?II"),
        _layout(MsgType.SAFE_STATE, SafeState, "<"),
        _layout(MsgType.STIM_CONFIGURE, StimConfigure, "<HHBI"),
        _layout(MsgType.STIM_START, StimStart, "<I"),
        _layout(MsgType.STIM_STOP, StimStop, "<"),
        _layout(MsgType.HEARTBEAT, Heartbeat, "<"),
        _layout(MsgType.ESTOP, EmergencyStop, "<"),
        _layout(MsgType.RESET, Reset, "<"),
        _layout(MsgType.ACK, Ack, "<IBB"),
        _layout(MsgType.NACK, Nack, "<IBB"),
        _layout(MsgType.FAULT_REPORT, FaultReport, "<IBHB"),
    )
}

#: Message class -> its layout, for the encoder.
LAYOUT_BY_CLASS: dict[type, _Layout] = {lay.cls: lay for lay in LAYOUTS.values()}

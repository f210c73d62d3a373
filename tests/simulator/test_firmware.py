"""The emulated firmware against docs/protocol.md, in virtual time, through the daemon's link."""

from __future__ import annotations

import itertools
import statistics

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.link import Acked, DeviceReset, Identified, Nacked
from protocols import (
    AckStatus,
    EmergencyStop,
    Hello,
    Identity,
    NackReason,
    SafeState,
    StatusFlags,
    StimConfigure,
    StimStart,
    StimStop,
    Telemetry,
    Valve,
    ValveCommand,
    encode,
)
from protocols.framing import HEADER
from simulator.device import SimConfig, SimulatedDevice
from simulator.firmware import DeviceIdentity
from tests.simulator.bench import Bench, frames_of

OPEN_SUPPLY = ValveCommand(Valve.SUPPLY, True, 0, 182_000)


def connected(**config: object) -> Bench:
    bench = Bench(SimConfig(**config))  # type: ignore[arg-type]
    bench.connect()
    return bench


def pressurise(bench: Bench) -> None:
    bench.send(ValveCommand(Valve.VENT, False))
    bench.send(ValveCommand(Valve.INLET, True))
    bench.run(1.0)


def test_boot_announces_identity_every_second_until_hello() -> None:
    """docs/protocol.md 8.8: unsolicited identity (host_nonce 0) at boot and every 1 s."""
    dev = SimulatedDevice()
    out = b""
    for _ in range(2500):
        dev.advance(0.001)
        out += dev.transmit()
    frames = frames_of(out)
    assert [type(f.message) for f in frames] == [Identity] * 3
    assert all(f.message.host_nonce == 0 for f in frames)  # type: ignore[union-attr]


def test_hello_opens_a_session_with_a_new_nonce_in_the_safe_state() -> None:
    """SR-01 (device side) and SR-26: a hello makes the device safe and starts a new session."""
    bench = connected()
    first = bench.link.session_nonce
    pressurise(bench)
    assert bench.last.inlet_open and not bench.last.vent_open
    bench.connect(host_nonce=0xDEF)
    assert bench.link.session_nonce not in (0, first)
    bench.run(0.05)
    assert not bench.last.inlet_open and bench.last.vent_open
    assert bench.last.status_flags & StatusFlags.SAFE_STATE


def test_the_hello_that_opened_the_session_repeated_changes_nothing() -> None:
    """SR-26, docs/protocol.md 8.1 rule 7: a replayed or retried hello keeps the session.

    The device answers the current identity again; the host ignores it (no device reset),
    nothing is made safe, and the repeated hello does not feed the watchdog.
    """
    bench = connected()
    first = bench.link.session_nonce
    pressurise(bench)
    hello = encode(Hello(0xABC), 0, 0)
    for _ in range(3):
        bench.dev.receive(hello)
        bench.run(0.05)
    assert bench.dev.firmware.repeated_hellos == 3
    assert bench.link.state == "open" and bench.link.session_nonce == first
    assert not any(isinstance(e, DeviceReset) for e in bench.events)
    assert bench.last.inlet_open and not bench.last.vent_open
    repeats = [f for f in frames_of(b"".join(bench.raw)) if isinstance(f.message, Identity)]
    assert all(f.nonce == first and f.message.session_nonce == first for f in repeats[1:])
    # Only hellos from now on: the watchdog still trips 300 ms after the last valid frame.
    bench.heartbeats = False
    for _ in range(10):
        bench.dev.receive(hello)
        bench.run(0.05)
    assert bench.last.status_flags & StatusFlags.WATCHDOG_TRIPPED
    assert not bench.last.inlet_open


def test_telemetry_rate_follows_the_configuration() -> None:
    for hz in (100.0, 50.0):
        bench = connected(telemetry_hz=hz)
        n = len(bench.telemetry)
        bench.run(2.0)
        assert len(bench.telemetry) - n == pytest.approx(2 * hz, abs=1)
        times = [t.device_ms for t in bench.telemetry[-20:]]
        assert {b - a for a, b in itertools.pairwise(times)} == {round(1000 / hz)}


def test_sensor_noise_is_within_the_stated_sigma() -> None:
    """Seeded noise: tip sigma <= 0.1 C, pressure <= 0.3 psi: nominal runs raise no alarm."""
    bench = connected()
    pressurise(bench)
    bench.run(3.0)
    recent = bench.telemetry[-200:]
    assert statistics.pstdev(bench.tip_c(t) for t in recent) <= 0.1
    assert statistics.pstdev(bench.supply_psi(t) for t in recent) <= 0.3
    assert statistics.pstdev(bench.supply_psi(t) for t in recent) > 0.02  # there is noise


def test_same_seed_same_bytes_and_another_seed_differs() -> None:
    def run(seed: int) -> bytes:
        bench = Bench(SimConfig(seed=seed))
        bench.connect()
        pressurise(bench)
        bench.send(OPEN_SUPPLY)
        bench.run(2.0)
        return b"".join(bench.raw)

    assert run(7) == run(7)
    assert run(7) != run(8)


def test_valves_take_their_actuation_time() -> None:
    """15 ms from the command to the position switch (the simulator's default)."""
    bench = connected()
    bench.dt_s = 0.001
    bench.send(ValveCommand(Valve.VENT, False))
    start = bench.dev.now_s
    while bench.dev.physics.vent_open:
        bench.run(0.001)
    assert bench.dev.now_s - start == pytest.approx(0.015, abs=0.0015)


def test_watchdog_makes_the_device_safe_300_ms_after_the_last_frame() -> None:
    """SR-02: commanded at 300 ms, reported closed within 300 ms + actuation + one period."""
    bench = connected()
    pressurise(bench)
    bench.send(OPEN_SUPPLY)
    bench.run(0.5)
    assert bench.last.supply_open
    bench.heartbeats = False
    last_frame = bench.dev.firmware.device_ms(bench.dev.now_s)
    bench.run(0.5)
    closed = next(t for t in bench.telemetry if t.device_ms > last_frame and not t.supply_open)
    tripped = next(t for t in bench.telemetry if t.status_flags & StatusFlags.WATCHDOG_TRIPPED)
    assert 300 <= tripped.device_ms - last_frame <= 310
    assert closed.device_ms - last_frame <= 300 + 15 + 10
    assert not closed.inlet_open and closed.vent_open


def test_heartbeats_alone_keep_the_device_energised() -> None:
    """SR-02: any valid frame of the session, heartbeats included, feeds the watchdog."""
    bench = connected()
    pressurise(bench)
    bench.run(5.0)
    assert bench.last.inlet_open
    assert not bench.last.status_flags & StatusFlags.WATCHDOG_TRIPPED


def test_freeze_cap_closes_the_supply_even_with_heartbeats() -> None:
    """SR-25: the supply-open command's maximum duration is enforced by the device."""
    bench = connected()
    pressurise(bench)
    bench.send(ValveCommand(Valve.SUPPLY, True, 0, 2000))
    bench.run(0.1)
    opened = next(t for t in bench.telemetry if t.supply_open)
    bench.run(2.1)
    closed = next(
        t for t in bench.telemetry if t.device_ms > opened.device_ms and not t.supply_open
    )
    assert closed.status_flags & StatusFlags.FREEZE_CAP_EXPIRED
    assert 2000 <= closed.device_ms - opened.device_ms <= 2000 + 15 + 10 + 15
    assert bench.last.inlet_open  # only the supply is capped


def test_supply_open_without_a_cap_is_refused() -> None:
    """SR-25: max_open_ms 0 is out of range."""
    bench = connected()
    seq = bench.send(ValveCommand(Valve.SUPPLY, True, 0, 0))
    reply = bench.reply_to(seq)
    assert isinstance(reply, Nacked) and reply.reason == NackReason.OUT_OF_RANGE


def test_late_energising_commands_are_refused_and_nothing_moves() -> None:
    """SR-26: expires_at_device_ms in the past -> NACK EXPIRED."""
    bench = connected()
    now_ms = bench.dev.firmware.device_ms(bench.dev.now_s)
    bench.dev.receive(
        encode(ValveCommand(Valve.INLET, True, now_ms - 5, 0), 900, bench.link.session_nonce)
    )
    nacks = [
        f.message for f in frames_of(bench.dev.transmit()) if type(f.message).__name__ == "Nack"
    ]
    assert [(n.command_seq, n.reason) for n in nacks] == [(900, NackReason.EXPIRED)]  # type: ignore[union-attr]
    bench.run(0.05)
    assert not bench.last.inlet_open


def test_expired_reply_reaches_the_link() -> None:
    bench = connected()
    seq = bench.send(ValveCommand(Valve.INLET, True, 1, 0))  # expiry 1 ms: long gone
    reply = bench.reply_to(seq)
    assert isinstance(reply, Nacked) and reply.reason == NackReason.EXPIRED


def test_a_retry_is_acknowledged_as_duplicate_and_not_run_again() -> None:
    """SR-26: a retry reuses its sequence number; a duplicate is acknowledged, not executed."""
    bench = connected()
    seq, wire = bench.link.send(ValveCommand(Valve.INLET, True), bench.t)
    bench.dev.receive(wire)
    bench.run(0.05)
    bench.send(ValveCommand(Valve.INLET, False))
    bench.run(0.05)
    assert not bench.last.inlet_open
    bench.dev.receive(wire)  # the same bytes again, as a retry would send them
    out = frames_of(bench.dev.transmit())
    acks = [f.message for f in out if type(f.message).__name__ == "Ack"]
    assert acks and acks[-1].command_seq == seq and acks[-1].status == AckStatus.DUPLICATE  # type: ignore[union-attr]
    bench.run(0.05)
    assert not bench.last.inlet_open


def test_foreign_nonce_refuses_energising_but_executes_de_energising() -> None:
    """SR-26: a foreign nonce is refused; de-energising commands are always executed."""
    bench = connected()
    pressurise(bench)
    foreign = bench.link.session_nonce ^ 0x1234
    bench.send_raw(ValveCommand(Valve.SUPPLY, True, 10**9, 5000), seq=500, nonce=foreign)
    bench.run(0.05)
    assert not bench.last.supply_open
    bench.send_raw(SafeState(), seq=501, nonce=foreign)
    bench.run(0.05)
    assert not bench.last.inlet_open and bench.last.vent_open


def test_stale_energising_command_is_refused() -> None:
    bench = connected()
    for _ in range(70):
        bench.send(ValveCommand(Valve.INLET, False))
    old = bench.link._next_seq - 69  # an old sequence number, on purpose
    bench.dev.receive(
        encode(ValveCommand(Valve.INLET, True, 10**9, 0), old, bench.link.session_nonce)
    )
    frames = frames_of(bench.dev.transmit())
    nacks = [f.message for f in frames if type(f.message).__name__ == "Nack"]
    assert nacks and nacks[-1].reason == NackReason.STALE  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "command",
    [
        StimConfigure(501, 100, 2),
        StimConfigure(100, 49, 2),
        StimConfigure(100, 1001, 2),
        StimConfigure(100, 100, 0),
        StimConfigure(100, 100, 101),
    ],
)
def test_stimulation_out_of_range_is_refused(command: StimConfigure) -> None:
    """SR-16: 0-5.00 mA, 50-1000 us, 1-100 Hz; other values refused, never rounded."""
    bench = connected()
    bench.send(StimConfigure(100, 100, 2))
    bench.run(0.02)
    seq = bench.send(command)
    reply = bench.reply_to(seq)
    assert isinstance(reply, Nacked) and reply.reason == NackReason.OUT_OF_RANGE
    bench.run(0.02)
    assert (bench.last.stim_set_10ua, bench.last.stim_pulse_us, bench.last.stim_rate_hz) == (
        100,
        100,
        2,
    )


def test_stimulation_stops_60_s_after_the_last_start_or_configure() -> None:
    """SR-16: the device stops stimulation by itself after 60 s."""
    bench = connected()
    bench.dt_s = 0.01
    bench.send(StimConfigure(100, 100, 2))
    bench.send(StimStart())
    bench.run(30.0)
    bench.send(StimConfigure(90, 100, 2))  # restarts the 60 s
    bench.run(59.0)
    assert bench.last.stim_on
    bench.run(1.1)
    assert not bench.last.stim_on
    assert bench.last.status_flags & StatusFlags.STIM_TIMED_OUT


def test_stimulation_and_supply_exclude_each_other_on_the_device() -> None:
    """SR-15 (device side): no stimulation with the supply open, no open while stimulating."""
    bench = connected()
    pressurise(bench)
    bench.send(StimConfigure(100, 100, 2))
    bench.send(StimStart())
    seq = bench.send(OPEN_SUPPLY)
    assert bench.reply_to(seq).reason == NackReason.INTERLOCK  # type: ignore[union-attr]
    bench.send(StimStop())
    bench.send(OPEN_SUPPLY)
    bench.run(0.05)
    seq = bench.send(StimStart())
    assert bench.reply_to(seq).reason == NackReason.INTERLOCK  # type: ignore[union-attr]
    assert not bench.last.stim_on


def test_use_count_counts_the_first_supply_open_of_each_device_session() -> None:
    """SR-18: the device counts a use at the first supply open of a device session."""
    bench = connected(identity=DeviceIdentity(probe_uses=3))
    assert bench.link.identity is not None and bench.link.identity.probe_uses == 3
    pressurise(bench)
    bench.send(OPEN_SUPPLY)
    bench.run(0.1)
    bench.send(ValveCommand(Valve.SUPPLY, False))
    bench.send(OPEN_SUPPLY)
    bench.run(0.1)
    assert bench.status()["probe_uses"] == 4
    bench.connect(host_nonce=0x77)
    assert bench.link.identity is not None and bench.link.identity.probe_uses == 4


def test_estop_makes_the_device_safe() -> None:
    bench = connected()
    pressurise(bench)
    bench.send(OPEN_SUPPLY)
    bench.run(0.1)
    seq = bench.send(EmergencyStop())
    assert isinstance(bench.reply_to(seq), Acked)
    bench.run(0.03)
    assert not (bench.last.supply_open or bench.last.inlet_open) and bench.last.vent_open


def _raw(version: int, msg_type: int, payload: bytes, seq: int, nonce: int) -> bytes:
    import struct
    import zlib

    from cobs import cobs

    body = HEADER.pack(version, msg_type, seq, nonce, len(payload)) + payload
    return cobs.encode(body + struct.pack("<I", zlib.crc32(body))) + b"\x00"


@pytest.mark.parametrize(
    ("version", "msg_type", "payload", "reason"),
    [
        (1, 0x7E, b"", NackReason.UNKNOWN_TYPE),
        (2, 0x21, b"", NackReason.WRONG_VERSION),
        (1, 0x20, b"\x00\x01", NackReason.BAD_LENGTH),
        (1, 0x20, bytes([9, 0]) + bytes(8), NackReason.OUT_OF_RANGE),
    ],
)
def test_malformed_and_unknown_commands_get_a_nack(
    version: int, msg_type: int, payload: bytes, reason: int
) -> None:
    """SR-23 (device side): answered with a NACK, never a crash."""
    bench = connected()
    bench.dev.receive(_raw(version, msg_type, payload, 4242, bench.link.session_nonce))
    nacks = [
        f.message for f in frames_of(bench.dev.transmit()) if type(f.message).__name__ == "Nack"
    ]
    assert [(n.command_seq, n.reason) for n in nacks] == [(4242, reason)]  # type: ignore[union-attr]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(max_size=300), max_size=8))
def test_garbage_never_crashes_or_energises_the_device(chunks: list[bytes]) -> None:
    """SR-23: no input crashes the device or moves it out of the safe state."""
    dev = SimulatedDevice()
    dev.receive(encode(Hello(5), 0, 0))
    for chunk in chunks:
        dev.receive(chunk)
        dev.advance(0.01)
    out = frames_of(dev.transmit())
    assert any(isinstance(f.message, Identity) for f in out)
    assert not (
        dev.physics.valve_commanded_open("supply") or dev.physics.valve_commanded_open("inlet")
    )
    assert dev.physics.valve_commanded_open("vent") and not dev.physics.stim_on
    dev.advance(0.05)
    assert any(isinstance(f.message, Telemetry) for f in frames_of(dev.transmit()))


def test_reset_reboots_into_the_safe_state_with_a_new_nonce() -> None:
    """docs/protocol.md 8.8 and SR-32: the link sees an unsolicited identity."""
    from protocols import Reset

    bench = connected()
    pressurise(bench)
    bench.send(Reset())
    bench.run(0.05)
    assert any(isinstance(e, DeviceReset) for e in bench.events)
    assert not bench.dev.physics.valve_commanded_open("inlet")
    assert bench.dev.firmware.device_ms(bench.dev.now_s) < 100
    assert not any(isinstance(e, Identified) for e in bench.events[-3:])


def test_sensor_defaults_are_the_normative_front_end() -> None:
    """docs/protocol.md 7: the simulated board uses exactly the normative front end."""
    from protocols.frontend import DEFAULT_THERMISTOR, EXHAUST_CHANNEL, SUPPLY_CHANNEL
    from simulator.sensors import SensorParams

    params = SensorParams()
    assert params.thermistor == DEFAULT_THERMISTOR
    assert (params.supply, params.exhaust) == (SUPPLY_CHANNEL, EXHAUST_CHANNEL)
    bench = connected()
    bench.run(0.5)
    truth = bench.dev.physics
    assert bench.tip_c() == pytest.approx(truth.tip_c, abs=0.3)
    assert bench.supply_psi() == pytest.approx(truth.supply_psi, abs=1.0)
    assert bench.exhaust_psi() == pytest.approx(truth.exhaust_psi, abs=1.0)

"""The link with a fake clock: handshake, acks, retries, expiry, heartbeat, loss, health."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.link import (
    Acked,
    CommandFailed,
    DeviceReset,
    Identified,
    Link,
    LinkError,
    LinkLost,
    LinkParams,
    LinkRestored,
    Nacked,
)
from protocols import (
    Ack,
    AckStatus,
    Frame,
    Heartbeat,
    Hello,
    Identity,
    Nack,
    NackReason,
    SafeState,
    StimStart,
    StreamDecoder,
    Telemetry,
    ValveCommand,
    encode,
)
from protocols.messages import LAYOUT_BY_CLASS, Valve

NONCE = 0x5EED0001


class FakeDevice:
    """Just enough of a device to answer the link: identity, telemetry, acks."""

    def __init__(self, session_nonce: int = NONCE) -> None:
        self.decoder = StreamDecoder()
        self.session_nonce = session_nonce
        self.seq = 100
        self.received: list[Frame] = []

    def take(self, data: bytes) -> list[Frame]:
        frames = self.decoder.feed(data)
        self.received.extend(frames)
        return frames

    def send(self, message: object, nonce: int | None = None) -> bytes:
        self.seq += 1
        return encode(message, self.seq, self.session_nonce if nonce is None else nonce)  # type: ignore[arg-type]

    def identity(self, host_nonce: int, session_nonce: int | None = None) -> bytes:
        nonce = self.session_nonce if session_nonce is None else session_nonce
        ident = Identity(1, 1, 0, 1, 0, 1, 0, nonce, host_nonce, "SIM-1", "CRYO-20G-90", "P-1")
        return self.send(ident, nonce)

    def telemetry(self, device_ms: int) -> bytes:
        return self.send(Telemetry(device_ms, 0, 0, 0, 0x44, 0, 0x11, 0, 250, 0, 0, 0, 0))

    def ack(self, frame: Frame, status: int = AckStatus.EXECUTED) -> bytes:
        return self.send(Ack(frame.seq, frame.msg_type, status))


def open_link(params: LinkParams | None = None, now: float = 0.0) -> tuple[Link, FakeDevice]:
    link = Link(params)
    dev = FakeDevice()
    dev.take(link.hello(0xABC, now))
    events = link.receive(dev.identity(0xABC), now)
    assert [type(e) for e in events] == [Identified]
    link.receive(dev.telemetry(1000), now)
    return link, dev


def test_handshake_opens_a_session_on_the_echoed_nonce() -> None:
    link = Link()
    dev = FakeDevice()
    hello = dev.take(link.hello(0xABC, 0.0))
    assert hello[0].message == Hello(0xABC) and hello[0].nonce == 0
    # An identity echoing another hello is not ours.
    assert link.receive(dev.identity(0x999), 0.01) == []
    assert link.state == "hello_sent"
    events = link.receive(dev.identity(0xABC), 0.02)
    assert isinstance(events[0], Identified) and link.state == "open"
    assert link.session_nonce == NONCE


def test_commands_before_the_session_are_refused() -> None:
    with pytest.raises(LinkError, match="no device session"):
        Link().send(SafeState(), 0.0)


def test_only_frames_of_the_session_nonce_are_accepted() -> None:
    """SR-26: a foreign nonce is refused."""
    link, dev = open_link()
    events = link.receive(
        dev.send(Telemetry(1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0), nonce=NONCE + 1), 0.01
    )
    assert events == []
    assert link.health().bad_by_kind == {"nonce": 1}


def test_ack_reports_round_trip_and_clears_pending() -> None:
    link, dev = open_link()
    seq, wire = link.send(SafeState(), 1.0)
    (frame,) = dev.take(wire)
    events = link.receive(dev.ack(frame), 1.004)
    assert len(events) == 1 and isinstance(events[0], Acked)
    assert events[0].seq == seq and events[0].rtt_s == pytest.approx(0.004)
    assert link.pending() == {}


def test_retry_reuses_sequence_and_bytes_then_fails_after_max_retries() -> None:
    """SR-26: a retry reuses its sequence number; retries are bounded."""
    params = LinkParams(ack_timeout_s=0.05, max_retries=2)
    link, _dev = open_link(params)
    seq, wire = link.send(SafeState(), 1.0)
    assert wire not in link.poll(1.049)[0]  # not yet due
    out1, ev1 = link.poll(1.05)
    assert wire in out1 and ev1 == []
    out2, _ = link.poll(1.101)
    assert wire in out2
    out3, ev3 = link.poll(1.152)
    assert wire not in out3
    assert [type(e) for e in ev3 if not isinstance(e, LinkLost)] == [CommandFailed]
    failed = next(e for e in ev3 if isinstance(e, CommandFailed))
    assert failed.seq == seq and failed.attempts == 3
    assert link.health().retries == 2 and link.health().failed == 1


def test_duplicate_ack_is_reported_as_duplicate() -> None:
    link, dev = open_link()
    _, wire = link.send(SafeState(), 1.0)
    (frame,) = dev.take(wire)
    (event,) = link.receive(dev.ack(frame, AckStatus.DUPLICATE), 1.01)
    assert isinstance(event, Acked) and event.duplicate


def test_nack_is_reported_with_its_reason_and_late_replies_are_ignored() -> None:
    link, dev = open_link()
    _, wire = link.send(StimStart(), 1.0)
    (frame,) = dev.take(wire)
    nack = dev.send(Nack(frame.seq, frame.msg_type, NackReason.EXPIRED))
    (event,) = link.receive(nack, 1.01)
    assert isinstance(event, Nacked) and event.reason == NackReason.EXPIRED
    assert link.receive(dev.ack(frame), 1.02) == []  # already settled


def test_energising_commands_expire_relative_to_device_time() -> None:
    """SR-26: energising commands carry expires_at_device_ms; de-energising ones need none."""
    params = LinkParams(command_ttl_ms=200)
    link, dev = open_link(params, now=0.0)  # telemetry device_ms=1000 at t=0
    _, wire = link.send(ValveCommand(Valve.SUPPLY, True, 0, 182_000), 0.5)
    (frame,) = dev.take(wire)
    assert frame.message == ValveCommand(Valve.SUPPLY, True, 1000 + 500 + 200, 182_000)
    _, wire = link.send(ValveCommand(Valve.SUPPLY, False), 0.5)
    (frame,) = dev.take(wire)
    assert frame.message == ValveCommand(Valve.SUPPLY, False, 0, 0)


def test_supply_open_carries_its_maximum_duration() -> None:
    """SR-25: the maximum open duration travels with the command, untouched by the link."""
    link, dev = open_link()
    _, wire = link.send(ValveCommand(Valve.SUPPLY, True, 0, 182_000), 0.1)
    (frame,) = dev.take(wire)
    assert frame.message.max_open_ms == 182_000  # type: ignore[union-attr]


def test_energising_without_device_time_is_refused() -> None:
    link = Link()
    dev = FakeDevice()
    dev.take(link.hello(1, 0.0))
    link.receive(dev.identity(1), 0.0)
    with pytest.raises(LinkError, match="device time unknown"):
        link.send(ValveCommand(Valve.INLET, True), 0.0)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(0.0005, 0.2), min_size=1, max_size=200))
def test_heartbeat_never_lets_50_ms_pass_without_a_frame(gaps: list[float]) -> None:
    """SR-02: whatever the loop's cadence, the link has a frame out at least every heartbeat_s
    after each poll (the loop polls at least every 5 ms in the runtime)."""
    link, dev = open_link()
    now = 0.0
    last_tx = 0.0
    for gap in gaps:
        step = min(gap, 0.005)
        now += step
        out, _ = link.poll(now)
        if out:
            last_tx = now
            assert all(isinstance(f.message, Heartbeat) for f in dev.take(out))
        assert now - last_tx < 0.05 + 1e-9


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(0.0005, 0.2), min_size=1, max_size=200))
def test_a_loop_that_waits_only_idle_s_heartbeats_in_time(gaps: list[float]) -> None:
    """SR-02 and SR-03 for a loop that waits long (serve waits up to 15 ms for input): it
    never waits past `idle_s`, so a heartbeat is never late and a loss is seen on time."""
    link, dev = open_link()
    now = last_tx = 0.0
    for gap in gaps:
        now += min(gap, link.idle_s(now))
        out, events = link.poll(now)
        if out:
            last_tx = now
            assert all(isinstance(f.message, Heartbeat) for f in dev.take(out))
        assert now - last_tx <= link.params.heartbeat_s + 1e-9
        lost = [e for e in events if isinstance(e, LinkLost)]
        assert not lost or lost[0].silent_s <= link.params.link_lost_s + 1e-9


def test_idle_s_counts_down_to_the_next_retry() -> None:
    link, _dev = open_link()
    link.heartbeats_enabled = False
    link.send(ValveCommand(Valve.VENT, True), 0.0)
    assert link.idle_s(0.0) == min(link.params.ack_timeout_s, link.params.link_lost_s)


def test_heartbeats_stop_when_asked() -> None:
    """SR-03: after a link loss the daemon stops heartbeating so the device watchdog trips."""
    link, _dev = open_link()
    link.heartbeats_enabled = False
    out = b"".join(link.poll(t / 100)[0] for t in range(1, 100))
    assert out == b""


def test_link_lost_after_250_ms_without_telemetry_and_restored() -> None:
    """SR-03: no valid telemetry for 250 ms is a link loss, reported once."""
    link, dev = open_link(now=0.0)
    assert not any(isinstance(e, LinkLost) for e in link.poll(0.249)[1])
    events = link.poll(0.25)[1]
    assert [e for e in events if isinstance(e, LinkLost)] == [LinkLost(0.25)]
    assert not any(isinstance(e, LinkLost) for e in link.poll(0.4)[1])
    events = link.receive(dev.telemetry(1500), 0.5)
    assert isinstance(events[0], LinkRestored) and isinstance(events[1], Telemetry)


def test_garbage_does_not_keep_the_link_alive() -> None:
    """SR-03: only valid telemetry counts; corrupt bytes are not a sign of life."""
    link, _dev = open_link(now=0.0)
    link.receive(b"\x01\x02\x03\x00" * 20, 0.2)
    assert any(isinstance(e, LinkLost) for e in link.poll(0.26)[1])


def test_unsolicited_identity_is_a_device_reset() -> None:
    """SR-32: an identity we did not ask for (new nonce) means the device reset."""
    link, dev = open_link()
    (event,) = link.receive(dev.identity(0, session_nonce=NONCE + 7), 0.1)
    assert isinstance(event, DeviceReset) and event.reason == "unsolicited_identity"
    assert link.state == "idle"


def test_device_time_going_back_is_a_device_reset() -> None:
    """SR-32: device time going back."""
    link, dev = open_link()
    events = link.receive(dev.telemetry(500), 0.1)
    assert isinstance(events[0], DeviceReset) and events[0].reason == "device_time_back"


def test_replayed_identity_of_the_session_is_dropped() -> None:
    link = Link()
    dev = FakeDevice()
    dev.take(link.hello(0xABC, 0.0))
    identity = dev.identity(0xABC)
    link.receive(identity, 0.0)
    assert link.receive(identity, 0.1) == []
    assert link.health().bad_by_kind == {"duplicate": 1}


def test_quality_window_counts_good_bad_and_lost() -> None:
    """SR-23: the ratio bad / (good + bad + lost) over a 5 s window."""
    link, dev = open_link(now=0.0)
    now, device_ms = 0.0, 1000
    link.poll(now)
    for i in range(700):
        now += 0.01
        device_ms += 10
        wire = dev.telemetry(device_ms)
        if i % 100 == 0:
            wire = b"\x07\x07\x07\x00"  # a corrupt frame instead of this one
        link.receive(wire, now)
        link.poll(now)
    good, bad, lost, window = link.quality()
    assert 5.0 <= window < 6.0
    # One corrupt frame a second; the window's edges are sampled once a second.
    assert abs(bad - window) <= 1.0
    assert lost == bad  # each corrupt frame leaves a gap in the sequence
    assert good == pytest.approx(100 * window - bad, abs=2)


def test_every_frame_can_be_traced() -> None:
    seen: list[tuple[str, int, str]] = []
    link = Link(tracer=lambda d, t, seq, m: seen.append((d, seq, type(m).__name__)))
    dev = FakeDevice()
    dev.take(link.hello(5, 0.0))
    link.receive(dev.identity(5), 0.0)
    assert seen == [("tx", 0, "Hello"), ("rx", 101, "Identity")]


def test_layout_table_covers_every_message_the_link_sends() -> None:
    for cls in (SafeState, ValveCommand, StimStart, Heartbeat, Hello):
        assert cls in LAYOUT_BY_CLASS


def test_frames_after_the_identity_in_the_same_chunk_get_the_session_rules() -> None:
    """SR-26: a frame of another nonce is refused even when it arrives with the identity."""
    link = Link()
    dev = FakeDevice()
    dev.take(link.hello(0xABC, 0.0))
    chunk = (
        dev.identity(0xABC)
        + dev.send(Telemetry(1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0), nonce=0)
        + dev.telemetry(5)
    )
    events = link.receive(chunk, 0.0)
    assert [type(e).__name__ for e in events] == ["Identified", "Telemetry"]
    assert events[1].device_ms == 5  # type: ignore[union-attr]
    assert link.health().bad_by_kind == {"nonce": 1}
    assert link.health().good == 2

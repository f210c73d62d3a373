"""The device connection against the simulator in virtual time: SR-01, SR-03, SR-18, SR-32."""

from __future__ import annotations

import itertools

import pytest

from console.connection import (
    Connection,
    ConnectionSetup,
    DeviceIdentified,
    DeviceWasReset,
    LinkDown,
    LinkUp,
    Notice,
    NotReadyError,
    SafeStateCommanded,
    SafeStateReported,
)
from console.handshake import Expectation
from console.store import OpenedProbe
from console.virtual import VirtualRunner
from drivers.link import LinkParams
from drivers.snapshot import Snapshots
from drivers.thermistor import Thermistor
from protocols import SafeState, StatusFlags, Valve, ValveCommand
from simulator.device import SimConfig, SimulatedDevice
from simulator.faults import parse_fault
from simulator.firmware import DeviceIdentity

MODEL = "CRYO-20G-90"


class Rig:
    def __init__(
        self,
        *faults: str,
        gas: str = "N2O",
        identity: DeviceIdentity | None = None,
        opened: OpenedProbe | None = None,
        expected_gas: str = "N2O",
    ) -> None:
        self.device = SimulatedDevice(
            SimConfig(
                gas=gas,
                identity=identity or DeviceIdentity(),
                faults=tuple(parse_fault(f) for f in faults),
            )
        )
        setup = ConnectionSetup(
            link=LinkParams(),
            snapshots=Snapshots(Thermistor(floor_c=-91.5)),
            expectation=Expectation(expected_gas, MODEL, {MODEL, "CRYO-16G-60"}, True),
            opened_before=lambda serial: opened,
        )
        counter = itertools.count(0x1000)
        self.sent: list[str] = []
        self.conn = Connection(
            setup,
            lambda: next(counter),
            tracer=lambda d, t, seq, m: self.sent.append(type(m).__name__) if d == "tx" else None,
        )
        self.notices: list[tuple[float, Notice]] = []
        self.runner = VirtualRunner(
            self.conn, self.device, on_notice=lambda n, t: self.notices.append((t, n))
        )
        self.runner.start()

    def of(self, kind: type) -> list[Notice]:
        return [n for _, n in self.notices if isinstance(n, kind)]


def test_safe_state_is_commanded_first_and_verified_from_telemetry() -> None:
    """SR-01: after connecting, the safe state before anything else, verified from telemetry."""
    rig = Rig()
    rig.runner.run(0.5)
    assert rig.sent[:2] == ["Hello", "SafeState"]
    (identified,) = rig.of(DeviceIdentified)
    assert identified.refusals == [] and not identified.continuing  # type: ignore[union-attr]
    assert rig.of(SafeStateCommanded) == [SafeStateCommanded("connect", None)]
    (reported,) = rig.of(SafeStateReported)
    assert reported.device_ms < 100  # type: ignore[union-attr]
    assert rig.conn.ready and rig.conn.may_energise


def test_link_loss_commands_safe_state_stops_heartbeats_and_reconnects() -> None:
    """SR-03: link lost after 250 ms; safe state, then heartbeats stop; a new session after."""
    rig = Rig("link_drop:duration_s=1.5,dir=to_host@1")
    rig.runner.run(0.9)
    rig.runner.write(rig.conn.send(ValveCommand(Valve.VENT, False), rig.runner.now))
    rig.runner.write(rig.conn.send(ValveCommand(Valve.INLET, True), rig.runner.now))
    rig.runner.run(0.3)
    assert rig.device.physics.inlet_open
    rig.runner.run(1.0)
    (t_lost, lost) = next((t, n) for t, n in rig.notices if isinstance(n, LinkDown))
    # The last frame came at most one telemetry period before the drop began at 1.0 s.
    assert lost.silent_s >= 0.25 and 1.24 <= t_lost <= 1.26  # type: ignore[union-attr]
    assert SafeStateCommanded("link_lost", "ALM_LINK_LOST") in rig.of(SafeStateCommanded)
    assert not rig.conn.link.heartbeats_enabled
    # The drop is towards the host only: the safe state reached the device.
    status = rig.device.status()
    assert not status["valves"]["inlet"]["open"] and status["valves"]["vent"]["open"]
    rig.runner.run(2.0)
    identified = rig.of(DeviceIdentified)
    assert len(identified) == 2 and identified[1].continuing  # type: ignore[union-attr]
    assert rig.conn.ready and not rig.conn.lost
    assert rig.of(SafeStateCommanded)[-1] == SafeStateCommanded("connect", None)


def test_link_loss_towards_the_device_trips_the_device_watchdog() -> None:
    """SR-02/SR-03: when only the host-to-device direction fails, the device makes itself safe."""
    rig = Rig("link_drop:duration_s=1,dir=to_device@1")
    rig.runner.run(0.5)
    rig.runner.write(rig.conn.send(ValveCommand(Valve.VENT, False), rig.runner.now))
    rig.runner.write(rig.conn.send(ValveCommand(Valve.INLET, True), rig.runner.now))
    rig.runner.run(0.7)  # to 1.2 s: the drop began at 1.0 s
    assert rig.conn.last is not None and rig.conn.last.inlet_open
    rig.runner.run(0.13)  # the watchdog trips 300-310 ms after the last frame, valves 15 ms later
    snap = rig.conn.last
    assert snap is not None and not snap.inlet_open and snap.vent_open
    assert snap.status_flags & StatusFlags.WATCHDOG_TRIPPED


@pytest.mark.parametrize(
    ("kwargs", "code"),
    [
        ({"gas": "CO2"}, "gas"),
        ({"identity": DeviceIdentity(probe_model="CRYO-99G")}, "probe_model_unknown"),
        ({"identity": DeviceIdentity(probe_model="CRYO-16G-60")}, "probe_model"),
        ({"identity": DeviceIdentity(probe_uses=1)}, "probe_used"),
        ({"identity": DeviceIdentity(protocol_version=2)}, "protocol_version"),
        (
            {"opened": OpenedProbe("PRB-000001", MODEL, "SIM-0001", "2026-11-27T10:00:00Z", "s1")},
            "probe_opened",
        ),
    ],
)
def test_identity_refusals_block_energising_only(kwargs: dict[str, object], code: str) -> None:
    """SR-18: each refusal has its own code; telemetry and de-energising commands go on."""
    rig = Rig(**kwargs)  # type: ignore[arg-type]
    rig.runner.run(0.3)
    (identified,) = rig.of(DeviceIdentified)
    assert [r.code for r in identified.refusals] == [code]  # type: ignore[union-attr]
    assert not rig.conn.may_energise
    with pytest.raises(NotReadyError, match="refused"):
        rig.conn.send(ValveCommand(Valve.INLET, True), rig.runner.now)
    if code != "protocol_version":  # a device of another version has nothing to say to us
        assert rig.runner.snapshots > 10
        rig.runner.write(rig.conn.send(SafeState(), rig.runner.now))


def test_a_device_reset_is_re_identified_and_made_safe_and_the_used_probe_refused() -> None:
    """SR-32, SR-01, SR-18: a reset ends the device session; a probe it used is now refused."""
    rig = Rig("firmware_reset@2")
    rig.runner.run(0.5)
    rig.runner.write(rig.conn.send(ValveCommand(Valve.VENT, False), rig.runner.now))
    rig.runner.write(rig.conn.send(ValveCommand(Valve.INLET, True), rig.runner.now))
    rig.runner.run(0.5)
    rig.runner.write(rig.conn.send(ValveCommand(Valve.SUPPLY, True, 0, 5000), rig.runner.now))
    rig.runner.run(2.0)
    assert rig.of(DeviceWasReset) == [DeviceWasReset("unsolicited_identity")]
    identified = rig.of(DeviceIdentified)
    assert len(identified) == 2
    second = identified[1]
    assert not second.continuing  # type: ignore[union-attr]
    assert [r.code for r in second.refusals] == ["probe_used"]  # type: ignore[union-attr]
    assert len(rig.of(SafeStateReported)) == 2
    assert rig.sent.count("SafeState") == 2


def test_no_energising_before_the_safe_state_is_verified() -> None:
    """SR-01: nothing is armed before the handshake passed and the safe state was seen."""
    rig = Rig()
    assert not rig.conn.ready
    with pytest.raises(NotReadyError, match="not ready"):
        rig.conn.send(ValveCommand(Valve.INLET, True), 0.0)
    rig.runner.run(0.1)
    assert rig.conn.ready


def test_hello_is_retried_until_the_device_answers() -> None:
    rig = Rig("device_silent:duration_s=2.5")
    rig.runner.run(2.4)
    assert rig.sent.count("Hello") >= 2 and not rig.of(DeviceIdentified)
    rig.runner.run(1.5)
    assert rig.of(DeviceIdentified)
    assert not rig.of(LinkUp)

"""From the one configuration to the objects that talk to a device.

The composition the commands share: the link's timings, the probe model's
thermistor judged against the gas floor, the calibrated pressure sensors, the
SR-18 expectations and the probe registry. Commands differ in what they do
with the connection, never in how it is built.
"""

from __future__ import annotations

import itertools
import secrets
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from console.config import ConsoleConfig
from console.connection import Connection, ConnectionSetup
from console.handshake import Expectation
from console.store import OpenedProbe, ProbeRegistry
from drivers.link import Tracer
from drivers.pressure import exhaust_sensor, supply_sensor
from drivers.snapshot import Snapshots
from drivers.stimulator import Stimulator
from drivers.thermistor import Thermistor

if TYPE_CHECKING:
    from console.controller import Controller
    from console.loop import Loop
    from console.records import Recorder


def snapshots_for(config: ConsoleConfig) -> Snapshots:
    limits = config.interlocks
    thermistor = Thermistor(
        config.probe.thermistor,
        floor_c=config.gas_profile.sensor_floor_c,
        max_c=limits.tip_max_c,
        max_step_c=limits.tip_step_c,
        step_window_ms=round(limits.tip_step_window_s * 1000),
    )
    return Snapshots(
        thermistor,
        supply_sensor(config.pressure.supply),
        exhaust_sensor(config.pressure.exhaust),
    )


def expectation_for(config: ConsoleConfig) -> Expectation:
    return Expectation(
        gas=config.gas,
        probe_model=config.probe_model,
        known_models=frozenset(config.probes),
        single_use=config.probe.single_use,
    )


def connection_for(
    config: ConsoleConfig,
    *,
    registry: ProbeRegistry | None,
    tracer: Tracer | None = None,
    nonces: Callable[[], int] | None = None,
) -> Connection:
    """A connection configured for `config`.

    `registry` is the probe registry of `--port` devices; None for the
    in-process simulator of `simulate` and `qa run`, which SR-18 exempts.
    `nonces` defaults to a cryptographic source (hellos of different runs
    never collide); virtual-time runs pass a seeded counter for reproducibility.
    """
    lookup: Callable[[str], OpenedProbe | None] | None = (
        registry.opened if registry is not None else None
    )
    setup = ConnectionSetup(
        link=config.link,
        snapshots=snapshots_for(config),
        expectation=expectation_for(config),
        opened_before=lookup,
        verify_s=1.0,
        reconnect_s=1.0,
    )
    return Connection(setup, nonces or (lambda: secrets.randbelow(0xFFFFFFFF) + 1), tracer=tracer)


def counter_nonces(seed: int) -> Callable[[], int]:
    """Deterministic hello nonces for virtual time (same seed, same bytes)."""
    counter = itertools.count(1)
    return lambda: (seed * 7919 + next(counter)) % 0xFFFFFFFF + 1


def stimulator_for(config: ConsoleConfig) -> Stimulator:
    return Stimulator(config.stimulation)


def record_with(
    recorder: Recorder, controller: Controller, loop: Loop, clock: Callable[[], float]
) -> None:
    """The session record as the loop's commit after each input, SR-31 to the controller.

    The caller adds `recorder` to the event stream's sinks.
    """
    recorder.on_failure = controller.record_failed
    recorder.on_restored = controller.record_restored
    link = controller.connection.link
    recorder.heartbeats = lambda: link.health().heartbeats
    loop.after_input = lambda: recorder.commit_due(clock())


def remember_opened(
    registry: ProbeRegistry, connection: Connection, session_id: str
) -> Callable[[dict[str, Any]], None]:
    """An event sink: the probe's first reported supply open, for later device sessions (SR-18)."""

    def sink(e: dict[str, Any]) -> None:
        identity = connection.identity
        if (
            identity is not None
            and e["event"] == "valve_reported"
            and e["valve"] == "supply"
            and e["open"]
        ):
            registry.mark_opened(
                identity.probe_serial,
                identity.probe_model,
                identity.device_serial,
                e["ts"],
                session_id,
            )

    return sink

"""One procedure against the in-process simulator in virtual time, with the scripted operator.

The composition root of `simulate` and of the scenario tests: it is the one
place (besides the CLI and test fixtures) that builds a `SimulatedDevice` and
wires it to the console (DESIGN.md). Everything is deterministic from the
seed: the device's noise and nonces, the console's hello nonces, the
operator's timing. The loop itself never reads a clock; `pace` (real-time or
`--speed`) and `stop` (signals) are the caller's.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from console.config import ConsoleConfig
from console.controller import Controller
from console.operator import ScriptedOperator
from console.virtual import VirtualRunner
from console.wiring import connection_for, counter_nonces
from simulator.device import SimConfig, SimulatedDevice

EXIT_COMPLETED, EXIT_EARLY, EXIT_REFUSED, EXIT_LOCKED = 0, 1, 3, 5

Event = dict[str, Any]
Sink = Callable[[str, dict[str, Any]], None]


@dataclass
class SimulationResult:
    outcome: str
    reason: str
    exit_code: int
    virtual_s: float
    locked: bool
    events: list[Event] = field(default_factory=list)


class EventLog:
    """Keeps events in memory with the envelope's `event`, `t_s` and `seq` (tests, summaries)."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.events: list[Event] = []

    def __call__(self, name: str, fields: dict[str, Any]) -> None:
        self.events.append(
            {"event": name, "t_s": round(self.clock(), 6), "seq": len(self.events) + 1, **fields}
        )


class Simulation:
    """The parts of one simulated run, built and wired; `run` drives them."""

    def __init__(
        self,
        config: ConsoleConfig,
        sim: SimConfig,
        *,
        sink: Sink | None = None,
        dt_s: float = 0.01,
        operator: ScriptedOperator | None = None,
    ) -> None:
        self.config = config
        self.device = SimulatedDevice(sim)
        self.connection = connection_for(config, registry=None, nonces=counter_nonces(sim.seed))
        self.log = EventLog(lambda: self.runner.now) if sink is None else None
        self.sink: Sink = sink or self.log  # type: ignore[assignment]
        self.controller = Controller(config, self.connection, self.sink)
        self.runner = VirtualRunner(
            self.connection,
            self.device,
            dt_s=dt_s,
            on_snapshot=self.controller.on_snapshot,
            on_notice=self.controller.on_notice,
            take_output=self.controller.take_output,
            after_advance=self._record_faults,
        )
        physics = self.device.physics
        self.operator = operator or ScriptedOperator(lambda current_ma: physics.nerve_responding)
        self._faults_seen = 0

    @property
    def now(self) -> float:
        return self.runner.now

    def step(self) -> None:
        runner, controller = self.runner, self.controller
        runner.step()
        controller.tick(runner.now)
        self.operator.step(controller, runner.now)
        runner.settle()

    def _record_faults(self) -> None:
        """`fault_injected`, recorded before the console's reaction to what the fault did."""
        fault_events = self.device.fault_events
        if len(fault_events) > self._faults_seen:
            for fe in fault_events[self._faults_seen :]:
                if fe.started:
                    fields = {"fault": fe.name, "params": fe.params, "spec": fe.spec}
                    self.sink("fault_injected", fields)
            self._faults_seen = len(fault_events)

    def run(
        self,
        *,
        max_virtual_s: float = 3600.0,
        stop: Callable[[], str | None] | None = None,
        pace: Callable[[float], None] | None = None,
        on_step: Callable[[Simulation], None] | None = None,
    ) -> SimulationResult:
        self.runner.start()
        ended = ""
        while not self.operator.done:
            if self.runner.now >= max_virtual_s - 1e-9:
                ended = "max_virtual_s"
                break
            reason = stop() if stop is not None else None
            if reason:
                ended = reason
                break
            self.step()
            if pace is not None:
                pace(self.runner.now)
            if on_step is not None:
                on_step(self)
        if ended:
            self.controller.procedure.end_now(ended)
        else:
            self.controller.safe_state("exit", None)
        self._verify_safe()
        return self.result()

    def _verify_safe(self) -> None:
        """SR-01 on the way out: the safe state commanded, then confirmed by telemetry."""
        self.runner.settle()
        start = self.runner.now
        for _ in range(round(1.0 / self.runner.dt_s)):
            self.step()
            last = self.connection.last
            if (
                last is not None
                and last.t_s > start
                and not (last.supply_open or last.inlet_open or last.stim_on)
                and last.vent_open
            ):
                break

    def result(self) -> SimulationResult:
        proc = self.controller.procedure
        outcome, reason = proc.finished or ("aborted", "not_started")
        refused = bool(self.connection.refusals) and proc.finished is None
        if refused:  # SR-18: the handshake refused the device; nothing was armed
            outcome, reason = "aborted", "device_refused"
        if proc.locked:
            code = EXIT_LOCKED
        elif refused:
            code = EXIT_REFUSED
        elif outcome == "completed":
            code = EXIT_COMPLETED
        else:
            code = EXIT_EARLY
        events = self.log.events if self.log is not None else []
        return SimulationResult(outcome, reason, code, self.runner.now, proc.locked, events)


def run_simulation(
    config: ConsoleConfig,
    sim: SimConfig,
    *,
    max_virtual_s: float = 3600.0,
    dt_s: float = 0.01,
    operator: ScriptedOperator | None = None,
) -> SimulationResult:
    """One procedure, events kept in memory: what the tests and scenarios use."""
    return Simulation(config, sim, dt_s=dt_s, operator=operator).run(max_virtual_s=max_virtual_s)

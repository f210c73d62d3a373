"""One procedure against the in-process simulator in virtual time, with the scripted operator.

The composition root of `simulate` and of the scenario tests: it is the one
place (besides the CLI and test fixtures) that builds a `SimulatedDevice` and
wires it to the console (DESIGN.md). Everything is deterministic from the
seed: the device's noise and nonces, the console's hello nonces, the
operator's timing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from console.config import ConsoleConfig
from console.controller import Controller
from console.operator import ScriptedOperator
from console.procedure import ENDS, OUTCOME_OF_END
from console.virtual import VirtualRunner
from console.wiring import connection_for, counter_nonces
from simulator.device import SimConfig, SimulatedDevice

EXIT_COMPLETED, EXIT_EARLY, EXIT_LOCKED = 0, 1, 5

Event = dict[str, Any]


@dataclass
class SimulationResult:
    outcome: str
    reason: str
    exit_code: int
    virtual_s: float
    locked: bool
    events: list[Event] = field(default_factory=list)


class EventLog:
    """Stamps events with the envelope of interfaces.md (`event`, `t_s`, `seq`) and keeps them."""

    def __init__(
        self, clock: Callable[[], float], forward: Callable[[Event], None] | None = None
    ) -> None:
        self.clock = clock
        self.forward = forward
        self.events: list[Event] = []
        self._seq = 0

    def __call__(self, name: str, fields: dict[str, Any]) -> None:
        self._seq += 1
        event = {"event": name, "t_s": round(self.clock(), 6), "seq": self._seq, **fields}
        self.events.append(event)
        if self.forward is not None:
            self.forward(event)


def run_simulation(
    config: ConsoleConfig,
    sim: SimConfig,
    *,
    max_virtual_s: float = 3600.0,
    dt_s: float = 0.01,
    forward: Callable[[Event], None] | None = None,
    operator: ScriptedOperator | None = None,
) -> SimulationResult:
    device = SimulatedDevice(sim)
    connection = connection_for(config, registry=None, nonces=counter_nonces(sim.seed))
    runner: VirtualRunner
    log = EventLog(lambda: runner.now, forward)
    controller = Controller(config, connection, log)
    runner = VirtualRunner(
        connection,
        device,
        dt_s=dt_s,
        on_snapshot=controller.on_snapshot,
        on_notice=controller.on_notice,
        take_output=controller.take_output,
    )
    physics = device.physics
    op = operator or ScriptedOperator(lambda: physics.nerve_responding)
    fault_events_seen = 0
    runner.start()
    while runner.now < max_virtual_s and not op.done:
        runner.step()
        controller.tick(runner.now)
        op.step(controller, runner.now)
        runner.write(controller.take_output())
        if len(device.fault_events) > fault_events_seen:
            for fe in device.fault_events[fault_events_seen:]:
                if fe.started:
                    log("fault_injected", {"fault": fe.name, "params": fe.params, "spec": fe.spec})
            fault_events_seen = len(device.fault_events)
    return _result(controller, runner.now, log.events, timed_out=not op.done)


def _result(
    controller: Controller, now: float, events: list[Event], *, timed_out: bool
) -> SimulationResult:
    proc = controller.procedure
    finished = [e for e in events if e["event"] == "procedure_finished"]
    if timed_out:
        outcome, reason = "aborted", "max_virtual_s"
        if proc.state not in ENDS and proc.state != "complete" and proc.in_procedure:
            proc.stop("abort", "max_virtual_s", None)
    elif finished:
        outcome, reason = finished[-1]["outcome"], finished[-1]["reason"]
    elif proc.state in ENDS:
        outcome, reason = OUTCOME_OF_END[proc.state], proc.end_reason
    else:
        outcome, reason = "aborted", "not_started"
    if proc.locked:
        code = EXIT_LOCKED
    elif outcome == "completed":
        code = EXIT_COMPLETED
    else:
        code = EXIT_EARLY
    return SimulationResult(outcome, reason, code, now, proc.locked, events)

"""A console and a simulated device in virtual time, driven step by step by a test.

The same composition as `console.simulation.run_simulation`, without the
scripted operator: the test is the operator.
"""

from __future__ import annotations

from typing import Any

from console.actions import clear_checklist
from console.config import ConsoleConfig, load_config
from console.controller import Controller
from console.simulation import EventLog
from console.virtual import VirtualRunner
from console.wiring import connection_for, counter_nonces
from simulator.device import SimConfig, SimulatedDevice
from simulator.faults import parse_fault

FAST = {
    "procedure.profile": "bench",
    "procedure.cycles": 1,
    "procedure.freeze_s": 5.0,
    "procedure.thaw_s": 5.0,
    "procedure.leak_window_s": 2.0,
}


class Rig:
    def __init__(
        self,
        *faults: str,
        overrides: dict[str, object] | None = None,
        gas: str = "N2O",
        seed: int = 0,
        dt_s: float = 0.01,
        device: SimulatedDevice | None = None,
    ) -> None:
        """`device`: a console restarting against a device another one left (SR-22)."""
        self.config: ConsoleConfig = load_config(None, {"gas": gas, **(overrides or FAST)})
        self.device = device or SimulatedDevice(
            SimConfig(seed=seed, gas=gas, faults=tuple(parse_fault(f) for f in faults))
        )
        self.connection = connection_for(self.config, registry=None, nonces=counter_nonces(seed))
        self.log = EventLog(lambda: self.runner.now)
        self.ctl = Controller(self.config, self.connection, self.log)
        self.runner = VirtualRunner(
            self.connection,
            self.device,
            dt_s=dt_s,
            on_snapshot=self.ctl.on_snapshot,
            on_notice=self.ctl.on_notice,
            take_output=self.ctl.take_output,
        )
        self.runner.start()

    @property
    def proc(self) -> Any:
        return self.ctl.procedure

    @property
    def state(self) -> str:
        return str(self.ctl.procedure.state)

    @property
    def events(self) -> list[dict[str, Any]]:
        return self.log.events

    def of(self, name: str) -> list[dict[str, Any]]:
        return [e for e in self.log.events if e["event"] == name]

    def step(self) -> None:
        self.runner.step()
        self.ctl.tick(self.runner.now)

    def run(self, seconds: float) -> None:
        for _ in range(round(seconds / self.runner.dt_s)):
            self.step()

    def run_until(self, state: str, max_s: float = 60.0) -> None:
        end = self.runner.now + max_s
        while self.state != state:
            if self.runner.now >= end:
                raise AssertionError(f"never reached {state} (in {self.state})")
            self.step()

    def act(self, action: str, **params: Any) -> tuple[bool, str]:
        result = self.ctl.act(action, params)
        self.runner.write(self.ctl.take_output())
        return result

    def arm(self, **params: Any) -> tuple[bool, str]:
        return self.act("arm", checklist=clear_checklist().model_dump(), **params)

    def localize(self) -> None:
        """Arm, pass the leak test, stimulate at 0.50 mA and confirm."""
        self.run_until("ready")
        assert self.arm()[0]
        self.run_until("armed")
        assert self.act("stim_configure", preset="motor")[0]
        assert self.act("stim_configure", current_ma=0.5, pulse_us=100, rate_hz=2)[0]
        assert self.act("stim_start")[0]
        self.run(0.5)
        assert self.act("confirm_localization")[0]

    def alarms_raised(self) -> list[str]:
        return [e["alarm"] for e in self.of("alarm_raised")]

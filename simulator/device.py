"""The simulated device in lockstep: physics, sensors, firmware, faults and the line.

`SimulatedDevice` is what the console's virtual-time runner drives (and what
the real-time servers wrap): `receive(bytes)` from the host, `advance(dt)`,
`transmit() -> bytes` to the host. It satisfies the runner's small
`typing.Protocol` without importing the console (DESIGN.md). Everything is
deterministic from `SimConfig.seed`: the same configuration and the same
calls give the same bytes.
"""

from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass, field
from typing import Any

from simulator.faults import FaultSpec, When, parse_fault
from simulator.firmware import DeviceIdentity, Firmware, FirmwareParams
from simulator.linkfaults import Pipe
from simulator.physics import PHYSICS_FAULTS, Physics, PhysicsParams
from simulator.sensors import SensorParams, Sensors


@dataclass(frozen=True, slots=True)
class SimConfig:
    """Everything a simulated device is made from."""

    seed: int = 0
    gas: str = "N2O"
    telemetry_hz: float = 100.0
    identity: DeviceIdentity = field(default_factory=DeviceIdentity)
    physics: PhysicsParams | None = None
    sensors: SensorParams = field(default_factory=SensorParams)
    faults: tuple[FaultSpec, ...] = ()


@dataclass(slots=True)
class _Fault:
    fault_id: int
    spec: FaultSpec
    start_s: float | None = None
    active: bool = False
    done: bool = False


@dataclass(frozen=True, slots=True)
class FaultEvent:
    """A fault starting or ending, for the `fault_injected` events and the control channel."""

    t_s: float
    fault_id: int
    spec: str
    name: str
    params: dict[str, float | str]
    started: bool


class SimulatedDevice:
    """One device. Not thread-safe: the runner or one server thread owns it."""

    def __init__(self, config: SimConfig | None = None) -> None:
        self.config = config = config or SimConfig()
        rng = random.Random(config.seed)
        # Separate streams, so adding noise draws never shifts the nonces or the line faults.
        self._sensor_rng = random.Random(rng.getrandbits(64))
        self._firmware_rng = random.Random(rng.getrandbits(64))
        self._line_rng = random.Random(rng.getrandbits(64))
        physics_params = config.physics or PhysicsParams(gas=config.gas)  # type: ignore[arg-type]
        if physics_params.gas != config.gas:
            raise ValueError(
                f"physics gas {physics_params.gas} differs from device gas {config.gas}"
            )
        identity = dataclasses.replace(config.identity, gas=config.gas)
        self.physics = Physics(physics_params)
        self.sensors = Sensors(self._sensor_rng, config.sensors)
        self.firmware = Firmware(
            self.physics,
            self.sensors,
            identity,
            self._firmware_rng,
            FirmwareParams(telemetry_hz=config.telemetry_hz),
        )
        self.to_host = Pipe(self._line_rng)
        self.to_device = Pipe(self._line_rng)
        self._t = 0.0
        self._faults: list[_Fault] = []
        self._next_id = 1
        self.fault_events: list[FaultEvent] = []
        # Phases the device itself observes, for @freezeK / @thawK / @localize.
        self.freeze_starts: list[float] = []
        self.thaw_starts: list[float] = []
        self.localize_s: float | None = None
        self._supply_was_open = False
        for spec in config.faults:
            self.inject(spec)

    # --- the lockstep interface ---------------------------------------------------------

    @property
    def now_s(self) -> float:
        """Seconds since the simulator started (not the device time, which restarts on reset)."""
        return self._t

    def receive(self, data: bytes) -> None:
        """Bytes from the host, as written now."""
        data = self.to_device.process(data, self._t)
        if data:
            self.firmware.receive(data, self._t)

    def transmit(self) -> bytes:
        """Bytes for the host produced since the last call (after the line's faults)."""
        return self.to_host.process(self.firmware.take_output(), self._t)

    def advance(self, dt_s: float) -> None:
        """Let `dt_s` seconds pass: physics, timers, telemetry, scheduled faults."""
        end = self._t + dt_s
        firmware = self.firmware
        physics = self.physics
        while True:
            step_to = min(end, firmware.next_deadline())
            if step_to > self._t:
                physics.step(step_to - self._t)
                self._t = step_to
            self._observe()
            if self._faults:
                self._schedule()
            late = self.to_device.pending(self._t)
            if late:
                firmware.receive(late, self._t)
            firmware.tick(self._t)
            if self._t >= end - 1e-12:
                break

    # --- faults --------------------------------------------------------------------------

    def inject(self, spec: FaultSpec | str) -> int:
        """Schedule a fault; return its id.

        `@seconds` counts from the simulator's start, as `--fault` does (default `@0`);
        the control channel's "without `@` it applies now" is `inject_now`.
        """
        if isinstance(spec, str):
            spec = parse_fault(spec)
        fault = _Fault(self._next_id, spec)
        self._next_id += 1
        self._faults.append(fault)
        self._schedule()
        return fault.fault_id

    def inject_now(self, spec: FaultSpec | str) -> int:
        """Schedule a fault to start now unless its spec names a phase or a later time."""
        if isinstance(spec, str):
            spec = parse_fault(spec)
        if spec.when.phase == "time" and spec.when.offset_s < self._t:
            spec = dataclasses.replace(spec, when=When("time", 0, self._t))
        return self.inject(spec)

    def next_deadline_s(self) -> float:
        """The next instant the device has something to do (telemetry, an announcement)."""
        return self.firmware.next_deadline()

    def clear(self, fault_id: int) -> bool:
        """End a fault early; False if there is no such fault still pending or active."""
        for fault in self._faults:
            if fault.fault_id == fault_id and not fault.done:
                if fault.active:
                    self._apply(fault, on=False)
                fault.done = True
                return True
        return False

    def _start_of(self, fault: _Fault) -> float | None:
        when = fault.spec.when
        if when.phase == "time":
            return when.offset_s
        if when.phase == "localize":
            base = self.localize_s
        else:
            starts = self.freeze_starts if when.phase == "freeze" else self.thaw_starts
            base = starts[when.index - 1] if len(starts) >= when.index else None
        return None if base is None else base + when.offset_s

    def _schedule(self) -> None:
        now = self._t
        for fault in self._faults:
            if fault.done:
                continue
            if not fault.active:
                start = self._start_of(fault)
                if start is None or now < start - 1e-9:
                    continue
                fault.start_s = start
                fault.active = True
                self._apply(fault, on=True)
            if now >= (fault.start_s or 0.0) + fault.spec.duration_s - 1e-9:
                self._apply(fault, on=False)
                fault.done = True

    def _apply(self, fault: _Fault, *, on: bool) -> None:
        spec = fault.spec
        name = spec.name
        params = {k: v for k, v in spec.params.items() if k != "duration_s"}
        s = self.sensors
        if name in PHYSICS_FAULTS:
            if on:
                self.physics.set_fault(name, params)
            else:
                self.physics.clear_fault(name, params)
        elif name in ("thermistor_open", "thermistor_short", "thermistor_stuck"):
            s.tip_mode = name.removeprefix("thermistor_") if on else "ok"
        elif name == "thermistor_drift":
            s.tip_drift_c_per_s = float(params["c_per_s"]) if on else 0.0
            s.tip_drift_since_s = self._t
        elif name == "thermistor_step":
            s.tip_offset_c += float(params["c"]) * (1 if on else -1)
        elif name == "pressure_sensor_fail":
            mode = str(params["mode"]) if on else "ok"
            if params["sensor"] == "supply":
                s.supply_mode = mode
            else:
                s.exhaust_mode = mode
        elif name == "firmware_reset":
            if on:
                self.firmware.reboot(self._t)
        elif name == "device_silent":
            self.firmware.silent = on
        else:
            self._apply_link(name, params, on)
        self.fault_events.append(
            FaultEvent(self._t, fault.fault_id, str(spec), name, dict(spec.params), on)
        )

    def _apply_link(self, name: str, params: dict[str, float | str], on: bool) -> None:
        direction = str(params.get("dir", "to_host"))
        pipes = [
            p
            for d, p in (("to_host", self.to_host), ("to_device", self.to_device))
            if direction in (d, "both")
        ]
        for pipe in pipes:
            if name == "link_drop":
                pipe.drop += 1 if on else -1
            elif name == "link_corrupt":
                pipe.set_ber(float(params["ber"]) if on else 0.0)
            elif name == "link_delay":
                pipe.delay_s = float(params["delay_ms"]) / 1000.0 if on else 0.0
            else:
                kind = {
                    "link_garbage": "garbage",
                    "link_duplicate": "duplicate",
                    "link_replay": "replay",
                    "link_foreign_nonce": "foreign",
                }[name]
                pipe.set_rate(kind, float(params["rate_hz"]) if on else 0.0, self._t)

    # --- phases and status --------------------------------------------------------------

    def _observe(self) -> None:
        supply_open = self.physics.supply_open
        if supply_open != self._supply_was_open:
            self._supply_was_open = supply_open
            (self.freeze_starts if supply_open else self.thaw_starts).append(self._t)
        if self.localize_s is None and self.physics.stim_on:
            self.localize_s = self._t

    def active_faults(self) -> list[str]:
        return [str(f.spec) for f in self._faults if f.active and not f.done]

    def status(self) -> dict[str, Any]:
        """The control channel's `STATUS`: the simulator's truth, for tests and test tools.

        Valves, stimulation, time, the nerve (thresholds and responses, motor
        and sensory), the cylinder (true gas used and left, its temperature and
        pressure) and the ice ball (radius, width, length, volume, latent heat):
        what the console's estimates are judged against. A real console sees
        none of it.
        """
        p = self.physics
        fw = self.firmware
        pulse_us = p.stim_pulse_us or 100.0
        return {
            "t_s": round(self._t, 3),
            "device_ms": fw.device_ms(self._t),
            "session_open": fw.session_open,
            "valves": {
                name: {
                    "open": p.valve_reported_open(name),
                    "target_open": p.valve_commanded_open(name),
                }
                for name in ("supply", "inlet", "vent")
            },
            "stim": {
                "on": p.stim_on,
                "current_ma": round(p.stim_current_ma, 2),
                "pulse_us": p.stim_pulse_us,
                "rate_hz": p.stim_rate_hz,
                "lead_impedance_ohm": p.lead_impedance_ohm
                if p.lead_impedance_ohm != float("inf")
                else None,
            },
            "nerve_responding": p.nerve_responding,
            "nerve_threshold_ma": round(p.nerve_threshold_ma(pulse_us, p.stim_rate_hz), 3),
            "nerve_motor_responding": p.nerve_motor_responding,
            "nerve_motor_threshold_ma": round(p.nerve_motor_threshold_ma(pulse_us), 3),
            "nerve_sensory_responding": p.nerve_sensory_responding,
            "nerve_sensory_threshold_ma": round(p.nerve_sensory_threshold_ma(pulse_us), 3),
            "supply_psi": round(p.supply_psi, 2),
            "exhaust_psi": round(p.exhaust_psi, 2),
            "tip_c": round(p.tip_c, 2),
            "probe_free": p.probe_free,
            "gas_used_g": round(p.gas_used_g, 2),
            "gas_left_g": round(p.gas_left_g, 2),
            "cylinder_psi": round(p.cylinder_psi, 2),
            "cylinder_c": round(p.cylinder_c, 3),
            "cylinder_liquid_g": round(p.cylinder_liquid_g, 2),
            "ice_radius_mm": round(p.ice_radius_mm, 3),
            "ice_width_mm": round(p.ice_width_mm, 3),
            "ice_length_mm": round(p.ice_length_mm, 3),
            "ice_volume_ml": round(p.ice_volume_ml, 4),
            "ice_j": round(p.ice_j, 2),
            "tip_iced": p.tip_iced,
            "tissue_cooling_w": round(p.tissue_cooling_w, 3),
            "probe_uses": fw.identity.probe_uses,
            "status_flags": fw.status_flags,
            "fault_flags": fw.fault_flags,
            "faults": self.active_faults(),
        }

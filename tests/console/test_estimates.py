"""The console's estimates (console/estimates.py) against the simulator's truth (issue 9, item 5).

Whole procedures in virtual time, N2O and CO2, nominal and faulted; at each
freeze's end (the `estimates` event) the estimate is compared with
`SimulatedDevice.status()` at the same virtual instant. The bounds, and why:

* gas used: within 10 % of the truth plus 2.5 g. The estimate counts only the
  reported supply-open time x the probe's nominal flow; the simulator also
  draws gas to fill the line in the leak test and in each pressurize step
  (about 1.7 g before the first freeze, a few hundredths of a gram after),
  which no supply-open time shows. Per cycle (the freeze alone) 10 % + 0.5 g.
* gas left: the same bound (both are the cylinder's net mass minus used).
* a clogged orifice (`orifice_clog:fraction=0.9`) passes a tenth of the
  nominal flow with the supply open: the gas estimate cannot see that and
  over-counts (measured: 6.0 g estimated, 2.6 g true at the freeze's end), so
  there it is only required to err on the safe side (used >= true, left <=
  true).
* ice radius: within 25 % of the truth or 0.75 mm, whichever is larger, at
  every freeze end and at every sampled second of the freezes after the first
  10 s of supply open (the model is fitted, docs/estimates.md; its measured
  error is a few tenths of a millimetre). A faulted (clogged) freeze is
  judged with the same bound: the weak freeze shows in the warmer tip.
"""

from __future__ import annotations

import math
from typing import Any

import pytest

from console.config import load_config
from console.estimates import MAX_GAP_S, Estimates
from console.procedure import FREEZES
from console.simulation import Simulation
from drivers.snapshot import Snapshot
from simulator.device import SimConfig
from simulator.faults import parse_fault


def _snap(t_s: float, tip_c: float, supply_open: bool) -> Snapshot:
    return Snapshot(
        t_s, 0, tip_c, 0, 0.0, 0, 0.0, 0, supply_open, False, False, False, 0.0, 0.0, 0, 0
    )


def _run(gas: str, *faults: str, cycles: int = 2, freeze_s: float = 40.0) -> dict[str, Any]:
    config = load_config(
        None,
        {
            "gas": gas,
            "procedure.profile": "bench",
            "procedure.cycles": cycles,
            "procedure.freeze_s": freeze_s,
            "procedure.thaw_s": 20.0,
            "procedure.leak_window_s": 2.0,
        },
    )
    sim = Simulation(
        config, SimConfig(seed=0, gas=gas, faults=tuple(parse_fault(f) for f in faults))
    )
    at_end: list[tuple[dict[str, Any], dict[str, Any]]] = []
    during: list[tuple[float, float]] = []  # (estimate, truth) in freezes, once a second
    seen = 0
    next_t = 0.0

    def on_step(s: Simulation) -> None:
        nonlocal seen, next_t
        events = s.log.events if s.log is not None else []
        new = [e for e in events[seen:] if e["event"] == "estimates"]
        seen = len(events)
        for e in new:
            at_end.append((e, s.device.status()))
        proc = s.controller.procedure
        if proc.state in FREEZES and proc.freeze_open_t is not None and s.now >= next_t:
            next_t = s.now + 1.0
            if s.now - proc.freeze_open_t >= 10.0:
                est = s.controller.estimates.ice_radius_mm_est
                during.append((est, s.device.physics.ice_radius_mm))

    def stop() -> str | None:  # the last freeze is over: the rest is the passive thaw
        return "test_done" if len(at_end) >= cycles or sim.controller.procedure.finished else None

    result = sim.run(on_step=on_step, stop=stop, max_virtual_s=600.0)
    return {"result": result, "at_end": at_end, "during": during, "sim": sim}


def _radius_ok(est: float, truth: float) -> bool:
    return abs(est - truth) <= max(0.25 * truth, 0.75)


def _check(run: dict[str, Any], cycles: int, *, nominal_flow: bool = True) -> None:
    at_end = run["at_end"]
    assert [e["cycle"] for e, _ in at_end] == list(range(1, cycles + 1))
    prev_truth = None
    for e, truth in at_end:
        used = truth["gas_used_g"]
        if not nominal_flow:  # the flow is not the nominal one: the estimate errs on the safe side
            assert e["gas_used_g_est"] >= used and e["gas_left_g_est"] <= truth["gas_left_g"]
            assert _radius_ok(e["ice_radius_mm_est"], truth["ice_radius_mm"]), (e, truth)
            continue
        assert abs(e["gas_used_g_est"] - used) <= 0.10 * used + 2.5, (e, used)
        assert abs(e["gas_left_g_est"] - truth["gas_left_g"]) <= 0.10 * used + 2.5, (e, truth)
        if prev_truth is not None:
            cycle_used = used - prev_truth
            assert abs(e["cycle_gas_used_g_est"] - cycle_used) <= 0.10 * cycle_used + 0.5
        prev_truth = used
        assert _radius_ok(e["ice_radius_mm_est"], truth["ice_radius_mm"]), (e, truth)
    during = run["during"]
    assert during
    bad = [(est, true) for est, true in during if not _radius_ok(est, true)]
    assert not bad, bad


@pytest.fixture(scope="module", params=["N2O", "CO2"])
def nominal(request: pytest.FixtureRequest) -> dict[str, Any]:
    return _run(request.param)


def test_estimates_nominal_within_bounds(nominal: dict[str, Any]) -> None:
    _check(nominal, 2)
    assert nominal["at_end"][-1][0]["ice_radius_mm_est"] > 1.0  # a real ball, not a trivial 0


def test_estimates_event_per_freeze_end_and_summary(nominal: dict[str, Any]) -> None:
    events = nominal["result"].events
    names = [e["event"] for e in events]
    for e in (e for e in events if e["event"] == "estimates"):
        i = names.index("estimates", events.index(e))
        assert events[i - 1]["event"] == "state_changed"
        assert events[i - 1]["from"] == f"freeze_{e['cycle']}"
        assert set(e) >= {"cycle", "gas_used_g_est", "gas_left_g_est", "ice_radius_mm_est"}
    est = nominal["sim"].controller.estimates
    assert [c.cycle for c in est.cycles] == [1, 2]
    assert math.isclose(est.gas_left_g_est, 3000.0 - est.gas_used_g_est)


def test_estimates_faulted_orifice_clog_n2o() -> None:
    run = _run("N2O", "orifice_clog:fraction=0.9@freeze1+2.5", cycles=1)
    _check(run, 1, nominal_flow=False)


def test_estimates_faulted_supply_leak_co2() -> None:
    run = _run("CO2", "supply_leak:psi_per_s=5@freeze1+5", cycles=1)
    _check(run, 1)


def test_estimates_unit_gas_and_hold() -> None:
    est = Estimates(0.2, 100.0)
    est.on_snapshot(_snap(0.0, 37.0, True))
    est.on_snapshot(_snap(10.0, 37.0, True))  # a gap: counted only up to MAX_GAP_S
    assert est.supply_open_s == pytest.approx(MAX_GAP_S)
    t = 10.0
    for _ in range(1000):  # 10 s open at 100 Hz, cold tip
        t += 0.01
        est.on_snapshot(_snap(t, -80.0, True))
    assert est.gas_used_g_est == pytest.approx((10.0 + MAX_GAP_S) * 0.2)
    assert est.gas_left_g_est == pytest.approx(100.0 - est.gas_used_g_est)
    r = est.ice_radius_mm_est
    assert r > 0.5
    est.on_snapshot(_snap(t + 0.01, math.nan, False))  # a railed thermistor holds the estimate
    assert est.ice_radius_mm_est == r
    est.on_snapshot(_snap(t + 0.02, 20.0, False))  # a warm tip: no ice left
    assert est.ice_radius_mm_est == 0.0
    big = Estimates(0.5, 0.1)
    big.on_snapshot(_snap(0.0, 0.0, True))
    big.on_snapshot(_snap(0.4, 0.0, True))
    assert big.gas_left_g_est == 0.0  # never below empty


def test_estimates_three_clinical_length_freezes_n2o() -> None:
    """3 x 180 s: the ball keeps growing slowly where the model levels off (cycle 3 the worst)."""
    _check(_run("N2O", cycles=3, freeze_s=180.0), 3)

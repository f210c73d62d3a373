"""The configuration: defaults, strict validation, tighten-only limits, profiles, CLI.

The tables below restate the numbers of `safety-requirements.md` on their own,
rather than reading them back from the models, so that a changed default or
a bound on the wrong side fails here.
"""

from __future__ import annotations

import math
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from pydantic import BaseModel

from console import cli
from console.config import (
    CLI_OPTIONS,
    NO_VALUE,
    PROFILE_RANGES,
    REGENERATE,
    ConfigError,
    ConsoleConfig,
    InterlockLimits,
    PressureCalibrationFile,
    calibration_toml,
    config_sha256,
    config_toml,
    configuration_reference,
    format_error,
    load_calibration_file,
    load_config,
    loads_config,
    safety_limit,
    unit_of,
)
from drivers.pressure import PressureCalibration

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = ROOT / "docs" / "configuration.md"


def messages_of(text: str, overrides: dict[str, object] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        loads_config(text, overrides)
    return caught.value.messages


# --- defaults ------------------------------------------------------------------


def test_defaults_load_with_no_file() -> None:
    config = load_config(None, {})
    assert config == ConsoleConfig() == load_config()
    assert config.gas == "N2O"
    assert config.probe_model == "CRYO-20G-90"
    assert (config.probe.gauge, config.probe.length_mm) == (20, 90.0)
    assert config.probe.single_use is True
    assert config.probe.flow_g_per_s == 0.15
    assert config.cylinder.net_g == 3000.0
    assert config.pressure.calibration_file is None
    assert (config.procedure.profile, config.procedure.cycles) == ("clinical", 3)
    assert (config.procedure.freeze_s, config.procedure.thaw_s) == (180.0, 30.0)
    assert config.procedure.release_factor == 2.5
    assert (config.procedure.leak_window_s, config.procedure.leak_max_psi_per_s) == (10.0, 1.5)


def test_gas_floors_and_targets() -> None:
    """SR-10 floors (boiling point minus 3 C) and SR-11 targets, per gas."""
    config = ConsoleConfig()
    assert config.gases.N2O.boiling_c == -88.5
    assert config.gases.CO2.boiling_c == -78.5
    assert config.gases.N2O.sensor_floor_c == -91.5
    assert config.gases.CO2.sensor_floor_c == -81.5
    assert config.gases.N2O.freeze_target_c == -60.0
    assert config.gases.CO2.freeze_target_c == -50.0
    assert config.gas_profile is config.gases.N2O
    assert load_config(None, {"--gas": "CO2"}).gas_profile.sensor_floor_c == -81.5


def test_configuration_is_immutable() -> None:
    config = ConsoleConfig()
    with pytest.raises(ValueError, match="frozen"):
        config.procedure.freeze_s = 200.0


# --- bad values -------------------------------------------------------------------

BAD_VALUES: list[tuple[str, str]] = [
    # (TOML, the one message it must produce)
    ("[procedure]\nfreeze_s = 300", "procedure.freeze_s = 300 out of range 120..240 s (clinical)"),
    (
        "[procedure]\nfreeze_s = 60.5",
        "procedure.freeze_s = 60.5 out of range 120..240 s (clinical)",
    ),
    ("[procedure]\nthaw_s = 20", "procedure.thaw_s = 20 out of range 30..120 s (clinical)"),
    ("[procedure]\ncycles = 1", "procedure.cycles = 1 out of range 2..3 (clinical)"),
    (
        '[procedure]\nprofile = "bench"\ncycles = 4',
        "procedure.cycles = 4 out of range 1..3 (bench)",
    ),
    (
        "[procedure]\nleak_window_s = 5",
        "procedure.leak_window_s = 5 out of range 10..10 s (clinical)",
    ),
    (
        "[procedure]\nrelease_factor = 2",
        "procedure.release_factor = 2 out of range 2.5..10 (may only be tightened)",
    ),
    (
        "[procedure]\nleak_max_psi_per_s = 2",
        "procedure.leak_max_psi_per_s = 2 out of range 0..1.5 psi/s "
        "(0 excluded; may only be tightened)",
    ),
    (
        "[gases.N2O]\nsupply_over_psi = 950",
        "gases.N2O.supply_over_psi = 950 out of range ..900 psi (may only be tightened)",
    ),
    (
        "[gases.N2O]\nsupply_over_psi = 700",
        "gases.N2O.supply_over_psi = 700: must be above supply_max_psi (800 psi)",
    ),
    (
        "[gases.CO2]\nfreeze_target_c = -40",
        "gases.CO2.freeze_target_c = -40 out of range ..-50 C (may only be tightened)",
    ),
    (
        "[gases.N2O]\nsupply_min_psi = 550",
        "gases.N2O.supply_min_psi = 550 out of range 600..800 psi (may only be tightened)",
    ),
    (
        "[gases.N2O]\nexhaust_high_psi = 14\nexhaust_flow_min_psi = 14",
        "gases.N2O.exhaust_flow_min_psi = 14: must be below exhaust_high_psi (14 psi)",
    ),
    (
        "[gases.CO2]\nboiling_c = -40\nfloor_margin_c = 0",
        "gases.CO2.freeze_target_c = -50: must be above the sensor floor "
        "boiling_c - floor_margin_c (-40 C)",
    ),
    (
        "[link]\nheartbeat_s = 0.1",
        "link.heartbeat_s = 0.1 out of range 0..0.05 s (0 excluded; may only be tightened)",
    ),
    ("[link]\nheartbeat_s = 0", "link.heartbeat_s = 0 out of range 0..0.05 s (0 excluded)"),
    (
        "[link]\nquality_window_s = 10.0",
        "link.quality_window_s = 10 out of range 1..5 s (may only be tightened)",
    ),
    ("[link]\nbaudrate = 300", "link.baudrate = 300 out of range 9600..4000000 baud"),
    (
        "[stimulation]\ncurrent_max_ma = 6",
        "stimulation.current_max_ma = 6 out of range 0..5 mA (0 excluded; may only be tightened)",
    ),
    (
        "[stimulation]\npulse_min_us = 900\npulse_max_us = 100",
        "stimulation.pulse_min_us = 900: must not exceed pulse_max_us (100 us)",
    ),
    (
        "[stimulation.presets.motor]\nstart_ma = 1.005",
        "stimulation.presets.motor: outside stimulation's limits: current_ma = 1.005 "
        "is not on the 0.01 mA grid (never rounded)",
    ),
    (
        '[probes."CRYO-20G-90"]\nflow_g_per_s = 1',
        "probes.CRYO-20G-90.flow_g_per_s = 1 out of range 0.05..0.5 g/s",
    ),
    (
        '[probes."CRYO-20G-90"]\ngauge = 40',
        "probes.CRYO-20G-90.gauge = 40 out of range 10..30 G",
    ),
    ("[cylinder]\nnet_g = 0", "cylinder.net_g = 0 out of range 0..50000 g (0 excluded)"),
    ("[pressure.supply]\nspan = 2", "pressure.supply.span = 2 out of range 0.8..1.2"),
    (
        "[interlocks]\ntimed_thaw_s = 300",
        "interlocks.timed_thaw_s = 300 out of range 420..3600 s (may only be tightened)",
    ),
    (
        "[interlocks]\npressurize_timeout_s = 0.5",
        "interlocks.pressurize_timeout_s = 0.5: must be above supply_window_hold_s (1 s)",
    ),
    ('probe_model = "NOPE"', 'probe_model = "NOPE": not a key of probes (CRYO-20G-90)'),
    ('gas = "H2"', 'gas = "H2": expected "N2O" or "CO2"'),
    ('[procedure]\nprofile = "lab"', 'procedure.profile = "lab": expected "clinical" or "bench"'),
    (
        '[probes."a b"]\ngauge = 20',
        'probes."a b": a probe model name is 1..16 printable ASCII characters without '
        "spaces (the device reports it in a fixed-size field)",
    ),
    ("link = 3", "link = 3: expected a table, got an integer"),
]


@pytest.mark.parametrize(("toml", "message"), BAD_VALUES, ids=[m for _, m in BAD_VALUES])
def test_bad_value_is_refused_with_field_value_and_range(
    toml: str, message: str, tmp_path: Path
) -> None:
    """SR-30 and SR-23: each bad value is refused with one clear line (no coercion)."""
    assert messages_of(toml) == [message]
    path = tmp_path / "console.toml"
    path.write_text(toml + "\n", encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(path, {})
    assert caught.value.messages == [message]


def test_the_table_of_bad_values_is_large_enough() -> None:
    assert len(BAD_VALUES) >= 20
    fields = {message.split(" ")[0].rstrip(":") for _, message in BAD_VALUES}
    assert len(fields) >= 20


def test_every_error_is_reported_at_once() -> None:
    text = '[procedure]\nfreeze_s = 300\ncolour = "red"\n[link]\nheartbeat_s = nan\n'
    assert messages_of(text) == [
        "link.heartbeat_s = nan: not a finite number",
        "procedure.freeze_s = 300 out of range 120..240 s (clinical)",
        "procedure.colour: unknown key",
    ]


@pytest.mark.parametrize("spelling", ["nan", "+nan", "-nan", "inf", "+inf", "-inf"])
@pytest.mark.parametrize(
    ("table", "key"),
    [
        ("procedure", "freeze_s"),
        ("link", "heartbeat_s"),
        ("gases.N2O", "supply_over_psi"),
        ("interlocks", "timed_thaw_s"),
        ('probes."CRYO-20G-90".thermistor', "b_k"),
        ("pressure.exhaust", "offset_psi"),
        ("stimulation", "lead_max_ohm"),
    ],
)
def test_toml_nan_and_inf_are_refused(table: str, key: str, spelling: str) -> None:
    """SR-30: TOML's nan and inf parse as floats; the models refuse them."""
    [message] = messages_of(f"[{table}]\n{key} = {spelling}\n")
    shown = "nan" if "nan" in spelling else spelling.lstrip("+")
    assert message == f"{table.replace(chr(34), '')}.{key} = {shown}: not a finite number"


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ("colour = 1", "colour: unknown key"),
        ("[procedure]\ncolour = 1", "procedure.colour: unknown key"),
        ("[procedure]\nfreez_s = 1", "procedure.freez_s: unknown key (did you mean freeze_s?)"),
        ("[link]\nbaud = 9600", "link.baud: unknown key (did you mean baudrate?)"),
        ("[gases.H2]\nboiling_c = -252.9", "gases.H2: unknown key"),
        (
            '[probes."CRYO-20G-90".thermistor]\nr0_ohm = 1',
            "probes.CRYO-20G-90.thermistor.r0_ohm: unknown key (did you mean r25_ohm?)",
        ),
        (
            "[stimulation.presets.motor]\nwidth_us = 1",
            "stimulation.presets.motor.width_us: unknown key",
        ),
        (
            "[interlocks]\nstim_max_while_freezing_ma = 0",
            "interlocks.stim_max_while_freezing_ma: unknown key",
        ),
    ],
)
def test_unknown_keys_are_refused(toml: str, message: str) -> None:
    """SR-30: a misspelt key is an error, never silently ignored."""
    assert messages_of(toml) == [message]


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        (
            '[procedure]\nfreeze_s = "180"',
            'procedure.freeze_s = "180": expected a number, got a string',
        ),
        (
            '[link]\nbaudrate = "115200"',
            'link.baudrate = "115200": expected an integer, got a string',
        ),
        ("[procedure]\ncycles = 3.0", "procedure.cycles = 3.0: expected an integer, got a float"),
        (
            "[procedure]\ncycles = true",
            "procedure.cycles = true: expected an integer, got a boolean",
        ),
        ("[link]\nheartbeat_s = true", "link.heartbeat_s = true: expected a number, got a boolean"),
        (
            '[probes."CRYO-20G-90"]\nsingle_use = 1',
            "probes.CRYO-20G-90.single_use = 1: expected true or false, got an integer",
        ),
        ("gas = 2", 'gas = 2: expected "N2O" or "CO2"'),
        (
            "[interlocks]\ntip_max_c = [60]",
            "interlocks.tip_max_c = [60]: expected a number, got an array",
        ),
        (
            "[interlocks]\ntip_max_c = 1979-05-27",
            "interlocks.tip_max_c = 1979-05-27: expected a number, got a date or time",
        ),
        (
            "[pressure]\ncalibration_file = 3",
            "pressure.calibration_file = 3: expected a path (a string), got an integer",
        ),
    ],
)
def test_wrong_types_are_refused_never_coerced(toml: str, message: str) -> None:
    """SR-30: strings, booleans and floats where numbers or integers belong are refused."""
    assert messages_of(toml) == [message]


def test_bad_toml_and_unreadable_files(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[procedure\nfreeze_s = 1\n", encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(bad, {})
    [message] = caught.value.messages
    assert message.startswith(f"{bad}: not valid TOML: ")
    missing = tmp_path / "missing.toml"
    with pytest.raises(ConfigError) as caught:
        load_config(missing, {})
    assert caught.value.messages == [f"{missing}: cannot read: No such file or directory"]


# --- never loosen -----------------------------------------------------------------

SR_LIMITS: list[tuple[str, float, str, str]] = [
    # (key, the SR's number: the loosest value allowed, the way it may move, SR)
    ("interlocks.supply_window_hold_s", 1.0, "higher", "SR-04"),
    ("interlocks.supply_over_hold_s", 0.03, "lower", "SR-05"),
    ("interlocks.supply_low_hold_s", 1.0, "lower", "SR-06"),
    ("interlocks.supply_low_timeout_s", 60.0, "lower", "SR-06"),
    ("interlocks.exhaust_over_hold_s", 0.02, "lower", "SR-07"),
    ("interlocks.exhaust_close_within_s", 0.1, "lower", "SR-07"),
    ("interlocks.exhaust_high_hold_s", 2.0, "lower", "SR-07"),
    ("interlocks.no_flow_exhaust_s", 2.0, "lower", "SR-08"),
    ("interlocks.no_flow_tip_s", 10.0, "lower", "SR-08"),
    ("interlocks.no_flow_tip_c", -20.0, "lower", "SR-08"),
    ("interlocks.valve_mismatch_s", 0.1, "lower", "SR-09"),
    ("interlocks.tip_max_c", 60.0, "lower", "SR-10"),
    ("interlocks.tip_step_c", 10.0, "lower", "SR-10"),
    ("interlocks.tip_step_window_s", 0.1, "higher", "SR-10"),
    ("interlocks.tip_stuck_c", 2.0, "higher", "SR-10"),
    ("interlocks.tip_stuck_s", 10.0, "lower", "SR-10"),
    ("interlocks.weak_freeze_s", 30.0, "lower", "SR-11"),
    ("interlocks.release_tip_c", 2.0, "higher", "SR-12"),
    ("interlocks.release_hold_s", 1.0, "higher", "SR-12"),
    ("interlocks.timed_thaw_s", 420.0, "higher", "SR-13"),
    ("interlocks.thaw_slow_s", 300.0, "lower", "SR-14"),
    ("interlocks.pressurize_timeout_s", 60.0, "lower", "SR-04"),
    ("interlocks.link_degraded_ratio", 0.01, "lower", "SR-23"),
    ("interlocks.sensor_fault_hold_s", 0.03, "lower", "SR-32"),
    ("interlocks.sensor_plausible_restore_s", 5.0, "higher", "SR-32"),
    ("procedure.release_factor", 2.5, "higher", "SR-12"),
    ("procedure.leak_max_psi_per_s", 1.5, "lower", "SR-24"),
    ("link.heartbeat_s", 0.05, "lower", "SR-02"),
    ("link.link_lost_s", 0.25, "lower", "SR-03"),
    ("link.quality_window_s", 5.0, "lower", "SR-23"),
    ("stimulation.current_max_ma", 5.0, "lower", "SR-16"),
    ("stimulation.pulse_min_us", 50, "higher", "SR-16"),
    ("stimulation.pulse_max_us", 1000, "lower", "SR-16"),
    ("stimulation.rate_min_hz", 1, "higher", "SR-16"),
    ("stimulation.rate_max_hz", 100, "lower", "SR-16"),
    ("stimulation.lead_max_ohm", 20_000.0, "lower", "SR-16"),
]
for _gas, _boiling, _target in (("N2O", -88.5, -60.0), ("CO2", -78.5, -50.0)):
    SR_LIMITS += [
        (f"gases.{_gas}.boiling_c", _boiling, "higher", "SR-10"),
        (f"gases.{_gas}.floor_margin_c", 3.0, "lower", "SR-10"),
        (f"gases.{_gas}.supply_min_psi", 600.0, "higher", "SR-04"),
        (f"gases.{_gas}.supply_max_psi", 800.0, "lower", "SR-04"),
        (f"gases.{_gas}.supply_over_psi", 900.0, "lower", "SR-05"),
        (f"gases.{_gas}.supply_low_psi", 550.0, "higher", "SR-06"),
        (f"gases.{_gas}.exhaust_over_psi", 20.0, "lower", "SR-07"),
        (f"gases.{_gas}.exhaust_high_psi", 15.0, "lower", "SR-07"),
        (f"gases.{_gas}.exhaust_flow_min_psi", 5.0, "higher", "SR-08"),
        (f"gases.{_gas}.freeze_target_c", _target, "lower", "SR-11"),
    ]


DEFAULT_INSIDE_THE_LIMIT = {"link.heartbeat_s": 0.04}
"""Defaults with a margin inside the SR's number (SR-02: at least every 50 ms)."""

ALSO_TIGHTEN = {"stimulation.pulse_max_us": {"stimulation.presets.sensory.pulse_us": 999}}
"""What else must move for one step tighter to stay consistent (a preset inside its limits)."""


def _get(config: ConsoleConfig, key: str) -> object:
    value: object = config
    for part in key.split("."):
        value = getattr(value, part)
    return value


def _looser(default: float, tighter: str) -> list[float]:
    """One representable step and one percent the wrong way (one unit for integers)."""
    away = math.inf if tighter == "lower" else -math.inf
    if isinstance(default, int):
        return [default + (1 if tighter == "lower" else -1)]
    sign = 1.0 if tighter == "lower" else -1.0
    return [math.nextafter(default, away), default + sign * max(abs(default) * 0.01, 1e-3)]


def _tighter(default: float, tighter: str) -> float | int:
    sign = -1 if tighter == "lower" else 1
    if isinstance(default, int):
        return default + sign
    return default + sign * max(abs(default) * 0.01, 1e-4)


@pytest.mark.parametrize(
    ("key", "default", "tighter", "sr"), SR_LIMITS, ids=[k for k, *_ in SR_LIMITS]
)
def test_safety_limit_may_be_tightened_never_loosened(
    key: str, default: float, tighter: str, sr: str
) -> None:
    """Never loosen (SR-02, SR-03, SR-04 .. SR-14, SR-16, SR-23, SR-24, SR-32): the
    default is the SR's number; one step looser is refused in both profiles, a
    step tighter is accepted."""
    assert _get(ConsoleConfig(), key) == DEFAULT_INSIDE_THE_LIMIT.get(key, default)
    assert _get(loads_config("", {key: default}), key) == default
    for profile in ("clinical", "bench"):
        for value in _looser(default, tighter):
            messages = messages_of("", {"procedure.profile": profile, key: value})
            assert len(messages) == 1, messages
            assert messages[0].startswith(f"{key} = ")
            assert " out of range " in messages[0]
            assert messages[0].endswith("may only be tightened)")
    value = _tighter(default, tighter)
    assert _get(loads_config("", {key: value, **ALSO_TIGHTEN.get(key, {})}), key) == value


def test_every_safety_limit_is_in_the_table() -> None:
    """Each field marked tighten-only is listed above with its SR and direction, and
    every interlock timing is such a field."""
    marked: dict[str, tuple[str, str]] = {}

    def walk(model: type[BaseModel], prefix: str, instance: object) -> None:
        for name in model.model_fields:
            value = getattr(instance, name)
            if isinstance(value, BaseModel):
                walk(type(value), f"{prefix}{name}.", value)
            elif isinstance(value, dict):
                for entry, item in value.items():
                    if isinstance(item, BaseModel):
                        walk(type(item), f"{prefix}{name}.{entry}.", item)
            elif (limit := safety_limit(model, name)) is not None:
                marked[prefix + name] = limit

    walk(ConsoleConfig, "", ConsoleConfig())
    listed = {key: (tighter, sr) for key, _, tighter, sr in SR_LIMITS}
    assert marked == listed
    assert {f"interlocks.{n}" for n in InterlockLimits.model_fields} <= set(listed)


# --- profiles (SR-17) ---------------------------------------------------------------

SR17 = [
    ("clinical", "cycles", 2, 3),
    ("clinical", "freeze_s", 120.0, 240.0),
    ("clinical", "thaw_s", 30.0, 120.0),
    ("clinical", "leak_window_s", 10.0, 10.0),
    ("bench", "cycles", 1, 3),
    ("bench", "freeze_s", 5.0, 240.0),
    ("bench", "thaw_s", 5.0, 120.0),
    ("bench", "leak_window_s", 2.0, 10.0),
]


@pytest.mark.parametrize(("profile", "name", "low", "high"), SR17)
def test_sr17_profile_ranges(profile: str, name: str, low: float, high: float) -> None:
    """SR-17: clinical 2-3 cycles, freeze 120-240 s, thaw 30-120 s, leak window 10 s;
    bench 1-3 cycles, freeze 5-240 s, thaw 5-120 s, leak window 2-10 s; out of range
    is refused before anything moves."""
    assert PROFILE_RANGES[profile][name] == (low, high)  # type: ignore[index]
    key = f"procedure.{name}"
    for good in (low, high):
        config = loads_config("", {"procedure.profile": profile, key: good})
        assert getattr(config.procedure, name) == good
    step = 1 if isinstance(low, int) else 0.5
    unit = unit_of(name)
    span = f"{low:g}..{high:g}" + (f" {unit}" if unit else "")
    for bad in (low - step, high + step):
        assert messages_of("", {"procedure.profile": profile, key: bad}) == [
            f"{key} = {bad:g} out of range {span} ({profile})"
        ]


def test_sr17_cli_options_are_named_in_messages() -> None:
    """SR-17 through the command line: the message names the option, then the key."""
    assert messages_of("", {"--freeze-s": 300.0}) == [
        "--freeze-s (procedure.freeze_s) = 300 out of range 120..240 s (clinical)"
    ]
    assert messages_of("", {"--profile": "bench", "--freeze-s": 300.0}) == [
        "--freeze-s (procedure.freeze_s) = 300 out of range 5..240 s (bench)"
    ]
    assert messages_of("", {"--cycles": 1, "--thaw-s": 10.0, "--gas": "Ar"}) == [
        '--gas (gas) = "Ar": expected "N2O" or "CO2"',
        "--cycles (procedure.cycles) = 1 out of range 2..3 (clinical)",
        "--thaw-s (procedure.thaw_s) = 10 out of range 30..120 s (clinical)",
    ]
    bench = loads_config("", {"--profile": "bench", "--cycles": 1, "--freeze-s": 5.0})
    assert (bench.procedure.cycles, bench.procedure.freeze_s) == (1, 5.0)
    assert set(CLI_OPTIONS) == {"--gas", "--profile", "--cycles", "--freeze-s", "--thaw-s"}


def test_sr17_bench_keeps_every_pressure_and_temperature_limit() -> None:
    """SR-17: bench relaxes durations only; gases and interlocks are unchanged."""
    clinical = ConsoleConfig()
    bench = loads_config("", {"--profile": "bench"})
    assert bench.procedure.profile == "bench"
    assert bench.gases == clinical.gases
    assert bench.interlocks == clinical.interlocks
    assert bench.stimulation == clinical.stimulation
    assert messages_of('[procedure]\nprofile = "bench"\n[gases.N2O]\nexhaust_over_psi = 25') == [
        "gases.N2O.exhaust_over_psi = 25 out of range 0..20 psi (0 excluded; may only be tightened)"
    ]


def test_a_file_value_is_checked_against_the_profile_given_on_the_command_line() -> None:
    assert (
        loads_config("[procedure]\nfreeze_s = 30", {"--profile": "bench"}).procedure.freeze_s == 30
    )
    assert messages_of("[procedure]\nfreeze_s = 30", {"--profile": "clinical"}) == [
        "procedure.freeze_s = 30 out of range 120..240 s (clinical)"
    ]


# --- merging and overrides ----------------------------------------------------------


def test_a_file_overrides_a_subset_and_tables_merge() -> None:
    text = (
        'gas = "CO2"\n'
        "[procedure]\nfreeze_s = 150\n"
        '[probes."CRYO-14G-120"]\ngauge = 14\nlength_mm = 120\n'
        "[stimulation.presets.fine]\nrate_hz = 2\npulse_us = 50\nstart_ma = 0.3\n"
    )
    config = loads_config(text)
    assert config.gas == "CO2"
    assert config.procedure.freeze_s == 150.0
    assert config.procedure.thaw_s == 30.0
    assert set(config.probes) == {"CRYO-20G-90", "CRYO-14G-120"}
    assert config.probes["CRYO-14G-120"].thermistor == config.probes["CRYO-20G-90"].thermistor
    assert set(config.stimulation.presets) == {"motor", "sensory", "fine"}
    assert loads_config(text, {"probe_model": "CRYO-14G-120"}).probe.gauge == 14


def test_overrides_win_over_the_file_and_none_means_not_given() -> None:
    text = "[procedure]\nfreeze_s = 150\nthaw_s = 60"
    config = loads_config(
        text, {"--freeze-s": 200.0, "--thaw-s": None, "interlocks.tip_max_c": 50.0}
    )
    assert (config.procedure.freeze_s, config.procedure.thaw_s) == (200.0, 60.0)
    assert config.interlocks.tip_max_c == 50.0


def test_an_override_does_not_hide_a_spoilt_table() -> None:
    assert messages_of("procedure = 3", {"--freeze-s": 200.0}) == [
        "procedure = 3: expected a table, got an integer"
    ]


def test_format_error() -> None:
    assert (
        format_error("procedure.freeze_s", 300, "out of range 120..240 s (clinical)", "--freeze-s")
        == "--freeze-s (procedure.freeze_s) = 300 out of range 120..240 s (clinical)"
    )
    assert (
        format_error("link.heartbeat_s", math.nan, "not a finite number")
        == "link.heartbeat_s = nan: not a finite number"
    )
    assert (
        format_error("procedure.colour", NO_VALUE, "unknown key") == "procedure.colour: unknown key"
    )
    error = ConfigError([])
    assert error.messages == []


# --- hash -----------------------------------------------------------------------


def test_config_sha256_is_stable_and_sensitive() -> None:
    default = config_sha256(ConsoleConfig())
    assert len(default) == 64 and int(default, 16) >= 0
    assert config_sha256(load_config(None, {})) == default
    # 180 and 180.0 are the same configuration.
    assert config_sha256(loads_config("[procedure]\nfreeze_s = 180")) == default
    assert config_sha256(loads_config("[procedure]\nfreeze_s = 181")) != default
    assert config_sha256(loads_config("", {"--profile": "bench"})) != default


# --- calibration file ---------------------------------------------------------------


def test_calibration_file_overrides_the_sensors(tmp_path: Path) -> None:
    supply = PressureCalibration(offset_psi=-2.5, span=1.01)
    exhaust = PressureCalibration(offset_psi=0.75, span=0.99)
    (tmp_path / "cal.toml").write_text(calibration_toml(supply, exhaust), encoding="utf-8")
    config_path = tmp_path / "console.toml"
    config_path.write_text(
        '[pressure]\ncalibration_file = "cal.toml"\n[pressure.supply]\noffset_psi = 9.0\n',
        encoding="utf-8",
    )
    config = load_config(config_path, {})
    assert config.pressure.supply == supply
    assert config.pressure.exhaust == exhaust
    # Relative to the configuration file, kept absolute so `config show` is portable.
    assert config.pressure.calibration_file == (tmp_path / "cal.toml").absolute()
    assert loads_config(config_toml(config)) == config


@pytest.mark.parametrize(
    ("text", "detail"),
    [
        (
            "[supply]\noffset_psi = 80\n[exhaust]\n",
            "supply.offset_psi = 80 out of range -50..50 psi",
        ),
        ("[supply]\nspan = nan\n[exhaust]\n", "supply.span = nan: not a finite number"),
        ("[supply]\n", "exhaust: required key missing"),
        ("[supply]\n[exhaust]\n[stim]\n", "stim: unknown key"),
        ("[supply\n", "not valid TOML: "),
    ],
)
def test_a_bad_calibration_file_is_a_configuration_error(
    text: str, detail: str, tmp_path: Path
) -> None:
    cal = tmp_path / "cal.toml"
    cal.write_text(text, encoding="utf-8")
    [message] = messages_of(f'[pressure]\ncalibration_file = "{cal}"\n')
    assert message.startswith(f'pressure.calibration_file = "{cal}": {detail}')


def test_a_missing_calibration_file_is_a_configuration_error(tmp_path: Path) -> None:
    cal = tmp_path / "nowhere.toml"
    assert messages_of(f'[pressure]\ncalibration_file = "{cal}"\n') == [
        f'pressure.calibration_file = "{cal}": cannot read: No such file or directory'
    ]


def test_calibration_toml_round_trips(tmp_path: Path) -> None:
    supply, exhaust = PressureCalibration(offset_psi=1.25), PressureCalibration(span=1.1)
    path = tmp_path / "cal.toml"
    path.write_text(calibration_toml(supply, exhaust), encoding="utf-8")
    assert load_calibration_file(path) == PressureCalibrationFile(supply=supply, exhaust=exhaust)
    assert tomllib.loads(path.read_text(encoding="utf-8")) == {
        "supply": {"offset_psi": 1.25, "span": 1.0},
        "exhaust": {"offset_psi": 0.0, "span": 1.1},
    }


# --- config show | config check --------------------------------------------------------


def test_config_show_then_check_round_trips(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    custom = tmp_path / "site.toml"
    custom.write_text(
        'gas = "CO2"\n[procedure]\nfreeze_s = 10\n[interlocks]\ntip_max_c = 55.5\n',
        encoding="utf-8",
    )
    for argv in (
        ["config", "show"],
        ["config", "show", "--profile", "bench"],
        ["config", "show", "--config", str(custom), "--profile", "bench"],
    ):
        assert cli.main(argv) == 0
        shown, err = capsys.readouterr()
        assert err == ""
        path = tmp_path / "shown.toml"
        path.write_text(shown, encoding="utf-8")
        assert cli.main(["config", "check", str(path)]) == 0
        out, err = capsys.readouterr()
        expected = load_config(
            Path(argv[3]) if "--config" in argv else None,
            {"--profile": argv[-1] if "--profile" in argv else None},
        )
        assert out == f"{path}: valid (config_sha256 {config_sha256(expected)})\n"
        assert err == ""
        assert load_config(path, {}) == expected


def test_config_show_refuses_a_bad_profile(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["config", "show", "--profile", "lab"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.splitlines()[1:] == [
        '--profile (procedure.profile) = "lab": expected "clinical" or "bench"'
    ]


def test_config_check_reports_every_error_on_stderr_and_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """SR-23: bad configuration input gives a clear error and exit 2."""
    path = tmp_path / "bad.toml"
    path.write_text('[procedure]\nfreeze_s = 300\ncolour = "red"\n', encoding="utf-8")
    assert cli.main(["config", "check", str(path)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.splitlines() == [
        f"probe-console config: invalid configuration in {path} (2 errors):",
        "procedure.freeze_s = 300 out of range 120..240 s (clinical)",
        "procedure.colour: unknown key",
    ]
    assert "Traceback" not in err
    assert cli.main(["config", "check", str(tmp_path / "none.toml")]) == 2
    assert "cannot read" in capsys.readouterr().err


def test_config_show_piped_to_config_check_in_processes(tmp_path: Path) -> None:
    """`probe-console config show | probe-console config check -`, as separate processes."""
    show = subprocess.run(
        [sys.executable, "-m", "console", "config", "show"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert show.returncode == 0, show.stderr
    check = subprocess.run(
        [sys.executable, "-m", "console", "config", "check", "-"],
        cwd=tmp_path,
        input=show.stdout,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert check.returncode == 0, check.stderr
    assert check.stdout == f"-: valid (config_sha256 {config_sha256(ConsoleConfig())})\n"
    assert loads_config(show.stdout) == ConsoleConfig()
    spoilt = show.stdout.replace("freeze_s = 180.0", "freeze_s = 300.0")
    assert spoilt != show.stdout
    check = subprocess.run(
        [sys.executable, "-m", "console", "config", "check", "-"],
        cwd=tmp_path,
        input=spoilt,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert check.returncode == 2
    assert "procedure.freeze_s = 300 out of range 120..240 s (clinical)" in check.stderr


# --- docs/configuration.md -----------------------------------------------------------


def test_configuration_reference_is_current() -> None:
    committed = REFERENCE.read_text(encoding="utf-8") if REFERENCE.is_file() else ""
    assert committed == configuration_reference(), (
        f"{REFERENCE.relative_to(ROOT)} differs from the models; regenerate it from the "
        f"project root with:\n    {REGENERATE}"
    )


def test_configuration_reference_lists_every_key() -> None:
    reference = configuration_reference()
    for key, *_ in SR_LIMITS:
        name = key.rsplit(".", 1)[1]
        assert f"| `{name}` |" in reference
    for name in InterlockLimits.model_fields:
        assert f"| `{name}` | number |" in reference
    assert "`[probes.<name>.thermistor]`" in reference
    assert "| `freeze_s` | number | `180` | s | clinical 120..240 s, bench 5..240 s |" in reference
    assert "| `supply_over_psi` | number | `900` | psi | ..900 psi | lowered (SR-05) |" in reference


def test_config_reference_command_prints_the_page(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["config", "reference"]) == 0
    assert capsys.readouterr().out == configuration_reference()

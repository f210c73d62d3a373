"""Operator actions and their parameters: one spelling for the API, `ctl`, scenarios and events.

Validated at the edge (SR-30): unknown keys, NaN/infinity, strings where
numbers belong and out-of-range values are refused, never coerced. The
procedure receives only validated actions.
"""

from __future__ import annotations

from typing import Any, Literal, Self, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

_STRICT = ConfigDict(strict=True, extra="forbid", allow_inf_nan=False, frozen=True)

Action = Literal[
    "arm",
    "stim_configure",
    "stim_start",
    "stim_stop",
    "confirm_localization",
    "start_freeze",
    "abort",
    "estop",
    "ack_alarm",
    "silence_alarms",
    "request_withdraw",
    "declare_thermistor_suspect",
    "confirm_timed_thaw",
]
#: The actions in the order interfaces.md lists them (one spelling everywhere).
ACTIONS: tuple[str, ...] = get_args(Action)

ABSOLUTE_CONTRAINDICATIONS = (
    "patient_refusal",
    "haemostasis_disorder",
    "infection_at_site",
    "raynaud",
    "cryoglobulinaemia",
    "cold_urticaria",
)


class Checklist(BaseModel):
    """SR-19: the pre-procedure checklist of interfaces.md (seed: contraindications)."""

    model_config = _STRICT

    patient_refusal: bool
    haemostasis_disorder: bool
    infection_at_site: bool
    raynaud: bool
    cryoglobulinaemia: bool
    cold_urticaria: bool
    site_is_face: bool
    acknowledge_relative_contraindication: bool = False

    def problems(self) -> list[str]:
        """Why this checklist does not allow the procedure (empty when it does)."""
        found = [
            f"{name} is true (absolute contraindication)"
            for name in ABSOLUTE_CONTRAINDICATIONS
            if getattr(self, name)
        ]
        if self.site_is_face and not self.acknowledge_relative_contraindication:
            found.append(
                "site_is_face is true: acknowledge_relative_contraindication must be true "
                "(relative contraindication: cosmetic risk)"
            )
        return found


def clear_checklist() -> Checklist:
    """All clear: what the scripted operator gives."""
    return Checklist(
        patient_refusal=False,
        haemostasis_disorder=False,
        infection_at_site=False,
        raynaud=False,
        cryoglobulinaemia=False,
        cold_urticaria=False,
        site_is_face=False,
    )


class ArmParams(BaseModel):
    model_config = _STRICT

    checklist: Checklist
    cycles: int | None = None
    freeze_s: float | None = None
    thaw_s: float | None = None


class StimConfigureParams(BaseModel):
    """Either a preset or explicit settings; the stimulator driver checks SR-16's limits."""

    model_config = _STRICT

    preset: str | None = None
    current_ma: float | None = Field(None, ge=0.0, le=5.0)
    pulse_us: int | None = Field(None, ge=50, le=1000)
    rate_hz: int | None = Field(None, ge=1, le=100)

    @model_validator(mode="after")
    def _one_way(self) -> Self:
        explicit = (self.current_ma, self.pulse_us, self.rate_hz)
        if self.preset is not None and any(v is not None for v in explicit):
            raise ValueError("give either preset or current_ma, pulse_us and rate_hz, not both")
        if self.preset is None and any(v is None for v in explicit):
            raise ValueError("give a preset, or all of current_ma, pulse_us and rate_hz")
        return self


class AckAlarmParams(BaseModel):
    model_config = _STRICT

    alarm: str


class SilenceParams(BaseModel):
    model_config = _STRICT

    duration_s: float = Field(gt=0.0, le=120.0)


class NoParams(BaseModel):
    model_config = _STRICT


PARAMS: dict[str, type[BaseModel]] = {
    "arm": ArmParams,
    "stim_configure": StimConfigureParams,
    "ack_alarm": AckAlarmParams,
    "silence_alarms": SilenceParams,
}


def validate_action(action: str, params: dict[str, Any]) -> BaseModel:
    """The validated parameters of `action`; ValueError/ValidationError naming what is wrong."""
    if action not in ACTIONS:
        raise ValueError(f"unknown action {action!r}; actions: {', '.join(ACTIONS)}")
    return PARAMS.get(action, NoParams).model_validate(params)


__all__ = [
    "ACTIONS",
    "AckAlarmParams",
    "Action",
    "ArmParams",
    "Checklist",
    "NoParams",
    "SilenceParams",
    "StimConfigureParams",
    "ValidationError",
    "clear_checklist",
    "validate_action",
]

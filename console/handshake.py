"""SR-18: is this the device and probe the configuration expects, and is the probe unused?

Pure: the identity, the configuration's expectations and what the registry
remembers go in; the refusals come out, each with its own code and a message
saying what was found, what was expected and what the user can do. A refusal
blocks arming only: telemetry and de-energising commands go on (SR-18).
"""

from __future__ import annotations

from collections.abc import Collection
from typing import NamedTuple

from console.store import OpenedProbe
from protocols import PROTOCOL_VERSION, Gas, Identity


class Refusal(NamedTuple):
    #: protocol_version | gas | probe_model_unknown | probe_model | probe_used | probe_opened
    code: str
    message: str


class Expectation(NamedTuple):
    gas: str
    probe_model: str
    known_models: Collection[str]
    single_use: bool


def gas_name(code: int) -> str:
    try:
        return Gas(code).name
    except ValueError:
        return f"unknown gas code {code}"


def check_identity(
    identity: Identity,
    expected: Expectation,
    *,
    opened_before: OpenedProbe | None,
    continuing: bool,
) -> list[Refusal]:
    """Every reason to refuse this device, or an empty list.

    `continuing`: a re-handshake with the same device and probe serials and no
    device reset since, which continues the same probe use (`interfaces.md`,
    Words): the probe's own count and the registry then show our own use.
    """
    refusals: list[Refusal] = []
    if identity.protocol_version != PROTOCOL_VERSION:
        refusals.append(
            Refusal(
                "protocol_version",
                f"device speaks protocol version {identity.protocol_version}, this console "
                f"speaks {PROTOCOL_VERSION}: update the console or the device firmware",
            )
        )
    gas = gas_name(identity.gas)
    if gas != expected.gas:
        refusals.append(
            Refusal(
                "gas",
                f"device is plumbed for {gas}, the configuration says {expected.gas}: "
                "fix the configuration (gas) or connect the right console",
            )
        )
    model = identity.probe_model
    if model not in expected.known_models:
        known = ", ".join(sorted(expected.known_models))
        refusals.append(
            Refusal(
                "probe_model_unknown",
                f"probe model {model!r} is unknown (known: {known}): attach a supported probe",
            )
        )
    elif model != expected.probe_model:
        refusals.append(
            Refusal(
                "probe_model",
                f"probe model {model!r} attached, the configuration expects "
                f"{expected.probe_model!r}: attach that probe or change probe_model",
            )
        )
    if expected.single_use and not continuing:
        if identity.probe_uses > 0:
            refusals.append(
                Refusal(
                    "probe_used",
                    f"single-use probe {identity.probe_serial} has been used "
                    f"{identity.probe_uses} time(s) already: attach a new probe",
                )
            )
        elif opened_before is not None:
            refusals.append(
                Refusal(
                    "probe_opened",
                    f"single-use probe {identity.probe_serial} was opened on device "
                    f"{opened_before.device_serial} at {opened_before.first_opened_ts}: "
                    "attach a new probe",
                )
            )
    return refusals

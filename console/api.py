"""The control API of `serve`: JSON-RPC 2.0 messages, their validation and their dispatch.

Sans-I/O: a line of bytes and the caller's peer credentials in, a response
object out (the socket, the queues and the peer-credential check live in
`console.apiserver`). Every request is judged strictly before anything is
done (SR-30): malformed JSON, `NaN`/`Infinity`, batches, requests without an
`id`, unknown methods, wrong types, unknown keys and out-of-range values are
answered with a JSON-RPC error and change nothing (SR-23). Every request that
changes state or is refused is recorded with its caller (uid, pid); status
polls are counted (SR-29). The operator actions are exactly those of
`console.actions`, with the same parameter models.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from console.actions import ACTIONS, PARAMS, NoParams
from console.alarms import ALARMS
from console.controller import Controller
from console.procedure import RUNNING

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
REFUSED = -32001  # refused by an interlock (or the alarm manager, the checklist, the lock)
NOT_IN_STATE = -32002  # not allowed in this state
CALLER_NOT_ALLOWED = -32003  # SR-29: the caller's uid is not on the allow-list
INTERNAL_ERROR = -32603  # a fault of the console's own: recorded; the daemon carries on

MAX_LINE = 64 * 1024
"""One message per line, at most 64 KiB (interfaces.md)."""

METHODS: tuple[str, ...] = (*ACTIONS, "status", "subscribe")

_STRICT = ConfigDict(strict=True, extra="forbid", allow_inf_nan=False, frozen=True)


# --- the messages (their JSON Schema is docs/api.schema.json) --------------------------------


class Request(BaseModel):
    """A JSON-RPC 2.0 request; `params` by name only (an object), `id` required."""

    model_config = _STRICT

    jsonrpc: Literal["2.0"]
    method: str = Field(max_length=64)
    params: dict[str, Any] | None = None
    id: int | str = Field(description="echoed in the response; a request without it is refused")


class ActionResult(BaseModel):
    """The result of an accepted action (and of `subscribe`)."""

    model_config = _STRICT

    accepted: Literal[True]
    state: str = Field(description="the procedure's public state after the action")
    reason: str = Field("", description="what the console said (e.g. 'acknowledged and cleared')")


class AlarmView(BaseModel):
    model_config = _STRICT

    alarm: str
    priority: str
    sr: list[str]
    acknowledged: bool
    condition_present: bool
    value: float | None
    limit: float | None


class LinkView(BaseModel):
    model_config = _STRICT

    state: str = Field(description="idle, hello_sent or open")
    lost: bool = Field(description="the link was lost and not yet restored")
    good: int
    bad: int
    lost_frames: int


class StatusResult(BaseModel):
    """The result of `status` (interfaces.md, "Control API")."""

    model_config = _STRICT

    t_s: float = Field(description="seconds since the session record started")
    state: str
    cycle: int
    cycles: int
    countdown_s: float | None = Field(description="time left in the current freeze or thaw")
    tip_c: float | None = Field(description="null before telemetry or with the sensor at a rail")
    supply_psi: float | None
    exhaust_psi: float | None
    alarms: list[AlarmView]
    withdraw_safe: bool
    locked: bool
    link: LinkView
    device: dict[str, Any] | None = Field(description="the last `device_identified` event's fields")
    gas_used_g_est: float
    gas_left_g_est: float
    session_id: str
    procedures: int = Field(description="procedures started in this session")


class ParamsErrorData(BaseModel):
    """`data` of -32602."""

    model_config = _STRICT

    field: str
    value: Any
    allowed: str


class RefusedData(BaseModel):
    """`data` of -32001."""

    model_config = _STRICT

    sr: list[str]
    alarm: str | None
    state: str


class StateErrorData(BaseModel):
    """`data` of -32002."""

    model_config = _STRICT

    action: str
    state: str


class SubscribeParams(BaseModel):
    model_config = _STRICT


# --- errors --------------------------------------------------------------------------------


class ApiError(Exception):
    """A JSON-RPC error: `code`, a message saying what was wrong, and `data`."""

    def __init__(self, code: int, message: str, data: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data

    def error(self) -> dict[str, Any]:
        out: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.data is not None:
            out["data"] = self.data
        return out


def _refuse_constant(name: str) -> None:
    raise ValueError(f"{name} is not a JSON value (SR-30)")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text} is out of the range of a finite number (SR-30)")
    return value


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate key {key!r}")
        out[key] = value
    return out


def _id_of(obj: object) -> int | str | None:
    if isinstance(obj, dict):
        rid = obj.get("id")
        if isinstance(rid, int | str) and not isinstance(rid, bool):
            return rid
    return None


def parse(line: bytes) -> tuple[Request | None, int | str | None, ApiError | None]:
    """A line -> (request, id, None) or (None, id if readable, the error)."""
    if len(line) > MAX_LINE:
        return None, None, ApiError(INVALID_REQUEST, f"a message is at most {MAX_LINE} bytes")
    try:
        obj = json.loads(
            line.decode("utf-8"),
            parse_constant=_refuse_constant,
            parse_float=_finite_float,
            object_pairs_hook=_unique_keys,
        )
        # Strings must be text: "\ud800" (a lone surrogate) is valid JSON but not Unicode.
        json.dumps(obj, ensure_ascii=False).encode("utf-8")
    except (UnicodeError, ValueError) as exc:
        return None, None, ApiError(PARSE_ERROR, f"parse error: {exc}")
    except RecursionError:
        return None, None, ApiError(PARSE_ERROR, "parse error: nested too deeply")
    if isinstance(obj, list):
        return None, None, ApiError(INVALID_REQUEST, "batches are not accepted: one request a line")
    rid = _id_of(obj)
    if not isinstance(obj, dict):
        return None, None, ApiError(INVALID_REQUEST, "a request is a JSON object")
    if obj.get("id") is None:
        return None, None, ApiError(INVALID_REQUEST, "a request without id is not executed")
    try:
        return Request.model_validate(obj), rid, None
    except ValidationError as exc:
        e = exc.errors()[0]
        where = ".".join(str(x) for x in e["loc"]) or "request"
        return None, rid, ApiError(INVALID_REQUEST, f"invalid request: {where}: {e['msg']}")


def params_error(exc: ValidationError) -> ApiError:
    """-32602 naming the first wrong field, its value, and what is allowed."""
    e = exc.errors()[0]
    where = ".".join(str(x) for x in e["loc"]) or "params"
    ctx = e.get("ctx") or {}
    bounds = [
        f"{op} {ctx[key]}"
        for key, op in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<"))
        if key in ctx
    ]
    allowed = ", ".join(bounds) if bounds else e["msg"]
    value = e.get("input")
    if isinstance(value, float) and not math.isfinite(value):
        value = None
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        value = repr(value)
    return ApiError(
        INVALID_PARAMS,
        f"invalid params: {where} = {value!r}: {e['msg']}",
        ParamsErrorData(field=where, value=value, allowed=allowed).model_dump(),
    )


STATE_WORDS = (
    "is not allowed in state",
    "nothing to withdraw",
    "configure stimulation first",
    "confirm_localization first",
    "is given once per procedure",
    "no timed thaw in progress",
    "the probe is not locked",
)
_ALARM = re.compile(r"\bALM_[A-Z_]+\b")
_FIELD = re.compile(r"^((?:procedure\.)?[a-z_]+) = ")


def refusal(
    action: str, reason: str, state: str, params: dict[str, Any] | None = None
) -> ApiError:
    """The procedure's refusal as -32002 (the state), -32602 (a value the console's limits
    refuse: `field = value ...`) or -32001 (an interlock, with its SRs)."""
    if any(words in reason for words in STATE_WORDS):
        return ApiError(
            NOT_IN_STATE, reason, StateErrorData(action=action, state=state).model_dump()
        )
    named = _FIELD.match(reason)
    if named is not None:  # arm outside the profile (procedure.freeze_s = ...), stimulation
        field_name = named.group(1).removeprefix("procedure.")
        value = (params or {}).get(field_name)
        return ApiError(
            INVALID_PARAMS,
            reason,
            ParamsErrorData(field=field_name, value=value, allowed=reason).model_dump(),
        )
    if action == "ack_alarm" and reason.startswith("unknown alarm"):
        value = (params or {}).get("alarm")
        return ApiError(
            INVALID_PARAMS,
            reason,
            ParamsErrorData(field="alarm", value=value, allowed=reason).model_dump(),
        )
    if action == "ack_alarm" and reason.endswith("is not active"):  # nothing to acknowledge
        return ApiError(
            NOT_IN_STATE, reason, StateErrorData(action=action, state=state).model_dump()
        )
    found = _ALARM.search(reason)
    alarm = found.group(0) if found and found.group(0) in ALARMS else None
    sr: list[str] = list(ALARMS[alarm].sr) if alarm is not None else []
    if not sr:
        sr = _sr_of(action, reason)
    return ApiError(REFUSED, reason, RefusedData(sr=sr, alarm=alarm, state=state).model_dump())


def _sr_of(action: str, reason: str) -> list[str]:
    if reason.startswith("checklist"):
        return ["SR-19"]
    if "locked" in reason or "frozen" in reason:
        return ["SR-12", "SR-22"]
    if "timed thaw" in reason:
        return ["SR-13"]
    if action == "stim_configure":
        return ["SR-16"]
    if action == "silence_alarms":
        return ["SR-21"]
    return []


# --- dispatch ------------------------------------------------------------------------------


@dataclass(slots=True)
class Caller:
    """Who is on the other end, from the kernel (SO_PEERCRED), never from the request."""

    uid: int
    pid: int
    gid: int
    subscribed: bool = False
    status_polls: int = 0
    requests: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


Emit = Callable[[str, dict[str, Any]], None]


class Api:
    """Dispatches validated requests to the controller, in the control thread."""

    def __init__(
        self,
        controller: Controller,
        emit: Emit,
        *,
        session_id: str,
        session_time: Callable[[], float],
    ) -> None:
        self.controller = controller
        self.emit = emit
        self.session_id = session_id
        self.session_time = session_time
        self.device: dict[str, Any] | None = None
        self.procedures = 0
        self.status_polls = 0

    def on_event(self, e: dict[str, Any]) -> None:
        """An event sink: what `status` reports of the device, and the procedure count."""
        name = e["event"]
        if name == "device_identified":
            self.device = {k: v for k, v in e.items() if k not in ("event", "t_s", "ts", "seq")}
        elif name == "procedure_started":
            self.procedures += 1

    def handle_line(self, line: bytes, caller: Caller) -> dict[str, Any]:
        """One line in, the response object out; recorded when it changed or was refused."""
        request, rid, error = parse(line)
        method = request.method if request is not None else None
        if error is None:
            assert request is not None
            try:
                result = self._dispatch(request, caller)
            except ApiError as exc:
                error = exc
            except Exception as exc:  # a request must never end the daemon, nor leave it unsafe
                error = ApiError(INTERNAL_ERROR, f"internal error: {type(exc).__name__}: {exc}")
                self.emit("api_internal_error", {"method": method, "error": repr(exc)[:500]})
                self._fail_safe()
            else:
                if method not in ("status",):
                    self._record(caller, method, rid, None, result.get("reason", ""))
                return {"jsonrpc": "2.0", "id": rid, "result": result}
        self._record(caller, method, rid, error, error.message)
        return {"jsonrpc": "2.0", "id": rid, "error": error.error()}

    def _fail_safe(self) -> None:
        """After a fault half-way through an action: a running procedure ends (its locked
        thaw follows, as after an abort) and the safe state is commanded, whatever the
        action had already done (DESIGN.md: fail safe). If this fails too, the exception
        ends the daemon, whose exit path commands the safe state (SR-01)."""
        proc = self.controller.procedure
        if proc.state in RUNNING:
            proc.end_now("api_internal_error")
        else:
            self.controller.safe_state("api_internal_error", None)

    def _record(
        self,
        caller: Caller,
        method: str | None,
        rid: int | str | None,
        error: ApiError | None,
        reason: str,
    ) -> None:
        self.emit(
            "api_request",
            {
                "method": method,
                "request_id": rid,
                "uid": caller.uid,
                "pid": caller.pid,
                "accepted": error is None,
                "code": None if error is None else error.code,
                "reason": reason[:500],
            },
        )

    def _dispatch(self, request: Request, caller: Caller) -> dict[str, Any]:
        method = request.method
        params = request.params if request.params is not None else {}
        caller.requests += 1
        if method == "status":
            self._validate(NoParams, params)
            caller.status_polls += 1
            self.status_polls += 1
            return self.status()
        if method == "subscribe":
            self._validate(SubscribeParams, params)
            caller.subscribed = True
            return self._accepted("subscribed")
        if method not in ACTIONS:
            raise ApiError(
                METHOD_NOT_FOUND,
                f"unknown method {method[:64]!r}; methods: {', '.join(METHODS)}",
            )
        self._validate(PARAMS.get(method, NoParams), params)
        ctl = self.controller
        accepted, reason = ctl.act(method, params)
        if not accepted:
            raise refusal(method, reason, ctl.procedure.state, params)
        return self._accepted(reason)

    @staticmethod
    def _validate(model: type[BaseModel], params: dict[str, Any]) -> None:
        try:
            model.model_validate(params)
        except ValidationError as exc:
            raise params_error(exc) from None

    def _accepted(self, reason: str) -> dict[str, Any]:
        return {"accepted": True, "state": self.controller.procedure.state, "reason": reason}

    def status(self) -> dict[str, Any]:
        ctl = self.controller
        proc = ctl.procedure
        conn = ctl.connection
        last = conn.last
        health = conn.link.health()
        est = ctl.estimates
        tip = None if last is None or last.tip_c != last.tip_c else round(last.tip_c, 2)
        return {
            "t_s": round(self.session_time(), 3),
            "state": proc.state,
            "cycle": proc.cycle,
            "cycles": proc.cycles,
            "countdown_s": countdown(ctl),
            "tip_c": tip,
            "supply_psi": None if last is None else round(last.supply_psi, 2),
            "exhaust_psi": None if last is None else round(last.exhaust_psi, 2),
            "alarms": [
                {
                    "alarm": a.alarm,
                    "priority": str(a.priority),
                    "sr": list(a.sr),
                    "acknowledged": a.acknowledged,
                    "condition_present": a.condition_present,
                    "value": _finite(a.value),
                    "limit": _finite(a.limit),
                }
                for a in ctl.alarms.active()
            ],
            "withdraw_safe": proc.withdraw_safe,
            "locked": proc.locked,
            "link": {
                "state": conn.link.state,
                "lost": conn.lost,
                "good": health.good,
                "bad": health.bad,
                "lost_frames": health.lost,
            },
            "device": self.device,
            "gas_used_g_est": round(est.gas_used_g_est, 2),
            "gas_left_g_est": round(est.gas_left_g_est, 2),
            "session_id": self.session_id,
            "procedures": self.procedures,
        }


def countdown(ctl: Controller) -> float | None:
    proc = ctl.procedure
    now = ctl.now
    if proc.state.startswith("freeze_") and proc.freeze_open_t is not None:
        return round(max(0.0, proc.params.freeze_s - (now - proc.freeze_open_t)), 1)
    if proc.state.startswith("thaw_") and proc.thaw_start_t is not None:
        return round(max(0.0, proc.params.thaw_s - (now - proc.thaw_start_t)), 1)
    return None


def _finite(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else x


# --- the JSON Schema (docs/api.schema.json) ------------------------------------------------


def json_schema() -> dict[str, Any]:
    """The API's JSON Schema, generated from the models (a test keeps the file current)."""
    from pydantic.json_schema import models_json_schema

    from console.actions import Checklist

    models: list[type[BaseModel]] = [
        Request,
        ActionResult,
        StatusResult,
        ParamsErrorData,
        RefusedData,
        StateErrorData,
        Checklist,
        NoParams,
        SubscribeParams,
        *{m for m in PARAMS.values()},
    ]
    models = sorted(set(models), key=lambda m: m.__name__)
    _, defs = models_json_schema(
        [(m, "validation") for m in models], ref_template="#/$defs/{model}"
    )
    requests = []
    for method in METHODS:
        params_model = (
            PARAMS.get(method, NoParams)
            if method in ACTIONS
            else NoParams
            if method == "status"
            else SubscribeParams
        )
        requests.append(
            {
                "type": "object",
                "title": method,
                "properties": {
                    "jsonrpc": {"const": "2.0"},
                    "id": {"type": ["integer", "string"]},
                    "method": {"const": method},
                    "params": {"$ref": f"#/$defs/{params_model.__name__}"},
                },
                "required": ["jsonrpc", "method", "id"],
                "additionalProperties": False,
            }
        )
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "probe-console/api.schema.json",
        "title": "probe-console control API (JSON-RPC 2.0 over a UNIX socket, one message a line)",
        "description": (
            "Generated by console.api.json_schema() from the models; do not edit by hand. "
            "Regenerate with `python -m console.api > docs/api.schema.json`."
        ),
        "oneOf": requests,
        "x-results": {
            "status": {"$ref": "#/$defs/StatusResult"},
            **{m: {"$ref": "#/$defs/ActionResult"} for m in (*ACTIONS, "subscribe")},
        },
        "x-errors": {
            str(PARSE_ERROR): "parse error (including NaN/Infinity)",
            str(INVALID_REQUEST): "invalid request (batch, no id, not an object, too long)",
            str(METHOD_NOT_FOUND): "unknown method",
            str(INVALID_PARAMS): {"$ref": "#/$defs/ParamsErrorData"},
            str(REFUSED): {"$ref": "#/$defs/RefusedData"},
            str(NOT_IN_STATE): {"$ref": "#/$defs/StateErrorData"},
            str(CALLER_NOT_ALLOWED): "caller not allowed (the connection then closes)",
            str(INTERNAL_ERROR): "a fault of the console's own (recorded as api_internal_error)",
        },
        "x-notification": {
            "type": "object",
            "properties": {
                "jsonrpc": {"const": "2.0"},
                "method": {"const": "event"},
                "params": {
                    "type": "object",
                    "description": "one event of docs/events.md",
                    "required": ["event", "t_s", "ts", "seq"],
                },
            },
        },
        "$defs": defs["$defs"],
    }


def schema_text() -> str:
    return json.dumps(json_schema(), indent=2, sort_keys=True) + "\n"


if __name__ == "__main__":
    import sys

    sys.stdout.write(schema_text())

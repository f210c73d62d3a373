"""The control API's messages, validation, error mapping and per-client queues, in process."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path
from typing import Any

import pytest

from console.actions import ACTIONS
from console.api import (
    INVALID_PARAMS,
    INVALID_REQUEST,
    METHODS,
    NOT_IN_STATE,
    PARSE_ERROR,
    REFUSED,
    STATE_WORDS,
    Caller,
    parse,
    refusal,
    schema_text,
)
from console.apiserver import Client

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = ROOT / "docs" / "api.schema.json"
API_DOC = ROOT / "docs" / "api.md"


def test_the_schema_file_is_generated_from_the_models() -> None:
    """docs/api.schema.json is current: regenerate with `python -m console.api`."""
    assert SCHEMA.read_text() == schema_text(), (
        "docs/api.schema.json is stale: python -m console.api > docs/api.schema.json"
    )


def test_the_schema_lists_every_method() -> None:
    schema = json.loads(schema_text())
    assert [r["properties"]["method"]["const"] for r in schema["oneOf"]] == list(METHODS)
    assert set(METHODS) == {*ACTIONS, "status", "subscribe"}


def test_the_api_page_documents_every_method_and_error() -> None:
    text = API_DOC.read_text()
    for method in METHODS:
        assert f"### `{method}`" in text, method
    for code in ("-32700", "-32600", "-32601", "-32602", "-32001", "-32002", "-32003"):
        assert code in text


@pytest.mark.parametrize(
    ("line", "code"),
    [
        (b'{"jsonrpc":"2.0","id":1,"method":"silence_alarms","params":{"duration_s":NaN}}', -32700),
        (b'{"jsonrpc":"2.0","id":1,"method":"x","params":{"a":-Infinity}}', -32700),
        (b"{", PARSE_ERROR),
        (b"[" * 60000, PARSE_ERROR),  # nesting that would exhaust the parser's recursion
        (b"\xc3\x28", PARSE_ERROR),
        (b"[]", INVALID_REQUEST),
        (b"1", INVALID_REQUEST),
        (b'{"jsonrpc":"2.0","method":"estop"}', INVALID_REQUEST),
        (b'{"jsonrpc":"2.0","id":true,"method":"estop"}', INVALID_REQUEST),
        (b'{"jsonrpc":"2.0","id":1.5,"method":"estop"}', INVALID_REQUEST),
        (b'{"jsonrpc":"2.0","id":1,"method":3}', INVALID_REQUEST),
        (b'{"jsonrpc":"2.0","id":1,"method":"estop","params":"x"}', INVALID_REQUEST),
        (b'{"jsonrpc":"2.0","id":1,"method":"estop","x":1}', INVALID_REQUEST),
        (b" " * (64 * 1024 + 1), INVALID_REQUEST),
        # Not text, out of range, ambiguous: refused before anything is recorded (SR-23).
        (b'{"jsonrpc":"2.0","id":"\\ud800","method":"status"}', PARSE_ERROR),
        (b'{"jsonrpc":"2.0","id":1,"method":"silence_alarms","params":{"duration_s":1e999}}', PARSE_ERROR),  # noqa: E501
        (b'{"jsonrpc":"2.0","id":1,"method":"status","method":"estop"}', PARSE_ERROR),
    ],
)
def test_bad_messages_are_refused_before_dispatch(line: bytes, code: int) -> None:
    """SR-30, SR-23: NaN/Infinity, bad JSON, batches, no id, wrong types, unknown keys."""
    request, _, error = parse(line)
    assert request is None and error is not None and error.code == code


def test_a_good_request_parses() -> None:
    request, rid, error = parse(b'{"jsonrpc":"2.0","id":"a","method":"status"}')
    assert error is None and request is not None and rid == "a" and request.method == "status"


@pytest.mark.parametrize(
    ("action", "reason", "code", "sr"),
    [
        ("start_freeze", "start_freeze is not allowed in state ready", NOT_IN_STATE, None),
        (
            "request_withdraw",
            "nothing to withdraw from in state ready; abort first",
            NOT_IN_STATE,
            None,
        ),
        ("stim_start", "configure stimulation first (stim_configure)", NOT_IN_STATE, None),
        ("arm", "checklist: raynaud is true (absolute contraindication)", REFUSED, ["SR-19"]),
        (
            "request_withdraw",
            "the probe is frozen to the tissue: wait for the thaw (ALM_PROBE_FROZEN)",
            REFUSED,
            ["SR-12"],
        ),
        ("arm", "alarms block a new procedure: ALM_LEAK (acknowledge them)", REFUSED, ["SR-24"]),
        ("arm", "procedure.freeze_s = 500 out of range", INVALID_PARAMS, None),
        (
            "stim_configure",
            "current_ma = 0.015 is not on the 0.01 mA grid (never rounded)",
            INVALID_PARAMS,
            None,
        ),
        ("stim_configure", "preset = 'nope' unknown; known: motor, sensory", INVALID_PARAMS, None),
        ("ack_alarm", "unknown alarm 'ALM_NOPE'; expected one of", INVALID_PARAMS, None),
        ("ack_alarm", "ALM_ESTOP is not active", NOT_IN_STATE, None),
    ],
)
def test_refusals_map_to_their_codes(
    action: str, reason: str, code: int, sr: list[str] | None
) -> None:
    error = refusal(action, reason, "ready")
    assert error.code == code and error.message == reason
    assert error.data is not None
    if code == NOT_IN_STATE:
        assert error.data == {"action": action, "state": "ready"}
    if sr is not None:
        assert error.data["sr"] == sr and error.data["state"] == "ready"


def test_the_state_phrases_are_the_procedures_own_words() -> None:
    """-32002 is told from -32001 by the refusal's wording: each phrase must still be one the
    procedure uses, so that rewording a refusal breaks this test, not the error codes."""
    source = (ROOT / "console" / "procedure.py").read_text(encoding="utf-8")
    assert [w for w in STATE_WORDS if w not in source] == []


def _client(limit: int) -> tuple[Client, socket.socket]:
    a, b = socket.socketpair()
    a.setblocking(False)
    return Client(a, Caller(uid=0, pid=1, gid=0), limit), b


def test_the_queue_drops_telemetry_first_and_counts_it() -> None:
    """A client that does not read: telemetry dropped (counted) past half the queue; events and
    responses kept until the queue is full; then the client is to be closed."""
    client, _peer = _client(limit=8)
    for _ in range(4):
        assert client.enqueue(b"event\n")
    assert client.enqueue(b"telemetry\n", telemetry=True)
    assert client.dropped_telemetry == 1 and len(client.out) == 4
    for _ in range(4):
        assert client.enqueue(b"event\n")
    assert len(client.out) == 8
    assert client.enqueue(b"event\n") is False  # full of events: it cannot keep up


def test_a_full_queue_makes_room_by_dropping_queued_telemetry() -> None:
    client, _peer = _client(limit=4)
    assert client.enqueue(b"t\n", telemetry=True)
    for _ in range(3):
        assert client.enqueue(b"e\n")
    assert client.enqueue(b"e\n")  # the queued telemetry makes room
    assert client.dropped_telemetry == 1 and all(not tel for _, tel in client.out)


def test_flush_never_blocks() -> None:
    """The kernel buffer full: flush returns with data still waiting, instead of waiting."""
    client, peer = _client(limit=100_000)
    line = b"x" * 1000 + b"\n"
    for _ in range(5000):
        client.enqueue(line)
    assert client.flush() is True  # still waiting, and it returned
    peer.close()


def test_a_fault_while_handling_a_request_is_answered_and_recorded() -> None:
    """A bug met by one request mid-freeze is answered -32603 and recorded; the daemon
    carries on, fail-safe: the procedure ends into its locked thaw, the safe state commanded."""
    from console.api import INTERNAL_ERROR, Api
    from tests.console.test_procedure import reach

    rig = reach("freeze_1")
    rig.run(2.0)
    events: list[tuple[str, dict[str, Any]]] = []
    api = Api(
        rig.ctl,
        lambda name, fields: events.append((name, fields)),
        session_id="s",
        session_time=lambda: rig.runner.now,
    )

    def broken(action: str, params: dict[str, Any]) -> tuple[bool, str]:
        raise RuntimeError("boom")

    rig.ctl.act = broken  # type: ignore[method-assign]
    answer = api.handle_line(
        b'{"jsonrpc":"2.0","id":1,"method":"stim_stop"}', Caller(uid=0, pid=1, gid=0)
    )
    assert answer["error"]["code"] == INTERNAL_ERROR and answer["id"] == 1
    assert [name for name, _ in events] == ["api_internal_error", "api_request"]
    assert rig.state == "aborted" and rig.proc.locked
    assert rig.of("safe_state_commanded")[-1]["reason"] == "api_internal_error"
    rig.run(0.5)
    assert not rig.of("telemetry")[-1]["supply_open"]


def _server(tmp_path: Path, seen: list[bytes]) -> Any:
    from console.apiserver import ApiServer

    def handler(line: bytes, caller: Caller) -> dict[str, Any]:
        seen.append(line)
        return {"jsonrpc": "2.0", "id": 1, "result": {"accepted": True, "state": "ready"}}

    return ApiServer(tmp_path / "run" / "api.sock", handler, lambda n, f: None, allowed_uids=[])


def test_the_last_lines_of_a_caller_that_went_away_are_served(tmp_path: Path) -> None:
    """SR-29: what a caller sent before it closed is taken and recorded, a last line
    without its newline too (`printf '...estop...' | nc -U`); then it is closed."""
    seen: list[bytes] = []
    server = _server(tmp_path, seen)
    try:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(str(server.path))
        sock.sendall(b'{"a":1}\n{"b":2}')
        sock.close()
        for _ in range(50):
            server.poll()
            if not server.clients and len(seen) == 2:
                break
            time.sleep(0.01)
        assert seen == [b'{"a":1}', b'{"b":2}']
        assert not server.clients
    finally:
        server.close(record=False)


def test_a_socket_folder_writable_by_others_is_refused(tmp_path: Path) -> None:
    """A shared folder (another user could swap the socket) is not used."""
    from console.apiserver import SocketInUseError

    folder = tmp_path / "run"
    folder.mkdir()
    folder.chmod(0o777)
    with pytest.raises(SocketInUseError, match="writable by everybody"):
        _server(tmp_path, [])


def test_a_stale_socket_is_replaced_but_a_live_one_is_not(tmp_path: Path) -> None:
    from console.apiserver import SocketInUseError, ensure_free

    path = tmp_path / "s.sock"
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(path))
    stale.close()  # the file stays, nobody accepts on it
    ensure_free(path)
    assert not path.exists()
    live = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    live.bind(str(path))
    live.listen(1)
    try:
        with pytest.raises(SocketInUseError, match="listens"):
            ensure_free(path)
        assert path.exists()
    finally:
        live.close()


def test_a_full_server_evicts_its_longest_idle_client(tmp_path: Path) -> None:
    """interfaces.md: any allowed client may estop; with max_clients connected, a new caller
    still gets in: the client idle the longest makes room."""
    from console.apiserver import ApiServer

    closed: list[dict[str, Any]] = []
    seen: list[bytes] = []

    def handler(line: bytes, caller: Caller) -> dict[str, Any]:
        seen.append(line)
        return {"jsonrpc": "2.0", "id": 1, "result": {"accepted": True, "state": "ready"}}

    def emit(name: str, fields: dict[str, Any]) -> None:
        if name == "api_client_closed":
            closed.append(fields)

    clock = iter(range(1_000_000))
    server = ApiServer(
        tmp_path / "run" / "api.sock",
        handler,
        emit,
        allowed_uids=[],
        max_clients=2,
        clock=lambda: next(clock) * 1e-6,  # strictly increasing: the order of activity
    )
    socks: list[socket.socket] = []
    try:

        def connect() -> socket.socket:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.connect(str(server.path))
            socks.append(sock)
            for _ in range(20):
                server.poll()
            return sock

        idle, busy = connect(), connect()
        busy.sendall(b'{"x":1}\n')
        for _ in range(20):
            server.poll()
        assert len(server.clients) == 2 and seen == [b'{"x":1}']
        newcomer = connect()
        assert [c["reason"] for c in closed] == ["evicted_idle"]
        newcomer.sendall(b'{"estop":1}\n')
        for _ in range(20):
            server.poll()
        assert seen[-1] == b'{"estop":1}' and len(server.clients) == 2
        idle.settimeout(1.0)
        assert idle.recv(100) == b""  # the idle one was closed, not the one that spoke
    finally:
        for sock in socks:
            sock.close()
        server.close(record=False)


def test_the_queue_is_bounded_in_bytes_too() -> None:
    """A client that pipelines requests echoing 64 KiB bad values and never reads is cut off
    at 4 MiB queued, not after 1,000 messages of any size."""
    from console.apiserver import QUEUE_BYTES

    client, _peer = _client(1000)
    big = b"x" * (64 * 1024)
    fits = QUEUE_BYTES // len(big)
    assert all(client.enqueue(big) for _ in range(fits))
    assert not client.enqueue(big)
    assert client.queued_bytes <= QUEUE_BYTES


def test_a_value_the_limits_refuse_names_its_field_and_value() -> None:
    """SR-30 / interfaces.md -32602: `data` has the field, the value as sent, what is allowed."""
    reason = "current_ma = 0.015 is not on the 0.01 mA grid (never rounded)"
    error = refusal("stim_configure", reason, "localize", {"current_ma": 0.015})
    assert error.code == INVALID_PARAMS
    assert error.data == {"field": "current_ma", "value": 0.015, "allowed": reason}
    reason = "procedure.freeze_s = 500 out of range 120..240 s"
    error = refusal("arm", reason, "ready", {"freeze_s": 500})
    assert error.data == {"field": "freeze_s", "value": 500, "allowed": reason}

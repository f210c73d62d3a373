"""`serve` as a process against `device-sim` on a pty, driven only through the control API."""

from __future__ import annotations

import itertools
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from console.api import CALLER_NOT_ALLOWED
from console.client import ConnectError
from console.procedure import FREEZES
from tests.console.procs import Sim, run
from tests.console.served import CHECKLIST, Served, drive_to_freeze, start_serve


class Subscriber(threading.Thread):
    """Reads every event as fast as it comes, until session_finished."""

    def __init__(self, served: Served) -> None:
        super().__init__(daemon=True)
        self.client = served.client(timeout_s=120)
        self.client.subscribe()
        self.received: list[dict[str, Any]] = []

    def run(self) -> None:
        try:
            for event in self.client.events():
                self.received.append(event)
                if event["event"] == "session_finished":
                    return
        except ConnectError:
            return


def test_whole_procedures_through_the_api_with_a_subscriber(served: Served, sim: Sim) -> None:
    """A whole procedure, then a second one in the same device session, only through the API;
    a subscriber receives every event of the record from its subscription on; SIGTERM while
    idle and unlocked: exit 0 (SR-01, SR-29)."""
    subscriber = Subscriber(served)
    subscriber.start()
    drive_to_freeze(served, freeze_s=5.0)
    # Locked from the reported supply open, a few ms after the state changed (SR-12).
    running = served.wait(lambda s: s["state"] == "freeze_1" and s["locked"], timeout_s=30)
    assert running["withdraw_safe"] is False and running["countdown_s"] is not None
    assert served.wait_state("complete", timeout_s=90)["withdraw_safe"] is True
    assert served.call("request_withdraw")["state"] == "ready"
    # The second lesion site: no leak test this time (once per device session, SR-24).
    with served.client() as c:
        assert c.call("arm", {"checklist": CHECKLIST, "cycles": 1})["state"] == "armed"
        assert c.call("abort")["state"] == "aborted"
        assert c.call("request_withdraw")["state"] == "ready"
        assert c.status()["procedures"] == 2
    assert served.stop() == 0
    subscriber.join(timeout=10)
    got = subscriber.received
    assert got[-1]["event"] == "session_finished" and got[-1]["outcome"] == "completed"
    stored = served.stored()
    first = got[0]["seq"]
    # Every event of the record from the subscription on, in order (a fast reader loses
    # nothing, telemetry included).
    assert [e["seq"] for e in got] == [e["seq"] for e in stored if e["seq"] >= first]
    assert [e["event"] for e in got] == [e["event"] for e in stored if e["seq"] >= first]
    finished = [e for e in stored if e["event"] == "procedure_finished"]
    assert [(e["outcome"]) for e in finished] == ["completed", "aborted"]
    # Every state-changing request is recorded with its caller (SR-29).
    requests = [e for e in stored if e["event"] == "api_request"]
    assert {r["method"] for r in requests} >= {"arm", "start_freeze", "abort", "request_withdraw"}
    assert all(r["uid"] == os.getuid() and r["pid"] > 0 for r in requests)
    summary = [e for e in stored if e["event"] == "api_summary"]
    assert summary and summary[0]["status_polls"] > 0 and summary[0]["procedures"] == 2
    status = sim.status()
    assert status["valves"]["supply"]["open"] is False  # type: ignore[index]


def test_a_client_killed_mid_freeze_changes_nothing(served: Served) -> None:
    """The process driving the procedure is killed in the freeze: the procedure carries on by
    its own rules (the freeze ends, the thaw, the release), nothing hangs, other clients are
    served."""
    script = (
        "import signal, sys, time\n"
        "from console.client import Client\n"
        "from tests.console.served import CHECKLIST\n"
        "c = Client(sys.argv[1])\n"
        "c.call('arm', {'checklist': CHECKLIST, 'cycles': 1, 'freeze_s': 6.0, 'thaw_s': 5.0})\n"
        "while c.status()['state'] != 'armed': time.sleep(0.1)\n"
        "c.call('stim_configure', {'preset': 'motor'})\n"
        "c.call('stim_start'); c.call('confirm_localization'); c.call('start_freeze')\n"
        "c.subscribe()\n"
        "print('FREEZING', flush=True)\n"
        "signal.pause()  # until killed\n"
    )
    driver = subprocess.Popen(
        [sys.executable, "-c", script, str(served.socket)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).parents[2],
    )
    try:
        assert driver.stdout is not None
        assert driver.stdout.readline().strip() == "FREEZING"
        served.wait_state("freeze_1", timeout_s=30)
        driver.send_signal(signal.SIGKILL)
        driver.wait(timeout=5)
    finally:
        if driver.poll() is None:
            driver.kill()
    # The freeze ends by its own clock, the final thaw follows, locked (SR-12).
    thawing = served.wait_state("thaw_1", "withdraw_locked", "complete", timeout_s=30)
    assert thawing["alarms"] == [] and thawing["link"]["lost"] is False
    assert thawing["locked"] is True
    assert served.stop() == 5  # SR-01: the safe state verified; the probe still locked
    closed = [e for e in served.stored() if e["event"] == "api_client_closed"]
    assert any(e["reason"] in ("disconnected", "reset") for e in closed)


def test_sigterm_mid_freeze_ends_in_the_safe_state(served: Served, sim: Sim) -> None:
    """SR-01: SIGTERM on serve in a freeze: the safe state (the device's STATUS confirms it),
    outcome aborted with reason signal:SIGTERM, exit 5 with the probe locked."""
    drive_to_freeze(served, freeze_s=60.0)
    served.wait_state("freeze_1", timeout_s=30)
    deadline = time.monotonic() + 10
    while not sim.status()["valves"]["supply"]["open"]:  # type: ignore[index]
        assert time.monotonic() < deadline, "the supply never opened"
        time.sleep(0.05)
    assert served.stop() == 5
    status = sim.status()
    valves = status["valves"]
    assert valves["supply"]["open"] is False and valves["vent"]["open"] is True  # type: ignore[index]
    assert status["stim"]["on"] is False  # type: ignore[index]
    finished = [e for e in served.events() if e["event"] == "session_finished"]
    assert finished[0]["outcome"] == "aborted" and finished[0]["reason"] == "signal:SIGTERM"
    assert not served.socket.exists()


def _bad_requests() -> list[tuple[bytes, int]]:
    def req(method: str, params: Any = None, **extra: Any) -> bytes:
        body: dict[str, Any] = {"jsonrpc": "2.0", "id": 7, "method": method, **extra}
        if params is not None:
            body["params"] = params
        return json.dumps(body).encode()

    return [
        (b"{not json", -32700),
        (
            b'{"jsonrpc": "2.0", "id": 1, "method": "silence_alarms", '
            b'"params": {"duration_s": NaN}}',
            -32700,
        ),
        (
            b'{"jsonrpc": "2.0", "id": 1, "method": "silence_alarms", '
            b'"params": {"duration_s": Infinity}}',
            -32700,
        ),
        (b"\xff\xfe", -32700),
        (b'[{"jsonrpc": "2.0", "id": 1, "method": "status"}]', -32600),
        (b'{"jsonrpc": "2.0", "method": "estop"}', -32600),  # no id: not executed
        (b'{"jsonrpc": "2.0", "id": null, "method": "estop"}', -32600),
        (b'{"jsonrpc": "1.0", "id": 1, "method": "estop"}', -32600),
        (b'{"jsonrpc": "2.0", "id": 1, "method": "estop", "extra": 1}', -32600),
        (b'{"jsonrpc": "2.0", "id": 1, "method": "estop", "params": [1]}', -32600),
        (b'"estop"', -32600),
        (req("launch"), -32601),
        (req("silence_alarms", {"duration_s": "30"}), -32602),  # a string for a number
        (req("silence_alarms", {"duration_s": 121}), -32602),  # out of range (SR-21)
        (req("silence_alarms", {"duration_s": 30, "all": True}), -32602),  # extra field
        (req("arm", {"checklist": {**CHECKLIST, "raynaud": "no"}}), -32602),
        (req("arm", {"checklist": CHECKLIST, "cycles": 2.0}), -32602),  # float for an int
        (req("arm", {"checklist": CHECKLIST, "cycles": True}), -32602),
        (req("stim_configure", {"current_ma": 9.0, "pulse_us": 100, "rate_hz": 2}), -32602),
        (req("ack_alarm", {}), -32602),
        (req("estop", {"now": True}), -32602),
        (req("status", {"verbose": True}), -32602),
        (req("start_freeze"), -32002),  # not allowed in ready
        (req("abort"), -32002),
        (req("confirm_localization"), -32002),
        (req("stim_start"), -32002),
        (req("arm", {"checklist": {**CHECKLIST, "raynaud": True}}), -32001),  # SR-19
        (req("ack_alarm", {"alarm": "ALM_NO_FLOW"}), -32002),  # not active: nothing to ack
    ]


def test_bad_requests_get_their_error_and_change_nothing(served: Served, sim: Sim) -> None:
    """SR-30, SR-23: every bad request answered with its JSON-RPC error; the state, the
    valves and the connection stay as they were; each is recorded with its caller (SR-29)."""
    before = served.status()
    cases = _bad_requests()
    with served.client() as c, served.client() as other:  # two clients at once
        for line, code in cases:
            c.send_line(line)
            answer = c.read_message()
            assert answer["error"]["code"] == code, (line, answer)
            assert "result" not in answer
            if code == -32602 and b"NaN" not in line:
                assert set(answer["error"]["data"]) >= {"field", "value", "allowed"}
            if code == -32002:
                assert answer["error"]["data"]["state"] == "ready"
            if code == -32001:
                assert answer["error"]["data"]["sr"]
            assert other.status()["state"] == "ready"  # the other client is served meanwhile
        assert c.status()["state"] == "ready"  # the connection survived every error
    after = served.status()
    assert after["state"] == before["state"] == "ready"
    assert after["alarms"] == [] and after["procedures"] == 0
    assert sim.status()["valves"]["vent"]["open"] is True  # type: ignore[index]
    assert served.stop() == 0
    stored = served.stored()
    refused = [e for e in stored if e["event"] == "api_request" and not e["accepted"]]
    assert len(refused) == len(cases)
    assert {e["code"] for e in refused} == {code for _, code in cases}
    assert not [e for e in stored if e["event"] == "operator_action" and e["accepted"]]
    assert not [e for e in stored if e["event"] == "procedure_started"]


def test_a_line_over_64_kib_is_refused_and_closes_the_connection(served: Served) -> None:
    with served.client() as c:
        c.send_line(b'{"jsonrpc": "2.0", "id": 1, "method": "status", "x": "' + b"a" * 70000)
        assert c.read_message()["error"]["code"] == -32600
        with pytest.raises(ConnectError):
            c.read_message()
    assert served.status()["state"] == "ready"


def test_a_slow_subscriber_is_dropped_and_never_delays_the_loop(served: Served) -> None:
    """A subscriber that never reads: its queue fills (telemetry dropped first), it is
    disconnected; meanwhile the control loop keeps its pace (telemetry recorded every
    100 ms, no link loss) and other clients are answered."""
    slow = served.client()
    slow.subscribe()  # and never reads again
    t0 = time.monotonic()
    with served.client() as busy:
        # Refused actions make events (operator_action, api_request) quickly.
        for _ in range(30):
            for _ in range(100):
                busy.send_line(b'{"jsonrpc":"2.0","id":1,"method":"start_freeze"}')
            for _ in range(100):
                assert busy.read_message()["error"]["code"] == -32002
            if any(
                e["event"] == "api_client_closed" and e["reason"] == "too_slow"
                for e in served.events()
            ):
                break
        else:
            pytest.fail("the slow subscriber was never disconnected")
        assert busy.status()["link"]["lost"] is False
    elapsed = time.monotonic() - t0
    slow.close()
    assert served.stop() == 0
    stored = served.stored()
    closed = [e for e in stored if e["event"] == "api_client_closed" and e["reason"] == "too_slow"]
    assert len(closed) == 1
    assert not [e for e in stored if e["event"] in ("link_lost", "alarm_raised")]
    telemetry = [e["t_s"] for e in stored if e["event"] == "telemetry"]
    window = [t for t in telemetry if t >= telemetry[-1] - elapsed - 1.0]
    gaps = [b - a for a, b in itertools.pairwise(window)]
    assert max(gaps) < 0.35, max(gaps)  # 10 Hz telemetry events, the loop never stalled


@pytest.mark.skipif(
    not (os.getuid() == 0 and shutil.which("setpriv") and Path("/usr/bin/python3").exists()),
    reason="needs root, setpriv and /usr/bin/python3 to connect as another uid",
)
def test_a_caller_not_on_the_allow_list_is_refused_by_its_peer_credentials(
    sim: Sim, env: dict[str, str], tmp_path: Path
) -> None:
    """SR-29: uid 65534 reaches the socket (the file system lets it), but the kernel's peer
    credentials (SO_PEERCRED) are not on the allow-list: -32003, the connection closes,
    nothing is executed, the refusal is recorded. The socket is 0660 and no TCP listens."""
    run_dir = Path(tempfile.mkdtemp(prefix="probe-console-api-", dir="/tmp"))
    try:
        os.chmod(run_dir, 0o711)
        socket_path = run_dir / "api.sock"
        served = start_serve(sim, tmp_path, env, socket=socket_path)
        try:
            assert (socket_path.stat().st_mode & 0o777) == 0o660
            os.chown(socket_path, -1, 65534)  # the group lets uid 65534 connect at all
            client = (
                "import json, socket, sys\n"
                "s = socket.socket(socket.AF_UNIX)\n"
                "s.connect(sys.argv[1])\n"
                "try:\n"
                '    s.sendall(b\'{"jsonrpc":"2.0","id":1,"method":"estop"}\\n\')\n'
                "except BrokenPipeError:\n"
                "    pass  # refused before the request went out; the answer waits\n"
                "data = b''\n"
                "while True:\n"
                "    chunk = s.recv(4096)\n"
                "    if not chunk: break\n"
                "    data += chunk\n"
                "print(data.decode().strip())\n"
            )
            done = subprocess.run(
                [
                    "setpriv",
                    "--reuid",
                    "65534",
                    "--regid",
                    "65534",
                    "--clear-groups",
                    "/usr/bin/python3",
                    "-c",
                    client,
                    str(socket_path),
                ],
                capture_output=True,
                text=True,
                timeout=20,
                check=False,
                cwd="/",
            )
            assert done.returncode == 0, done.stderr
            lines = done.stdout.splitlines()
            assert len(lines) == 1  # the refusal, then the end of the connection
            answer = json.loads(lines[0])
            assert answer["error"]["code"] == CALLER_NOT_ALLOWED and answer["id"] is None
            status = served.status()
            assert status["state"] == "ready" and status["alarms"] == []  # no estop
            assert served.stop() == 0
            stored = served.stored()
            refused = [e for e in stored if e["event"] == "api_client_refused"]
            assert [(e["uid"], e["reason"]) for e in refused] == [(65534, "uid")]
            assert not [e for e in stored if e["event"] == "operator_action"]
        finally:
            if served.proc.poll() is None:
                served.proc.kill()
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)


def test_serve_listens_on_no_tcp_port(served: Served) -> None:
    """SR-29: no TCP at all: none of serve's file descriptors is a TCP socket."""
    inodes = set()
    for fd in Path(f"/proc/{served.proc.pid}/fd").iterdir():
        target = os.readlink(fd)
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    tcp = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            tcp.add(line.split()[9])
    assert inodes and not inodes & tcp
    assert served.stop() == 0


def test_serve_exit_codes(sim: Sim, env: dict[str, str], tmp_path: Path) -> None:
    """Another instance owns the port: 4; the socket taken: 2; a signal during a procedure with
    the probe unlocked: 1; no device: 3; a bad configuration: 2 (SR-01, SR-30)."""
    served = start_serve(sim, tmp_path, env)
    try:
        second = run(["serve", "--port", sim.url, "--socket", str(tmp_path / "other.sock")], env)
        assert second.returncode == 4, second.stderr
        assert "another" in second.stderr and "Traceback" not in second.stderr
        taken = run(["serve", "--port", "/dev/null", "--socket", str(served.socket)], env)
        assert taken.returncode == 2 and "listens" in taken.stderr
        # A procedure started, nothing opened yet: the signal ends it early, unlocked: 1.
        assert served.call("arm", {"checklist": CHECKLIST})["state"] == "leak_test"
    finally:
        assert served.stop() == 1
    finished = [e for e in served.events() if e["event"] == "procedure_finished"]
    assert [(e["outcome"], e["reason"]) for e in finished] == [("aborted", "signal:SIGTERM")]
    none = run(
        ["serve", "--port", str(tmp_path / "no-such-tty"), "--socket", str(tmp_path / "s.sock")],
        env,
    )
    assert none.returncode == 3 and "Traceback" not in none.stderr
    config = tmp_path / "bad.toml"
    config.write_text("[api]\nallowed_uids = [nan]\n")
    bad = run(["serve", "--port", sim.url, "--config", str(config)], env)
    assert bad.returncode == 2 and "api.allowed_uids" in bad.stderr


def test_a_link_loss_mid_freeze_is_never_resumed(served: Served, sim: Sim) -> None:
    """SR-01, SR-03, SR-18: the link drops in a freeze (both ways, 1 s): the procedure takes its
    fault path; the device comes back through a new handshake only (re-identified, the safe
    state verified) and the freeze is never resumed; the daemon serves on."""
    drive_to_freeze(served, freeze_s=60.0)
    served.wait(lambda s: s["state"] == "freeze_1" and s["locked"], timeout_s=30)
    assert sim.ask("link_drop:duration_s=1").startswith("OK")
    faulted = served.wait_state("fault", timeout_s=10)
    assert any(a["alarm"] == "ALM_LINK_LOST" for a in faulted["alarms"])
    back = served.wait(lambda s: s["link"]["state"] == "open" and not s["link"]["lost"], 15)
    assert back["state"] == "fault" and back["locked"] is True  # never back to a freeze
    valves = sim.status()["valves"]
    assert valves["supply"]["open"] is False  # type: ignore[index]
    assert served.stop() == 5  # still locked: the thaw decides, not the signal
    events = served.events()
    lost = next(e for e in events if e["event"] == "link_lost")
    after = [e for e in events if e["seq"] > lost["seq"]]
    # Back through the connection only: the link restored (or a new handshake), the safe
    # state commanded on the loss and verified; no freeze after it.
    assert {"link_restored", "device_identified"} & {e["event"] for e in after}
    assert any(e["event"] == "safe_state_commanded" for e in after)
    assert not [e for e in after if e["event"] == "state_changed" and e["to"] in FREEZES]
    assert not [
        e for e in after if e["event"] == "valve_commanded" and e["open"] and e["valve"] == "supply"
    ]


def test_a_signal_before_the_device_answers_is_an_idle_stop(
    env: dict[str, str], tmp_path: Path
) -> None:
    """SR-01 / interfaces.md: SIGTERM while serve still waits for a device that never answers
    (a pty nobody serves): nothing started, idle and unlocked, exit 0, the reason recorded."""
    import sqlite3
    from contextlib import closing

    from tests.console.procs import CONSOLE

    master, slave = os.openpty()
    try:
        proc = subprocess.Popen(
            [*CONSOLE, "serve", "--port", os.ttyname(slave), "--timeout-s", "60"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        ready, _, _ = select.select([master], [], [], 20)  # the hello: serve is waiting
        assert ready and os.read(master, 4096)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
    finally:
        os.close(master)
        os.close(slave)
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    with closing(sqlite3.connect(env["PROBE_CONSOLE_DB"])) as db:
        row = db.execute("SELECT outcome, reason, exit_code FROM sessions").fetchone()
    assert row == ("completed", "signal:SIGTERM", 0)

"""docs/protocol.md is normative: its examples and tables must match the code."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import protocols
from protocols import decode_frame, encode
from protocols.framing import MAX_ENCODED
from protocols.frontend import DEFAULT_THERMISTOR, EXHAUST_CHANNEL, SUPPLY_CHANNEL
from protocols.messages import LAYOUTS, MsgType

DOC = (Path(__file__).resolve().parents[2] / "docs" / "protocol.md").read_text()
EXAMPLES = re.findall(r"^example: (encode\(.*\))\nhex: ([0-9a-f ]+)$", DOC, re.M)


def test_the_doc_has_an_example_for_the_main_messages() -> None:
    names = {re.match(r"encode\((\w+)\(", expr).group(1) for expr, _ in EXAMPLES}  # type: ignore[union-attr]
    assert {"Hello", "Identity", "Telemetry", "ValveCommand", "Ack", "Nack"} <= names


@pytest.mark.parametrize(("expr", "hexbytes"), EXAMPLES, ids=[e[:40] for e, _ in EXAMPLES])
def test_every_example_frame_is_exact(expr: str, hexbytes: str) -> None:
    namespace = {name: getattr(protocols, name) for name in protocols.__all__}
    wire = eval(expr, namespace)  # our own document, not input from outside
    assert wire == bytes.fromhex(hexbytes)
    frame = decode_frame(bytes.fromhex(hexbytes))
    assert encode(frame.message, frame.seq, frame.nonce) == wire


def test_the_telemetry_example_reads_as_the_doc_says() -> None:
    expr = next(e for e, _ in EXAMPLES if "Telemetry(" in e)
    t = decode_frame(eval(expr, {n: getattr(protocols, n) for n in protocols.__all__})).message
    assert SUPPLY_CHANNEL.counts_to_psig(t.supply_counts) == pytest.approx(700.0, abs=0.03)  # type: ignore[union-attr]
    assert EXHAUST_CHANNEL.counts_to_psig(t.exhaust_counts) == pytest.approx(12.5, abs=0.003)  # type: ignore[union-attr]
    assert DEFAULT_THERMISTOR.counts_to_c(t.tip_counts) == pytest.approx(-78.0, abs=0.02)  # type: ignore[union-attr]


def test_the_message_type_table_matches_the_code() -> None:
    rows = dict(re.findall(r"^\| (0x[0-9a-f]{2}) \| `(\w+)` \|", DOC, re.M))
    assert {int(k, 16): v for k, v in rows.items()} == {t.value: t.name for t in MsgType}


@pytest.mark.parametrize(("name", "size"), [(t.name, LAYOUTS[t].struct.size) for t in MsgType])
def test_payload_sizes_in_headings_match_the_layouts(name: str, size: int) -> None:
    heading = re.search(rf"^### 6\.\d+ .*`{name}`.*\((\d+) bytes\)$", DOC, re.M)
    if size == 0:
        assert f"`{name}`" in DOC.split("### 6.7 Empty payloads")[1].split("###")[0]
    else:
        assert heading is not None, name
        assert int(heading.group(1)) == size


def test_thermistor_table_matches_the_front_end() -> None:
    rows = re.findall(r"^\| ([-+]?[\d.]+) \| [\d.]+ [kM] \| (\d+) \| [\d.]+ \|$", DOC, re.M)
    assert len(rows) >= 7
    for tip_c, counts in rows:
        assert DEFAULT_THERMISTOR.c_to_counts(float(tip_c)) == int(counts)


def test_stated_sizes() -> None:
    assert f"`MAX_ENCODED` = {MAX_ENCODED} bytes" in DOC

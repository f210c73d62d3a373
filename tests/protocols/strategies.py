"""Hypothesis strategies for every protocol message, derived from the payload layouts."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from protocols.messages import LAYOUTS, TEXT_FIELD_LEN, Message

_TEXT = st.text(alphabet=st.characters(min_codepoint=1, max_codepoint=127), max_size=TEXT_FIELD_LEN)
_RANGES = {"B": 0xFF, "H": 0xFFFF, "I": 0xFFFFFFFF}


def _field(code: str) -> st.SearchStrategy[Any]:
    if code == "?":
        return st.booleans()
    if code == "16s":
        return _TEXT
    return st.integers(0, _RANGES[code])


def _codes(fmt: str) -> list[str]:
    """Split a struct format like '<BBHII16s16s' into per-field codes."""
    codes, count = [], ""
    for ch in fmt.lstrip("<"):
        if ch.isdigit():
            count += ch
        else:
            codes.append(count + ch if ch == "s" else ch)
            if ch != "s" and count:
                codes.extend([ch] * (int(count) - 1))
            count = ""
    return codes


def message_of(msg_type: int) -> st.SearchStrategy[Message]:
    layout = LAYOUTS[msg_type]
    fields = [_field(code) for code in _codes(layout.struct.format)]
    return st.tuples(*fields).map(lambda values: layout.cls(*values))


messages: st.SearchStrategy[Message] = st.sampled_from(sorted(LAYOUTS)).flatmap(message_of)
seqs = st.integers(0, 0xFFFFFFFF)
nonces = st.integers(0, 0xFFFFFFFF)

"""Fuzzing the trace reader (issue 12) with structured hostile input: valid and
broken headers, update lines whose fields are random JSON values of the wrong
types, huge numbers, deep nesting, NUL bytes, invalid UTF-8, truncated and
spliced lines, CR LF endings. Whatever the file holds, reading it either
succeeds or raises ``TraceError`` naming a line of the file — never any other
exception.

The default run is short (a few seconds). For a long run:
``BUFFERSCOPE_FUZZ_EXAMPLES=200000 pytest tests/test_trace_fuzz.py``.
"""

from __future__ import annotations

import base64
import json
import os
import re
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.trace import TraceError, read_trace

EXAMPLES = int(os.environ.get("BUFFERSCOPE_FUZZ_EXAMPLES", "120"))
# A long run (the env var set) may take longer than the suite's per-test timeout.
pytestmark = pytest.mark.timeout(0 if "BUFFERSCOPE_FUZZ_EXAMPLES" in os.environ else 120)
FUZZ = settings(max_examples=EXAMPLES, deadline=None,
                derandomize="BUFFERSCOPE_FUZZ_EXAMPLES" not in os.environ,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                       HealthCheck.data_too_large])

HUGE_INTS = st.sampled_from([2**63, -(2**63) - 1, 2**64, 10**400, -(10**400)])
# Longer integers than Python converts by default (4300 digits) are written as raw text.
LONG_INT = b"9" * 5000
ODD_FLOATS = st.floats(allow_nan=True, allow_infinity=True) | st.sampled_from([1e308, -1e-320, 5e-324])
ODD_TEXT = st.text(max_size=6) | st.sampled_from(
    ["nan", "inf", "-inf", "NaN", "\x00", "\ud800", "1.5", "", "sync"])
SCALARS = st.none() | st.booleans() | st.integers(-20, 20) | HUGE_INTS | ODD_FLOATS | ODD_TEXT
JSON_VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(ODD_TEXT, inner, max_size=3),
    max_leaves=6,
)
INDEX = st.lists(st.integers(-2, 9) | HUGE_INTS, min_size=0, max_size=4) | JSON_VALUES
PAIR = st.lists(st.integers(-2, 9) | HUGE_INTS, min_size=2, max_size=2)
REGION = st.lists(PAIR, min_size=0, max_size=4) | JSON_VALUES
VALUE = (st.integers(-5, 5) | ODD_FLOATS | st.sampled_from(["nan", "inf", "-inf", "lots"]) | HUGE_INTS
         | JSON_VALUES)
DATA = st.lists(st.lists(st.floats(allow_nan=False) | st.sampled_from(["nan", "inf"]), max_size=5),
                max_size=6) | JSON_VALUES
OPS = st.sampled_from(["set", "fill", "add", "scale", "write", "sync", "set_many", "bogus", ""]) | JSON_VALUES
# set_many arrays: base64 of a few int64 offsets / float32 values, valid or not.
B64 = (st.lists(st.integers(-2, 40), max_size=4).map(lambda a: base64.b64encode(
    b"".join(int(x).to_bytes(8, "little", signed=True) for x in a)).decode())
    | st.lists(ODD_FLOATS, max_size=4).map(lambda a: base64.b64encode(
        b"".join(struct.pack("<f", x) if abs(x) < 3e38 or x != x else b"\0\0\x80\x7f" for x in a)).decode())
    | st.sampled_from(["", "====", "AAAA!", "AAAAAAA", "\u00e9AAA"]) | JSON_VALUES)
UPDATE = st.fixed_dictionaries(
    {"op": OPS},
    optional={"index": INDEX, "region": REGION, "value": VALUE, "data": DATA,
              "seq": st.integers(-1, 2**65) | JSON_VALUES, "producer": ODD_TEXT | JSON_VALUES,
              "t": ODD_FLOATS | JSON_VALUES, "extra": JSON_VALUES,
              "n": st.integers(-1, 5) | JSON_VALUES, "flat": B64, "values": B64},
)
GOOD_HEADER = {"format": "bufferscope-trace", "version": 1, "shape": [6, 5], "dtype": "float32",
               "fill": 0.0}
HEADER = st.just(GOOD_HEADER) | st.fixed_dictionaries(
    {"format": st.just("bufferscope-trace") | ODD_TEXT, "version": st.just(1) | JSON_VALUES},
    optional={"shape": st.lists(st.integers(-1, 7) | HUGE_INTS, max_size=4) | JSON_VALUES,
              "dtype": st.just("float32") | JSON_VALUES, "fill": VALUE},
)


def _dump(obj: object) -> bytes:
    # allow_nan: NaN/Infinity literals are hostile input too; surrogates escape as \\ud800.
    return json.dumps(obj, allow_nan=True).encode()


def _hostile(line: bytes, how: int, where: int, junk: bytes) -> bytes:
    """One of several ways of breaking a line."""
    cut = where % (len(line) + 1)
    if how == 0:
        return line[:cut]                          # truncated
    if how == 1:
        return line[:cut] + junk + line[cut:]      # bytes spliced in (NUL, bad UTF-8, ...)
    if how == 2:
        return line + b"\r"                        # CR LF ending
    if how == 3:
        depth = 1 + where % 5000
        return b'{"op": "write", "region": [[0, 1], [0, 1]], "data": ' + b"[" * depth + b"]" * depth + b"}"
    if how == 4:
        return b'{"op": "set", "index": [' + LONG_INT + b', 0], "value": ' + LONG_INT + b"}"
    return line


JUNK = st.sampled_from([b"\x00", b"\xff", b"\xc3", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\n", b"\r",
                        b"{", b"]", b'"', b"\\", b"\xef\xbb\xbf", b"\t", b"NaN", b"1e999", LONG_INT,
                        b"-" + LONG_INT]) | st.binary(max_size=4)
LINE = st.one_of(
    UPDATE.map(_dump),
    JSON_VALUES.map(_dump),
    st.builds(_hostile, UPDATE.map(_dump), st.integers(0, 5), st.integers(0, 10**6), JUNK),
    st.binary(max_size=40),
)


def check_read(tmp_path, content: bytes) -> None:
    path = tmp_path / "fuzz.jsonl"
    path.write_bytes(content)
    n_lines = content.count(b"\n") + 1
    try:
        trace = read_trace(path)
    except TraceError as exc:
        m = re.search(r" line (\d+): ", str(exc))
        assert m, f"no line named in {exc!r}"
        assert 1 <= int(m.group(1)) <= n_lines, f"line {m.group(1)} of {n_lines}: {exc}"
        assert "\n" not in str(exc), "the message is not one line"
    else:
        assert len({r.line for r in trace.records}) <= n_lines


@FUZZ
@given(lines=st.lists(LINE, max_size=4))
def test_after_a_good_header_anything_is_read_or_refused_naming_a_line(tmp_path, lines):
    check_read(tmp_path, b"\n".join([_dump(GOOD_HEADER), *lines]) + b"\n")


@FUZZ
@given(header=st.one_of(HEADER.map(_dump), st.binary(max_size=40)), lines=st.lists(LINE, max_size=3),
       tail=st.sampled_from([b"\n", b"", b"\r\n", b"\n\n"]))
def test_any_header_is_read_or_refused_naming_a_line(tmp_path, header, lines, tail):
    check_read(tmp_path, b"\n".join([header, *lines]) + tail)


@FUZZ
@given(updates=st.lists(UPDATE, min_size=1, max_size=4), cut=st.integers(0, 10**6))
def test_a_trace_truncated_anywhere_is_read_or_refused(tmp_path, updates, cut):
    content = b"\n".join([_dump(GOOD_HEADER), *map(_dump, updates)]) + b"\n"
    check_read(tmp_path, content[: cut % (len(content) + 1)])

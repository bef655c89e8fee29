"""Trace files (SPEC §5) and ``bufferscope replay`` (§6): round trips, the
reference equality of replays on every backend, and malformed traces refused
with the line named, exit status 2 and nothing written."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app import Add, Fill, Scale, Set, Write
from app.cli import main as cli_main
from app.reference import ReferenceModel, same_bits
from app.trace import SyncMarker, TraceError, TraceWriter, read_trace

HEADER = {"format": "bufferscope-trace", "version": 1, "shape": [6, 5], "dtype": "float32", "fill": 0.5}


def write_lines(path, objs, raw=None):
    lines = [json.dumps(o) for o in objs]
    if raw is not None:
        lines.append(raw)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def sample_updates():
    rng = np.random.default_rng(3)
    return [
        Fill(((0, 3), (0, 5)), 1.0),
        Set((5, 4), float("nan")),
        Add(((1, 6), (2, 5)), -0.25),
        SyncMarker(),
        Scale(((0, 6), (0, 2)), float("inf")),
        Write(((4, 6), (0, 5)), rng.standard_normal((2, 5)).astype(np.float32)),
        Set((0, 0), float("-inf")),
        Fill(((2, 2), (0, 5)), 9.0),  # empty region: a valid no-op
        SyncMarker(),
        Add(((0, 6), (0, 5)), 1e-3),
    ]


def reference_front(shape, fill, updates):
    ref = ReferenceModel(shape, fill)
    for u in updates:
        if isinstance(u, SyncMarker):
            ref.synchronize()
        else:
            ref.apply(u)
    ref.synchronize()
    return ref.front


def test_write_then_read_round_trip(tmp_path):
    path = tmp_path / "t.jsonl"
    ups = sample_updates()
    with TraceWriter(path, (6, 5), fill=0.5) as w:
        for k, u in enumerate(ups):
            w.add(u, seq=k + 1, producer="main")
    header = json.loads(path.read_text().splitlines()[0])
    assert header == {**HEADER, "features": ["set_many"]}
    assert '"nan"' in path.read_text() and '"-inf"' in path.read_text()
    trace = read_trace(path)
    assert trace.shape == (6, 5) and trace.fill == 0.5
    assert list(trace.updates()) == [u if isinstance(u, SyncMarker) else u for u in ups]
    assert trace.records[0].seq == 1 and trace.records[0].producer == "main"


def test_writer_leaves_nothing_on_failure(tmp_path):
    path = tmp_path / "t.jsonl"
    with pytest.raises(ValueError, match="out of bounds"):
        with TraceWriter(path, (2, 2)) as w:
            w.add(Set((0, 0), 1.0))
            w.add(Set((5, 0), 1.0))
    assert list(tmp_path.iterdir()) == []


def test_replay_matches_reference_on_every_backend(backend, tmp_path):
    path = tmp_path / "t.jsonl"
    ups = sample_updates()
    with TraceWriter(path, (6, 5), fill=0.5) as w:
        for u in ups:
            w.add(u)
    out = tmp_path / "front.npy"
    assert cli_main(["replay", str(path), "--backend", backend, "--out", str(out)]) == 0
    got = np.load(out)
    want = reference_front((6, 5), 0.5, ups)
    assert got.dtype == np.float32
    assert same_bits(got, want, flush_subnormals=backend == "gl")


MALFORMED = [
    ([{"format": "nope", "version": 1, "shape": [2, 2]}], None, 1, "format"),
    ([{"format": "bufferscope-trace", "version": 7, "shape": [2, 2]}], None, 1, "version"),
    ([{"format": "bufferscope-trace", "version": 1, "shape": [0, 2]}], None, 1, "shape"),
    ([{"format": "bufferscope-trace", "version": 1, "shape": [10**400]}], None, 1, "2\\*\\*63"),
    ([HEADER, {"op": "fill", "region": [[0, 1], [0, 1]], "value": 1}], "{not json", 3, "bad JSON"),
    ([HEADER, {"op": "frobnicate"}], None, 2, "unknown op 'frobnicate'"),
    ([HEADER, {"op": "set", "index": [0, 0], "value": 1}, {"op": "fill", "region": [[0, 9], [0, 1]],
                                                            "value": 1}], None, 3, "beyond the size"),
    ([HEADER, {"op": "add", "region": [[2, 1], [0, 1]], "value": 1}], None, 2, "start 2 > stop 1"),
    ([HEADER, {"op": "set", "index": [0, 0]}], None, 2, "needs the key 'value'"),
    ([HEADER, {"op": "set", "index": [0, 0], "value": "lots"}], None, 2, "value must be"),
    ([HEADER], '{"op": "fill", "region": [[0, 1], [0, 1]], "value": 1' + "0" * 400 + "}", 2,
     "too large for a float"),
    ([HEADER, {"op": "set", "index": [0, 0, 0], "value": 1}], None, 2, "3 dimensions"),
    ([HEADER, {"op": "write", "region": [[0, 1], [0, 2]], "data": [[1.0]]}], None, 2, "does not match"),
    ([], "", 1, "empty file"),
]


@pytest.mark.parametrize("objs,raw,line,words", MALFORMED, ids=[m[3] for m in MALFORMED])
def test_malformed_trace_is_refused(tmp_path, capsys, objs, raw, line, words):
    path = write_lines(tmp_path / "bad.jsonl", objs, raw)
    with pytest.raises(TraceError, match=f"line {line}: .*{words}"):
        read_trace(path)
    out = tmp_path / "front.npy"
    assert cli_main(["replay", str(path), "--backend", "c", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"line {line}" in err and "bufferscope: error:" in err
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.jsonl"], "partial output written"


def test_cli_replay_subprocess_exit_status(tmp_path):
    """The console entry point itself (python -m app) exits 2 on a bad trace."""
    path = write_lines(tmp_path / "bad.jsonl", [HEADER, {"op": "nope"}])
    r = subprocess.run([sys.executable, "-m", "app", "replay", str(path), "--backend", "c",
                        "--out", str(tmp_path / "o.npy")], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    assert "line 2" in r.stderr and "unknown op" in r.stderr
    assert not (tmp_path / "o.npy").exists()


def test_replay_of_a_missing_file(tmp_path, capsys):
    assert cli_main(["replay", str(tmp_path / "none.jsonl"), "--out", str(tmp_path / "o.npy")]) == 2
    assert "cannot open" in capsys.readouterr().err


def test_special_values_survive_the_format(tmp_path):
    path = tmp_path / "t.jsonl"
    with TraceWriter(path, (3,)) as w:
        w.add(Write(((0, 3),), np.array([math.nan, math.inf, -0.0])))
    (rec,) = read_trace(path).records
    data = rec.item.data
    assert math.isnan(data[0]) and data[1] == math.inf and math.copysign(1, data[2]) == -1


def test_replay_gives_the_same_npy_on_both_backends(tmp_path, qapp):
    """``bufferscope replay --backend gl`` and ``--backend c`` write the same front."""
    from conftest import require_backend

    require_backend("c")
    require_backend("gl")
    path = tmp_path / "t.jsonl"
    rng = np.random.default_rng(7)
    with TraceWriter(path, (32, 24), fill=-1.0) as w:
        for k in range(300):
            r0, c0 = int(rng.integers(0, 30)), int(rng.integers(0, 22))
            region = ((r0, r0 + 2), (c0, c0 + 2))
            w.add([Fill(region, float(k)), Add(region, 0.5), Scale(region, -2.0),
                   Set((r0, c0), float("nan") if k % 50 == 0 else k / 3),
                   Write(region, rng.standard_normal((2, 2)))][k % 5])
            if k % 37 == 0:
                w.sync()
    outs = {}
    for b in ("c", "gl"):
        outs[b] = tmp_path / f"{b}.npy"
        assert cli_main(["replay", str(path), "--backend", b, "--out", str(outs[b])]) == 0
    a, b = np.load(outs["c"]), np.load(outs["gl"])
    assert same_bits(a, b), "the backends disagree on the same trace"
    assert same_bits(a, reference_front((32, 24), -1.0, list(read_trace(path).updates())))


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=12,
)
op_objects = st.fixed_dictionaries(
    {"op": st.sampled_from(["set", "fill", "add", "scale", "write", "sync", "bogus"])},
    optional={"index": json_values, "region": json_values, "value": json_values,
              "data": json_values, "seq": json_values},
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lines=st.lists(st.one_of(op_objects.map(json.dumps), st.text(max_size=30)), max_size=5))
def test_fuzzed_traces_are_read_or_refused_with_a_line(tmp_path, lines):
    """Whatever follows a valid header, reading either succeeds or raises
    TraceError naming a line: never another exception."""
    path = tmp_path / "fuzz.jsonl"
    path.write_text("\n".join([json.dumps(HEADER), *lines]) + "\n", encoding="utf-8")
    try:
        trace = read_trace(path)
    except TraceError as exc:
        assert " line " in str(exc)
    else:
        assert trace.shape == (6, 5)


def test_deeply_nested_data_is_refused(tmp_path):
    deep = "[" * 100000 + "]" * 100000
    path = write_lines(tmp_path / "deep.jsonl", [HEADER],
                       '{"op": "write", "region": [[0, 1], [0, 1]], "data": ' + deep + "}")
    with pytest.raises(TraceError, match="line 2"):
        read_trace(path)


def test_replay_of_a_trace_too_large_for_memory(tmp_path, capsys):
    huge = {**HEADER, "shape": [1 << 20, 1 << 20, 1 << 10]}
    path = write_lines(tmp_path / "huge.jsonl", [huge, {"op": "sync"}])
    out = tmp_path / "o.npy"
    assert cli_main(["replay", str(path), "--backend", "c", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "line 1:" in err and "GiB" in err
    assert not out.exists()

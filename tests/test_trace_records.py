"""The compact and fast parts of the trace format: ``set_many`` records (written,
read, refused with the line named), ``set`` lines read a run at a time exactly as
the strict parser reads them, empty regions of every op, ``TraceReader.seek``, and
the player's index over traces of batches."""

from __future__ import annotations

import base64
import json
import math

import numpy as np
import pytest

from app.cli import main as cli_main
from app.keyframes import TraceIndex
from app.reference import ReferenceModel
from app.trace import (
    SyncMarker,
    TraceError,
    TraceWriter,
    open_trace,
    parse_line,
    read_trace,
)
from app.trace_codec import MAX_SET_MANY, SetMany, encode_set_many, fast_set
from app.trace_parse import decode_json, extras
from app.updates import Add, Fill, Scale, Set, Write

SHAPE = (4, 5)
HEADER = {"format": "bufferscope-trace", "version": 1, "shape": list(SHAPE), "dtype": "float32",
          "fill": 0.0}


def b64(a, dtype) -> str:
    return base64.b64encode(np.asarray(a, dtype=dtype).tobytes()).decode()


def good(**over) -> dict:
    obj = {"op": "set_many", "n": 3, "flat": b64([0, 7, 19], "<i8"),
           "values": b64([1.5, -2, np.nan], "<f4"), "seq": 4, "producer": "p", "t": 1.25}
    obj.update(over)
    return {k: v for k, v in obj.items() if v is not None}


def write(path, lines) -> str:
    path.write_text("\n".join(x if isinstance(x, str) else json.dumps(x) for x in lines) + "\n")
    return str(path)


def bits(a):
    return np.asarray(a, np.float32).view(np.uint32)


def test_a_set_many_line_reads_as_its_sets(tmp_path):
    p = write(tmp_path / "t.jsonl", [HEADER, {"op": "fill", "region": [[0, 1], [0, 5]], "value": 3},
                                     good(), {"op": "sync"}])
    recs = read_trace(p).records
    sets = [r for r in recs if isinstance(r.item, Set)]
    assert [r.item.index for r in sets] == [(0, 0), (1, 2), (3, 4)]
    assert [r.seq for r in sets] == [4, 5, 6] and {r.line for r in sets} == {3}
    assert sets[0].item.value == 1.5 and math.isnan(sets[2].item.value)
    assert {r.producer for r in sets} == {"p"} and {r.t for r in sets} == {1.25}
    with open_trace(p) as r:
        (batch,) = [x for x in r.batches() if isinstance(x.item, SetMany)]
    assert batch.seq == 4 and batch.item.count == 3 and batch.line == 3
    np.testing.assert_array_equal(batch.item.indices(SHAPE), [[0, 0], [1, 2], [3, 4]])


BAD = [
    (good(flat="AAAA!AAA" * 4), "not valid base64"),
    (good(flat=b64([0, 7], "<i8")), "n = 3 elements"),
    (good(values=b64([1, 2, 3, 4], "<f4")), "base64 characters"),
    (good(flat=b64([0, 7, 20], "<i8")), "element 2 has the flat index 20, outside"),
    (good(flat=b64([0, -1, 2], "<i8")), "element 1 has the flat index -1"),
    (good(n=0), "n must be an integer from 1"),
    (good(n=MAX_SET_MANY + 1), "n must be an integer from 1"),
    (good(n=3.0), "n must be an integer"),
    (good(n=True), "n must be an integer"),
    (good(n=None), "needs the key 'n'"),
    (good(values=None), "needs the key 'values'"),
    (good(flat=[0, 7, 19]), "must be a base64 string"),
    (good(index=[0, 0]), "unknown keys \\['index'\\]"),
    (good(seq=2**64 - 2), "beyond 2\\*\\*64-1"),
    (good(seq=-1), "seq must be"),
    (good(producer=7), "producer must be"),
    (good(flat=b64([0, 7, 19], "<i8")[:-4] + "AA=="), "decodes to 22 bytes, expected 24"),
]


@pytest.mark.parametrize("obj,words", BAD, ids=[w for _, w in BAD])
def test_a_bad_set_many_line_is_refused_naming_it(tmp_path, capsys, obj, words):
    p = write(tmp_path / "bad.jsonl", [HEADER, good(), {"op": "sync"}, obj, good()])
    with pytest.raises(TraceError, match=f"bad.jsonl line 4: .*{words}"):
        read_trace(p)
    with pytest.raises(TraceError, match="line 4"):
        TraceIndex.open(p)
    out = tmp_path / "front.npy"
    assert cli_main(["replay", p, "--backend", "c", "--out", str(out)]) == 2
    assert "line 4" in capsys.readouterr().err
    assert sorted(x.name for x in tmp_path.iterdir()) == ["bad.jsonl"], "no partial output"


def test_an_unknown_header_feature_is_refused(tmp_path):
    p = write(tmp_path / "t.jsonl", [{**HEADER, "features": ["set_many", "zstd"]}])
    with pytest.raises(TraceError, match="line 1: .*features this reader does not know: \\['zstd'\\]"):
        read_trace(p)
    p = write(tmp_path / "u.jsonl", [{**HEADER, "features": "set_many"}])
    with pytest.raises(TraceError, match="line 1: .*list of strings"):
        read_trace(p)


def test_writer_set_many_round_trips_and_splits_long_batches(tmp_path, monkeypatch):
    import app.trace_codec as codec

    monkeypatch.setattr(codec, "WRITE_CHUNK", 4)
    rng = np.random.default_rng(1)
    idx = np.stack([rng.integers(0, n, 10) for n in SHAPE], axis=1)
    vals = rng.standard_normal(10).astype(np.float32)
    p = tmp_path / "t.jsonl"
    with TraceWriter(p, SHAPE) as w:
        w.set_many(idx, vals, seq=100, producer="main", t=2.0)
        w.sync()
    lines = p.read_text().splitlines()
    assert [json.loads(x)["n"] for x in lines[1:-1]] == [4, 4, 2]
    recs = [r for r in read_trace(p).records if isinstance(r.item, Set)]
    assert [r.seq for r in recs] == list(range(100, 110))
    assert [r.item.index for r in recs] == [tuple(map(int, i)) for i in idx]
    assert bits([r.item.value for r in recs]).tolist() == bits(vals).tolist()
    with pytest.raises(ValueError, match="out of bounds"), TraceWriter(tmp_path / "x.jsonl", SHAPE) as w:
        w.set_many([[4, 0]], [1.0])
    assert not (tmp_path / "x.jsonl").exists()


EMPTY = [Fill(((0, 4), (2, 2)), 1.0), Add(((3, 3), (0, 5)), 2.0), Scale(((0, 0), (0, 0)), 3.0),
         Write(((1, 1), (0, 5)), np.zeros((0, 5), np.float32)),
         Write(((0, 4), (5, 5)), np.zeros((4, 0), np.float32)),
         Write(((2, 2), (3, 3)), np.zeros((0, 0), np.float32)), Set((3, 4), 9.0)]


@pytest.mark.parametrize("shape", [(5,), SHAPE, (2, 3, 4)])
def test_empty_regions_of_every_op_round_trip(tmp_path, shape):
    nd = len(shape)
    items = [Fill(((0, 0),) * nd, 1.0), Add(tuple((0, s) for s in shape[:-1]) + ((1, 1),), 2.0),
             Scale(((1, 1),) + tuple((0, s) for s in shape[1:]), 3.0)]
    for d in range(nd):
        box = tuple((0, s) if k != d else (1, 1) for k, s in enumerate(shape))
        items.append(Write(box, np.zeros(tuple(b - a for a, b in box), np.float32)))
    items.append(Set((0,) * nd, 5.0))
    p = tmp_path / "t.jsonl"
    with TraceWriter(p, shape) as w:
        for k, u in enumerate(items):
            w.add(u, seq=k + 1)
    got = [r.item for r in read_trace(p).records]
    assert got == items
    assert [u.data.shape for u in got if isinstance(u, Write)] == \
        [u.data.shape for u in items if isinstance(u, Write)]


def test_empty_write_data_must_still_be_empty(tmp_path):
    p = write(tmp_path / "t.jsonl", [HEADER, {"op": "write", "region": [[1, 1], [0, 5]],
                                              "data": [[1.0]]}])
    with pytest.raises(TraceError, match="line 2"):
        read_trace(p)


# -- set lines: the fast paths read exactly what the strict parser reads -------------------
def strict(text, shape=SHAPE):
    obj = decode_json(text)
    return parse_line(obj, shape), *extras(obj)


SET_LINES = [
    '{"op": "set", "index": [1, 2], "value": 1.5, "seq": 3, "producer": "main", "t": 0.25}',
    '{"op": "set", "index": [0, 0], "value": -0, "seq": 3, "producer": "main", "t": 0.25}',
    '{"op": "set", "index": [0, 0], "value": -0.0, "seq": 3, "producer": "main", "t": -0}',
    '{"op": "set", "index": [3, 4], "value": "-inf", "producer": "thread-2", "t": 1.5, '
    '"seq": 18446744073709551615}',
    '{"op": "set", "index": [3, 4], "value": 1e-320, "seq": 9}',
    '{"op": "set", "index": [3, 4], "value": 123456789012345678901234567890}',
    '{"op": "set", "index": [3, 4], "value": 3.4028235677973366e38, "producer": "é ☃"}',
    '{"op": "set", "index": [0, 1], "value": 2.5e+3, "t": 7}',
]
REFUSED_BY_FAST = [
    '{"op": "set", "index": [1, 2], "value": 1e400}',                 # beyond the float range
    '{"op": "set", "index": [4, 0], "value": 1}',                     # out of bounds
    '{"op": "set", "index": [1], "value": 1}',                        # wrong ndim
    '{"op": "set", "index": [01, 2], "value": 1}',                    # not JSON
    '{"op": "set", "index": [1, 2], "value": 1, "seq": 1, "seq": 2}',  # repeated key
    '{"op": "set", "index": [1, 2], "value": 1, "producer": "a\\"b"}',  # an escape
    '{"op": "set", "index": [1, 2], "value": 1, "t": "nan"}',
    '{"op": "set", "index": [1, 2], "value": 1, "seq": 18446744073709551616}',
]


@pytest.mark.parametrize("text", SET_LINES)
def test_fast_set_reads_what_the_strict_parser_reads(text):
    fast = fast_set(text, SHAPE)
    assert fast is not None
    want = strict(text)
    assert fast[0] == want[0] and fast[1:] == want[1:]
    assert math.copysign(1, fast[0].value) == math.copysign(1, want[0].value)
    if fast[3] is not None:
        assert math.copysign(1, fast[3]) == math.copysign(1, want[3])


@pytest.mark.parametrize("text", REFUSED_BY_FAST)
def test_fast_set_leaves_the_rest_to_the_strict_parser(text):
    assert fast_set(text, SHAPE) is None


def _set_lines(rng, n, layout):
    out = []
    specials = ['"nan"', '"inf"', '"-inf"', "-0.0", "-0", "0", "1e-45", "123", "3.5e+38"]
    for k in range(n):
        i, j = int(rng.integers(0, 4)), int(rng.integers(0, 5))
        v = specials[k // 3 % len(specials)] if k % 3 == 0 else repr(float(rng.standard_normal()))
        t = f"{k * 0.001:.6f}" if layout == "py" else f"{100 + k * 1e-9:.9f}"
        if layout == "py":
            out.append(f'{{"op": "set", "index": [{i}, {j}], "value": {v}, "seq": {k + 1}, '
                       f'"producer": "p{k % 3}", "t": {t}}}')
        else:
            out.append(f'{{"op": "set", "index": [{i}, {j}], "value": {v}, '
                       f'"producer": "thread-{k % 2}", "t": {t}, "seq": {k + 1}}}')
    return out


@pytest.mark.parametrize("layout", ["py", "c"])
def test_a_run_of_set_lines_reads_as_line_by_line(tmp_path, layout):
    lines = _set_lines(np.random.default_rng(5), 300, layout)
    lines.insert(150, '{"op": "sync"}')
    p = write(tmp_path / "t.jsonl", [HEADER, *lines])
    got = read_trace(p).records
    want = []
    for k, text in enumerate(lines):
        item, seq, producer, t = strict(text)
        want.append((k + 2, item, seq, producer, t))
    assert [(r.line, r.item, r.seq, r.producer, r.t) for r in got] == want
    assert [math.copysign(1, r.item.value) for r in got if isinstance(r.item, Set)] == \
        [math.copysign(1, w[1].value) for w in want if isinstance(w[1], Set)]
    with open_trace(p) as r:
        kinds = [type(x.item).__name__ for x in r.batches()]
    assert kinds == ["SetRun", "SyncMarker", "SetRun"], "read a run at a time"


def test_a_bad_line_inside_a_run_is_named(tmp_path):
    lines = _set_lines(np.random.default_rng(2), 50, "py")
    lines[30] = lines[30].replace('"index": [', '"index": [9')
    p = write(tmp_path / "t.jsonl", [HEADER, *lines])
    with pytest.raises(TraceError, match="line 32: index 9"):
        read_trace(p)
    with open_trace(p) as r, pytest.raises(TraceError, match="line 32: index 9"):
        list(r.batches())


def test_seek_reads_on_from_a_line(tmp_path):
    p = write(tmp_path / "t.jsonl", [HEADER, good(), {"op": "sync"},
                                     {"op": "set", "index": [1, 1], "value": 2, "seq": 9}])
    with open_trace(p) as r:
        recs = list(r.batches())
        assert isinstance(recs[1].item, SyncMarker)
    with open(p, "rb") as fh:
        offset = sum(len(fh.readline()) for _ in range(3))
    with open_trace(p) as r:
        r.seek(offset, 3)
        (rec,) = list(r)
    assert rec.line == 4 and rec.item == Set((1, 1), 2.0) and rec.seq == 9


# -- the player's index over batches --------------------------------------------------------
def _batch_trace(path, rng, epochs=6):
    """A trace of set_many lines, set runs and other ops; the reference fronts."""
    model = ReferenceModel(SHAPE)
    fronts = [model.front.copy()]
    seq = 1
    with TraceWriter(path, SHAPE) as w:
        for e in range(epochs):
            n = int(rng.integers(1, 40))
            flat = rng.integers(0, 20, n)
            vals = rng.standard_normal(n).astype(np.float32)
            w._fh.write(encode_set_many(flat, vals, seq=seq, producer="bulk", t=e * 1.0))
            model.set_many(np.stack(np.unravel_index(flat, SHAPE), axis=1), vals)
            seq += n
            for _ in range(int(rng.integers(0, 5))):
                u = Set((int(rng.integers(0, 4)), int(rng.integers(0, 5))), float(rng.standard_normal()))
                w.add(u, seq=seq, producer="one", t=e + 0.5)
                model.apply(u)
                seq += 1
            u = Add(((0, 2), (1, 4)), 0.5)
            w.add(u, seq=seq, producer="one")
            model.apply(u)
            seq += 1
            w.sync()
            model.synchronize()
            fronts.append(model.front.copy())
    return fronts, seq - 1


def test_the_player_index_over_batches_is_bit_exact(tmp_path):
    rng = np.random.default_rng(11)
    p = tmp_path / "t.jsonl"
    fronts, last = _batch_trace(p, rng)
    idx = TraceIndex.open(p, budget_bytes=3 * 4 * 20)   # few keyframes: replays from the file
    assert idx.n_epochs == 6 and idx.seq_kind == "trace" and (idx.first_seq, idx.last_seq) == (1, last)
    assert idx.n_updates == last
    for e in [6, 0, 3, 5, 1, 2, 4]:
        assert bits(idx.front_at(e)).tolist() == bits(fronts[e]).tolist(), e
    # Seq-precise inside a set_many line: replay the expanded updates up to that seq.
    recs = [r for r in read_trace(p).records if not isinstance(r.item, SyncMarker)]
    for target in rng.integers(1, last + 1, 12):
        model = ReferenceModel(SHAPE)
        for r in recs:
            if r.seq > target:
                break
            model.apply(r.item)
        st = idx.state_at_seq(int(target))
        assert st.applied_seq == target
        assert bits(st.back).tolist() == bits(model.back).tolist(), target
    # History: one row per update, a set_many line's elements included, as for set lines.
    rows = idx.history.rows
    assert len(rows) == last and idx.history_complete
    assert [(r.seq, r.op, r.producer, r.region, bits(r.value).tolist())
            for r in rows if r.op == "set"] == \
        [(r.seq, "set", r.producer, tuple((i, i + 1) for i in r.item.index),
          bits(r.item.value).tolist()) for r in recs if isinstance(r.item, Set)]
    again = idx.history_between(0, idx.n_epochs)
    assert [(r.seq, r.count, r.op, r.epoch_visible) for r in again.rows] == \
        [(r.seq, r.count, r.op, r.epoch_visible) for r in rows]


# -- the block reader: lines across block boundaries read as with one block ------------------
def _read_all(path, monkeypatch, block):
    import app.trace_lines as lines_mod

    monkeypatch.setattr(lines_mod, "READ_BLOCK", block)
    out = []
    try:
        with open_trace(path) as r:
            for rec in r:
                out.append((rec.line, repr(rec.item), rec.seq, r.bytes_read, r.lineno))
    except TraceError as exc:
        out.append(str(exc))
    return out


@pytest.mark.parametrize("block", [1, 7, 64, 4096])
@pytest.mark.parametrize("tail", [b"", b"\n", b"\r\n", b"\n\n  \n", b"\n\xff\n"])
def test_reading_in_small_blocks_gives_the_same_records(tmp_path, monkeypatch, block, tail):
    lines = [b"\xef\xbb\xbf" + json.dumps(HEADER).encode(), b"",
             b'{"op": "set", "index": [1, 2], "value": 1.5, "seq": 1, "producer": "\xc3\xa9", "t": 1}',
             b'{"op": "sync"}\r', b"   ", json.dumps(good()).encode(),
             b'{"op": "fill", "region": [[0, 1], [0, 5]], "value": "nan", "seq": 9}']
    path = tmp_path / "t.jsonl"
    path.write_bytes(b"\n".join(lines) + tail)
    want = _read_all(path, monkeypatch, 1 << 18)
    assert _read_all(path, monkeypatch, block) == want
    # bytes_read after a record other than a set (a set line is read with the line after
    # it, for runs) is where its line ends, with its newline: seek takes it there.
    with open(path, "rb") as fh:
        content = fh.read()
    for line, item, _, pos, _ in (w for w in want if isinstance(w, tuple)):
        if not item.startswith("Set("):
            unterminated = pos == len(content) and not content.endswith(b"\n")
            assert content[:pos].count(b"\n") + unterminated == line, item
            assert content[pos - 1:pos] == b"\n" or unterminated, item
    if tail == b"\n\xff\n":
        assert want[-1].endswith("line 8: not UTF-8 (invalid start byte at byte 1 of the line)")


def test_a_line_over_the_limit_is_named_across_blocks(tmp_path, monkeypatch):
    import app.trace_lines as lines_mod
    import app.trace_parse as parse_mod

    monkeypatch.setattr(parse_mod, "MAX_LINE_BYTES", 100)
    monkeypatch.setattr(lines_mod, "READ_BLOCK", 16)
    path = tmp_path / "t.jsonl"
    path.write_text(json.dumps({"format": "bufferscope-trace", "version": 1, "shape": [4]}) + "\n"
                    + '{"op": "sync"}\n' + '{"op": "sync"' + " " * 200 + "}\n")
    with pytest.raises(TraceError, match="line 3: longer than the limit"):
        read_trace(path)

"""How long the trace player takes to open and scrub a trace of 1 M updates (issue 9).

    .venv/bin/python benchmarks/trace_open.py [--updates 1000000] [--epochs 1000]
        [--shape 512x512] [--jumps 50] [--kind set,set_many] [--keep DIR]

Writes a trace of random element sets (``set``: one line per update, as a program
without ``set_many`` records; ``set_many``: one ``set_many`` line per batch of
4096, as capture writes them), with a sync every ``updates / epochs`` updates,
then measures what the player does: ``TraceIndex.open`` (read, replay on the
reference model, keyframes, history) and random epoch jumps (``front_at``),
checking a few jumps against a replay from scratch. A program, not a test.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from app.keyframes import TraceIndex  # noqa: E402
from app.reference import ReferenceModel  # noqa: E402
from app.trace import SyncMarker, TraceWriter, encode_value  # noqa: E402
from app.trace_codec import encode_set_many  # noqa: E402

BATCH = 4096


def write_trace(path: str, kind: str, shape, n: int, epochs: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    size = int(np.prod(shape))
    flat = rng.integers(0, size, n, dtype=np.int64)
    vals = rng.standard_normal(n).astype(np.float32)
    per_epoch = max(1, n // epochs)
    with TraceWriter(path, shape) as w:
        fh = w._fh   # bulk text: the writer's own file (atomic rename on close)
        seq = 1
        for a in range(0, n, per_epoch):
            b = min(n, a + per_epoch)
            t = 1.0 + a * 1e-6
            if kind == "set_many":
                for c in range(a, b, BATCH):
                    d = min(b, c + BATCH)
                    fh.write(encode_set_many(flat[c:d], vals[c:d], seq=seq + c, producer="main", t=t))
            else:
                cols = [x.tolist() for x in np.unravel_index(flat[a:b], shape)]
                vs = vals[a:b].astype(np.float64).tolist()
                fh.write("".join(
                    f'{{"op": "set", "index": [{", ".join(str(c[k]) for c in cols)}], '
                    f'"value": {encode_value(vs[k])}, "seq": {seq + a + k}, "producer": "main", '
                    f'"t": {t:.6f}}}\n' for k in range(b - a)))
            w.sync(t=t)


def replay_to(shape, path_idx: TraceIndex, epoch: int) -> np.ndarray:
    """The front at ``epoch`` replayed from scratch (the check)."""
    model = ReferenceModel(shape)
    for e in range(1, epoch + 1):
        for rec in path_idx.records_of_epoch(e):
            if isinstance(rec.item, SyncMarker):
                model.synchronize()
            else:
                model.apply(rec.item)
    return model.front


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--updates", type=int, default=1_000_000)
    p.add_argument("--epochs", type=int, default=1000)
    p.add_argument("--shape", default="512x512")
    p.add_argument("--jumps", type=int, default=50)
    p.add_argument("--kind", default="set,set_many")
    p.add_argument("--keep", default=None, help="write the traces into DIR and keep them")
    args = p.parse_args(argv)
    shape = tuple(int(x) for x in args.shape.split("x"))
    tmp = args.keep or tempfile.mkdtemp(prefix="bs-trace-open-")
    for kind in args.kind.split(","):
        path = os.path.join(tmp, f"{kind}.jsonl")
        t0 = time.perf_counter()
        write_trace(path, kind, shape, args.updates, args.epochs)
        wrote = time.perf_counter() - t0
        size = os.path.getsize(path)
        t0 = time.perf_counter()
        idx = TraceIndex.open(path)
        opened = time.perf_counter() - t0
        rnd = random.Random(1)
        times = []
        for _ in range(args.jumps):
            e = rnd.randint(0, idx.n_epochs)
            t0 = time.perf_counter()
            idx.front_at(e)
            times.append(time.perf_counter() - t0)
        for e in (1, idx.n_epochs // 3):
            want = replay_to(shape, idx, e)
            got = idx.front_at(e)
            assert np.array_equal(got.view(np.uint32), want.view(np.uint32)), f"epoch {e} differs"
        print(f"{kind:9s} {args.updates:,} updates, {idx.n_epochs} epochs, {size / 2**20:.0f} MiB "
              f"(written in {wrote:.1f} s): open {opened:.2f} s "
              f"({args.updates / opened / 1e6:.2f} M updates/s); "
              f"{args.jumps} random epoch jumps: median {statistics.median(times) * 1e3:.1f} ms, "
              f"max {max(times) * 1e3:.1f} ms; keyframe every {idx.keyframe_every} epochs",
              flush=True)
        if not args.keep:
            os.remove(path)
    if not args.keep:
        os.rmdir(tmp)
    return 0


if __name__ == "__main__":
    sys.exit(main())

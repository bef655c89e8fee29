"""The table and the JSON of ``bufferscope bench`` (``app.bench`` measures): one
``Figure`` per row, set against its limit measured in the same run."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict, dataclass

SHAPE = (1024, 1024)


@dataclass
class Figure:
    """One row of the table: ``value`` against ``limit`` (both in ``unit``)."""

    name: str
    backend: str
    value: float
    unit: str
    limit_name: str = ""
    limit: float | None = None
    target: str = ""            # e.g. ">= 0.5x"
    target_ratio: float | None = None
    higher_is_better: bool = True
    note: str = ""

    @property
    def ratio(self) -> float | None:
        if self.limit is None or not self.limit:
            return None
        return self.value / self.limit

    @property
    def ok(self) -> bool | None:
        r = self.ratio
        if r is None or self.target_ratio is None:
            return None
        return r >= self.target_ratio if self.higher_is_better else r <= self.target_ratio


def _fmt(v: float | None, unit: str) -> str:
    if v is None or v != v:
        return ""
    if unit == "bytes/s":
        return f"{v / 2**30:.2f} GiB/s"
    if unit == "bytes":
        return f"{v / 2**20:.0f} MiB"
    if unit == "rows/s":
        return f"{v:,.0f} rows/s"
    if unit in ("updates/s", "elements/s"):
        return f"{v / 1e6:.2f} M/s"
    if unit == "us":
        return f"{v:.1f} us"
    if unit in ("frames/s", "frames"):
        return f"{v:.2f} {unit}" if unit == "frames" else f"{v:.1f} {unit}"
    if unit == "x slower":
        return f"{v:.2f}x slower"
    return f"{v:g} {unit}"


def table(figs: list[Figure]) -> str:
    head = ("figure", "backend", "value", "limit (same run)", "ratio", "target", "met")
    rows = [head]
    for f in figs:
        r = f.ratio
        mark = "" if f.ok is None else ("ok" if f.ok else "MISSED")
        limit = f"{f.limit_name}: {_fmt(f.limit, f.unit)}" if f.limit_name else ""
        value = _fmt(f.value, f.unit) + (f" ({f.note})" if f.note else "")
        rows.append((f.name, f.backend, value, limit, "" if r is None else f"{r:.2f}x", f.target,
                     mark))
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def as_json(figs: list[Figure], viewer_shape=(1024, 1024)) -> dict:
    def clean(d: dict) -> dict:
        return {k: (None if isinstance(v, float) and v != v else v) for k, v in d.items()}

    return {"shape": list(SHAPE), "viewer_shape": list(viewer_shape), "figures": [
        clean({**asdict(f), "ratio": f.ratio, "ok": f.ok}) for f in figs]}


def main(args) -> int:
    backends = tuple(b.strip() for b in args.backends.split(",") if b.strip())
    to_stdout_json = args.json_out == "-"
    log = lambda s: print(s, file=sys.stderr, flush=True)  # noqa: E731 (progress on stderr)
    viewer_shape = tuple(getattr(args, "shape", None) or (1024, 1024))
    from .bench import run

    figs = run(backends, quick=args.quick, log=log, viewer_shape=viewer_shape,
               only=getattr(args, "only", None))
    if to_stdout_json:
        print(json.dumps(as_json(figs, viewer_shape), indent=2))
        return 0
    print(table(figs))
    if args.json_out:
        from .atomic import write_text

        write_text(args.json_out, json.dumps(as_json(figs, viewer_shape), indent=2) + "\n")
        print(f"figures written to {args.json_out}")
    return 0

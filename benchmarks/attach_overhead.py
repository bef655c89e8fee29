"""Live attach overhead (SPEC §8: an attached viewer slows the program by <= 10%).
A program, not a test.

    .venv/bin/python benchmarks/attach_overhead.py [--backend c] [--seconds 3] [--rounds 3]

A producer program (a child process) does ``set_many`` batches of 4096 random
elements + ``synchronize`` in a loop on a 1024x1024 buffer and reports its rate.
It runs unpublished, published with nobody attached, and published with a viewer
(this process) reading every message; the rounds alternate so that a noisy machine
affects every mode alike, and the table shows the median of each mode against the
unpublished one. ``measure()`` returns the same figures for ``bufferscope bench``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from app.bench_attach import measure  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--backend", default="c")
    p.add_argument("--seconds", type=float, default=3.0)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--duty", type=float, default=None,
                   help="the publisher's share of one core (default: app.live.DUTY)")
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    r = measure(args.backend, seconds=args.seconds, rounds=args.rounds, duty=args.duty)
    if args.json:
        print(json.dumps(r, indent=1))
        return 0
    off = r["median"]["off"]
    print(f"set_many 4096 + synchronize, 1024x1024, {args.backend} backend, "
          f"median of {args.rounds} x {args.seconds} s")
    print(f"{'mode':<28}{'updates/s':>14}{'vs unpublished':>16}{'CPU s / M updates':>19}"
          f"{'publisher CPU':>15}")
    for mode, title in (("off", "unpublished"), ("idle", "published, no viewer"),
                        ("viewer", "viewer reading everything")):
        m = r["median"][mode]
        c = r["cpu_s_per_mupdate"][mode]
        sh = r["publisher_cpu_share"][mode]
        print(f"{title:<28}{m / 1e6:>12.1f} M{m / off:>15.2f}x{c:>19.4f}{sh:>14.2%}")
    print(f"CPU per update with a viewer: {r['viewer_cpu_ratio']:.2f}x the unpublished run's")
    v = r["viewer_received"]
    print(f"viewer received {v.get('updates', 0)} updates, {v.get('fronts', 0)} fronts, "
          f"{v.get('events', 0)} events ({v.get('skipped', 0)} skipped over budget)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

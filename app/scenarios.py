"""Built-in scenarios: producer threads that feed a ``BufferManager`` (SPEC §7).

Qt-free. A ``Scenario`` is a recipe (name, description, default shape, how many
producers, what each one enqueues per tick); ``Scenario.start(manager)`` starts its
producer threads and returns a ``ScenarioRun`` whose ``stop(timeout)`` joins them.

Producers are paced (``rate`` ticks per second each), never block forever: they
enqueue with ``block=False`` and treat ``queue.Full`` as back-pressure (the tick's
updates are dropped, the producer waits a tick), and they keep the queue from
growing past a few ticks' worth of work so a paused manager does not fill memory.
``ManagerClosedError`` ends a producer quietly. Any other exception ends it too
and is kept in ``ScenarioRun.errors``.

Threads are named ``"<scenario>-producer-<k>"`` so the event log names them.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from .errors import ManagerClosedError
from .manager import BufferManager
from .updates import Add, Fill, Scale, Set, Shape, Update, Write

__all__ = ["SCENARIOS", "Scenario", "ScenarioRun", "ProducerContext", "get_scenario"]


@dataclass
class ProducerContext:
    """What a producer's tick function gets: its manager, identity, clock and RNG."""

    manager: BufferManager
    index: int             # 1-based producer number
    producers: int         # how many producers the run has
    rng: np.random.Generator
    tick: int = 0          # ticks done so far by this producer
    t: float = 0.0         # seconds since the run started
    record: list[tuple[int, Update]] | None = None
    cache: dict = field(default_factory=dict)
    enqueued: int = 0      # element updates (sequence numbers) enqueued so far

    @property
    def shape(self) -> Shape:
        return self.manager.shape

    # Every enqueue of a scenario goes through these, so a run can record (seq, update).
    def enqueue(self, update: Update) -> int:
        seq = self.manager.enqueue(update, block=False)
        self.enqueued += 1
        if self.record is not None:
            self.record.append((seq, update))
        return seq

    def enqueue_many(self, updates: list[Update]) -> list[int]:
        seqs = self.manager.enqueue_many(updates, block=False)
        self.enqueued += len(seqs)
        if self.record is not None:
            self.record.extend(zip(seqs, updates))
        return seqs

    def set_many(self, indices: np.ndarray, values: np.ndarray) -> np.ndarray:
        seqs = self.manager.set_many(indices, values, block=False)
        self.enqueued += len(seqs)
        if self.record is not None:
            self.record.extend(
                (int(s), Set(tuple(int(i) for i in idx), float(v)))
                for s, idx, v in zip(seqs, indices, values)
            )
        return seqs


TickFn = Callable[[ProducerContext], None]


@dataclass(frozen=True)
class Scenario:
    """A named recipe of producer threads.

    ``tick`` is called ``rate`` times a second in each of ``producers`` threads.
    ``max_backlog`` caps the manager's queue depth (in element updates) at which
    producers hold back instead of enqueueing more.
    """

    name: str
    description: str
    shape: Shape
    tick: TickFn
    producers: int = 1
    rate: float = 60.0
    max_backlog: int = 1 << 16

    def start(
        self,
        manager: BufferManager,
        rate: float | None = None,
        seed: int | None = None,
        record: bool = False,
    ) -> ScenarioRun:
        """Start the producer threads on ``manager``; ``rate`` is ticks/s per producer."""
        r = self.rate if rate is None else float(rate)
        if not r > 0:
            raise ValueError(f"rate must be > 0 ticks per second, got {rate!r}")
        run = ScenarioRun(self, manager, r, seed, record)
        run._start()
        return run


class ScenarioRun:
    """The running producer threads of one scenario on one manager."""

    def __init__(
        self, scenario: Scenario, manager: BufferManager, rate: float,
        seed: int | None, record: bool,
    ) -> None:
        self.scenario = scenario
        self.manager = manager
        self.rate = rate
        self.errors: list[BaseException] = []
        self.enqueued = 0           # element updates enqueued by all producers
        self.dropped_ticks = 0      # ticks dropped because the queue was full
        self.record: list[tuple[int, Update]] | None = [] if record else None
        self._stop = threading.Event()
        self._paused = threading.Event()
        self._lock = threading.Lock()
        self._seed = np.random.SeedSequence(seed)
        self._t0 = time.monotonic()
        self.threads: list[threading.Thread] = []

    def _start(self) -> None:
        n = self.scenario.producers
        for k, child in enumerate(self._seed.spawn(n), start=1):
            ctx = ProducerContext(
                manager=self.manager, index=k, producers=n,
                rng=np.random.default_rng(child),
                record=[] if self.record is not None else None,
            )
            th = threading.Thread(
                target=self._loop, args=(ctx,),
                name=f"{self.scenario.name}-producer-{k}", daemon=True,
            )
            self.threads.append(th)
        for th in self.threads:
            th.start()

    # -- control ---------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return any(th.is_alive() for th in self.threads)

    def pause(self) -> None:
        """Producers stop enqueueing (their threads stay alive) until resume()."""
        self._paused.set()

    def resume(self) -> None:
        self._paused.clear()

    def stop(self, timeout: float = 5.0) -> bool:
        """Stop and join the producers; True when all of them ended within ``timeout``."""
        self._stop.set()
        deadline = time.monotonic() + timeout
        for th in self.threads:
            if th is threading.current_thread():
                continue
            th.join(max(0.0, deadline - time.monotonic()))
        return not self.running

    def __enter__(self) -> ScenarioRun:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- the producer loop -----------------------------------------------------------
    def _backlogged(self) -> bool:
        return self.manager.stats().pending >= self.scenario.max_backlog

    def _loop(self, ctx: ProducerContext) -> None:
        period = 1.0 / self.rate
        next_t = time.monotonic()
        tick = self.scenario.tick
        while not self._stop.is_set():
            try:
                if self._paused.is_set() or self._backlogged():
                    self._stop.wait(period)
                    next_t = time.monotonic()
                    continue
                ctx.t = time.monotonic() - self._t0
                before = ctx.enqueued
                try:
                    with np.errstate(all="ignore"):
                        tick(ctx)
                except queue.Full:
                    with self._lock:
                        self.dropped_ticks += 1
                ctx.tick += 1
                with self._lock:
                    self.enqueued += ctx.enqueued - before
                    if ctx.record is not None:
                        self.record.extend(ctx.record)
                        ctx.record.clear()
            except ManagerClosedError:
                return
            except Exception as exc:  # a bug in a tick: keep it for the caller, end quietly
                with self._lock:
                    self.errors.append(exc)
                return
            next_t += period
            delay = next_t - time.monotonic()
            if delay < -0.25:  # fell far behind (a slow machine): do not burst to catch up
                next_t = time.monotonic()
                delay = 0.0
            if delay > 0:
                self._stop.wait(delay)



# ------------------------------------------------------------------ the scenarios


def _plane(shape: Shape) -> tuple[int, int, int]:
    """(depth, rows, cols) of a 1-, 2- or 3-d shape seen as a stack of 2-d planes."""
    if len(shape) == 1:
        return 1, 1, shape[0]
    if len(shape) == 2:
        return 1, shape[0], shape[1]
    return shape[0], shape[1], shape[2]


def _full_region(shape: Shape) -> tuple[tuple[int, int], ...]:
    return tuple((0, n) for n in shape)


def _rows_region(shape: Shape, r0: int, r1: int) -> tuple[tuple[int, int], ...]:
    """Rows r0..r1 of every plane (the first non-plane axis is kept whole)."""
    if len(shape) == 1:
        return ((0, shape[0]),)
    if len(shape) == 2:
        return ((r0, r1), (0, shape[1]))
    return ((0, shape[0]), (r0, r1), (0, shape[2]))


def _wave_block(shape: Shape, r0: int, r1: int, t: float, cache: dict) -> np.ndarray:
    """A travelling sine pattern on rows r0..r1, in the shape of ``_rows_region``."""
    depth, rows, cols = _plane(shape)
    # sin(a x + b y - p) cos(c y - q) = sin(a x) u(y) + cos(a x) v(y): two outer
    # products per block instead of a sine per element (a 4096-wide band stays cheap).
    key = ("coords", shape)
    if key not in cache:
        y = np.arange(rows, dtype=np.float64) / max(rows, 1)
        x = np.arange(cols, dtype=np.float64) / max(cols, 1)
        cache[key] = (y, np.sin(2 * np.pi * 3 * x).astype(np.float32),
                      np.cos(2 * np.pi * 3 * x).astype(np.float32))
    y, sx, cx = cache[key]
    ys = y[r0:r1]
    phase = 2 * np.pi * 0.35 * t
    envelope = np.cos(2 * np.pi * 1.5 * ys - 0.6 * phase)
    u = (np.cos(2 * np.pi * 2 * ys - phase) * envelope).astype(np.float32)
    v = (np.sin(2 * np.pi * 2 * ys - phase) * envelope).astype(np.float32)
    block = np.multiply.outer(u, sx)
    block += np.multiply.outer(v, cx)
    if len(shape) == 1:
        return block[0]
    if len(shape) == 2:
        return block
    z = np.arange(depth, dtype=np.float32)[:, None, None] / max(depth, 1)
    return (block[None] * np.cos(np.float32(np.pi) * z + phase)).astype(np.float32)


def _waves_tick(ctx: ProducerContext) -> None:
    """The whole buffer, one band of rows per tick, so the picture moves everywhere."""
    _, rows, _ = _plane(ctx.shape)
    band = max(1, rows // 4)
    k = ctx.tick % ((rows + band - 1) // band)
    r0, r1 = k * band, min(rows, (k + 1) * band)
    region = _rows_region(ctx.shape, r0, r1)
    ctx.enqueue(Write(region, _wave_block(ctx.shape, r0, r1, ctx.t, ctx.cache)))
    # A few bright sparkles with set_many on top of the waves.
    n = 32
    idx = np.stack([ctx.rng.integers(0, s, n) for s in ctx.shape], axis=1)
    ctx.set_many(idx, np.full(n, 1.5, dtype=np.float32))


def _racing_tick(ctx: ProducerContext) -> None:
    """Each producer owns a square that overlaps its neighbours' squares."""
    depth, rows, cols = _plane(ctx.shape)
    k, n = ctx.index, ctx.producers
    # Squares along the diagonal, each half the buffer wide: neighbours overlap.
    span_r, span_c = max(1, rows // 2), max(1, cols // 2)
    r0 = (rows - span_r) * (k - 1) // max(1, n - 1)
    c0 = (cols - span_c) * (k - 1) // max(1, n - 1)
    rect2 = ((r0, r0 + span_r), (c0, c0 + span_c))
    if len(ctx.shape) == 1:
        rect = (rect2[1],)
    elif len(ctx.shape) == 2:
        rect = rect2
    else:
        rect = ((0, depth),) + rect2
    if ctx.tick % 20 == 0:
        ups: list[Update] = [Fill(rect, float(k))]
    else:
        ups = [Add(rect, 0.05 * k)]
    if ctx.tick % 7 == 3:
        ups.append(Scale(rect, 0.9))
    ctx.enqueue_many(ups)


def _sparse_tick(ctx: ProducerContext) -> None:
    """Random single Sets, a vectorized set_many burst and a slow decay; rare NaN/±Inf."""
    shape = ctx.shape
    rng = ctx.rng
    n = 64
    idx = np.stack([rng.integers(0, s, n) for s in shape], axis=1)
    vals = rng.standard_normal(n).astype(np.float32)
    ctx.set_many(idx, vals)
    one = tuple(int(rng.integers(0, s)) for s in shape)
    special = (float("nan"), float("inf"), float("-inf"))
    value = special[ctx.tick // 10 % 3] if ctx.tick % 10 == 0 else float(rng.uniform(2.0, 3.0))
    ctx.enqueue(Set(one, value))
    if ctx.tick % 15 == 0:
        ctx.enqueue(Scale(_full_region(shape), 0.9))


def _stress_tick(ctx: ProducerContext) -> None:
    """Big Write blocks sweeping the buffer (producer 1) and random tiles (producer 2)."""
    shape = ctx.shape
    _, rows, cols = _plane(shape)
    if ctx.index == 1:
        band = max(1, rows // 8)
        k = ctx.tick % ((rows + band - 1) // band)
        r0, r1 = k * band, min(rows, (k + 1) * band)
        ctx.enqueue(Write(_rows_region(shape, r0, r1), _wave_block(shape, r0, r1, ctx.t, ctx.cache)))
        return
    th, tw = max(1, rows // 16), max(1, cols // 4)
    r0 = int(ctx.rng.integers(0, rows - th + 1))
    c0 = int(ctx.rng.integers(0, cols - tw + 1))
    if len(shape) == 1:
        region = ((c0, c0 + tw),)
    elif len(shape) == 2:
        region = ((r0, r0 + th), (c0, c0 + tw))
    else:
        region = ((0, shape[0]), (r0, r0 + th), (c0, c0 + tw))
    block_shape = tuple(b - a for a, b in region)
    ctx.enqueue(Write(region, ctx.rng.uniform(-1.0, 1.0, block_shape).astype(np.float32)))


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario(
            "waves",
            "A travelling sine pattern written band by band (Write) with set_many sparkles.",
            (256, 256), _waves_tick, producers=1, rate=60.0, max_backlog=4096,
        ),
        Scenario(
            "racing",
            "Three producers racing on overlapping squares with Fill, Add and Scale: "
            "the overlap shows whose update came last.",
            (128, 128), _racing_tick, producers=3, rate=40.0,
        ),
        Scenario(
            "sparse",
            "Random single Sets and set_many bursts with a slow decay; now and then NaN or ±Inf.",
            (256, 256), _sparse_tick, producers=2, rate=30.0,
        ),
        Scenario(
            "stress",
            "1024×1024: big Write blocks sweep the buffer while random tiles land on it.",
            (1024, 1024), _stress_tick, producers=2, rate=60.0, max_backlog=64,
        ),
    )
}

DEFAULT_SCENARIO = "waves"


def get_scenario(name: str) -> Scenario:
    """The scenario called ``name``; ValueError listing the choices otherwise."""
    try:
        return SCENARIOS[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"unknown scenario {name!r}; choose one of: {', '.join(SCENARIOS)}"
        ) from None

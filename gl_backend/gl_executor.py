"""``GlExecutor``: the scheduler's executor on the GPU, in a context of its own.

DESIGN
The worker thread owns an OpenGL 4.3 core context (Qt's ``QOpenGLContext`` on a
``QOffscreenSurface``, both created on the creating thread — the GUI thread in
the app; the context is moved to the worker, which alone makes it current, and
moved back when the worker ends). Front and back are two ``R32UI`` textures
holding float32 bit patterns, with ``R32F`` views for viewers (see ``_gpu``).

``apply`` merges neighbouring entries into few GL calls: a run of sets (``Set``
and ``set_many`` alike) becomes one upload of (offset, bits) pairs and one
compute scatter per 65535 sets (``_sets``) — repeated offsets are resolved on the
CPU first in O(n), keeping the last one, so no two invocations write the same
texel; a run of Fill/Add/Scale (and Writes that are not plain rectangles of the
texture) becomes one compute dispatch per group of pairwise disjoint boxes (a box
overlapping an earlier one of the group starts a new group, so read-modify-write
never races; ``_ops``); a Write that is a rectangle of the texture is uploaded
with ``glTexSubImage2D``. The calls made per batch are unchecked ctypes calls
(``_glfast``), checked with one ``glGetError`` after each group of them.

``catch_up`` brings the new back up to date in the cheapest of three ways: it
replays the GL operations applied since the previous swap (their set and box
buffers are kept for this, left-right style); or it copies from the front the
texture rows of the bands those operations wrote, when that costs less than the
replay (a scattered set costs llvmpipe about as much as copying 32 elements, see
``COST``); or, when they touched more elements than the buffer holds, it copies
the whole front with ``glCopyImageSubData`` (the kept operations are dropped as
soon as that happens, so memory stays bounded). It ends with a fence, so a back
the scheduler calls current has landed. ``wait`` is the fence before each swap.
Every operation marks its bands (``_bands``): O(changed) range and ``read_front``.
"""

from __future__ import annotations

import math
import struct
import threading
import time

import numpy as np

from app.errors import BackendUnavailableError
from app.scheduler import SETS, Entry, Item
from app.updates import Set, Write

from . import _context
from ._bands import FrontMirror
from ._ops import BoxGroup

_F32, _U32 = struct.Struct("<f"), struct.Struct("<I")
RECT_SLICES = 16             # a Write of more slices than this goes through the compute path


def float_bits(value: float) -> int:
    """The float32 bit pattern of ``value`` (rounded as numpy rounds; overflow gives ±inf)."""
    try:
        return _U32.unpack(_F32.pack(value))[0]
    except OverflowError:
        pass
    with np.errstate(over="ignore", invalid="ignore"):
        return int(np.array([value], dtype=np.float64).astype(np.float32).view(np.uint32)[0])


class _Enc:
    """What the GL executor needs of one entry: ``pairs`` (``(offsets, bits)``: int64
    and uint32 arrays for set_many, two ints for one Set); ``start``/``stop``
    (padded to 3-d), ``bits`` and ``data`` (a Write's uint32 block) for regions."""

    __slots__ = ("pairs", "start", "stop", "bits", "data", "touched")

    def __init__(self) -> None:
        self.pairs = None
        self.start = self.stop = None
        self.bits = 0
        self.data = None
        self.touched = 0


class GlExecutor:
    """Front and back as GL textures in the worker's own context (see the module doc).

    Created on the thread that will dispose of its Qt objects (the GUI thread in
    the app); everything else but ``encode`` and ``hand_over`` runs on the worker.
    """

    where = "on the GPU"

    def __init__(self, shape, fill: float, share_context=None) -> None:
        self.shape = tuple(shape)
        self.ndim = len(self.shape)
        self.shape3 = (1,) * (3 - self.ndim) + self.shape
        self.nelem = math.prod(self.shape)
        self.fill = fill
        self.strides = [math.prod(self.shape[d + 1:]) for d in range(self.ndim)]
        self.gpu = None
        self.group = BoxGroup()
        self.batch_ops: list = []
        self.batch_entries = 0
        self.batch_touched = 0
        self.batch_cost = 0          # replaying the batch, in elements copied (see _rows_to_copy)
        self.batch_overflow = False
        self.object_names: dict[str, list[int]] = {}
        self.mirror = None   # FrontMirror: the host copies of the front (read_front)
        # start-up hand-shake: the creator moves the context to the worker's QThread
        self._cv = threading.Condition()
        self._worker_qthread = None
        self._moved = False
        self._abandoned = False
        self._current = False
        self.surface, self.ctx = _context.create_offscreen(share_context)
        self.home_thread = self.ctx.thread()   # where it goes back to, and is disposed of
        self.shared = self.ctx.shareContext() is not None

    # -- producer side --------------------------------------------------------------
    def encode(self, e: Entry) -> None:
        enc = _Enc()
        if e.kind == SETS:
            # No copy: the chunk's own offsets and values (as bits) are read by the worker.
            enc.pairs = (np.ascontiguousarray(e.flat, dtype=np.int64), e.values.view(np.uint32))
            enc.touched = e.count
            e.enc = enc
            return
        u = e.update
        t = type(u)
        if t is Set:
            off = 0
            for i, s in zip(u.index, self.strides):
                off += i * s
            enc.pairs = (off, float_bits(u.value))
            enc.touched = 1
            e.enc = enc
            return
        pad = 3 - self.ndim
        enc.start = (0,) * pad + tuple(a for a, _ in u.region)
        enc.stop = (1,) * pad + tuple(b for _, b in u.region)
        ext = tuple(b - a for a, b in zip(enc.start, enc.stop))
        enc.touched = ext[0] * ext[1] * ext[2]
        if t is Write:
            enc.data = u.data.view(np.uint32).reshape(ext)
        else:
            enc.bits = float_bits(u.value)
        e.enc = enc

    # -- the worker's life ------------------------------------------------------------
    def hand_over(self, deadline: float) -> None:
        """Creating thread: move the context to the worker once its QThread exists."""
        with self._cv:
            while self._worker_qthread is None:
                if not self._cv.wait(max(0.0, deadline - time.monotonic())):
                    self._abandoned = True
                    self._cv.notify_all()
                    raise BackendUnavailableError("the GL worker thread did not start")
            worker = self._worker_qthread
            _context.on_app_thread(lambda: self.ctx.moveToThread(worker))  # pushed by its owner
            self._moved = True
            self._cv.notify_all()

    def start(self) -> dict:
        from PyQt6.QtCore import QThread

        with self._cv:
            self._worker_qthread = QThread.currentThread()
            self._cv.notify_all()
            while not self._moved and not self._abandoned:
                self._cv.wait(0.05)
            if not self._moved:
                raise BackendUnavailableError("the GL context was not handed to the worker")
        if not self.ctx.makeCurrent(self.surface):
            raise BackendUnavailableError(
                "cannot make the OpenGL context current on the GL worker thread")
        self._current = True
        try:
            from OpenGL import GL

            from ._gpu import Gpu

            self.gpu = Gpu(self.shape3, self.fill)
            self.mirror = FrontMirror(self.gpu.bands.n, self.shape)
            return {
                "vendor": GL.glGetString(GL.GL_VENDOR).decode(),
                "renderer": GL.glGetString(GL.GL_RENDERER).decode(),
                "version": GL.glGetString(GL.GL_VERSION).decode(),
                "max_texture_size": self.gpu.max_texture_size,
            }
        except BaseException:
            self.finish()
            raise

    def finish(self) -> None:
        """Worker: free every GL object, release the context, hand it back."""
        if not self._moved:
            return
        try:
            if self._current:
                if self.gpu is not None:
                    self._drop_batch()
                    self.gpu.delete()
                    from OpenGL import GL

                    GL.glFinish()
                self.ctx.doneCurrent()
        finally:
            self._current = False
            self.gpu = None
            self.object_names = {}
            self.ctx.moveToThread(self.home_thread)

    def dispose(self) -> None:
        _context.dispose(self.surface, self.ctx)

    # -- requests ----------------------------------------------------------------------
    def wait(self) -> None:
        self.gpu.wait()

    def read(self, slot: int) -> np.ndarray:
        return self.gpu.read(slot, self.shape)

    def read_front(self, slot: int) -> np.ndarray:
        return self.mirror.read(self.gpu, slot)

    def finite_range(self, slot: int):
        return self.gpu.finite_range(slot)

    # -- catch-up ------------------------------------------------------------------------
    def catch_up(self, front: int, back: int) -> int:
        """Make the new back equal the front, then fence."""
        written = self.mirror.pending.copy()   # the bands this batch wrote
        self.mirror.swapped()
        try:
            if self.batch_overflow:
                self.gpu.copy(front, back)
                replayed = 0
            elif (rows := self._rows_to_copy(written)) is not None:
                self.gpu.copy(front, back, rows)
                replayed = 0
            else:
                for op in self.batch_ops:
                    op.apply(self.gpu, back)
                self.gpu.check("replaying the batch onto the new back")
                replayed = self.batch_entries
            self.gpu.wait()
            return replayed
        except Exception:
            # The back may now be half replayed: copy the front over it.
            self.gpu.copy(front, back)
            raise
        finally:
            self._drop_batch()

    def _rows_to_copy(self, written: np.ndarray) -> list[tuple[int, int]] | None:
        """The texture rows of the bands in ``written`` when copying them from the front
        costs less than replaying the batch (``COST`` per element of each operation:
        on llvmpipe a scattered set costs as much as copying dozens of elements), else None."""
        from ._bands import runs

        be, wd, h = self.gpu.bands.band_elems, self.gpu.width, self.gpu.height
        if int(np.count_nonzero(written)) * be >= self.batch_cost:
            return None
        return [(b0 * be // wd, min(h, -(-(b1 * be) // wd))) for b0, b1 in runs(written)]

    def _drop_batch(self) -> None:
        names = [b for op in self.batch_ops for b in op.buffers()]
        self.batch_ops = []
        self.batch_entries = 0
        self.batch_touched = 0
        self.batch_cost = 0
        self.batch_overflow = False
        self.gpu.release_buffers(names)

    def _keep(self, ops, entries: int, failed: bool) -> None:
        """Remember applied operations for the catch-up replay."""
        if failed:
            self.batch_overflow = True
        if not self.batch_overflow:
            self.batch_touched += sum(t for _, t in ops)
            self.batch_cost += sum(t * op.COST for op, t in ops)
            if self.batch_touched > self.nelem:
                # Replaying would cost more than copying the buffer: drop the batch.
                self.batch_overflow = True
        self.batch_ops.extend(op for op, _ in ops)
        self.batch_entries += entries
        if self.batch_overflow:
            self._drop_batch()
            self.batch_overflow = True

    # -- applying ------------------------------------------------------------------------
    def apply(self, items: list[Item], slot: int) -> Exception | None:
        """Issue the GL work of ``items`` on texture ``slot``, merged."""
        from ._ops import BoxesOp, RectsOp
        from ._sets import SetsOp, last_writes, set_slices

        gpu = self.gpu
        ops: list = []
        sets: list = []
        group = self.group
        group.clear()
        done_entries = 0

        def flush_sets() -> None:
            if sets:
                # Slices are dispatched in order, so a later slice wins over an earlier one.
                for f, b in set_slices(sets):
                    keep = last_writes(f, gpu.stamps)
                    if keep is not None:
                        f, b = f[keep], b[keep]
                    op = SetsOp(gpu, f, b)
                    ops.append((op, len(f)))
                    op.apply(gpu, slot)
                sets.clear()
                gpu.check("applying element sets")

        def flush_group() -> None:
            if group.k:
                op = BoxesOp(gpu, group.records[: group.k].copy(), group.payload, group.total)
                ops.append((op, group.total))
                group.clear()
                op.apply(gpu, slot)

        try:
            for e, frm, n, failed in items:
                if failed:
                    continue
                if frm + n == e.count:
                    done_entries += 1
                enc = e.enc
                if enc.pairs is not None:
                    flush_group()
                    p = enc.pairs
                    sets.append(p if n == e.count else (p[0][frm: frm + n], p[1][frm: frm + n]))
                    continue
                flush_sets()
                volume = enc.touched
                if volume == 0:
                    continue
                rects = self._rects(enc) if e.op == "write" else None
                if rects is not None:
                    flush_group()
                    op = RectsOp(rects)
                    ops.append((op, volume))
                    op.apply(gpu, slot)
                    continue
                if not group.fits(enc.start, enc.stop, volume):
                    flush_group()
                group.add(e.op, enc, volume)
            flush_sets()
            flush_group()
            gpu.check("applying updates")
            err = None
        except Exception as exc:
            err = exc
        self.mirror.applied([op.bands for op, _ in ops] if err is None else None)
        self._keep(ops, done_entries, failed=err is not None)
        return err

    def _rects(self, enc: _Enc):
        """A Write as texture rectangles ``(x, y, w, h, bits)``, or None for the compute path."""
        if not self.gpu.natural:
            return None
        (d0, r0, c0), (d1, r1, c1) = enc.start, enc.stop
        rows = self.shape3[1]
        w = c1 - c0
        if r0 == 0 and r1 == rows:
            return [(c0, d0 * rows, w, (d1 - d0) * rows, enc.data.reshape(-1, w))]
        if d1 - d0 > RECT_SLICES:
            return None
        return [(c0, d * rows + r0, w, r1 - r0, enc.data[d - d0]) for d in range(d0, d1)]

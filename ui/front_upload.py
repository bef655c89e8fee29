"""``FrontUploader``: the read-back front uploaded into textures on the session's sync
worker, so that the GUI thread neither copies nor uploads it (SPEC §7: the GUI
thread never waits on the manager; §8: the viewer at scale).

The worker owns a GL context of its own (a ``QOpenGLContext`` made on the GUI
thread, shared with the view's through the application's global share context,
moved to the worker's thread, current there from its first upload on). After each
synchronize it reads the manager's front (valid until the next synchronize, which
the same thread makes) and copies the rows that changed (``app.front_changes``)
straight from it into one of two R32F textures — every plane stacked, as the GL
backend's texture, so the view's z-slider needs no upload — then ``glFinish``es
and hands ``(texture, epoch, levels)`` back with the job's result. The exact
finite min/max levels come from per-band summaries of that front (``Bands``,
O(changed rows)), reduced on a helper thread while the worker uploads.

Two textures take turns: the worker writes the one the view is not showing. The
view shows a texture from the moment the session hands it over (``show``, on the
GUI thread, before the session starts its next job), and after every draw that
samples one it leaves a fence (``drawn``); the worker waits for the fence of the
texture it is about to write (on its own thread) before writing it. A texture
written is therefore never sampled half-written, and what the view draws is
exactly the front of the epoch it says. Each texture keeps the rows changed since
it was last written, so a write brings it from its own epoch to the new one.

``usable`` says whether a buffer of a given shape fits (texture size); the view
uploads on the GUI thread as before when it does not, or when anything here fails.
"""

from __future__ import annotations

import threading

import numpy as np
from OpenGL import GL

from gl_backend import glutil

from .front_source import Bands, row_runs

FENCE_WAIT_NS = 2_000_000_000    # a draw the GUI issued ends long before this


class FrontUploader:
    """Two shared textures filled on the sync worker (see the module doc).

    ``work`` runs on the worker thread only; ``show``, ``texture``, ``levels``,
    ``drawn`` and ``dispose`` on the GUI thread (``drawn`` with the view's context
    current). ``release`` runs on the worker (its exit hook) with nothing else left
    to do there."""

    def __init__(self, worker_thread, max_texture: int = 16384) -> None:
        from PyQt6.QtGui import QOffscreenSurface, QOpenGLContext

        from .buffer_view import view_format

        self.max_texture = int(max_texture)
        self.surface = QOffscreenSurface()
        self.surface.setFormat(view_format())
        self.surface.create()
        self.ctx = QOpenGLContext()
        self.ctx.setFormat(view_format())
        share = QOpenGLContext.globalShareContext()
        if share is not None:
            self.ctx.setShareContext(share)
        if not self.surface.isValid() or not self.ctx.create() or (
                share is not None and self.ctx.shareContext() is None):
            self.dispose()
            raise RuntimeError("no OpenGL context sharing textures with the view")
        self.ctx.moveToThread(worker_thread)     # pushed by its owner, the GUI thread
        self._lock = threading.Lock()
        self._fences: list[int | None] = [None, None]   # the GUI's last draw of each
        self.shown = -1            # the texture the view shows (GUI; read by the worker)
        self.current: tuple | None = None   # (texture, epoch, lo, hi) shown
        self.failed = ""           # why uploading stopped ("" while it works)
        # worker state
        self._current_here = False
        self.textures = [0, 0]
        self._sizes: list[tuple[int, int]] = [(0, 0), (0, 0)]   # (cols, rows) of each
        self._dirty: list[np.ndarray | None] = [None, None]   # rows to write; None: all
        self._manager = None
        self._shape: tuple[int, ...] = ()
        self._bands: Bands | None = None
        self.uploaded_rows = 0     # rows the last ``work`` wrote (tests, the bench)
        self.total_rows = 0
        self.total_bytes = 0
        self.released = False
        self._pool = None          # the thread reducing the levels (made when first used)

    # -- which buffers ----------------------------------------------------------------------
    def usable(self, shape: tuple[int, ...]) -> bool:
        """Whether a buffer of ``shape`` fits in one texture (planes stacked)."""
        cols = int(shape[-1])
        rows = 1 if len(shape) == 1 else int(np.prod(shape[:-1]))
        return 0 < cols <= self.max_texture and 0 < rows <= self.max_texture

    # -- the worker ---------------------------------------------------------------------------
    def invalidate(self) -> None:
        """Worker: a front went by unseen; the next ``work`` writes everything."""
        self._bands = None

    def work(self, manager, front: np.ndarray, changes: tuple | None, epoch: int) -> tuple:
        """Worker: bring the texture the view does not show to ``front`` (the
        manager's front at manager epoch ``epoch``); ``changes`` is
        ``FrontChanges.take``'s answer for it. Returns what ``show`` takes."""
        if self.released:
            raise RuntimeError("the front uploader was released")
        if not self._current_here:
            if not self.ctx.makeCurrent(self.surface):
                raise RuntimeError("cannot make the upload context current on the sync worker")
            self._current_here = True
            self.max_texture = min(self.max_texture, int(GL.glGetIntegerv(GL.GL_MAX_TEXTURE_SIZE)))
        a2 = np.asarray(front, dtype=np.float32).reshape(-1, front.shape[-1])
        nrows, cols = a2.shape
        if not self.usable(front.shape):
            raise ValueError(f"a buffer of shape {tuple(front.shape)} does not fit in a "
                             f"{self.max_texture}×{self.max_texture} texture")
        rows = None if changes is None else changes[2]
        fresh = (manager is not self._manager or tuple(front.shape) != self._shape
                 or self._bands is None)
        if fresh:
            self._manager, self._shape = manager, tuple(front.shape)
            self._dirty = [None, None]
            self._bands = None
        elif rows is None:
            self._dirty = [None, None]
        else:
            for k in (0, 1):
                if self._dirty[k] is not None:
                    self._dirty[k] |= rows
        # The level summaries of the rows written are reduced on a helper thread while
        # this one uploads (both let go of the GIL for the long part); ``front`` stays
        # valid until this job's result has been handled.
        levels = self._levels_pool().submit(self._reduce, a2, None if fresh else rows)
        try:
            k = 1 - self.shown if self.shown in (0, 1) else 0
            self._wait_drawn(k)
            self._write(k, a2, nrows, cols)
            GL.glFinish()          # complete before the GUI's context samples it
        finally:
            levels.result()
        lo_hi = self._bands.finite_range()
        lo, hi = lo_hi if lo_hi is not None else (None, None)
        return k, self.textures[k], manager, int(epoch), lo, hi

    def _levels_pool(self):
        if self._pool is None:
            from concurrent.futures import ThreadPoolExecutor

            self._pool = ThreadPoolExecutor(1, thread_name_prefix="bufferscope-levels")
        return self._pool

    def _reduce(self, a2: np.ndarray, rows: np.ndarray | None) -> None:
        if self._bands is None:
            self._bands = Bands(a2)
        elif rows is None or rows.any():
            self._bands.update(a2, rows)

    def _wait_drawn(self, k: int) -> None:
        with self._lock:
            fence, self._fences[k] = self._fences[k], None
        if fence is not None:
            GL.glClientWaitSync(fence, GL.GL_SYNC_FLUSH_COMMANDS_BIT, FENCE_WAIT_NS)
            GL.glDeleteSync(fence)

    def _write(self, k: int, a2: np.ndarray, nrows: int, cols: int) -> None:
        GL.glPixelStorei(GL.GL_UNPACK_ALIGNMENT, 4)
        if not self.textures[k] or self._sizes[k] != (cols, nrows):
            if not self.textures[k]:
                self.textures[k] = glutil.make_texture_2d()
            GL.glBindTexture(GL.GL_TEXTURE_2D, self.textures[k])
            GL.glTexImage2D(GL.GL_TEXTURE_2D, 0, GL.GL_R32F, cols, nrows, 0,
                            GL.GL_RED, GL.GL_FLOAT, None)
            self._sizes[k] = (cols, nrows)
            self._dirty[k] = None
        GL.glBindTexture(GL.GL_TEXTURE_2D, self.textures[k])
        dirty = self._dirty[k]
        runs = [(0, nrows)] if dirty is None else row_runs(dirty)
        written = 0
        for r0, r1 in runs:
            GL.glTexSubImage2D(GL.GL_TEXTURE_2D, 0, 0, r0, cols, r1 - r0, GL.GL_RED,
                               GL.GL_FLOAT, np.ascontiguousarray(a2[r0:r1]))
            written += r1 - r0
        GL.glBindTexture(GL.GL_TEXTURE_2D, 0)
        self._dirty[k] = np.zeros(nrows, dtype=bool)
        self.uploaded_rows = written
        self.total_rows += written
        self.total_bytes += written * cols * 4

    def release(self) -> None:
        """Worker: free the textures and the fences, give the context back to the GUI
        thread (``dispose`` then destroys it there)."""
        if self.released:
            return
        self.released = True
        if self._pool is not None:
            self._pool.shutdown(wait=True)
        if not self._current_here:
            self._give_back()
            return
        try:
            with self._lock:
                fences, self._fences = self._fences, [None, None]
            for f in fences:
                if f is not None:
                    GL.glDeleteSync(f)
            names = [t for t in self.textures if t]
            if names:
                GL.glDeleteTextures(len(names), names)
            self.textures = [0, 0]
            GL.glFinish()
        finally:
            self.ctx.doneCurrent()
            self._current_here = False
            self._give_back()

    def _give_back(self) -> None:
        from PyQt6.QtCore import QCoreApplication

        app = QCoreApplication.instance()
        if app is not None:
            self.ctx.moveToThread(app.thread())     # pushed by its owner, this thread

    # -- the GUI thread -----------------------------------------------------------------------
    def show(self, done: tuple, epoch_offset: int = 0) -> None:
        """GUI: the view shows what ``work`` returned from now on (its epoch plus
        ``epoch_offset``: the session's numbers)."""
        k, tex, _manager, epoch, lo, hi = done
        self.shown = k
        self.current = (tex, epoch + int(epoch_offset), lo, hi)

    def texture(self) -> tuple[int, int]:
        """GUI: ``(texture, epoch)`` shown (a ``TextureSource``'s provider)."""
        if self.failed:
            raise RuntimeError(self.failed)
        if self.released:
            raise RuntimeError("the uploaded textures were freed (the session closed)")
        if self.current is None:
            raise RuntimeError("no front uploaded yet")
        return self.current[0], self.current[1]

    def levels(self):
        """GUI: ``(lo, hi, epoch)`` of the texture shown: its exact finite range."""
        if self.failed:
            raise RuntimeError(self.failed)
        return None if self.current is None else (self.current[2], self.current[3],
                                                   self.current[1])

    def drawn(self, tex: int) -> None:
        """GUI, view context current: a draw sampling ``tex`` was issued."""
        if tex not in self.textures or self.released:
            return
        k = self.textures.index(tex)
        fence = GL.glFenceSync(GL.GL_SYNC_GPU_COMMANDS_COMPLETE, 0)
        GL.glFlush()
        with self._lock:
            old, self._fences[k] = self._fences[k], fence
        if old is not None:
            GL.glDeleteSync(old)

    def dispose(self) -> None:
        """GUI: destroy the context and the surface (after ``release``, or unused)."""
        from PyQt6 import sip

        for obj in (self.ctx, self.surface):
            if obj is not None and not sip.isdeleted(obj):
                if obj is self.surface:
                    obj.destroy()
                sip.transferto(obj, None)
                obj.deleteLater()

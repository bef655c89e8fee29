"""``GLBufferManager``: the manager contract (SPEC §3) on the GPU through OpenGL.

A thin front, like ``c_backend/manager.py``: the queue protocol is the shared
``app.scheduler.Scheduler`` (tested without GL through the numpy executor), and
the work is ``GlExecutor``'s (``gl_executor.py``: its DESIGN comment says how
updates become GL calls and how the catch-up works). What this class adds is
what only a GL backend offers, declared in ``capabilities``: the front as a
texture a sharing viewer samples (``front_texture``), its finite range reduced
on the GPU once per epoch (``front_range``, and ``request_front_range`` for a
GUI thread that must never wait), and the context's ``gl_info``.
"""

from __future__ import annotations

from app.manager import DEFAULT_EVENT_CAPACITY, DEFAULT_MAX_PENDING, Capabilities
from app.scheduled import ScheduledManager
from app.updates import Shape

from .gl_executor import GlExecutor


class GLBufferManager(ScheduledManager):
    """The GL backend's buffer manager (parameters as ``ScheduledManager``, plus one).

    Parameters
    ----------
    share_context
        A ``QOpenGLContext`` (a viewer's) to share textures with; without it the
        application's global share context is used when there is one.
    """

    backend = "gl"
    capabilities = Capabilities(front_texture=True, gpu_range=True, gl_info=True, back=True,
                                watch=True)

    def __init__(
        self,
        shape: Shape,
        fill: float = 0.0,
        max_pending: int = DEFAULT_MAX_PENDING,
        event_capacity: int = DEFAULT_EVENT_CAPACITY,
        share_context=None,
        trace: str | None = None,
    ) -> None:
        if share_context is not None:
            from PyQt6.QtGui import QOpenGLContext

            if not isinstance(share_context, QOpenGLContext):
                raise ValueError(f"share_context must be a QOpenGLContext, got {share_context!r}")
        executor = GlExecutor(tuple(shape), float(fill), share_context)
        try:
            super().__init__(shape, fill, max_pending, event_capacity, trace,
                             executor=executor, thread_name="bufferscope-gl-worker")
        except BaseException:
            executor.dispose()
            raise

    # -- what only the GL backend offers ------------------------------------------------
    def front_range(self) -> tuple[float, float, int] | tuple[None, None, int]:
        """``(min, max, epoch)`` of the finite values of the front; ``(None, None, epoch)``
        when it holds no finite value (all NaN/±Inf). Blocks until the worker has it.

        Computed on the GPU by the worker (no read-back of the buffer: 8 bytes per
        band of 16 384 elements come back) once per epoch and cached, so further
        calls in the same epoch cost nothing; only the bands written since their
        range was last computed are reduced again (``_bands``): O(changed).
        ``epoch`` is the epoch the values belong to — the one whose texture
        ``front_texture()`` returns while no synchronize intervenes.

        Exact: min and max are float32 values of the buffer, bit for bit. Zeros
        are ordered by their bits, -0.0 < +0.0: a front holding both has min -0.0
        and max +0.0 (where numpy's min/max may return either zero).
        """
        self._check_open()
        return _range_result(self._sched.front_range(block=True))

    def request_front_range(self):
        """Never blocks: the newest ``(min, max, epoch)`` known (as ``front_range``),
        or None when none is known yet. When it is not the current epoch's, the
        worker is asked to reduce the current front; a later call returns that.
        For a GUI thread that must not wait on the worker."""
        self._check_open()
        cached = self._sched.front_range(block=False)
        return None if cached is None else _range_result(cached)

    def front_texture(self) -> tuple[int, int]:
        """``(texture, epoch)``: the front as a ``GL_TEXTURE_2D`` with ``GL_R32F`` format.

        For a viewer whose context shares objects with this manager's
        (``share_context`` or the global share context). Texel ``(x, y)`` holds
        flat element ``y * width + x`` where ``(width, height) = texture_size``;
        sample it with ``texelFetch(sampler2D, ivec2(x, y), 0).r``. Like ``front()``
        it is valid until the next ``synchronize()``.
        """
        self._check_open()
        s = self._sched
        with s.lock:
            return self._executor.gpu.views[s.front_slot], s.epoch

    @property
    def texture_size(self) -> tuple[int, int]:
        """``(width, height)`` of the buffer textures (see ``front_texture``)."""
        self._check_open()
        return self._executor.gpu.width, self._executor.gpu.height

    @property
    def shares_context(self) -> bool:
        """Whether this manager's context shares objects with another (a viewer's)."""
        return self._executor.shared

    def gl_info(self) -> dict[str, object]:
        """Vendor, renderer, version and the texture size limit of this manager's context."""
        return dict(self._sched.info)

    def gl_objects(self) -> dict[str, list[int]]:
        """Names of the GL objects this manager holds (all freed by ``close()``)."""
        self._check_open()
        with self._sched.lock:
            gpu = self._executor.gpu
            return {**gpu.object_names(), "buffers_live": [gpu.buffers_live]}


def _range_result(cached) -> tuple[float, float, int] | tuple[None, None, int]:
    epoch, rng = cached
    if rng is None:
        return None, None, epoch
    return rng[0], rng[1], epoch

"""The GL objects of one GL manager and the operations that change them.

Used only by the manager's worker thread, with its context current. The two
buffers are ``GL_TEXTURE_2D`` textures with immutable ``GL_R32UI`` storage that
hold float32 *bit patterns*: sets, fills and writes move bits without ever
becoming floats, so NaN, ±Inf, -0.0 and subnormals stay exact; only Add and
Scale turn them into floats (``precise`` arithmetic in the compute shader). Each
texture also has a ``GL_R32F`` texture view over the same storage, which is what
a viewer samples.

Element ``k`` of the buffer (C order, flat) is texel ``(k % width, k // width)``.
When the buffer's last dimension and the product of the others both fit
``GL_MAX_TEXTURE_SIZE``, ``width`` is the last dimension, so a 2-D buffer is the
texture itself (row r, column c is texel (c, r)) and a 3-D one stacks its slices
vertically; otherwise rows of ``GL_MAX_TEXTURE_SIZE`` elements wrap.

Three kinds of replayable operation (``_sets.SetsOp``, ``_ops.BoxesOp``,
``_ops.RectsOp``) are built from queue entries by the worker and kept until the catch-up after the
next swap replays them onto the other texture. The calls made per batch go
through ``_glfast`` (unchecked, so ``check`` follows each group of them); the
buffers of operations are pooled (``pooled_buffer``/``release_buffers``).
"""

from __future__ import annotations

import ctypes

import numpy as np
from OpenGL import GL
from OpenGL.raw.GL.VERSION.GL_1_1 import glGetTexImage as _raw_get_tex_image
from OpenGL.raw.GL.VERSION.GL_4_5 import glGetTextureSubImage as _raw_get_texture_sub_image

from app.sysmem import check_buffers_fit

from ._glfast import FastGL
from ._sets import stamps_for
from .glutil import compile_program

OP_FILL, OP_ADD, OP_SCALE, OP_WRITE = 1, 2, 3, 4
BOX_FIELDS = 8
LOCAL_SIZE = 64
MAX_GROUPS = 32  # work groups per dispatch: llvmpipe runs a few long grid-stride loops best
FENCE_STEP_NS = 1_000_000_000
SETS_UNIT = 1               # texture unit of the scatter's buffer texture (worker's context)
POOL_BUFFERS = 16           # released operation buffers kept for reuse ...
POOL_BYTES = 1 << 20        # ... when at most this large


def texture_layout(shape3: tuple[int, int, int], max_size: int) -> tuple[int, int]:
    """``(width, height)`` of the texture that holds a buffer of ``shape3``.

    Raises ValueError naming ``GL_MAX_TEXTURE_SIZE`` when it cannot hold it.
    """
    nelem = shape3[0] * shape3[1] * shape3[2]
    rows = shape3[0] * shape3[1]
    if shape3[2] <= max_size and rows <= max_size:
        return shape3[2], rows
    if nelem > max_size * max_size:
        raise ValueError(
            f"a buffer of {nelem} elements exceeds this OpenGL implementation's limit: "
            f"GL_MAX_TEXTURE_SIZE is {max_size}, so a texture holds at most "
            f"{max_size} x {max_size} = {max_size * max_size} elements"
        )
    return max_size, -(-nelem // max_size)


def _gl_error_check(what: str) -> None:
    err = GL.glGetError()
    if err == GL.GL_OUT_OF_MEMORY:
        raise MemoryError(f"{what}: the OpenGL implementation is out of memory")
    if err != GL.GL_NO_ERROR:
        raise RuntimeError(f"{what}: OpenGL error 0x{int(err):04x}")


class Gpu:
    """Two R32UI textures (front and back, by slot), their views, FBOs and programs."""

    def __init__(self, shape3: tuple[int, int, int], fill: float) -> None:
        self.shape3 = shape3
        self.nelem = shape3[0] * shape3[1] * shape3[2]
        self.max_texture_size = int(GL.glGetIntegerv(GL.GL_MAX_TEXTURE_SIZE))
        self.width, self.height = texture_layout(shape3, self.max_texture_size)
        self.natural = self.width == shape3[2]
        check_buffers_fit((self.height, self.width), what="float32 textures")
        self.textures: list[int] = []
        self.views: list[int] = []
        self.fbos: list[int] = []
        self.programs: list[int] = []
        self.buffers_live = 0
        self.textures_other: list[int] = []
        self.vao = 0
        self.empty_payload = 0
        self.bands = None
        self.fast = None
        self.pool: list[tuple[int, int]] = []   # (name, bytes) of released buffers
        self.sizes: dict[int, int] = {}          # bytes of each operation buffer in use
        try:
            self._create(fill)
        except BaseException:
            self.delete()
            raise

    # -- creation / destruction ----------------------------------------------------------
    def _create(self, fill: float) -> None:
        while GL.glGetError() != GL.GL_NO_ERROR:
            pass
        self.fast = FastGL()
        bits = np.array([fill], dtype=np.float32).view(np.uint32)
        for _ in range(2):
            tex = int(GL.glGenTextures(1))
            self.textures.append(tex)
            GL.glBindTexture(GL.GL_TEXTURE_2D, tex)
            GL.glTexStorage2D(GL.GL_TEXTURE_2D, 1, GL.GL_R32UI, self.width, self.height)
            _gl_error_check(f"allocating a {self.width}x{self.height} R32UI texture")
            self._nearest(GL.GL_TEXTURE_2D)
            GL.glClearTexImage(tex, 0, GL.GL_RED_INTEGER, GL.GL_UNSIGNED_INT, bits)
            view = int(GL.glGenTextures(1))
            self.views.append(view)
            GL.glTextureView(view, GL.GL_TEXTURE_2D, tex, GL.GL_R32F, 0, 1, 0, 1)
            GL.glBindTexture(GL.GL_TEXTURE_2D, view)
            self._nearest(GL.GL_TEXTURE_2D)
            fbo = int(GL.glGenFramebuffers(1))
            self.fbos.append(fbo)
            GL.glBindFramebuffer(GL.GL_FRAMEBUFFER, fbo)
            GL.glFramebufferTexture2D(
                GL.GL_FRAMEBUFFER, GL.GL_COLOR_ATTACHMENT0, GL.GL_TEXTURE_2D, tex, 0
            )
            status = GL.glCheckFramebufferStatus(GL.GL_FRAMEBUFFER)
            if status != GL.GL_FRAMEBUFFER_COMPLETE:
                raise RuntimeError(f"the R32UI framebuffer is incomplete (0x{int(status):04x})")
        GL.glBindTexture(GL.GL_TEXTURE_2D, 0)
        GL.glBindFramebuffer(GL.GL_FRAMEBUFFER, 0)
        self.scatter_program = compile_program([(GL.GL_COMPUTE_SHADER, "gl_scatter.comp.glsl")])
        self.programs.append(self.scatter_program)
        self.stamps = stamps_for(self.nelem)
        self.boxes_program = compile_program([(GL.GL_COMPUTE_SHADER, "gl_boxes.comp.glsl")])
        self.programs.append(self.boxes_program)
        p = self.scatter_program
        GL.glUseProgram(p)
        GL.glUniform1ui(GL.glGetUniformLocation(p, "tex_width"), self.width)
        self.loc_count = GL.glGetUniformLocation(p, "count")
        GL.glUniform1i(GL.glGetUniformLocation(p, "sets"), SETS_UNIT)
        self.sets_texture = int(GL.glGenTextures(1))   # a buffer texture over each scatter's sets
        self.textures_other.append(self.sets_texture)
        GL.glBindTexture(GL.GL_TEXTURE_BUFFER, self.sets_texture)   # a texture from now on
        GL.glBindTexture(GL.GL_TEXTURE_BUFFER, 0)
        p = self.boxes_program
        GL.glUseProgram(p)
        GL.glUniform1ui(GL.glGetUniformLocation(p, "tex_width"), self.width)
        GL.glUniform2ui(GL.glGetUniformLocation(p, "dims"), self.shape3[1], self.shape3[2])
        self.loc_n_boxes = GL.glGetUniformLocation(p, "n_boxes")
        self.loc_total = GL.glGetUniformLocation(p, "total")
        GL.glUseProgram(0)
        self.vao = int(GL.glGenVertexArrays(1))
        self.empty_payload = self.new_buffer(np.zeros(1, dtype=np.uint32))
        from ._bands import BandRanges

        self.bands = BandRanges(self)
        GL.glDisable(GL.GL_BLEND)
        GL.glDisable(GL.GL_DEPTH_TEST)
        GL.glDisable(GL.GL_DITHER)
        GL.glDisable(GL.GL_PROGRAM_POINT_SIZE)
        GL.glPixelStorei(GL.GL_UNPACK_ALIGNMENT, 4)
        GL.glPixelStorei(GL.GL_PACK_ALIGNMENT, 4)
        _gl_error_check("creating the GL objects")

    @staticmethod
    def _nearest(target: int) -> None:
        GL.glTexParameteri(target, GL.GL_TEXTURE_MIN_FILTER, GL.GL_NEAREST)
        GL.glTexParameteri(target, GL.GL_TEXTURE_MAG_FILTER, GL.GL_NEAREST)
        GL.glTexParameteri(target, GL.GL_TEXTURE_WRAP_S, GL.GL_CLAMP_TO_EDGE)
        GL.glTexParameteri(target, GL.GL_TEXTURE_WRAP_T, GL.GL_CLAMP_TO_EDGE)

    def delete(self) -> None:
        """Delete every GL object (idempotent)."""
        if self.empty_payload:
            self.delete_buffers([self.empty_payload])
            self.empty_payload = 0
        if self.bands is not None:
            self.delete_buffers(self.bands.buffers())
            self.bands = None
        if self.pool:
            self.delete_buffers([name for name, _ in self.pool])
            self.pool = []
        if self.vao:
            GL.glDeleteVertexArrays(1, [self.vao])
            self.vao = 0
        for prog in self.programs:
            GL.glDeleteProgram(prog)
        self.programs = []
        if self.fbos:
            GL.glDeleteFramebuffers(len(self.fbos), self.fbos)
            self.fbos = []
        names = self.views + self.textures + self.textures_other
        self.textures_other = []
        if names:
            GL.glDeleteTextures(len(names), names)
        self.views, self.textures = [], []

    def object_names(self) -> dict[str, list[int]]:
        return {"textures": self.textures + self.views + self.textures_other,
                "framebuffers": list(self.fbos),
                "programs": list(self.programs)}

    # -- buffers ---------------------------------------------------------------------------
    def new_buffer(self, data: np.ndarray) -> int:
        """A new buffer holding ``data`` (freed with ``delete_buffers``)."""
        buf = self.fast.gen_buffer()
        self.buffers_live += 1
        self._fill(buf, data)
        return buf

    def _fill(self, buf: int, data: np.ndarray) -> None:
        f = self.fast
        data = np.ascontiguousarray(data)
        f.glBindBuffer(GL.GL_COPY_WRITE_BUFFER, buf)
        f.glBufferData(GL.GL_COPY_WRITE_BUFFER, data.nbytes, ctypes.c_void_p(data.ctypes.data),
                       GL.GL_STATIC_DRAW)
        f.glBindBuffer(GL.GL_COPY_WRITE_BUFFER, 0)

    def delete_buffers(self, names: list[int]) -> None:
        if names:
            self.fast.delete_buffers(names)
            self.buffers_live -= len(names)

    def pooled_buffer(self, data: np.ndarray) -> int:
        """A buffer holding ``data`` for an operation: a released one when there is one
        (its storage re-specified), else a new one. Give it back with ``release_buffers``."""
        if self.pool:
            buf, _ = self.pool.pop()
        else:
            buf = self.fast.gen_buffer()
            self.buffers_live += 1
        self.sizes[buf] = data.nbytes
        self._fill(buf, data)
        return buf

    def release_buffers(self, names: list[int]) -> None:
        """Operation buffers no longer needed: small ones are kept for reuse (a few)."""
        dead = []
        for buf in names:
            size = self.sizes.pop(buf, POOL_BYTES + 1)
            if size <= POOL_BYTES and len(self.pool) < POOL_BUFFERS:
                self.pool.append((buf, size))
            else:
                dead.append(buf)
        self.delete_buffers(dead)

    def check(self, what: str) -> None:
        """Raise for a GL error left by the unchecked calls of ``what``."""
        err = self.fast.glGetError()
        if err == GL.GL_NO_ERROR:
            return
        while self.fast.glGetError() != GL.GL_NO_ERROR:
            pass
        if err == GL.GL_OUT_OF_MEMORY:
            raise MemoryError(f"{what}: the OpenGL implementation is out of memory")
        raise RuntimeError(f"{what}: OpenGL error 0x{int(err):04x}")

    # -- operations --------------------------------------------------------------------------
    def scatter(self, slot: int, data: int, n: int) -> None:
        """Sets from buffer ``data`` ((offset, bits) uint32 pairs) into texture ``slot``."""
        f = self.fast
        f.glActiveTexture(GL.GL_TEXTURE0 + SETS_UNIT)
        f.glBindTexture(GL.GL_TEXTURE_BUFFER, self.sets_texture)
        f.glTexBuffer(GL.GL_TEXTURE_BUFFER, GL.GL_RG32UI, data)
        f.glActiveTexture(GL.GL_TEXTURE0)
        f.glUseProgram(self.scatter_program)
        f.glUniform1ui(self.loc_count, n)
        f.glBindImageTexture(0, self.textures[slot], 0, GL.GL_FALSE, 0, GL.GL_READ_WRITE,
                             GL.GL_R32UI)
        f.glBindBufferBase(GL.GL_SHADER_STORAGE_BUFFER, 1, data)
        f.glDispatchCompute(min(MAX_GROUPS, -(-n // LOCAL_SIZE)), 1, 1)
        f.glMemoryBarrier(GL.GL_ALL_BARRIER_BITS)

    def run_boxes(self, slot: int, boxes: int, payload: int, n_boxes: int, total: int) -> None:
        GL.glUseProgram(self.boxes_program)
        GL.glUniform1ui(self.loc_n_boxes, n_boxes)
        GL.glUniform1ui(self.loc_total, total)
        GL.glBindImageTexture(0, self.textures[slot], 0, GL.GL_FALSE, 0, GL.GL_READ_WRITE,
                              GL.GL_R32UI)
        GL.glBindBufferBase(GL.GL_SHADER_STORAGE_BUFFER, 1, boxes)
        GL.glBindBufferBase(GL.GL_SHADER_STORAGE_BUFFER, 2, payload or self.empty_payload)
        groups = min(MAX_GROUPS, -(-total // LOCAL_SIZE))
        GL.glDispatchCompute(groups, 1, 1)
        # Later dispatches, draws, uploads and copies see these image stores.
        GL.glMemoryBarrier(GL.GL_ALL_BARRIER_BITS)

    def write_rect(self, slot: int, x: int, y: int, w: int, h: int, bits: np.ndarray) -> None:
        """``bits`` (C-contiguous uint32, h rows of w) into texture ``slot`` at (x, y)."""
        f = self.fast
        bits = np.ascontiguousarray(bits, dtype=np.uint32)
        f.glBindTexture(GL.GL_TEXTURE_2D, self.textures[slot])
        f.glTexSubImage2D(GL.GL_TEXTURE_2D, 0, x, y, w, h, GL.GL_RED_INTEGER,
                          GL.GL_UNSIGNED_INT, ctypes.c_void_p(bits.ctypes.data))
        f.glBindTexture(GL.GL_TEXTURE_2D, 0)

    def copy(self, src: int, dst: int, rows: list[tuple[int, int]] | None = None) -> None:
        """Texture ``src`` onto ``dst``: whole, or only the texture rows ``y0..y1`` of
        ``rows`` when the two already agree everywhere else."""
        for y0, y1 in rows if rows is not None else [(0, self.height)]:
            GL.glCopyImageSubData(self.textures[src], GL.GL_TEXTURE_2D, 0, 0, y0, 0,
                                  self.textures[dst], GL.GL_TEXTURE_2D, 0, 0, y0, 0,
                                  self.width, y1 - y0, 1)
        GL.glMemoryBarrier(GL.GL_ALL_BARRIER_BITS)
        self.bands.copy(src, dst)

    def wait(self) -> None:
        """Block until the GPU has finished every command issued so far."""
        sync = GL.glFenceSync(GL.GL_SYNC_GPU_COMMANDS_COMPLETE, 0)
        try:
            while True:
                r = GL.glClientWaitSync(sync, GL.GL_SYNC_FLUSH_COMMANDS_BIT, FENCE_STEP_NS)
                if r in (GL.GL_ALREADY_SIGNALED, GL.GL_CONDITION_SATISFIED):
                    return
                if r == GL.GL_WAIT_FAILED:
                    raise RuntimeError("glClientWaitSync failed while waiting for the GPU")
        finally:
            GL.glDeleteSync(sync)

    def read(self, slot: int, shape: tuple[int, ...]) -> np.ndarray:
        """A float32 copy of texture ``slot`` as an array of ``shape``."""
        out = np.empty((self.height, self.width), dtype=np.uint32)
        GL.glBindTexture(GL.GL_TEXTURE_2D, self.textures[slot])
        _raw_get_tex_image(GL.GL_TEXTURE_2D, 0, GL.GL_RED_INTEGER, GL.GL_UNSIGNED_INT,
                           out.ctypes.data_as(ctypes.c_void_p))
        GL.glBindTexture(GL.GL_TEXTURE_2D, 0)
        _gl_error_check("reading the front texture back")
        flat = out.reshape(-1)
        if flat.size != self.nelem:
            flat = flat[: self.nelem]
        return flat.view(np.float32).reshape(shape)

    def read_rows(self, slot: int, out: np.ndarray, y0: int, y1: int) -> None:
        """Texture rows ``y0..y1`` of ``slot`` into ``out[y0:y1]`` ((height, width) uint32)."""
        part = out[y0:y1]
        _raw_get_texture_sub_image(self.textures[slot], 0, 0, y0, 0, self.width, y1 - y0, 1,
                                   GL.GL_RED_INTEGER, GL.GL_UNSIGNED_INT, part.nbytes,
                                   part.ctypes.data_as(ctypes.c_void_p))
        _gl_error_check("reading the front texture back")

    def finite_range(self, slot: int) -> tuple[float, float] | None:
        """Exact ``(min, max)`` of the finite values of texture ``slot``; None when none.

        From per-band keys (``_bands.BandRanges``): only the bands written since
        their keys were computed are reduced again on the GPU (``gl_bands.comp.glsl``,
        over the ``nelem`` elements, not the texture's padding), then the bands'
        keys come back (8 bytes a band). The keys order -0.0 below +0.0, so a
        buffer holding both zeros has min -0.0 and max +0.0.
        """
        lo, hi = self.bands.finite_range(slot, self.textures[slot])
        _gl_error_check("reducing the front to its finite range")
        return range_from_keys(lo, hi)


def range_key(bits: np.ndarray) -> np.ndarray:
    """The shader's order-preserving uint32 key of float32 bit patterns (numpy twin)."""
    b = np.asarray(bits, dtype=np.uint32)
    return np.where(b & np.uint32(0x80000000), ~b, b | np.uint32(0x80000000)).astype(np.uint32)


def range_from_keys(lo_key: int, hi_key: int) -> tuple[float, float] | None:
    """``(min, max)`` as floats from the reduction's two keys; None for "no finite value"."""
    if lo_key == 0xFFFFFFFF or hi_key == 0:
        return None
    keys = np.array([lo_key, hi_key], dtype=np.uint32)
    bits = np.where(keys & np.uint32(0x80000000), keys & np.uint32(0x7FFFFFFF), ~keys)
    lo, hi = bits.astype(np.uint32).view(np.float32)
    return float(lo), float(hi)

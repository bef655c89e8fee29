"""``BandRanges``: the finite min/max of a buffer texture kept per band of
``BAND_ELEMENTS`` consecutive elements, so that the front's range costs
O(changed) per epoch, not O(buffer).

Each of the two textures (slots) has a GPU buffer of two order-preserving keys per
band (``gl_range.comp.glsl``'s keys; ``(0xFFFFFFFF, 0)``: no finite value) and a
CPU mask of the bands written since their keys were last computed. Every
operation that writes a slot marks the bands it touches (``mark``; the replayable
operations of ``_gpu`` know theirs from their offsets, boxes or rectangles, and a
whole-texture copy copies the keys and the mask). ``finite_range`` reduces only
the dirty bands on the GPU (``gl_bands.comp.glsl``), then reads back the keys of
every band (8 bytes a band) and takes their min and max: exact, as the full
reduction is. Used only by the worker, with its context current.
"""

from __future__ import annotations

import ctypes

import numpy as np
from OpenGL import GL
from OpenGL.raw.GL.VERSION.GL_1_5 import glGetBufferSubData as _raw_get_buffer_sub_data

from .glutil import compile_program

BAND_ELEMENTS = 1 << 14    # consecutive elements (flat, C order) per band
MAX_GROUPS = 32            # work groups per dispatch (llvmpipe: a few long loops)
NO_KEYS = np.array([0xFFFFFFFF, 0], dtype=np.uint32)


def runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """Half-open runs of True in ``mask``."""
    d = np.diff(np.concatenate(([0], mask.view(np.int8), [0])))
    return list(zip(np.flatnonzero(d == 1).tolist(), np.flatnonzero(d == -1).tolist()))


class BandRanges:
    """Per-band finite range keys of a ``Gpu``'s two textures (see the module doc)."""

    def __init__(self, gpu) -> None:
        self.nelem = gpu.nelem
        self.band_elems = max(1, min(BAND_ELEMENTS, self.nelem))
        self.n = -(-self.nelem // self.band_elems)
        be = self.band_elems
        self.shift = be.bit_length() - 1 if be & (be - 1) == 0 else None
        self.dirty = [np.ones(self.n, dtype=bool), np.ones(self.n, dtype=bool)]
        self.keys = [gpu.new_buffer(np.tile(NO_KEYS, self.n)) for _ in range(2)]
        self.list_buffer = gpu.new_buffer(np.zeros(self.n, dtype=np.uint32))
        self.program = compile_program([(GL.GL_COMPUTE_SHADER, "gl_bands.comp.glsl")])
        gpu.programs.append(self.program)
        p = self.program
        GL.glUseProgram(p)
        GL.glUniform1ui(GL.glGetUniformLocation(p, "tex_width"), gpu.width)
        GL.glUniform1ui(GL.glGetUniformLocation(p, "count"), self.nelem)
        GL.glUniform1ui(GL.glGetUniformLocation(p, "band_elems"), self.band_elems)
        self.loc_n = GL.glGetUniformLocation(p, "n_bands")
        GL.glUseProgram(0)
        self.recomputed = 0        # bands reduced by the last finite_range (tests, bench)

    def buffers(self) -> list[int]:
        return [*self.keys, self.list_buffer]

    # -- which bands an operation writes -------------------------------------------------------
    def of_offsets(self, flat: np.ndarray) -> np.ndarray:
        """The bands holding flat element offsets ``flat`` (O(n): a mask, no sort)."""
        flat = np.asarray(flat, dtype=np.int64)
        if self.n == 1:
            return np.zeros(1 if len(flat) else 0, dtype=np.intp)
        mask = np.zeros(self.n, dtype=bool)
        mask[flat >> self.shift if self.shift is not None else flat // self.band_elems] = True
        return np.flatnonzero(mask)

    def of_spans(self, first: np.ndarray, last: np.ndarray) -> np.ndarray:
        """The bands meeting any flat span ``first[k]..last[k]`` (inclusive)."""
        b0 = np.asarray(first, dtype=np.int64) // self.band_elems
        b1 = np.asarray(last, dtype=np.int64) // self.band_elems
        if len(b0) == 1:
            return np.arange(b0[0], b1[0] + 1)
        edges = np.zeros(self.n + 1, dtype=np.int64)
        np.add.at(edges, b0, 1)
        np.add.at(edges, b1 + 1, -1)
        return np.flatnonzero(np.cumsum(edges[:-1]) > 0)

    def mark(self, slot: int, bands) -> None:
        self.dirty[slot][bands] = True

    def copy(self, src: int, dst: int) -> None:
        """Texture ``dst`` now holds texture ``src``'s values."""
        GL.glBindBuffer(GL.GL_COPY_READ_BUFFER, self.keys[src])
        GL.glBindBuffer(GL.GL_COPY_WRITE_BUFFER, self.keys[dst])
        GL.glCopyBufferSubData(GL.GL_COPY_READ_BUFFER, GL.GL_COPY_WRITE_BUFFER, 0, 0, self.n * 8)
        GL.glBindBuffer(GL.GL_COPY_READ_BUFFER, 0)
        GL.glBindBuffer(GL.GL_COPY_WRITE_BUFFER, 0)
        self.dirty[dst][:] = self.dirty[src]

    # -- the range ---------------------------------------------------------------------------------
    def finite_range(self, slot: int, texture: int) -> tuple[int, int]:
        """The two keys of the finite min and max of ``texture`` (slot ``slot``)."""
        dirty = np.flatnonzero(self.dirty[slot]).astype(np.uint32)
        self.recomputed = len(dirty)
        if len(dirty):
            GL.glBindBuffer(GL.GL_SHADER_STORAGE_BUFFER, self.list_buffer)
            GL.glBufferSubData(GL.GL_SHADER_STORAGE_BUFFER, 0, dirty.nbytes, dirty)
            GL.glBindBuffer(GL.GL_SHADER_STORAGE_BUFFER, 0)
            GL.glUseProgram(self.program)
            GL.glUniform1ui(self.loc_n, len(dirty))
            GL.glBindImageTexture(0, texture, 0, GL.GL_FALSE, 0, GL.GL_READ_ONLY, GL.GL_R32UI)
            GL.glBindBufferBase(GL.GL_SHADER_STORAGE_BUFFER, 3, self.keys[slot])
            GL.glBindBufferBase(GL.GL_SHADER_STORAGE_BUFFER, 4, self.list_buffer)
            GL.glDispatchCompute(min(MAX_GROUPS, len(dirty)), 1, 1)
            GL.glMemoryBarrier(GL.GL_BUFFER_UPDATE_BARRIER_BIT | GL.GL_SHADER_STORAGE_BARRIER_BIT)
            GL.glBindBufferBase(GL.GL_SHADER_STORAGE_BUFFER, 3, 0)
            GL.glBindBufferBase(GL.GL_SHADER_STORAGE_BUFFER, 4, 0)
            GL.glUseProgram(0)
            self.dirty[slot][:] = False
        keys = np.empty((self.n, 2), dtype=np.uint32)
        GL.glBindBuffer(GL.GL_SHADER_STORAGE_BUFFER, self.keys[slot])
        _raw_get_buffer_sub_data(GL.GL_SHADER_STORAGE_BUFFER, 0, keys.nbytes,
                                 keys.ctypes.data_as(ctypes.c_void_p))
        GL.glBindBuffer(GL.GL_SHADER_STORAGE_BUFFER, 0)
        return int(keys[:, 0].min()), int(keys[:, 1].max())


class FrontMirror:
    """The host copies of the front that ``front()`` returns, kept up to date by
    reading back only the bands that swaps made visible since that copy was last
    filled (``glGetTextureSubImage``), not the whole texture. Two copies take
    turns, so the array of the previous epoch is left as it was until the read
    after next (``front()``'s arrays are valid until the next synchronize)."""

    def __init__(self, n_bands: int, shape: tuple[int, ...]) -> None:
        self.shape = shape
        self.nelem = int(np.prod(shape))
        self.arrays: list[np.ndarray | None] = [None, None]
        self.next = 0
        self.pending = np.zeros(n_bands, dtype=bool)    # written since the last swap
        self.visible = [np.ones(n_bands, dtype=bool), np.ones(n_bands, dtype=bool)]

    def applied(self, bands: list | None) -> None:
        """Operations wrote ``bands`` (a list of band arrays; None: anything)."""
        if bands is None:
            self.pending[:] = True
            return
        for b in bands:
            self.pending[b] = True

    def swapped(self) -> None:
        """A swap made what was applied since the previous one visible."""
        for v in self.visible:
            v |= self.pending
        self.pending[:] = False

    def read(self, gpu, slot: int) -> np.ndarray:
        k = self.next
        self.next ^= 1
        if self.arrays[k] is None:
            self.arrays[k] = np.empty((gpu.height, gpu.width), dtype=np.uint32)
            self.visible[k][:] = True
        array, be, wd = self.arrays[k], gpu.bands.band_elems, gpu.width
        for b0, b1 in runs(self.visible[k]):
            gpu.read_rows(slot, array, b0 * be // wd, min(gpu.height, -(-(b1 * be) // wd)))
        self.visible[k][:] = False
        return array.reshape(-1)[: self.nelem].view(np.float32).reshape(self.shape)

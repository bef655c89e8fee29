"""``DisplayState``: how the buffer is looked at — colormap, levels, auto levels, z,
selection, grid — as plain Python with change events (napari's layer model).

The view, the color bar and the control panel observe one ``DisplayState``; none
of them holds a copy that another must be kept in step with, so a control that
changes the state is updated by the state's event like everyone else (no
``blockSignals``). Qt-free: it can be tested, and driven, without a window.

Signals
-------
sigColormapChanged(str)
sigLevelsChanged(float, float, bool)    lo, hi, whether they are auto levels
sigSliceChanged(int)                    the plane z of a 3-D buffer
sigSelectionChanged(object)             a plane box ((r0, r1), (c0, c1)) or None
sigGridChanged(bool)
"""

from __future__ import annotations

import math
from collections.abc import Callable

from . import colormaps

Box = tuple[tuple[int, int], tuple[int, int]]


class Signal:
    """A list of callbacks: ``connect(fn)``, ``disconnect(fn)``, ``emit(*args)``."""

    def __init__(self) -> None:
        self._callbacks: list[Callable] = []

    def connect(self, fn: Callable) -> None:
        if fn not in self._callbacks:
            self._callbacks.append(fn)

    def disconnect(self, fn: Callable) -> None:
        if fn in self._callbacks:
            self._callbacks.remove(fn)

    def emit(self, *args) -> None:
        for fn in list(self._callbacks):
            fn(*args)


def check_levels(lo: float, hi: float) -> tuple[float, float]:
    """``(lo, hi)`` as floats, or ValueError saying why they cannot be levels."""
    lo, hi = float(lo), float(hi)
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise ValueError(f"levels must be finite numbers, got {lo:g} to {hi:g}")
    if lo >= hi:
        raise ValueError(f"the low level must be below the high level, got {lo:g} to {hi:g}")
    return lo, hi


class DisplayState:
    """The display settings of one buffer view (see the module docstring)."""

    def __init__(self, colormap: str = "viridis") -> None:
        self.sigColormapChanged = Signal()
        self.sigLevelsChanged = Signal()
        self.sigSliceChanged = Signal()
        self.sigSelectionChanged = Signal()
        self.sigGridChanged = Signal()
        colormaps.lut(colormap)
        self._colormap = colormap
        self._levels = (0.0, 1.0)
        self._auto = True
        self.levels_epoch: int | None = None   # epoch the auto levels were computed for
        self._z = 0
        self._selection: Box | None = None
        self._grid = True

    # -- colormap ------------------------------------------------------------------
    @property
    def colormap(self) -> str:
        return self._colormap

    def set_colormap(self, name: str) -> None:
        colormaps.lut(name)  # ValueError naming the choices
        if name != self._colormap:
            self._colormap = name
            self.sigColormapChanged.emit(name)

    # -- levels --------------------------------------------------------------------
    @property
    def levels(self) -> tuple[float, float]:
        return self._levels

    @property
    def auto_levels(self) -> bool:
        return self._auto

    def set_levels(self, lo: float, hi: float) -> None:
        """Fixed levels (auto levels off). ValueError for non-finite or lo >= hi."""
        lo, hi = check_levels(lo, hi)
        changed = (lo, hi) != self._levels or self._auto
        self._levels, self._auto = (lo, hi), False
        self.levels_epoch = None
        if changed:
            self.sigLevelsChanged.emit(lo, hi, False)

    def set_auto_levels(self, on: bool = True) -> None:
        on = bool(on)
        if on != self._auto:
            self._auto = on
            self.levels_epoch = None
            self.sigLevelsChanged.emit(*self._levels, on)

    def set_auto_range(self, lo: float | None, hi: float | None, epoch: int) -> None:
        """The finite min/max of epoch ``epoch`` (None, None: no finite value):
        the levels when auto levels are on, ignored otherwise. A range of one
        value (lo == hi) is kept as it is: the shader draws it mid-colormap."""
        if not self._auto:
            return
        self.levels_epoch = int(epoch)
        if lo is None or hi is None:
            return
        new = (float(lo), float(hi))
        if new != self._levels:
            self._levels = new
            self.sigLevelsChanged.emit(*new, True)

    # -- slice, selection, grid ------------------------------------------------------
    @property
    def z(self) -> int:
        return self._z

    def set_z(self, z: int) -> None:
        z = max(0, int(z))
        if z != self._z:
            self._z = z
            self.sigSliceChanged.emit(z)

    @property
    def selection(self) -> Box | None:
        return self._selection

    def set_selection(self, box: Box | None) -> None:
        if box is not None:
            (r0, r1), (c0, c1) = box
            box = ((int(r0), int(r1)), (int(c0), int(c1)))
        if box != self._selection:
            self._selection = box
            self.sigSelectionChanged.emit(box)

    @property
    def grid(self) -> bool:
        return self._grid

    def set_grid(self, on: bool) -> None:
        if bool(on) != self._grid:
            self._grid = bool(on)
            self.sigGridChanged.emit(self._grid)

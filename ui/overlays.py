"""``Overlays``: what is drawn over the buffer view besides the data — named sets
of outlined boxes and of marked elements — as plain Python with change events.

Any debug view puts its marks here under a name of its own and the view draws
them; none of them touches the renderer (napari's layer model, like
``DisplayState``). Qt-free.

* ``set(name, boxes, color, width=2, style="solid")`` — outline boxes given in
  buffer indices (style ``"solid"`` or ``"dashed"``, drawn just inside each box,
  or ``"two-tone"``, drawn just outside it: the outer half of the outline in the
  color, the inner half black),
  one ``(start, stop)`` per dimension (a 3-D box is drawn on the planes z it
  spans); ``set(name, [])`` or ``clear(name)`` removes them. Used for the race
  overlaps (``"races"``), the element the history follows (``"element"``) and
  the update log's selected row (``"selected-row"``).
* ``set_marks(name, mask, color)`` — mark every element where ``mask`` (a bool
  array of the buffer's shape) is True (the diff, ``"diff"``); ``None`` removes.

Colors are ``(r, g, b)`` bytes; the constants below (with their styles) stand
apart from the colormaps' purples, blues, greens and yellows and from the NaN
(magenta), +Inf (orange) and −Inf (cyan) colors.

Signals
-------
sigOverlaysChanged(str)   the overlay of that name was set, changed or removed
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .display_state import Signal

Color = tuple[int, int, int]
Box = tuple[tuple[int, int], ...]

RACE_COLOR: Color = (255, 40, 40)           # red, solid: overlaps of racing updates
DIFF_COLOR: Color = (255, 255, 255)         # white marks: elements the last sync changed
SELECTED_ROW_COLOR: Color = (255, 255, 255)  # white, dashed: the update log's selected row
ELEMENT_COLOR: Color = (255, 255, 255)      # white over black, two-tone: the followed element
STYLES = {"solid": 0, "dashed": 1, "two-tone": 2}


@dataclass(frozen=True)
class BoxSet:
    name: str
    boxes: tuple[Box, ...]
    color: Color
    width: float = 2.0          # outline width in px (inside the box; two-tone: outside)
    style: str = "solid"        # "solid", "dashed" or "two-tone"


@dataclass(frozen=True)
class MarkSet:
    name: str
    mask: np.ndarray            # bool, the buffer's shape
    color: Color
    count: int                  # elements marked


def plane_box(box: Box, z: int) -> tuple[tuple[int, int], tuple[int, int]] | None:
    """The part of buffer box ``box`` on plane ``z`` as ((r0, r1), (c0, c1)); None
    when it is not on that plane or is empty (1-D boxes are on row 0)."""
    if len(box) == 1:
        (c0, c1), = box
        r = (0, 1)
    elif len(box) == 2:
        r, (c0, c1) = box[0], box[1]
    else:
        (z0, z1), r, (c0, c1) = box
        if not z0 <= z < z1:
            return None
    if r[0] >= r[1] or c0 >= c1:
        return None
    return (int(r[0]), int(r[1])), (int(c0), int(c1))


def plane_of(mask: np.ndarray, z: int) -> np.ndarray:
    """The 2-D plane of a buffer-shaped array that the view shows at ``z``."""
    if mask.ndim == 1:
        return mask.reshape(1, -1)
    return mask if mask.ndim == 2 else mask[min(z, mask.shape[0] - 1)]


class Overlays:
    """Named box sets and mark sets (see the module docstring)."""

    def __init__(self) -> None:
        self.sigOverlaysChanged = Signal()
        self._boxes: dict[str, BoxSet] = {}
        self._marks: dict[str, MarkSet] = {}
        self.generation = 0      # bumped at every change (the renderer re-uploads on it)

    # -- boxes ---------------------------------------------------------------------
    def set(self, name: str, boxes, color: Color, width: float = 2.0,
            style: str = "solid") -> None:
        """Outline ``boxes`` (buffer indices, half-open) in ``color`` under ``name``."""
        if style not in STYLES:
            raise ValueError(f"unknown outline style {style!r}; choose one of: {', '.join(STYLES)}")
        norm = tuple(tuple((int(a), int(b)) for a, b in box) for box in boxes or ())
        new = BoxSet(name, norm, tuple(int(c) for c in color), float(width), style)
        if not norm:
            if self._boxes.pop(name, None) is not None:
                self._changed(name)
            return
        if self._boxes.get(name) != new:
            self._boxes[name] = new
            self._changed(name)

    def boxes(self, name: str) -> tuple[Box, ...]:
        bs = self._boxes.get(name)
        return () if bs is None else bs.boxes

    def box_sets(self) -> list[BoxSet]:
        return list(self._boxes.values())

    def plane_boxes(self, z: int) -> list:
        """Every box on plane ``z``: ``(((r0, r1), (c0, c1)), color, width, style
        number)``, in the order the sets were made (later sets drawn over earlier)."""
        out = []
        for bs in self._boxes.values():
            for box in bs.boxes:
                pb = plane_box(box, z)
                if pb is not None:
                    out.append((pb, bs.color, bs.width, STYLES[bs.style]))
        return out

    # -- marks ---------------------------------------------------------------------
    def set_marks(self, name: str, mask: np.ndarray | None, color: Color) -> None:
        """Mark the elements where ``mask`` is True; None (or no True) removes them."""
        if mask is None:
            if self._marks.pop(name, None) is not None:
                self._changed(name)
            return
        mask = np.asarray(mask, dtype=bool)
        self._marks[name] = MarkSet(name, mask, tuple(int(c) for c in color),
                                    int(np.count_nonzero(mask)))
        self._changed(name)

    def marks(self, name: str) -> MarkSet | None:
        return self._marks.get(name)

    def mark_sets(self) -> list[MarkSet]:
        return list(self._marks.values())

    # -- both ----------------------------------------------------------------------
    def clear(self, name: str) -> None:
        had = self._boxes.pop(name, None) is not None
        had |= self._marks.pop(name, None) is not None
        if had:
            self._changed(name)

    def names(self) -> list[str]:
        return [*self._boxes, *self._marks]

    def _changed(self, name: str) -> None:
        self.generation += 1
        self.sigOverlaysChanged.emit(name)

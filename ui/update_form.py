"""``UpdateForm``: the "Enqueue an update" box — a form for every update type.

Type, value, (Write) constant or random data, and the region: a start and a stop
per dimension, or for ``Set`` only the index (no stop). The region can also be
picked by Shift+dragging on the view (``set_plane_region``). The region rows are
rebuilt in a fresh widget for each buffer shape, so a smaller shape leaves no
empty rows. An empty region is refused, not reported as a success.

Signals
-------
sigUpdateEnqueued(int)   the seq of an update enqueued from the form
"""

from __future__ import annotations

import numpy as np
from PyQt6.QtCore import pyqtSignal
from PyQt6.QtWidgets import (
    QComboBox,
    QFormLayout,
    QGridLayout,
    QGroupBox,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from app import Add, Fill, Scale, Set, Write

from .session import Session

UPDATE_TYPES = ("Set", "Fill", "Add", "Scale", "Write")
AXIS_NAMES = {1: ("col",), 2: ("row", "col"), 3: ("z", "row", "col")}


def parse_value(text: str) -> float:
    """A float, accepting ``nan``, ``inf``, ``-inf`` (and ``+inf``)."""
    t = text.strip().lower().replace("−", "-")
    try:
        return float(t)
    except ValueError:
        raise ValueError(f"value must be a number, nan, inf or -inf; got {text!r}") from None


class UpdateForm(QGroupBox):
    sigUpdateEnqueued = pyqtSignal(int)

    def __init__(self, session: Session, parent: QWidget | None = None) -> None:
        super().__init__("Enqueue an update", parent)
        self.session = session
        v = QVBoxLayout(self)
        form = QFormLayout()
        self.op_combo = QComboBox()
        self.op_combo.addItems(UPDATE_TYPES)
        self.op_combo.setCurrentText("Fill")
        self.op_combo.currentTextChanged.connect(self._on_op_changed)
        form.addRow("Type", self.op_combo)
        self.value_edit = QLineEdit("1.0")
        self.value_edit.setToolTip("A number, nan, inf or -inf")
        form.addRow("Value", self.value_edit)
        self.write_mode = QComboBox()
        self.write_mode.addItems(["constant", "random"])
        self.write_mode.setToolTip("Write a block of the value, or uniform random numbers "
                                   "between 0 and the value")
        self.write_mode_label = QLabel("Data")
        form.addRow(self.write_mode_label, self.write_mode)
        v.addLayout(form)
        self.region_label = QLabel()
        v.addWidget(self.region_label)
        self.region_holder = QVBoxLayout()
        self.region_holder.setContentsMargins(0, 0, 0, 0)
        v.addLayout(self.region_holder)
        self.region_widget: QWidget | None = None
        self.region_spins: list[tuple[QSpinBox, QSpinBox]] = []
        self.hint = QLabel("Shift+drag on the view to pick a region.")
        self.hint.setStyleSheet("color: gray;")
        v.addWidget(self.hint)
        self.enqueue_button = QPushButton("Enqueue")
        self.enqueue_button.clicked.connect(self.enqueue_from_form)
        v.addWidget(self.enqueue_button)
        self.rebuild(session.shape)

    # ------------------------------------------------------------------ region
    def rebuild(self, shape: tuple[int, ...]) -> None:
        """Rows of spin boxes for ``shape`` (the old region kept when it still fits)."""
        old = self.region() if self.region_spins else ()
        if self.region_widget is not None:
            self.region_holder.removeWidget(self.region_widget)
            self.region_widget.hide()        # at once: a deferred delete may wait a while
            self.region_widget.deleteLater()
        self.region_widget = QWidget()
        grid = QGridLayout(self.region_widget)
        grid.setContentsMargins(0, 0, 0, 0)
        self.region_spins = []
        names = AXIS_NAMES.get(len(shape), ())
        for d, n in enumerate(shape):
            a, b = QSpinBox(), QSpinBox()
            a.setRange(0, n)
            b.setRange(0, n)
            a.setObjectName(f"region_start_{d}")
            b.setObjectName(f"region_stop_{d}")
            grid.addWidget(QLabel(f"{names[d]} (0–{n})"), d, 0)
            grid.addWidget(a, d, 1)
            grid.addWidget(b, d, 2)
            self.region_spins.append((a, b))
        self.region_holder.addWidget(self.region_widget)
        if old and len(old) == len(shape) and all(hi <= n for (_, hi), n in zip(old, shape)):
            self.set_region(old)
        else:
            self.set_region(tuple((n // 4, n // 4 + max(1, n // 4)) for n in shape))
        self._on_op_changed(self.op_combo.currentText())

    def region(self) -> tuple[tuple[int, int], ...]:
        return tuple((a.value(), b.value()) for a, b in self.region_spins)

    def set_region(self, region) -> None:
        for (a, b), (lo, hi) in zip(self.region_spins, region):
            a.setValue(int(lo))
            b.setValue(int(hi))

    def set_plane_region(self, box, z: int = 0) -> None:
        """A (rows, cols) box dragged on the view, as a region of the whole buffer."""
        (r0, r1), (c0, c1) = box
        nd = len(self.session.shape)
        if nd == 1:
            self.set_region(((c0, c1),))
        elif nd == 2:
            self.set_region(((r0, r1), (c0, c1)))
        else:
            self.set_region(((z, z + 1), (r0, r1), (c0, c1)))

    def _on_op_changed(self, op: str) -> None:
        is_write, is_set = op == "Write", op == "Set"
        self.write_mode.setVisible(is_write)
        self.write_mode_label.setVisible(is_write)
        for _, stop in self.region_spins:
            stop.setVisible(not is_set)     # Set needs only an index
        self.region_label.setText("Index per dimension:" if is_set
                                  else "Region (start, stop) per dimension:")

    # ------------------------------------------------------------------ the update
    def build_update(self):
        """The update the form describes (ValueError naming what is wrong)."""
        op = self.op_combo.currentText()
        value = parse_value(self.value_edit.text())
        region = self.region()
        if op == "Set":
            return Set(tuple(a for a, _ in region), value)
        for d, (a, b) in enumerate(region):
            if a == b:
                raise ValueError(f"the region is empty in dimension {d} (start {a} = stop {b}): "
                                 "it would change nothing")
        if op == "Write":
            shape = tuple(max(0, b - a) for a, b in region)
            if self.write_mode.currentText() == "random":
                data = np.random.default_rng().uniform(0.0, 1.0, shape).astype(np.float32)
                with np.errstate(all="ignore"):
                    data = (data * np.float32(value)).astype(np.float32)
            else:
                data = np.full(shape, value, dtype=np.float32)
            return Write(region, data)
        return {"Fill": Fill, "Add": Add, "Scale": Scale}[op](region, value)

    def enqueue_from_form(self) -> int | None:
        try:
            update = self.build_update()
        except ValueError as exc:
            self.session.say(f"enqueue: {exc}")
            return None
        seq = self.session.enqueue(update)
        if seq is not None:
            self.session.say(f"enqueued {type(update).__name__} as seq {seq}")
            self.sigUpdateEnqueued.emit(int(seq))
        return seq

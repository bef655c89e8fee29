"""``WatchDialog``: the Watchpoints dialog of the stepping toolbar (``ui.debug_controls``)
— pause before an update that writes an element, has an op, or comes from a producer —
and ``parse_elements``, which reads its element field."""

from __future__ import annotations

from typing import TYPE_CHECKING

from PyQt6.QtCore import Qt
from PyQt6.QtWidgets import (
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app.manager import OP_NAMES

if TYPE_CHECKING:
    from .debug_controls import DebugControls


def parse_elements(text: str) -> list[tuple[int, ...]]:
    """``"3, 7; 4, 8"`` -> ``[(3, 7), (4, 8)]`` (ValueError naming what is wrong)."""
    out = []
    for part in text.replace("(", " ").replace(")", " ").split(";"):
        part = part.strip()
        if not part:
            continue
        try:
            out.append(tuple(int(x) for x in part.replace(",", " ").split()))
        except ValueError:
            raise ValueError(f"not an element index: {part!r} (write e.g. 3, 7)") from None
    return out


class WatchDialog(QDialog):
    """Pause before an update that writes an element, has an op, or comes from a
    producer (any one of them). Prefilled with the current watch, or the hovered
    or selected element."""

    def __init__(self, controls: DebugControls, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Watchpoints")
        self.controls = controls
        elems, ops, producers = controls.watch
        form = QFormLayout()
        self.elements = QLineEdit()
        self.elements.setObjectName("watch_elements")
        self.elements.setPlaceholderText("3, 7   (several: 3, 7; 4, 8)")
        if elems:
            self.elements.setText("; ".join(", ".join(map(str, e)) for e in elems))
        elif controls.suggested_element() is not None:
            self.elements.setText(", ".join(map(str, controls.suggested_element())))
        form.addRow("writes element", self.elements)
        op_row = QHBoxLayout()
        self.op_checks = {}
        for name in OP_NAMES:
            box = QCheckBox(name)
            box.setChecked(name in ops)
            self.op_checks[name] = box
            op_row.addWidget(box)
        form.addRow("has op", op_row)
        self.producers = QListWidget()
        self.producers.setObjectName("watch_producers")
        self.producers.setMaximumHeight(110)
        for name in dict.fromkeys([*controls.columns.producers, *producers]):
            item = QListWidgetItem(name)
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            item.setCheckState(Qt.CheckState.Checked if name in producers
                               else Qt.CheckState.Unchecked)
            self.producers.addItem(item)
        form.addRow("comes from", self.producers)
        self.error = QLabel()
        self.error.setStyleSheet("color: #b00")
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok
                                   | QDialogButtonBox.StandardButton.Cancel
                                   | QDialogButtonBox.StandardButton.Reset)
        buttons.button(QDialogButtonBox.StandardButton.Ok).setText("Set watch")
        buttons.button(QDialogButtonBox.StandardButton.Reset).setText("Clear all")
        buttons.accepted.connect(self.apply)
        buttons.rejected.connect(self.reject)
        buttons.button(QDialogButtonBox.StandardButton.Reset).clicked.connect(self.clear)
        v = QVBoxLayout(self)
        v.addWidget(QLabel("The worker pauses itself before an update that matches any of these."))
        v.addLayout(form)
        v.addWidget(self.error)
        v.addWidget(buttons)

    def chosen(self):
        elems = parse_elements(self.elements.text())
        ops = [n for n, b in self.op_checks.items() if b.isChecked()]
        producers = [self.producers.item(i).text() for i in range(self.producers.count())
                     if self.producers.item(i).checkState() == Qt.CheckState.Checked]
        return elems, ops, producers

    def apply(self) -> None:
        try:
            problem = self.controls.set_watch(*self.chosen())
        except ValueError as exc:
            problem = str(exc)
        if problem:
            self.error.setText(problem)
            return
        self.accept()

    def clear(self) -> None:
        self.controls.set_watch([], [], [])
        self.accept()


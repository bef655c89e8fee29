"""``ControlPanel``: the dock that drives a ``Session`` and styles a ``BufferView``.

Backend toggle (contents kept), buffer shape, a form for each update type (its region
can also be Shift+dragged on the view), Enqueue / Synchronize, auto-sync and its
rate, scenarios, Pause / Step, and the view's colormap, levels and grid.
"""

from __future__ import annotations

import math
import re

import numpy as np
from PyQt6.QtCore import Qt, pyqtSignal
from PyQt6.QtWidgets import (
    QButtonGroup,
    QCheckBox,
    QComboBox,
    QDockWidget,
    QDoubleSpinBox,
    QFormLayout,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QRadioButton,
    QScrollArea,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from app import BACKENDS, Add, Fill, Scale, Set, Write
from app.scenarios import SCENARIOS
from app.updates import validate_shape

from . import colormaps
from .BufferView import BufferView
from .Session import Session, backend_problem

UPDATE_TYPES = ("Set", "Fill", "Add", "Scale", "Write")


def parse_shape(text: str) -> tuple[int, ...]:
    """``"512x512"``, ``"64"``, ``"8x64x64"`` (also ``,`` or ``×``) as a shape tuple."""
    parts = [p for p in re.split(r"[x×,\s]+", text.strip().lower()) if p]
    try:
        dims = tuple(int(p) for p in parts)
    except ValueError:
        raise ValueError(f"a shape is 1 to 3 sizes like 512x512, got {text!r}") from None
    return validate_shape(dims)


def parse_value(text: str) -> float:
    """A float, accepting ``nan``, ``inf``, ``-inf`` (and ``+inf``)."""
    t = text.strip().lower().replace("−", "-")
    try:
        return float(t)
    except ValueError:
        raise ValueError(f"value must be a number, nan, inf or -inf; got {text!r}") from None


class ControlPanel(QDockWidget):
    sigUpdateEnqueued = pyqtSignal(int)   # seq of an update enqueued from the form

    def __init__(self, session: Session, view: BufferView, parent: QWidget | None = None) -> None:
        super().__init__("Controls", parent)
        self.setObjectName("ControlPanel")
        self.session = session
        self.view = view
        self.setFeatures(QDockWidget.DockWidgetFeature.DockWidgetMovable
                         | QDockWidget.DockWidgetFeature.DockWidgetFloatable)
        body = QWidget()
        lay = QVBoxLayout(body)
        lay.addWidget(self._backend_box())
        lay.addWidget(self._scenario_box())
        lay.addWidget(self._update_box())
        lay.addWidget(self._sync_box())
        lay.addWidget(self._view_box())
        lay.addStretch(1)
        scroll = QScrollArea()
        scroll.setWidget(body)
        scroll.setWidgetResizable(True)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setWidget(scroll)
        self.setMinimumWidth(330)

        session.sigManagerChanged.connect(self._on_manager_changed)
        session.sigScenarioChanged.connect(self._on_scenario_changed)
        session.sigPausedChanged.connect(self._on_paused_changed)
        session.sigAutoSyncChanged.connect(self._on_autosync_changed)
        view.sigRegionSelected.connect(self.setPlaneRegion)
        view.sigLevelsChanged.connect(self._on_levels_changed)
        self._on_manager_changed()
        self._on_scenario_changed(session.scenario_name)

    # ------------------------------------------------------------------ sections
    def _backend_box(self) -> QGroupBox:
        box = QGroupBox("Buffer")
        form = QFormLayout(box)
        row = QHBoxLayout()
        self.backend_group = QButtonGroup(self)
        self.backend_buttons: dict[str, QRadioButton] = {}
        for name in BACKENDS:
            b = QRadioButton(name.upper())
            b.setObjectName(f"backend_{name}")
            problem = backend_problem(name)
            b.setToolTip(BACKENDS[name].title + (f"\nunavailable: {problem}" if problem else ""))
            self.backend_group.addButton(b)
            self.backend_buttons[name] = b
            row.addWidget(b)
            b.toggled.connect(lambda on, n=name: on and self._on_backend_clicked(n))
        row.addStretch(1)
        form.addRow("Backend", row)
        self.backend_note = QLabel()
        self.backend_note.setWordWrap(True)
        self.backend_note.setStyleSheet("color: #b58900;")
        form.addRow(self.backend_note)
        self.shape_edit = QLineEdit()
        self.shape_edit.setPlaceholderText("e.g. 512x512 or 8x64x64")
        self.shape_apply = QPushButton("Apply")
        self.shape_apply.setToolTip("Open a new, empty buffer of this shape (same backend)")
        self.shape_apply.clicked.connect(self.applyShape)
        self.shape_edit.returnPressed.connect(self.applyShape)
        srow = QHBoxLayout()
        srow.addWidget(self.shape_edit, 1)
        srow.addWidget(self.shape_apply)
        form.addRow("Shape", srow)
        return box

    def _scenario_box(self) -> QGroupBox:
        box = QGroupBox("Scenario")
        form = QFormLayout(box)
        self.scenario_combo = QComboBox()
        for name, sc in SCENARIOS.items():
            self.scenario_combo.addItem(name)
            self.scenario_combo.setItemData(self.scenario_combo.count() - 1, sc.description,
                                            Qt.ItemDataRole.ToolTipRole)
        self.scenario_combo.currentTextChanged.connect(self._on_scenario_picked)
        self.scenario_button = QPushButton("Start")
        self.scenario_button.clicked.connect(self._on_scenario_button)
        row = QHBoxLayout()
        row.addWidget(self.scenario_combo, 1)
        row.addWidget(self.scenario_button)
        form.addRow("Producers", row)
        self.scenario_rate = QDoubleSpinBox()
        self.scenario_rate.setRange(0.5, 2000.0)
        self.scenario_rate.setDecimals(1)
        self.scenario_rate.setSuffix(" ticks/s")
        self.scenario_rate.setToolTip("Ticks per second of each producer thread")
        self.scenario_rate.editingFinished.connect(self._on_scenario_rate)
        form.addRow("Rate", self.scenario_rate)
        self.scenario_desc = QLabel()
        self.scenario_desc.setWordWrap(True)
        form.addRow(self.scenario_desc)
        self._on_scenario_picked(self.scenario_combo.currentText())
        return box

    def _update_box(self) -> QGroupBox:
        box = QGroupBox("Enqueue an update")
        v = QVBoxLayout(box)
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
        self.region_grid = QGridLayout()
        self.region_label = QLabel("Region (start, stop) per dimension:")
        v.addWidget(self.region_label)
        v.addLayout(self.region_grid)
        self.region_spins: list[tuple[QSpinBox, QSpinBox]] = []
        hint = QLabel("Shift+drag on the view to pick a region.")
        hint.setStyleSheet("color: gray;")
        v.addWidget(hint)
        self.enqueue_button = QPushButton("Enqueue")
        self.enqueue_button.clicked.connect(self.enqueueFromForm)
        v.addWidget(self.enqueue_button)
        self._on_op_changed(self.op_combo.currentText())
        return box

    def _sync_box(self) -> QGroupBox:
        box = QGroupBox("Synchronization")
        grid = QGridLayout(box)
        self.sync_button = QPushButton("Synchronize")
        self.sync_button.clicked.connect(lambda: self.session.synchronize())
        grid.addWidget(self.sync_button, 0, 0, 1, 2)
        self.autosync_check = QCheckBox("Auto-sync")
        self.autosync_check.setChecked(self.session.autosync)
        self.autosync_check.toggled.connect(
            lambda on: self.session.set_autosync(on, self.autosync_rate.value()))
        grid.addWidget(self.autosync_check, 1, 0)
        self.autosync_rate = QDoubleSpinBox()
        self.autosync_rate.setRange(0.5, 1000.0)
        self.autosync_rate.setDecimals(1)
        self.autosync_rate.setSuffix(" Hz")
        self.autosync_rate.setValue(self.session.autosync_hz)
        self.autosync_rate.editingFinished.connect(
            lambda: self.session.set_autosync(self.autosync_check.isChecked(),
                                              self.autosync_rate.value()))
        grid.addWidget(self.autosync_rate, 1, 1)
        self.pause_button = QPushButton("Pause")
        self.pause_button.setCheckable(True)
        self.pause_button.toggled.connect(self.session.set_paused)
        grid.addWidget(self.pause_button, 2, 0)
        step_row = QHBoxLayout()
        self.step_button = QPushButton("Step")
        self.step_button.setToolTip("Apply exactly this many queued element updates")
        self.step_count = QSpinBox()
        self.step_count.setRange(1, 1_000_000)
        self.step_button.clicked.connect(lambda: self.session.step(self.step_count.value()))
        step_row.addWidget(self.step_button)
        step_row.addWidget(self.step_count)
        grid.addLayout(step_row, 2, 1)
        self._on_paused_changed(self.session.paused)
        return box

    def _view_box(self) -> QGroupBox:
        box = QGroupBox("View")
        form = QFormLayout(box)
        self.cmap_combo = QComboBox()
        self.cmap_combo.addItems(colormaps.COLORMAPS)
        self.cmap_combo.setCurrentText(self.view.colormap())
        self.cmap_combo.currentTextChanged.connect(self.view.setColormap)
        form.addRow("Colormap", self.cmap_combo)
        self.auto_levels = QCheckBox("exact min/max of each epoch")
        self.auto_levels.setChecked(self.view.autoLevels())
        self.auto_levels.toggled.connect(self._on_auto_levels)
        form.addRow("Auto levels", self.auto_levels)
        self.level_lo = QLineEdit("0")
        self.level_hi = QLineEdit("1")
        for e in (self.level_lo, self.level_hi):
            e.editingFinished.connect(self.applyLevels)
        row = QHBoxLayout()
        row.addWidget(self.level_lo)
        row.addWidget(QLabel("to"))
        row.addWidget(self.level_hi)
        form.addRow("Levels", row)
        self.grid_check = QCheckBox("texel grid when zoomed in")
        self.grid_check.setChecked(True)
        self.grid_check.toggled.connect(self.view.setGridVisible)
        form.addRow("Grid", self.grid_check)
        self.fit_button = QPushButton("Fit to window")
        self.fit_button.clicked.connect(self.view.fit)
        form.addRow(self.fit_button)
        return box

    # ------------------------------------------------------------------ actions
    def applyShape(self) -> bool:
        try:
            shape = parse_shape(self.shape_edit.text())
        except ValueError as exc:
            self.session.say(f"shape: {exc}")
            return False
        return self.session.open(self.session.backend or "c", shape)

    def region(self) -> tuple[tuple[int, int], ...]:
        return tuple((a.value(), b.value()) for a, b in self.region_spins)

    def setRegion(self, region) -> None:
        for (a, b), (lo, hi) in zip(self.region_spins, region):
            a.setValue(int(lo))
            b.setValue(int(hi))

    def setPlaneRegion(self, box) -> None:
        """A (rows, cols) box dragged on the view, as a region of the whole buffer."""
        (r0, r1), (c0, c1) = box
        nd = len(self.session.shape)
        if nd == 1:
            self.setRegion(((c0, c1),))
        elif nd == 2:
            self.setRegion(((r0, r1), (c0, c1)))
        else:
            z = self.view.slice()
            self.setRegion(((z, z + 1), (r0, r1), (c0, c1)))

    def buildUpdate(self):
        """The update the form describes (ValueError naming what is wrong)."""
        op = self.op_combo.currentText()
        value = parse_value(self.value_edit.text())
        region = self.region()
        if op == "Set":
            return Set(tuple(a for a, _ in region), value)
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

    def enqueueFromForm(self) -> int | None:
        try:
            update = self.buildUpdate()
        except ValueError as exc:
            self.session.say(f"enqueue: {exc}")
            return None
        seq = self.session.enqueue(update)
        if seq is not None:
            self.session.say(f"enqueued {type(update).__name__} as seq {seq}")
            self.sigUpdateEnqueued.emit(int(seq))
        return seq

    def applyLevels(self) -> None:
        try:
            lo = parse_value(self.level_lo.text())
            hi = parse_value(self.level_hi.text())
        except ValueError as exc:
            self.session.say(f"levels: {exc}")
            return
        if not (math.isfinite(lo) and math.isfinite(hi)):
            self.session.say("levels must be finite numbers")
            return
        if self.auto_levels.isChecked():
            self.auto_levels.blockSignals(True)
            self.auto_levels.setChecked(False)
            self.auto_levels.blockSignals(False)
        self.view.setLevels(lo, hi)

    # ------------------------------------------------------------------ session events
    def _on_backend_clicked(self, name: str) -> None:
        if name == self.session.backend:
            return
        if not self.session.switch_backend(name):
            self._sync_backend_buttons()

    def _sync_backend_buttons(self) -> None:
        b = self.backend_buttons.get(self.session.backend)
        if b is not None and not b.isChecked():
            b.blockSignals(True)
            b.setChecked(True)
            b.blockSignals(False)

    def _on_manager_changed(self) -> None:
        self._sync_backend_buttons()
        notes = [f"{n.upper()} unavailable: {p}" for n in BACKENDS
                 if (p := backend_problem(n)) is not None]
        for n, b in self.backend_buttons.items():
            b.setEnabled(backend_problem(n) is None or n == self.session.backend)
        self.backend_note.setText("\n".join(notes))
        self.backend_note.setVisible(bool(notes))
        shape = self.session.shape
        if shape:
            self.shape_edit.setText("x".join(str(n) for n in shape))
        self._rebuild_region(shape)

    def _rebuild_region(self, shape: tuple[int, ...]) -> None:
        old = self.region() if self.region_spins else ()
        while self.region_grid.count():
            item = self.region_grid.takeAt(0)
            if item.widget() is not None:
                item.widget().deleteLater()
        self.region_spins = []
        names = {1: ("col",), 2: ("row", "col"), 3: ("z", "row", "col")}.get(len(shape), ())
        for d, n in enumerate(shape):
            a, b = QSpinBox(), QSpinBox()
            a.setRange(0, n)
            b.setRange(0, n)
            a.setObjectName(f"region_start_{d}")
            b.setObjectName(f"region_stop_{d}")
            self.region_grid.addWidget(QLabel(f"{names[d]} (0–{n})"), d, 0)
            self.region_grid.addWidget(a, d, 1)
            self.region_grid.addWidget(b, d, 2)
            self.region_spins.append((a, b))
        if old and len(old) == len(shape):
            self.setRegion(old)
        else:
            self.setRegion(tuple((n // 4, n // 4 + max(1, n // 4)) for n in shape))

    def _on_op_changed(self, op: str) -> None:
        is_write = op == "Write"
        self.write_mode.setVisible(is_write)
        self.write_mode_label.setVisible(is_write)
        self.region_label.setText("Index (the start of each dimension):" if op == "Set"
                                  else "Region (start, stop) per dimension:")

    def _on_scenario_picked(self, name: str) -> None:
        sc = SCENARIOS.get(name)
        if sc is not None:
            self.scenario_desc.setText(
                f"{sc.description} Default shape {'x'.join(map(str, sc.shape))}; "
                f"{sc.producers} producer thread(s).")
            if name != self.session.scenario_name:
                self.scenario_rate.setValue(sc.rate)
        if hasattr(self, "scenario_button"):
            running = bool(name) and name == self.session.scenario_name
            self.scenario_button.setText("Stop" if running else "Start")

    def _on_scenario_button(self) -> None:
        name = self.scenario_combo.currentText()
        if self.session.scenario_name == name:
            self.session.stop_scenario()
        else:
            self.session.start_scenario(name, self.scenario_rate.value())

    def _on_scenario_rate(self) -> None:
        if self.session.scenario_name:
            self.session.start_scenario(self.session.scenario_name, self.scenario_rate.value())

    def _on_scenario_changed(self, name: str) -> None:
        if name:
            self.scenario_combo.blockSignals(True)
            self.scenario_combo.setCurrentText(name)
            self.scenario_combo.blockSignals(False)
            self._on_scenario_picked(name)
            rate = self.session.scenario_rate or SCENARIOS[name].rate
            self.scenario_rate.setValue(rate)
        running = bool(name) and name == self.scenario_combo.currentText()
        self.scenario_button.setText("Stop" if running else "Start")

    def _on_paused_changed(self, paused: bool) -> None:
        self.pause_button.blockSignals(True)
        self.pause_button.setChecked(paused)
        self.pause_button.blockSignals(False)
        self.pause_button.setText("Resume" if paused else "Pause")
        self.step_button.setEnabled(paused)
        self.step_count.setEnabled(paused)

    def _on_autosync_changed(self, on: bool, hz: float) -> None:
        self.autosync_check.blockSignals(True)
        self.autosync_check.setChecked(on)
        self.autosync_check.blockSignals(False)
        self.autosync_rate.setValue(hz)

    def _on_auto_levels(self, on: bool) -> None:
        if on:
            self.view.setAutoLevels(True)
        else:
            self.applyLevels()

    def _on_levels_changed(self, lo: float, hi: float) -> None:
        if self.view.autoLevels():
            self.level_lo.setText(f"{lo:.6g}")
            self.level_hi.setText(f"{hi:.6g}")

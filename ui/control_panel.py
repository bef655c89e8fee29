"""``ControlPanel``: the dock that drives a ``Session`` and a ``DisplayState``.

Backend toggle (contents kept), buffer shape, the update form (``UpdateForm``),
Synchronize, auto-sync and its rate, scenarios, Pause / Step, and the display
settings: colormap, levels, grid. The panel holds no state of its own: each
control writes to the session or the display state, and follows their signals
(a control already showing the new value is left alone, so no ``blockSignals``).
"""

from __future__ import annotations

import argparse

from PyQt6.QtCore import Qt
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

from app import BACKENDS
from app.cli import parse_shape as _cli_parse_shape
from app.scenarios import SCENARIOS
from app.updates import validate_shape

from . import colormaps
from .display_state import DisplayState
from .session import Session, backend_problem
from .update_form import UpdateForm, parse_value


def parse_shape(text: str) -> tuple[int, ...]:
    """``"512x512"``, ``"8x64x64"`` as a shape tuple (the CLI's parser), checked
    against the manager's limits; ValueError naming what is wrong."""
    try:
        shape = _cli_parse_shape(text.strip())
    except argparse.ArgumentTypeError as exc:
        raise ValueError(str(exc)) from None
    return validate_shape(shape)


def shape_text(shape: tuple[int, ...]) -> str:
    return "x".join(str(n) for n in shape)


class ControlPanel(QDockWidget):
    def __init__(self, session: Session, state: DisplayState, parent: QWidget | None = None,
                 ) -> None:
        super().__init__("Controls", parent)
        self.setObjectName("ControlPanel")
        self.session = session
        self.state = state
        self.setFeatures(QDockWidget.DockWidgetFeature.DockWidgetMovable
                         | QDockWidget.DockWidgetFeature.DockWidgetFloatable)
        body = QWidget()
        lay = QVBoxLayout(body)
        lay.addWidget(self._backend_box())
        self.scenario_box = self._scenario_box()
        lay.addWidget(self.scenario_box)
        self.form = UpdateForm(session)
        lay.addWidget(self.form)
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
        state.sigColormapChanged.connect(self._on_colormap_changed)
        state.sigLevelsChanged.connect(self._on_levels_changed)
        state.sigGridChanged.connect(self._on_grid_changed)
        self._on_manager_changed()
        self._on_scenario_changed(session.scenario_name)
        self._on_levels_changed(*state.levels, state.auto_levels)

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
            b.clicked.connect(lambda _c, n=name: self._on_backend_clicked(n))
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
        self.shape_apply.clicked.connect(self.apply_shape)
        self.shape_edit.returnPressed.connect(self.apply_shape)
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
        self.scenario_combo.currentTextChanged.connect(self._on_scenario_picked)
        self._on_scenario_picked(self.scenario_combo.currentText())
        return box

    def _sync_box(self) -> QGroupBox:
        box = QGroupBox("Synchronization")
        grid = QGridLayout(box)
        self.sync_button = QPushButton("Synchronize")
        self.sync_button.setToolTip("Runs off the GUI thread: the view keeps drawing while it waits")
        self.sync_button.clicked.connect(lambda: self.session.synchronize())
        grid.addWidget(self.sync_button, 0, 0, 1, 2)
        self.autosync_check = QCheckBox("Auto-sync")
        self.autosync_check.setChecked(self.session.autosync)
        self.autosync_check.clicked.connect(
            lambda on: self.session.set_autosync(on, self.autosync_rate.value()))
        grid.addWidget(self.autosync_check, 1, 0)
        self.autosync_rate = QDoubleSpinBox()
        self.autosync_rate.setRange(0.5, 1000.0)
        self.autosync_rate.setDecimals(1)
        self.autosync_rate.setSuffix(" Hz")
        self.autosync_rate.setValue(self.session.autosync_hz)
        self.autosync_rate.editingFinished.connect(
            lambda: self.session.set_autosync(self.session.autosync, self.autosync_rate.value()))
        grid.addWidget(self.autosync_rate, 1, 1)
        self.pause_button = QPushButton("Pause")
        self.pause_button.setCheckable(True)
        self.pause_button.clicked.connect(self.session.set_paused)
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
        st = self.state
        self.cmap_combo = QComboBox()
        self.cmap_combo.addItems(colormaps.COLORMAPS)
        self.cmap_combo.setCurrentText(st.colormap)
        self.cmap_combo.activated.connect(
            lambda _i: st.set_colormap(self.cmap_combo.currentText()))
        form.addRow("Colormap", self.cmap_combo)
        self.auto_levels = QCheckBox("exact min/max of each epoch")
        self.auto_levels.setChecked(st.auto_levels)
        self.auto_levels.clicked.connect(self._on_auto_levels_clicked)
        form.addRow("Auto levels", self.auto_levels)
        self.level_lo = QLineEdit("0")
        self.level_hi = QLineEdit("1")
        for e in (self.level_lo, self.level_hi):
            e.returnPressed.connect(self.apply_levels)
        self.levels_apply = QPushButton("Set")
        self.levels_apply.setToolTip("Fixed levels (turns auto levels off)")
        self.levels_apply.clicked.connect(self.apply_levels)
        row = QHBoxLayout()
        row.addWidget(self.level_lo)
        row.addWidget(QLabel("to"))
        row.addWidget(self.level_hi)
        row.addWidget(self.levels_apply)
        form.addRow("Levels", row)
        self.grid_check = QCheckBox("texel grid when zoomed in")
        self.grid_check.setChecked(st.grid)
        self.grid_check.clicked.connect(st.set_grid)
        form.addRow("Grid", self.grid_check)
        return box

    # ------------------------------------------------------------------ actions
    def apply_shape(self) -> bool:
        """Open a buffer of the shape typed; a rejected shape reverts the field."""
        try:
            shape = parse_shape(self.shape_edit.text())
        except ValueError as exc:
            self.session.say(f"shape: {exc}")
            self.shape_edit.setText(shape_text(self.session.shape))
            return False
        ok = self.session.open(self.session.backend or "c", shape)
        if not ok:
            self.shape_edit.setText(shape_text(self.session.shape))
        return ok

    def apply_levels(self) -> bool:
        """Fixed levels from the two fields; refused (with a message, fields
        restored) when they are not numbers, not finite, or lo >= hi."""
        try:
            self.state.set_levels(parse_value(self.level_lo.text()),
                                  parse_value(self.level_hi.text()))
            return True
        except ValueError as exc:
            self.session.say(f"levels refused: {exc}")
            self._on_levels_changed(*self.state.levels, self.state.auto_levels)
            return False

    def _on_auto_levels_clicked(self, on: bool) -> None:
        if on:
            self.state.set_auto_levels(True)
        elif not self.apply_levels():
            self.auto_levels.setChecked(self.state.auto_levels)

    def _on_backend_clicked(self, name: str) -> None:
        if name != self.session.backend and not self.session.switch_backend(name):
            self._show_backend()

    def _on_scenario_button(self) -> None:
        name = self.scenario_combo.currentText()
        if self.session.scenario_name == name:
            self.session.stop_scenario()
        else:
            self.session.start_scenario(name, self.scenario_rate.value(), own_shape=True)

    def _on_scenario_rate(self) -> None:
        if self.session.scenario_name:
            self.session.start_scenario(self.session.scenario_name, self.scenario_rate.value())

    # ------------------------------------------------------------------ observers
    def _show_backend(self) -> None:
        b = self.backend_buttons.get(self.session.backend)
        if b is not None and not b.isChecked():
            b.setChecked(True)

    def _on_manager_changed(self) -> None:
        self._show_backend()
        notes = [f"{n.upper()} unavailable: {p}" for n in BACKENDS
                 if (p := backend_problem(n)) is not None]
        for n, b in self.backend_buttons.items():
            b.setEnabled(backend_problem(n) is None or n == self.session.backend)
        self.backend_note.setText("\n".join(notes))
        self.backend_note.setVisible(bool(notes))
        if self.session.shape:
            self.shape_edit.setText(shape_text(self.session.shape))
        self.form.rebuild(self.session.shape)
        m = self.session.manager
        writable = m is None or not m.capabilities.read_only
        for box in (self.scenario_box, self.form):     # an attached program: read-only
            box.setEnabled(writable)
            box.setToolTip("" if writable else
                           "read-only: the attached program's own producers write its buffer")

    def _on_scenario_picked(self, name: str) -> None:
        sc = SCENARIOS.get(name)
        if sc is not None:
            self.scenario_desc.setText(
                f"{sc.description} Shape {shape_text(sc.shape)} (a new buffer when it "
                f"differs); {sc.producers} producer thread(s).")
            if name != self.session.scenario_name:
                self.scenario_rate.setValue(sc.rate)
        running = bool(name) and name == self.session.scenario_name
        self.scenario_button.setText("Stop" if running else "Start")

    def _on_scenario_changed(self, name: str) -> None:
        if name and self.scenario_combo.currentText() != name:
            self.scenario_combo.setCurrentText(name)   # _on_scenario_picked follows
        if name:
            self.scenario_rate.setValue(self.session.scenario_rate or SCENARIOS[name].rate)
        running = bool(name) and name == self.scenario_combo.currentText()
        self.scenario_button.setText("Stop" if running else "Start")

    def _on_paused_changed(self, paused: bool) -> None:
        self.pause_button.setChecked(paused)
        self.pause_button.setText("Resume" if paused else "Pause")
        self.step_button.setEnabled(paused)
        self.step_count.setEnabled(paused)

    def _on_autosync_changed(self, on: bool, hz: float) -> None:
        self.autosync_check.setChecked(on)
        self.autosync_rate.setValue(hz)

    def _on_colormap_changed(self, name: str) -> None:
        self.cmap_combo.setCurrentText(name)

    def _on_levels_changed(self, lo: float, hi: float, auto: bool) -> None:
        self.auto_levels.setChecked(auto)
        self.level_lo.setText(f"{lo:.6g}")
        self.level_hi.setText(f"{hi:.6g}")

    def _on_grid_changed(self, on: bool) -> None:
        self.grid_check.setChecked(on)

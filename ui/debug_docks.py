"""``install_debug_docks(window)``: adds the update log, the timeline and the stepping
toolbar (``DebugControls``) to a ``MainWindow``, wired to each other, with a Debug menu;
and ``link_log_and_timeline``, their one shared selection."""

from __future__ import annotations

from PyQt6.QtCore import Qt
from PyQt6.QtWidgets import QMenu

from .history_columns import HistoryColumns


def link_log_and_timeline(log, timeline) -> None:
    """One selection for both: a row selected in the log is marked on the timeline;
    a mark clicked on the timeline selects its row in the log."""

    def log_selected(seq: int) -> None:
        timeline.select_row(log.columns.history.row_index(seq))

    log.sigSeqSelected.connect(log_selected)
    timeline.sigSeqClicked.connect(lambda seq: log.select_seq(seq, emit=False))


def install_debug_docks(window):
    """Add the update log, the timeline and the stepping toolbar to ``window`` (a
    ``MainWindow``), wired to each other, with a Debug menu; returns the controls.
    ``window.history_feed`` is made when the window has none."""
    from .debug_controls import DebugControls
    from .history_feed import HistoryFeed
    from .timeline import TimelineDock
    from .update_log import UpdateLogDock

    feed = getattr(window, "history_feed", None)
    if feed is None:
        feed = window.history_feed = HistoryFeed(window.session, window)
    columns = HistoryColumns(feed, window)
    session = window.session
    log = UpdateLogDock(columns, window.state, lambda: len(session.shape) or 2, window)
    timeline = TimelineDock(columns, window)
    window.addDockWidget(Qt.DockWidgetArea.BottomDockWidgetArea, log)
    window.addDockWidget(Qt.DockWidgetArea.BottomDockWidgetArea, timeline)
    controls = DebugControls(session, columns, log, window.view, window.state, window)
    window.addToolBar(Qt.ToolBarArea.TopToolBarArea, controls)

    link_log_and_timeline(log, timeline.view)
    def hovered(index) -> None:
        if index is not None:
            controls.hovered = tuple(index)

    window.view.sigHover.connect(hovered)
    step = getattr(window, "step_action", None)
    if step is not None:
        step.triggered.connect(controls.note_step)

    bar = window.menuBar()
    help_menu = next((a for a in bar.actions() if a.text() == "&Help"), None)
    menu = QMenu("&Debug", bar)
    if help_menu is not None:
        bar.insertMenu(help_menu, menu)
    else:
        bar.addMenu(menu)
    for a in (controls.resume_action, controls.pause_action, controls.step_action,
              controls.run_seq_action, controls.run_epoch_action):
        menu.addAction(a)
    menu.addSeparator()
    menu.addAction(controls.watch_action)
    menu.addAction(controls.back_action)
    menu.addSeparator()
    menu.addAction(log.toggleViewAction())
    menu.addAction(timeline.toggleViewAction())
    window.update_log, window.timeline, window.debug_controls = log, timeline, controls
    window.history_columns = columns
    return controls

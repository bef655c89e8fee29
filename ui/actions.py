"""``make_action``: the one way the UI builds a ``QAction`` — text, slot, shortcuts
(each key sequence once), tooltip — for the window's menus (``ui.main_window``) and
the stepping toolbar (``ui.debug_controls``)."""

from __future__ import annotations

from collections.abc import Callable

from PyQt6.QtCore import QObject, Qt
from PyQt6.QtGui import QAction, QKeySequence


def make_action(parent: QObject, text: str, slot: Callable, *keys: str | QKeySequence,
                tip: str = "", add_to=None) -> QAction:
    """A ``QAction`` owned by ``parent`` that calls ``slot``, with shortcuts ``keys``
    (window-wide; the same sequence twice would make the shortcut ambiguous, so it is
    kept once) and the tooltip ``tip`` naming the first key; added to ``add_to`` (a
    menu or a toolbar) when given."""
    act = QAction(text, parent)
    seqs: dict[str, QKeySequence] = {}
    for k in keys:
        seq = k if isinstance(k, QKeySequence) else QKeySequence(k)
        seqs.setdefault(seq.toString(), seq)
    if seqs:
        act.setShortcuts(list(seqs.values()))
        act.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
    if tip:
        first = keys[0] if keys else None
        act.setToolTip(f"{tip} ({first if isinstance(first, str) else first.toString()})"
                       if first is not None else tip)
    act.triggered.connect(slot)
    if add_to is not None:
        add_to.addAction(act)
    return act

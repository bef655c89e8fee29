"""``MessageLog``: a dock listing every status message with its time, newest last.

It reads the status bar's history when made and follows its ``sigMessage``; the
status bar's "Log" button and View ▸ Message log show it.
"""

from __future__ import annotations

import time

from PyQt6.QtCore import Qt
from PyQt6.QtWidgets import QDockWidget, QListWidget, QListWidgetItem, QWidget

from .status_bar import StatusBar


def stamp(t: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(t)) + f".{int(t * 1000) % 1000:03d}"


class MessageLog(QDockWidget):
    def __init__(self, statusbar: StatusBar, parent: QWidget | None = None) -> None:
        super().__init__("Message log", parent)
        self.setObjectName("MessageLog")
        self.list = QListWidget()
        self.list.setWordWrap(True)
        self.list.setObjectName("message_list")
        self.setWidget(self.list)
        for t, text in statusbar.history:
            self.add(t, text)
        statusbar.sigMessage.connect(self.add)

    def add(self, t: float, text: str) -> None:
        item = QListWidgetItem(f"{stamp(t)}  {text}")
        item.setToolTip(text)
        self.list.addItem(item)
        if self.list.count() > 10_000:
            self.list.takeItem(0)
        self.list.scrollToBottom()

    def messages(self) -> list[str]:
        """Every line listed (time and text)."""
        return [self.list.item(i).text() for i in range(self.list.count())]

    def show_log(self) -> None:
        self.show()
        self.raise_()
        self.list.setFocus(Qt.FocusReason.OtherFocusReason)

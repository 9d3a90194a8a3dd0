"""The window's status bar as two channels: messages on the left, the pointer readout on the right.

Errors stay until the user dismisses them (the "x" button, or Esc) instead of being overwritten
by the next mouse move or info message; info messages time out and never replace a pending error;
the pointer readout (position, class under the cursor, dropped requests) has its own permanent
label, so hovering never hides anything.
"""
from typing import Optional

from PyQt6.QtWidgets import QLabel, QStatusBar, QToolButton


class StatusLine:
    """Routes the window's messages to ``bar`` (a QMainWindow's statusBar())."""

    def __init__(self, bar: QStatusBar):
        self.bar = bar
        self.pending_error: Optional[str] = None
        self.pointer = QLabel()
        self.dismiss_button = QToolButton()
        self.dismiss_button.setText("\u2715")
        self.dismiss_button.setToolTip("Dismiss this message (Esc)")
        self.dismiss_button.setAutoRaise(True)
        self.dismiss_button.clicked.connect(self.dismiss)
        self.dismiss_button.setVisible(False)
        bar.addWidget(self.dismiss_button)  # left, before the message
        bar.addPermanentWidget(self.pointer)

    def info(self, message: str, timeout_ms: int = 0) -> None:
        """A passing message; it waits behind a pending error instead of hiding it."""
        if self.pending_error is None:
            self.bar.showMessage(message, timeout_ms)

    def error(self, message: str) -> None:
        """An error (or a bad-output warning): shown until dismissed."""
        self.pending_error = message
        self.bar.showMessage(message)
        self.dismiss_button.setVisible(True)

    def dismiss(self) -> None:
        self.pending_error = None
        self.bar.clearMessage()
        self.dismiss_button.setVisible(False)

    def show_pointer(self, text: str) -> None:
        self.pointer.setText(text)

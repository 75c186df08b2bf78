"""A failed job, shown where the user looks: a banner above the pages that stays until it is dismissed.

The status bar forgets a message after a few seconds and cuts long ones; a job the user started that fails
needs its whole reason on screen and a next step.
"""

from __future__ import annotations

import html

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QPushButton, QVBoxLayout

from .jobs_panel import job_title

AGAIN = {
    "process": "Press Process again once it is fixed; finished work is kept.",
    "scan": "Check that the folder is reachable, then press Process again.",
    "train": "Press Train on the concept page again once it is fixed; training resumes from its last checkpoint.",
    "caption": "Press Process again once it is fixed; photos already captioned are kept.",
    "detect": "Press Process again once it is fixed.",
}


def advice(kind: str, error: str) -> str:
    """What to do next. Messages that already say it (a missing model names its download) need nothing more."""
    lowered = error.lower()
    if any(hint in lowered for hint in ("download", "choose ", "run it again", "try again")):
        return "See the Jobs panel for every job's state."
    return AGAIN.get(kind, "Start it again once it is fixed; see the Jobs panel for every job's state.")


class ErrorBanner(QFrame):
    """The latest failed jobs, each with its full reason; hidden when there are none."""

    showJobs = Signal()

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setObjectName("errorBanner")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.setStyleSheet("#errorBanner { background: #fdecea; border: 1px solid #e0a39c; }"
                           "#errorBanner QLabel { color: #611a15; }")
        self.failures: dict[object, tuple[str, str, str]] = {}  # key -> (title, reason, next step), oldest first
        self.title = QLabel()
        self.title.setObjectName("errorTitle")
        self.title.setTextFormat(Qt.TextFormat.RichText)
        self.text = QLabel()
        self.text.setTextFormat(Qt.TextFormat.PlainText)  # "<Alice>" in a reason is text, not a tag
        self.text.setWordWrap(True)  # the whole reason, never cut off
        self.text.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.next_step = QLabel()
        self.next_step.setTextFormat(Qt.TextFormat.PlainText)
        self.next_step.setWordWrap(True)
        self.jobs_button = QPushButton("Show jobs")
        self.jobs_button.clicked.connect(self.showJobs)
        self.dismiss_button = QPushButton("Dismiss")
        self.dismiss_button.clicked.connect(self.dismiss)
        words = QVBoxLayout()
        words.addWidget(self.title)
        words.addWidget(self.text)
        words.addWidget(self.next_step)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(12, 8, 8, 8)
        layout.addLayout(words, 1)
        layout.addWidget(self.jobs_button, 0, Qt.AlignmentFlag.AlignTop)
        layout.addWidget(self.dismiss_button, 0, Qt.AlignmentFlag.AlignTop)
        self.hide()

    def job_failed(self, job_id: int, kind: str, error: str) -> None:
        error = error.strip() or "it stopped without saying why"
        self.failures[("job", job_id)] = (f"{job_title(kind)} failed", error, advice(kind, error))
        self._show()

    def action_failed(self, title: str, error: str, next_step: str) -> None:
        """Something the user started outside the job queue (a concept pack import, an export)."""
        self.failures[("action", len(self.failures), title, error)] = (title, error, next_step)
        self._show()

    def dismiss(self) -> None:
        """Forget the shown failure; an older one still waiting comes next."""
        if self.failures:
            self.failures.pop(next(reversed(self.failures)))
        self._show()

    def _show(self) -> None:
        if not self.failures:
            self.hide()
            return
        title, error, next_step = self.failures[next(reversed(self.failures))]
        more = len(self.failures) - 1
        self.title.setText(f"<b>{html.escape(title)}</b>" + (f" (and {more} more)" if more else ""))
        self.text.setText(error)
        self.next_step.setText(next_step)
        self.show()

"""Jobs: a panel listing every job with progress, ETA, pause / resume / cancel, and a status-bar indicator."""

from __future__ import annotations

import re

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from . import theme
from .widgets import format_eta, muted
from .workers import JobView

TITLES = {
    "process": "Processing the library",
    "scan": "Scanning folders",
    "index": "Finding faces and image features",
    "cluster": "Grouping faces",
    "detect": "Finding your people, pets and things",
    "train": "Training a concept",
    "caption": "Writing personalized captions",
}
FINISHED = ("done", "failed", "cancelled")
FOLDERS = re.compile(r"(?:[A-Za-z]:)?[\\/](?:[^\\/\n]+[\\/])+")


def job_title(kind: str) -> str:
    return TITLES.get(kind, kind.capitalize())


class JobRow(QFrame):
    """One job: title, message, progress bar, ETA and its buttons."""

    def __init__(self, view: JobView, queue, bridge, parent=None):
        super().__init__(parent)
        self.setObjectName("jobRow")
        self.queue, self.bridge, self.job_id = queue, bridge, view.id
        self.title = QLabel(job_title(view.kind))
        self.title.setObjectName("jobTitle")
        self.message = muted()
        self.message.setTextFormat(Qt.TextFormat.PlainText)  # "<Alice>" in a message is text, not a tag
        self.message.setWordWrap(False)
        self.bar = QProgressBar()
        self.bar.setRange(0, 1000)
        self.bar.setTextVisible(False)
        self.bar.setFixedHeight(6)
        self.eta = muted()
        self.pause_button = QToolButton()
        self.pause_button.setToolTip("Pause")
        self.pause_button.setIcon(theme.icon("pause"))
        self.pause_button.clicked.connect(self.toggle_pause)
        self.cancel_button = QToolButton()
        self.cancel_button.setIcon(theme.icon("cancel"))
        self.cancel_button.setToolTip("Cancel")
        self.cancel_button.clicked.connect(self.cancel)
        text = QVBoxLayout()
        heading = QHBoxLayout()
        heading.addWidget(self.title)
        heading.addStretch(1)
        heading.addWidget(self.eta)
        text.addLayout(heading)
        text.addWidget(self.bar)
        text.addWidget(self.message)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(12, 8, 8, 8)
        layout.addLayout(text, 1)
        layout.addWidget(self.pause_button)
        layout.addWidget(self.cancel_button)
        self.update_view(view)

    def _job(self):
        return self.queue.jobs.get(self.job_id)

    def toggle_pause(self) -> None:
        job = self._job()
        if job is None:
            return
        if job.status.state == "paused":
            job.resume()
        else:
            job.pause()
        self.bridge.announce(job.status)  # every view shows it now, not at the job's next step

    def cancel(self) -> None:
        job = self._job()
        if job is not None:
            job.cancel()
            self.message.setText("cancelling…")

    def update_view(self, view: JobView) -> None:
        self.view = view
        self.bar.setValue(int(view.fraction * 1000))
        message = view.error if view.state == "failed" and view.error else view.message
        if view.state == "failed":  # the reason stays whole, wrapped: the user has to act on it
            self.message.setWordWrap(True)
            self.message.setText(message or "")
        else:
            short = FOLDERS.sub("", message or "")  # "index: /a/long/path/IMG_001.jpg" -> "index: IMG_001.jpg"
            self.message.setText(self.message.fontMetrics().elidedText(short, Qt.TextElideMode.ElideMiddle, 520))
        self.message.setToolTip(message or "")
        self._show_state(view.state)

    def _show_state(self, state: str) -> None:
        view = self.view
        finished = state in FINISHED
        self.pause_button.setVisible(not finished)
        self.cancel_button.setVisible(not finished)
        paused = state == "paused"
        self.pause_button.setIcon(theme.icon("play" if paused else "pause"))
        self.pause_button.setToolTip("Resume" if paused else "Pause")
        if finished:
            self.eta.setText({"done": "done", "failed": "failed", "cancelled": "cancelled"}[state])
            if state == "done":
                self.bar.setValue(1000)
        elif paused:
            self.eta.setText("paused")
        elif view.total:
            eta = format_eta(view.eta_seconds)
            self.eta.setText(f"{view.done:,}/{view.total:,}" if view.kind != "process" else eta or "working…")
            if eta and view.kind != "process":
                self.eta.setText(f"{view.done:,}/{view.total:,} · {eta}")
        else:
            self.eta.setText("starting…" if state == "running" else state)
        self.setProperty("state", state)
        self.style().unpolish(self)
        self.style().polish(self)


class JobsPanel(QWidget):
    """Every job of this run, newest on top; finished ones stay until cleared."""

    def __init__(self, queue, bridge, parent=None):
        super().__init__(parent)
        self.setObjectName("jobsPanel")
        self.queue, self.bridge = queue, bridge
        self.rows: dict[int, JobRow] = {}
        self.empty = muted("No jobs yet. Adding a folder starts one; so does Process in the toolbar.")
        self.empty.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.list = QVBoxLayout()
        self.list.setSpacing(6)
        self.list.addWidget(self.empty)
        self.list.addStretch(1)
        inner = QWidget()
        inner.setObjectName("jobsList")
        inner.setLayout(self.list)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setWidget(inner)
        clear = QPushButton("Clear finished")
        clear.setObjectName("flat")
        clear.clicked.connect(self.clear_finished)
        bottom = QHBoxLayout()
        bottom.addStretch(1)
        bottom.addWidget(clear)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 8, 8, 8)
        layout.addWidget(scroll, 1)
        layout.addLayout(bottom)
        bridge.updated.connect(self.update_job)

    def update_job(self, view: JobView) -> None:
        row = self.rows.get(view.id)
        if row is None:
            row = JobRow(view, self.queue, self.bridge)
            self.rows[view.id] = row
            self.list.insertWidget(0, row)
            self.empty.hide()
        else:
            row.update_view(view)

    def clear_finished(self) -> None:
        for job_id, row in list(self.rows.items()):
            if row.view.state in FINISHED:
                row.setParent(None)
                row.deleteLater()
                del self.rows[job_id]
        self.empty.setVisible(not self.rows)


class JobIndicator(QFrame):
    """Status-bar summary: what runs now and how far it is; a click shows the jobs panel."""

    clicked = Signal()

    def __init__(self, bridge, parent=None):
        super().__init__(parent)
        self.setObjectName("jobIndicator")
        self.setCursor(Qt.CursorShape.PointingHandCursor)
        self.active: dict[int, JobView] = {}
        self.label = QLabel("Ready")
        self.label.setObjectName("muted")
        self.bar = QProgressBar()
        self.bar.setRange(0, 1000)
        self.bar.setTextVisible(False)
        self.bar.setFixedSize(140, 6)
        self.bar.hide()
        layout = QHBoxLayout(self)
        layout.setContentsMargins(6, 0, 6, 0)
        layout.addWidget(self.label)
        layout.addWidget(self.bar)
        bridge.updated.connect(self.update_job)

    def update_job(self, view: JobView) -> None:
        if view.state in FINISHED:
            self.active.pop(view.id, None)
            if not self.active:
                self.label.setText({"done": "All done", "failed": f"{job_title(view.kind)} failed",
                                    "cancelled": "Cancelled"}[view.state])
        else:
            self.active[view.id] = view
        if self.active:
            current = max(self.active.values(), key=lambda v: v.id)
            more = f"  (+{len(self.active) - 1})" if len(self.active) > 1 else ""
            state = " (paused)" if current.state == "paused" else ""
            self.label.setText(f"{job_title(current.kind)}{state}{more}")
            self.bar.setValue(int(current.fraction * 1000))
            self.bar.show()
        else:
            self.bar.hide()

    def mousePressEvent(self, event) -> None:
        self.clicked.emit()
        super().mousePressEvent(event)

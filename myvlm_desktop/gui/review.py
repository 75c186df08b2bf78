"""The "Review <Rex>" dialog: one borderline detection at a time, photo, crop and score, Yes / No / Skip.

Keys: Y yes, N no, Right skip (next), Left back, Ctrl+Z undo the last answer. The answers are people
operations (concepts.review); the page retrains the head in the background when the dialog closes.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QKeySequence, QPixmap
from PySide6.QtWidgets import QDialog, QHBoxLayout, QLabel, QPushButton, QVBoxLayout

from ..concepts.review import ReviewSession
from ..library.store import open_path
from .images import read_face, read_photo
from .widgets import heading, muted

PHOTO_SIDE = 420
CROP_SIDE = 140
REASONS = {"borderline": "the head is unsure", "second face": "another face in this photo matched better"}


class ReviewDialog(QDialog):
    """Walks a ReviewSession; emits `answered(verdict)` after each recorded answer."""

    answered = Signal(str)

    def __init__(self, session: ReviewSession, parent=None):
        super().__init__(parent)
        self.session = session
        name = session.concept["name"]
        self.setWindowTitle(f"Review {name}")
        self.title = heading(f"Is this {name}?")
        self.photo, self.crop = QLabel(), QLabel()
        self.photo.setFixedSize(PHOTO_SIDE, PHOTO_SIDE)
        self.photo.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.crop.setFixedSize(CROP_SIDE, CROP_SIDE)
        self.detail, self.position = muted(), muted()
        self.yes = QPushButton("Yes (Y)")
        self.no = QPushButton("No (N)")
        self.skip = QPushButton("Skip (→)")
        self.undo_button = QPushButton("Undo")
        self.yes.clicked.connect(lambda: self.give("yes"))
        self.no.clicked.connect(lambda: self.give("no"))
        self.skip.clicked.connect(lambda: self.give("skip"))
        self.undo_button.clicked.connect(self.undo)
        for button in (self.yes, self.no, self.skip, self.undo_button):
            button.setFocusPolicy(Qt.FocusPolicy.NoFocus)  # the keys below are the dialog's, not a button's
        self.keys = {Qt.Key.Key_Y: lambda: self.give("yes"), Qt.Key.Key_N: lambda: self.give("no"),
                     Qt.Key.Key_Right: lambda: self.give("skip"), Qt.Key.Key_Left: self.back}
        side = QVBoxLayout()
        side.addWidget(self.crop)
        side.addWidget(self.detail)
        side.addStretch(1)
        pictures = QHBoxLayout()
        pictures.addWidget(self.photo)
        pictures.addLayout(side)
        buttons = QHBoxLayout()
        for button in (self.yes, self.no, self.skip):
            buttons.addWidget(button)
        buttons.addStretch(1)
        buttons.addWidget(self.position)
        buttons.addWidget(self.undo_button)
        layout = QVBoxLayout(self)
        layout.addWidget(self.title)
        layout.addLayout(pictures)
        layout.addLayout(buttons)
        self.show_current()

    def keyPressEvent(self, event) -> None:
        if event.matches(QKeySequence.StandardKey.Undo):
            self.undo()
        elif event.modifiers() in (Qt.KeyboardModifier.NoModifier, Qt.KeyboardModifier.KeypadModifier) and \
                event.key() in self.keys:
            self.keys[event.key()]()
        else:
            super().keyPressEvent(event)

    def give(self, verdict: str) -> None:
        if self.session.current() is None:
            return
        try:
            self.session.answer(verdict)
        except ValueError as exc:  # already answered: say so instead of answering twice
            self.detail.setText(str(exc))
            return
        self.answered.emit(verdict)
        self.show_current()

    def back(self) -> None:
        self.session.move(-1)
        self.show_current()

    def undo(self) -> None:
        if self.session.operations:
            self.session.undo()
            self.show_current()

    def show_current(self) -> None:
        item = self.session.current()
        total = len(self.session.items)
        self.undo_button.setEnabled(bool(self.session.operations))
        for button in (self.yes, self.no, self.skip):
            button.setEnabled(item is not None)
        if item is None:
            self.title.setText("Nothing left to review" if total else f"Nothing to review for "
                               f"{self.session.concept['name']}")
            self.photo.clear()
            self.crop.clear()
            self.detail.setText("Close this window; the head learns from your answers in the background."
                                if self.session.changed else "")
            self.position.setText(f"{total} of {total}" if total else "")
            return
        self.title.setText(f"Is this {self.session.concept['name']}?")
        self.position.setText(f"{self.session.position + 1} of {total}")
        answered = self.session.answers.get(self.session.position)
        self.detail.setText(f"score {item.score:.2f}\n{REASONS.get(item.reason, item.reason)}"
                            + (f"\nanswered: {answered}" if answered else ""))
        photo = self.session.library.photo(item.photo_id)
        path = open_path(photo)
        image = read_photo(path, PHOTO_SIDE)
        self.photo.setPixmap(QPixmap.fromImage(image) if image is not None else QPixmap())
        if item.box is not None:
            crop = read_face(path, item.box, (photo["width"] or 0, photo["height"] or 0), CROP_SIDE)
            self.crop.setPixmap(QPixmap.fromImage(crop) if crop is not None else QPixmap())
        else:
            self.crop.clear()

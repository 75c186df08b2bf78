"""Small widgets the pages share: the photo grid, the search bar with @name completion, an empty state."""

from __future__ import annotations

import re

from PySide6.QtCore import QEvent, QModelIndex, QSize, QStringListModel, Qt, Signal
from PySide6.QtGui import QKeyEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCompleter,
    QFrame,
    QLabel,
    QLineEdit,
    QListView,
    QPushButton,
    QVBoxLayout,
)

from . import theme
from .models import ID_ROLE, CardDelegate, PhotoDelegate


class PhotoGrid(QListView):
    """Thumbnails in a grid; batched layout and uniform sizes keep 100,000 rows smooth."""

    photoActivated = Signal(int)

    def __init__(self, side: int = 176, parent=None):
        super().__init__(parent)
        self.setObjectName("photoGrid")
        self.setViewMode(QListView.ViewMode.IconMode)
        self.setResizeMode(QListView.ResizeMode.Adjust)
        self.setMovement(QListView.Movement.Static)
        self.setUniformItemSizes(True)
        self.setLayoutMode(QListView.LayoutMode.Batched)
        self.setBatchSize(300)
        self.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.setVerticalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        self.verticalScrollBar().setSingleStep(24)
        self.setMouseTracking(True)
        self.setSpacing(0)
        self.setItemDelegate(PhotoDelegate(side, parent=self))
        self.activated.connect(self._activated)

    def _activated(self, index: QModelIndex) -> None:
        photo_id = index.data(ID_ROLE)
        if photo_id is not None:
            self.photoActivated.emit(int(photo_id))

    def selected_ids(self) -> list[int]:
        return [int(i.data(ID_ROLE)) for i in self.selectionModel().selectedIndexes()]


class CardGrid(QListView):
    """Round face cards (clusters, faces) in a grid."""

    def __init__(self, side: int = 132, text_lines: int = 2, parent=None):
        super().__init__(parent)
        self.setObjectName("cardGrid")
        self.setViewMode(QListView.ViewMode.IconMode)
        self.setResizeMode(QListView.ResizeMode.Adjust)
        self.setMovement(QListView.Movement.Static)
        self.setUniformItemSizes(True)
        self.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.setVerticalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        self.setMouseTracking(True)
        self.setSpacing(4)
        self.setItemDelegate(CardDelegate(side, text_lines, parent=self))

    def selected_rows(self) -> list[int]:
        return sorted(i.row() for i in self.selectionModel().selectedIndexes())


class EmptyState(QFrame):
    """A calm message in the middle of an empty page, with an optional action button."""

    def __init__(self, title: str, text: str, action: str | None = None, icon_name: str | None = None, parent=None):
        super().__init__(parent)
        self.setObjectName("emptyState")
        layout = QVBoxLayout(self)
        layout.addStretch(2)
        if icon_name:
            picture = QLabel()
            picture.setPixmap(theme.icon(icon_name).pixmap(QSize(56, 56)))
            picture.setAlignment(Qt.AlignmentFlag.AlignCenter)
            layout.addWidget(picture)
        self.title = QLabel(title)
        self.title.setObjectName("emptyTitle")
        self.text = QLabel(text)
        self.text.setObjectName("emptyText")
        self.text.setWordWrap(True)
        for label in (self.title, self.text):
            label.setAlignment(Qt.AlignmentFlag.AlignCenter)
            layout.addWidget(label)
        self.button = None
        if action:
            self.button = QPushButton(action)
            self.button.setObjectName("primary")
            layout.addWidget(self.button, 0, Qt.AlignmentFlag.AlignCenter)
        layout.addStretch(3)


class SearchBar(QLineEdit):
    """The query line: completes @names from the concepts, shows a query error inline."""

    searched = Signal(str)
    _AT = re.compile(r'@"?([^"@()]*)$')

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setObjectName("searchBar")
        self.setPlaceholderText('Search   @Alice AND @Rex beach 2023')
        self.setClearButtonEnabled(True)
        self.addAction(theme.icon("search"), QLineEdit.ActionPosition.LeadingPosition)
        self._names = QStringListModel(self)
        self._completer = QCompleter(self._names, self)
        self._completer.setCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        self._completer.setCompletionMode(QCompleter.CompletionMode.PopupCompletion)
        self._completer.setWidget(self)
        self._completer.activated[str].connect(self._complete)
        self._completer.popup().installEventFilter(self)
        self._enter_in_popup = False  # Enter chose the completion: it runs the search too
        self.textEdited.connect(self._edited)
        self.returnPressed.connect(self._submit)

    def set_names(self, names: list[str]) -> None:
        self._names.setStringList(names)

    def names(self) -> list[str]:
        return self._names.stringList()

    def set_error(self, message: str | None) -> None:
        self.setProperty("error", bool(message))
        self.setToolTip(message or "")
        self.style().unpolish(self)
        self.style().polish(self)

    def _edited(self, text: str) -> None:
        self.set_error(None)
        match = self._AT.search(text[:self.cursorPosition()])
        if match is None:
            self._completer.popup().hide()
            return
        self._completer.setCompletionPrefix(match.group(1))
        if self._completer.completionCount():
            self._completer.complete()
        else:
            self._completer.popup().hide()

    def _complete(self, name: str) -> None:
        """Replace the @fragment under the cursor by the chosen name (quoted when it has spaces)."""
        cursor = self.cursorPosition()
        before, after = self.text()[:cursor], self.text()[cursor:]
        match = self._AT.search(before)
        if match is None:
            return
        token = f'@"{name}"' if " " in name else f"@{name}"
        before = before[:match.start()] + token + " "
        self.setText(before + after.lstrip())
        self.setCursorPosition(len(before))
        if self._enter_in_popup:
            self._enter_in_popup = False
            self.searched.emit(self.text().strip())

    def eventFilter(self, watched, event) -> bool:
        if watched is self._completer.popup() and event.type() == QEvent.Type.KeyPress:
            self._enter_in_popup = event.key() in (Qt.Key.Key_Enter, Qt.Key.Key_Return)
        return super().eventFilter(watched, event)

    def _submit(self) -> None:
        if self._completer.popup().isVisible():
            return
        self.searched.emit(self.text().strip())

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if self._completer.popup().isVisible() and event.key() in (
                Qt.Key.Key_Enter, Qt.Key.Key_Return, Qt.Key.Key_Escape, Qt.Key.Key_Tab):
            event.ignore()  # the completer's popup takes them
            return
        super().keyPressEvent(event)


def heading(text: str, object_name: str = "pageTitle") -> QLabel:
    label = QLabel(text)
    label.setObjectName(object_name)
    return label


def muted(text: str = "") -> QLabel:
    label = QLabel(text)
    label.setObjectName("muted")
    label.setWordWrap(True)
    return label


def format_eta(seconds: float | None) -> str:
    if seconds is None:
        return ""
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds} s left"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s left"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min left"

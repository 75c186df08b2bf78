"""Qt item models over the library: photos (lazy pages, thumbnails off the GUI thread), clusters, faces.

The photo model holds only (id, hash, path) per row and fetches them a page at a time as the view scrolls
(canFetchMore / fetchMore), so 100,000 photos cost a few MB and no start-up wait. Thumbnails come from the
cache folder the scan filled, decoded by an ImageCache worker; a row shows a placeholder until its image
arrives.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

from PySide6.QtCore import QAbstractListModel, QModelIndex, QPersistentModelIndex, QRect, QSize, Qt
from PySide6.QtGui import QColor, QPainter, QPainterPath, QPen
from PySide6.QtWidgets import QStyle, QStyledItemDelegate, QStyleOptionViewItem

from . import theme
from .images import ImageCache, read_face, read_scaled

PAGE = 600
_ROOT = QModelIndex()  # the invisible root of a list model
ID_ROLE = Qt.ItemDataRole.UserRole + 1
THUMB_ROLE = Qt.ItemDataRole.UserRole + 2
ROW_ROLE = Qt.ItemDataRole.UserRole + 3

Row = tuple[int, str | None, str]  # photo id, content hash, path


class PhotoSource:
    """Where a grid's photos come from: `count()` and `page(offset, limit) -> [Row]`."""

    def __init__(self, count: Callable[[], int], page: Callable[[int, int], list[Row]]):
        self.count, self.page = count, page

    @classmethod
    def of_ids(cls, ids: Sequence[int], rows_for: Callable[[list[int]], list[Row]]) -> PhotoSource:
        """A fixed list of photo ids (search results, a concept's photos), in that order."""
        ids = list(ids)
        return cls(lambda: len(ids), lambda offset, limit: rows_for(ids[offset:offset + limit]))


class PhotoListModel(QAbstractListModel):
    def __init__(self, thumbnail_path: Callable[[str], os.PathLike], cache: ImageCache, side: int = 176,
                 parent=None):
        super().__init__(parent)
        self.thumbnail_path, self.cache, self.side = thumbnail_path, cache, side
        self.source: PhotoSource | None = None
        self._rows: list[Row] = []
        self._total = 0
        self._row_of_hash: dict[str, list[int]] = {}
        cache.loaded.connect(self._thumbnail_loaded)

    # -- contents ------------------------------------------------------------------------------------
    def set_source(self, source: PhotoSource | None) -> None:
        self.beginResetModel()
        self.source = source
        self._rows, self._row_of_hash = [], {}
        self._total = source.count() if source else 0
        self.endResetModel()
        if self.canFetchMore(QModelIndex()):
            self.fetchMore(QModelIndex())

    def refresh(self) -> None:
        """Count again and append what is new, keeping the rows already shown (and the scroll position)."""
        if self.source is None:
            return
        total = self.source.count()
        if total < len(self._rows):
            self.set_source(self.source)
            return
        shown = self._rows[:PAGE]
        if shown and self.source.page(0, len(shown)) != shown:  # photos arrived among those shown: reload
            self.set_source(self.source)
            return
        self._total = total
        if not self._rows and self.canFetchMore(QModelIndex()):
            self.fetchMore(QModelIndex())

    def total(self) -> int:
        return self._total

    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = _ROOT) -> int:
        return 0 if parent.isValid() else len(self._rows)

    def canFetchMore(self, parent: QModelIndex | QPersistentModelIndex = _ROOT) -> bool:
        return not parent.isValid() and len(self._rows) < self._total

    def fetchMore(self, parent: QModelIndex | QPersistentModelIndex = _ROOT) -> None:
        if self.source is None:
            return
        page = self.source.page(len(self._rows), PAGE)
        if not page:
            self._total = len(self._rows)
            return
        first = len(self._rows)
        self.beginInsertRows(QModelIndex(), first, first + len(page) - 1)
        for offset, row in enumerate(page):
            if row[1]:
                self._row_of_hash.setdefault(row[1], []).append(first + offset)
        self._rows.extend(page)
        self.endInsertRows()

    def photo_id(self, row: int) -> int:
        return self._rows[row][0]

    def photo_ids(self) -> list[int]:
        return [r[0] for r in self._rows]

    def row_of(self, photo_id: int) -> int | None:
        for i, row in enumerate(self._rows):
            if row[0] == photo_id:
                return i
        return None

    # -- data --------------------------------------------------------------------------------------
    def data(self, index: QModelIndex | QPersistentModelIndex, role: int = Qt.ItemDataRole.DisplayRole):
        if not index.isValid() or index.row() >= len(self._rows):
            return None
        photo_id, content_hash, path = self._rows[index.row()]
        if role == ID_ROLE:
            return photo_id
        if role == ROW_ROLE:
            return self._rows[index.row()]
        if role in (Qt.ItemDataRole.ToolTipRole, Qt.ItemDataRole.AccessibleTextRole):
            return os.path.basename(path)
        if role == THUMB_ROLE:
            if not content_hash:
                return None
            thumb = str(self.thumbnail_path(content_hash))
            return self.cache.get(("thumb", content_hash, self.side),
                                  lambda: read_scaled(thumb, self.side, square=True)
                                  or self._rebuilt(thumb, content_hash, path))
        return None

    def _rebuilt(self, thumb: str, content_hash: str, path: str):
        """A cache entry that is not an image: made again from the photo (in the loader's worker)."""
        from ..library import thumbs

        if thumbs.rebuild(Path(thumb).parent.parent, content_hash, path) is None:
            return None
        return read_scaled(thumb, self.side, square=True)

    def _thumbnail_loaded(self, key) -> None:
        if not (isinstance(key, tuple) and key[0] == "thumb" and key[2] == self.side):
            return
        for row in self._row_of_hash.get(key[1], ()):
            index = self.index(row)
            self.dataChanged.emit(index, index, [THUMB_ROLE])


class PhotoDelegate(QStyledItemDelegate):
    """A square, softly rounded thumbnail; a placeholder while it loads; an accent ring when selected."""

    def __init__(self, side: int = 176, gap: int = 6, parent=None):
        super().__init__(parent)
        self.side, self.gap = side, gap

    def sizeHint(self, option: QStyleOptionViewItem, index: QModelIndex) -> QSize:
        return QSize(self.side + self.gap, self.side + self.gap)

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index: QModelIndex) -> None:
        painter.save()
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        cell = QRect(option.rect.x() + self.gap // 2, option.rect.y() + self.gap // 2, self.side, self.side)
        path = QPainterPath()
        path.addRoundedRect(cell, 6, 6)
        pixmap = index.data(THUMB_ROLE)
        if pixmap is None:
            painter.fillPath(path, theme.PLACEHOLDER)
        else:
            painter.setClipPath(path)
            painter.drawPixmap(cell, pixmap)
            painter.setClipping(False)
        if option.state & QStyle.StateFlag.State_Selected:
            painter.fillPath(path, QColor(58, 115, 119, 60))
            painter.setPen(QPen(theme.ACCENT, 3))
            painter.drawPath(path)
        elif option.state & QStyle.StateFlag.State_MouseOver:
            painter.setPen(QPen(QColor(255, 255, 255, 180), 2))
            painter.drawPath(path)
        painter.restore()


# -- faces and clusters ------------------------------------------------------------------------------------
class FaceListModel(QAbstractListModel):
    """Face crops: rows are dicts with at least "id", "path", "box", "size" (w, h) and optional "label"."""

    def __init__(self, cache: ImageCache, side: int = 132, thumbnail_path: Callable | None = None, parent=None):
        super().__init__(parent)
        self.cache, self.side, self.thumbnail_path = cache, side, thumbnail_path
        self._rows: list[dict] = []
        cache.loaded.connect(self._loaded)

    def set_rows(self, rows: list[dict]) -> None:
        self.beginResetModel()
        self._rows = list(rows)
        self.endResetModel()

    def rows(self) -> list[dict]:
        return self._rows

    def row_data(self, row: int) -> dict:
        return self._rows[row]

    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = _ROOT) -> int:
        return 0 if parent.isValid() else len(self._rows)

    def data(self, index: QModelIndex | QPersistentModelIndex, role: int = Qt.ItemDataRole.DisplayRole):
        if not index.isValid() or index.row() >= len(self._rows):
            return None
        item = self._rows[index.row()]
        if role == ID_ROLE:
            return item["id"]
        if role == ROW_ROLE:
            return item
        if role == Qt.ItemDataRole.DisplayRole:
            return item.get("label", "")
        if role == Qt.ItemDataRole.ToolTipRole:
            return item.get("tooltip") or os.path.basename(str(item.get("path", "")))
        if role == THUMB_ROLE:
            return self._crop(item)
        return None

    def _crop(self, item: dict):
        if item.get("whole") and item.get("hash") and self.thumbnail_path is not None:  # a photo, not a face
            thumb, side = str(self.thumbnail_path(item["hash"])), self.side
            return self.cache.get(("thumb", item["hash"], side), lambda: read_scaled(thumb, side, square=True))
        if not item.get("path") or not item.get("box"):
            return None
        path, box, size, side = item["path"], tuple(item["box"]), tuple(item.get("size") or (0, 0)), self.side
        if not all(size):
            return None
        return self.cache.get(("face", path, box, side), lambda: read_face(path, box, size, side))

    def _loaded(self, key) -> None:
        if not isinstance(key, tuple) or key[-1] != self.side or key[0] not in ("face", "thumb"):
            return
        for row, item in enumerate(self._rows):
            if (key[0] == "thumb" and item.get("whole") and item.get("hash") == key[1]) or (
                    key[0] == "face" and item.get("path") == key[1] and tuple(item.get("box") or ()) == key[2]):
                index = self.index(row)
                self.dataChanged.emit(index, index, [THUMB_ROLE])


class CardDelegate(QStyledItemDelegate):
    """A round face crop with a title and a subtitle under it: cluster cards, faces of a cluster."""

    def __init__(self, side: int = 132, text_lines: int = 2, parent=None):
        super().__init__(parent)
        self.side, self.text_lines = side, text_lines

    def sizeHint(self, option: QStyleOptionViewItem, index: QModelIndex) -> QSize:
        return QSize(self.side + 28, self.side + 16 + 20 * self.text_lines)

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index: QModelIndex) -> None:
        painter.save()
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        rect = option.rect.adjusted(4, 4, -4, -4)
        selected = bool(option.state & QStyle.StateFlag.State_Selected)
        if selected or option.state & QStyle.StateFlag.State_MouseOver:
            card = QPainterPath()
            card.addRoundedRect(rect, 10, 10)
            painter.fillPath(card, theme.ACCENT_SOFT if selected else QColor(0, 0, 0, 12))
        circle = QRect(rect.center().x() - self.side // 2, rect.y() + 6, self.side, self.side)
        clip = QPainterPath()
        clip.addEllipse(circle)
        pixmap = index.data(THUMB_ROLE)
        if pixmap is None:
            painter.fillPath(clip, theme.PLACEHOLDER)
        else:
            painter.setClipPath(clip)
            painter.drawPixmap(circle, pixmap)
            painter.setClipping(False)
        if selected:
            painter.setPen(QPen(theme.ACCENT, 3))
            painter.drawEllipse(circle)
        self._text(painter, rect, circle, index)
        painter.restore()

    def _text(self, painter: QPainter, rect: QRect, circle: QRect, index: QModelIndex) -> None:
        item = index.data(ROW_ROLE) or {}
        title = item.get("title") or index.data(Qt.ItemDataRole.DisplayRole) or ""
        subtitle = item.get("subtitle", "")
        top = circle.bottom() + 8
        font = painter.font()
        bold = font.__class__(font)
        bold.setBold(True)
        painter.setFont(bold)
        painter.setPen(theme.TEXT if item.get("named", True) else theme.MUTED)
        metrics = painter.fontMetrics()
        painter.drawText(QRect(rect.x(), top, rect.width(), 20), Qt.AlignmentFlag.AlignHCenter,
                         metrics.elidedText(title, Qt.TextElideMode.ElideRight, rect.width() - 8))
        if subtitle and self.text_lines > 1:
            painter.setFont(font)
            painter.setPen(theme.MUTED)
            painter.drawText(QRect(rect.x(), top + 20, rect.width(), 20), Qt.AlignmentFlag.AlignHCenter,
                             painter.fontMetrics().elidedText(subtitle, Qt.TextElideMode.ElideRight, rect.width() - 8))

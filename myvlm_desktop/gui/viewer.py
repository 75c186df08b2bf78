"""The photo viewer: the photo, its faces boxed and labelled by concept, the newest caption under it."""

from __future__ import annotations

import os

from PySide6.QtCore import QRectF, Qt, Signal
from PySide6.QtGui import QColor, QFont, QFontMetrics, QImage, QPainter, QPainterPath, QPen, QPixmap
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QSizePolicy, QToolButton, QVBoxLayout, QWidget

from . import theme
from .images import read_photo
from .widgets import muted
from .workers import run_task

MAX_SIDE = 2048


class PhotoCanvas(QWidget):
    """Paints the photo fitted to the widget, and each face's box with its name."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setObjectName("photoCanvas")
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setMinimumSize(200, 160)
        self.pixmap: QPixmap | None = None
        self.full_size = (0, 0)
        self.faces: list[dict] = []

    def set_photo(self, image: QImage | None, full_size: tuple[int, int], faces: list[dict]) -> None:
        self.pixmap = QPixmap.fromImage(image) if image is not None and not image.isNull() else None
        self.full_size, self.faces = full_size, faces
        self.update()

    def image_rect(self) -> QRectF:
        if self.pixmap is None:
            return QRectF()
        w, h = self.pixmap.width(), self.pixmap.height()
        scale = min((self.width() - 24) / w, (self.height() - 24) / h)
        return QRectF((self.width() - w * scale) / 2, (self.height() - h * scale) / 2, w * scale, h * scale)

    def face_rect(self, face: dict) -> QRectF:
        target = self.image_rect()
        full_w, full_h = self.full_size
        if not full_w or not full_h:
            full_w, full_h = self.pixmap.width(), self.pixmap.height()
        sx, sy = target.width() / full_w, target.height() / full_h
        x1, y1, x2, y2 = face["box"]
        return QRectF(target.x() + x1 * sx, target.y() + y1 * sy, (x2 - x1) * sx, (y2 - y1) * sy)

    def paintEvent(self, event) -> None:
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
        if self.pixmap is None:
            painter.setPen(theme.MUTED)
            painter.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter, "Loading…")
            return
        target = self.image_rect()
        path = QPainterPath()
        path.addRoundedRect(target, 8, 8)
        painter.setClipPath(path)
        painter.drawPixmap(target.toRect(), self.pixmap)
        painter.setClipping(False)
        for face in self.faces:
            self._face(painter, face)

    def _face(self, painter: QPainter, face: dict) -> None:
        box = self.face_rect(face)
        named = bool(face.get("name"))
        color = QColor("#ffffff") if named else QColor(255, 255, 255, 150)
        painter.setPen(QPen(QColor(0, 0, 0, 70), 4))
        painter.drawRoundedRect(box, 6, 6)
        painter.setPen(QPen(color, 2 if named else 1.4, Qt.PenStyle.SolidLine if named else Qt.PenStyle.DashLine))
        painter.drawRoundedRect(box, 6, 6)
        if not named:
            return
        font = QFont(painter.font())
        font.setBold(True)
        painter.setFont(font)
        metrics = QFontMetrics(font)
        text = face["name"]
        width = metrics.horizontalAdvance(text) + 16
        label = QRectF(box.center().x() - width / 2, box.bottom() + 6, width, metrics.height() + 6)
        pill = QPainterPath()
        pill.addRoundedRect(label, label.height() / 2, label.height() / 2)
        painter.fillPath(pill, theme.ACCENT)
        painter.setPen(QColor("#ffffff"))
        painter.drawText(label, Qt.AlignmentFlag.AlignCenter, text)


class PhotoViewer(QWidget):
    """A page showing one photo; Left / Right walk through the grid it was opened from."""

    back = Signal()
    step = Signal(int)  # -1 previous, +1 next

    def __init__(self, session, parent=None):
        super().__init__(parent)
        self.session = session
        self.setObjectName("viewer")
        self.detail: dict | None = None
        self._loading: int | None = None
        self.canvas = PhotoCanvas()
        self.title = QLabel()
        self.title.setObjectName("viewerTitle")
        self.meta = muted()
        self.meta.setWordWrap(False)
        self.caption = QLabel()
        self.caption.setObjectName("caption")
        self.caption.setWordWrap(True)
        self.caption.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.caption.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.caption_source = muted()
        self.caption_source.setAlignment(Qt.AlignmentFlag.AlignCenter)
        back = QPushButton(theme.icon("back"), "Back")
        back.setObjectName("flat")
        back.clicked.connect(self.back)
        previous, following = QToolButton(), QToolButton()
        previous.setText("‹")
        following.setText("›")
        previous.clicked.connect(lambda: self.step.emit(-1))
        following.clicked.connect(lambda: self.step.emit(1))
        top = QHBoxLayout()
        top.addWidget(back)
        top.addSpacing(8)
        top.addWidget(self.title, 1)
        top.addWidget(self.meta)
        top.addWidget(previous)
        top.addWidget(following)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(16, 10, 16, 14)
        layout.addLayout(top)
        layout.addWidget(self.canvas, 1)
        layout.addWidget(self.caption)
        layout.addWidget(self.caption_source)

    def show_photo(self, photo_id: int) -> None:
        detail = self.session.views.photo_detail(photo_id)
        if detail is None:
            return
        self.detail = detail
        self._loading = photo_id
        self.title.setText(os.path.basename(detail["path"]))
        bits = [b for b in (detail["date"] and detail["date"][:10], detail["camera"],
                            detail["width"] and f"{detail['width']}×{detail['height']}") if b]
        self.meta.setText("  ·  ".join(bits))
        self.canvas.set_photo(None, (detail["width"] or 0, detail["height"] or 0), detail["faces"])
        self._show_caption(detail)
        run_task(read_photo, detail["open_path"], MAX_SIDE, owner=self,
                 on_done=lambda image, pid=photo_id: self._loaded(pid, image))

    def refresh(self) -> None:
        """Faces or caption changed (a name, a new caption): redraw without decoding the photo again."""
        if self.detail is None:
            return
        detail = self.session.views.photo_detail(self.detail["id"])
        if detail is None:
            return
        self.detail = detail
        self.canvas.faces = detail["faces"]
        self.canvas.update()
        self._show_caption(detail)

    def _loaded(self, photo_id: int, image: QImage | None) -> None:
        if photo_id != self._loading or self.detail is None:
            return  # the user moved on to another photo meanwhile
        self.canvas.set_photo(image, (self.detail["width"] or 0, self.detail["height"] or 0), self.detail["faces"])

    def _show_caption(self, detail: dict) -> None:
        caption = detail.get("caption")
        if caption:
            self.caption.setText(caption["text"])
            self.caption_source.setText(f"personalized caption · {caption['backend']} {caption['model'] or ''}".strip())
        else:
            names = ", ".join(detail.get("concepts") or [])
            self.caption.setText(f"In this photo: {names}" if names else "")
            self.caption_source.setText("No caption yet: captions are written once a vision-language model is "
                                        "installed (Settings › Models).")

    def keyPressEvent(self, event) -> None:
        if event.key() == Qt.Key.Key_Escape:
            self.back.emit()
        elif event.key() == Qt.Key.Key_Left:
            self.step.emit(-1)
        elif event.key() == Qt.Key.Key_Right:
            self.step.emit(1)
        else:
            super().keyPressEvent(event)

"""Images for the views, decoded off the GUI thread and kept in a small LRU.

Requests are served newest first: when the user scrolls fast, the cells now on screen load before the
ones that scrolled past, and requests beyond `max_pending` are dropped (they are asked again if their cell
is painted again). Decoding happens in worker threads as QImage; the GUI thread only turns the result into
a QPixmap.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable

from PySide6.QtCore import QObject, QRunnable, QSize, Qt, QThreadPool, Signal, Slot
from PySide6.QtGui import QImage, QImageReader, QPixmap

from .. import imaging


class ImageCache(QObject):
    """`get(key, load)` returns the pixmap if cached, else None and schedules `load()` (-> QImage | None)."""

    loaded = Signal(object)  # key
    _arrived = Signal(object, object)  # key, QImage | None (from a worker)

    def __init__(self, capacity: int = 2000, threads: int = 2, max_pending: int = 400, parent=None):
        super().__init__(parent)
        self.capacity, self.max_pending = capacity, max_pending
        self._cache: OrderedDict[Hashable, QPixmap] = OrderedDict()
        self._failed: set[Hashable] = set()
        self._pending: OrderedDict[Hashable, Callable[[], QImage | None]] = OrderedDict()
        self._in_flight: set[Hashable] = set()
        self._lock = threading.Lock()
        self._pool = QThreadPool(self)
        self._pool.setMaxThreadCount(threads)
        self._arrived.connect(self._store)

    def get(self, key: Hashable, load: Callable[[], QImage | None]) -> QPixmap | None:
        pixmap = self._cache.get(key)
        if pixmap is not None:
            self._cache.move_to_end(key)
            return pixmap
        if key in self._failed:
            return None
        start = False
        with self._lock:
            if key not in self._in_flight:
                self._pending[key] = load
                self._pending.move_to_end(key)
                while len(self._pending) > self.max_pending:
                    self._pending.popitem(last=False)
                start = True
        if start:
            self._pool.start(_Load(self))
        return None

    def cached(self, key: Hashable) -> QPixmap | None:
        return self._cache.get(key)

    def clear(self) -> None:
        with self._lock:
            self._pending.clear()
        self._cache.clear()
        self._failed.clear()

    def wait(self, timeout_ms: int = 10000) -> bool:
        return self._pool.waitForDone(timeout_ms)

    def shutdown(self) -> None:
        with self._lock:
            self._pending.clear()
        self._pool.waitForDone(5000)

    # -- worker side ------------------------------------------------------------------------------
    def _next(self) -> tuple[Hashable, Callable] | None:
        with self._lock:
            if not self._pending:
                return None
            key, load = self._pending.popitem(last=True)  # newest request first
            self._in_flight.add(key)
            return key, load

    def _run_one(self) -> None:
        item = self._next()
        if item is None:
            return
        key, load = item
        try:
            image = load()
        except Exception:  # noqa: BLE001 - a bad file shows the placeholder, never breaks the view
            image = None
        try:
            self._arrived.emit(key, image)
        except RuntimeError:  # the cache was deleted while this worker ran
            pass

    @Slot(object, object)
    def _store(self, key: Hashable, image: QImage | None) -> None:
        with self._lock:
            self._in_flight.discard(key)
        if image is None or image.isNull():
            self._failed.add(key)
        else:
            self._cache[key] = QPixmap.fromImage(image)
            while len(self._cache) > self.capacity:
                self._cache.popitem(last=False)
        self.loaded.emit(key)


class _Load(QRunnable):
    def __init__(self, cache: ImageCache):
        super().__init__()
        self.cache = cache

    def run(self) -> None:
        self.cache._run_one()


# -- loaders (run in workers) ------------------------------------------------------------------------------
def read_scaled(path: str, side: int, square: bool = False) -> QImage | None:
    """A thumbnail file (already small JPEG) scaled to fit `side`, or cropped to a square of `side`."""
    reader = QImageReader(path)
    reader.setAutoTransform(True)
    image = reader.read()
    if image.isNull():
        return None
    if square:
        image = image.scaled(side, side, Qt.AspectRatioMode.KeepAspectRatioByExpanding,
                             Qt.TransformationMode.SmoothTransformation)
        x, y = (image.width() - side) // 2, (image.height() - side) // 2
        return image.copy(x, y, side, side)
    return image.scaled(QSize(side, side), Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.SmoothTransformation)


def to_qimage(rgb) -> QImage:
    """A PIL RGB image as a QImage that owns its pixels."""
    data = rgb.tobytes()
    return QImage(data, rgb.width, rgb.height, 3 * rgb.width, QImage.Format.Format_RGB888).copy()


def read_photo(path: str | bytes, max_side: int) -> QImage | None:
    """A photo decoded the same way the face engines saw it (EXIF orientation applied), at most max_side."""
    try:
        return to_qimage(imaging.load_rgb(path, max_side=max_side))
    except imaging.ImageError:
        return None


def read_face(path: str | bytes, box: tuple[float, float, float, float], full_size: tuple[int, int],
              side: int = 160) -> QImage | None:
    """A square crop around a face box (in oriented full-size pixels), with some margin, `side` pixels."""
    x1, y1, x2, y2 = box
    full_w, full_h = full_size
    face = max(x2 - x1, y2 - y1, 1.0)
    margin = face * 0.35
    need = max(full_w, full_h) * min(1.0, side / (face + 2 * margin))  # decode no larger than the crop needs
    try:
        rgb = imaging.load_rgb(path, max_side=max(int(need * 1.3), side))
    except imaging.ImageError:
        return None
    scale = rgb.width / full_w if full_w else 1.0
    cx, cy, half = (x1 + x2) / 2 * scale, (y1 + y2) / 2 * scale, (face / 2 + margin) * scale
    crop = rgb.crop((int(cx - half), int(cy - half), int(cx + half), int(cy + half)))
    return to_qimage(crop.resize((side, side)))

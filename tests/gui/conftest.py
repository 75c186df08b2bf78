"""GUI tests run offscreen; a Qt warning or critical message fails the test that caused it (qutebrowser's rule).

Fixtures: `app` (the QApplication with the app's style), `session` (an AppSession on a fresh data folder),
`window` (the main window on it, closed and shut down after the test), `sample_photos` (photos that pip
packages ship, copied into a folder).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6.QtCore import QStandardPaths, QtMsgType, qInstallMessageHandler

# The offscreen platform plugin has no window manager: it cannot raise windows, grab the keyboard for a popup
# or pass size hints on, and says so ("This plugin does not support raise()"...). That is the test
# platform describing itself, not the app misbehaving.
PLATFORM_NOISE = ("This plugin does not support ",)

QStandardPaths.setTestModeEnabled(True)  # QSettings (the remembered data folder) go to a test location


@pytest.fixture(autouse=True)
def fail_on_qt_warnings():
    """Record every Qt warning / critical message during the test (and its teardown) and fail on any."""
    seen: list[str] = []
    previous = None

    def handler(kind, context, message):
        if kind in (QtMsgType.QtWarningMsg, QtMsgType.QtCriticalMsg, QtMsgType.QtFatalMsg) and \
                not message.startswith(PLATFORM_NOISE):
            seen.append(f"{kind.name}: {message} ({context.file}:{context.line})")
        if previous is not None:
            previous(kind, context, message)

    previous = qInstallMessageHandler(handler)
    yield seen
    qInstallMessageHandler(previous)
    if seen:
        pytest.fail("Qt warnings:\n" + "\n".join(seen), pytrace=False)


@pytest.fixture
def app(qapp):
    from myvlm_desktop.gui.app import make_app

    return make_app()


@pytest.fixture
def session(tmp_path):
    from myvlm_desktop.pipeline.app import AppSession

    s = AppSession(tmp_path / "data", watch=False)
    yield s
    s.close()


@pytest.fixture
def window(app, session, qtbot):
    from myvlm_desktop.gui.main_window import MainWindow

    w = MainWindow(session, owns_session=False)
    qtbot.addWidget(w)
    w.show()
    qtbot.waitExposed(w)
    yield w
    w.shutdown()


def package_photo(name: str) -> Path:
    """A real photo from a pip package: insightface's sample images, else scikit-image's data folder."""
    import importlib.util

    insightface = Path(importlib.util.find_spec("insightface").origin).parent / "data" / "images" / name
    if insightface.exists():
        return insightface
    import skimage

    return Path(skimage.__file__).parent / "data" / name


@pytest.fixture
def sample_photos(tmp_path) -> Path:
    return copy_sample_photos(tmp_path / "photos")


def copy_sample_photos(folder: Path) -> Path:
    """A few real photos (a group photo, its mirror, the astronaut, a cat, a coffee cup)."""
    from PIL import Image, ImageOps

    folder.mkdir(parents=True)
    shutil.copy(package_photo("t1.jpg"), folder / "group.jpg")
    ImageOps.mirror(Image.open(package_photo("t1.jpg")).convert("RGB")).save(folder / "group_mirrored.jpg")
    for name, target in (("astronaut.png", "astronaut.png"), ("chelsea.png", "cat.png"), ("coffee.png", "coffee.png")):
        shutil.copy(package_photo(name), folder / target)
    return folder


def make_photos(folder: Path, count: int, size=(96, 72)) -> Path:
    """`count` small distinct JPEGs, quick to scan."""
    import numpy as np
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(count):
        pixels = rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"img_{i:05d}.jpg", quality=70)
    return folder


@pytest.fixture(scope="session")
def many_photos(tmp_path_factory) -> Path:
    """300 camera-sized-ish photos (scanning them takes a few seconds): shared, only ever read."""
    return make_photos(tmp_path_factory.mktemp("many") / "photos", 300, size=(480, 360))


def scan_folder(qtbot, session, folder: Path) -> None:
    """Add a folder and scan it (no faces: for tests about the views, not about indexing)."""
    session.library.add_folder(folder)
    assert session.scan().wait(60).state == "done"
    qtbot.wait(10)


def wait_jobs(qtbot, session, timeout: int = 60000) -> None:
    qtbot.waitUntil(lambda: bool(session.jobs.jobs) and not session.jobs.active(), timeout=timeout)

"""Where the app's look comes from: the style sheet and SVG icons in resources/ (beside the package in a
checkout, beside the executable in a bundle, or wherever $MYVLM_RESOURCES points)."""

from __future__ import annotations

import functools
import os
import sys
from pathlib import Path

from PySide6.QtGui import QColor, QIcon

ACCENT = QColor("#3a7377")
ACCENT_SOFT = QColor("#dcebea")
TEXT = QColor("#2d3136")
MUTED = QColor("#6b7178")
SURFACE = QColor("#fdfcfa")
PLACEHOLDER = QColor("#e7e4de")
DANGER = QColor("#b4483c")


@functools.cache
def resources_dir() -> Path | None:
    candidates = [os.environ.get("MYVLM_RESOURCES"), getattr(sys, "_MEIPASS", None) and
                  str(Path(sys._MEIPASS) / "resources"), str(Path(__file__).resolve().parents[2] / "resources")]
    for candidate in candidates:
        if candidate and (Path(candidate) / "style.qss").exists():
            return Path(candidate)
    return None


def icon(name: str) -> QIcon:
    """An icon from resources/icons; an empty icon (text-only buttons) when the resources are absent."""
    root = resources_dir()
    if root is None:
        return QIcon()
    path = root / "icons" / f"{name}.svg"
    return QIcon(str(path)) if path.exists() else QIcon()


def app_icon() -> QIcon:
    root = resources_dir()
    return QIcon(str(root / "myvlm-desktop.svg")) if root else QIcon()


def stylesheet() -> str:
    root = resources_dir()
    return (root / "style.qss").read_text(encoding="utf-8") if root else ""

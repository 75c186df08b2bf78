"""`myvlm-desktop`: start the app. First run asks for photo folders (and the data folder); later runs open
the library at once and resume the jobs that were unfinished when the app last closed."""

from __future__ import annotations

import argparse
import os
import sys

from PySide6.QtCore import QSettings, QTimer
from PySide6.QtWidgets import QApplication, QMessageBox

from .. import config
from . import theme
from .workers import run_task

ORGANIZATION = "MyVLM"
DATA_DIR_KEY = "data_dir"


def _settings() -> QSettings:
    return QSettings(ORGANIZATION, config.APP_NAME)


def remembered_data_dir() -> str | None:
    value = _settings().value(DATA_DIR_KEY)
    return str(value) if value else None


def remember_data_dir(path: str) -> None:
    settings = _settings()
    settings.setValue(DATA_DIR_KEY, os.path.abspath(os.path.expanduser(path)))
    settings.sync()


def choose_data_dir(explicit: str | None) -> str:
    """--data-dir, else $MYVLM_DATA_DIR, else what the user chose before, else the platform's data folder."""
    if explicit:
        return explicit
    if os.environ.get(config.ENV_DATA_DIR):
        return os.environ[config.ENV_DATA_DIR]
    return remembered_data_dir() or str(config.data_dir())


def make_app(argv: list[str] | None = None) -> QApplication:
    app = QApplication.instance() or QApplication(argv or sys.argv[:1])
    app.setApplicationName(config.APP_NAME)
    app.setOrganizationName(ORGANIZATION)
    app.setDesktopFileName("myvlm-desktop")
    app.setWindowIcon(theme.app_icon())
    app.setStyle("Fusion")
    app.setStyleSheet(theme.stylesheet())
    return app


def open_window(data_dir: str, first_run_folders: list[str] | None = None, watch: bool | None = None):
    """Open the library in `data_dir` and its main window; returns the window (shown)."""
    from ..pipeline.app import AppSession
    from .main_window import MainWindow

    session = AppSession(data_dir, watch=watch)
    window = MainWindow(session)
    window.show()
    if first_run_folders:
        window.add_folders(first_run_folders)
    # once the window is up: resume unfinished jobs and start watching the folders (it walks them), off the GUI thread
    QTimer.singleShot(0, lambda: run_task(session.start, owner=window))
    return window


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="myvlm-desktop", description="MyVLM Desktop")
    parser.add_argument("--data-dir", help="the app's data folder (default: the one chosen at first run)")
    parser.add_argument("folders", nargs="*", help="photo folders to add")
    parser.add_argument("--self-test", action="store_true",
                        help="run every stage (scan, index, cluster, name, detect, ask, search, train and caption on "
                             "a tiny random VLM) on sample photos offscreen; exit 0 if all work, else 1")
    args = parser.parse_args(argv)
    if args.self_test:
        os.environ["QT_QPA_PLATFORM"] = "offscreen"
        from . import selftest

        return selftest.run(make_app([sys.argv[0]]))
    app = make_app([sys.argv[0]])
    data_dir = choose_data_dir(args.data_dir)
    folders, models = list(args.folders), []
    if not folders and _is_first_run(data_dir):
        from .dialogs import FirstRunDialog

        dialog = FirstRunDialog(data_dir)
        if dialog.exec() != FirstRunDialog.DialogCode.Accepted:
            return 0
        folders, data_dir = dialog.chosen()
        models = dialog.models_step.chosen()
        remember_data_dir(data_dir)
    try:
        window = open_window(data_dir, folders)
    except (RuntimeError, OSError) as exc:  # a database from a newer version, a data folder we cannot write
        QMessageBox.critical(None, config.APP_NAME, f"Cannot open the library in {data_dir}:\n{exc}")
        return 1
    app.aboutToQuit.connect(window.shutdown)
    if models:
        from .model_dialog import download_in_turn

        download_in_turn(window, models, config.models_dir(window.session.library.root))
    return app.exec()


def _is_first_run(data_dir: str) -> bool:
    from ..pipeline.settings import library_has_folders

    return not library_has_folders(data_dir)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

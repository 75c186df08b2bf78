"""Settings > Library > Restore puts a backup back while the app runs; a damaged thumbnail is made again."""

from PySide6.QtWidgets import QFileDialog, QPushButton

from myvlm_desktop.gui.dialogs import SettingsDialog


def _concepts(session):
    return [r["name"] for r in session.db.query("SELECT name FROM concepts ORDER BY name")]


def test_restore_from_settings_brings_names_back(window, session, qtbot, monkeypatch):
    session.db.write(lambda c: c.execute(
        "INSERT INTO concepts(name, kind, identifier, created_at) VALUES ('Alice', 'person', '<Alice>', 0)"))
    saved = session.db.backup()
    session.db.write(lambda c: c.execute("UPDATE concepts SET name = 'Mallory', identifier = '<Mallory>'"))
    dialog = SettingsDialog(session.settings, session.library.folders(), str(session.library.root), window)
    qtbot.addWidget(dialog)
    dialog.restore_backup.connect(window.restore_backup)
    chosen = []

    def pick(parent, caption, start, filters):
        chosen.append(start)
        return str(saved), filters

    monkeypatch.setattr(QFileDialog, "getOpenFileName", pick)
    dialog.findChild(QPushButton, "restoreBackup").click()
    qtbot.waitUntil(lambda: _concepts(session) == ["Alice"], timeout=10000)
    assert chosen == [str(session.library.root / "backups")]
    assert dialog.result() == SettingsDialog.DialogCode.Rejected  # nothing else of the dialog is applied
    qtbot.waitUntil(lambda: "restored" in window.statusBar().currentMessage())


def test_cancelling_the_file_chooser_restores_nothing(window, session, qtbot, monkeypatch):
    session.db.write(lambda c: c.execute(
        "INSERT INTO concepts(name, kind, identifier, created_at) VALUES ('Alice', 'person', '<Alice>', 0)"))
    dialog = SettingsDialog(session.settings, session.library.folders(), str(session.library.root), window)
    qtbot.addWidget(dialog)
    emitted = []
    dialog.restore_backup.connect(emitted.append)
    monkeypatch.setattr(QFileDialog, "getOpenFileName", lambda *a: ("", ""))
    dialog.findChild(QPushButton, "restoreBackup").click()
    assert emitted == [] and _concepts(session) == ["Alice"]


def test_the_photo_grid_shows_a_rebuilt_thumbnail_for_a_damaged_cache_entry(app, tmp_path, session, qtbot):
    from myvlm_desktop.gui.images import ImageCache
    from myvlm_desktop.gui.models import THUMB_ROLE, PhotoListModel, PhotoSource
    from myvlm_desktop.library import thumbs
    from myvlm_desktop.library.scan import scan_library
    from tests.conftest import make_jpeg

    photo = make_jpeg(tmp_path / "photos" / "a.jpg", size=(200, 150), seed=3)
    session.library.add_folder(photo.parent)
    scan_library(session.library)
    row = session.library.db.query("SELECT id, hash, path FROM photos")[0]
    session.library.thumbnail_path(row["hash"]).write_bytes(b"garbage")
    cache = ImageCache()
    model = PhotoListModel(session.library.thumbnail_path, cache)
    rows = [(row["id"], row["hash"], row["path"])]
    model.set_source(PhotoSource(lambda: len(rows), lambda offset, limit: rows[offset:offset + limit]))
    model.data(model.index(0), THUMB_ROLE)
    qtbot.waitUntil(lambda: model.data(model.index(0), THUMB_ROLE) is not None, timeout=5000)
    assert thumbs.usable(session.library.thumbnail_path(row["hash"]))
    cache.shutdown()

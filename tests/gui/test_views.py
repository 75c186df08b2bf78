"""The views on their own: the lazy photo grid, the search bar, the viewer, settings and the first-run dialog."""

from __future__ import annotations

import time

from PySide6.QtCore import QModelIndex, Qt
from PySide6.QtGui import QPixmap

from myvlm_desktop.gui.dialogs import FirstRunDialog, SettingsDialog
from myvlm_desktop.gui.images import ImageCache
from myvlm_desktop.gui.models import PAGE, THUMB_ROLE, PhotoListModel, PhotoSource
from myvlm_desktop.gui.widgets import PhotoGrid
from myvlm_desktop.pipeline.settings import load_settings
from tests.gui.conftest import make_photos, scan_folder, wait_jobs


def test_the_grid_fetches_100000_photos_a_page_at_a_time(app, qtbot, tmp_path):
    """Rows arrive page by page as the view asks; only visible cells ask for thumbnails."""
    make_photos(tmp_path / "thumbs", 1)
    thumb = tmp_path / "thumbs" / "img_00000.jpg"
    pages = []

    def page(offset, limit):
        pages.append((offset, limit))
        return [(i, f"h{i % 50}", f"/photos/{i}.jpg") for i in range(offset, min(offset + limit, 100_000))]

    cache = ImageCache()
    model = PhotoListModel(lambda h: thumb, cache)
    model.set_source(PhotoSource(lambda: 100_000, page))
    assert model.total() == 100_000 and model.rowCount() == PAGE and pages == [(0, PAGE)]
    grid = PhotoGrid()
    qtbot.addWidget(grid)
    grid.resize(900, 600)
    grid.setModel(model)
    grid.show()
    qtbot.waitExposed(grid)
    started = time.perf_counter()
    for _ in range(40):  # scroll to the bottom in big steps, as a user flinging the scroll bar would
        grid.verticalScrollBar().setValue(grid.verticalScrollBar().maximum())
        app.processEvents()
    elapsed = time.perf_counter() - started
    assert PAGE < model.rowCount() < 100_000  # fetched more, never all at once
    assert all(limit == PAGE for _, limit in pages)
    assert elapsed < 20  # generous: a shared 2-core machine; the benchmark measures the real figure
    # thumbnails: the first ask returns nothing (a worker decodes), then the pixmap is there
    index = model.index(0)
    qtbot.waitUntil(lambda: isinstance(model.data(index, THUMB_ROLE), QPixmap), timeout=5000)
    assert model.data(index, THUMB_ROLE).width() == model.side
    cache.shutdown()


def test_search_bar_completes_names_and_shows_errors_inline(window, session, qtbot):
    session.db.write(lambda c: c.execute("INSERT INTO concepts(name, kind, identifier, created_at) "
                                         "VALUES ('Alice', 'person', '<Alice>', 0), ('Uncle Bob', 'person', "
                                         "'<Uncle Bob>', 0), ('Rex', 'pet', '<Rex>', 0)"))
    window.refresh_all()
    bar = window.search_bar
    assert sorted(bar.names()) == ["Alice", "Rex", "Uncle Bob"]
    qtbot.keyClicks(bar, "beach @un")
    popup = bar._completer.popup()
    qtbot.waitUntil(popup.isVisible)
    assert bar._completer.currentCompletion() == "Uncle Bob"
    bar._completer.activated[str].emit("Uncle Bob")
    assert bar.text() == 'beach @"Uncle Bob" '
    popup.hide()

    bar.setText('@Alice AND (beach')
    qtbot.keyClick(bar, Qt.Key.Key_Return)
    qtbot.waitUntil(window.search_error.isVisible)
    assert "unclosed '('" in window.search_error.text()
    assert bar.property("error") is True
    assert window.current_page() == "search"

    bar.setText("@Nobody")
    qtbot.keyClick(bar, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: "Nobody" in window.search_error.text())
    assert "@Alice" in window.search_error.text()  # the message lists the names that do exist

    qtbot.keyClicks(bar, "x")  # typing again clears the error mark
    assert bar.property("error") is False


def test_search_shows_matching_photos_and_the_viewer_walks_through_them(window, session, qtbot, tmp_path):
    folder = make_photos(tmp_path / "photos", 12)
    for i, path in enumerate(sorted(folder.iterdir())):
        path.rename(folder / (f"beach_{i}.jpg" if i < 5 else f"city_{i}.jpg"))
    scan_folder(qtbot, session, folder)
    window.search_bar.setText("beach")
    qtbot.keyClick(window.search_bar, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: window.current_page() == "search" and window.search_model.rowCount() == 5)
    assert window.search_count.text() == "5 photos"
    first = window.search_model.photo_id(0)
    window.search_grid.activated.emit(window.search_model.index(0))
    assert window.current_page() == "viewer" and window.viewer.detail["id"] == first
    assert window.chat.photo_id == first
    qtbot.waitUntil(lambda: window.viewer.canvas.pixmap is not None)
    qtbot.keyClick(window.viewer, Qt.Key.Key_Right)
    assert window.viewer.detail["id"] == window.search_model.photo_id(1)
    assert window.viewer.title.text().startswith("beach_")
    qtbot.keyClick(window.viewer, Qt.Key.Key_Escape)
    assert window.current_page() == "search"


def test_viewer_draws_face_boxes_with_names_and_the_newest_caption(window, session, qtbot, tmp_path):
    scan_folder(qtbot, session, make_photos(tmp_path / "photos", 1, size=(400, 300)))
    photo_id = session.views.photo_page(0, 1)[0][0]

    def annotate(conn):  # what indexing, naming and captioning leave in the library
        concept = conn.execute("INSERT INTO concepts(name, kind, identifier, created_at) "
                               "VALUES ('Alice', 'person', '<Alice>', 0)").lastrowid
        cluster = conn.execute("INSERT INTO clusters(kind, concept_id, created_at) VALUES ('face', ?, 0)",
                               (concept,)).lastrowid
        for x, cluster_id in ((40, cluster), (240, None)):
            conn.execute("INSERT INTO faces(photo_id, x1, y1, x2, y2, embedding, engine, cluster_id, created_at) "
                         "VALUES (?, ?, 60, ?, 160, x'00', 'test', ?, 0)", (photo_id, x, x + 100, cluster_id))
        for when, text in ((1, "an old caption"), (2, "<Alice> on the beach")):
            conn.execute("INSERT INTO captions(photo_id, text, backend, model, created_at) "
                         "VALUES (?, ?, 'smolvlm', 'tiny', ?)", (photo_id, text, when))

    session.db.write(annotate)
    window.open_photo(photo_id, window.library_model)
    viewer = window.viewer
    qtbot.waitUntil(lambda: viewer.canvas.pixmap is not None)
    assert viewer.caption.text() == "<Alice> on the beach"
    names = [f["name"] for f in viewer.canvas.faces]
    assert names == ["Alice", None]
    viewer.canvas.resize(800, 600)
    box = viewer.canvas.face_rect(viewer.canvas.faces[0])
    image = viewer.canvas.image_rect()
    assert abs(box.width() / image.width() - 100 / 400) < 0.01  # the box scales with the photo
    shot = viewer.canvas.grab().toImage()
    label_y = int(box.bottom() + 12)
    accent = [shot.pixelColor(int(box.center().x()) + dx, label_y) for dx in range(-3, 4)]
    assert any(c.green() > c.red() + 30 for c in accent)  # the teal name label is drawn under the box


def test_settings_are_saved_off_the_gui_thread(window, session, qtbot, tmp_path):
    dialog = SettingsDialog(session.settings, session.library.folders(), str(session.library.root), window)
    dialog.combos["face_engine"].setCurrentIndex(dialog.combos["face_engine"].findData("dlib"))
    dialog.combos["device"].setCurrentIndex(dialog.combos["device"].findData("cpu"))
    dialog.folders.add(str(make_photos(tmp_path / "more", 2)))
    change = dialog.change()
    assert change.settings == {"face_engine": "dlib", "device": "cpu"}
    assert change.add_folders == [str(tmp_path / "more")]
    window.apply_settings(change)
    qtbot.waitUntil(lambda: session.settings["face_engine"] == "dlib")
    assert load_settings(session.db)["device"] == "cpu"
    assert session.library.folders() == [str(tmp_path / "more")]
    wait_jobs(qtbot, session)
    assert session.views.photo_count() == 2


def test_first_run_dialog_collects_folders_and_the_data_folder(app, qtbot, tmp_path):
    dialog = FirstRunDialog(str(tmp_path / "data"))
    qtbot.addWidget(dialog)
    dialog.folders.add(str(tmp_path / "a"))
    dialog.folders.add(str(tmp_path / "a"))  # once only
    dialog.folders.add(str(tmp_path / "b"))
    dialog.folders.list.setCurrentRow(1)
    dialog.folders.remove_selected()
    dialog.data_dir.setText(str(tmp_path / "elsewhere"))
    assert dialog.chosen() == ([str(tmp_path / "a")], str(tmp_path / "elsewhere"))


def test_empty_library_offers_to_add_a_folder(window):
    assert window.library_body.currentWidget() is window.library_empty
    assert window.library_empty.button.text() == "Add a folder…"
    assert window.library_model.rowCount(QModelIndex()) == 0


def test_model_manager_lists_models_and_explains_a_failed_download(window, qtbot, monkeypatch):
    for variable in ("HTTPS_PROXY", "HTTP_PROXY", "https_proxy", "http_proxy"):  # offline, even on a CI with internet
        monkeypatch.setenv(variable, "http://127.0.0.1:9")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    dialog = window.open_models()
    qtbot.waitUntil(lambda: dialog.table.rowCount() > 0, timeout=20000)
    rows = {dialog.table.item(r, 0).text(): r for r in range(dialog.table.rowCount())}
    assert dialog.table.item(rows["dlib"], 3).text() == "Installed"  # shipped in a pip package
    insightface = rows["insightface-buffalo_l"]
    assert dialog.table.item(insightface, 3).text() == "Not installed"
    dialog.table.setCurrentCell(insightface, 0)
    assert "weights not found" in dialog.message.text()
    button = dialog.table.cellWidget(insightface, 4)
    qtbot.mouseClick(button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: dialog.downloading is None and "Download failed" in dialog.message.text(),
                    timeout=60000)
    text = dialog.message.text()
    assert "cannot connect" in text and "offline" in text  # what happened and what to do
    assert not dialog.bar.isVisible()
    dialog.close()

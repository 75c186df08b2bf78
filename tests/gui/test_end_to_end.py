"""End to end through the window, on real photos that pip packages ship: add a folder -> indexing completes
-> clusters appear -> name one in the UI -> `@Name` in the search bar shows its photos -> undo removes it.
Then the People & Pets operations a user reaches for: merge (picking the survivor), split, reject, hide, redo.
"""

from __future__ import annotations

import os
import shutil

import pytest
from PySide6.QtCore import QItemSelectionModel, Qt, QTimer
from PySide6.QtWidgets import QApplication

from myvlm_desktop.gui.dialogs import MergeDialog, NameDialog
from myvlm_desktop.gui.main_window import MainWindow
from myvlm_desktop.pipeline.app import AppSession
from tests.gui.conftest import copy_sample_photos, wait_jobs


@pytest.fixture(scope="module")
def indexed(tmp_path_factory, qapp):
    """The sample photos processed once by the real pipeline (scan, faces, embeddings, clusters, heads)."""
    root = tmp_path_factory.mktemp("indexed")
    folder = copy_sample_photos(root / "photos")
    session = AppSession(root / "data", watch=False)
    session.library.add_folder(folder)
    job = session.process_all(("scan", "index", "cluster", "detect"))
    assert job.wait(600).state == "done", job.status.error
    skipped = {s["stage"]: s["skipped"] for s in job.status.result if s["skipped"]}
    assert "index" not in skipped and "cluster" not in skipped, skipped
    session.close()
    return root


@pytest.fixture
def library_window(indexed, tmp_path, app, qtbot):
    """A window on a fresh copy of the indexed library (each test may change it as it likes)."""
    shutil.copytree(indexed / "data", tmp_path / "data")
    session = AppSession(tmp_path / "data", watch=False)
    window = MainWindow(session)
    qtbot.addWidget(window)
    window.resize(1200, 800)
    window.show()
    qtbot.waitExposed(window)
    yield window
    window.shutdown()


def answer_dialog(qtbot, kind, fill) -> None:
    """Fill the next modal dialog of `kind` as a user would, once it is open."""
    def act():
        dialog = QApplication.activeModalWidget()
        if not isinstance(dialog, kind):
            QTimer.singleShot(20, act)
            return
        fill(dialog)

    QTimer.singleShot(0, act)


def face_cards(page) -> list[dict]:
    return [r["cluster"] for r in page.clusters_model.rows() if r["cluster"]["cluster_kind"] == "face"]


def select(grid, rows: list[int]) -> None:
    grid.selectionModel().clearSelection()
    for row in rows:
        grid.selectionModel().select(grid.model().index(row), QItemSelectionModel.SelectionFlag.Select)


def test_add_folder_index_cluster_name_search_undo(app, session, qtbot, sample_photos):
    window = MainWindow(session, owns_session=False)
    qtbot.addWidget(window)
    window.show()
    window.add_folders([str(sample_photos)])
    wait_jobs(qtbot, session, timeout=600000)
    job = next(iter(session.jobs.jobs.values()))
    assert job.status.state == "done"
    qtbot.waitUntil(lambda: window.library_model.rowCount() == 5)

    window.sidebar.setCurrentRow(1)  # People & Pets
    page = window.people_page
    qtbot.waitUntil(lambda: len(face_cards(page)) >= 6, timeout=10000)
    cards = face_cards(page)
    pairs = [c for c in cards if c["size"] == 2]
    assert len(pairs) >= 6  # each of the 6 people of the group photo, with their mirrored face
    target = pairs[0]
    row = next(i for i, r in enumerate(page.clusters_model.rows()) if r["id"] == target["id"])
    select(page.grid, [row])
    assert page.name_button.isEnabled()

    def name_alice(dialog: NameDialog) -> None:
        dialog.name.setText("Alice")
        dialog.accept()

    answer_dialog(qtbot, NameDialog, name_alice)
    qtbot.mouseClick(page.name_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: any(r["title"] == "Alice" for r in page.clusters_model.rows()), timeout=10000)
    qtbot.waitUntil(lambda: "Alice" in window.search_bar.names())

    bar = window.search_bar
    bar.clear()
    qtbot.keyClicks(bar, "@Ali")
    qtbot.waitUntil(bar._completer.popup().isVisible)
    bar._completer.activated[str].emit(bar._completer.currentCompletion())
    bar._completer.popup().hide()
    assert bar.text() == "@Alice "
    qtbot.keyClick(bar, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: window.current_page() == "search" and window.search_model.rowCount() == 2)
    names = {os.path.basename(session.views.photo_detail(pid)["path"]) for pid in window.search_model.photo_ids()}
    assert names == {"group.jpg", "group_mirrored.jpg"}

    qtbot.keyClick(window, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)  # undo the naming
    qtbot.waitUntil(lambda: "Alice" not in window.search_bar.names(), timeout=10000)
    qtbot.waitUntil(window.search_error.isVisible)  # the open search is run again: Alice is gone
    assert "@Alice" in window.search_error.text()
    window.show_page("people")
    qtbot.waitUntil(lambda: not any(r["title"] == "Alice" for r in page.clusters_model.rows()))
    window.shutdown()


def test_merge_split_reject_hide_and_redo_from_the_people_page(library_window, qtbot):
    window, session = library_window, library_window.session
    window.show_page("people")
    page = window.people_page
    qtbot.waitUntil(lambda: len(face_cards(page)) >= 6, timeout=10000)
    rows = page.clusters_model.rows()
    first, second = [i for i, r in enumerate(rows) if r["cluster"]["cluster_kind"] == "face"][:2]
    survivor = rows[second]["id"]
    select(page.grid, [first, second])
    assert page.merge_button.isEnabled() and not page.name_button.isEnabled()

    def keep_second(dialog: MergeDialog) -> None:
        dialog.list.setCurrentRow(1)  # the user picks the survivor
        dialog.accept()

    answer_dialog(qtbot, MergeDialog, keep_second)
    qtbot.mouseClick(page.merge_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: any(c["id"] == survivor and c["size"] == 4 for c in face_cards(page)), timeout=10000)
    assert rows[first]["id"] not in {c["id"] for c in face_cards(page)}

    page.show_cluster(next(c for c in face_cards(page) if c["id"] == survivor))
    qtbot.waitUntil(lambda: page.faces_model.rowCount() == 4)
    select(page.faces_grid, [0, 1])
    qtbot.mouseClick(page.split_button, Qt.MouseButton.LeftButton)  # two faces become a group of their own
    qtbot.waitUntil(lambda: page.faces_model.rowCount() == 2, timeout=10000)
    assert sorted(c["size"] for c in face_cards(page) if c["size"] == 2).count(2) >= 6

    session.people.op("name_cluster", survivor, "Bob", kind="person")
    page.refresh()
    qtbot.waitUntil(lambda: page.open_cluster is not None and page.open_cluster["concept"] == "Bob")
    select(page.faces_grid, [0])
    rejected = page.faces_model.row_data(0)["id"]
    assert page.reject_button.isEnabled()
    qtbot.mouseClick(page.reject_button, Qt.MouseButton.LeftButton)  # "not Bob"
    qtbot.waitUntil(lambda: page.faces_model.rowCount() == 1, timeout=10000)
    assert session.db.scalar("SELECT count(*) FROM rejections WHERE face_id = ?", (rejected,)) == 1

    page.show_overview()
    hide_row = next(i for i, r in enumerate(page.clusters_model.rows()) if r["id"] == survivor)
    select(page.grid, [hide_row])
    qtbot.mouseClick(page.hide_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: survivor not in {c["id"] for c in face_cards(page)}, timeout=10000)

    window.undo_action.trigger()  # Ctrl+Z: shown again
    qtbot.waitUntil(lambda: survivor in {c["id"] for c in face_cards(page)}, timeout=10000)
    window.redo_action.trigger()  # Ctrl+Shift+Z: hidden again
    qtbot.waitUntil(lambda: survivor not in {c["id"] for c in face_cards(page)}, timeout=10000)


def test_suggestions_ask_is_this_carol_and_remember_the_answer(library_window, qtbot):
    """A face split off Carol's group is offered back as "Is this Carol?"; yes joins it, no is remembered."""
    window, session = library_window, library_window.session
    carol = next(c for c in session.people.clusters() if c["cluster_kind"] == "face" and c["size"] == 2)
    session.people.op("name_cluster", carol["id"], "Carol", kind="person")
    session.people.op("split", carol["id"], [session.people.members(carol["id"])[0]["id"]])
    window.show_page("people")
    page = window.people_page
    strip = page.suggestions
    qtbot.waitUntil(lambda: strip.isVisible() and len(strip.cards) == 1, timeout=10000)
    card = strip.cards[0]
    assert card.text.text() == "Is this <b>Carol</b>?"
    qtbot.mouseClick(card.yes, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: any(c["concept"] == "Carol" and c["size"] == 2 for c in face_cards(page)), timeout=10000)
    qtbot.waitUntil(lambda: not strip.isVisible())

    session.people.op("split", carol["id"], [session.people.members(carol["id"])[0]["id"]])
    page.refresh()
    qtbot.waitUntil(lambda: strip.isVisible() and len(strip.cards) == 1, timeout=10000)
    qtbot.mouseClick(strip.cards[0].no, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not strip.isVisible(), timeout=10000)
    assert session.people.suggestions() == []  # "not Carol" is remembered
    assert session.db.scalar("SELECT count(*) FROM rejections") == 1

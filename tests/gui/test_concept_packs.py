"""Concept packs in the window: export and import from the concept page, and a .myvlm dropped on the window."""

from __future__ import annotations

import torch
from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
from PySide6.QtGui import QDropEvent

from myvlm_desktop import config
from myvlm_desktop.library.scan import scan_library
from myvlm_desktop.people import ops
from myvlm_desktop.vlm.concept import ConceptVector, save_concept_vector
from tests.gui.conftest import make_photos


def _drop(window, path) -> None:
    data = QMimeData()
    data.setUrls([QUrl.fromLocalFile(str(path))])
    event = QDropEvent(QPointF(10, 10), Qt.DropAction.CopyAction, data, Qt.MouseButton.LeftButton,
                       Qt.KeyboardModifier.NoModifier)
    window.dropEvent(event)


def test_export_button_then_drop_the_pack_back(window, session, qtbot, tmp_path):
    session.library.add_folder(make_photos(tmp_path / "photos", 2))
    scan_library(session.library)
    ids = [r["id"] for r in session.db.query("SELECT id FROM photos")]
    rex = ops.create_concept_from_photos(session.library, "Rex", "pet", ids)
    save_concept_vector(config.concepts_dir(session.library.root) / str(rex["id"]) / "smolvlm.safetensors",
                        ConceptVector("Rex", "<Rex>", "pet", torch.ones(16), "smolvlm", "tiny"))
    window.show_page("concepts")
    page = window.concept_page
    page.refresh()
    qtbot.waitUntil(lambda: page.concept is not None and page.concept["name"] == "Rex")
    target = tmp_path / "rex.myvlm"
    page.ask_save_path = lambda suggested: str(target)
    qtbot.mouseClick(page.export_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: "Exported Rex" in window.statusBar().currentMessage())
    assert target.exists()

    ops.delete_concept(session.library, "Rex")
    (tmp_path / "bad.myvlm").write_bytes(b"not a zip")
    _drop(window, tmp_path / "bad.myvlm")
    qtbot.waitUntil(lambda: "Could not import" in window.statusBar().currentMessage())
    assert session.db.scalar("SELECT count(*) FROM concepts") == 0

    _drop(window, target)
    qtbot.waitUntil(lambda: "Imported Rex" in window.statusBar().currentMessage())
    assert "embedding (smolvlm, tiny)" in window.statusBar().currentMessage()
    assert window.current_page() == "concepts"
    qtbot.waitUntil(lambda: any(page.list.item(i).text().startswith("Rex") for i in range(page.list.count())))

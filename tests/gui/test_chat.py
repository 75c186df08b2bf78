"""The chat panel: a clear message when no VLM is installed; with a tiny random VLM loaded through the real
loader, answers stream in token by token, are stored, and come back as the photo's history."""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt

from myvlm_desktop.gui.dialogs import ModelManagerDialog
from myvlm_desktop.pipeline.settings import save_settings
from tests.gui.conftest import make_photos, wait_jobs


def _visible(text: str) -> str:
    """The text without whitespace and control characters (a random model emits some; the final text may
    drop them)."""
    return "".join(ch for ch in text if ch.isprintable() and not ch.isspace())


def _library_with_photos(window, session, qtbot, tmp_path, count=2):
    window.add_folders([str(make_photos(tmp_path / "photos", count, size=(64, 64)))])
    wait_jobs(qtbot, session)
    return [row[0] for row in session.views.photo_page(0, count)]


def test_without_a_vlm_the_panel_says_so_and_opens_the_model_manager(window, session, qtbot, tmp_path):
    photo, _ = _library_with_photos(window, session, qtbot, tmp_path)
    session.settings["vlm_model"] = str(tmp_path / "no-model-here")
    window.open_photo(photo, window.library_model)
    chat = window.chat
    assert chat.input.isEnabled()
    qtbot.keyClicks(chat.input, "What is <Alice> holding?")
    qtbot.keyClick(chat.input, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: not chat.busy, timeout=60000)
    assert chat.banner.isVisible()
    text = chat.banner_text.text()
    assert "No vision-language model is installed" in text and "no-model-here" in text
    assert chat.messages == []  # nothing half-answered is left behind
    assert chat.input.text() == "What is <Alice> holding?"  # the question is kept to ask again
    assert session.views.chat_history(photo) == []
    assert chat.models_button.isVisible()
    qtbot.mouseClick(chat.models_button, Qt.MouseButton.LeftButton)
    dialog = window.findChild(ModelManagerDialog)
    assert dialog is not None and dialog.isVisible()
    dialog.close()


@pytest.mark.slow
def test_tiny_vlm_answers_stream_token_by_token_and_are_kept_per_photo(window, session, qtbot, tmp_path):
    from myvlm_desktop.vlm.testing import save_tiny_model

    photo, other = _library_with_photos(window, session, qtbot, tmp_path)
    session.settings.update(save_settings(session.db, {
        "vlm_backend": "smolvlm", "vlm_model": str(save_tiny_model("smolvlm", tmp_path / "vlm")), "device": "cpu"}))
    window.open_photo(photo, window.library_model)
    chat = window.chat
    pieces = []
    chat.input.setText("What is in this photo?")
    chat.send()
    chat._stream.token.connect(pieces.append)
    assert chat.busy and not chat.input.isEnabled()
    qtbot.waitUntil(lambda: not chat.busy, timeout=90000)
    assert not chat.banner.isVisible(), chat.banner_text.text()
    answer = chat.messages[-1]["answer"]
    assert len(pieces) > 1 and _visible("".join(pieces)) == _visible(answer)  # streamed, then complete
    stored = session.views.chat_history(photo)
    assert [(h["question"], h["answer"]) for h in stored] == [("What is in this photo?", answer)]
    assert stored[0]["backend"] == "smolvlm"

    window.open_photo(other, window.library_model)  # another photo: its own, empty history
    assert chat.transcript() == []
    window.open_photo(photo, window.library_model)  # back again: the stored exchange is there
    assert chat.transcript() == [("What is in this photo?", answer)]
    assert "What is in this photo?" in chat.history.toPlainText()


def test_turning_to_library_questions_preloads_the_phrasing_model_once_off_the_gui_thread(window, qtbot,
                                                                                          monkeypatch):
    import threading

    from myvlm_desktop.gui import chat as chat_module
    from myvlm_desktop.gui.workers import wait_for_tasks

    loads = []
    monkeypatch.setattr(chat_module, "preload_phraser",
                        lambda library: loads.append((library, threading.current_thread())))
    chat = window.chat
    chat.set_scope("photo")
    assert loads == []  # a photo question needs the VLM, not SmolLM2
    chat.set_scope("library")
    chat.set_scope("photo")
    chat.set_scope("library")
    assert wait_for_tasks()
    assert len(loads) == 1
    assert loads[0][0] is chat.session.library
    assert loads[0][1] is not threading.main_thread()

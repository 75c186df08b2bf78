"""The "Review <Alice>" dialog: photo, crop and score; Y / N / arrows / Ctrl+Z drive the review session."""

from PySide6.QtCore import Qt

from myvlm_desktop.concepts.review import ReviewSession
from myvlm_desktop.concepts.train import concept_members
from myvlm_desktop.gui.review import ReviewDialog
from tests.concepts.helpers import make_alice


def test_keys_answer_skip_go_back_and_undo(app, qtbot, library, photo_dir):
    alice = make_alice(library, photo_dir)
    review = ReviewSession(library, "Alice")
    dialog = ReviewDialog(review)
    qtbot.addWidget(dialog)
    assert dialog.windowTitle() == "Review Alice" and dialog.position.text() == "1 of 3"
    assert not dialog.photo.pixmap().isNull() and not dialog.crop.pixmap().isNull()
    assert "score 0.53" in dialog.detail.text() and not dialog.undo_button.isEnabled()

    qtbot.keyClick(dialog, Qt.Key.Key_N)                  # not Alice
    assert review.answers == {0: "no"} and dialog.position.text() == "2 of 3"
    qtbot.keyClick(dialog, Qt.Key.Key_Right)              # skip
    assert dialog.position.text() == "3 of 3" and "another face" in dialog.detail.text()
    qtbot.keyClick(dialog, Qt.Key.Key_Left)               # back to the skipped one
    qtbot.keyClick(dialog, Qt.Key.Key_Y)                  # Alice after all
    members = concept_members(library.db, alice.concept)
    assert alice.faces["doubt"] in members["rejected_face_ids"] and alice.faces["likely"] in members["face_ids"]

    qtbot.keyClick(dialog, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)  # undo the "yes"
    assert dialog.position.text() == "2 of 3" and alice.faces["likely"] not in concept_members(
        library.db, alice.concept)["face_ids"]
    qtbot.keyClick(dialog, Qt.Key.Key_Right)
    qtbot.keyClick(dialog, Qt.Key.Key_Right)
    assert dialog.title.text() == "Nothing left to review" and not dialog.yes.isEnabled()
    assert review.changed  # the "no" stands: the page retrains the head when the dialog closes

"""A job the user started that fails: its whole reason stays on screen, with what to do, until dismissed."""

from __future__ import annotations

from PySide6.QtCore import Qt

from myvlm_desktop.gui.error_banner import advice

REASON = ("HuggingFaceTB/SmolVLM-256M-Instruct: weights not found (looked in: /a/very/long/data/folder/models, "
          "/another/long/cache/folder/huggingface/hub). Get it with `myvlm models download "
          "HuggingFaceTB/SmolVLM-256M-Instruct` or Choose folder in the model dialog, for <Eileen>.")


def fail(message: str, error=RuntimeError):
    def run(control, **params):
        raise error(message)
    return run


def test_a_failed_job_shows_its_whole_reason_until_dismissed(window, session, qtbot):
    job = session.jobs.submit("train", {"concept": 1}, fn=fail(REASON))
    banner = window.error_banner
    qtbot.waitUntil(banner.isVisible, timeout=10000)
    assert job.status.state == "failed"
    assert banner.text.text() == f"RuntimeError: {REASON}"  # whole, "<Eileen>" included, not cut off
    assert banner.text.wordWrap() and banner.text.textFormat() == Qt.TextFormat.PlainText
    assert "Training a concept failed" in banner.title.text()
    assert banner.next_step.text()  # what to do next
    qtbot.waitUntil(lambda: job.status.id in window.jobs_panel.rows)
    row = window.jobs_panel.rows[job.status.id]
    qtbot.waitUntil(lambda: row.view.state == "failed")
    assert row.message.text() == f"RuntimeError: {REASON}" and row.message.wordWrap()  # the panel keeps it
    qtbot.wait(6500)  # longer than a status-bar message lives
    assert banner.isVisible() and REASON in banner.text.text()
    qtbot.mouseClick(banner.jobs_button, Qt.MouseButton.LeftButton)
    assert window.jobs_dock.isVisible()
    qtbot.mouseClick(banner.dismiss_button, Qt.MouseButton.LeftButton)
    assert not banner.isVisible()


def test_two_failures_show_the_newest_and_then_the_older_one(window, session, qtbot):
    first = session.jobs.submit("caption", {}, fn=fail("disk full while writing captions"))
    first.wait(10)
    qtbot.waitUntil(window.error_banner.isVisible, timeout=10000)
    second = session.jobs.submit("detect", {}, fn=fail("the face model file is damaged"))
    second.wait(10)
    banner = window.error_banner
    qtbot.waitUntil(lambda: "damaged" in banner.text.text(), timeout=10000)
    assert "(and 1 more)" in banner.title.text()
    assert banner.next_step.text() == advice("detect", "the face model file is damaged")
    banner.dismiss()
    assert banner.isVisible() and "disk full" in banner.text.text()
    assert "Press Process again" in banner.next_step.text()
    banner.dismiss()
    assert not banner.isVisible()


def test_a_cancelled_job_is_not_an_error(window, session, qtbot):
    job = session.jobs.submit("scan", {}, fn=lambda control, **p: control.cancel() or control.check())
    job.wait(10)
    qtbot.wait(500)
    assert job.status.state != "failed" and not window.error_banner.isVisible()


def test_a_concept_pack_that_cannot_be_imported_stays_on_screen(window, qtbot, tmp_path):
    bad = tmp_path / "bad.myvlm"
    bad.write_bytes(b"not a zip")
    window.concept_page.import_pack(str(bad))
    banner = window.error_banner
    qtbot.waitUntil(banner.isVisible, timeout=10000)
    assert banner.title.text().startswith("<b>Could not import") and str(bad) in banner.title.text()
    assert banner.text.text() and "import it again" in banner.next_step.text()

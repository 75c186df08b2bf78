"""Background work from the window: progress reaches the jobs panel, cancel is quick, closing loses nothing."""

from __future__ import annotations

import time

from PySide6.QtCore import Qt

from myvlm_desktop.gui.main_window import MainWindow
from myvlm_desktop.pipeline.app import AppSession
from tests.gui.conftest import make_photos, wait_jobs


def test_adding_a_folder_scans_it_in_the_background_and_fills_the_grid(window, session, qtbot, tmp_path):
    folder = make_photos(tmp_path / "photos", 6)
    window.add_folders([str(folder)])
    wait_jobs(qtbot, session)
    assert [j.status.state for j in session.jobs.jobs.values()] == ["done"]
    stages = {s["stage"]: s for s in session.jobs.jobs[1].status.result}
    assert stages["scan"]["result"]["indexed"] == 6 and stages["index"]["result"]["photos"] == 6
    qtbot.waitUntil(lambda: window.library_model.rowCount() == 6)
    assert window.library_count.text() == "6 photos"
    assert window.library_body.currentWidget() is window.library_grid
    row = next(iter(window.jobs_panel.rows.values()))
    qtbot.waitUntil(lambda: row.view.state == "done")  # the last update crosses threads as a queued signal
    assert row.bar.value() == 1000 and row.eta.text() == "done"
    assert window.job_indicator.label.text() == "All done"


def test_cancel_in_the_jobs_panel_stops_the_job_within_a_second(window, session, qtbot, many_photos):
    session.library.add_folder(many_photos)
    job = session.submit("scan")
    qtbot.waitUntil(lambda: job.status.done >= 5, timeout=20000)  # it is well under way
    qtbot.waitUntil(lambda: job.status.id in window.jobs_panel.rows)
    qtbot.mouseClick(window.job_indicator, Qt.MouseButton.LeftButton)  # the status bar opens the jobs panel
    assert window.jobs_dock.isVisible()
    row = window.jobs_panel.rows[job.status.id]
    assert row.cancel_button.isVisible()
    started = time.monotonic()
    qtbot.mouseClick(row.cancel_button, Qt.MouseButton.LeftButton)
    assert job.done_event.wait(1.0), "the job was still running a second after Cancel"
    assert time.monotonic() - started < 1.0
    assert job.status.state == "cancelled"
    assert job.status.done < 300
    qtbot.waitUntil(lambda: row.view.state == "cancelled")
    assert not row.cancel_button.isVisible()


def test_pause_and_resume_from_the_jobs_panel(window, session, qtbot, many_photos):
    session.library.add_folder(many_photos)
    job = session.submit("scan")
    qtbot.waitUntil(lambda: job.status.id in window.jobs_panel.rows and job.status.done >= 3, timeout=20000)
    window.jobs_dock.show()
    row = window.jobs_panel.rows[job.status.id]
    qtbot.mouseClick(row.pause_button, Qt.MouseButton.LeftButton)
    assert job.status.state == "paused"
    time.sleep(0.3)  # let the file in flight finish
    paused_at = job.status.done
    time.sleep(0.5)
    assert job.status.done <= paused_at + 2  # only the workers' files in flight may land
    assert row.pause_button.toolTip() == "Resume"
    qtbot.mouseClick(row.pause_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: job.status.done > paused_at + 10, timeout=20000)  # going again
    assert job.status.state == "running"
    job.cancel()
    assert job.wait(5).state == "cancelled"


def test_closing_the_window_during_a_job_loses_nothing(app, qtbot, tmp_path, many_photos):
    """Close mid-scan: what was stored stays; the job resumes at the next start and finishes the rest."""
    folder = many_photos
    first = AppSession(tmp_path / "data", watch=False)
    window = MainWindow(first)  # owns the session: closing the window closes it
    qtbot.addWidget(window)
    window.show()
    first.library.add_folder(folder)
    job_id = first.scan().status.id
    qtbot.waitUntil(lambda: first.views.photo_count() > 0, timeout=30000)  # a first batch is stored
    window.close()
    assert first._closed

    second = AppSession(tmp_path / "data", watch=False)
    try:
        stored = second.views.photo_count()
        assert 0 < stored < 300  # stopped part-way, the batches written so far are kept
        unfinished = second.views.unfinished_jobs()
        assert [j["id"] for j in unfinished] == [job_id]
        resumed = second.start()
        assert [j.status.id for j in resumed] == [job_id]
        assert resumed[0].wait(60).state == "done"
        assert second.views.photo_count() == 300
        qtbot.waitUntil(lambda: second.views.unfinished_jobs() == [])  # the final state is written asynchronously
    finally:
        second.close()


def test_photos_added_on_disk_appear_in_the_grid(app, qtbot, tmp_path):
    """The folders are followed: a new file is scanned and shown without the user doing anything."""
    folder = make_photos(tmp_path / "photos", 2)
    session = AppSession(tmp_path / "data", watch=True)
    window = MainWindow(session)
    qtbot.addWidget(window)
    window.show()
    session.library.add_folder(folder)
    assert session.scan().wait(30).state == "done"
    session.start()  # what the app does once its window is up
    qtbot.waitUntil(lambda: window.library_model.rowCount() == 2)
    make_photos(tmp_path / "incoming", 3)
    (tmp_path / "incoming" / "img_00002.jpg").rename(folder / "new_arrival.jpg")
    qtbot.waitUntil(lambda: window.library_model.rowCount() == 3, timeout=20000)
    assert "new_arrival.jpg" in {window.library_model.data(window.library_model.index(r),
                                                           Qt.ItemDataRole.ToolTipRole) for r in range(3)}
    window.close()

"""The concept page: its photos and status, and embedding training with progress, ETA and cancel."""

from __future__ import annotations

import itertools
import time

import pytest
from PySide6.QtCore import Qt

from myvlm_desktop.pipeline.settings import save_settings
from tests.gui.conftest import make_photos, wait_jobs


@pytest.mark.slow
def test_training_shows_progress_and_eta_and_stops_at_once_on_cancel(window, session, qtbot, tmp_path):
    """Cancel takes effect at the trainer's next step boundary: no further step runs, nothing is saved."""
    from myvlm_desktop.vlm.testing import save_tiny_model

    window.add_folders([str(make_photos(tmp_path / "photos", 3, size=(64, 64)))])
    wait_jobs(qtbot, session)
    photos = [row[0] for row in session.views.photo_page(0, 3)]
    session.people.op("create_concept_from_photos", "Rex", "pet", photos[:1])
    session.settings.update(save_settings(session.db, {
        "vlm_backend": "smolvlm", "vlm_model": str(save_tiny_model("smolvlm", tmp_path / "vlm")), "device": "cpu"}))
    window.show_page("concepts")
    page = window.concept_page
    qtbot.waitUntil(lambda: page.concept is not None and page.concept["name"] == "Rex")
    qtbot.waitUntil(lambda: page.model.rowCount() == 1)  # the concept's photos
    assert "not trained" in page.embedding.text() and not page.retrain_button.isEnabled()

    qtbot.mouseClick(page.train_button, Qt.MouseButton.LeftButton)
    assert page.bar.isVisible() and page.cancel_button.isVisible() and not page.train_button.isEnabled()
    qtbot.waitUntil(lambda: bool(page.train_jobs))
    job = session.jobs.jobs[next(iter(page.train_jobs))]
    steps: list[float] = []
    window.jobs_bridge.updated.connect(lambda view: view.id == job.status.id and view.message.startswith("step")
                                       and steps.append(time.monotonic()))
    qtbot.waitUntil(lambda: len(steps) >= 3, timeout=120000)  # the training steps run
    qtbot.waitUntil(lambda: page.bar.value() > 0 and "left" in page.eta.text(), timeout=30000)
    step_time = max(b - a for a, b in itertools.pairwise(steps))
    done_at_cancel = job.status.done
    started = time.monotonic()
    qtbot.mouseClick(page.cancel_button, Qt.MouseButton.LeftButton)
    assert job.done_event.wait(max(1.0, 2 * step_time)), "training went on after Cancel"
    print(f"cancelled after {time.monotonic() - started:.2f} s; one step takes {step_time:.2f} s")
    assert job.status.state == "cancelled" and job.status.done <= done_at_cancel + 1
    qtbot.waitUntil(lambda: not page.bar.isVisible())
    assert page.eta.text() == "cancelled" and page.train_button.isEnabled()
    assert session.views.concept_embeddings(page.concept["id"]) == []  # nothing half-trained was saved as trained

"""Heads follow the user in the window, and Enter in the @completion popup also searches."""

from __future__ import annotations

import json

from PySide6.QtCore import Qt

from tests.gui.conftest import make_photos, wait_jobs


def test_enter_in_the_completion_popup_completes_and_searches(window, session, qtbot):
    session.db.write(lambda c: c.execute("INSERT INTO concepts(name, kind, identifier, created_at) "
                                         "VALUES ('Alice', 'person', '<Alice>', 0)"))
    window.refresh_all()
    bar = window.search_bar
    qtbot.keyClicks(bar, "beach @al")
    popup = bar._completer.popup()
    qtbot.waitUntil(popup.isVisible)
    qtbot.keyClick(popup, Qt.Key.Key_Down)  # the first name, as a user picks it
    with qtbot.waitSignal(bar.searched, timeout=5000) as searched:
        qtbot.keyClick(popup, Qt.Key.Key_Return)
    assert searched.args == ["beach @Alice"]
    assert bar.text() == "beach @Alice "


def test_naming_retrains_the_head_in_the_background_and_the_concept_page_shows_it(window, session, qtbot,
                                                                                  tmp_path):
    session.follower.debouncer.delay = 0.3
    window.add_folders([str(make_photos(tmp_path / "photos", 3, size=(64, 64)))])
    wait_jobs(qtbot, session)
    photos = [row[0] for row in session.views.photo_page(0, 3)]
    before = {j for j in session.jobs.jobs}
    session.people.op("create_concept_from_photos", "Rex", "pet", photos[:2])
    window.show_page("concepts")
    page = window.concept_page
    qtbot.waitUntil(lambda: page.concept is not None and page.concept["name"] == "Rex")
    seen = []
    window.jobs_bridge.updated.connect(lambda view: view.kind == "detect" and seen.append(page.head.text()))
    qtbot.waitUntil(lambda: any(session.jobs.jobs[j].status.kind == "detect" for j in set(session.jobs.jobs) - before),
                    timeout=15000)
    detect = next(session.jobs.jobs[j] for j in set(session.jobs.jobs) - before
                  if session.jobs.jobs[j].status.kind == "detect")
    params = json.loads(session.db.scalar("SELECT params FROM jobs WHERE id = ?", (detect.status.id,)))
    assert params in ({"concepts": [page.concept["id"]]}, {})  # {}: an operation that did not say which: all
    qtbot.waitUntil(lambda: detect.status.state == "done", timeout=60000)
    result = detect.status.result
    assert "Rex" in result["marked"] or "Rex" in result["problems"]  # Rex's head was looked at
    assert any("retraining with your changes" in text for text in seen)
    qtbot.waitUntil(lambda: "retraining" not in page.head.text(), timeout=10000)

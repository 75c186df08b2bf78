"""Heads follow the user: naming operations retrain the heads once, a few seconds after the last change."""

from __future__ import annotations

import threading
import time

from myvlm_desktop.pipeline.follow import Debouncer, HeadFollower


def collecting(delay=0.15):
    fired, event = [], threading.Event()

    def fire(keys):
        fired.append((time.monotonic(), keys))
        event.set()

    return Debouncer(delay, fire), fired, event


def test_a_burst_of_changes_fires_once_with_all_of_them_after_the_last():
    debouncer, fired, event = collecting()
    debouncer.touch([1])
    time.sleep(0.05)
    debouncer.touch([2])
    last = time.monotonic()
    debouncer.touch([1, 3])
    assert event.wait(5)
    time.sleep(0.3)
    assert len(fired) == 1
    at, keys = fired[0]
    assert keys == {1, 2, 3} and at - last >= 0.15


def test_nothing_pending_fires_nothing_and_a_later_change_fires_again():
    debouncer, fired, event = collecting(0.05)
    debouncer.flush()
    assert fired == []
    debouncer.touch([1])
    assert event.wait(5)
    event.clear()
    debouncer.touch(None)  # an operation that does not say which concepts: all of them
    debouncer.touch([2])
    assert event.wait(5)
    assert [k for _, k in fired] == [{1}, None]


def test_cancel_drops_what_was_pending():
    debouncer, fired, _ = collecting(0.05)
    debouncer.touch([1])
    debouncer.cancel()
    time.sleep(0.2)
    assert fired == [] and not debouncer.pending


class FakeDb:
    def __init__(self, concept_ids):
        self.listeners, self.ids = [], concept_ids

    def subscribe(self, listener):
        self.listeners.append(listener)

    def notify(self, what, detail=None):
        for listener in self.listeners:
            listener(what, detail)

    def query(self, sql):
        return [(i,) for i in self.ids]


def test_naming_operations_submit_one_detect_for_the_concepts_they_touched():
    db, submitted = FakeDb([1, 2]), []
    follower = HeadFollower(db, lambda kind, params: submitted.append((kind, params)), delay=0.05)
    db.notify("people", {"clustered": "faces"})  # clustering is not the user's doing
    db.notify("people", {"operation": "name", "concepts": [1], "clusters": [7]})
    db.notify("people", {"operation": "merge", "concepts": [2, 9], "clusters": [7, 8]})  # 9 was merged away
    deadline = time.monotonic() + 5
    while not submitted and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.1)
    assert submitted == [("detect", {"concepts": [1, 2]})]
    follower.close()
    db.notify("people", {"operation": "name", "concepts": [1]})
    time.sleep(0.15)
    assert len(submitted) == 1  # a closed session submits nothing

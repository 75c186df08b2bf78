"""Heads follow the user: naming, merging, moving, rejecting or confirming retrains the concepts' heads and
re-runs detection in the background, a few seconds after the last change (a burst of edits is one job).

`Debouncer` is the timing alone (no Qt, no database): it collects what changed and calls `fire(keys)` once
`delay` seconds have passed without a new change. `HeadFollower` listens to the library's change notices for
naming operations and submits one detect job for the concepts they touched (all, when an operation does not
say which); the detect job retrains only the stale heads.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import Any

DELAY = 3.0  # seconds after the last change


class Debouncer:
    """Calls `fire(keys)` once, `delay` seconds after the last `touch`; keys None means "everything"."""

    def __init__(self, delay: float, fire: Callable[[set | None], None]):
        self.delay, self._fire = delay, fire
        self._lock = threading.Lock()
        self._timer: threading.Timer | None = None
        self._keys: set | None = set()
        self._pending = False

    def touch(self, keys: Iterable | None = None) -> None:
        with self._lock:
            if keys is None or self._keys is None:
                self._keys = None
            else:
                self._keys |= set(keys)
            self._pending = True
            if self._timer is not None:
                self._timer.cancel()
            self._timer = threading.Timer(self.delay, self.flush)
            self._timer.daemon = True
            self._timer.start()

    @property
    def pending(self) -> bool:
        return self._pending

    def flush(self) -> None:
        """Fire now with what was collected (nothing pending: nothing happens)."""
        with self._lock:
            if not self._pending:
                return
            keys, self._keys, self._pending = self._keys, set(), False
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
        self._fire(keys)

    def cancel(self) -> None:
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
            self._timer, self._keys, self._pending = None, set(), False


class HeadFollower:
    """Submits `detect` for the concepts that naming operations touched, debounced."""

    def __init__(self, db, submit: Callable[[str, dict], Any], delay: float = DELAY):
        self.db, self.submit = db, submit
        self.debouncer = Debouncer(delay, self._detect)
        self.closed = False
        db.subscribe(self._changed)

    def _changed(self, what: str, detail: Any) -> None:
        if self.closed or what != "people" or not isinstance(detail, dict) or "operation" not in detail:
            return  # clustering itself also says "people"; only the user's operations move heads
        self.debouncer.touch(detail.get("concepts") or None)

    def _detect(self, concepts: set | None) -> None:
        if self.closed:
            return
        existing = {row[0] for row in self.db.query("SELECT id FROM concepts")}
        alive = sorted(set(concepts or ()) & existing)  # a merge deletes a concept: its survivor is touched too
        self.submit("detect", {"concepts": alive} if alive else {})

    def close(self) -> None:
        self.closed = True
        self.debouncer.cancel()

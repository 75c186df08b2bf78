"""Qt adapters over the core's callbacks: work runs on other threads, results arrive as signals.

- `run_task(fn, ...)`: run a function on the task pool (Picard's run_task); its result or error is delivered
  to callbacks in the GUI thread. Every SQL write, file scan and model call the views start goes this way.
- `JobBridge`: JobQueue.subscribe -> a throttled `updated(JobView)` signal in the GUI thread.
- `DbBridge`: Database.subscribe change notices -> a `changed(what, detail)` signal.
- `TokenStream`: a VLM's on_token callback -> a `token(str)` signal, so answers appear word by word.
"""

from __future__ import annotations

import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import shiboken6
from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal, Slot

# -- one-off tasks --------------------------------------------------------------------------------------
_pool: QThreadPool | None = None
_live: set[_Delivery] = set()  # keeps each task's receiver alive until its result is delivered


def task_pool() -> QThreadPool:
    global _pool
    if _pool is None:
        _pool = QThreadPool()
        _pool.setMaxThreadCount(4)
    return _pool


class _Delivery(QObject):
    """Lives in the GUI thread; the worker emits into it, so the callbacks run in the GUI thread."""

    finished = Signal(object, object)  # result, error

    def __init__(self, on_done: Callable | None, on_error: Callable | None, owner: QObject | None):
        super().__init__()
        self.on_done, self.on_error = on_done, on_error
        self.owner = owner if owner is not None else _owner_of(on_done)
        self.finished.connect(self._deliver)

    @Slot(object, object)
    def _deliver(self, result: Any, error: BaseException | None) -> None:
        _live.discard(self)
        self.deleteLater()
        if self.owner is not None and not shiboken6.isValid(self.owner):
            return  # the view that asked is gone (a dialog closed before its data arrived)
        if error is None:
            if self.on_done is not None:
                self.on_done(result)
        elif self.on_error is not None:
            self.on_error(error)
        else:
            traceback.print_exception(error)


def _owner_of(callback: Callable | None) -> QObject | None:
    """The QObject a bound-method callback belongs to: its result is dropped once that object is deleted."""
    owner = getattr(callback, "__self__", None)
    return owner if isinstance(owner, QObject) else None


class _Task(QRunnable):
    def __init__(self, fn: Callable, args: tuple, kwargs: dict, delivery: _Delivery):
        super().__init__()
        self.fn, self.args, self.kwargs, self.delivery = fn, args, kwargs, delivery

    def run(self) -> None:
        try:
            result = self.fn(*self.args, **self.kwargs)
        except BaseException as exc:  # noqa: BLE001 - handed to on_error in the GUI thread
            self.delivery.finished.emit(None, exc)
        else:
            self.delivery.finished.emit(result, None)


def run_task(fn: Callable, *args: Any, on_done: Callable | None = None, on_error: Callable | None = None,
             owner: QObject | None = None, **kwargs: Any) -> None:
    """Run `fn(*args, **kwargs)` off the GUI thread; `on_done(result)` / `on_error(exc)` run in the GUI thread,
    unless `owner` (by default the object whose method on_done is) was deleted meanwhile."""
    delivery = _Delivery(on_done, on_error, owner)
    _live.add(delivery)
    task_pool().start(_Task(fn, args, kwargs, delivery))


def wait_for_tasks(timeout_ms: int = 30000) -> bool:
    return task_pool().waitForDone(timeout_ms)


# -- jobs -----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class JobView:
    """A snapshot of a job's status, safe to hand across threads."""

    id: int
    kind: str
    state: str
    done: int
    total: int
    message: str
    fraction: float
    eta_seconds: float | None
    error: str | None


class JobBridge(QObject):
    """JobQueue progress as a signal. Progress is throttled (a scan reports thousands of files a second);
    state changes always go through."""

    updated = Signal(object)  # JobView

    def __init__(self, queue, interval: float = 0.1, parent: QObject | None = None):
        super().__init__(parent)
        self._interval = interval
        self._last: dict[int, tuple[str, float]] = {}
        self._lock = threading.Lock()
        self.closed = False
        queue.subscribe(self._listen)

    def close(self) -> None:
        """Stop relaying: core threads outlive the window and must not call into Qt objects being destroyed."""
        self.closed = True

    def announce(self, status) -> None:
        """Relay a change the GUI made itself (pause, resume): the job reports it only at its next step."""
        self._last.pop(status.id, None)
        self._listen(status)

    def _listen(self, status) -> None:  # called on the job's thread
        if self.closed:
            return
        now = time.monotonic()
        with self._lock:
            last_state, last_time = self._last.get(status.id, ("", 0.0))
            if status.state == last_state and now - last_time < self._interval and status.done != status.total:
                return
            self._last[status.id] = (status.state, now)
        view = JobView(status.id, status.kind, status.state, status.done, status.total, status.message,
                       status.fraction, status.eta_seconds, status.error)
        _emit(self.updated, view)


class DbBridge(QObject):
    """The database's change notices as a signal in the GUI thread."""

    changed = Signal(str, object)

    def __init__(self, db, parent: QObject | None = None):
        super().__init__(parent)
        self.closed = False
        db.subscribe(self._listen)

    def close(self) -> None:
        self.closed = True

    def _listen(self, what: str, detail: Any) -> None:
        if not self.closed:
            _emit(self.changed, what, detail)


class TokenStream(QObject):
    """A streaming callback for the VLM: each piece of text becomes a `token` signal."""

    token = Signal(str)

    def __call__(self, text: str) -> None:
        _emit(self.token, text)


def _emit(signal, *args: Any) -> None:
    """Emit from a core thread; after the window is gone (the core lives on while it shuts down) drop it."""
    try:
        signal.emit(*args)
    except RuntimeError:  # the receiving QObject was deleted
        pass

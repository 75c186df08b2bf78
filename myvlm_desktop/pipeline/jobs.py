"""Background jobs on plain threads: progress callbacks, pause, cancel, and resume after a restart.

A job is a function `fn(control, **params)`. It calls `control.progress(done, total, message)` as it goes;
that call is also where it pauses and where cancellation raises `Cancelled`. A job that can resume
saves `control.checkpoint(state)`; after a restart `JobQueue.resume_unfinished()` starts it again with
`control.saved` holding that state. The GUI adapts `on_update` to a Qt signal; the CLI prints it.
"""

from __future__ import annotations

import json
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..library.db import Database, now

ACTIVE_STATES = ("queued", "running", "paused")


class Cancelled(Exception):
    """Raised inside a job at its next progress call after `cancel()`."""


@dataclass
class JobStatus:
    id: int
    kind: str
    state: str = "queued"
    done: int = 0
    total: int = 0
    message: str = ""
    started_at: float | None = None
    error: str | None = None
    result: Any = None

    @property
    def fraction(self) -> float:
        return self.done / self.total if self.total else 0.0

    @property
    def eta_seconds(self) -> float | None:
        if not self.started_at or not self.done or not self.total or self.state != "running":
            return None
        elapsed = time.monotonic() - self.started_at
        return elapsed / self.done * (self.total - self.done)


class JobControl:
    """What a running job sees: progress reporting, a pause gate, a cancel flag and its checkpoint."""

    def __init__(self, status: JobStatus, on_update: Callable[[JobStatus], None], saver=None, saved=None):
        self.status = status
        self.saved: dict | None = saved
        self._on_update = on_update
        self._saver = saver
        self._cancel = threading.Event()
        self._running = threading.Event()
        self._running.set()

    def progress(self, done: int, total: int, message: str = "") -> None:
        self.status.done, self.status.total = done, total
        if message:
            self.status.message = message
        self._on_update(self.status)
        self.check()

    def check(self) -> None:
        """Block while paused; raise Cancelled once cancelled."""
        while not self._running.wait(0.05):
            if self._cancel.is_set():
                break
        if self._cancel.is_set():
            raise Cancelled()

    def checkpoint(self, state: dict) -> None:
        self.saved = state
        if self._saver:
            self._saver(state)

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def pause(self) -> None:
        self._running.clear()

    def resume(self) -> None:
        self._running.set()

    def cancel(self) -> None:
        self._cancel.set()
        self._running.set()


@dataclass
class Job:
    status: JobStatus
    control: JobControl
    thread: threading.Thread | None = None
    done_event: threading.Event = field(default_factory=threading.Event)

    def wait(self, timeout: float | None = None) -> JobStatus:
        self.done_event.wait(timeout)
        return self.status

    def pause(self) -> None:
        self.control.pause()
        self.status.state = "paused"

    def resume(self) -> None:
        self.control.resume()
        if self.status.state == "paused":
            self.status.state = "running"

    def cancel(self) -> None:
        self.control.cancel()


class JobQueue:
    """Runs jobs on threads. With a database, jobs are recorded so unfinished ones resume after a restart.

    `kinds` maps a job kind to its function, which is how a restarted app finds the function again.
    Jobs in the same `lane` run one after another (one GPU training at a time); other lanes run alongside.
    """

    def __init__(self, db: Database | None = None, kinds: dict[str, Callable] | None = None):
        self.db = db
        self.kinds: dict[str, Callable] = dict(kinds or {})
        self.jobs: dict[int, Job] = {}
        self._listeners: list[Callable[[JobStatus], None]] = []
        self._lanes: dict[str, threading.Lock] = {}
        self._lock = threading.Lock()
        self._next_id = 1

    def subscribe(self, listener: Callable[[JobStatus], None]) -> None:
        self._listeners.append(listener)

    def submit(self, kind: str, params: dict | None = None, fn: Callable | None = None, lane: str = "default",
               job_id: int | None = None, saved: dict | None = None) -> Job:
        fn = fn or self.kinds[kind]
        params = dict(params or {})
        job_id = job_id or self._record_new(kind, params)
        status = JobStatus(id=job_id, kind=kind)
        control = JobControl(status, self._updated, saver=self._saver(job_id), saved=saved)
        job = Job(status, control)
        with self._lock:
            self.jobs[job_id] = job
        job.thread = threading.Thread(target=self._run, args=(job, fn, params, lane), name=f"job-{kind}-{job_id}",
                                      daemon=True)
        job.thread.start()
        return job

    def resume_unfinished(self) -> list[Job]:
        """Start again every recorded job that had not finished when the app last stopped."""
        if self.db is None:
            return []
        rows = self.db.query(
            f"SELECT * FROM jobs WHERE state IN ({','.join('?' * len(ACTIVE_STATES))}) ORDER BY id", ACTIVE_STATES)
        started = []
        for row in rows:
            if row["kind"] not in self.kinds or row["id"] in self.jobs:
                continue
            saved = json.loads(row["checkpoint"]) if row["checkpoint"] else None
            started.append(self.submit(row["kind"], json.loads(row["params"]), job_id=row["id"], saved=saved))
        return started

    def active(self) -> list[Job]:
        return [j for j in self.jobs.values() if j.status.state in ACTIVE_STATES]

    def cancel_all(self, wait: float = 5.0) -> None:
        for job in self.active():
            job.cancel()
        for job in list(self.jobs.values()):
            job.wait(wait)

    # -- internals ---------------------------------------------------------------------------------
    def _run(self, job: Job, fn: Callable, params: dict, lane: str) -> None:
        status = job.status
        lock = self._lanes.setdefault(lane, threading.Lock())
        try:
            with lock:
                job.control.check()
                status.state, status.started_at = "running", time.monotonic()
                self._updated(status)
                status.result = fn(job.control, **params)
            status.state = "done"
        except Cancelled:
            status.state = "cancelled"
        except Exception as exc:  # noqa: BLE001 - a failed job is reported, never crashes the app
            status.state, status.error = "failed", f"{type(exc).__name__}: {exc}"
            status.message = str(exc)
            traceback.print_exc()
        finally:
            self._updated(status)
            job.done_event.set()

    def _updated(self, status: JobStatus) -> None:
        self._persist(status)
        for listener in list(self._listeners):
            listener(status)

    def _record_new(self, kind: str, params: dict) -> int:
        if self.db is None:
            with self._lock:
                self._next_id += 1
                return self._next_id - 1
        return self.db.write(lambda c: c.execute(
            "INSERT INTO jobs(kind, params, state, created_at, updated_at) VALUES (?, ?, 'queued', ?, ?)",
            (kind, json.dumps(params), now(), now())).lastrowid)

    def _saver(self, job_id: int):
        if self.db is None:
            return None
        return lambda state: self.db.write(lambda c: c.execute(
            "UPDATE jobs SET checkpoint = ?, updated_at = ? WHERE id = ?", (json.dumps(state), now(), job_id)))

    def _persist(self, status: JobStatus) -> None:
        """Record state changes (not every progress tick: those would flood the writer)."""
        if self.db is None:
            return
        last = getattr(status, "_persisted", None)
        if last == status.state and status.state == "running" and status.done % 50:
            return
        object.__setattr__(status, "_persisted", status.state)
        try:
            self.db.submit(lambda c: c.execute(
                "UPDATE jobs SET state = ?, progress = ?, message = ?, updated_at = ? WHERE id = ?",
                (status.state, status.fraction, status.message, now(), status.id)))
        except RuntimeError:  # database closed while the app shuts down
            pass

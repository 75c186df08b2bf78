"""The app session both faces use: one open library and the parts that work on it.

`AppSession(data_dir)` opens the library and holds, as attributes:
- `settings` (pipeline/settings.py), a dict the jobs read when they run;
- `jobs`, the job queue with every job kind (pipeline/process.py: scan, index, cluster, detect, caption,
  train and the `process` chain);
- `views`, the reads the window shows (pipeline/views.py);
- `people`, People & Pets (pipeline/people.py).
Questions go through pipeline/questions.py, as for the CLI.
`start()` resumes the jobs that were running when the app last stopped and follows the folders.
No Qt here: the GUI adapts the callbacks to signals.
"""

from __future__ import annotations

from ..library.db import now
from ..library.store import Library
from ..library.watch import Watcher
from .follow import HeadFollower
from .jobs import Job, JobQueue
from .people import People
from .process import STAGES, job_kinds, lane
from .settings import load_settings
from .views import Views


class AppSession:
    """One open library with its jobs. Close it to stop the jobs; unfinished ones resume at the next open."""

    def __init__(self, data_dir=None, library: Library | None = None, watch: bool | None = None):
        self.library = library or Library(data_dir)
        self.db = self.library.db
        self.settings = load_settings(self.db)
        self.jobs = JobQueue(self.db, kinds=job_kinds(self.library, self.settings))
        self.views = Views(self.library)
        self.people = People(self.library)
        self.watcher: Watcher | None = None
        self._closed = False
        self._want_watch = self.settings["watch"] if watch is None else watch
        self.follower = HeadFollower(self.db, self.submit)  # heads retrain a few seconds after naming

    def start(self) -> list[Job]:
        """Resume unfinished jobs and start watching the folders."""
        resumed = self.jobs.resume_unfinished()
        if self._want_watch:
            self.start_watching()
        return resumed

    def start_watching(self) -> None:
        """Follow every library folder (again, when one was added: a watcher covers the folders it started with)."""
        if self._closed:
            return
        self.stop_watching()
        if self.library.folders():
            self.watcher = Watcher(self.library, on_scanned=self._scanned)
            self.watcher.start()

    def stop_watching(self) -> None:
        watcher, self.watcher = self.watcher, None
        if watcher is not None:
            watcher.stop()

    def _scanned(self, counts: dict) -> None:
        """Files changed on disk: the new photos go through the rest of the chain."""
        if self._closed or not (counts.get("indexed") or counts.get("moved")):
            return
        if not any(j.status.kind == "process" for j in self.jobs.active()):
            self.process_all(stages=STAGES[1:])

    def submit(self, kind: str, params: dict | None = None) -> Job:
        return self.jobs.submit(kind, params, lane=lane(kind))

    def process_all(self, stages: tuple[str, ...] | list[str] = STAGES) -> Job:
        return self.submit("process", {"stages": list(stages)})

    def scan(self) -> Job:
        return self.submit("scan")

    def close(self, wait: float = 5.0) -> None:
        """Stop everything; jobs stopped here are put back in the queue so the next start resumes them."""
        if self._closed:
            return
        self._closed = True
        self.follower.close()
        self.stop_watching()
        interrupted = [j.status.id for j in self.jobs.active()]
        self.jobs.cancel_all(wait)
        if interrupted:
            self.db.write(_requeue, interrupted)
        self.library.close()


def _requeue(conn, job_ids: list[int]) -> None:
    marks = ",".join("?" * len(job_ids))
    conn.execute(f"UPDATE jobs SET state = 'queued', updated_at = ? WHERE id IN ({marks}) "
                  "AND state IN ('cancelled', 'running', 'paused', 'queued')", [now(), *job_ids])

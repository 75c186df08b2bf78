"""Keep watching the library folders: file events (watchdog) mark folders dirty; after a quiet moment the
dirty folders get an incremental scan.

Events only say *where* to look; the scan decides what changed by listing and comparing with the
database. So a burst of thousands of events, events in any order, or events the OS dropped lose
nothing: a later scan of that folder sees the files as they are.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer

from .scan import folder_online, scan_library
from .store import Library

# inotify drops events past its queue (16k by default) and watchdog does not tell us; after a burst this big,
# rescan whole folders rather than trusting that every dirty folder was reported.
BIG_BURST = 4000
PRESENCE = 5.0  # seconds between checks that every folder is still there (drives, network shares)


class _Collector(FileSystemEventHandler):
    def __init__(self, on_dirty: Callable[[str], None]):
        self.on_dirty = on_dirty

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type in ("opened", "closed_no_write"):
            return
        src, dest = os.fsdecode(event.src_path), os.fsdecode(getattr(event, "dest_path", "") or "")
        if event.is_directory and event.event_type in ("created", "modified"):
            self.on_dirty(src)  # a folder's own listing changed
        else:
            self.on_dirty(os.path.dirname(src))  # a file, or a folder that left: its parent lists the change
        if dest:
            self.on_dirty(dest if event.is_directory else os.path.dirname(dest))


class Watcher:
    """Watches every library folder; `debounce` seconds after the last event the dirty folders are rescanned."""

    def __init__(self, library: Library, debounce: float = 1.0, on_scanned: Callable[[dict], None] | None = None,
                 presence: float = PRESENCE):
        self.library = library
        self.debounce = debounce
        self.presence = presence
        self._online: dict[str, bool] = {}
        self._watches: dict[str, object] = {}
        self.on_scanned = on_scanned
        self._dirty: set[str] = set()
        self._burst = 0  # events since the last rescan
        self._last_event = 0.0
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._observer = Observer()
        self._worker = threading.Thread(target=self._run, name="watch-rescan", daemon=True)
        self.scans = 0

    def start(self) -> None:
        for folder in self.library.folders():
            self._online[folder] = folder_online(folder)
            if self._online[folder]:
                self._follow(folder)
        self._observer.start()
        self._worker.start()

    def _follow(self, folder: str) -> None:
        old = self._watches.pop(folder, None)
        if old is not None:
            try:
                self._observer.unschedule(old)
            except (KeyError, OSError):  # its inotify watch died with the folder
                pass
        try:
            self._watches[folder] = self._observer.schedule(_Collector(self.mark_dirty), folder, recursive=True)
        except OSError:  # gone again already: the next presence check sees it
            self._online[folder] = False

    def _check_presence(self) -> None:
        """A drive unplugged or plugged back in sends no event we can rely on: look every PRESENCE seconds."""
        for folder in self.library.folders():
            now_online = folder_online(folder)
            if self._online.get(folder) == now_online:
                continue
            self._online[folder] = now_online
            if now_online:
                self._follow(folder)
            self.mark_dirty(folder)  # the scan marks it offline, or reads it again now that it is back

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self._observer.stop()
        self._observer.join(timeout=5)
        self._worker.join(timeout=30)

    def mark_dirty(self, path: str) -> None:
        with self._lock:
            self._dirty.add(path)
            self._burst += 1
            self._last_event = time.monotonic()
        self._wake.set()

    def idle(self) -> bool:
        """True when no change waits to be scanned."""
        with self._lock:
            return not self._dirty

    def _run(self) -> None:
        while not self._stop.is_set():
            if not self._wake.wait(self.presence):
                self._check_presence()
                continue
            self._wake.clear()
            while not self._stop.is_set():
                with self._lock:
                    quiet = time.monotonic() - self._last_event
                if quiet >= self.debounce:
                    break
                time.sleep(min(self.debounce - quiet, 0.25) + 0.01)
            with self._lock:
                dirty, self._dirty = _outermost(_inside(self._dirty, self.library.folders())), set()
                if self._burst > BIG_BURST:  # the kernel queue may have overflowed: look everywhere
                    dirty = self.library.folders()
                self._burst = 0
            if dirty and not self._stop.is_set():
                self._rescan(dirty)

    def _rescan(self, dirty: list[str]) -> None:
        try:
            counts = scan_library(self.library, subpaths=dirty)
        except Exception:  # noqa: BLE001 - keep watching; the next event or scan retries these folders
            with self._lock:
                self._dirty.update(dirty)
            time.sleep(self.debounce)
            self._wake.set()
            return
        self.scans += 1
        if self.on_scanned:
            self.on_scanned(counts)


def _outermost(paths: set[str]) -> list[str]:
    """Drop folders inside other dirty folders: scanning the outer one covers them."""
    kept: list[str] = []
    for path in sorted(paths, key=len):
        if not any(path == k or path.startswith(k.rstrip(os.sep) + os.sep) for k in kept):
            kept.append(path)
    return kept


def _inside(paths: set[str], roots: list[str]) -> set[str]:
    """Clamp to the library folders: a path above a folder means that folder, a path outside means nothing."""
    kept = set()
    for path in paths:
        for root in roots:
            if path == root or path.startswith(root.rstrip(os.sep) + os.sep):
                kept.add(path)
            elif root.startswith(path.rstrip(os.sep) + os.sep):
                kept.add(root)
    return kept

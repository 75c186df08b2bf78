"""Library commands: add-folder, remove-folder, scan [--watch], status, errors, search."""

from __future__ import annotations

import signal
import threading

from ..library.scan import scan_library
from ..library.search import QueryError, search
from ..library.store import LibraryError
from ..library.watch import Watcher
from .common import CommandError, StderrProgress, emit, library, positive_int


def register(sub) -> None:
    p = sub.add_parser("add-folder", help="add a photo folder to the library")
    p.add_argument("path")
    p.set_defaults(handler=add_folder)

    p = sub.add_parser("remove-folder", help="stop watching a folder (its photos are kept as missing)")
    p.add_argument("path")
    p.set_defaults(handler=remove_folder)

    p = sub.add_parser("scan", help="index new and changed photos; --watch keeps following the folders")
    p.add_argument("--watch", action="store_true", help="keep running and follow changes until Ctrl+C")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=scan)

    p = sub.add_parser("status", help="counts of photos, errors, faces, clusters, concepts, captions")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=status)

    p = sub.add_parser("errors", help="files that could not be used, with the reason")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=errors)

    p = sub.add_parser("search", help='find photos: words, "phrases", @Name, AND/OR/NOT, (), dates')
    p.add_argument("query")
    p.add_argument("--limit", type=positive_int, default=500)
    p.add_argument("--order", choices=("auto", "relevance", "date"), default="auto",
                   help="auto: by relevance when the query has words, else newest first")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=find)


def add_folder(args) -> None:
    try:
        library(args).add_folder(args.path)
    except LibraryError as exc:
        raise CommandError(str(exc)) from None
    print(f"added {args.path}; run `myvlm scan` to index it")


def remove_folder(args) -> None:
    try:
        library(args).remove_folder(args.path)
    except LibraryError as exc:
        raise CommandError(str(exc)) from None


def scan(args) -> None:
    lib = library(args)
    if not lib.folders():
        raise CommandError("no folders in the library yet: run `myvlm add-folder PATH` first")
    counts = scan_library(lib, progress=StderrProgress())
    emit(counts, args.json, ", ".join(f"{k} {v}" for k, v in counts.items()))
    if args.watch:
        _watch(lib)


def _watch(lib) -> None:
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    watcher = Watcher(lib, on_scanned=lambda counts: print(
        "changes: " + ", ".join(f"{k} {v}" for k, v in counts.items() if v), flush=True))
    watcher.start()
    print("watching for changes (Ctrl+C to stop)", flush=True)
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        watcher.stop()


def status(args) -> None:
    counts = library(args).status()
    emit(counts, args.json, "\n".join(f"{k:>9}: {v}" for k, v in counts.items()))


def errors(args) -> None:
    rows = library(args).errors()
    emit(rows, args.json, "\n".join(f"{r['path']}: {r['reason']}" for r in rows) or "no errors")


def find(args) -> None:
    try:
        hits = search(library(args).db, args.query, limit=args.limit, order=args.order)
    except QueryError as exc:
        raise CommandError(f"bad query: {exc}") from None
    rows = [{"path": h["path"], "score": h["score"]} for h in hits]
    emit(rows, args.json, "\n".join(r["path"] for r in rows) or "no photos found")

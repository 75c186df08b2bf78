"""Keep the library in step with the disk: walk the folders, index new and changed photos, notice moves
and deletions.

Incremental: a file whose size and mtime match its row is not read again. A file that moved (same content
hash, old path gone) keeps its photo id, so everything attached to it survives. A file that disappeared
becomes `missing`, never silently dropped. A file that cannot be used is recorded with a reason and skipped.
Work is committed in small batches, so a crash loses at most the batch in flight.
"""

from __future__ import annotations

import errno
import hashlib
import io
import os
import stat
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from .. import imaging
from .db import now
from .store import Library, display_path, open_path, raw_path, thumbnail_file

Progress = Callable[[int, int, str], None]
BATCH = 64
MAX_FILE_BYTES = 1 << 30  # larger "photos" are recorded as errors instead of being read into memory


@dataclass
class Listed:
    """A file found on disk (or the reason a path could not be listed)."""

    path: str | bytes
    folder_id: int
    size: int = 0
    mtime: float = 0.0
    error: str | None = None


@dataclass
class Indexed:
    listed: Listed
    hash: str | None = None
    info: imaging.PhotoInfo | None = None
    error: str | None = None


def scan_library(library: Library, progress: Progress | None = None, subpaths: Iterable[str] | None = None,
                 workers: int = 2) -> dict[str, int]:
    """Scan every library folder (or only `subpaths` inside them) and return counts of what changed."""
    folders = [(r["id"], r["path"]) for r in library.db.query("SELECT id, path FROM folders")]
    online = _update_offline(library, folders)
    roots = [(fid, root) for fid, root in _roots(folders, subpaths) if fid in online]
    listed = [item for folder_id, root in roots for item in walk(root, folder_id)]
    known = _known_rows(library, [root for _, root in roots])
    seen = {display_path(item.path) for item in listed}
    todo = [item for item in listed if _needs_indexing(item, known.get(display_path(item.path)))]
    counts = {"listed": len(listed), "indexed": 0, "unchanged": len(listed) - len(todo), "errors": 0,
              "moved": 0, "missing": 0}
    vanished = {path: row for path, row in known.items() if path not in seen}
    total = len(todo)
    if progress:
        progress(0, total, "scanning")
    pool = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="scan")
    try:
        batch: list[Indexed] = []
        for done, result in enumerate(pool.map(lambda item: index_file(item, library.thumbs), todo), start=1):
            batch.append(result)
            if len(batch) >= BATCH or done == total:
                _merge(counts, library.db.write(_store_batch, batch, vanished))
                batch = []
            if progress:
                progress(done, total, display_path(result.listed.path))
    finally:  # on cancel, drop the files not yet started instead of reading them all first
        pool.shutdown(wait=True, cancel_futures=True)
    gone = online - _update_offline(library, folders)  # unplugged during the scan: offline, not missing
    gone_roots = tuple(root.rstrip(os.sep) + os.sep for fid, root in folders if fid in gone)
    lost = [row["id"] for path, row in vanished.items() if not path.startswith(gone_roots)] if gone_roots else \
        [row["id"] for row in vanished.values()]
    counts["missing"] = library.db.write(_mark_missing, lost)
    if counts["indexed"] or counts["moved"] or counts["missing"]:
        library.db.notify("photos", counts)
    return counts


def folder_online(path: str) -> bool:
    """A library folder is online while it is there: an unplugged drive or a share that is down is not."""
    return os.path.isdir(path)


def _update_offline(library: Library, folders: list[tuple[int, str]]) -> set[int]:
    """Record which folders went away or came back; returns the ids of the folders that are there."""
    online = {fid for fid, path in folders if folder_online(path)}
    offline = [fid for fid, _ in folders if fid not in online]

    def write(conn):
        changed = conn.execute(
            f"UPDATE folders SET offline_since = ? WHERE offline_since IS NULL AND id IN ({','.join('?' * len(offline))})",
            [now(), *offline]).rowcount if offline else 0
        if online:
            changed += conn.execute(
                f"UPDATE folders SET offline_since = NULL WHERE offline_since IS NOT NULL "
                f"AND id IN ({','.join('?' * len(online))})", list(online)).rowcount
        return changed

    if folders and library.db.write(write):
        library.db.notify("folders", None)
    return online


def _roots(folders: list[tuple[int, str]], subpaths: Iterable[str] | None) -> list[tuple[int, str]]:
    if subpaths is None:
        return folders
    roots = []
    for given in subpaths:
        sub = os.path.abspath(given)
        owner = [(fid, root) for fid, root in folders if sub == root or sub.startswith(root.rstrip(os.sep) + os.sep)]
        if owner:
            roots.append((owner[0][0], sub))
    return roots


# -- listing ------------------------------------------------------------------------------------------
def walk(root: str, folder_id: int) -> Iterator[Listed]:
    """Every image-named file under root; symlinked folders followed once, loops reported, not followed."""
    visited: set[tuple[int, int]] = set()
    stack = [os.fsencode(root)]
    while stack:
        directory = stack.pop()
        try:
            st = os.stat(directory)
        except FileNotFoundError:  # a folder deleted since it was listed: its photos become missing
            continue
        except OSError as exc:
            yield Listed(directory, folder_id, error=_os_reason(exc))
            continue
        if not stat.S_ISDIR(st.st_mode):  # a single file given as a subpath
            yield from _list_file(directory, folder_id)
            continue
        if (st.st_dev, st.st_ino) in visited:
            yield Listed(directory, folder_id, error="symlink loop: folder already scanned")
            continue
        visited.add((st.st_dev, st.st_ino))
        try:
            entries = sorted(os.scandir(directory), key=lambda e: e.name)
        except OSError as exc:
            yield Listed(directory, folder_id, error=f"cannot list folder: {_os_reason(exc)}")
            continue
        for entry in entries:
            if entry.name.startswith(b"."):
                continue
            try:
                is_dir = entry.is_dir(follow_symlinks=True)
            except OSError as exc:
                if imaging.is_image_name(entry.name):
                    yield Listed(entry.path, folder_id, error=_os_reason(exc))
                continue
            if is_dir:
                stack.append(entry.path)
            elif imaging.is_image_name(entry.name):
                yield from _list_file(entry.path, folder_id)


def _list_file(path: bytes, folder_id: int) -> Iterator[Listed]:
    path_text = _text_path(path)
    try:
        st = os.stat(path)
    except OSError as exc:
        yield Listed(path_text, folder_id, error=_os_reason(exc))
        return
    if stat.S_ISREG(st.st_mode):
        yield Listed(path_text, folder_id, size=st.st_size, mtime=st.st_mtime)


def _text_path(path: bytes) -> str | bytes:
    """str when the name is valid UTF-8 (the usual case), else the bytes themselves."""
    try:
        return path.decode("utf-8")
    except UnicodeDecodeError:
        return path


def _os_reason(exc: OSError) -> str:
    if exc.errno == errno.ELOOP:
        return "symlink loop"
    if isinstance(exc, FileNotFoundError):
        return "file vanished before it could be read"
    if isinstance(exc, PermissionError):
        return "permission denied"
    return exc.strerror or str(exc)


# -- reading one file ---------------------------------------------------------------------------------
TRANSIENT = ("permission denied", "file vanished before it could be read")
CHANGED_WHILE_READ = "file changed while it was being read"


def _needs_indexing(item: Listed, row) -> bool:
    """New, changed, or failed for a reason that may have passed (a bad file that did not change stays bad)."""
    if row is None or item.error:
        return True
    unchanged = row["size"] == item.size and row["mtime"] == item.mtime
    if row["status"] == "error":  # a decoder installed since then may now read the file
        return not unchanged or row["error"] in TRANSIENT or "decoder not installed" in (row["error"] or "")
    return not unchanged


def read_file(path: str | bytes) -> bytes:
    with open(path, "rb") as handle:
        return handle.read(MAX_FILE_BYTES + 1)


def index_file(item: Listed, thumbs: Path) -> Indexed:
    """Hash, decode and thumbnail one file; any failure becomes a recorded reason."""
    if item.error:
        return Indexed(item, error=item.error)
    if item.size == 0:
        return Indexed(item, error="empty file (0 bytes)")
    suffix = imaging.suffix_of(item.path)
    missing = imaging.missing_decoder(suffix)
    if missing:
        return Indexed(item, error=missing)
    try:
        data = read_file(item.path)
    except OSError as exc:
        return Indexed(item, error=_os_reason(exc))
    if len(data) > MAX_FILE_BYTES:
        return Indexed(item, error="file too large to be a photo (over 1 GiB)")
    if _changed_since_listed(item):  # written to while we read it: the next scan (or event) reads it whole
        return Indexed(item, error=CHANGED_WHILE_READ)
    digest = hashlib.blake2b(data, digest_size=16).hexdigest()
    target = thumbnail_file(thumbs, digest)
    try:
        info = imaging.read_photo(io.BytesIO(data), None if target.exists() else target, suffix=suffix)
    except imaging.ImageError as exc:
        return Indexed(item, hash=digest, error=exc.reason)
    return Indexed(item, hash=digest, info=info)


def _changed_since_listed(item: Listed) -> bool:
    try:
        st = os.stat(item.path)
    except OSError:
        return True
    return st.st_size != item.size or st.st_mtime != item.mtime


# -- writing (runs on the writer thread) ---------------------------------------------------------------
def _store_batch(conn, batch: list[Indexed], vanished: dict) -> dict[str, int]:
    counts = {"indexed": 0, "errors": 0, "moved": 0}
    for result in batch:
        if result.error == CHANGED_WHILE_READ:  # keep the row as it was; nothing half-read is stored
            continue
        if result.error:
            _store_error(conn, result)
            counts["errors"] += 1
        elif _store_moved(conn, result, vanished):
            counts["moved"] += 1
        else:
            _store_photo(conn, result)
            counts["indexed"] += 1
    return counts


def _photo_values(result: Indexed) -> dict:
    item, info = result.listed, result.info
    values = {"folder_id": item.folder_id, "path": display_path(item.path), "path_raw": raw_path(item.path),
              "size": item.size, "mtime": item.mtime, "hash": result.hash, "status": "ok", "error": None,
              "updated_at": now()}
    if info is not None:
        values.update(width=info.width, height=info.height, format=info.format, orientation=info.orientation,
                      taken_at=info.taken_at, date=info.taken_at or _iso(item.mtime), lat=info.lat, lon=info.lon,
                      camera=info.camera)
    return values


def _upsert(conn, values: dict) -> int:
    columns = ", ".join(values)
    marks = ", ".join("?" * len(values))
    updates = ", ".join(f"{c} = excluded.{c}" for c in values if c != "path")
    conn.execute(
        f"INSERT INTO photos ({columns}, added_at) VALUES ({marks}, ?) ON CONFLICT(path) DO UPDATE SET {updates}",
        [*values.values(), now()])
    return conn.execute("SELECT id FROM photos WHERE path = ?", (values["path"],)).fetchone()[0]


def _store_photo(conn, result: Indexed) -> None:
    old = conn.execute("SELECT id, hash FROM photos WHERE path = ?", (display_path(result.listed.path),)).fetchone()
    photo_id = _upsert(conn, _photo_values(result))
    if old is not None and old["hash"] != result.hash:  # edited in place: faces and embeddings are stale
        conn.execute("DELETE FROM index_state WHERE photo_id = ?", (photo_id,))
    _index_path_text(conn, photo_id, display_path(result.listed.path))


def _store_error(conn, result: Indexed) -> None:
    path = display_path(result.listed.path)
    row = conn.execute("SELECT id, hash FROM photos WHERE path = ?", (path,)).fetchone()
    values = {"folder_id": result.listed.folder_id, "path": path, "path_raw": raw_path(result.listed.path),
              "size": result.listed.size, "mtime": result.listed.mtime, "hash": result.hash or (row and row["hash"]),
              "status": "error", "error": result.error, "updated_at": now()}
    _upsert(conn, values)


def _store_moved(conn, result: Indexed, vanished: dict) -> bool:
    """A new path whose content matches a photo that left its old path: the same photo, moved."""
    path = display_path(result.listed.path)
    if conn.execute("SELECT 1 FROM photos WHERE path = ?", (path,)).fetchone():
        return False
    row = conn.execute(
        "SELECT id, path, path_raw FROM photos WHERE hash = ? AND status IN ('ok', 'missing') "
        "ORDER BY status = 'missing' DESC", (result.hash,)).fetchall()
    candidates = [r for r in row if r["path"] in vanished or not os.path.lexists(open_path(r))]
    if not candidates:
        return False
    photo_id = candidates[0]["id"]
    vanished.pop(candidates[0]["path"], None)
    values = _photo_values(result)
    sets = ", ".join(f"{c} = ?" for c in values)
    conn.execute(f"UPDATE photos SET {sets} WHERE id = ?", [*values.values(), photo_id])
    conn.execute("UPDATE photo_text SET path = ? WHERE rowid = ?", (path, photo_id))
    return True


def _mark_missing(conn, photo_ids: list[int]) -> int:
    missing = 0
    for photo_id in photo_ids:
        row = conn.execute("SELECT status FROM photos WHERE id = ?", (photo_id,)).fetchone()
        if row is None:
            continue
        if row["status"] == "error":  # a bad file that went away: nothing of the user's is attached to it
            conn.execute("DELETE FROM photos WHERE id = ?", (photo_id,))
        elif row["status"] == "ok":
            conn.execute("UPDATE photos SET status = 'missing', updated_at = ? WHERE id = ?", (now(), photo_id))
            missing += 1
    return missing


def _index_path_text(conn, photo_id: int, path: str) -> None:
    if conn.execute("SELECT 1 FROM photo_text WHERE rowid = ?", (photo_id,)).fetchone():
        conn.execute("UPDATE photo_text SET path = ? WHERE rowid = ?", (path, photo_id))
    else:
        conn.execute("INSERT INTO photo_text(rowid, path, captions, answers, concepts) VALUES (?, ?, '', '', '')",
                     (photo_id, path))


def _known_rows(library: Library, roots: list[str]) -> dict:
    rows = {}
    for root in roots:
        prefix = root.rstrip(os.sep) + os.sep
        for row in library.db.query(
                "SELECT id, path, size, mtime, status, hash, error FROM photos WHERE (path = ? OR substr(path, 1, ?) = ?) "
                "AND status != 'missing'", (root, len(prefix), prefix)):
            rows[row["path"]] = row
    return rows


def _iso(timestamp: float) -> str:
    import datetime as dt

    return dt.datetime.fromtimestamp(timestamp).isoformat(timespec="seconds")


def _merge(total: dict[str, int], part: dict[str, int]) -> None:
    for key, value in part.items():
        total[key] = total.get(key, 0) + value

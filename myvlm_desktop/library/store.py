"""The photo library as the rest of the app sees it: folders, photos, counts, errors, thumbnails."""

from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path
from typing import Any, Self

from .. import config
from .db import Database, now


class LibraryError(Exception):
    """A user-facing problem with a library request (a folder that does not exist, say)."""


class DataFolderError(LibraryError, RuntimeError):
    """The data folder is gone, or cannot be written: said once, at start, before anything is written."""


class Library:
    def __init__(self, data_dir: str | os.PathLike | None = None):
        self.root = usable_data_dir(data_dir)
        self.db = Database(config.database_path(self.root))
        self.thumbs = config.thumbnails_dir(self.root)

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- folders -----------------------------------------------------------------------------------
    def add_folder(self, path: str | os.PathLike) -> int:
        folder = Path(path).expanduser().resolve()
        if not folder.is_dir():
            raise LibraryError(f"not a folder: {folder}")

        def add(conn):
            conn.execute("INSERT OR IGNORE INTO folders(path, added_at) VALUES (?, ?)", (str(folder), now()))
            return conn.execute("SELECT id FROM folders WHERE path = ?", (str(folder),)).fetchone()[0]

        folder_id = self.db.write(add)
        self.db.notify("folders", folder_id)
        return folder_id

    def remove_folder(self, path: str | os.PathLike) -> None:
        """Stop watching a folder; its photos stay (as missing) so nothing the user did is lost."""
        folder = str(Path(path).expanduser().resolve())

        def remove(conn):
            row = conn.execute("SELECT id FROM folders WHERE path = ?", (folder,)).fetchone()
            if row is None:
                raise LibraryError(f"not a library folder: {folder}")
            conn.execute("UPDATE photos SET status = 'missing', updated_at = ? WHERE folder_id = ?", (now(), row[0]))
            conn.execute("DELETE FROM folders WHERE id = ?", (row[0],))

        self.db.write(remove)
        self.db.notify("folders", None)

    def folders(self) -> list[str]:
        return [r["path"] for r in self.db.query("SELECT path FROM folders ORDER BY path")]

    def offline_folders(self) -> list[str]:
        """Folders that went away (an unplugged drive, a share that is down): their photos wait for them."""
        return [r["path"] for r in self.db.query(
            "SELECT path FROM folders WHERE offline_since IS NOT NULL ORDER BY path")]

    # -- photos ------------------------------------------------------------------------------------
    def photo(self, photo_id: int):
        return self.db.read().execute("SELECT * FROM photos WHERE id = ?", (photo_id,)).fetchone()

    def photo_by_path(self, path: str | os.PathLike):
        return self.db.read().execute("SELECT * FROM photos WHERE path = ?", (display_path(path),)).fetchone()

    def photos(self, status: str = "ok", limit: int | None = None, offset: int = 0) -> list:
        sql = "SELECT * FROM photos WHERE status = ? ORDER BY date DESC, id DESC"
        params: list[Any] = [status]
        if limit is not None:
            sql += " LIMIT ? OFFSET ?"
            params += [limit, offset]
        return self.db.query(sql, params)

    def thumbnail_path(self, content_hash: str) -> Path:
        return thumbnail_file(self.thumbs, content_hash)

    def status(self) -> dict[str, int]:
        q = self.db.scalar
        return {
            "photos": q("SELECT count(*) FROM photos WHERE status = 'ok'"),
            "errors": q("SELECT count(*) FROM photos WHERE status = 'error'"),
            "missing": q("SELECT count(*) FROM photos WHERE status = 'missing'"),
            "offline": q("SELECT count(*) FROM photos p JOIN folders f ON f.id = p.folder_id "
                         "WHERE f.offline_since IS NOT NULL AND p.status = 'ok'"),
            "faces": q("SELECT count(*) FROM faces f JOIN photos p ON p.id = f.photo_id WHERE p.status = 'ok'"),
            "clusters": q("SELECT count(*) FROM clusters c WHERE hidden = 0 AND (EXISTS (SELECT 1 FROM faces f "
                          "WHERE f.cluster_id = c.id) OR EXISTS (SELECT 1 FROM cluster_photos cp "
                          "WHERE cp.cluster_id = c.id))"),
            "concepts": q("SELECT count(*) FROM concepts"),
            "captions": q("SELECT count(DISTINCT photo_id) FROM captions"),
        }

    def errors(self) -> list[dict[str, str]]:
        rows = self.db.query("SELECT path, error FROM photos WHERE status = 'error' ORDER BY path")
        return [{"path": r["path"], "reason": r["error"]} for r in rows]


def usable_data_dir(data_dir: str | os.PathLike | None) -> Path:
    """The data folder, made if needed and proven writable (a probe file written and removed)."""
    try:
        root = config.data_dir(data_dir)
        fd, probe = tempfile.mkstemp(prefix=".write-test-", dir=root)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        where = exc.filename or data_dir or "the data folder"
        raise DataFolderError(f"the data folder {where} cannot be used ({_why(exc)}): make it writable, "
                              "plug its drive back in, or choose another one with --data-dir") from None
    return root


def _why(exc: OSError) -> str:
    if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return "it is read-only"
    if exc.errno in (errno.ENOENT, errno.ENOTDIR):
        return "it is gone"
    return exc.strerror or str(exc)


def display_path(path: str | bytes | os.PathLike) -> str:
    """A path as stored in the text column: undecodable bytes of old file systems shown as \\xNN."""
    raw = os.fsencode(path)
    return raw.decode("utf-8", "backslashreplace")


def raw_path(path: str | bytes | os.PathLike) -> bytes | None:
    """The path's bytes when its text form is lossy, else None (text is enough to open it)."""
    raw = os.fsencode(path)
    try:
        raw.decode("utf-8")
        return None
    except UnicodeDecodeError:
        return raw


def open_path(row) -> str | bytes:
    """What to hand to open() for a stored photo row."""
    return bytes(row["path_raw"]) if row["path_raw"] is not None else row["path"]


def thumbnail_file(root: Path, content_hash: str) -> Path:
    return root / content_hash[:2] / f"{content_hash}.jpg"

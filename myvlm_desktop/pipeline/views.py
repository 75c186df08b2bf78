"""The reads the window shows: photo pages, a photo's faces and caption, concepts, chat history, jobs.

Nothing here writes.
"""

from __future__ import annotations

import json

from .. import config
from ..library.store import Library, open_path
from .jobs import ACTIVE_STATES


class Views:
    def __init__(self, library: Library):
        self.library = library
        self.db = library.db

    def photo_count(self) -> int:
        return self.db.scalar("SELECT count(*) FROM photos WHERE status = 'ok'")

    def photo_page(self, offset: int, limit: int) -> list[tuple[int, str | None, str]]:
        """(id, hash, path) of photos, newest first; what the grid fetches a page at a time."""
        rows = self.db.query("SELECT id, hash, path FROM photos WHERE status = 'ok' ORDER BY date DESC, id DESC "
                             "LIMIT ? OFFSET ?", (limit, offset))
        return [(r["id"], r["hash"], r["path"]) for r in rows]

    def photo_thumbnails(self, photo_ids: list[int]) -> list[tuple[int, str | None, str]]:
        """(id, hash, path) for the given photos, in the given order (search results, a concept's photos)."""
        found: dict[int, tuple] = {}
        for start in range(0, len(photo_ids), 500):
            chunk = photo_ids[start:start + 500]
            marks = ",".join("?" * len(chunk))
            for r in self.db.query(f"SELECT id, hash, path FROM photos WHERE id IN ({marks})", chunk):
                found[r["id"]] = (r["id"], r["hash"], r["path"])
        return [found[i] for i in photo_ids if i in found]

    def photo_detail(self, photo_id: int) -> dict | None:
        """A photo with its faces (box, name if any) and its newest caption."""
        photo = self.library.photo(photo_id)
        if photo is None:
            return None
        faces = self.db.query(
            "SELECT f.id, f.x1, f.y1, f.x2, f.y2, f.cluster_id, "
            "coalesce(cn.name, hn.name) AS name, coalesce(cn.kind, hn.kind) AS kind "
            "FROM faces f LEFT JOIN clusters c ON c.id = f.cluster_id "
            "LEFT JOIN concepts cn ON cn.id = c.concept_id "
            "LEFT JOIN occurrences o ON o.face_id = f.id AND o.present = 1 "
            "LEFT JOIN concepts hn ON hn.id = o.concept_id "
            "WHERE f.photo_id = ? AND f.hidden = 0 GROUP BY f.id ORDER BY f.x1", (photo_id,))
        caption = self.db.read().execute(
            "SELECT text, backend, model FROM captions WHERE photo_id = ? ORDER BY created_at DESC, id DESC LIMIT 1",
            (photo_id,)).fetchone()
        concepts = [r["name"] for r in self.db.query(
            "SELECT c.name FROM concept_photos cp JOIN concepts c ON c.id = cp.concept_id WHERE cp.photo_id = ? "
            "ORDER BY c.name", (photo_id,))]
        return {
            "id": photo_id, "path": photo["path"], "open_path": open_path(photo), "hash": photo["hash"],
            "width": photo["width"], "height": photo["height"], "date": photo["date"], "camera": photo["camera"],
            "faces": [{"id": f["id"], "box": (f["x1"], f["y1"], f["x2"], f["y2"]), "cluster_id": f["cluster_id"],
                       "name": f["name"], "kind": f["kind"]} for f in faces],
            "caption": dict(caption) if caption else None,
            "concepts": concepts,
        }

    def chat_history(self, photo_id: int | None, limit: int = 50) -> list[dict]:
        """Questions asked about a photo (or about the library when photo_id is None), oldest first."""
        where = "photo_id = ?" if photo_id is not None else "photo_id IS NULL"
        rows = self.db.query(f"SELECT question, answer, backend, created_at FROM answers WHERE {where} "
                             "ORDER BY created_at DESC, id DESC LIMIT ?",
                             ((photo_id, limit) if photo_id is not None else (limit,)))
        return [dict(r) for r in reversed(rows)]

    def concepts(self) -> list[dict]:
        """Every concept with its photo count and what has been trained for it."""
        rows = self.db.query(
            "SELECT c.id, c.name, c.kind, c.identifier, c.version, "
            "(SELECT count(*) FROM concept_photos cp WHERE cp.concept_id = c.id) AS photos "
            "FROM concepts c ORDER BY c.name COLLATE NOCASE")
        return [dict(r, head=self.head_status(r["id"], r["version"])) for r in rows]

    def concept_photo_ids(self, concept_id: int, limit: int = 5000) -> list[int]:
        rows = self.db.query(
            "SELECT p.id FROM concept_photos cp JOIN photos p ON p.id = cp.photo_id "
            "WHERE cp.concept_id = ? AND p.status = 'ok' ORDER BY p.date DESC, p.id DESC LIMIT ?",
            (concept_id, limit))
        return [r["id"] for r in rows]

    def concept_captions(self, concept_id: int, limit: int = 5) -> list[dict]:
        """The newest personalized captions that mention the concept: samples for its page."""
        rows = self.db.query(
            "SELECT c.photo_id, c.text, c.created_at FROM captions c JOIN concept_photos cp "
            "ON cp.photo_id = c.photo_id AND cp.concept_id = ? ORDER BY c.created_at DESC LIMIT ?",
            (concept_id, limit))
        return [dict(r) for r in rows]

    def concept_embeddings(self, concept_id: int) -> list[dict]:
        """The concept embeddings trained for it, one per VLM backend: [{"backend", "model", "file", ...}]."""
        folder = config.concepts_dir(self.library.root) / str(concept_id)
        found = []
        for meta_file in sorted(folder.glob("*.json")) if folder.is_dir() else []:
            if meta_file.name == "head.json" or not meta_file.with_suffix(".safetensors").exists():
                continue
            try:
                meta = json.loads(meta_file.read_text())
            except (OSError, ValueError):
                continue
            if isinstance(meta, dict) and meta.get("backend"):
                found.append({**meta, "file": str(meta_file.with_suffix(".safetensors"))})
        return found

    def head_status(self, concept_id: int, version: int) -> str:
        meta_file = config.concepts_dir(self.library.root) / str(concept_id) / "head.json"
        if not meta_file.exists():
            return "not trained"
        try:
            meta = json.loads(meta_file.read_text())
        except (OSError, ValueError):
            return "unreadable: will retrain"
        trained = meta.get("concept_version")
        return "up to date" if trained in (None, version) else "out of date: retrains on the next detection"

    def unfinished_jobs(self) -> list[dict]:
        marks = ",".join("?" * len(ACTIVE_STATES))
        return [dict(r) for r in self.db.query(f"SELECT id, kind, state, progress, message FROM jobs "
                                               f"WHERE state IN ({marks}) ORDER BY id", ACTIVE_STATES)]

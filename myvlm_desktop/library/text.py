"""The photo's full-text row (photo_text, FTS5): what `myvlm search` matches words against.

One row per photo (rowid = photo id): its path, its newest caption, every question asked about it with
the answer, and the names of the concepts in it ("Alice <Alice>", so both `Alice` and `<Alice>` match).
Whoever changes one of those calls `update_photo_text` in the same transaction, so the index never lags.
"""

from __future__ import annotations

import sqlite3


def update_photo_text(conn: sqlite3.Connection, photo_id: int) -> None:
    """Rebuild the photo's FTS row from photos.path, the newest caption, its answers and its concepts."""
    photo = conn.execute("SELECT path FROM photos WHERE id = ?", (photo_id,)).fetchone()
    conn.execute("DELETE FROM photo_text WHERE rowid = ?", (photo_id,))
    if photo is None:
        return
    conn.execute("INSERT INTO photo_text(rowid, path, captions, answers, concepts) VALUES (?, ?, ?, ?, ?)",
                 (photo_id, photo[0], newest_caption_text(conn, photo_id), _answers_text(conn, photo_id),
                  _concepts_text(conn, photo_id)))


def newest_caption_text(conn: sqlite3.Connection, photo_id: int) -> str:
    row = conn.execute("SELECT text FROM captions WHERE photo_id = ? ORDER BY created_at DESC, id DESC LIMIT 1",
                       (photo_id,)).fetchone()
    return row[0] if row else ""


def _answers_text(conn: sqlite3.Connection, photo_id: int) -> str:
    rows = conn.execute("SELECT question, answer FROM answers WHERE photo_id = ? ORDER BY created_at, id",
                        (photo_id,)).fetchall()
    return "\n".join(f"{q} {a}" for q, a in rows)


def _concepts_text(conn: sqlite3.Connection, photo_id: int) -> str:
    rows = conn.execute(
        "SELECT c.name, c.identifier FROM concept_photos cp JOIN concepts c ON c.id = cp.concept_id "
        "WHERE cp.photo_id = ? ORDER BY c.name COLLATE NOCASE", (photo_id,)).fetchall()
    return " ".join(f"{name} {identifier}" for name, identifier in rows)

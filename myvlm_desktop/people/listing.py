"""The clusters People & Pets lists, for the window and for `myvlm people` alike.

The rule: a cluster's size counts its faces (or, for an image cluster, its photos) in photos whose status
is `ok`, and a cluster with none is not listed. A photo that became unreadable, or whose file is gone,
neither counts nor shows as a cover or a member.
"""

from __future__ import annotations

from typing import Any

from ..library.db import Database
from ..library.store import open_path


def list_clusters(db: Database, hidden: bool = False, kind: str | None = None) -> list[dict]:
    """Face and image clusters, named first then largest.

    `hidden` lists the hidden clusters too; `kind` keeps only 'face' or only 'image' clusters. Each entry:
    id, cluster_kind, size, concept (its name or None), concept_id, kind (the concept's kind, or None when
    unnamed), hidden, cover_face, cover_photo, cover_path, cover_box ([x1, y1, x2, y2], or None for a
    whole photo) and cover (what the window draws: path, hash, box, size, and face_id or whole).
    """
    where = ["(? OR c.hidden = 0)"]
    params: list[Any] = [int(hidden)]
    if kind:
        where.append("c.kind = ?")
        params.append(kind)
    rows = db.query(
        "SELECT c.id, c.kind, c.hidden, c.cover_face_id, c.cover_photo_id, n.id AS concept_id, n.name, "
        "n.kind AS concept_kind, CASE c.kind WHEN 'face' THEN "
        "(SELECT count(*) FROM faces f JOIN photos p ON p.id = f.photo_id WHERE f.cluster_id = c.id "
        " AND f.hidden = 0 AND p.status = 'ok') ELSE "
        "(SELECT count(*) FROM cluster_photos cp JOIN photos p ON p.id = cp.photo_id WHERE cp.cluster_id = c.id "
        " AND p.status = 'ok') END AS size "
        f"FROM clusters c LEFT JOIN concepts n ON n.id = c.concept_id WHERE {' AND '.join(where)} "
        "ORDER BY n.name IS NULL, size DESC, c.id", params)
    listed = []
    for r in rows:
        if not r["size"]:
            continue
        shown = cover(db, r)
        listed.append({
            "id": r["id"], "cluster_kind": r["kind"], "size": r["size"], "concept": r["name"],
            "concept_id": r["concept_id"], "kind": r["concept_kind"], "hidden": bool(r["hidden"]),
            "cover_face": shown.get("face_id"), "cover_photo": shown["photo_id"], "cover_path": shown["shown_path"],
            "cover_box": None if shown.get("whole") else list(shown["box"]), "cover": shown})
    return listed


def cover(db: Database, cluster) -> dict:
    """The face (or photo) shown for a cluster with a member: the chosen cover while it is in an ok photo,
    else the biggest face (the first photo)."""
    if cluster["kind"] == "face":
        face = db.read().execute(
            "SELECT f.id, f.photo_id, f.x1, f.y1, f.x2, f.y2, p.path, p.path_raw, p.width, p.height, p.hash "
            "FROM faces f JOIN photos p ON p.id = f.photo_id "
            "WHERE f.cluster_id = ? AND f.hidden = 0 AND p.status = 'ok' "
            "ORDER BY f.id = ? DESC, (f.x2 - f.x1) * (f.y2 - f.y1) DESC LIMIT 1",
            (cluster["id"], cluster["cover_face_id"] or -1)).fetchone()
        return dict(_face(face), face_id=face["id"], photo_id=face["photo_id"])
    photo = db.read().execute(
        "SELECT p.id, p.path, p.path_raw, p.width, p.height, p.hash FROM cluster_photos cp "
        "JOIN photos p ON p.id = cp.photo_id WHERE cp.cluster_id = ? AND p.status = 'ok' "
        "ORDER BY p.id = ? DESC, p.id LIMIT 1", (cluster["id"], cluster["cover_photo_id"] or -1)).fetchone()
    return _whole(photo)


def cluster_members(db: Database, cluster_id: int) -> list[dict]:
    """The faces of a face cluster (or the photos of an image cluster) in ok photos, biggest faces first.

    Each: id (the face, or the photo of an image cluster), photo_id, path (to open), shown_path, hash, box,
    size (the photo's), and assigned_by for a face or whole for a photo.
    """
    kind = db.scalar("SELECT kind FROM clusters WHERE id = ?", (cluster_id,))
    if kind == "face":
        rows = db.query(
            "SELECT f.id, f.photo_id, f.x1, f.y1, f.x2, f.y2, f.assigned_by, p.path, p.path_raw, p.width, "
            "p.height, p.hash FROM faces f JOIN photos p ON p.id = f.photo_id WHERE f.cluster_id = ? "
            "AND f.hidden = 0 AND p.status = 'ok' ORDER BY (f.x2 - f.x1) * (f.y2 - f.y1) DESC, f.id", (cluster_id,))
        return [dict(_face(r), photo_id=r["photo_id"], assigned_by=r["assigned_by"]) for r in rows]
    rows = db.query(
        "SELECT p.id, p.path, p.path_raw, p.width, p.height, p.hash FROM cluster_photos cp "
        "JOIN photos p ON p.id = cp.photo_id WHERE cp.cluster_id = ? AND p.status = 'ok' ORDER BY p.date DESC, p.id",
        (cluster_id,))
    return [dict(_whole(r), id=r["id"]) for r in rows]


def _face(row) -> dict:
    return {"id": row["id"], "path": open_path(row), "shown_path": row["path"], "hash": row["hash"],
            "box": (row["x1"], row["y1"], row["x2"], row["y2"]), "size": (row["width"] or 0, row["height"] or 0)}


def _whole(row) -> dict:
    return {"photo_id": row["id"], "path": open_path(row), "shown_path": row["path"], "hash": row["hash"],
            "whole": True, "box": (0.0, 0.0, float(row["width"] or 0), float(row["height"] or 0)),
            "size": (row["width"] or 0, row["height"] or 0)}

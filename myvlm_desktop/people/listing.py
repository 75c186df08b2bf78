"""The clusters People & Pets lists, for the window and for `myvlm people` alike.

The rule: a cluster's size counts its faces (or, for an image cluster, its photos) in photos whose status
is `ok`, and a cluster with none is not listed. A photo that became unreadable, or whose file is gone,
neither counts nor shows as a cover.
"""

from __future__ import annotations

from typing import Any

from ..library.db import Database
from ..library.store import open_path


def list_clusters(db: Database, hidden: bool = False, kind: str | None = None) -> list[dict]:
    """Face and image clusters, named first then largest, each with its size, name and a cover.

    `hidden` lists the hidden clusters too; `kind` keeps only 'face' or only 'image' clusters.
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
    return [{"id": r["id"], "kind": r["kind"], "size": r["size"], "concept_id": r["concept_id"], "name": r["name"],
             "concept_kind": r["concept_kind"], "hidden": bool(r["hidden"]), "cover": cover(db, r)}
            for r in rows if r["size"]]


def cover(db: Database, cluster) -> dict | None:
    """The face (or photo) shown for a cluster: the chosen cover when it is still there, else the biggest."""
    if cluster["kind"] == "face":
        face = db.read().execute(
            "SELECT f.id, f.photo_id, f.x1, f.y1, f.x2, f.y2, p.path, p.path_raw, p.width, p.height, p.hash "
            "FROM faces f JOIN photos p ON p.id = f.photo_id "
            "WHERE f.cluster_id = ? AND f.hidden = 0 AND p.status = 'ok' "
            "ORDER BY f.id = ? DESC, (f.x2 - f.x1) * (f.y2 - f.y1) DESC LIMIT 1",
            (cluster["id"], cluster["cover_face_id"] or -1)).fetchone()
        return None if face is None else dict(_face(face), face_id=face["id"], photo_id=face["photo_id"])
    photo = db.read().execute(
        "SELECT p.id, p.path, p.path_raw, p.width, p.height, p.hash FROM cluster_photos cp "
        "JOIN photos p ON p.id = cp.photo_id WHERE cp.cluster_id = ? AND p.status = 'ok' "
        "ORDER BY p.id = ? DESC, p.id LIMIT 1", (cluster["id"], cluster["cover_photo_id"] or -1)).fetchone()
    return None if photo is None else _whole(photo)


def cluster_members(db: Database, cluster_id: int) -> list[dict]:
    """The faces of a face cluster (or the photos of an image cluster) in ok photos, biggest faces first."""
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
    return {"id": row["id"], "path": open_path(row), "hash": row["hash"],
            "box": (row["x1"], row["y1"], row["x2"], row["y2"]), "size": (row["width"] or 0, row["height"] or 0)}


def _whole(row) -> dict:
    return {"photo_id": row["id"], "path": open_path(row), "hash": row["hash"], "whole": True,
            "box": (0.0, 0.0, float(row["width"] or 0), float(row["height"] or 0)),
            "size": (row["width"] or 0, row["height"] or 0)}

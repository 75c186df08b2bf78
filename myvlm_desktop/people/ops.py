"""What the user does in People & Pets, as operations with undo and redo (the GUI and the CLI call these).

Every operation runs as one transaction on the writer thread, is logged with the row images that undo and
redo it (people/undo.py), bumps `concepts.version` of each concept whose examples it changes, and then
announces `db.notify("people", {...})` with the clusters and concepts it touched.

The data model: a *concept* (name, kind person / pet / object, identifier `<Name>`) owns clusters; a face
cluster's faces (not hidden) and an image cluster's photos are the concept's examples, and rejections are
its negatives ("not Alice"). A concept has at most one cluster of each kind: naming a second cluster
with a taken name merges it into the first. Faces the user placed are `assigned_by = 'user'`.

Arguments accept a `Library` or its `Database`. Clusters are given by id (int), concepts by name or id.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

from ..library.db import Database, now
from . import undo as undo_log
from .update import fix_cover, read_setting, write_setting

KINDS = ("person", "pet", "object")


class PeopleError(Exception):
    """A request that cannot be done (unknown cluster, bad name...): the message says why, for the user."""


class NameTaken(PeopleError):
    """The new name belongs to another concept: the caller may offer to merge the two."""

    def __init__(self, name: str, concept_id: int):
        super().__init__(f"a concept named {name!r} exists already: merge the two instead")
        self.name, self.concept_id = name, concept_id


def _db(target) -> Database:
    return getattr(target, "db", target)


def _operation(target, kind: str, fn: Callable, *args) -> Any:
    """Run `fn(conn, *args) -> (result, summary)` as a logged operation; nothing changed, nothing logged."""
    db = _db(target)

    def tx(conn):
        recorder = undo_log.Recorder(conn)
        try:
            result, summary = fn(conn, *args)
            undo, redo = recorder.images()
        finally:
            recorder.close()
        if undo:
            undo_log.record(conn, kind, summary, undo, redo)
        touched = {"clusters": [k[0] for k, _ in undo.get("clusters", [])],
                   "concepts": [k[0] for k, _ in undo.get("concepts", [])]}
        return result, summary, touched

    result, summary, touched = db.write(tx)
    db.notify("people", {"operation": kind, "summary": summary, **touched})
    return result


def undo(target) -> dict:
    """Undo the newest operation; returns what was undone (kind, summary, clusters, concepts)."""
    return _step(target, "undo")


def redo(target) -> dict:
    return _step(target, "redo")


def _step(target, direction: str) -> dict:
    db = _db(target)
    try:
        done = db.write(undo_log.step, direction)
    except undo_log.UndoError as exc:
        raise PeopleError(str(exc)) from None
    db.notify("people", {"operation": direction, "summary": done["summary"], "clusters": done["clusters"],
                         "concepts": done["concepts"]})
    return done


def history(target, limit: int = 20) -> list[dict]:
    rows = _db(target).query("SELECT id, kind, summary, state, created_at FROM operations ORDER BY id DESC LIMIT ?",
                             (limit,))
    return [dict(r) for r in rows]


# -- lookups ------------------------------------------------------------------------------------------------

def _cluster(conn, cluster_id: int):
    row = conn.execute("SELECT * FROM clusters WHERE id = ?", (_int(cluster_id, "cluster"),)).fetchone()
    if row is None:
        raise PeopleError(f"no cluster {cluster_id}")
    return row


def _concept(conn, ref: int | str):
    """A concept by id (an int) or by name ("Alice", "@Alice", "<Alice>"); digits are a name when a concept
    has that name (a concept may be called "2024"), else an id."""
    text = str(ref).strip()
    row = None if isinstance(ref, int) else _named(conn, text.strip("<>@"))
    if row is None and text.isdigit():
        row = conn.execute("SELECT * FROM concepts WHERE id = ?", (int(text),)).fetchone()
    if row is None:
        raise PeopleError(f"no concept {ref!r}")
    return row


def _named(conn, name: str):
    return conn.execute("SELECT * FROM concepts WHERE name_key(name) = name_key(?)", (name,)).fetchone()


def _face(conn, face_id: int):
    row = conn.execute("SELECT * FROM faces WHERE id = ?", (_int(face_id, "face"),)).fetchone()
    if row is None:
        raise PeopleError(f"no face {face_id}")
    return row


def _int(value, what: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise PeopleError(f"not a {what} id: {value!r}") from None


def _clean_name(name: str) -> str:
    name = " ".join(str(name).split())
    if not name:
        raise PeopleError("a name cannot be empty")
    if len(name) > 64 or re.search(r"[<>@\x00-\x1f\"]", name):
        raise PeopleError(f"not a usable name: {name!r} (at most 64 characters, none of < > @ \")")
    return name


def _kind(kind: str) -> str:
    if kind not in KINDS:
        raise PeopleError(f"kind must be one of {', '.join(KINDS)}, not {kind!r}")
    return kind


def _bump(conn, *concept_ids) -> None:
    ids = {c for c in concept_ids if c}
    for concept in ids:
        conn.execute("UPDATE concepts SET version = version + 1 WHERE id = ?", (concept,))


def _new_concept(conn, name: str, kind: str) -> int:
    """A new concept with an id never used before (heads on disk are filed by id)."""
    high = read_setting(conn, "people.concept_id_high", 0)
    top = max(high if isinstance(high, int) else 0,
              conn.execute("SELECT coalesce(max(id), 0) FROM concepts").fetchone()[0])
    concept = top + 1
    conn.execute("INSERT INTO concepts(id, name, kind, identifier, version, created_at) VALUES (?, ?, ?, ?, 1, ?)",
                 (concept, name, kind, f"<{name}>", now()))
    write_setting(conn, "people.concept_id_high", concept)
    return concept


def _cluster_of(conn, concept_id: int, kind: str):
    return conn.execute("SELECT * FROM clusters WHERE concept_id = ? AND kind = ? ORDER BY id LIMIT 1",
                        (concept_id, kind)).fetchone()


# -- naming ----------------------------------------------------------------------------------------------

def name_cluster(target, cluster_id: int, name: str, kind: str = "person") -> dict:
    """Name a cluster: a new concept, or (when the name exists) the cluster joins that concept."""
    return _operation(target, "name", _name_cluster, cluster_id, _clean_name(name), _kind(kind))


def _name_cluster(conn, cluster_id, name, kind):
    cluster = _cluster(conn, cluster_id)
    existing = _named(conn, name)
    if cluster["concept_id"] is not None:
        if existing is not None and existing["id"] == cluster["concept_id"]:
            return _concept_dict(existing), f"cluster {cluster['id']} is already {existing['name']}"
        if existing is not None:
            raise NameTaken(existing["name"], existing["id"])
        return _rename(conn, cluster["concept_id"], name)
    if existing is not None:
        if existing["kind"] != kind:
            raise PeopleError(f"{existing['name']} is a {existing['kind']}, not a {kind}")
        _join(conn, cluster, existing["id"])
        return _concept_dict(_concept(conn, existing["id"])), f"cluster {cluster['id']} joined {existing['name']}"
    concept = _new_concept(conn, name, kind)
    conn.execute("UPDATE clusters SET concept_id = ? WHERE id = ?", (concept, cluster["id"]))
    _unassign_rejected(conn, concept)
    return _concept_dict(_concept(conn, concept)), f"named cluster {cluster['id']} {name} ({kind})"


def _join(conn, cluster, concept_id: int) -> None:
    """An unnamed cluster becomes part of a concept: merged into its cluster of the same kind, if any."""
    home = _cluster_of(conn, concept_id, cluster["kind"])
    if home is None:
        conn.execute("UPDATE clusters SET concept_id = ? WHERE id = ?", (concept_id, cluster["id"]))
    else:
        _absorb_cluster(conn, home["id"], cluster["id"])
    _unassign_rejected(conn, concept_id)
    _bump(conn, concept_id)


def _unassign_rejected(conn, concept_id: int) -> None:
    """Faces and photos the concept rejected leave its clusters (they are never its examples)."""
    conn.execute("UPDATE faces SET cluster_id = NULL, assigned_by = 'auto' WHERE id IN "
                 "(SELECT face_id FROM rejections WHERE concept_id = ?) AND cluster_id IN "
                 "(SELECT id FROM clusters WHERE concept_id = ?)", (concept_id, concept_id))
    conn.execute("DELETE FROM cluster_photos WHERE photo_id IN (SELECT photo_id FROM rejections WHERE concept_id = ? "
                 "AND face_id IS NULL) AND cluster_id IN (SELECT id FROM clusters WHERE concept_id = ?)",
                 (concept_id, concept_id))


def rename_concept(target, concept: int | str, new_name: str) -> dict:
    """Rename a concept (its identifier follows). A name another concept has raises NameTaken."""
    return _operation(target, "rename", _rename_op, concept, _clean_name(new_name))


def _rename_op(conn, concept, new_name):
    return _rename(conn, _concept(conn, concept)["id"], new_name)


def _rename(conn, concept_id: int, new_name: str):
    old = _concept(conn, concept_id)
    other = _named(conn, new_name)
    if other is not None and other["id"] != concept_id:
        raise NameTaken(other["name"], other["id"])
    conn.execute("UPDATE concepts SET name = ?, identifier = ? WHERE id = ?", (new_name, f"<{new_name}>", concept_id))
    return _concept_dict(_concept(conn, concept_id)), f"renamed {old['name']} to {new_name}"


def _concept_dict(row) -> dict:
    return {"id": row["id"], "name": row["name"], "kind": row["kind"], "identifier": row["identifier"],
            "version": row["version"]}


# -- merge, split, move -------------------------------------------------------------------------------

def merge(target, a: int | str, b: int | str, keep: int | str | None = None) -> dict:
    """Merge b into a (or a into b when keep is b). An int is a cluster, a name is a concept.

    Two clusters become one (the survivor's id; the faces moved count as placed by the user). Two named
    concepts become one (the survivor's name); their clusters of the same kind merge too. Returns the
    surviving cluster or concept.
    """
    return _operation(target, "merge", _merge, a, b, keep)


CLUSTER_PREFIX = "c:"  # "c:12" is always cluster 12, whatever the concepts are called


def _ref(conn, ref):
    """('cluster', row) or ('concept', row) for what a merge names.

    An int or "c:12" is a cluster; "@Name" or "<Name>" a concept. Other text is a concept's name, except
    digits that no concept is called, which stay a cluster id. Digits that are both a concept's name and
    a cluster id are refused with the two ways to say which.
    """
    if isinstance(ref, int):
        return "cluster", _cluster(conn, ref)
    text = str(ref).strip()
    if text.lower().startswith(CLUSTER_PREFIX):
        return "cluster", _cluster(conn, _int(text[len(CLUSTER_PREFIX):].strip(), "cluster"))
    if text.startswith("-") and text[1:].isdigit():
        raise PeopleError(f"not a cluster id: {text} (cluster ids are the positive numbers `myvlm people` "
                          "lists)")
    if not text.isdigit():
        return "concept", _concept(conn, text)
    named = _named(conn, text)
    if named is None:
        return "cluster", _cluster(conn, int(text))
    if conn.execute("SELECT 1 FROM clusters WHERE id = ?", (int(text),)).fetchone():
        raise PeopleError(f"{text} is both a concept's name and a cluster: write @{text} for the concept "
                          f"or {CLUSTER_PREFIX}{text} for the cluster")
    return "concept", named


def _same(a, b) -> bool:
    return a[0] == b[0] and a[1]["id"] == b[1]["id"]


def _merge(conn, a, b, keep):
    (kind_a, row_a), (kind_b, row_b) = first, second = _ref(conn, a), _ref(conn, b)
    if keep is not None:
        kept = _ref(conn, keep)
        if not (_same(kept, first) or _same(kept, second)):
            raise PeopleError(f"--keep must be one of the two merged: {a} or {b}")
        if not _same(kept, first):
            (kind_a, row_a), (kind_b, row_b) = second, first
    concept_a = row_a["id"] if kind_a == "concept" else row_a["concept_id"]
    concept_b = row_b["id"] if kind_b == "concept" else row_b["concept_id"]
    if (kind_a == kind_b == "cluster" and row_a["id"] == row_b["id"]) or \
            (kind_a == kind_b == "concept" and concept_a == concept_b):
        raise PeopleError("cannot merge something with itself")
    if concept_a and concept_b and concept_a != concept_b:
        gone = _concept(conn, concept_b)["name"]
        _absorb_concept(conn, concept_a, concept_b)  # their clusters (face, image, or both) go to the survivor
        survivor = _concept(conn, concept_a)
        return _concept_dict(survivor), f"merged {gone} into {survivor['name']}"
    if kind_a == "cluster" and kind_b == "cluster":
        if row_a["kind"] != row_b["kind"]:
            raise PeopleError("a face cluster and an image cluster cannot be merged")
        _absorb_cluster(conn, row_a["id"], row_b["id"])
        concept = concept_a or concept_b
        if concept:
            conn.execute("UPDATE clusters SET concept_id = ? WHERE id = ?", (concept, row_a["id"]))
            _unassign_rejected(conn, concept)
            _bump(conn, concept)
        return {"cluster": row_a["id"]}, f"merged cluster {row_b['id']} into cluster {row_a['id']}"
    # a concept and an unnamed cluster (or a cluster of that concept): the cluster joins the concept
    concept = concept_a or concept_b
    cluster = row_b if kind_b == "cluster" else row_a
    if cluster["concept_id"] == concept:
        raise PeopleError(f"cluster {cluster['id']} already belongs to that concept")
    _join(conn, cluster, concept)
    survivor = _concept(conn, concept)
    return _concept_dict(survivor), f"cluster {cluster['id']} joined {survivor['name']}"


def _absorb_cluster(conn, keep: int, gone: int) -> None:
    """Every member of `gone` moves to `keep` (as the user's placement); `gone` is removed."""
    conn.execute("UPDATE faces SET cluster_id = ?, assigned_by = 'user' WHERE cluster_id = ?", (keep, gone))
    conn.execute("INSERT OR IGNORE INTO cluster_photos(cluster_id, photo_id, assigned_by) "
                 "SELECT ?, photo_id, 'user' FROM cluster_photos WHERE cluster_id = ?", (keep, gone))
    conn.execute("DELETE FROM cluster_photos WHERE cluster_id = ?", (gone,))
    hidden = conn.execute("SELECT hidden FROM clusters WHERE id = ?", (gone,)).fetchone()[0]
    conn.execute("DELETE FROM clusters WHERE id = ?", (gone,))
    if not hidden:
        conn.execute("UPDATE clusters SET hidden = 0 WHERE id = ?", (keep,))
    fix_cover(conn, keep)


def _absorb_concept(conn, keep: int, gone: int) -> None:
    """`gone`'s clusters, rejections and the user's marks move to `keep`; `gone` is deleted."""
    for cluster in conn.execute("SELECT * FROM clusters WHERE concept_id = ? ORDER BY id", (gone,)).fetchall():
        home = _cluster_of(conn, keep, cluster["kind"])
        if home is None:
            conn.execute("UPDATE clusters SET concept_id = ? WHERE id = ?", (keep, cluster["id"]))
        else:
            _absorb_cluster(conn, home["id"], cluster["id"])
    conn.execute("INSERT INTO rejections(concept_id, face_id, photo_id, created_at) "
                 "SELECT ?, r.face_id, r.photo_id, r.created_at FROM rejections r WHERE r.concept_id = ? "
                 "AND NOT EXISTS (SELECT 1 FROM rejections k WHERE k.concept_id = ? "
                 "AND k.face_id IS r.face_id AND k.photo_id IS r.photo_id)", (keep, gone, keep))
    conn.execute("INSERT OR IGNORE INTO occurrences(photo_id, concept_id, face_id, score, source, present, "
                 "head_version, created_at) SELECT photo_id, ?, face_id, score, source, present, head_version, "
                 "created_at FROM occurrences WHERE concept_id = ? AND source = 'user'", (keep, gone))
    conn.execute("DELETE FROM rejections WHERE concept_id = ?", (gone,))
    conn.execute("DELETE FROM occurrences WHERE concept_id = ?", (gone,))
    conn.execute("DELETE FROM concepts WHERE id = ?", (gone,))
    _unassign_rejected(conn, keep)
    _bump(conn, keep)


def split(target, cluster_id: int, face_ids: Sequence[int]) -> dict:
    """The chosen faces of a cluster become a new, unnamed cluster (placed by the user)."""
    return _operation(target, "split", _split, cluster_id, [_int(f, "face") for f in face_ids])


def _split(conn, cluster_id, face_ids):
    cluster = _cluster(conn, cluster_id)
    if cluster["kind"] != "face":
        raise PeopleError("only face clusters can be split; remove photos from an image cluster with reject")
    chosen = sorted(set(face_ids))
    if not chosen:
        raise PeopleError("choose the faces to split off")
    members = {r[0] for r in conn.execute("SELECT id FROM faces WHERE cluster_id = ?", (cluster["id"],))}
    strangers = [f for f in chosen if f not in members]
    if strangers:
        raise PeopleError(f"not in cluster {cluster['id']}: faces {', '.join(map(str, strangers))}")
    if len(chosen) == len(members):
        raise PeopleError("that is the whole cluster: choose only the faces to split off")
    new = conn.execute("INSERT INTO clusters(kind, created_at) VALUES ('face', ?)", (now(),)).lastrowid
    conn.executemany("UPDATE faces SET cluster_id = ?, assigned_by = 'user' WHERE id = ?", [(new, f) for f in chosen])
    # the faces left behind were looked at too: both sides are the user's, so no re-cluster rejoins them
    conn.execute("UPDATE faces SET assigned_by = 'user' WHERE cluster_id = ?", (cluster["id"],))
    fix_cover(conn, cluster["id"])
    fix_cover(conn, new)
    _bump(conn, cluster["concept_id"])
    return {"cluster": new, "faces": chosen}, f"split {len(chosen)} faces off cluster {cluster['id']}"


def move_face(target, face_id: int, cluster_id: int) -> dict:
    """Put one face in another cluster (the user's placement wins over a rejection of that concept)."""
    return _operation(target, "move", _move, face_id, cluster_id)


def _move(conn, face_id, cluster_id):
    face, cluster = _face(conn, face_id), _cluster(conn, cluster_id)
    if cluster["kind"] != "face":
        raise PeopleError(f"cluster {cluster['id']} holds photos, not faces")
    if face["cluster_id"] == cluster["id"]:
        raise PeopleError(f"face {face['id']} is already in cluster {cluster['id']}")
    old = conn.execute("SELECT concept_id FROM clusters WHERE id = ?", (face["cluster_id"],)).fetchone()
    conn.execute("UPDATE faces SET cluster_id = ?, assigned_by = 'user', hidden = 0 WHERE id = ?",
                 (cluster["id"], face["id"]))
    if cluster["concept_id"]:
        conn.execute("DELETE FROM rejections WHERE concept_id = ? AND face_id = ?", (cluster["concept_id"], face["id"]))
    if face["cluster_id"]:
        fix_cover(conn, face["cluster_id"])
    fix_cover(conn, cluster["id"])
    _bump(conn, old[0] if old else None, cluster["concept_id"])
    return {"face": face["id"], "cluster": cluster["id"]}, f"moved face {face['id']} to cluster {cluster['id']}"


# -- reject, hide, cover, delete -------------------------------------------------------------------------

def reject_face(target, face_id: int, concept: int | str) -> dict:
    """"Not Alice": the face leaves Alice's clusters and is never put back there automatically."""
    return _operation(target, "reject", _reject_face, face_id, concept)


def _reject_face(conn, face_id, concept_ref):
    face, concept = _face(conn, face_id), _concept(conn, concept_ref)
    if conn.execute("SELECT 1 FROM rejections WHERE concept_id = ? AND face_id = ?",
                    (concept["id"], face["id"])).fetchone():
        return {"face": face["id"], "concept": concept["name"]}, f"face {face['id']} was already not {concept['name']}"
    conn.execute("INSERT INTO rejections(concept_id, face_id, photo_id, created_at) VALUES (?, ?, NULL, ?)",
                 (concept["id"], face["id"], now()))
    _unassign_rejected(conn, concept["id"])
    if face["cluster_id"]:
        fix_cover(conn, face["cluster_id"])
    _bump(conn, concept["id"])
    return {"face": face["id"], "concept": concept["name"]}, f"face {face['id']} is not {concept['name']}"


def reject_photo(target, photo_id: int, concept: int | str) -> dict:
    """"Rex is not in this photo": the photo leaves the concept's image clusters for good."""
    return _operation(target, "reject", _reject_photo, _int(photo_id, "photo"), concept)


def _reject_photo(conn, photo_id, concept_ref):
    concept = _concept(conn, concept_ref)
    if conn.execute("SELECT 1 FROM photos WHERE id = ?", (photo_id,)).fetchone() is None:
        raise PeopleError(f"no photo {photo_id}")
    if not conn.execute("SELECT 1 FROM rejections WHERE concept_id = ? AND photo_id = ? AND face_id IS NULL",
                        (concept["id"], photo_id)).fetchone():
        conn.execute("INSERT INTO rejections(concept_id, face_id, photo_id, created_at) VALUES (?, NULL, ?, ?)",
                     (concept["id"], photo_id, now()))
    _unassign_rejected(conn, concept["id"])
    for cluster in conn.execute("SELECT id FROM clusters WHERE concept_id = ?", (concept["id"],)).fetchall():
        fix_cover(conn, cluster[0])
    _bump(conn, concept["id"])
    return {"photo": photo_id, "concept": concept["name"]}, f"photo {photo_id} is not {concept['name']}"


def hide_cluster(target, cluster_id: int, hidden: bool = True) -> dict:
    """Hide a cluster from People & Pets (it keeps collecting its faces, out of sight), or show it again."""
    return _operation(target, "hide" if hidden else "show", _hide, cluster_id, bool(hidden))


def _hide(conn, cluster_id, hidden):
    cluster = _cluster(conn, cluster_id)
    conn.execute("UPDATE clusters SET hidden = ? WHERE id = ?", (int(hidden), cluster["id"]))
    return {"cluster": cluster["id"], "hidden": hidden}, f"{'hid' if hidden else 'showed'} cluster {cluster['id']}"


def set_cover(target, cluster_id: int, face_id: int) -> dict:
    """The face shown for a face cluster (for an image cluster: pass a photo id)."""
    return _operation(target, "cover", _cover, cluster_id, face_id)


def _cover(conn, cluster_id, item):
    cluster = _cluster(conn, cluster_id)
    if cluster["kind"] == "face":
        face = _face(conn, item)
        if face["cluster_id"] != cluster["id"]:
            raise PeopleError(f"face {face['id']} is not in cluster {cluster['id']}")
        conn.execute("UPDATE clusters SET cover_face_id = ?, cover_photo_id = ? WHERE id = ?",
                     (face["id"], face["photo_id"], cluster["id"]))
    else:
        if not conn.execute("SELECT 1 FROM cluster_photos WHERE cluster_id = ? AND photo_id = ?",
                            (cluster["id"], _int(item, "photo"))).fetchone():
            raise PeopleError(f"photo {item} is not in cluster {cluster['id']}")
        conn.execute("UPDATE clusters SET cover_photo_id = ? WHERE id = ?", (int(item), cluster["id"]))
    return {"cluster": cluster["id"], "cover": int(item)}, f"new cover for cluster {cluster['id']}"


def delete_concept(target, concept: int | str) -> dict:
    """Forget a concept: its face clusters stay, unnamed; its rejections, marks and photo picks go."""
    return _operation(target, "delete", _delete, concept)


def _delete(conn, concept_ref):
    concept = _concept(conn, concept_ref)
    cid = concept["id"]
    picked = [r[0] for r in conn.execute(
        "SELECT id FROM clusters c WHERE concept_id = ? AND kind = 'image' AND NOT EXISTS "
        "(SELECT 1 FROM cluster_photos cp WHERE cp.cluster_id = c.id AND cp.assigned_by = 'auto')", (cid,))]
    for cluster in picked:  # made from the user's photo picks: they meant nothing without the concept
        conn.execute("DELETE FROM cluster_photos WHERE cluster_id = ?", (cluster,))
        conn.execute("DELETE FROM clusters WHERE id = ?", (cluster,))
    conn.execute("UPDATE clusters SET concept_id = NULL WHERE concept_id = ?", (cid,))
    conn.execute("DELETE FROM rejections WHERE concept_id = ?", (cid,))
    conn.execute("DELETE FROM occurrences WHERE concept_id = ?", (cid,))
    conn.execute("DELETE FROM concepts WHERE id = ?", (cid,))
    return {"deleted": concept["name"]}, f"deleted {concept['name']}"


def create_concept_from_photos(target, name: str, kind: str, photo_ids: Sequence[int]) -> dict:
    """A concept from photos the user picked (a pet, an object, or a person): its image cluster holds them.

    With a name that exists (same kind), the photos are added to that concept.
    """
    ids = sorted({_int(p, "photo") for p in photo_ids})
    if not ids:
        raise PeopleError("choose at least one photo")
    return _operation(target, "create", _create, _clean_name(name), _kind(kind), ids)


def _create(conn, name, kind, photo_ids):
    marks = ",".join("?" * len(photo_ids))
    found = {r[0] for r in conn.execute(f"SELECT id FROM photos WHERE id IN ({marks})", photo_ids)}
    missing = [p for p in photo_ids if p not in found]
    if missing:
        raise PeopleError(f"no photo {', '.join(map(str, missing))}")
    concept = _named(conn, name)
    if concept is not None and concept["kind"] != kind:
        raise PeopleError(f"{concept['name']} is a {concept['kind']}, not a {kind}")
    concept_id = concept["id"] if concept is not None else _new_concept(conn, name, kind)
    cluster = _cluster_of(conn, concept_id, "image")
    cluster_id = cluster["id"] if cluster is not None else conn.execute(
        "INSERT INTO clusters(kind, concept_id, created_at) VALUES ('image', ?, ?)", (concept_id, now())).lastrowid
    conn.executemany("INSERT INTO cluster_photos(cluster_id, photo_id, assigned_by) VALUES (?, ?, 'user') "
                     "ON CONFLICT(cluster_id, photo_id) DO UPDATE SET assigned_by = 'user'",
                     [(cluster_id, p) for p in photo_ids])
    conn.execute(f"DELETE FROM rejections WHERE concept_id = ? AND face_id IS NULL AND photo_id IN ({marks})",
                 (concept_id, *photo_ids))
    fix_cover(conn, cluster_id)
    if concept is not None:
        _bump(conn, concept_id)
    row = _concept(conn, concept_id)
    verb = "added" if concept is not None else "created"
    return {**_concept_dict(row), "cluster": cluster_id}, f"{verb} {name} from {len(photo_ids)} photos"


# -- reads ---------------------------------------------------------------------------------------------

def concept_members(target, concept_id: int) -> dict[str, list[int]]:
    """A concept's examples for its heads: face_ids and photo_ids, and the rejected ones as negatives.

    face_ids: the faces (not hidden) of its face clusters; photo_ids: the photos of its image clusters;
    rejected_face_ids / rejected_photo_ids: "not this concept". Train again when concepts.version changed.
    """
    db = _db(target)

    def ids(sql: str) -> list[int]:
        return [r[0] for r in db.query(sql, (concept_id,))]

    return {
        "face_ids": ids("SELECT f.id FROM faces f JOIN clusters c ON c.id = f.cluster_id "
                        "WHERE c.concept_id = ? AND f.hidden = 0 ORDER BY f.id"),
        "photo_ids": ids("SELECT DISTINCT cp.photo_id FROM cluster_photos cp JOIN clusters c ON c.id = cp.cluster_id "
                         "WHERE c.concept_id = ? ORDER BY cp.photo_id"),
        "rejected_face_ids": ids("SELECT DISTINCT face_id FROM rejections WHERE concept_id = ? "
                                 "AND face_id IS NOT NULL ORDER BY face_id"),
        "rejected_photo_ids": ids("SELECT DISTINCT photo_id FROM rejections WHERE concept_id = ? "
                                  "AND face_id IS NULL AND photo_id IS NOT NULL ORDER BY photo_id"),
    }


def suggestions(target, limit: int = 50) -> dict:
    """"Is this Alice?" for unnamed clusters and "same person?" among named concepts (people/suggest.py)."""
    from .suggest import suggest

    return suggest(_db(target), limit=limit)


__all__ = [
    "KINDS",
    "NameTaken",
    "PeopleError",
    "concept_members",
    "create_concept_from_photos",
    "delete_concept",
    "hide_cluster",
    "history",
    "merge",
    "move_face",
    "name_cluster",
    "redo",
    "reject_face",
    "reject_photo",
    "rename_concept",
    "set_cover",
    "split",
    "suggestions",
    "undo",
]

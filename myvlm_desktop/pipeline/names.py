"""Names other apps wrote into photo metadata, applied to the library as the user's own decisions.

For each photo whose metadata (embedded XMP or sidecar) changed since the last import: every region is put
in the photo's displayed frame (interop/xmp.py), then matched to a detected face by IoU. A person region
that no detected face matches becomes a face of its own (`faces.source = 'metadata'`), its embedding
computed from the region's crop; a Pet region or a Pets/… keyword marks the photo for that pet. Person
keywords (People/…) are photo-level hints: recorded and reported, not placed on a face.

All the naming of one run is one operation in the undo log. A name joins the concept whose name differs
only by case or Unicode form. The user's decisions win: a face already named otherwise, a "not Alice", a
hidden face or a concept of another kind is a conflict, left as it is and listed by
`myvlm import-names --report`. Faces made from regions are added before that operation (they are
detections, not decisions), so an undo unnames them and keeps them.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field

import numpy as np

from .. import config
from ..imaging import ImageError, load_array
from ..interop import xmp
from ..library.db import now, to_blob
from ..library.store import Library, open_path
from ..people import ops
from ..people.update import fix_cover
from ..vision.boxes import iou, match_boxes
from ..vision.faces import Detection, Face, get_face_engine

MATCH_IOU = 0.3      # metadata boxes are drawn by hand or by another detector: looser than the 0.5 of re-detection
DECODE_SIDE = 2048   # as the index stage decodes
# Where the landmarks sit in a face box, for a region no detector confirms (dlib's 5 points; ArcFace's).
DLIB_TEMPLATE = np.array([[0.78, 0.38], [0.60, 0.38], [0.22, 0.38], [0.40, 0.38], [0.50, 0.66]], np.float32)
ARCFACE_TEMPLATE = np.array([[0.342, 0.462], [0.658, 0.460], [0.500, 0.641], [0.371, 0.825], [0.632, 0.823]],
                            np.float32)


@dataclass
class Item:
    name: str
    kind: str
    origin: str                       # mwg, mp, keyword
    box: tuple | None = None          # normalised, displayed frame
    face_id: int | None = None
    outcome: str = ""
    detail: str = ""
    concept_id: int | None = None


@dataclass
class Plan:
    photo_id: int
    signature: str
    items: list[Item] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def import_names(library: Library, face_engine: str = "auto", engine=None, force: bool = False,
                 progress=None) -> dict:
    """Read every photo's metadata names and apply them; returns counts by outcome.

    The face engine is loaded only when a region needs a face of its own (most runs need none).
    """
    engine = _Lazy(engine, face_engine, library)
    rows = library.db.query("SELECT p.id, p.path, p.path_raw, p.hash, p.width, p.height, p.orientation, "
                            "s.signature, EXISTS (SELECT 1 FROM index_state i WHERE i.photo_id = p.id AND "
                            "i.stage = 'faces' AND i.error IS NULL) AS has_faces FROM photos p "
                            "LEFT JOIN metadata_imports s ON s.photo_id = p.id WHERE p.status = 'ok' ORDER BY p.id")
    plans = []
    for done, row in enumerate(rows, start=1):
        plan = _plan(library, row, engine, force)
        if plan is not None:
            plans.append(plan)
        if progress:
            progress(done, len(rows), "reading metadata")
    result = ops._operation(library, "import", _apply, plans) if plans else {}
    counts = {"photos": len(rows), "with_names": sum(1 for p in plans if p.items)}
    for plan in plans:
        for item in plan.items:
            counts[item.outcome] = counts.get(item.outcome, 0) + 1
    return {**counts, **result, "warnings": [w for p in plans for w in p.warnings]}


class _Lazy:
    """The face engine, loaded on first use; None when it cannot be (regions then wait)."""

    def __init__(self, engine, name: str, library: Library):
        self.engine, self.name, self.library, self.tried = engine, name, library, engine is not None

    def get(self):
        if not self.tried:
            self.tried = True
            try:
                self.engine = get_face_engine(self.name, models_dir=config.models_dir(self.library.root))
            except Exception:  # noqa: BLE001 - without an engine, matched regions still apply; the rest wait
                self.engine = None
        return self.engine


def signature(path: str | bytes, content_hash: str | None) -> str:
    """What the names depend on: the photo's content and each sidecar's size and time."""
    parts = [content_hash or ""]
    for car in xmp.sidecars(os.fsdecode(path)):
        try:
            st = car.stat()
            parts.append(f"{car.name}:{st.st_size}:{st.st_mtime_ns}")
        except OSError:
            continue
    return "|".join(parts)


def _plan(library: Library, row, engine, force: bool) -> Plan | None:
    path = open_path(row)
    sig = signature(path, row["hash"])
    if not force and row["signature"] == sig:
        return None
    names = xmp.read_names(os.fsdecode(path))
    plan = Plan(row["id"], sig)
    regions = names.for_photo(row["width"] or 1, row["height"] or 1, row["orientation"] or 1)
    plan.warnings = [f"{os.fsdecode(path)}: {w}" for w in names.warnings]
    for region in regions:
        plan.items.append(Item(region.name, region.kind, region.source, region.box))
    for keyword in names.keywords:
        plan.items.append(Item(keyword, "person", "keyword"))
    for pet in names.pets:  # pets are photo-level in the library anyway: a keyword is enough
        if not any(it.kind == "pet" and xmp.same_name(it.name, pet) for it in plan.items):
            plan.items.append(Item(pet, "pet", "keyword"))
    _place_faces(library, row, plan, engine)
    return plan


def _place_faces(library: Library, row, plan: Plan, engine) -> None:
    """Give each person region a face: a detected one by IoU, else one made from the region's crop."""
    people = [it for it in plan.items if it.origin != "keyword" and it.kind == "person"]
    if not people:
        return
    w, h = row["width"] or 1, row["height"] or 1
    boxes = [(b[0] * w, b[1] * h, b[2] * w, b[3] * h) for b in (it.box for it in people)]
    faces = library.db.query("SELECT id, x1, y1, x2, y2 FROM faces WHERE photo_id = ?", (row["id"],))
    matched = match_boxes(boxes, [(f["x1"], f["y1"], f["x2"], f["y2"]) for f in faces], MATCH_IOU)
    for i, j in matched.items():
        people[i].face_id = faces[j]["id"]
    rest = [i for i in range(len(people)) if i not in matched]
    if not rest:
        return
    if not row["has_faces"] or engine.get() is None:
        why = "faces not detected yet (run myvlm index)" if not row["has_faces"] else "no face engine available"
        for i in rest:
            people[i].outcome, people[i].detail = "pending", why
        plan.signature = ""  # try again next time
        return
    try:
        rgb = load_array(open_path(row), DECODE_SIDE)
    except ImageError as exc:
        for i in rest:
            people[i].outcome, people[i].detail = "skipped", exc.reason
        return
    scale = rgb.shape[1] / w
    for i in rest:
        box = tuple(v * scale for v in boxes[i])
        face = region_face(engine.get(), rgb, box)
        if face is None:
            people[i].outcome, people[i].detail = "skipped", "region too small for a face"
            continue
        people[i].face_id = library.db.write(_insert_manual_face, row["id"], face, 1 / scale, engine.get().engine_id)


def region_face(engine, rgb: np.ndarray, box) -> Face | None:
    """A face for a region: the detector's own when it finds one there, else landmarks placed by template."""
    x1, y1, x2, y2 = box
    if x2 - x1 < 8 or y2 - y1 < 8:
        return None
    margin = 0.3 * max(x2 - x1, y2 - y1)
    cx1, cy1 = int(max(0, x1 - margin)), int(max(0, y1 - margin))
    cx2, cy2 = int(min(rgb.shape[1], x2 + margin)), int(min(rgb.shape[0], y2 + margin))
    found = engine.detect(np.ascontiguousarray(rgb[cy1:cy2, cx1:cx2]))
    shifted = [Detection((d.box[0] + cx1, d.box[1] + cy1, d.box[2] + cx1, d.box[3] + cy1),
                         d.landmarks + np.array([cx1, cy1], np.float32), d.score) for d in found]
    best = max(shifted, key=lambda d: iou(d.box, box), default=None)
    if best is None or iou(best.box, box) < 0.1:
        template = DLIB_TEMPLATE if engine.name.startswith("dlib") else ARCFACE_TEMPLATE
        size = np.array([x2 - x1, y2 - y1], np.float32)
        best = Detection(tuple(box), template * size + np.array([x1, y1], np.float32), 0.0)
    vector = engine.embed(rgb, [best])[0]
    return Face(tuple(box), best.landmarks, best.score, vector)


def _insert_manual_face(conn, photo_id: int, face: Face, scale: float, engine_id: str) -> int:
    landmarks = json.dumps([[round(float(x) * scale, 1), round(float(y) * scale, 1)] for x, y in face.landmarks])
    return conn.execute(
        "INSERT INTO faces(photo_id, x1, y1, x2, y2, landmarks, score, embedding, engine, source, created_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'metadata', ?)",
        (photo_id, *(float(v) * scale for v in face.box), landmarks, float(face.score), to_blob(face.embedding),
         engine_id, now())).lastrowid


# -- the operation (writer thread) -----------------------------------------------------------------------
def _apply(conn, plans: list[Plan]):
    counts: dict[str, int] = {}
    for plan in plans:
        for item in plan.items:
            if not item.outcome:
                _apply_item(conn, plan.photo_id, item)
            counts[item.outcome] = counts.get(item.outcome, 0) + 1
        _record(conn, plan)
    named = counts.get("named", 0)
    return {"applied": named}, f"imported {named} names from photo metadata"


def find_concept(conn, name: str):
    """The concept with this name up to case and Unicode form."""
    key = xmp.name_key(name)
    for row in conn.execute("SELECT * FROM concepts ORDER BY id"):
        if xmp.name_key(row["name"]) == key:
            return row
    return None


def _apply_item(conn, photo_id: int, item: Item) -> None:
    try:
        item.name = ops._clean_name(item.name)
    except ops.PeopleError as exc:
        item.outcome, item.detail = "skipped", str(exc)
        return
    concept = find_concept(conn, item.name)
    if concept is not None:
        item.concept_id = concept["id"]
    if item.origin == "keyword" and item.kind == "person":
        item.outcome = "hint"
        return
    if concept is not None and concept["kind"] != item.kind:
        item.outcome, item.detail = "conflict", f"{concept['name']} is a {concept['kind']} here, not a {item.kind}"
        return
    if item.kind == "pet":
        _apply_pet(conn, photo_id, item, concept)
    else:
        _apply_face(conn, item, concept)


def _apply_face(conn, item: Item, concept) -> None:
    face = conn.execute("SELECT f.*, c.concept_id, k.name AS current FROM faces f LEFT JOIN clusters c "
                        "ON c.id = f.cluster_id LEFT JOIN concepts k ON k.id = c.concept_id WHERE f.id = ?",
                        (item.face_id,)).fetchone()
    if face is None:
        item.outcome, item.detail = "skipped", "the face is gone"
        return
    if face["concept_id"] is not None:
        if concept is not None and face["concept_id"] == concept["id"]:
            item.outcome = "already"
        else:
            item.outcome, item.detail = "conflict", f"the metadata says {item.name}; you named this face {face['current']}"
        return
    if face["hidden"]:
        item.outcome, item.detail = "conflict", "you hid this face"
        return
    if concept is not None and conn.execute("SELECT 1 FROM rejections WHERE concept_id = ? AND face_id = ?",
                                            (concept["id"], face["id"])).fetchone():
        item.outcome, item.detail = "conflict", f"you said this face is not {concept['name']}"
        return
    concept_id = concept["id"] if concept is not None else ops._new_concept(conn, item.name, "person")
    home_id = _home_cluster(conn, concept_id, "face")
    conn.execute("UPDATE faces SET cluster_id = ?, assigned_by = 'user' WHERE id = ?", (home_id, face["id"]))
    if face["cluster_id"]:
        fix_cover(conn, face["cluster_id"])
    fix_cover(conn, home_id)
    if concept is not None:
        ops._bump(conn, concept_id)
    item.concept_id, item.outcome = concept_id, "named"


def _home_cluster(conn, concept_id: int, kind: str) -> int:
    """The concept's cluster of this kind ('face' or 'image'), made when it has none yet."""
    home = ops._cluster_of(conn, concept_id, kind)
    if home is not None:
        return home["id"]
    return conn.execute("INSERT INTO clusters(kind, concept_id, created_at) VALUES (?, ?, ?)",
                        (kind, concept_id, now())).lastrowid


def _apply_pet(conn, photo_id: int, item: Item, concept) -> None:
    if concept is not None and conn.execute(
            "SELECT 1 FROM rejections WHERE concept_id = ? AND photo_id = ? AND face_id IS NULL",
            (concept["id"], photo_id)).fetchone():
        item.outcome, item.detail = "conflict", f"you said {concept['name']} is not in this photo"
        return
    concept_id = concept["id"] if concept is not None else ops._new_concept(conn, item.name, "pet")
    cluster_id = _home_cluster(conn, concept_id, "image")
    if conn.execute("SELECT 1 FROM cluster_photos WHERE cluster_id = ? AND photo_id = ?",
                    (cluster_id, photo_id)).fetchone():
        item.outcome, item.concept_id = "already", concept_id
        return
    conn.execute("INSERT INTO cluster_photos(cluster_id, photo_id, assigned_by) VALUES (?, ?, 'user')",
                 (cluster_id, photo_id))
    fix_cover(conn, cluster_id)
    if concept is not None:
        ops._bump(conn, concept_id)
    item.concept_id, item.outcome = concept_id, "named"


def _record(conn, plan: Plan) -> None:
    conn.execute("DELETE FROM metadata_names WHERE photo_id = ?", (plan.photo_id,))
    stamp = now()
    conn.executemany(
        "INSERT INTO metadata_names(photo_id, name, kind, origin, x1, y1, x2, y2, face_id, concept_id, outcome, "
        "detail, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [(plan.photo_id, it.name, it.kind, it.origin, *(it.box or (None,) * 4), it.face_id, it.concept_id,
          it.outcome, it.detail or None, stamp) for it in plan.items])
    if plan.signature:
        conn.execute("INSERT INTO metadata_imports(photo_id, signature, done_at) VALUES (?, ?, ?) "
                     "ON CONFLICT(photo_id) DO UPDATE SET signature = excluded.signature, done_at = excluded.done_at",
                     (plan.photo_id, plan.signature, stamp))


def report(library: Library, everything: bool = False) -> list[dict]:
    """What the last imports did not apply (conflicts, pending, skipped); everything with `everything`."""
    where = "" if everything else "WHERE m.outcome IN ('conflict', 'pending', 'skipped')"
    rows = library.db.query(
        "SELECT p.path, m.name, m.kind, m.origin, m.outcome, m.detail, m.face_id, c.name AS concept "
        f"FROM metadata_names m JOIN photos p ON p.id = m.photo_id LEFT JOIN concepts c ON c.id = m.concept_id "
        f"{where} ORDER BY p.path, m.id")
    return [dict(r) for r in rows]


def names_job(library: Library, face_engine: str = "auto"):
    """The job function for the "names" stage (after "index": regions are matched to detected faces)."""

    def run(control, force: bool = False) -> dict:
        return import_names(library, face_engine=face_engine, force=force, progress=control.progress)

    return run

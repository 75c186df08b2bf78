"""People & pets commands: people, concept create, name, rename, merge, split, move, reject, hide, cover,
delete-concept, undo, redo, suggest, cluster."""

from __future__ import annotations

import os
from pathlib import Path

from .common import CommandError, emit, library

KINDS = ("person", "pet", "object")  # as the concepts.kind CHECK in library/schema.py


def _ops():
    """The people operations, imported when a command runs (they load faiss; `myvlm --help` must not)."""
    from ..people import ops

    return ops


def register(sub) -> None:
    p = sub.add_parser("people", help="face and image clusters: id, size, name, kind, cover")
    p.add_argument("--members", action="store_true", help="list each cluster's faces / photos too")
    p.add_argument("--hidden", action="store_true", help="include hidden clusters")
    p.add_argument("--kind", choices=("face", "image"), help="only face clusters or only image clusters")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=people)

    p = sub.add_parser("concept", help="concepts made from chosen photos")
    concept_sub = p.add_subparsers(dest="concept_command", required=True, metavar="COMMAND")
    c = concept_sub.add_parser("create", help="a concept (a pet, an object, a person) from photos you pick")
    c.add_argument("name")
    c.add_argument("--kind", choices=KINDS, required=True)
    c.add_argument("photos", nargs="+", metavar="PHOTO", help="a photo's path or id")
    c.add_argument("--json", action="store_true")
    c.set_defaults(handler=concept_create)
    from .interop import register_concept_packs

    register_concept_packs(concept_sub)

    _op(sub, "name", "name a cluster (a new concept, or joins the concept of that name)",
        [("cluster",), ("name",)], kind=True)
    _op(sub, "rename", "rename a concept", [("concept",), ("new_name",)])
    p = _op(sub, "merge", "merge B into A (c:12 is a cluster, @Name a concept; a number no concept is called "
                          "is a cluster, other text a concept)", [("a",), ("b",)])
    p.add_argument("--keep", help="which of the two survives (default A)")
    _op(sub, "split", "move the given faces of a cluster to a new cluster", [("cluster",), ("faces", "+")])
    _op(sub, "move", "put a face in another cluster", [("face",), ("cluster",)])
    p = _op(sub, "reject", "a face is not this concept (never put back automatically)", [("face",), ("concept",)])
    p.add_argument("--photo", action="store_true", help="FACE is a photo id: the photo is not this concept")
    p = _op(sub, "hide", "hide a cluster from People & Pets", [("cluster",)])
    p.add_argument("--show", action="store_true", help="show it again")
    _op(sub, "cover", "choose the face shown for a cluster", [("cluster",), ("face",)])
    _op(sub, "delete-concept", "forget a concept (its faces stay, unnamed)", [("concept",)])
    _op(sub, "undo", "undo the last people operation", [])
    _op(sub, "redo", "redo the last undone people operation", [])

    p = sub.add_parser("suggest", help='"Is this Alice?" for unnamed clusters, and concepts that may be one')
    p.add_argument("--limit", type=int, default=50)
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=suggest)

    p = sub.add_parser("cluster", help="group new faces and photos; --full rebuilds every unnamed cluster")
    p.add_argument("--full", action="store_true", help="recluster everything the user has not decided")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cluster)


def _op(sub, name: str, help_text: str, positionals: list[tuple], kind: bool = False):
    p = sub.add_parser(name, help=help_text)
    for spec in positionals:
        p.add_argument(spec[0], nargs=spec[1] if len(spec) > 1 else None)
    if kind:
        p.add_argument("--kind", choices=KINDS, default="person")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=lambda args: _run(name, args))
    return p


def _run(name: str, args) -> None:
    lib = library(args)
    calls = {
        "name": lambda: _ops().name_cluster(lib, _id(args.cluster, "cluster"), args.name, args.kind),
        "rename": lambda: _ops().rename_concept(lib, args.concept, args.new_name),
        "merge": lambda: _ops().merge(lib, args.a, args.b, args.keep),
        "split": lambda: _ops().split(lib, _id(args.cluster, "cluster"), [_id(f, "face") for f in args.faces]),
        "move": lambda: _ops().move_face(lib, _id(args.face, "face"), _id(args.cluster, "cluster")),
        "reject": lambda: (_ops().reject_photo if args.photo else _ops().reject_face)(lib, _id(args.face, "id"),
                                                                                args.concept),
        "hide": lambda: _ops().hide_cluster(lib, _id(args.cluster, "cluster"), hidden=not args.show),
        "cover": lambda: _ops().set_cover(lib, _id(args.cluster, "cluster"), _id(args.face, "face")),
        "delete-concept": lambda: _ops().delete_concept(lib, args.concept),
        "undo": lambda: _ops().undo(lib),
        "redo": lambda: _ops().redo(lib),
    }
    try:
        result = calls[name]()
    except _ops().NameTaken as exc:
        raise CommandError(f"{exc} (myvlm merge ...)") from None
    except _ops().PeopleError as exc:
        raise CommandError(str(exc)) from None
    text = result.get("summary") if isinstance(result, dict) and "summary" in result else _describe(name, result)
    if name in ("undo", "redo"):
        text = f"{'undid' if name == 'undo' else 'redid'}: {text}"
    emit(result, args.json, text)


def _describe(name: str, result: dict) -> str:
    if "name" in result:
        return f"{name}: {result['name']} {result.get('identifier', '')} ({result.get('kind')})".strip()
    return f"{name}: " + ", ".join(f"{k} {v}" for k, v in result.items())


def _id(value: str, what: str) -> int:
    if what == "cluster" and value.lower().startswith("c:"):  # the unambiguous form merge takes
        value = value[2:]
    try:
        return int(value)
    except ValueError:
        raise CommandError(f"not a {what} number: {value!r}") from None


def people(args) -> None:
    from ..people.listing import cluster_members, list_clusters

    db = library(args).db
    clusters = list_clusters(db, hidden=args.hidden, kind=args.kind)
    for c in clusters:
        del c["cover"]  # what the window draws; cover_path and cover_box say the same in text
        if args.members:
            c["members"] = [_member(m) for m in cluster_members(db, c["id"])]
    lines = [f"{c['id']:>6}  {c['size']:>5}  {(c['concept'] or '-'):<20} {c['kind'] or c['cluster_kind']:<7}"
             f"{' hidden' if c['hidden'] else ''}  {c['cover_path'] or ''}" for c in clusters]
    emit(clusters, args.json, "\n".join(lines) or "no clusters yet: index photos, then run `myvlm cluster`")


def _member(m: dict) -> dict:
    face = not m.get("whole")
    x1, y1, x2, y2 = m["box"]
    return {"face": m["id"] if face else None, "photo": m["photo_id"], "path": m["shown_path"],
            "box": [x1, y1, x2, y2] if face else None, "area": (x2 - x1) * (y2 - y1) if face else None}


def concept_create(args) -> None:
    lib = library(args)
    photo_ids = [_photo_id(lib, p) for p in args.photos]
    try:
        result = _ops().create_concept_from_photos(lib, args.name, args.kind, photo_ids)
    except _ops().PeopleError as exc:
        raise CommandError(str(exc)) from None
    emit(result, args.json, f"{result['name']} {result['identifier']} ({result['kind']}): "
                            f"{len(photo_ids)} photos in cluster {result['cluster']}")


def _photo_id(lib, value: str) -> int:
    """A usable photo of the library by path (as given or resolved) or by id."""
    row = None
    for candidate in (value, os.path.abspath(value), str(Path(value).expanduser().resolve())):
        row = row or lib.photo_by_path(candidate)
    if row is None and value.isdigit():
        row = lib.photo(int(value))
    if row is None:
        raise CommandError(f"not a photo of the library: {value} (add its folder and scan first)")
    if row["status"] != "ok":
        why = row["error"] or "the file is missing"
        raise CommandError(f"{value} cannot be used: {why} (see `myvlm errors`)")
    return row["id"]


def suggest(args) -> None:
    found = _ops().suggestions(library(args), limit=args.limit)
    lines = [f"cluster {s['cluster']} ({s['size']}): {s['concept']}? distance {s['distance']}"
             f"{'  likely' if s['likely'] else ''}" for s in found["clusters"]]
    lines += [f"{m['a']} and {m['b']} may be the same: distance {m['distance']}" for m in found["merges"]]
    emit(found, args.json, "\n".join(lines) or "no suggestions (name a cluster first)")


def cluster(args) -> None:
    from ..pipeline.cluster import cluster_library

    lib = library(args)
    try:
        result = cluster_library(lib, full=args.full, control=None)
    except ValueError as exc:
        raise CommandError(f"cannot cluster: {exc}", 1) from None
    text = "\n".join(f"{k}: {v.get('placed', 0)} placed, {v.get('new_clusters', 0)} new clusters, "
                     f"{v.get('waiting', 0)} waiting" for k, v in result.items())
    emit(result, args.json, text)

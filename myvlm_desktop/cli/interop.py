"""Interoperability commands: import-names (names from photo metadata), write-back (names and captions to
XMP), and `concept export` / `concept import` (concept packs)."""

from __future__ import annotations

from .common import CommandError, StderrProgress, emit, library


def register(sub) -> None:
    p = sub.add_parser("import-names", help="name faces and pets from the photos' XMP (other apps' face regions)")
    p.add_argument("--report", action="store_true", help="list conflicts and names not applied, change nothing")
    p.add_argument("--all", action="store_true", help="with --report: every name found, applied or not")
    p.add_argument("--force", action="store_true", help="read every photo again, changed or not")
    p.add_argument("--engine", default="auto", help="face engine for regions no detected face matches")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=import_names)

    p = sub.add_parser("write-back", help="write names and captions to XMP sidecars (opt-in per library)")
    p.add_argument("--enable", action="store_true", help="turn writing on for this library")
    p.add_argument("--disable", action="store_true", help="turn it off")
    p.add_argument("--style", choices=("photo.jpg.xmp", "photo.xmp"), help="how sidecars are named")
    p.add_argument("--into-image", choices=("yes", "no"), help="write into the photo files themselves (JPEG, "
                   "PNG, WebP, TIFF; pixels are checked unchanged) instead of sidecars")
    p.add_argument("--status", action="store_true", help="show the settings, write nothing")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=write_back)


def register_concept_packs(concept_sub) -> None:
    """`concept export` and `concept import`, under the `concept` command of cli/people.py."""
    c = concept_sub.add_parser("export", help="write a concept pack (.myvlm): its head, embeddings, thumbnails")
    c.add_argument("name", help="the concept's name or id")
    c.add_argument("-o", "--output", help="the pack file (default: NAME.myvlm here)")
    c.add_argument("--json", action="store_true")
    c.set_defaults(handler=concept_export)
    c = concept_sub.add_parser("import", help="install a concept pack (.myvlm) made on another computer")
    c.add_argument("pack", help="the .myvlm file")
    c.add_argument("--name", help="install under this name (when the pack's name is taken here)")
    c.add_argument("--json", action="store_true")
    c.set_defaults(handler=concept_import)


def concept_export(args) -> None:
    from ..interop import pack

    output = args.output or f"{args.name}{pack.SUFFIX}"
    try:
        result = pack.export_concept(library(args), args.name, output)
    except pack.PackError as exc:
        raise CommandError(str(exc)) from None
    except OSError as exc:
        raise CommandError(f"cannot write {output}: {exc.strerror or exc}") from None
    parts = (["head"] if result["head"] else []) + [e["backend"] for e in result["embeddings"]]
    emit(result, args.json, f"wrote {result['path']} ({result['bytes']} bytes: {', '.join(parts) or 'no head yet'}, "
                            f"{len(result['thumbnails'])} thumbnails)")


def concept_import(args) -> None:
    from ..interop import pack

    try:
        result = pack.import_pack(library(args), args.pack, name=args.name)
    except pack.PackError as exc:
        raise CommandError(f"{args.pack}: {exc}") from None
    lines = [f"installed {result['concept']} ({result['kind']}): {', '.join(result['installed']) or 'the name only'}"]
    lines += [f"not installed: {why}" for why in result["not_installed"]]
    emit(result, args.json, "\n".join(lines))


def write_back(args) -> int:
    from ..pipeline import writeback

    lib = library(args)
    if args.enable and args.disable:
        raise CommandError("--enable or --disable, not both")
    changes = {"enabled": True if args.enable else False if args.disable else None, "style": args.style,
               "into_image": None if args.into_image is None else args.into_image == "yes"}
    if any(v is not None for v in changes.values()):
        chosen = writeback.configure(lib, **changes)
        emit(chosen, args.json, f"write-back {'on' if chosen['enabled'] else 'off'}: "
                                f"{'into the photos' if chosen['into_image'] else 'sidecars ' + chosen['style']}")
        return 0
    if args.status:
        emit(writeback.settings(lib), args.json)
        return 0
    try:
        result = writeback.write_back(lib, progress=StderrProgress())
    except PermissionError as exc:
        raise CommandError(str(exc)) from None
    emit(result, args.json, f"{result['sidecars']} sidecars and {result['embedded']} photos written, "
                            f"{result['nothing']} with nothing to write, {len(result['errors'])} errors"
         + "".join(f"\n{e}" for e in result["errors"]))
    return 1 if result["errors"] else 0


def import_names(args) -> None:
    from ..pipeline import names

    lib = library(args)
    if args.report:
        rows = names.report(lib, everything=args.all)
        emit(rows, args.json, "\n".join(
            f"{r['path']}: {r['name']} ({r['origin']}) {r['outcome']}" + (f": {r['detail']}" if r["detail"] else "")
            for r in rows) or "nothing to report")
        return
    if args.all:
        raise CommandError("--all goes with --report")
    result = names.import_names(lib, face_engine=args.engine, force=args.force, progress=StderrProgress())
    outcomes = ", ".join(f"{result[k]} {k}" for k in ("named", "already", "conflict", "pending", "hint", "skipped")
                         if result.get(k))
    emit(result, args.json, f"{result['with_names']} photos with names: {outcomes or 'nothing new'}"
         + ("\nsee: myvlm import-names --report" if result.get("conflict") or result.get("pending") else ""))

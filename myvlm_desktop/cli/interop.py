"""Interoperability commands: import-names (names from photo metadata), write-back (names and captions to
XMP), and `concept export` / `concept import` (concept packs)."""

from __future__ import annotations

from .common import CommandError, emit, library, stderr_progress


def register(sub) -> None:
    p = sub.add_parser("import-names", help="name faces and pets from the photos' XMP (other apps' face regions)")
    p.add_argument("--report", action="store_true", help="list conflicts and names not applied, change nothing")
    p.add_argument("--all", action="store_true", help="with --report: every name found, applied or not")
    p.add_argument("--force", action="store_true", help="read every photo again, changed or not")
    p.add_argument("--engine", default="auto", help="face engine for regions no detected face matches")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=import_names)


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
    result = names.import_names(lib, face_engine=args.engine, force=args.force, progress=stderr_progress)
    outcomes = ", ".join(f"{result[k]} {k}" for k in ("named", "already", "conflict", "pending", "hint", "skipped")
                         if result.get(k))
    emit(result, args.json, f"{result['with_names']} photos with names: {outcomes or 'nothing new'}"
         + ("\nsee: myvlm import-names --report" if result.get("conflict") or result.get("pending") else ""))

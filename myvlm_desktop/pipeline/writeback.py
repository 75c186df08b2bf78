"""Names and captions from the library written back to the photos' XMP, for other apps to read.

Off until the user turns it on for the library (`myvlm write-back --enable`). Sidecars by default, named
`photo.jpg.xmp` or `photo.xmp` as chosen; into the photo itself only when chosen, and only for formats
Exiv2 writes safely (JPEG, PNG, WebP, TIFF): the others get a sidecar. After a write into a photo its
row takes the new size, time and hash, so the next scan does not see an edited photo (the pixels are
checked to be the same).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil

from ..interop import xmp_write
from ..library.store import Library, open_path, thumbnail_file

SETTING = "interop.write_back"
DEFAULTS = {"enabled": False, "style": "photo.jpg.xmp", "into_image": False}
STYLES = ("photo.jpg.xmp", "photo.xmp")
EMBED_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".tif", ".tiff")


def settings(library: Library) -> dict:
    raw = library.db.scalar("SELECT value FROM settings WHERE key = ?", (SETTING,))
    try:
        stored = json.loads(raw) if raw else {}
    except ValueError:
        stored = {}
    return {**DEFAULTS, **{k: v for k, v in (stored if isinstance(stored, dict) else {}).items() if k in DEFAULTS}}


def configure(library: Library, **changes) -> dict:
    if changes.get("style") not in (None, *STYLES):
        raise ValueError(f"sidecar style must be one of {', '.join(STYLES)}")
    value = {**settings(library), **{k: v for k, v in changes.items() if v is not None}}
    library.db.write(lambda c: c.execute("INSERT INTO settings(key, value) VALUES (?, ?) ON CONFLICT(key) "
                                         "DO UPDATE SET value = excluded.value", (SETTING, json.dumps(value))))
    return value


def photo_tags(library: Library, photo) -> xmp_write.Tags | None:
    """What to write for one photo row; None when the library knows nothing about it worth writing."""
    w, h = photo["width"] or 0, photo["height"] or 0
    if not w or not h:
        return None
    tags = xmp_write.Tags(w, h)
    for r in library.db.query("SELECT f.x1, f.y1, f.x2, f.y2, k.name, k.kind FROM faces f JOIN clusters c "
                              "ON c.id = f.cluster_id JOIN concepts k ON k.id = c.concept_id "
                              "WHERE f.photo_id = ? AND f.hidden = 0 ORDER BY f.x1", (photo["id"],)):
        box = (max(0.0, r["x1"] / w), max(0.0, r["y1"] / h), min(1.0, r["x2"] / w), min(1.0, r["y2"] / h))
        tags.regions.append((r["name"], r["kind"], box))
    for r in library.db.query("SELECT k.name, k.kind FROM concept_photos cp JOIN concepts k ON k.id = cp.concept_id "
                              "WHERE cp.photo_id = ? ORDER BY k.name", (photo["id"],)):
        (tags.people if r["kind"] == "person" else tags.pets if r["kind"] == "pet" else []).append(r["name"])
    captions = [r["text"] for r in library.db.query(
        "SELECT text FROM captions WHERE photo_id = ? ORDER BY created_at DESC, id DESC", (photo["id"],))]
    tags.caption = captions[0] if captions else None
    tags.own_captions = set(captions)
    if not (tags.regions or tags.people or tags.pets or tags.caption):
        return None
    return tags


def write_back(library: Library, photo_ids=None, force: bool = False, progress=None) -> dict:
    """Write every photo's names and caption (or only `photo_ids`'); returns counts and the errors."""
    chosen = settings(library)
    if not chosen["enabled"] and not force:
        raise PermissionError("writing to photo metadata is off for this library (myvlm write-back --enable)")
    rows = library.db.query("SELECT id, path, path_raw, width, height FROM photos WHERE status = 'ok' ORDER BY id")
    if photo_ids is not None:
        wanted = set(photo_ids)
        rows = [r for r in rows if r["id"] in wanted]
    counts = {"photos": len(rows), "sidecars": 0, "embedded": 0, "nothing": 0, "errors": []}
    for done, row in enumerate(rows, start=1):
        tags = photo_tags(library, row)
        path = os.fsdecode(open_path(row))
        if tags is None:
            counts["nothing"] += 1
        else:
            try:
                if chosen["into_image"] and os.path.splitext(path)[1].lower() in EMBED_SUFFIXES:
                    xmp_write.write_embedded(path, tags)
                    _refresh_row(library, row["id"], path)
                    counts["embedded"] += 1
                else:
                    xmp_write.write_sidecar(path, tags, chosen["style"])
                    counts["sidecars"] += 1
            except xmp_write.WriteError as exc:
                counts["errors"].append(str(exc))
        if progress:
            progress(done, len(rows), "writing metadata")
    return counts


def _refresh_row(library: Library, photo_id: int, path: str) -> None:
    """Same pixels, new bytes: the row follows, so a scan does not take the photo for an edited one."""
    with open(path, "rb") as handle:
        digest = hashlib.blake2b(handle.read(), digest_size=16).hexdigest()
    st = os.stat(path)
    old = library.db.scalar("SELECT hash FROM photos WHERE id = ?", (photo_id,))
    old_thumb, new_thumb = thumbnail_file(library.thumbs, old or ""), thumbnail_file(library.thumbs, digest)
    if old and old_thumb.exists() and not new_thumb.exists():
        new_thumb.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(old_thumb, new_thumb)
    library.db.write(lambda c: c.execute("UPDATE photos SET size = ?, mtime = ?, hash = ? WHERE id = ?",
                                         (st.st_size, st.st_mtime, digest, photo_id)))


def write_back_job(library: Library):
    """The job function for the "write_back" stage: writes only where the user turned it on."""

    def run(control) -> dict:
        if not settings(library)["enabled"]:
            return {"skipped": "write-back is off for this library"}
        return write_back(library, progress=control.progress)

    return run

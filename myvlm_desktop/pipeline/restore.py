"""After a restore: the database is older than the files derived from it (heads, concept embeddings).

A head or embedding whose concept version no longer matches is made stale by moving its concept to a
version newer than both, so it is trained again and a later edit can never make an old file look current.
Files of concepts the restored database does not know are moved aside (a new concept could reuse the id).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from .. import config
from ..library.backup import restore_file
from ..library.store import Library


def restore_library(data_dir, backup_file: Path) -> dict:
    """Put `backup_file` in place of the library database (no one may have it open), then reconcile."""
    root = config.data_dir(data_dir)
    kept = restore_file(Path(backup_file), config.database_path(root))
    with Library(root) as library:
        stale = reconcile_derived(library)
    return {"restored": str(backup_file), "damaged_kept_at": str(kept) if kept else None, **stale}


def reconcile_derived(library: Library) -> dict:
    folder = config.concepts_dir(library.root)
    versions = {r["id"]: r["version"] for r in library.db.query("SELECT id, version FROM concepts")}
    stale, orphaned = set(), 0
    if folder.is_dir():
        for entry in folder.iterdir():
            if not entry.is_dir() or not entry.name.isdigit():
                continue
            concept_id = int(entry.name)
            if concept_id not in versions:
                os.replace(entry, entry.with_name(f".orphan-{entry.name}-{int(time.time())}"))
                orphaned += 1
                continue
            found = _file_versions(entry)
            if any(v != versions[concept_id] for v in found):
                newer = max([versions[concept_id], *[v for v in found if isinstance(v, int)]]) + 1
                library.db.write(lambda c, cid=concept_id, v=newer: c.execute(
                    "UPDATE concepts SET version = ? WHERE id = ?", (v, cid)))
                stale.add(concept_id)
    if stale or orphaned:
        library.db.notify("concepts", sorted(stale))
    return {"retrain": sorted(stale), "orphaned": orphaned}


def _file_versions(folder: Path) -> list:
    """The concept versions the head and embeddings in `folder` were trained from (unreadable: None)."""
    found = []
    for meta in folder.glob("*.json"):
        try:
            info = json.loads(meta.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            found.append(None)
            continue
        found.append(info.get("concept_version") if isinstance(info, dict) else None)
    return found

"""People & Pets for the window: the cluster listing, naming operations, and "Is this Alice?".

The operations are those of people.ops, which the CLI calls too; they run on a worker thread (they
write) and announce what they changed through the database. people.ops is imported on first use: it
loads faiss and scipy, and the window opens before anyone looks at People & Pets.
"""

from __future__ import annotations

from typing import Any

from ..library.store import Library
from ..people import listing


class People:
    def __init__(self, library: Library):
        self.library = library
        self.db = library.db

    def clusters(self, hidden: bool = False) -> list[dict]:
        return listing.list_clusters(self.db, hidden=hidden)

    def members(self, cluster_id: int) -> list[dict]:
        return listing.cluster_members(self.db, cluster_id)

    def op(self, name: str, *args: Any, **kwargs: Any) -> Any:
        """Run a naming operation of people.ops (name_cluster, merge, split, move_face, reject_face,
        hide_cluster, set_cover, rename_concept, create_concept_from_photos, undo, redo...)."""
        from ..people import ops

        return getattr(ops, name)(self.db, *args, **kwargs)

    def merge(self, survivor: int, others: list[int]) -> dict | None:
        """Merge several clusters into the one the user picked (one undoable step per merged cluster)."""
        from ..people import ops

        result = None
        for other in others:
            result = ops.merge(self.db, survivor, other, keep=survivor)
        return result

    def decline(self, suggestion: dict) -> dict:
        """"No, this is not Alice": the cluster's cover face (or photo) is rejected for that concept,
        so the suggestion does not come back and the face is never put in Alice's cluster."""
        from ..people import ops

        cover = suggestion.get("cover") or {}
        if cover.get("whole"):
            return ops.reject_photo(self.db, cover["photo_id"], suggestion["concept_id"])
        return ops.reject_face(self.db, cover["face_id"], suggestion["concept_id"])

    def suggestions(self) -> list[dict]:
        """"Is this Alice?" for unnamed clusters likely to be a named concept:
        [{"cluster_id", "concept_id", "name", "kind", "distance", "cover"}]."""
        from ..people import ops

        kinds = {r["id"]: r["kind"] for r in self.db.query("SELECT id, kind FROM concepts")}
        found = []
        for s in ops.suggestions(self.db).get("clusters", []):
            cluster = self.db.read().execute("SELECT * FROM clusters WHERE id = ?", (s["cluster"],)).fetchone()
            if not s.get("likely") or cluster is None:
                continue
            found.append({"cluster_id": s["cluster"], "concept_id": s["concept_id"], "name": s["concept"],
                          "kind": kinds.get(s["concept_id"], "person"), "distance": s["distance"],
                          "cover": listing.cover(self.db, cluster)})
        return found

"""Face and image clusters, the FAISS index, naming operations and the undo log.

- `index`: FAISS search over embeddings (exact, or IVF lists on large sets), cached beside the database
  and rebuilt when stale; every run (incremental, full, first) searches the same index.
- `cluster`: the clustering algorithm (Immich-style core faces on a k-NN graph) and the per-engine
  thresholds with their calibration.
- `update`: clustering the library, incremental or full, keeping every user decision; `carry_over`
  moves decisions to re-detected faces (another engine, a rescan).
- `ops`: what the user does (name, rename, merge, split, move, reject, hide, cover, delete, concept from
  photos), each an undoable operation; `undo`, `redo`, `concept_members`, `suggestions`.
- `undo`: the operation log (row images captured by temporary triggers).
- `listing`: the clusters People & Pets and `myvlm people` list (sizes count faces in ok photos).
- `suggest`: "Is this Alice?" and merge suggestions.
"""

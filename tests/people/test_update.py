"""Clustering the library: incremental runs, full runs that keep the user's decisions, engine changes."""

import numpy as np
import pytest

from myvlm_desktop.library.db import now, to_blob
from myvlm_desktop.people import listing, ops
from myvlm_desktop.people.index import cached_index, face_source, index_dir
from myvlm_desktop.people.update import cluster_faces, cluster_images
from tests.people.helpers import ENGINE, add_faces, add_people, add_photo, clusters_of, faces_of, identities


def test_incremental_runs_place_new_faces_and_keep_the_old_places(library):
    db = library.db
    people = add_people(db, [5, 4, 1])
    cluster_faces(db)
    a, b = clusters_of(db, people[0]).pop(), clusters_of(db, people[1]).pop()
    assert a != b and clusters_of(db, people[2]) == {None}
    centers = identities(4, 0)
    more_a = add_faces(db, faces_of(centers[0], 3, seed=50))
    twin = add_faces(db, faces_of(centers[2], 1, seed=51))  # the lonely face's second photo
    result = cluster_faces(db)
    assert clusters_of(db, people[0] + more_a) == {a} and clusters_of(db, people[1]) == {b}
    assert len(clusters_of(db, people[2] + twin)) == 1 and None not in clusters_of(db, twin)
    assert result["new_clusters"] == 1 and result["waiting"] == 0
    assert cluster_faces(db)["placed"] == 0  # nothing new: nothing moves


def test_named_clusters_gain_faces_and_their_version_grows(library):
    db = library.db
    people = add_people(db, [4])
    cluster_faces(db)
    alice = ops.name_cluster(library, clusters_of(db, people[0]).pop(), "Alice")
    add_faces(db, faces_of(identities(1, 0)[0], 2, seed=9))
    cluster_faces(db)
    assert len(ops.concept_members(library, alice["id"])["face_ids"]) == 6
    assert db.scalar("SELECT version FROM concepts") > alice["version"]


def test_full_recluster_never_changes_a_decision(library):
    db = library.db
    people = add_people(db, [6, 6, 5, 4])
    cluster_faces(db)
    a, b, c, d = (clusters_of(db, p).pop() for p in people)
    alice = ops.name_cluster(library, a, "Alice")
    ops.reject_face(library, people[0][0], "Alice")
    split = ops.split(library, b, people[1][:2])["cluster"]
    ops.move_face(library, people[2][0], a)  # the user says this one is Alice
    ops.hide_cluster(library, c)
    # damage the automatic part: everything of d lands in b
    db.write(lambda conn: conn.execute("UPDATE faces SET cluster_id = ? WHERE cluster_id = ?", (b, d)))
    decided = db.query("SELECT id, cluster_id FROM faces WHERE assigned_by = 'user' ORDER BY id")
    cluster_faces(db, full=True)
    assert db.query("SELECT id, cluster_id FROM faces WHERE assigned_by = 'user' ORDER BY id") == decided
    assert clusters_of(db, people[0][1:]) == {a}            # Alice kept her faces
    assert clusters_of(db, [people[0][0]]) != {a}           # the rejected one stays out
    assert clusters_of(db, people[1][:2]) == {split}
    assert clusters_of(db, people[1][2:]) == {b}            # the rest of b: its id kept
    assert clusters_of(db, people[2][1:]) == {c} and db.scalar("SELECT hidden FROM clusters WHERE id = ?", (c,))
    assert len(clusters_of(db, people[3])) == 1 and clusters_of(db, people[3]) & {a, b, c, split} == set()
    assert db.scalar("SELECT name FROM concepts WHERE id = ?", (alice["id"],)) == "Alice"
    cluster_faces(db, full=True)
    cluster_faces(db)
    assert clusters_of(db, [people[0][0]]) != {a}


def test_a_rejected_face_is_not_put_back_even_as_a_new_face(library):
    db = library.db
    people = add_people(db, [5])
    cluster_faces(db)
    a = clusters_of(db, people[0]).pop()
    ops.name_cluster(library, a, "Alice")
    ops.reject_face(library, people[0][2], "Alice")
    for full in (False, True, False):
        cluster_faces(db, full=full)
        assert clusters_of(db, [people[0][2]]) != {a}
        assert clusters_of(db, people[0][:2] + people[0][3:]) == {a}


def test_decisions_follow_faces_to_a_new_engine(library):
    db = library.db
    people = add_people(db, [5, 4])
    cluster_faces(db)
    a, b = clusters_of(db, people[0]).pop(), clusters_of(db, people[1]).pop()
    ops.name_cluster(library, a, "Alice")
    ops.reject_face(library, people[0][1], "Alice")
    ops.split(library, b, people[1][:1])
    old = db.query("SELECT id, photo_id, x1, y1, x2, y2 FROM faces ORDER BY id")
    rng = np.random.default_rng(1)
    centers = identities(2, 7, dim=512)  # the new engine's space has nothing in common with the old one
    new_ids = []
    for row, person in zip(old, [0] * 5 + [1] * 4):
        vec = faces_of(centers[person], 1, seed=int(rng.integers(1e6)))
        new_ids += add_faces(db, vec, engine="arcface-test", photo_ids=[row["photo_id"]],
                             boxes=[(row["x1"] + 3, row["y1"] - 2, row["x2"] + 4, row["y2"])])
    result = cluster_faces(db)
    assert result["engine"] == "arcface-test" and result["carried_over"] == 9
    assert clusters_of(db, [new_ids[0], *new_ids[2:5]]) == {a}
    assert clusters_of(db, [new_ids[1]]) != {a}
    assert db.scalar("SELECT count(*) FROM rejections WHERE face_id = ?", (new_ids[1],)) == 1
    assert clusters_of(db, new_ids[5:6]) == clusters_of(db, people[1][:1])  # the split-off face too


def test_an_unchanged_database_reuses_the_cached_index(library, monkeypatch):
    from myvlm_desktop.people.index import VectorIndex

    db = library.db
    add_people(db, [3, 3])
    source = face_source("dlib-test")
    cached_index(db, source)
    built = []
    monkeypatch.setattr(VectorIndex, "build", classmethod(lambda cls, *args, **kw: built.append(1)))
    assert cached_index(db, source).size == 6 and not built
    (index_dir(db) / "faces-dlib-test.json").write_text("[1, 2]")  # a stamp that is not one: rebuilt
    with pytest.raises(AttributeError):  # the stub above builds nothing
        cached_index(db, source)
    assert built


def test_lists_are_trained_again_when_the_library_outgrows_them(library):
    import faiss

    db = library.db
    add_people(db, [30] * 10)
    source = face_source("dlib-test")
    lists = faiss.try_extract_index_ivf(cached_index(db, source, exact_limit=50).index).nlist
    assert lists == 69  # 4 * sqrt(300)
    add_people(db, [30] * 10, seed=1)
    assert faiss.try_extract_index_ivf(cached_index(db, source, exact_limit=50).index).nlist == lists  # appended
    add_people(db, [100] * 7, seed=2)  # 1300 faces: 4 * sqrt(1300) = 144 lists would fit, over twice 69
    assert faiss.try_extract_index_ivf(cached_index(db, source, exact_limit=50).index).nlist == 144


def test_the_index_cache_is_appended_to_and_rebuilt(library):
    db = library.db
    add_people(db, [3, 3])
    source = face_source("dlib-test")
    index = cached_index(db, source)
    path = index_dir(db) / "faces-dlib-test.faiss"
    assert path.exists() and index.size == 6
    add_faces(db, faces_of(identities(1, 3)[0], 2, seed=1))
    assert cached_index(db, source).size == 8                  # appended
    db.write(lambda c: c.execute("DELETE FROM faces WHERE id = 1"))
    assert cached_index(db, source).size == 7                  # a row went: rebuilt
    path.write_bytes(b"damaged")
    assert cached_index(db, source).size == 7                  # unreadable: rebuilt
    dist, ids = cached_index(db, source).search(np.frombuffer(
        db.scalar("SELECT embedding FROM faces WHERE id = 2"), np.float32)[None], 1)
    assert ids[0, 0] == 2 and abs(dist[0, 0]) < 1e-5


def test_image_clusters_and_concepts_from_photos(library):
    db = library.db
    centers = identities(3, 4, dim=512)
    photos = [add_photo(db, f"p{i}") for i in range(9)]
    vectors = np.concatenate([faces_of(centers[0], 4, 1, spread=0.02), faces_of(centers[1], 3, 2, spread=0.02),
                              faces_of(centers[2], 2, 3, spread=0.5)])
    db.write(lambda c: c.executemany(
        "INSERT INTO image_embeddings(photo_id, embedder, embedding, created_at) VALUES (?, 'sscd-test', ?, ?)",
        [(p, to_blob(v), now()) for p, v in zip(photos, vectors)]))
    result = cluster_images(db)
    assert result["new_clusters"] == 2 and result["waiting"] == 2
    groups = db.query("SELECT cluster_id, group_concat(photo_id) FROM cluster_photos GROUP BY cluster_id")
    assert sorted(len(g[1].split(",")) for g in groups) == [3, 4]
    rex = ops.create_concept_from_photos(library, "Rex", "pet", photos[7:9])
    listed = listing.list_clusters(db, kind="image")
    assert listed[0]["concept"] == "Rex" and listed[0]["size"] == 2 and listed[0]["kind"] == "pet"
    cluster_images(db, full=True)
    assert ops.concept_members(library, rex["id"])["photo_ids"] == photos[7:9]
    assert db.scalar("SELECT count(DISTINCT cluster_id) FROM cluster_photos") == 3


def test_a_large_run_reads_all_vectors_at_once_and_agrees(library, monkeypatch):
    from myvlm_desktop.people import update

    db = library.db
    people = add_people(db, [5, 4, 3, 1])
    monkeypatch.setattr(update, "BULK_MIN", 0)
    result = cluster_faces(db)
    assert result["new_clusters"] == 3 and result["waiting"] == 1
    assert [len(clusters_of(db, p)) for p in people] == [1, 1, 1, 1]
    assert (index_dir(db) / "faces-dlib-test.faiss").exists()  # the index incremental runs use next


# 512-D: ArcFace-like faces, whose IVF lists hold a PCA projection and whose candidates are re-ranked
@pytest.mark.parametrize(("engine", "dim", "spread"), [(ENGINE, 128, 0.012), ("arcface-test", 512, 0.029)])
def test_full_and_incremental_runs_see_the_same_neighbours(library, monkeypatch, engine, dim, spread):
    from myvlm_desktop.people import update

    db = library.db
    add_people(db, [30] * 8 + [1] * 10, seed=3, engine=engine, dim=dim, spread=spread)
    seen = []

    def spy(index, free_ids, free_vectors, params, *args, neighbours=None, **kwargs):
        seen.append(dict(zip(free_ids.tolist(), zip(*neighbours))))
        return real(index, free_ids, free_vectors, params, *args, neighbours=neighbours, **kwargs)

    real = update.cluster_items
    monkeypatch.setattr(update, "cluster_items", spy)
    monkeypatch.setattr(update, "BULK_MIN", 0)  # whole-set runs read every vector in one scan
    assert cluster_faces(db, exact_limit=50)["search"] == "ivf"  # 250 faces > 50: FAISS IVF lists
    new = (add_faces(db, faces_of(identities(8, 3, dim)[0], 3, seed=60, spread=spread), engine)
           + add_faces(db, identities(2, 99, dim), engine))
    monkeypatch.setattr(update, "BULK_MIN", 10_000)  # an incremental run: the new faces, read by id
    cluster_faces(db, exact_limit=50)
    monkeypatch.setattr(update, "BULK_MIN", 0)
    cluster_faces(db, full=True, exact_limit=50)
    incremental, full = seen[1], seen[2]
    assert set(new) <= set(incremental) and len(full) == len(seen[0]) + len(new)
    for face in incremental:
        dist, ids = incremental[face]
        assert np.array_equal(ids, full[face][1]) and np.allclose(dist, full[face][0], atol=1e-5)


def test_an_operation_during_a_run_wins_over_the_run(library):
    db = library.db
    people = add_people(db, [4, 4])
    cluster_faces(db)
    a, b = clusters_of(db, people[0]).pop(), clusters_of(db, people[1]).pop()
    newcomer = add_faces(db, faces_of(identities(2, 0)[0], 1, seed=77))  # looks like the first person
    def user_acts(done, total, message=""):
        if message == "saving":  # the run has computed its answer; the user moves the face meanwhile
            ops.move_face(library, newcomer[0], b)
    cluster_faces(db, progress=user_acts)
    assert clusters_of(db, newcomer) == {b}
    assert db.scalar("SELECT assigned_by FROM faces WHERE id = ?", (newcomer[0],)) == "user"
    assert clusters_of(db, people[0]) == {a}

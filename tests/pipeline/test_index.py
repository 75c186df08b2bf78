"""The index stage on real photos: faces and embeddings stored once, errors recorded, cancel and resume,
and a face engine change that keeps every user decision."""

import threading
import time

import numpy as np
import pytest
from PIL import Image
from skimage import data

from myvlm_desktop import imaging
from myvlm_desktop.cli import main as cli
from myvlm_desktop.library.db import from_blob, now
from myvlm_desktop.models.errors import ModelUnavailable
from myvlm_desktop.pipeline import index as index_module
from myvlm_desktop.pipeline.index import Outcome, Task, index_library, store_outcomes
from myvlm_desktop.pipeline.jobs import Cancelled, JobControl, JobStatus
from myvlm_desktop.vision.boxes import iou
from myvlm_desktop.vision.embed import get_image_embedder
from myvlm_desktop.vision.faces import get_face_engine
from tests.conftest import insightface_image, make_jpeg


def add_photo(library, path) -> int:
    """A photos row as the scan leaves it (status ok, oriented size)."""
    info = imaging.read_photo(path)

    def insert(conn):
        return conn.execute("INSERT INTO photos(path, width, height, format, status, added_at, updated_at) "
                            "VALUES (?, ?, ?, ?, 'ok', ?, ?)", (str(path), info.width, info.height, info.format,
                                                                now(), now())).lastrowid
    return library.db.write(insert)


def add_broken(library, path) -> int:
    path.write_bytes(b"\xff\xd8\xff not really a jpeg")
    return library.db.write(lambda c: c.execute(
        "INSERT INTO photos(path, status, added_at, updated_at) VALUES (?, 'ok', ?, ?)",
        (str(path), now(), now())).lastrowid)


@pytest.fixture
def photos(library, photo_dir):
    """t1 enlarged to 2560 px wide (bigger than the decode size), the astronaut, a faceless photo, a bad file."""
    group = Image.open(insightface_image("t1.jpg"))
    group.resize((group.width * 2, group.height * 2)).save(photo_dir / "group.jpg", quality=90)
    Image.fromarray(data.astronaut()).save(photo_dir / "astronaut.png")
    Image.fromarray(data.coffee()).save(photo_dir / "coffee.jpg")
    return {"group": add_photo(library, photo_dir / "group.jpg"),
            "astronaut": add_photo(library, photo_dir / "astronaut.png"),
            "coffee": add_photo(library, photo_dir / "coffee.jpg"),
            "broken": add_broken(library, photo_dir / "broken.jpg")}


def faces_of(library, photo_id):
    return library.db.query("SELECT * FROM faces WHERE photo_id = ? ORDER BY x1", (photo_id,))


@pytest.mark.slow
def test_index_stores_faces_embeddings_and_what_was_done(library, photos):
    result = index_library(library, workers=1)
    assert result["photos"] == 4 and result["indexed"] == 3 and result["errors"] == 1
    assert result["faces"] == 7 and result["embeddings"] == 3
    assert result["face_engine"] == "dlib-resnet_v1" and result["embedder"] == "sscd-distilled-320-crops5"

    group = faces_of(library, photos["group"])
    assert len(group) == 6 and len(faces_of(library, photos["astronaut"])) == 1
    assert not faces_of(library, photos["coffee"])
    # boxes are in the photo's own pixels although it was decoded smaller
    expected = get_face_engine("dlib").analyze(imaging.load_array(insightface_image("t1.jpg")))
    for face in expected:
        doubled = tuple(2 * v for v in face.box)
        assert max(iou(doubled, (r["x1"], r["y1"], r["x2"], r["y2"])) for r in group) > 0.8
    for row in group:
        vector = from_blob(row["embedding"])
        assert vector.shape == (128,) and abs(np.linalg.norm(vector) - 1) < 1e-5
        assert row["engine"] == "dlib-resnet_v1" and len(imaging_json(row["landmarks"])) == 5

    state = {(r["photo_id"], r["stage"]): r for r in library.db.query("SELECT * FROM index_state")}
    assert len(state) == 8
    assert state[(photos["broken"], "faces")]["error"] == "not an image file (unrecognised format)"
    assert state[(photos["coffee"], "faces")]["error"] is None  # no faces is a result, not a reason to redo
    vectors = library.db.query("SELECT embedder, embedding FROM image_embeddings")
    assert len(vectors) == 3 and all(len(r["embedding"]) == 512 * 4 for r in vectors)
    # the stored vector describes the photo by its whole frame and subject crops, as decoded for indexing
    stored = from_blob(library.db.scalar("SELECT embedding FROM image_embeddings WHERE photo_id = ?",
                                         (photos["coffee"],)))
    sscd = get_image_embedder("sscd")
    assert np.allclose(stored, sscd.describe(imaging.load_array(photo_dir_of(library, photos["coffee"]),
                                                               index_module.DECODE_SIDE)), atol=1e-4)

    again = index_library(library, workers=1)
    assert again["photos"] == 0 and again["indexed"] == 0
    assert library.status()["faces"] == 7


def photo_dir_of(library, photo_id):
    from myvlm_desktop.library.store import open_path

    return open_path(library.db.query("SELECT * FROM photos WHERE id = ?", (photo_id,))[0])


def imaging_json(text):
    import json

    return json.loads(text)


@pytest.mark.slow
def test_status_counts_the_faces(library, photo_dir, capsys):
    Image.fromarray(data.astronaut()).save(photo_dir / "astronaut.png")
    add_photo(library, photo_dir / "astronaut.png")
    index_library(library, workers=1)
    assert cli(["--data-dir", str(library.root), "status", "--json"]) == 0
    assert '"faces": 1' in capsys.readouterr().out


def _decisions(library, group_faces):
    """Attach one of every kind of user decision to the old faces of the group photo."""
    db = library.db
    f = [r["id"] for r in group_faces]

    def write(conn):
        alice = conn.execute("INSERT INTO concepts(name, kind, identifier, created_at) "
                             "VALUES ('Alice', 'person', '<Alice>', ?)", (now(),)).lastrowid
        bob = conn.execute("INSERT INTO concepts(name, kind, identifier, created_at) "
                           "VALUES ('Bob', 'person', '<Bob>', ?)", (now(),)).lastrowid
        named = conn.execute("INSERT INTO clusters(kind, concept_id, created_at) VALUES ('face', ?, ?)",
                             (alice, now())).lastrowid
        auto = conn.execute("INSERT INTO clusters(kind, created_at) VALUES ('face', ?)", (now(),)).lastrowid
        chosen = conn.execute("INSERT INTO clusters(kind, created_at) VALUES ('face', ?)", (now(),)).lastrowid
        conn.execute("UPDATE faces SET cluster_id = ? WHERE id = ?", (named, f[0]))
        conn.execute("UPDATE clusters SET cover_face_id = ? WHERE id = ?", (f[0], named))
        conn.execute("UPDATE faces SET cluster_id = ? WHERE id = ?", (auto, f[1]))
        conn.execute("UPDATE faces SET cluster_id = ?, assigned_by = 'user' WHERE id = ?", (chosen, f[2]))
        conn.execute("UPDATE faces SET hidden = 1 WHERE id = ?", (f[3],))
        conn.execute("INSERT INTO rejections(concept_id, face_id, created_at) VALUES (?, ?, ?)", (bob, f[4], now()))
        conn.execute("INSERT INTO occurrences(photo_id, concept_id, face_id, source, created_at) "
                     "VALUES (?, ?, ?, 'head', ?)", (group_faces[5]["photo_id"], bob, f[5], now()))
        # an old face in Alice's cluster that the new engine does not find, and a forgettable one
        ghost = conn.execute("INSERT INTO faces(photo_id, x1, y1, x2, y2, embedding, engine, cluster_id, created_at) "
                             "VALUES (?, 0, 0, 20, 20, ?, 'old-engine', ?, ?)",
                             (group_faces[0]["photo_id"], group_faces[0]["embedding"], named, now())).lastrowid
        conn.execute("INSERT INTO faces(photo_id, x1, y1, x2, y2, embedding, engine, created_at) "
                     "VALUES (?, 2000, 1500, 2030, 1530, ?, 'old-engine', ?)",
                     (group_faces[0]["photo_id"], group_faces[0]["embedding"], now()))
        # as if an older engine had found them, a few pixels off
        marks = ",".join("?" * len(f))
        conn.execute(f"UPDATE faces SET engine = 'old-engine', x1 = x1 + 4, y1 = y1 - 3 WHERE id IN ({marks})", f)
        conn.execute("UPDATE index_state SET engine = 'old-engine' WHERE stage = 'faces'")
        return {"alice": alice, "bob": bob, "named": named, "auto": auto, "chosen": chosen, "ghost": ghost}

    return db.write(write)


def _successor(library, old_row):
    new = [r for r in faces_of(library, old_row["photo_id"]) if r["engine"] == "dlib-resnet_v1"]
    box = (old_row["x1"] + 4, old_row["y1"] - 3, old_row["x2"], old_row["y2"])
    best = max(new, key=lambda r: iou(box, (r["x1"], r["y1"], r["x2"], r["y2"])))
    assert iou(box, (best["x1"], best["y1"], best["x2"], best["y2"])) > 0.5
    return best


@pytest.mark.slow
def test_a_new_face_engine_keeps_every_user_decision(library, photo_dir):
    group = Image.open(insightface_image("t1.jpg"))
    group.save(photo_dir / "group.jpg")
    photo = add_photo(library, photo_dir / "group.jpg")
    index_library(library, workers=1)
    old = faces_of(library, photo)
    ids = _decisions(library, old)
    db = library.db
    before = {r[0] for r in db.query("SELECT concept_id, photo_id FROM concept_photos")}

    result = index_library(library, workers=1)
    assert result["photos"] == 1 and result["faces"] == 6 and result["old_faces_kept"] == 1
    assert result["decisions_moved"] == 6  # named cluster, user's cluster, hidden, rejection, occurrence, cover
    succ = [_successor(library, r) for r in old]
    assert succ[0]["cluster_id"] == ids["named"] and succ[0]["assigned_by"] == "auto"
    assert db.scalar("SELECT cover_face_id FROM clusters WHERE id = ?", (ids["named"],)) == succ[0]["id"]
    assert succ[1]["cluster_id"] is None  # an automatic, unnamed cluster is the clustering's to redo
    assert succ[2]["cluster_id"] == ids["chosen"] and succ[2]["assigned_by"] == "user"
    assert succ[3]["hidden"] == 1 and sum(r["hidden"] for r in succ) == 1
    assert db.scalar("SELECT face_id FROM rejections WHERE concept_id = ?", (ids["bob"],)) == succ[4]["id"]
    assert db.scalar("SELECT face_id FROM occurrences WHERE concept_id = ?", (ids["bob"],)) == succ[5]["id"]
    remaining_old = db.query("SELECT id FROM faces WHERE engine = 'old-engine'")
    assert [r["id"] for r in remaining_old] == [ids["ghost"]]  # named and unmatched: kept
    assert db.scalar("SELECT engine FROM index_state WHERE photo_id = ? AND stage = 'faces'", (photo,)) \
        == "dlib-resnet_v1"
    after = {r[0] for r in db.query("SELECT concept_id, photo_id FROM concept_photos")}
    assert before == after == {ids["alice"], ids["bob"]}  # nothing named was lost


@pytest.mark.slow
def test_vectors_of_the_old_whole_frame_rule_are_embedded_again_keeping_the_pets(library, photo_dir):
    from myvlm_desktop.people import ops

    for name in ("coffee", "chelsea"):
        Image.fromarray(getattr(data, name)()).save(photo_dir / f"{name}.png")
    coffee, cat = (add_photo(library, photo_dir / f"{n}.png") for n in ("coffee", "chelsea"))
    index_library(library, workers=1)
    ops.create_concept_from_photos(library, "Chelsea", "pet", [cat])
    ops.reject_photo(library, coffee, "Chelsea")
    db = library.db
    # a library indexed before photos were described by their subject crops: whole-frame vectors
    whole = get_image_embedder("sscd").embed([imaging.load_array(photo_dir / "chelsea.png", index_module.DECODE_SIDE)])
    db.write(lambda conn: (conn.execute("UPDATE image_embeddings SET embedder = 'sscd-distilled-320', embedding = ? "
                                        "WHERE photo_id = ?", (whole[0].tobytes(), cat)),
                           conn.execute("UPDATE index_state SET engine = 'sscd-distilled-320' WHERE stage = 'embedding'")))
    decisions = db.query("SELECT * FROM concept_photos"), db.query("SELECT * FROM rejections")

    result = index_library(library, workers=1)
    assert result["indexed"] == 2 and result["embeddings"] == 2
    rows = db.query("SELECT photo_id, embedder, embedding FROM image_embeddings ORDER BY photo_id")
    assert [(r["photo_id"], r["embedder"]) for r in rows] == [(coffee, "sscd-distilled-320-crops5"),
                                                              (cat, "sscd-distilled-320-crops5")]
    assert not np.allclose(from_blob(rows[1]["embedding"]), whole[0], atol=1e-2)
    assert (db.query("SELECT * FROM concept_photos"), db.query("SELECT * FROM rejections")) == decisions


def _noise_photos(library, photo_dir, count):
    return [add_photo(library, make_jpeg(photo_dir / f"noise{i}.jpg", seed=i)) for i in range(count)]


def test_cancel_keeps_what_is_done_and_the_next_run_finishes(library, photo_dir):
    _noise_photos(library, photo_dir, 6)
    status = JobStatus(1, "index")

    def on_update(s):
        if s.done >= 2:
            control.cancel()

    control = JobControl(status, on_update)
    with pytest.raises(Cancelled):
        index_library(library, control=control, workers=1)
    assert library.db.scalar("SELECT count(*) FROM index_state WHERE stage = 'embedding'") == 2
    result = index_library(library, workers=1)
    assert result["photos"] == 4 and result["indexed"] == 4
    assert library.db.scalar("SELECT count(*) FROM image_embeddings") == 6


def test_pause_holds_the_work_until_resumed(library, photo_dir):
    _noise_photos(library, photo_dir, 5)
    control = JobControl(JobStatus(1, "index"), lambda s: control.pause() if s.done == 1 else None)
    results = []
    worker = threading.Thread(target=lambda: results.append(index_library(library, control=control, workers=1)))
    worker.start()
    deadline = time.monotonic() + 30
    while control.status.done < 1 and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.5)
    assert control.status.done == 1 and worker.is_alive()
    control.resume()
    worker.join(60)
    assert results and results[0]["indexed"] == 5


def test_a_missing_engine_skips_only_its_half(library, photo_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    _noise_photos(library, photo_dir, 2)
    result = index_library(library, face_engine="insightface", workers=1)
    assert result["face_engine"] is None and "insightface" in result["skipped"]["faces"]
    assert result["embeddings"] == 2
    assert library.db.scalar("SELECT count(*) FROM index_state WHERE stage = 'faces'") == 0
    with pytest.raises(ModelUnavailable, match="neither"):
        index_library(library, face_engine="insightface", embedder="clip")


def test_photos_deleted_while_indexing_are_skipped(library):
    task = Task(12345, "/gone.jpg", "/gone.jpg", 100, True, True)
    counts = library.db.write(store_outcomes, [Outcome(task, [], np.ones(512, np.float32))], "e-1", "x-1")
    assert counts["indexed"] == 0 and library.db.scalar("SELECT count(*) FROM index_state") == 0


def test_scan_then_index(library, photo_dir):
    from myvlm_desktop.library.scan import scan_library

    Image.fromarray(data.astronaut()).save(photo_dir / "astronaut.png")
    make_jpeg(photo_dir / "noise.jpg")
    library.add_folder(photo_dir)
    scan_library(library)
    result = index_library(library, workers=1)
    assert result["indexed"] == 2 and result["faces"] == 1


@pytest.mark.slow
def test_worker_processes_find_the_same_faces_as_threads(library, photo_dir, monkeypatch, tmp_path):
    from myvlm_desktop.library.store import Library

    Image.fromarray(data.astronaut()).save(photo_dir / "astronaut.png")
    Image.fromarray(data.coffee()).save(photo_dir / "coffee.jpg")
    # a face HOG misses and MTCNN finds: the processes must run the same engine (dlib+mtcnn), not plain dlib
    Image.fromarray(data.astronaut()).rotate(50, resample=Image.Resampling.BILINEAR).save(photo_dir / "tilted.png")
    names = ("astronaut.png", "coffee.jpg", "tilted.png")
    for name in names:
        add_photo(library, photo_dir / name)
    add_broken(library, photo_dir / "broken.jpg")
    pools = []
    make_pool = index_module._executor

    def recorded(*args):
        pool = make_pool(*args)
        pools.append(type(pool).__name__)
        return pool

    monkeypatch.setattr(index_module, "_executor", recorded)
    with Library(tmp_path / "threads") as other:
        for name in names:
            add_photo(other, photo_dir / name)
        index_library(other, workers=2)  # fewer photos than PROCESS_MIN: threads
        expected = other.db.query("SELECT x1, y1, x2, y2, embedding FROM faces")
    monkeypatch.setattr(index_module, "PROCESS_MIN", 1)
    result = index_library(library, workers=2)  # dlib holds the GIL: this runs in two worker processes
    got = library.db.query("SELECT x1, y1, x2, y2, embedding FROM faces")
    assert pools == ["ThreadPoolExecutor", "ProcessPoolExecutor"]
    assert result["indexed"] == 3 and result["errors"] == 1 and result["faces"] == 2
    assert sorted(tuple(r) for r in got) == sorted(tuple(r) for r in expected)  # photos finish in any order


def test_switching_dlib_to_dlib_mtcnn_keeps_every_face_and_decision(library, photo_dir):
    """Same vectors, same engine id: what HOG found (and what the user said about it) stays; the second look
    only runs on photos indexed from then on."""
    Image.fromarray(data.astronaut()).save(photo_dir / "astronaut.png")
    Image.fromarray(data.astronaut()).rotate(50, resample=Image.Resampling.BILINEAR).save(photo_dir / "tilted.png")
    astronaut, tilted = (add_photo(library, photo_dir / n) for n in ("astronaut.png", "tilted.png"))
    index_library(library, face_engine="dlib", workers=1)
    (face,) = faces_of(library, astronaut)
    assert faces_of(library, tilted) == []  # HOG misses the tilted head
    library.db.write(lambda c: c.execute("UPDATE faces SET hidden = 1 WHERE id = ?", (face["id"],)))
    result = index_library(library, face_engine="dlib+mtcnn", workers=1)
    assert result["face_engine"] == "dlib-resnet_v1" and result["photos"] == 0
    assert [dict(r) for r in faces_of(library, astronaut)] == [dict(face) | {"hidden": 1}]
    Image.fromarray(data.astronaut()).rotate(50, resample=Image.Resampling.BILINEAR).save(photo_dir / "new.png")
    new = add_photo(library, photo_dir / "new.png")
    index_library(library, face_engine="dlib+mtcnn", workers=1)
    assert len(faces_of(library, new)) == 1  # a photo added later gets the second look

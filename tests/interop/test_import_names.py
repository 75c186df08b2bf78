"""Names from photo metadata applied to the library: matching, manual faces, pets, conflicts, undo."""

import numpy as np
import pytest

from myvlm_desktop.library.db import now, to_blob
from myvlm_desktop.library.scan import scan_library
from myvlm_desktop.people import ops
from myvlm_desktop.people.update import cluster_faces
from myvlm_desktop.pipeline import names as import_step
from tests.conftest import make_jpeg
from tests.interop.xmpdata import mwg, packet, tags

W, H = 400, 300


class CropEngine:
    """A face engine for tests: finds no face by itself and embeds the mean colours around the landmarks."""

    name, engine_id, dim = "dlib", "dlib-test", 128

    def detect(self, rgb):
        return []

    def embed(self, rgb, detections):
        out = []
        for d in detections:
            x, y = np.clip(d.landmarks.mean(axis=0).astype(int), 0, [rgb.shape[1] - 1, rgb.shape[0] - 1])
            v = np.resize(rgb[y, x].astype(np.float32) + 1, self.dim)
            out.append(v / np.linalg.norm(v))
        return np.array(out, np.float32)


@pytest.fixture
def photos(library, photo_dir):
    """Two scanned photos with one detected face each, the faces stage done."""
    for i in range(2):
        make_jpeg(photo_dir / f"p{i}.jpg", size=(W, H), seed=i)
    library.add_folder(photo_dir)
    scan_library(library)
    ids = [r["id"] for r in library.db.query("SELECT id FROM photos ORDER BY path")]
    for pid in ids:
        _add_face(library, pid, (160, 90, 240, 180), seed=pid)
    return ids


def _add_face(library, photo_id, box, seed=0):
    vec = np.random.default_rng(seed).normal(size=128).astype(np.float32)

    def tx(conn):
        conn.execute("INSERT OR REPLACE INTO index_state(photo_id, stage, engine, done_at) VALUES (?, 'faces', "
                     "'dlib-test', ?)", (photo_id, now()))
        return conn.execute("INSERT INTO faces(photo_id, x1, y1, x2, y2, score, embedding, engine, created_at) "
                            "VALUES (?, ?, ?, ?, ?, 1, ?, 'dlib-test', ?)",
                            (photo_id, *box, to_blob(vec / np.linalg.norm(vec)), now())).lastrowid
    return library.db.write(tx)


def _face_of(library, photo_id):
    return library.db.query("SELECT f.*, k.name FROM faces f LEFT JOIN clusters c ON c.id = f.cluster_id "
                            "LEFT JOIN concepts k ON k.id = c.concept_id WHERE photo_id = ? ORDER BY f.id", (photo_id,))


def _sidecar(photo_dir, name, *parts):
    (photo_dir / f"{name}.xmp").write_text(packet(*parts))


ALICE = ("Alice", "Face", 0.5, 0.45, 0.2, 0.3)  # the detected face's box (160,90)-(240,180), centre-based


def test_region_names_the_matching_face_as_one_undoable_operation(library, photo_dir, photos):
    _sidecar(photo_dir, "p0.jpg", mwg([ALICE], applied=(W, H)))
    result = import_step.import_names(library, engine=CropEngine())
    assert result["named"] == 1
    [face] = _face_of(library, photos[0])
    assert (face["name"], face["assigned_by"]) == ("Alice", "user")
    assert library.db.query("SELECT kind FROM operations")[0]["kind"] == "import"
    cluster_faces(library.db, full=True)  # re-clustering keeps the user's decision
    assert _face_of(library, photos[0])[0]["name"] == "Alice"
    ops.undo(library)
    assert _face_of(library, photos[0])[0]["name"] is None
    assert library.db.scalar("SELECT count(*) FROM concepts") == 0


def test_unchanged_metadata_is_not_imported_twice(library, photo_dir, photos):
    _sidecar(photo_dir, "p0.jpg", mwg([ALICE]))
    import_step.import_names(library, engine=CropEngine())
    again = import_step.import_names(library, engine=CropEngine())
    assert again.get("named", 0) == 0 and library.db.scalar("SELECT count(*) FROM operations") == 1


def test_case_and_unicode_variants_join_the_existing_concept(library, photo_dir, photos):
    ops.create_concept_from_photos(library, "Zoé", "person", [photos[1]])
    _sidecar(photo_dir, "p0.jpg", mwg([("ZOE\u0301", "Face", 0.5, 0.45, 0.2, 0.3)]))
    import_step.import_names(library, engine=CropEngine())
    assert _face_of(library, photos[0])[0]["name"] == "Zoé"
    assert library.db.scalar("SELECT count(*) FROM concepts") == 1


def test_conflicts_keep_the_users_decision_and_are_reported(library, photo_dir, photos):
    bob = _face_of(library, photos[0])[0]["id"]
    ops.name_cluster(library, library.db.write(lambda c: c.execute(
        "INSERT INTO clusters(kind, created_at) VALUES ('face', ?)", (now(),)).lastrowid), "Bob")
    cluster = library.db.scalar("SELECT id FROM clusters WHERE concept_id IS NOT NULL")
    ops.move_face(library, bob, cluster)
    carol_face = _face_of(library, photos[1])[0]["id"]
    ops.create_concept_from_photos(library, "Carol", "person", [photos[0]])
    ops.reject_face(library, carol_face, "Carol")
    _sidecar(photo_dir, "p0.jpg", mwg([ALICE]))
    _sidecar(photo_dir, "p1.jpg", mwg([("carol", "Face", 0.5, 0.45, 0.2, 0.3)]))
    result = import_step.import_names(library, engine=CropEngine())
    assert result["conflict"] == 2
    assert _face_of(library, photos[0])[0]["name"] == "Bob" and _face_of(library, photos[1])[0]["name"] is None
    report = {r["name"]: r["detail"] for r in import_step.report(library)}
    assert "you named this face Bob" in report["Alice"] and "not Carol" in report["carol"]


def test_region_without_a_face_becomes_a_metadata_face(library, photo_dir, photos):
    _sidecar(photo_dir, "p0.jpg", mwg([ALICE, ("Dan", "Face", 0.15, 0.2, 0.1, 0.2)], applied=(W, H)))
    import_step.import_names(library, engine=None, face_engine="no-such-engine")
    assert [r["outcome"] for r in import_step.report(library)] == ["pending"]  # Alice applied, Dan waits
    result = import_step.import_names(library, engine=CropEngine())
    assert result["named"] == 1
    faces = _face_of(library, photos[0])
    dan = next(f for f in faces if f["name"] == "Dan")
    assert dan["source"] == "metadata" and dan["engine"] == "dlib-test"
    assert (dan["x1"], dan["y1"], dan["x2"], dan["y2"]) == pytest.approx((40, 30, 80, 90))
    vec = np.frombuffer(dan["embedding"], np.float32)
    assert vec.shape == (128,) and abs(np.linalg.norm(vec) - 1) < 1e-5


def test_pet_regions_make_a_pet_and_keywords_are_hints(library, photo_dir, photos):
    _sidecar(photo_dir, "p1.jpg", mwg([("Rex", "Pet", 0.3, 0.3, 0.2, 0.2)]), tags(digikam=["People/Eve"]))
    result = import_step.import_names(library, engine=CropEngine())
    assert (result["named"], result["hint"]) == (1, 1)
    rex = library.db.query("SELECT * FROM concepts WHERE name = 'Rex'")[0]
    assert rex["kind"] == "pet"
    assert library.db.scalar("SELECT count(*) FROM cluster_photos cp JOIN clusters c ON c.id = cp.cluster_id "
                             "WHERE c.concept_id = ? AND cp.photo_id = ? AND cp.assigned_by = 'user'",
                             (rex["id"], photos[1])) == 1
    hints = [r for r in import_step.report(library, everything=True) if r["outcome"] == "hint"]
    assert [h["name"] for h in hints] == ["Eve"]


def test_a_pet_name_on_a_person_is_a_conflict(library, photo_dir, photos):
    ops.create_concept_from_photos(library, "Rex", "person", [photos[0]])
    _sidecar(photo_dir, "p1.jpg", mwg([("Rex", "Pet", 0.3, 0.3, 0.2, 0.2)]))
    assert import_step.import_names(library, engine=CropEngine())["conflict"] == 1


def test_hostile_names_are_skipped(library, photo_dir, photos):
    _sidecar(photo_dir, "p0.jpg", mwg([("&lt;script&gt;", "Face", 0.5, 0.45, 0.2, 0.3)]))
    result = import_step.import_names(library, engine=CropEngine())
    assert result["skipped"] == 1 and library.db.scalar("SELECT count(*) FROM concepts") == 0


class Control:
    def __init__(self):
        self.calls = []

    def progress(self, done, total, message=""):
        self.calls.append((done, total, message))


def test_the_names_stage_runs_as_a_job(library, photo_dir, photos):
    _sidecar(photo_dir, "p0.jpg", mwg([ALICE]))
    control = Control()
    result = import_step.names_job(library)(control)
    assert result["named"] == 1 and control.calls[-1][:2] == (2, 2)


@pytest.mark.slow
def test_a_region_no_detected_face_matches_gets_dlibs_embedding_of_that_face(library, photo_dir):
    """Real faces (insightface's t1.jpg), real dlib: a region over a face the index lost becomes a face whose
    embedding is that person's."""
    import shutil

    from myvlm_desktop.vision.faces import get_face_engine
    from tests.conftest import insightface_image

    engine = get_face_engine("dlib")
    shutil.copy(insightface_image("t1.jpg"), photo_dir / "t1.jpg")
    library.add_folder(photo_dir)
    scan_library(library)
    photo = library.db.query("SELECT id, width, height FROM photos")[0]
    from myvlm_desktop.imaging import load_array

    faces = sorted(engine.analyze(load_array(photo_dir / "t1.jpg")), key=lambda f: f.box[0])
    x1, y1, x2, y2 = faces[0].box
    w, h = photo["width"], photo["height"]
    _sidecar(photo_dir, "t1.jpg", mwg([("Lost", "Face", (x1 + x2) / 2 / w, (y1 + y2) / 2 / h, (x2 - x1) / w,
                                        (y2 - y1) / h)], applied=(w, h)))
    _add_face(library, photo["id"], faces[1].box)  # the index found another face, not this one
    assert import_step.import_names(library, engine=engine)["named"] == 1
    made = library.db.query("SELECT embedding, source FROM faces WHERE source = 'metadata'")[0]
    vector = np.frombuffer(made["embedding"], np.float32)
    assert engine.distance(vector, faces[0].embedding) < engine.threshold  # the same person
    assert engine.distance(vector, faces[1].embedding) > engine.threshold


def test_cli_import_names_and_its_report(library, photo_dir, photos):
    import subprocess
    import sys

    bob = library.db.write(lambda c: c.execute("INSERT INTO clusters(kind, created_at) VALUES ('face', ?)",
                                               (now(),)).lastrowid)
    ops.move_face(library, _face_of(library, photos[1])[0]["id"], bob)
    ops.name_cluster(library, bob, "Bob")
    _sidecar(photo_dir, "p0.jpg", mwg([ALICE]))
    _sidecar(photo_dir, "p1.jpg", mwg([ALICE]))
    root = str(library.root)
    library.close()
    run = [sys.executable, "-m", "myvlm_desktop.cli", "--data-dir", root, "import-names"]
    out = subprocess.run(run, capture_output=True, text=True, check=False)
    assert out.returncode == 0 and "1 named, 1 conflict" in out.stdout and "--report" in out.stdout, out.stderr
    out = subprocess.run([*run, "--report"], capture_output=True, text=True, check=False)
    assert out.stdout.strip().endswith("p1.jpg: Alice (mwg) conflict: the metadata says Alice; "
                                       "you named this face Bob")
    out = subprocess.run([*run, "--all"], capture_output=True, text=True, check=False)
    assert out.returncode == 2 and "--report" in out.stderr


def test_the_process_chain_reads_names_after_faces_and_before_clustering(library, photo_dir, photos):
    from myvlm_desktop.pipeline.process import STAGES, job_kinds

    assert STAGES.index("index") < STAGES.index("names") < STAGES.index("cluster")
    assert STAGES[-1] == "write_back"
    _sidecar(photo_dir, "p0.jpg", mwg([ALICE]))
    kinds = job_kinds(library, {"face_engine": "dlib", "embedder": "sscd"})
    assert kinds["names"](Control())["named"] == 1
    assert "off" in kinds["write_back"](Control())["skipped"]

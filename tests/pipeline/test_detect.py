"""The detection job over the library, detect_image on any image, and the CLI commands for heads."""

import json

import numpy as np
import pytest

from myvlm_desktop.cli import main as cli
from myvlm_desktop.imaging import load_array
from myvlm_desktop.library.db import now
from myvlm_desktop.library.search import search
from myvlm_desktop.people import ops
from myvlm_desktop.pipeline.detect import detect_image, detect_job, detect_library
from myvlm_desktop.pipeline.jobs import JobQueue
from tests.concepts import helpers

pytestmark = pytest.mark.slow
ALICE, BOB = 1, 4   # positions (left to right) in t1.jpg


@pytest.fixture
def t1_library(library, photo_dir):
    paths = helpers.save_t1(photo_dir)
    photos = helpers.add_photos(library, photo_dir)
    photos = {k: photos[p.name] for k, p in paths.items()}
    faces = {name: helpers.add_faces(library, photos[name], helpers.t1_faces(name == "mirror"))
             for name in ("t1", "mirror")}
    ops.name_cluster(library, helpers.face_cluster(library, [faces["t1"][ALICE]]), "Alice")
    return library, photos, faces, paths


def test_detection_marks_photos_and_search_finds_them(t1_library):
    library, photos, faces, _ = t1_library
    assert detect_library(library)["marked"] == {"Alice": 2}
    rows = library.db.query("SELECT * FROM occurrences WHERE concept_id = 1")
    assert {(r["photo_id"], r["face_id"]) for r in rows} == {(photos["t1"], faces["t1"][ALICE]),
                                                             (photos["mirror"], faces["mirror"][5 - ALICE])}
    assert all(r["source"] == "head" and r["present"] == 1 and r["head_version"].startswith("v1-") for r in rows)
    assert all(0.5 <= r["score"] <= 1.0 for r in rows)
    assert {h["photo_id"] for h in search(library.db, "@Alice")} == set(photos.values())
    assert {h["photo_id"] for h in search(library.db, "Alice")} == set(photos.values()), "the word index knows her too"


def test_the_user_always_wins(t1_library):
    library, photos, faces, _ = t1_library
    detect_library(library)
    ops.reject_face(library, faces["mirror"][5 - ALICE], "Alice")   # "that is not Alice"
    detect_library(library)
    assert helpers.head_rows(library, 1) == {photos["t1"]: faces["t1"][ALICE]}
    assert {h["photo_id"] for h in search(library.db, "@Alice")} == {photos["t1"]}

    # the user says Alice is not in t1 at all: the head's mark there goes, her named face notwithstanding
    library.db.write(lambda c: c.execute(
        "INSERT INTO occurrences(photo_id, concept_id, source, present, created_at) VALUES (?, 1, 'user', 0, ?)",
        (photos["t1"], now())))
    detect_library(library)
    assert helpers.head_rows(library, 1) == {}
    assert search(library.db, "@Alice") == []


def test_a_face_the_user_named_someone_else_is_not_marked(t1_library):
    library, photos, faces, _ = t1_library
    bob = helpers.face_cluster(library, [faces["mirror"][5 - ALICE]])
    ops.name_cluster(library, bob, "Bob")
    library.db.write(lambda c: c.execute("UPDATE faces SET assigned_by = 'user' WHERE cluster_id = ?", (bob,)))
    detect_library(library, ["Alice"])
    assert helpers.head_rows(library, 1) == {photos["t1"]: faces["t1"][ALICE]}


def test_a_retrained_head_replaces_its_marks(t1_library):
    library, _photos, faces, _ = t1_library
    detect_library(library)
    ops.move_face(library, faces["t1"][BOB], library.db.scalar("SELECT id FROM clusters WHERE concept_id = 1"))
    detect_library(library)
    rows = library.db.query("SELECT photo_id, face_id, head_version FROM occurrences WHERE concept_id = 1")
    assert len(rows) == 2 and {r["head_version"][:3] for r in rows} == {"v2-"}


def test_detect_runs_as_a_job(t1_library):
    library, _photos, _, _ = t1_library
    updates = []
    queue = JobQueue(library.db, kinds={"detect": detect_job(library)})
    queue.subscribe(lambda s: updates.append((s.state, s.done, s.total)))
    status = queue.submit("detect").wait(60)
    assert status.state == "done", status.error
    assert status.result["marked"] == {"Alice": 2}
    assert updates[-1][0] == "done" and any(state == "running" for state, _, _ in updates)


def test_detect_image_on_a_photo_outside_the_library(t1_library, tmp_path):
    library, _, _, paths = t1_library
    rgb = load_array(paths["t1"])
    alice_box = helpers.t1_faces(False)[ALICE].box
    crop = rgb[:, : int(alice_box[2]) + 150]          # a new photo: Alice and her left neighbour only
    found = detect_image(library, np.ascontiguousarray(crop))
    assert [d["concept"] for d in found] == ["Alice"]
    assert _iou(found[0]["face"]["box"], alice_box) > 0.6, "the face it says is Alice is where Alice is"
    assert detect_image(library, np.ascontiguousarray(rgb[:, int(alice_box[2]) + 20:])) == []


def _iou(a, b):
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    def area(r):
        return (r[2] - r[0]) * (r[3] - r[1])
    return w * h / (area(a) + area(b) - w * h)


def test_cli_detect_json(t1_library, tmp_path, capsys):
    library, _, _, paths = t1_library
    data = str(library.root)
    assert cli(["--data-dir", data, "heads", "train", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["marked"] == {"Alice": 2}
    assert cli(["--data-dir", data, "detect", str(paths["mirror"]), "--json"]) == 0
    found = json.loads(capsys.readouterr().out)
    assert [(d["concept"], set(d)) for d in found] == [("Alice", {"concept", "score", "face"})]
    assert cli(["--data-dir", data, "heads", "list", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["state"] == "fresh"


def test_cli_detect_bad_input_is_a_message_not_a_traceback(library, tmp_path, capsys):
    data = str(library.root)
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    assert cli(["--data-dir", data, "detect", str(tmp_path / "broken.jpg")]) == 2
    assert "broken.jpg" in capsys.readouterr().err
    assert cli(["--data-dir", data, "detect", str(tmp_path / "nowhere.jpg")]) == 2
    assert "no such file" in capsys.readouterr().err
    assert cli(["--data-dir", data, "heads", "train", "Nobody"]) == 2
    assert "no concept" in capsys.readouterr().err


def test_cli_reports_a_damaged_head(t1_library, capsys):
    library, _, _, _ = t1_library
    data = str(library.root)
    assert cli(["--data-dir", data, "heads", "train", "--no-detect"]) == 0
    capsys.readouterr()
    (library.root / "concepts" / "1" / "head.json").write_text("{not json")
    assert cli(["--data-dir", data, "heads", "list", "--json"]) == 0
    entry = json.loads(capsys.readouterr().out)[0]
    assert entry["state"] == "damaged" and "head.json" in entry["problem"]

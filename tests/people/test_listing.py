"""One cluster listing for `myvlm people` and the window: sizes count faces in photos whose status is ok."""

import json

from myvlm_desktop.cli import main
from myvlm_desktop.library.store import Library
from myvlm_desktop.people import ops
from myvlm_desktop.pipeline.people import People
from tests.people.helpers import add_people, add_photo


def _cli_listing(capsys, data_dir) -> dict:
    assert main(["--data-dir", str(data_dir), "people", "--json", "--members"]) == 0
    return {c["id"]: c for c in json.loads(capsys.readouterr().out)}


def test_a_cluster_whose_photos_became_errors_is_listed_nowhere(tmp_path, capsys):
    lib = Library(tmp_path / "data")
    gone, kept_faces = add_people(lib.db, [2, 3])
    rex = ops.create_concept_from_photos(lib.db, "Rex", "pet", [add_photo(lib.db, "rex")])
    assert main(["--data-dir", str(lib.root), "cluster"]) == 0
    capsys.readouterr()
    faces = dict(lib.db.query("SELECT id, cluster_id FROM faces"))
    before = _cli_listing(capsys, lib.root)
    assert {faces[gone[0]], faces[kept_faces[0]], rex["cluster"]} <= set(before)
    assert before[faces[kept_faces[0]]]["size"] == 3

    broken = [*gone, kept_faces[0]]  # every photo of one cluster, one photo of the other
    photo_ids = [lib.db.scalar("SELECT photo_id FROM faces WHERE id = ?", (f,)) for f in broken]
    photo_ids.append(lib.db.scalar("SELECT photo_id FROM cluster_photos WHERE cluster_id = ?", (rex["cluster"],)))
    lib.db.write(lambda c: c.executemany("UPDATE photos SET status = 'error', error = 'cannot decode' WHERE id = ?",
                                         [(p,) for p in photo_ids]))

    cli = _cli_listing(capsys, lib.root)
    window = {c["id"]: c for c in People(lib).clusters()}
    lib.close()
    assert set(cli) == set(window)
    assert faces[gone[0]] not in cli and rex["cluster"] not in cli  # nothing left to show
    kept = cli[faces[kept_faces[0]]]
    assert kept["size"] == window[kept["id"]]["size"] == 2
    assert sorted(m["face"] for m in kept["members"]) == kept_faces[1:]
    assert kept["cover_face"] == window[kept["id"]]["cover"]["face_id"] != kept_faces[0]

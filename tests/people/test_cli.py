"""The people commands: JSON shapes, operations by id and name, clear errors with exit code 2."""

import json

import pytest

from myvlm_desktop.cli import main
from myvlm_desktop.library.store import Library
from tests.people.helpers import add_people, add_photo


@pytest.fixture
def data(tmp_path):
    lib = Library(tmp_path / "data")
    people = add_people(lib.db, [4, 3, 1])
    photos = [add_photo(lib.db, f"rex{i}") for i in range(2)]
    lib.close()
    return tmp_path / "data", people, photos


def run(capsys, data_dir, *args):
    code = main(["--data-dir", str(data_dir), *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_cluster_name_people_undo(capsys, data):
    data_dir, people, _photos = data
    code, out, _ = run(capsys, data_dir, "cluster", "--json")
    assert code == 0 and json.loads(out)["faces"]["new_clusters"] == 2
    code, out, _ = run(capsys, data_dir, "people", "--json")
    listed = json.loads(out)
    assert [c["size"] for c in listed] == [4, 3]
    assert {"id", "size", "concept", "kind", "cover_path"} <= set(listed[0])
    big, small = listed[0]["id"], listed[1]["id"]
    code, out, _ = run(capsys, data_dir, "name", str(big), "Alice", "--kind", "person", "--json")
    assert code == 0 and json.loads(out)["identifier"] == "<Alice>"
    code, out, _ = run(capsys, data_dir, "people", "--json", "--members")
    entry = json.loads(out)[0]
    assert entry["concept"] == "Alice" and entry["kind"] == "person"
    assert sorted(m["face"] for m in entry["members"]) == people[0]
    assert {"face", "path", "box", "area"} <= set(entry["members"][0])
    code, out, _ = run(capsys, data_dir, "suggest", "--json")
    assert json.loads(out)["clusters"][0]["cluster"] == small
    assert run(capsys, data_dir, "merge", "Alice", str(small))[0] == 0
    assert run(capsys, data_dir, "undo")[0] == 0
    assert run(capsys, data_dir, "redo")[0] == 0
    code, out, _ = run(capsys, data_dir, "people", "--json")
    assert [(c["concept"], c["size"]) for c in json.loads(out)] == [("Alice", 7)]


def test_operations_by_id_and_their_errors(capsys, data):
    data_dir, people, photos = data
    run(capsys, data_dir, "cluster")
    code, out, _ = run(capsys, data_dir, "people", "--json")
    big = json.loads(out)[0]["id"]
    assert run(capsys, data_dir, "split", str(big), str(people[0][0]), str(people[0][1]))[0] == 0
    assert run(capsys, data_dir, "move", str(people[0][0]), str(big))[0] == 0
    assert run(capsys, data_dir, "cover", str(big), str(people[0][0]))[0] == 0
    assert run(capsys, data_dir, "name", str(big), "Bea")[0] == 0
    assert run(capsys, data_dir, "rename", "Bea", "Beatrice")[0] == 0
    assert run(capsys, data_dir, "reject", str(people[0][2]), "Beatrice")[0] == 0
    assert run(capsys, data_dir, "hide", str(big))[0] == 0
    assert run(capsys, data_dir, "concept", "create", "Rex", "--kind", "pet", str(photos[0]), str(photos[1]))[0] == 0
    code, out, _ = run(capsys, data_dir, "people", "--json", "--hidden", "--kind", "image")
    assert [(c["concept"], c["kind"], c["size"]) for c in json.loads(out)] == [("Rex", "pet", 2)]
    assert run(capsys, data_dir, "delete-concept", "Rex")[0] == 0
    for args, message in [
        (("name", "999", "Zed"), "no cluster 999"),
        (("name", "abc", "Zed"), "not a cluster number"),
        (("rename", "Nobody", "Zed"), "no concept"),
        (("concept", "create", "Tom", "--kind", "pet", "/no/such.jpg"), "not a photo of the library"),
        (("merge", str(big), str(big)), "itself"),
    ]:
        code, out, err = run(capsys, data_dir, *args)
        assert code == 2 and message in err and "Traceback" not in err
    listed = json.loads(run(capsys, data_dir, "people", "--json")[1])
    assert run(capsys, data_dir, "name", f"c:{listed[0]['id']}", "2024")[0] == 0
    assert run(capsys, data_dir, "merge", "2024", f"c:{listed[1]['id']}")[0] == 0
    assert run(capsys, data_dir, "rename", "2024", "Year")[0] == 0
    assert [c["concept"] for c in json.loads(run(capsys, data_dir, "people", "--json")[1])] == ["Year"]
    run(capsys, data_dir, "name", str(json.loads(run(capsys, data_dir, "people", "--json")[1])[0]["id"]), "Cy")
    code, _, err = run(capsys, data_dir, "rename", "Cy", "beatrice")
    assert code == 2 and "merge" in err

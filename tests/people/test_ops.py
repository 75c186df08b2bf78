"""Naming operations: what each does, that undo restores the tables exactly, that redo replays it."""

import pytest

from myvlm_desktop.library.db import now
from myvlm_desktop.people import listing, ops
from myvlm_desktop.people.update import cluster_faces
from tests.people.helpers import add_people, add_photo, clusters_of, dump


@pytest.fixture
def world(library):
    """Three people clustered (6, 5 and 4 faces); the first named Alice, with a head's occurrence."""
    people = add_people(library.db, [6, 5, 4])
    cluster_faces(library.db)
    a, b, c = (clusters_of(library.db, p).pop() for p in people)
    alice = ops.name_cluster(library, a, "Alice")
    library.db.write(lambda conn: conn.execute(
        "INSERT INTO occurrences(photo_id, concept_id, face_id, score, source, present, created_at) "
        "VALUES (1, ?, 1, 0.9, 'head', 1, ?)", (alice["id"], now())))
    return library, people, (a, b, c)


def versions(db):
    return {r[0]: r[1] for r in db.query("SELECT name, version FROM concepts")}


def without_versions(snapshot):
    return {**snapshot, "concepts": [row[:4] + row[5:] for row in snapshot["concepts"]]}


def check_undo_redo(lib, operation):
    """Run the operation; undo must give the tables back exactly, redo the state after it."""
    before = dump(lib.db)
    result = operation()
    after = dump(lib.db)
    assert after != before
    ops.undo(lib)
    assert without_versions(dump(lib.db)) == without_versions(before)
    ops.redo(lib)
    assert without_versions(dump(lib.db)) == without_versions(after)
    return result, before, after


def test_name_creates_a_concept_and_undo_removes_it(world):
    lib, people, (_a, b, _c) = world
    result, _before, _after = check_undo_redo(lib, lambda: ops.name_cluster(lib, b, "Bob", "person"))
    assert result["identifier"] == "<Bob>"
    assert ops.concept_members(lib, result["id"])["face_ids"] == sorted(people[1])
    photos = {r[0] for r in lib.db.query("SELECT photo_id FROM concept_photos WHERE concept_id = ?", (result["id"],))}
    assert len(photos) == 5  # what @Bob finds in search


def test_naming_with_a_taken_name_joins_that_concept(world):
    lib, people, (a, b, _c) = world
    v = versions(lib.db)["Alice"]
    _, _, _after = check_undo_redo(lib, lambda: ops.name_cluster(lib, b, "alice"))
    assert clusters_of(lib.db, people[0] + people[1]) == {a}
    assert versions(lib.db)["Alice"] > v
    assert not lib.db.scalar("SELECT count(*) FROM clusters WHERE id = ?", (b,))


def test_rename_and_a_taken_name_asks_to_merge(world):
    lib, _, (_a, b, _c) = world
    ops.name_cluster(lib, b, "Bob")
    v = versions(lib.db)
    check_undo_redo(lib, lambda: ops.rename_concept(lib, "Alice", "Alicia"))
    assert lib.db.scalar("SELECT identifier FROM concepts WHERE name = 'Alicia'") == "<Alicia>"
    assert versions(lib.db)["Alicia"] == v["Alice"]  # a new name is not a new set of examples
    with pytest.raises(ops.NameTaken) as taken:
        ops.rename_concept(lib, "Alicia", "BOB")
    assert taken.value.concept_id == lib.db.scalar("SELECT id FROM concepts WHERE name = 'Bob'")


def test_merge_two_concepts_keeps_the_survivor(world):
    lib, people, (_a, b, _c) = world
    bob = ops.name_cluster(lib, b, "Bob")
    ops.reject_face(lib, people[2][0], "Bob")
    result, _, _ = check_undo_redo(lib, lambda: ops.merge(lib, "Alice", "Bob", keep="Bob"))
    assert result["name"] == "Bob" and result["id"] == bob["id"]
    assert [r[0] for r in lib.db.query("SELECT name FROM concepts")] == ["Bob"]
    members = ops.concept_members(lib, bob["id"])
    assert members["face_ids"] == sorted(people[0] + people[1])
    assert members["rejected_face_ids"] == [people[2][0]]
    # Alice's head occurrence went with her; the user's own marks would have moved
    assert lib.db.scalar("SELECT count(*) FROM occurrences") == 0


def test_a_concept_named_2024_can_be_named_in_every_operation(world):
    lib, people, (a, b, c) = world
    year = ops.name_cluster(lib, b, "2024")
    assert ops.rename_concept(lib, "2024", "1999")["id"] == year["id"]   # digits: the concept of that name
    result = ops.merge(lib, "1999", str(c))  # no concept is called str(c): the cluster, as before
    assert result["id"] == year["id"] and clusters_of(lib.db, people[2]) == {b}
    ops.reject_face(lib, people[1][0], "1999")
    assert ops.concept_members(lib, year["id"])["rejected_face_ids"] == [people[1][0]]
    ops.rename_concept(lib, "1999", str(a))  # now a concept's name and a cluster id at once
    with pytest.raises(ops.PeopleError, match=f"@{a} for the concept or c:{a} for the cluster"):
        ops.merge(lib, "Alice", str(a))
    with pytest.raises(ops.PeopleError, match="already belongs"):
        ops.merge(lib, f"c:{a}", "Alice")  # c: is Alice's cluster, not the concept called str(a)
    result = ops.merge(lib, "Alice", f"@{a}")
    assert result["name"] == "Alice" and clusters_of(lib.db, people[0] + people[1][1:]) == {a}
    with pytest.raises(ops.PeopleError, match="not a cluster id"):
        ops.merge(lib, "c:x", "Alice")


def test_merge_two_unnamed_clusters(world):
    lib, people, (_a, b, c) = world
    check_undo_redo(lib, lambda: ops.merge(lib, b, c))
    assert clusters_of(lib.db, people[1] + people[2]) == {b}
    marks = ",".join("?" * len(people[2]))
    assert {r[0] for r in lib.db.query(f"SELECT assigned_by FROM faces WHERE id IN ({marks})", people[2])} == {"user"}


def test_split_and_move(world):
    lib, people, (a, _b, c) = world
    v = versions(lib.db)["Alice"]
    result, _, _ = check_undo_redo(lib, lambda: ops.split(lib, a, people[0][:2]))
    assert clusters_of(lib.db, people[0][:2]) == {result["cluster"]}
    assert versions(lib.db)["Alice"] > v
    check_undo_redo(lib, lambda: ops.move_face(lib, people[1][0], a))
    assert clusters_of(lib.db, [people[1][0]]) == {a}
    with pytest.raises(ops.PeopleError):
        ops.split(lib, a, people[1][1:2])  # not a member
    with pytest.raises(ops.PeopleError):
        ops.split(lib, c, people[2])  # the whole cluster


def test_reject_hide_cover_delete(world):
    lib, people, (a, b, _c) = world
    alice = lib.db.scalar("SELECT id FROM concepts WHERE name = 'Alice'")
    check_undo_redo(lib, lambda: ops.reject_face(lib, people[0][1], "Alice"))
    assert ops.concept_members(lib, alice)["rejected_face_ids"] == [people[0][1]]
    assert clusters_of(lib.db, [people[0][1]]) == {None}
    check_undo_redo(lib, lambda: ops.hide_cluster(lib, b))
    assert b not in {c["id"] for c in listing.list_clusters(lib.db)}
    check_undo_redo(lib, lambda: ops.set_cover(lib, a, people[0][3]))
    assert lib.db.scalar("SELECT cover_face_id FROM clusters WHERE id = ?", (a,)) == people[0][3]
    check_undo_redo(lib, lambda: ops.delete_concept(lib, "Alice"))
    assert lib.db.scalar("SELECT concept_id FROM clusters WHERE id = ?", (a,)) is None


def test_concept_from_chosen_photos(world):
    lib, _, _ = world
    photos = [add_photo(lib.db, f"rex{i}") for i in range(3)]
    result, _, _ = check_undo_redo(lib, lambda: ops.create_concept_from_photos(lib, "Rex", "pet", photos[:2]))
    assert ops.concept_members(lib, result["id"])["photo_ids"] == photos[:2]
    ops.create_concept_from_photos(lib, "rex", "pet", [photos[2]])
    assert ops.concept_members(lib, result["id"])["photo_ids"] == photos
    check_undo_redo(lib, lambda: ops.reject_photo(lib, photos[0], "Rex"))
    members = ops.concept_members(lib, result["id"])
    assert members["photo_ids"] == photos[1:] and members["rejected_photo_ids"] == [photos[0]]
    found = {r[0] for r in lib.db.query("SELECT photo_id FROM concept_photos WHERE concept_id = ?", (result["id"],))}
    assert found == set(photos[1:])
    with pytest.raises(ops.PeopleError):
        ops.create_concept_from_photos(lib, "Rex", "object", photos)  # Rex is a pet
    check_undo_redo(lib, lambda: ops.delete_concept(lib, "Rex"))
    assert not lib.db.scalar("SELECT count(*) FROM clusters WHERE kind = 'image'")


def test_undo_redo_history_and_versions_only_grow(world):
    lib, people, (a, _b, c) = world
    seen = [versions(lib.db)["Alice"]]
    ops.move_face(lib, people[1][0], a)
    seen.append(versions(lib.db)["Alice"])
    ops.undo(lib)
    seen.append(versions(lib.db)["Alice"])
    ops.redo(lib)
    seen.append(versions(lib.db)["Alice"])
    assert seen == sorted(seen) and len(set(seen)) == 4  # a head trained for any state never looks current
    ops.undo(lib)
    ops.undo(lib)  # the naming of Alice
    assert not lib.db.scalar("SELECT count(*) FROM concepts")
    with pytest.raises(ops.PeopleError, match="nothing to undo"):
        ops.undo(lib)
    ops.redo(lib)
    ops.hide_cluster(lib, c)  # a new operation ends the redo history
    with pytest.raises(ops.PeopleError, match="nothing to redo"):
        ops.redo(lib)
    assert [h["kind"] for h in ops.history(lib)] == ["hide", "name"]


def test_bad_requests_are_clear_errors(world):
    lib, people, (a, b, _c) = world
    for call, message in [
        (lambda: ops.name_cluster(lib, 999, "X"), "no cluster 999"),
        (lambda: ops.name_cluster(lib, b, "  "), "empty"),
        (lambda: ops.name_cluster(lib, b, "<Eve>"), "not a usable name"),
        (lambda: ops.name_cluster(lib, b, "Eve", "alien"), "kind must be"),
        (lambda: ops.name_cluster(lib, b, "Alice", "pet"), "is a person"),
        (lambda: ops.merge(lib, a, a), "itself"),
        (lambda: ops.reject_face(lib, 12345, "Alice"), "no face"),
        (lambda: ops.reject_face(lib, people[0][0], "Nobody"), "no concept"),
        (lambda: ops.set_cover(lib, a, people[1][0]), "not in cluster"),
    ]:
        with pytest.raises(ops.PeopleError, match=message):
            call()
    assert ops.history(lib)[0]["kind"] == "name"  # failed operations leave no trace


def test_operations_announce_what_changed(world):
    lib, _, (_a, _b, c) = world
    heard = []
    lib.db.subscribe(lambda what, detail: heard.append((what, detail)))
    ops.name_cluster(lib, c, "Carol")
    ops.undo(lib)
    assert [w for w, _ in heard] == ["people", "people"]
    assert heard[0][1]["clusters"] == [c] and heard[1][1]["operation"] == "undo"


def test_at_name_in_search_finds_the_photos_of_the_faces(world):
    from myvlm_desktop.library.search import search

    lib, people, (_a, b, _c) = world
    bob = ops.name_cluster(lib, b, "Bob")
    ops.reject_face(lib, people[1][0], "Bob")
    expected = set(lib.db.query("SELECT photo_id FROM faces WHERE id IN (?, ?, ?, ?)", people[1][1:]))
    assert {h["photo_id"] for h in search(lib.db, "@Bob")} == {r[0] for r in expected}
    assert not {h["photo_id"] for h in search(lib.db, "@Bob AND @Alice")}
    ops.undo(lib)
    assert len(search(lib.db, "@bob")) == 5 and bob["identifier"] == "<Bob>"

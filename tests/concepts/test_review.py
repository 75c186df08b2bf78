"""The review queue: one person per photo, borderline detections asked closest to the cut-off first,
answers as undoable operations, and the head retrained from them."""

import numpy as np
import pytest

from myvlm_desktop.concepts.review import ReviewSession, answer, retrain, review_queue
from myvlm_desktop.concepts.train import concept_members, concept_row, is_stale, load_concept_head
from myvlm_desktop.people import ops
from tests.concepts import helpers
from tests.concepts.helpers import make_alice
from tests.conftest import make_jpeg


@pytest.fixture
def alice(library, photo_dir):
    return make_alice(library, photo_dir)

def test_one_person_per_photo_the_better_face_is_kept_the_other_asked(alice):
    retrain(alice.library, ["Alice"])
    marked = helpers.head_rows(alice.library, alice.concept)
    assert marked[alice.photos["group.jpg"]] == alice.faces["A"]  # once, with the better match
    queue = review_queue(alice.library, "Alice")
    second = [item for item in queue if item.reason == "second face"]
    assert [item.face_id for item in second] == [alice.faces["B"]]
    assert alice.faces["A"] not in {item.face_id for item in queue}


def test_queue_asks_the_closest_to_the_cut_off_first_and_skips_decided_faces(alice):
    queue = review_queue(alice.library, "Alice")
    assert [item.face_id for item in queue] == [alice.faces[k] for k in ("doubt", "likely", "B")]
    assert queue[0].score == pytest.approx(1 - 0.08 / 0.17, abs=1e-3) and queue[0].box == (10.0, 10.0, 60.0, 60.0)
    assert alice.faces["named"] not in {item.face_id for item in queue}  # the user's own answer is never asked
    assert alice.faces["stranger"] not in {item.face_id for item in queue}  # far from the cut-off


def test_answers_are_operations_that_undo_and_retrain_the_head(alice):
    library = alice.library
    session = ReviewSession(library, "Alice")
    before = load_concept_head(library, alice.concept)
    assert session.current().face_id == alice.faces["doubt"]
    assert session.answer("no").face_id == alice.faces["likely"]
    assert session.answer("yes").face_id == alice.faces["B"]
    members = concept_members(library.db, alice.concept)
    assert alice.faces["doubt"] in members["rejected_face_ids"] and alice.faces["likely"] in members["face_ids"]
    assert session.changed and is_stale(concept_row(library.db, alice.concept), before)

    retrain(library, ["Alice"])
    head = load_concept_head(library, alice.concept)
    assert alice.faces["likely"] in head.meta["training"]["positive_face_ids"]
    assert alice.faces["doubt"] in head.meta["training"]["negative_face_ids"]
    assert alice.photos["doubt.jpg"] not in helpers.head_rows(library, alice.concept)  # "no" is final
    assert {item.face_id for item in review_queue(library, "Alice")}.isdisjoint(
        {alice.faces["doubt"], alice.faces["likely"]})

    assert session.undo().face_id == alice.faces["likely"]  # the newest answer comes back to be asked
    members = concept_members(library.db, alice.concept)
    assert alice.faces["likely"] not in members["face_ids"] and alice.faces["doubt"] in members["rejected_face_ids"]
    retrain(library, ["Alice"])
    assert alice.faces["likely"] not in load_concept_head(library, alice.concept).meta["training"]["positive_face_ids"]
    with pytest.raises(ValueError, match="answered already"):
        session.move(-1)
        session.answer("yes")


def test_skip_records_nothing_and_bad_answers_are_refused(alice):
    session = ReviewSession(alice.library, "Alice")
    first = session.current()
    operations = len(ops.history(alice.library, 100))
    assert session.answer("skip") is not None and len(ops.history(alice.library, 100)) == operations
    assert not session.changed
    assert session.move(-1) == first
    with pytest.raises(ValueError, match="yes, no, skip"):
        answer(alice.library, first, "maybe")
    with pytest.raises(ValueError, match="no answer to undo"):
        session.undo()


def test_a_pet_with_one_photo_is_reviewed_photo_by_photo(library, photo_dir):
    rng = np.random.default_rng(0)
    rex = rng.normal(size=64)
    vectors = {}
    for i in range(12):
        make_jpeg(photo_dir / f"p{i}.jpg", seed=i)
    photos = helpers.add_photos(library, photo_dir)
    for i, (_name, photo_id) in enumerate(sorted(photos.items())):
        near = 0.9 if i < 4 else 0.0  # four photos of Rex, eight others
        v = near * rex + rng.normal(size=64) * (0.6 if i < 4 else 1.0)
        vectors[photo_id] = (v / np.linalg.norm(v)).astype(np.float32)
    helpers.add_embeddings(library, vectors, "test-embedder-1")  # no such model: stored vectors train the head
    first = photos["p0.jpg"]
    ops.create_concept_from_photos(library, "Rex", "pet", [first])
    retrain(library, ["Rex"])
    head = load_concept_head(library, concept_row(library.db, "Rex")["id"])
    assert head.meta["mode"] == "prototypes"  # one photo: no linear cut-off can be calibrated yet
    queue = review_queue(library, "Rex")
    assert queue and all(item.face_id is None and abs(item.score - 0.5) <= 0.2 for item in queue)
    assert [item.doubt for item in queue] == sorted(item.doubt for item in queue)
    answer(library, queue[0], "yes")
    assert queue[0].photo_id in concept_members(library.db, head.meta["concept_id"])["photo_ids"]
    ops.undo(library)
    assert queue[0].photo_id not in concept_members(library.db, head.meta["concept_id"])["photo_ids"]


def test_the_other_people_named_are_negatives_of_a_person_head(alice):
    from tests.concepts.helpers import _at

    likely = _at(0.06, 5)  # within Alice's threshold...
    assert retrain_and_load(alice).model.verdicts(likely[None])[2][0]
    ops.name_cluster(alice.library, helpers.face_cluster(alice.library, [alice.faces["likely"]]), "Bob")
    head = retrain_and_load(alice)
    assert alice.faces["likely"] in head.meta["training"]["negative_face_ids"]
    assert not head.model.verdicts(likely[None])[2][0]  # ...but nearer Bob, whom the user named
    assert head.model.verdicts(_at(0.06, 7)[None])[2][0]  # a face as near Alice, not like Bob: still Alice


def retrain_and_load(alice):
    from myvlm_desktop.concepts.train import ensure_heads

    return ensure_heads(alice.library, ["Alice"], force=True)[0][alice.concept]

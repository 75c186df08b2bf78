"""The issue's check on a real group photo: insightface's t1.jpg (6 people) and its mirror, dlib faces.

Name one face "Alice" from the photo and its mirror; her head marks Alice, in both photos, and none of
the 5 others. Run for each of the six people in turn, so no face was picked because it happens to work.
"""

import numpy as np
import pytest

from myvlm_desktop.concepts.train import load_concept_head, train_concept_head
from myvlm_desktop.people import ops
from myvlm_desktop.pipeline.detect import detect_library
from tests.concepts import helpers

pytestmark = pytest.mark.slow


@pytest.fixture
def t1_library(t1_faces):
    _library, _photos, faces = t1_faces
    assert len(faces["t1"]) == len(faces["mirror"]) == 6, "dlib finds the six faces of t1.jpg"
    return t1_faces


@pytest.mark.parametrize("person", range(6))
def test_alice_named_from_photo_and_mirror_is_found_and_nobody_else(t1_library, person):
    library, photos, faces = t1_library
    # sorted left to right, so the mirror shows person i at position 5 - i
    alice = {"t1": faces["t1"][person], "mirror": faces["mirror"][5 - person]}
    ops.name_cluster(library, helpers.face_cluster(library, list(alice.values())), "Alice")
    concept_id = library.db.scalar("SELECT id FROM concepts WHERE name = 'Alice'")

    result = detect_library(library)

    assert result["marked"] == {"Alice": 2} and not result["problems"]
    assert helpers.head_rows(library, concept_id) == {photos["t1"]: alice["t1"], photos["mirror"]: alice["mirror"]}
    head = load_concept_head(library, concept_id)
    every_face = np.stack([f.embedding for side in (False, True) for f in helpers.t1_faces(side)])
    marked = [m.index for m in head.model.match(every_face) if m.present]
    assert marked == [person, 6 + 5 - person], "Alice's two faces, none of the other ten"


@pytest.mark.parametrize("person", range(6))
def test_a_head_from_one_photo_finds_her_in_the_unseen_mirror(t1_library, person):
    library, _photos, faces = t1_library
    ops.name_cluster(library, helpers.face_cluster(library, [faces["t1"][person]]), "Alice")
    head = train_concept_head(library, "Alice")
    mirrored = np.stack([f.embedding for f in helpers.t1_faces(True)])
    assert [m.index for m in head.model.match(mirrored) if m.present] == [5 - person]

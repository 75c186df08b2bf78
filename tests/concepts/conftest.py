import pytest

from tests.concepts import helpers


@pytest.fixture
def t1_faces(library, photo_dir):
    """insightface's t1.jpg and its mirror in a library, with dlib's faces: (library, photo ids, face ids)."""
    paths = helpers.save_t1(photo_dir)
    photos = helpers.add_photos(library, photo_dir)
    faces = {name: helpers.add_faces(library, photos[paths[name].name], helpers.t1_faces(name == "mirror"))
             for name in ("t1", "mirror")}
    return library, {k: photos[p.name] for k, p in paths.items()}, faces

"""Real photos: the 6 people of insightface's t1.jpg and a mirrored copy of it form 6 clusters of 2."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from myvlm_desktop.library.db import now, to_blob
from myvlm_desktop.people import ops
from myvlm_desktop.people.update import cluster_faces
from tests.conftest import insightface_image


def dlib_faces(rgb: np.ndarray):
    """(engine id, [(box, embedding)]): the app's dlib engine, or dlib itself where that is not built yet."""
    try:
        from myvlm_desktop.vision.faces import get_face_engine
    except ImportError:
        return _dlib_direct(rgb)
    engine = get_face_engine("dlib")
    return engine.engine_id, [(tuple(f.box), np.asarray(f.embedding, np.float32)) for f in engine.analyze(rgb)]


def _dlib_direct(rgb):
    import dlib
    import face_recognition_models

    models = Path(face_recognition_models.__file__).parent / "models"
    detector = dlib.get_frontal_face_detector()
    shapes = dlib.shape_predictor(str(models / "shape_predictor_5_face_landmarks.dat"))
    net = dlib.face_recognition_model_v1(str(models / "dlib_face_recognition_resnet_model_v1.dat"))
    faces = []
    for rect in detector(rgb, 1):
        vec = np.asarray(net.compute_face_descriptor(rgb, shapes(rgb, rect)), np.float32)
        faces.append(((rect.left(), rect.top(), rect.right(), rect.bottom()), vec / np.linalg.norm(vec)))
    return "dlib-19", faces


@pytest.mark.slow
def test_group_photo_and_its_mirror_make_six_pairs(library):
    rgb = np.asarray(Image.open(insightface_image("t1.jpg")).convert("RGB"))
    db = library.db
    for name, pixels in (("t1.jpg", rgb), ("t1-mirrored.jpg", np.ascontiguousarray(rgb[:, ::-1]))):
        engine, faces = dlib_faces(pixels)
        assert len(faces) == 6
        photo = db.write(lambda c, n=name: c.execute(
            "INSERT INTO photos(path, status, width, height, added_at, updated_at) VALUES (?, 'ok', ?, ?, ?, ?)",
            (f"/photos/{n}", rgb.shape[1], rgb.shape[0], now(), now())).lastrowid)
        db.write(lambda c, p=photo, e=engine, fs=faces: c.executemany(
            "INSERT INTO faces(photo_id, x1, y1, x2, y2, embedding, engine, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [(p, *map(float, box), to_blob(vec), e, now()) for box, vec in fs]))
    cluster_faces(db)
    clusters = ops.list_clusters(library, members=True)
    assert [c["size"] for c in clusters] == [2] * 6
    width = rgb.shape[1]
    for c in clusters:  # each pair: one face and its mirror image (boxes mirror around the middle)
        first, second = sorted(c["members"], key=lambda m: m["path"])
        assert {Path(first["path"]).name, Path(second["path"]).name} == {"t1.jpg", "t1-mirrored.jpg"}
        assert abs((first["box"][0] + first["box"][2]) / 2 - (width - (second["box"][0] + second["box"][2]) / 2)) < 20

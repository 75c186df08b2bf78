"""The insightface engine's own code, run through the insightface package on stand-in buffalo_l files
(the real weights cannot be downloaded here; see fake_buffalo.py)."""

import numpy as np
import pytest

from myvlm_desktop.vision.calibration import save_calibration
from myvlm_desktop.vision.faces import INSIGHTFACE_THRESHOLD, auto_choice, get_face_engine
from tests.vision.fake_buffalo import bright_squares, install

SQUARES = [(128, 96, 256, 224), (384, 256, 512, 384)]  # x1, y1, x2, y2 of bright_squares()


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    folder = tmp_path_factory.mktemp("models")
    install(folder)
    return folder


@pytest.fixture(scope="module")
def engine(models):
    return get_face_engine("insightface", models_dir=models)


def test_auto_prefers_insightface_when_its_weights_are_there_and_calibrated(models, engine):
    assert auto_choice(models)[0] == "dlib+mtcnn" and "uncalibrated" in auto_choice(models)[1]
    assert engine.threshold == INSIGHTFACE_THRESHOLD  # Immich's figure until measured here
    save_calibration("insightface-buffalo_l", 0.45, {}, models)
    assert auto_choice(models) == ("insightface", "insightface buffalo_l weights found, threshold calibrated")
    calibrated = get_face_engine("auto", models_dir=models)
    assert calibrated.engine_id == "insightface-buffalo_l" and calibrated.threshold == 0.45
    assert engine.engine_id == "insightface-buffalo_l" and engine.dim == 512 and engine.releases_gil


def test_detect_align_and_embed(engine):
    image = bright_squares()
    faces = engine.analyze(image)
    assert sorted(tuple(round(v) for v in f.box) for f in faces) == SQUARES  # one face per bright square
    for face in faces:
        x1, y1, x2, y2 = face.box
        assert face.landmarks.shape == (5, 2)
        assert ((face.landmarks[:, 0] > x1) & (face.landmarks[:, 0] < x2)).all()
        assert ((face.landmarks[:, 1] > y1) & (face.landmarks[:, 1] < y2)).all()
        assert face.embedding.shape == (512,) and abs(np.linalg.norm(face.embedding) - 1) < 1e-5
    vectors = engine.embed(image, engine.detect(image))
    assert np.allclose(vectors, np.stack([f.embedding for f in faces]), atol=1e-5)
    assert engine.analyze(np.full((200, 300, 3), 10, np.uint8)) == []


def test_the_index_uses_insightface_when_it_is_installed(library, photo_dir):
    from PIL import Image

    from myvlm_desktop import config
    from myvlm_desktop.library.db import now
    from myvlm_desktop.pipeline.index import index_library

    install(config.models_dir(library.root))
    save_calibration("insightface-buffalo_l", 0.5, {}, config.models_dir(library.root))
    Image.fromarray(bright_squares()).save(photo_dir / "squares.png")
    library.db.write(lambda c: c.execute(
        "INSERT INTO photos(path, width, height, status, added_at, updated_at) VALUES (?, 640, 480, 'ok', ?, ?)",
        (str(photo_dir / "squares.png"), now(), now())))
    result = index_library(library, workers=2)
    assert result["face_engine"] == "insightface-buffalo_l" and result["faces"] >= 2
    rows = library.db.query("SELECT engine, embedding FROM faces")
    assert {r["engine"] for r in rows} == {"insightface-buffalo_l"}
    assert all(len(r["embedding"]) == 512 * 4 for r in rows)

"""The dlib face engine on real photos that pip packages ship (insightface's t1.jpg, scikit-image's astronaut)."""

import threading

import numpy as np
import pytest
from skimage import data

from myvlm_desktop.imaging import load_array
from myvlm_desktop.models.errors import ModelUnavailable
from myvlm_desktop.vision.boxes import match_boxes
from myvlm_desktop.vision.calibration import calibrated_threshold, calibration_file, save_calibration
from myvlm_desktop.vision.faces import DLIB_THRESHOLD, FaceEngine, auto_choice, get_face_engine
from tests.conftest import insightface_image


@pytest.fixture(scope="module")
def engine():
    return get_face_engine("dlib")


@pytest.fixture(scope="module")
def group():
    return load_array(insightface_image("t1.jpg"))


@pytest.fixture(scope="module")
def group_faces(engine, group):
    return engine.analyze(group)


@pytest.mark.slow
def test_the_group_photo_has_six_different_people(engine, group, group_faces):
    assert len(group_faces) == 6
    vectors = np.stack([f.embedding for f in group_faces])
    assert vectors.shape == (6, engine.dim) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    distances = engine.distance(vectors, vectors)
    apart = distances[~np.eye(6, dtype=bool)]
    assert apart.min() > engine.threshold  # nobody is taken for somebody else
    h, w = group.shape[:2]
    for face in group_faces:
        x1, y1, x2, y2 = face.box
        assert 0 <= x1 < x2 <= w and 0 <= y1 < y2 <= h
        assert face.landmarks.shape == (5, 2)
        inside = (face.landmarks[:, 0] > x1 - 5) & (face.landmarks[:, 0] < x2 + 5)
        assert inside.all()


@pytest.mark.slow
def test_each_face_matches_its_own_mirror_image(engine, group, group_faces):
    mirrored = engine.analyze(np.ascontiguousarray(group[:, ::-1]))
    assert len(mirrored) == 6
    width = group.shape[1]
    flipped_back = [(width - f.box[2], f.box[1], width - f.box[0], f.box[3]) for f in mirrored]
    pairs = match_boxes([f.box for f in group_faces], flipped_back)
    assert len(pairs) == 6
    distances = engine.distance(np.stack([f.embedding for f in group_faces]),
                                np.stack([f.embedding for f in mirrored]))
    for i, j in pairs.items():
        assert distances[i, j] < engine.threshold
        assert distances[i, j] == distances[i].min()  # its own mirror is its nearest face


def test_the_astronaut_has_one_face(engine):
    faces = engine.analyze(data.astronaut())
    assert len(faces) == 1
    x1, y1, x2, y2 = faces[0].box
    assert 150 < x1 < x2 < 300 and 50 < y1 < y2 < 200  # her face, not the mission patch below it


def test_weak_detections_are_checked_by_the_cnn(engine):
    """The mission patch is a weak HOG hit that only the CNN check removes (face_recognition keeps it)."""
    unchecked = get_face_engine("dlib", verify_below=None)
    assert len(unchecked.analyze(data.astronaut())) == 2
    assert len(engine.analyze(data.astronaut())) == 1


def test_pictures_without_faces(engine):
    noise = np.random.default_rng(0).integers(0, 255, (300, 400, 3), dtype=np.uint8)
    assert engine.analyze(noise) == []
    assert engine.analyze(np.zeros((64, 64), np.uint8)) == []  # grey arrays are accepted
    assert engine.embed(noise, []).shape == (0, engine.dim)


def test_bad_arrays_get_a_clear_error(engine):
    with pytest.raises(ValueError, match="8-bit"):
        engine.analyze(np.zeros((10, 10, 3), np.float32))
    with pytest.raises(ValueError, match="HxWx3"):
        engine.analyze(np.zeros((10, 10, 2), np.uint8))


def test_threads_share_one_engine_safely(engine):
    image = data.astronaut()
    expected = [f.box for f in engine.analyze(image)]
    results = [None] * 3

    def work(i):
        results[i] = [f.box for f in engine.analyze(image)]

    threads = [threading.Thread(target=work, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [expected] * 3


def test_detect_and_embed_are_the_two_halves_of_analyze(engine):
    image = data.astronaut()
    detections = engine.detect(image)
    vectors = engine.embed(image, detections)
    faces = engine.analyze(image)
    assert [d.box for d in detections] == [f.box for f in faces]
    assert np.allclose(vectors, np.stack([f.embedding for f in faces]), atol=1e-6)


def test_engine_identity(engine):
    assert isinstance(engine, FaceEngine)
    assert engine.engine_id == f"{engine.name}-{engine.version}" == "dlib-resnet_v1"
    assert engine.dim == 128 and 0 < engine.threshold < 1
    assert get_face_engine("dlib") is engine  # loaded once, shared


def test_auto_uses_dlib_without_insightface_weights(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("INSIGHTFACE_HOME", raising=False)
    name, why = auto_choice(tmp_path / "models")
    assert name == "dlib+mtcnn" and "insightface" in why and "not found" in why  # MTCNN after HOG: see test_mtcnn
    assert get_face_engine("auto", models_dir=tmp_path / "models").name == "dlib"
    with pytest.raises(ModelUnavailable, match="myvlm models download insightface-buffalo_l"):
        get_face_engine("insightface", models_dir=tmp_path / "models")


def test_auto_falls_back_to_dlib_when_insightface_weights_are_damaged(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    folder = tmp_path / "models" / "buffalo_l"
    folder.mkdir(parents=True)
    for name in ("det_10g.onnx", "w600k_r50.onnx"):
        (folder / name).write_bytes(b"not an onnx model")
    save_calibration("insightface-buffalo_l", 0.4, {}, tmp_path / "models")
    assert auto_choice(tmp_path / "models")[0] == "insightface"
    with pytest.raises(ModelUnavailable, match="cannot load the weights"):
        get_face_engine("insightface", models_dir=tmp_path / "models")
    assert get_face_engine("auto", models_dir=tmp_path / "models").name == "dlib"


def test_auto_keeps_dlib_until_insightface_is_calibrated(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    models = tmp_path / "models"
    folder = models / "buffalo_l"
    folder.mkdir(parents=True)
    for name in ("det_10g.onnx", "w600k_r50.onnx"):
        (folder / name).write_bytes(b"weights")
    name, why = auto_choice(models)
    assert name == "dlib+mtcnn" and "uncalibrated" in why and "calibrate_faces.py" in why
    # a damaged, foreign or absurd calibration file leaves it uncalibrated
    path = calibration_file("insightface-buffalo_l", models)
    path.parent.mkdir(parents=True)
    for text in ("{not json", '{"engine": "dlib-resnet_v1", "threshold": 0.3}',
                 '{"engine": "insightface-buffalo_l", "threshold": -1}', '{"engine": "insightface-buffalo_l"}'):
        path.write_text(text)
        assert calibrated_threshold("insightface-buffalo_l", models) is None
        assert auto_choice(models)[0] == "dlib+mtcnn"
    with pytest.raises(ValueError, match="between 0 and 2"):
        save_calibration("insightface-buffalo_l", 3.0, {}, models)
    save_calibration("insightface-buffalo_l", 0.42, {"pairs": 10}, models)
    assert calibrated_threshold("insightface-buffalo_l", models) == 0.42
    assert auto_choice(models) == ("insightface", "insightface buffalo_l weights found, threshold calibrated")
    assert calibrated_threshold("dlib-resnet_v1", models) == DLIB_THRESHOLD  # measured here, built in


def test_unknown_engine():
    with pytest.raises(ModelUnavailable, match="unknown engine"):
        get_face_engine("opencv")


def test_the_cascade_asks_the_cnn_only_where_hog_found_nothing():
    from PIL import Image

    from myvlm_desktop.vision.faces import DlibEngine

    with pytest.raises(ValueError, match="hog, cnn, hog\\+cnn, mtcnn, hog\\+mtcnn"):
        DlibEngine(detector="opencv")
    hog, cascade = DlibEngine(detector="hog"), get_face_engine("dlib+cnn")
    assert cascade.detector == "hog+cnn" and cascade.engine_id == hog.engine_id  # same vectors: nothing to redo
    upright = data.astronaut()
    assert [d.box for d in cascade.detect(upright)] == [d.box for d in hog.detect(upright)]
    tilted = np.asarray(Image.fromarray(upright).rotate(50, resample=Image.Resampling.BILINEAR))
    assert hog.detect(tilted) == []  # HOG's upright template misses a head tilted this much
    (face,) = cascade.analyze(tilted)
    (upright_face,) = hog.detect(upright)
    # where the upright face's centre lands when the image turns 50 degrees anticlockwise about its centre
    c, s, (x, y) = np.cos(np.radians(50)), np.sin(np.radians(50)), np.reshape(upright_face.box, (2, 2)).mean(axis=0) - 256
    expected = (256 + x * c + y * s, 256 - x * s + y * c)
    found = np.reshape(face.box, (2, 2)).mean(axis=0)
    assert np.hypot(*(found - expected)) < 0.5 * (upright_face.box[2] - upright_face.box[0])  # her face
    assert face.embedding.shape == (128,)

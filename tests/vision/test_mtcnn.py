"""MTCNN (weights from the facenet-pytorch wheel) on photos pip packages ship: alone, and after HOG."""

import builtins
import importlib.util

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data

from myvlm_desktop.imaging import ImageError, load_array
from myvlm_desktop.models.errors import ModelUnavailable
from myvlm_desktop.vision import mtcnn
from myvlm_desktop.vision.boxes import iou, match_boxes
from myvlm_desktop.vision.faces import ENGINES, DlibEngine, get_face_engine
from tests.conftest import insightface_image


@pytest.fixture(scope="module")
def detector():
    return mtcnn.MTCNN()


@pytest.fixture(scope="module")
def engine():
    return DlibEngine(detector="mtcnn")


@pytest.fixture(scope="module")
def hog():
    return get_face_engine("dlib")


def test_the_astronaut_has_one_face_with_eyes_above_mouth(detector):
    boxes, scores, points = detector.detect(data.astronaut())
    assert boxes.shape == (1, 4) and scores[0] > 0.99 and points.shape == (1, 5, 2)
    (x1, y1, x2, y2), (left_eye, right_eye, nose, mouth_left, mouth_right) = boxes[0], points[0]
    assert 150 < x1 < x2 < 300 and 40 < y1 < y2 < 200  # her face, not the mission patch
    assert left_eye[0] < right_eye[0] and mouth_left[0] < mouth_right[0]
    assert max(left_eye[1], right_eye[1]) < nose[1] < min(mouth_left[1], mouth_right[1])


def test_the_group_photo_gives_the_six_faces_hog_finds_in_dlibs_box_shape(engine, hog):
    group = load_array(insightface_image("t1.jpg"))
    ours, theirs = engine.analyze(group), hog.analyze(group)
    assert len(ours) == len(theirs) == 6
    pairs = match_boxes([f.box for f in theirs], [f.box for f in ours])  # IoU > 0.5, as re-indexing matches
    assert len(pairs) == 6
    for i, j in pairs.items():  # same person, same vector space: decisions carry over between detectors
        assert engine.distance(theirs[i].embedding, ours[j].embedding) < engine.threshold


def test_photos_without_faces(engine):
    for image in (data.chelsea(), data.coffee(), data.rocket()):
        assert engine.analyze(image) == []
    noise = np.random.default_rng(0).integers(0, 255, (300, 400, 3), dtype=np.uint8)
    assert engine.analyze(noise) == []


def test_every_mtcnn_face_must_be_confirmed_by_dlibs_cnn(monkeypatch):
    """The rule that keeps cats and dogs out of people groups: a face the CNN does not confirm is dropped."""
    engine = DlibEngine(detector="mtcnn")
    assert len(engine.detect(data.astronaut())) == 1
    monkeypatch.setattr(engine, "_cnn", lambda image, upsample: [])
    assert engine.detect(data.astronaut()) == []


def test_the_cascade_runs_mtcnn_only_where_hog_found_nothing(hog, monkeypatch):
    cascade = get_face_engine("dlib+mtcnn")
    assert cascade.detector == "hog+mtcnn" and cascade.engine_id == hog.engine_id == "dlib-resnet_v1"
    upright = data.astronaut()
    asked = []
    monkeypatch.setattr(cascade, "_find_mtcnn", lambda rgb: asked.append(rgb) or [])
    assert [d.box for d in cascade.detect(upright)] == [d.box for d in hog.detect(upright)]
    assert asked == []
    monkeypatch.undo()
    tilted = np.asarray(Image.fromarray(upright).rotate(50, resample=Image.Resampling.BILINEAR))
    assert hog.detect(tilted) == []  # HOG's upright template misses a head tilted this much
    (face,) = cascade.analyze(tilted)
    (upright_face,) = hog.detect(upright)
    # where the upright face's centre lands when the image turns 50 degrees anticlockwise about its centre
    c, s = np.cos(np.radians(50)), np.sin(np.radians(50))
    x, y = np.reshape(upright_face.box, (2, 2)).mean(axis=0) - 256
    expected = (256 + x * c + y * s, 256 - x * s + y * c)
    found = np.reshape(face.box, (2, 2)).mean(axis=0)
    assert np.hypot(*(found - expected)) < 0.5 * (upright_face.box[2] - upright_face.box[0])


def test_weights_load_as_plain_tensors_only(tmp_path):
    """weights_only: a file that would run pickled code is refused with a message naming it."""
    good = mtcnn.weights_folder() / "pnet.pt"
    assert isinstance(torch.load(good, weights_only=True), dict)

    class Payload:
        def __reduce__(self):
            return (exec, ("import builtins; builtins.mtcnn_payload_ran = True",))

    hostile = tmp_path / "pnet.pt"
    torch.save({"conv1.weight": Payload()}, hostile)
    with pytest.raises(ModelUnavailable, match="pnet.pt"):
        mtcnn.load_net(mtcnn.PNet(), hostile)
    assert not hasattr(builtins, "mtcnn_payload_ran")  # refused before any code in it ran
    truncated = tmp_path / "onet.pt"
    truncated.write_bytes((mtcnn.weights_folder() / "onet.pt").read_bytes()[:1000])
    with pytest.raises(ModelUnavailable, match="onet.pt"):
        mtcnn.load_net(mtcnn.ONet(), truncated)


def test_without_facenet_pytorch_the_message_says_how_to_install_it(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ModelUnavailable, match="pip install --no-deps facenet-pytorch"):
        mtcnn.MTCNN()


def test_bad_input_gets_a_clear_error(engine, tmp_path):
    with pytest.raises(ValueError, match="8-bit"):
        engine.analyze(np.zeros((10, 10, 3), np.float32))
    broken = tmp_path / "broken.jpg"
    Image.fromarray(data.astronaut()).save(broken)
    broken.write_bytes(broken.read_bytes()[:300])
    with pytest.raises(ImageError):
        load_array(broken)


def test_nms_keeps_the_best_of_overlapping_boxes():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60], [0, 0, 4, 4]], np.float32)
    scores = np.array([0.8, 0.9, 0.7, 0.6], np.float32)
    assert mtcnn.nms(boxes, scores, 0.5).tolist() == [1, 2, 3]
    assert mtcnn.nms(boxes, scores, 0.5, by_min=True).tolist() == [1, 2]  # the small box lies inside the first
    assert iou(tuple(mtcnn.squared(boxes[:1] * [1, 1, 1, 2])[0]), (-5, 0, 15, 20)) > 0.99


def test_worker_processes_load_the_same_engine_by_its_setting():
    """The indexer's worker processes load the engine again by `setting`: a cascade must not become plain HOG."""
    assert {name: engine.setting for name, engine in ENGINES.items()} == {name: name for name in ENGINES}
    assert get_face_engine(get_face_engine("dlib+mtcnn").setting).detector == "hog+mtcnn"


def test_auto_takes_mtcnn_after_hog_and_plain_dlib_without_its_weights(tmp_path, monkeypatch):
    from myvlm_desktop.vision import faces

    monkeypatch.setenv("HOME", str(tmp_path))
    assert faces.auto_choice(tmp_path / "models")[0] == "dlib+mtcnn"
    assert get_face_engine("auto", models_dir=tmp_path / "models").detector == "hog+mtcnn"
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    assert faces.auto_choice(tmp_path / "models")[0] == "dlib"

"""`myvlm models list / download`, `doctor`, `faces PATH`: JSON out, clear messages and exit codes."""

import json

import pytest

from myvlm_desktop.cli import main
from myvlm_desktop.models import registry
from tests.conftest import insightface_image


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.insightface weights
    monkeypatch.delenv("INSIGHTFACE_HOME", raising=False)
    return str(tmp_path / "data")


def _json(capsys, *argv):
    code = main(list(argv))
    out = capsys.readouterr().out
    return code, json.loads(out) if code == 0 else out


def test_models_list_says_what_is_there_and_why_not(data_dir, capsys):
    code, rows = _json(capsys, "--data-dir", data_dir, "models", "list", "--json")
    assert code == 0
    by_name = {r["name"]: r for r in rows}
    assert by_name["dlib"]["available"] and by_name["sscd"]["available"]
    buffalo = by_name["insightface-buffalo_l"]
    assert buffalo["available"] is False and buffalo["path"] is None and buffalo["size"] == 288_621_354
    assert "weights not found" in buffalo["reason"]
    assert all({"name", "kind", "available", "path", "size"} <= set(r) for r in rows)


def test_models_download_fails_clearly_offline(data_dir, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert main(["--data-dir", data_dir, "models", "download", "HuggingFaceTB/SmolVLM-256M-Instruct"]) == 1
    err = capsys.readouterr().err
    assert "SmolVLM-256M-Instruct" in err and "HF_HUB_OFFLINE" in err and "Traceback" not in err


def test_models_download_of_the_insightface_zip_fails_clearly_offline(data_dir, capsys, monkeypatch):
    offline = [m if m.source != "url" else registry.ModelSpec(**{**m.__dict__, "urls": ("http://127.0.0.1:9/x.zip",)})
               for m in registry.MODELS]
    monkeypatch.setattr(registry, "MODELS", tuple(offline))
    assert main(["--data-dir", data_dir, "models", "download", "insightface"]) == 1
    err = capsys.readouterr().err
    assert "download failed" in err and "cannot connect" in err and "Traceback" not in err


def test_models_download_of_a_shipped_model_just_says_where_it_is(data_dir, capsys):
    assert main(["--data-dir", data_dir, "models", "download", "sscd"]) == 0
    assert "sscd_distilled.onnx" in capsys.readouterr().out


def test_models_download_of_an_unknown_name(data_dir, capsys):
    assert main(["--data-dir", data_dir, "models", "download", "gpt-5"]) == 2  # bad input
    assert "no model called 'gpt-5'; known: dlib" in capsys.readouterr().err


def test_doctor_says_clip_is_uncalibrated(data_dir, capsys):
    assert main(["--data-dir", data_dir, "doctor"]) == 0
    assert "clip not downloaded (uncalibrated" in capsys.readouterr().out


def test_doctor_says_which_face_engine_and_why(data_dir, capsys):
    code, report = _json(capsys, "--data-dir", data_dir, "doctor", "--json")
    assert code == 0
    assert report["face_engine"]["auto"] == "dlib+mtcnn"
    assert "insightface" in report["face_engine"]["reason"]
    assert report["face_engine"]["calibrated_thresholds"] == {"dlib-resnet_v1": 0.085, "insightface-buffalo_l": None}
    assert report["embedder"]["available"] is True
    assert report["embedder"]["clip"] == {"available": False, "calibrated_threshold": None}
    assert "CPUExecutionProvider" in report["onnxruntime"]["providers"]
    assert any(m["name"] == "insightface-buffalo_l" and not m["available"] for m in report["models"])


@pytest.mark.slow
def test_faces_of_a_photo_outside_the_library(data_dir, capsys):
    code, result = _json(capsys, "--data-dir", data_dir, "faces", str(insightface_image("t1.jpg")), "--json")
    assert code == 0
    assert result["stored"] is False and result["engine"] == "dlib-resnet_v1"
    assert len(result["faces"]) == 6
    assert all(len(f["box"]) == 4 and len(f["landmarks"]) == 5 for f in result["faces"])


def test_faces_of_something_that_is_not_a_photo(data_dir, capsys, tmp_path):
    bad = tmp_path / "notes.jpg"
    bad.write_text("not a photo")
    assert main(["--data-dir", data_dir, "faces", str(bad)]) == 2
    assert "not an image" in capsys.readouterr().err

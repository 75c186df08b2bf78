"""Hostile files wherever the app reads: a clear error, or a silent rebuild where that is safe; never a crash,
never a lost decision."""

import hashlib
import json
import struct

import numpy as np
import pytest
import torch
from safetensors.numpy import save as save_numpy

from myvlm_desktop.concepts.person import PersonHead
from myvlm_desktop.concepts.store import ConceptFileError, Head, load_head, save_head
from myvlm_desktop.library import scan as scanmod
from myvlm_desktop.library import thumbs
from myvlm_desktop.library.scan import scan_library
from myvlm_desktop.vlm.concept import ConceptFileError as VectorFileError
from myvlm_desktop.vlm.concept import ConceptVector, load_concept_vector, save_concept_vector
from tests.conftest import make_jpeg


def _head_with(folder, data: bytes):
    """A head whose JSON vouches for `data` (the SHA-256 matches), so only the tensors' own check can refuse it."""
    head = save_head(folder, Head(PersonHead(np.eye(4, dtype=np.float32)[:2], 0.5), {"concept_version": 1}))
    (folder / "head.safetensors").write_bytes(data)
    meta = dict(head.meta, tensors_sha256=hashlib.sha256(data).hexdigest())
    (folder / "head.json").write_text(json.dumps(meta))


HUGE_HEADER = struct.pack("<Q", 1 << 60) + b"{}"


@pytest.mark.parametrize("case, data, reason", [
    ("truncated", save_numpy({"keys": np.eye(4, dtype=np.float32), "negatives": np.zeros((0, 4), np.float32)})[:40],
     "not a safetensors file"),
    ("header 2^60", HUGE_HEADER, "not a safetensors file"),
    ("wrong dtype", save_numpy({"keys": np.eye(4, dtype=np.int64), "negatives": np.zeros((0, 4), np.float32)}),
     "int64 values, not floats"),
    ("NaN vectors", save_numpy({"keys": np.full((2, 4), np.nan, np.float32), "negatives": np.zeros((0, 4), np.float32)}),
     "NaN or infinite"),
])
def test_a_hostile_head_file_is_a_clear_error(tmp_path, case, data, reason):
    _head_with(tmp_path / "3", data)
    with pytest.raises(ConceptFileError, match=reason):
        load_head(tmp_path / "3")


def test_a_damaged_head_is_retrained_and_the_names_stay(tmp_path):
    from myvlm_desktop.concepts import train as heads
    from myvlm_desktop.library.store import Library

    with Library(tmp_path / "data") as lib:
        lib.db.write(lambda c: c.execute("INSERT INTO concepts(name, kind, identifier, created_at) "
                                         "VALUES ('Alice', 'person', '<Alice>', 0)"))
        concept_id = lib.db.scalar("SELECT id FROM concepts")
        _head_with(heads.head_folder(lib, concept_id), HUGE_HEADER)
        assert heads._saved_head(lib, concept_id) is None  # treated as "train it again", no crash
        assert lib.db.scalar("SELECT name FROM concepts") == "Alice"


def _vector_file(tmp_path):
    return save_concept_vector(tmp_path / "blip2.safetensors",
                               ConceptVector("Alice", "<Alice>", "person", torch.ones(8), "blip2", "tiny"))


@pytest.mark.parametrize("case", ["truncated", "header 2^60", "wrong dtype", "NaN vector", "JSON of wrong types"])
def test_a_hostile_concept_embedding_is_a_clear_error(tmp_path, case):
    from safetensors.torch import save

    path = _vector_file(tmp_path)
    if case == "truncated":
        path.write_bytes(path.read_bytes()[:30])
    elif case == "header 2^60":
        path.write_bytes(HUGE_HEADER)
    elif case == "wrong dtype":
        path.write_bytes(save({"vector": torch.ones(8, dtype=torch.int64)}))
    elif case == "NaN vector":
        path.write_bytes(save({"vector": torch.full((8,), float("nan"))}))
    else:
        meta = json.loads(path.with_suffix(".json").read_text())
        path.with_suffix(".json").write_text(json.dumps(dict(meta, name=7, kind=["person"])))
    with pytest.raises(VectorFileError):
        load_concept_vector(path)


@pytest.mark.parametrize("case", ["truncated", "header 2^60", "NaN moments", "samples of wrong types"])
def test_a_hostile_checkpoint_is_ignored_and_training_starts_again(tmp_path, case):
    from safetensors.torch import save

    from myvlm_desktop.pipeline.train import _read_checkpoint, _write_checkpoint

    path, key = tmp_path / "training" / "blip2.safetensors", {"concept_id": 1}
    info = {"key": key, "step": 2, "samples": [{"photo": 0, "prompt": "p", "target": "t"}]}
    _write_checkpoint(path, {"vector": torch.ones(8)}, info)
    assert _read_checkpoint(path, key) is not None
    if case == "truncated":
        path.write_bytes(path.read_bytes()[:50])
    elif case == "header 2^60":
        path.write_bytes(HUGE_HEADER)
    elif case == "NaN moments":
        path.write_bytes(save({"vector": torch.ones(8), "exp_avg": torch.full((8,), float("inf"))},
                              metadata={"info": json.dumps(info)}))
    else:
        path.write_bytes(save({"vector": torch.ones(8)}, metadata={"info": json.dumps(dict(info, samples=[3]))}))
    assert _read_checkpoint(path, key) is None


def test_settings_of_the_wrong_type_fall_back_to_the_defaults(tmp_path):
    from myvlm_desktop.library.store import Library
    from myvlm_desktop.pipeline.settings import DEFAULT_SETTINGS, load_settings, vlm_options

    with Library(tmp_path / "data") as lib:
        lib.db.write(lambda c: c.executemany("INSERT INTO settings(key, value) VALUES (?, ?)", [
            ("watch", '"yes"'), ("face_engine", "5"), ("device", '["cuda"]'), ("vlm_model", "{}"),
            ("vlm_backend", "null"), ("embedder", '"clip"'), ("note", "[1, 2]")]))
        settings = load_settings(lib.db)
        assert settings["embedder"] == "clip"  # the one sound value is kept
        for key in ("watch", "face_engine", "device", "vlm_model", "vlm_backend"):
            assert settings[key] == DEFAULT_SETTINGS[key], key
        assert vlm_options(settings) == {"backend": "smolvlm", "model": None, "device": "auto", "detail": "auto"}


def test_a_thumbnail_cache_entry_that_is_not_an_image_is_made_again(tmp_path, library):
    photo = make_jpeg(tmp_path / "photos" / "a.jpg", size=(200, 150), seed=3)
    library.add_folder(photo.parent)
    scan_library(library)
    content_hash = library.db.scalar("SELECT hash FROM photos")
    target = library.thumbnail_path(content_hash)
    target.write_bytes(b"<html>not an image</html>")
    assert thumbs.rebuild(library.thumbs, content_hash, str(photo)) == target
    assert thumbs.usable(target)
    target.write_bytes(b"\xff\xd8 half a jpeg")
    make_jpeg(photo, size=(200, 150), seed=4)  # the photo changed since: no thumbnail under the old name
    assert thumbs.rebuild(library.thumbs, content_hash, str(photo)) is None and not target.exists()


def test_a_photo_that_changes_while_it_is_hashed_is_read_again_and_keeps_its_names(tmp_path, library, monkeypatch):
    photo = make_jpeg(tmp_path / "photos" / "a.jpg", size=(200, 150), seed=3)
    library.add_folder(photo.parent)
    scan_library(library)
    photo_id, first_hash = library.db.query("SELECT id, hash FROM photos")[0]
    library.db.write(lambda c: c.execute("INSERT INTO concepts(name, kind, identifier, created_at) "
                                         "VALUES ('Alice', 'person', '<Alice>', 0)"))
    library.db.write(lambda c: c.execute("INSERT INTO occurrences(photo_id, concept_id, source, created_at) "
                                         "VALUES (?, 1, 'user', 0)", (photo_id,)))
    make_jpeg(photo, size=(200, 150), seed=5)  # edited...
    real_read = scanmod.read_file

    def read_while_written(path):
        data = real_read(path)
        make_jpeg(photo, size=(210, 150), seed=6)  # ...and written to again while the scan reads it
        return data

    monkeypatch.setattr(scanmod, "read_file", read_while_written)
    scan_library(library)
    assert library.db.scalar("SELECT hash FROM photos") == first_hash  # nothing half-read was stored
    monkeypatch.setattr(scanmod, "read_file", real_read)
    scan_library(library)
    row = library.db.query("SELECT id, hash, width, status FROM photos")[0]
    assert (row["id"], row["width"], row["status"]) == (photo_id, 210, "ok")
    assert row["hash"] == hashlib.blake2b(photo.read_bytes(), digest_size=16).hexdigest()
    assert library.db.scalar("SELECT count(*) FROM occurrences WHERE photo_id = ?", (photo_id,)) == 1

"""Heads on disk: safetensors + JSON, identical decisions after reloading, clear errors for damaged files."""

import json

import numpy as np
import pytest

from myvlm_desktop.concepts.linear import LinearHead
from myvlm_desktop.concepts.person import PersonHead
from myvlm_desktop.concepts.store import META_FILE, TENSORS_FILE, ConceptFileError, Head, load_head, save_head


def _person():
    rng = np.random.default_rng(0)
    return PersonHead(rng.normal(size=(3, 128)), 0.4, negatives=rng.normal(size=(2, 128)))


def _linear():
    rng = np.random.default_rng(1)
    return LinearHead(rng.normal(size=(2, 64)).astype(np.float32), rng.normal(size=2).astype(np.float32))


@pytest.mark.parametrize("make", [_person, _linear])
def test_a_saved_head_reloads_to_identical_decisions(tmp_path, make):
    head = save_head(tmp_path, Head(make(), {"concept_version": 4, "engine": "x-1"}))
    loaded = load_head(tmp_path)
    assert loaded.kind == head.kind and loaded.meta == head.meta
    assert loaded.version.startswith("v4-")
    probe = np.random.default_rng(2).normal(size=(50, head.model.dim))
    if head.kind == "person":
        assert loaded.model.match(probe) == head.model.match(probe)
        assert np.array_equal(loaded.model.negatives, head.model.negatives)
    else:
        assert np.array_equal(loaded.model.probabilities(probe), head.model.probabilities(probe))
    assert json.loads((tmp_path / META_FILE).read_text())["kind"] == head.kind
    assert not list(tmp_path.glob("*.tmp"))


def test_no_head_yet_is_none(tmp_path):
    assert load_head(tmp_path / "7") is None


def _saved(tmp_path):
    save_head(tmp_path, Head(_person(), {"concept_version": 1}))
    return tmp_path / TENSORS_FILE, tmp_path / META_FILE


def test_truncated_tensors_file_fails_naming_it(tmp_path):
    tensors, _ = _saved(tmp_path)
    tensors.write_bytes(tensors.read_bytes()[:100])
    with pytest.raises(ConceptFileError, match="head.safetensors") as err:
        load_head(tmp_path)
    assert err.value.path == tensors


def test_a_file_that_is_not_safetensors_fails_naming_it(tmp_path):
    tensors, meta = _saved(tmp_path)
    import hashlib
    junk = b"PK\x03\x04 this is a zip, or a pickle, or anything else"
    tensors.write_bytes(junk)
    # even with a JSON that vouches for these bytes, they are not read as anything but safetensors
    description = json.loads(meta.read_text()) | {"tensors_sha256": hashlib.sha256(junk).hexdigest()}
    meta.write_text(json.dumps(description))
    with pytest.raises(ConceptFileError, match="not a safetensors file") as err:
        load_head(tmp_path)
    assert err.value.path == tensors


@pytest.mark.parametrize("content", [b'{"format": "myvlm-concept-he', b"\x80\x81 not text", b"[1, 2]", b""])
def test_a_description_that_is_not_json_fails_naming_it(tmp_path, content):
    _, meta = _saved(tmp_path)
    meta.write_bytes(content)
    with pytest.raises(ConceptFileError, match="head.json"):
        load_head(tmp_path)


def test_a_half_written_pair_fails_clearly(tmp_path):
    tensors, _meta = _saved(tmp_path)
    tensors.unlink()
    with pytest.raises(ConceptFileError, match="missing"):
        load_head(tmp_path)


def test_tensors_of_the_wrong_shape_fail(tmp_path):
    save_head(tmp_path, Head(LinearHead(np.zeros((3, 8), np.float32), np.zeros(3, np.float32)), {}))
    with pytest.raises(ConceptFileError, match="two-class"):
        load_head(tmp_path)

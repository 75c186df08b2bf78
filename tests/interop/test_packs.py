"""Concept packs: export, import into another library, engines that differ, and hostile packs."""

import json
import os
import stat
import struct
import subprocess
import sys
import zipfile

import numpy as np
import pytest
import torch
from safetensors.numpy import save as save_tensors

from myvlm_desktop import config
from myvlm_desktop.concepts.person import PersonHead
from myvlm_desktop.concepts.store import Head, load_head, save_head
from myvlm_desktop.interop import pack
from myvlm_desktop.library.scan import scan_library
from myvlm_desktop.library.store import Library
from myvlm_desktop.people import ops
from myvlm_desktop.vlm.backends import BACKENDS
from myvlm_desktop.vlm.concept import ConceptVector, load_concept_vector, save_concept_vector
from tests.conftest import make_jpeg

ENGINE = "dlib-resnet_v1"


def _unit(n, dim, seed):
    v = np.random.default_rng(seed).normal(size=(n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


@pytest.fixture
def rex(library, photo_dir):
    """A library with a person "Rex" that has a head, a SmolVLM concept embedding and 3 photos."""
    for i in range(3):
        make_jpeg(photo_dir / f"r{i}.jpg", seed=i)
    library.add_folder(photo_dir)
    scan_library(library)
    ids = [r["id"] for r in library.db.query("SELECT id FROM photos")]
    concept = ops.create_concept_from_photos(library, "Rex", "person", ids)
    folder = config.concepts_dir(library.root) / str(concept["id"])
    save_head(folder, Head(PersonHead(_unit(5, 128, 1), 0.085, _unit(3, 128, 2)),
                           {"engine": ENGINE, "concept_version": 1}))
    save_concept_vector(folder / "smolvlm.safetensors",
                        ConceptVector("Rex", "<Rex>", "person", torch.arange(64, dtype=torch.float32), "smolvlm",
                                      "HuggingFaceTB/SmolVLM-256M-Instruct"), revision="abc123")
    return library, concept


@pytest.fixture
def other(tmp_path):
    lib = Library(tmp_path / "other")
    yield lib
    lib.close()


def _state(library):
    files = sorted(str(p.relative_to(library.root)) for p in config.concepts_dir(library.root).rglob("*"))
    return library.db.query("SELECT count(*) FROM concepts")[0][0], files


def test_known_backends_are_the_apps():
    assert set(pack.KNOWN_BACKENDS) == set(BACKENDS)


def test_export_and_import_into_another_library(rex, other, tmp_path):
    library, concept = rex
    out = pack.export_concept(library, "rex", tmp_path / "rex.myvlm")
    assert out["bytes"] == os.path.getsize(tmp_path / "rex.myvlm")
    with zipfile.ZipFile(tmp_path / "rex.myvlm") as zf:
        manifest = json.loads(zf.read("manifest.json"))
        assert sorted(zf.namelist()) == ["embedding-smolvlm.safetensors", "head.safetensors", "manifest.json",
                                         "thumbs/0.jpg", "thumbs/1.jpg", "thumbs/2.jpg"]
    assert manifest["schema_version"] == 1 and manifest["head"]["engine"] == ENGINE
    assert manifest["embeddings"][0] == {"file": "embedding-smolvlm.safetensors", "backend": "smolvlm",
                                         "model": "HuggingFaceTB/SmolVLM-256M-Instruct", "revision": "abc123",
                                         "dim": 64}
    result = pack.import_pack(other, tmp_path / "rex.myvlm", face_engines={ENGINE})
    assert result["not_installed"] == [] and len(result["installed"]) == 2 and result["thumbnails"] == 3
    folder = config.concepts_dir(other.root) / str(result["id"])
    head = load_head(folder)
    original = load_head(config.concepts_dir(library.root) / str(concept["id"]))
    assert np.array_equal(head.model.keys, original.model.keys) and head.meta["concept_version"] == 1
    vector = load_concept_vector(folder / "smolvlm.safetensors")
    assert torch.equal(vector.vector, torch.arange(64, dtype=torch.float32)) and vector.identifier == "<Rex>"
    assert other.db.query("SELECT name, kind FROM concepts")[0][:] == ("Rex", "person")
    ops.undo(other)
    assert other.db.query("SELECT count(*) FROM concepts")[0][0] == 0


def test_a_pack_for_another_engine_installs_what_fits(rex, other, tmp_path):
    library, _ = rex
    pack.export_concept(library, "Rex", tmp_path / "rex.myvlm")
    _rewrite(tmp_path / "rex.myvlm", {"embedding-qwen.safetensors": save_tensors({"vector": np.ones(8, np.float32)})},
             lambda m: m["embeddings"].append({"file": "embedding-qwen.safetensors", "backend": "qwen", "dim": 8}))
    result = pack.import_pack(other, tmp_path / "rex.myvlm", face_engines={"insightface-buffalo_l"})
    assert result["installed"] == ["embedding (smolvlm, HuggingFaceTB/SmolVLM-256M-Instruct)"]
    assert any("made with dlib-resnet_v1" in s for s in result["not_installed"])
    assert any("'qwen'" in s for s in result["not_installed"])


def test_a_taken_name_changes_nothing(rex, tmp_path):
    library, _ = rex
    pack.export_concept(library, "Rex", tmp_path / "rex.myvlm")
    before = _state(library)
    with pytest.raises(pack.PackError, match="exists already"):
        pack.import_pack(library, tmp_path / "rex.myvlm")
    assert _state(library) == before
    assert pack.import_pack(library, tmp_path / "rex.myvlm", name="Rex 2")["concept"] == "Rex 2"


# -- hostile packs ------------------------------------------------------------------------------------------
def _rewrite(path, changes: dict, patch=None, extra_infos=()):
    """Rewrite a pack with members replaced (bytes), removed (None) or added, and the manifest patched."""
    with zipfile.ZipFile(path) as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    manifest = json.loads(members["manifest.json"])
    if patch:
        patch(manifest)
    members["manifest.json"] = json.dumps(manifest).encode()
    for name, data in changes.items():
        if data is None:
            members.pop(name, None)
        else:
            members[name] = data
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
        for info, data in extra_infos:
            zf.writestr(info, data)


def _symlink(name):
    info = zipfile.ZipInfo(name)
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return info


def _big_header(_):
    return struct.pack("<Q", 8 << 30) + b"{}" + bytes(64)


HOSTILE = {
    "zip-slip": ({"../../evil.txt": b"x"}, None, "outside the pack"),
    "absolute path": ({"/tmp/evil.txt": b"x"}, None, "absolute path"),
    "symlink": ({}, None, "symbolic link"),
    "zip bomb": ({"head.safetensors": bytes(100 << 20)}, None, "too large"),
    "header claiming gigabytes": ({"head.safetensors": _big_header(0)}, None, "header claims"),
    "wrong dtype": ({"head.safetensors": save_tensors({"keys": np.ones((2, 128)), "negatives": np.ones((1, 128))})},
                    None, "not float32"),
    "wrong shape": ({"head.safetensors": save_tensors({"keys": np.ones((2, 128), np.float32),
                                                       "negatives": np.ones((1, 64), np.float32)})},
                    None, "do not fit"),
    "embedding of another size": ({}, lambda m: m["embeddings"][0].update(dim=65), "vector of 65 values"),
    "NaN in a tensor": ({"embedding-smolvlm.safetensors": save_tensors({"vector": np.full(64, np.nan, np.float32)})},
                        None, "NaN"),
    "missing file": ({"head.safetensors": None}, None, "missing head.safetensors"),
    "extra file": ({"thumbs/7.jpg": b"\xff\xd8\xff"}, None, "extra thumbs/7.jpg"),
    "unexpected file": ({"run.py": b"import os"}, None, "unexpected file"),
    "newer schema": ({}, lambda m: m.update(schema_version=99), "newer"),
    "not a pack": ({}, lambda m: m.update(format="something-else"), "another format"),
    "not a thumbnail": ({"thumbs/0.jpg": b"GIF89a"}, None, "not a JPEG"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_packs_change_nothing(rex, other, tmp_path, case):
    library, _ = rex
    path = tmp_path / "bad.myvlm"
    pack.export_concept(library, "Rex", path)
    changes, patch, message = HOSTILE[case]
    _rewrite(path, changes, patch, [(_symlink("thumbs/6.jpg"), "/etc/passwd")] if case == "symlink" else ())
    before = _state(other)
    with pytest.raises(pack.PackError, match=message):
        pack.import_pack(other, path, face_engines={ENGINE})
    assert _state(other) == before
    assert not (tmp_path / "evil.txt").exists() and not (tmp_path.parent / "evil.txt").exists()


def test_not_a_zip_is_a_clear_error(other, tmp_path):
    (tmp_path / "x.myvlm").write_bytes(b"PK\x03\x04 not really")
    with pytest.raises(pack.PackError, match="not a zip"):
        pack.read_pack(tmp_path / "x.myvlm")


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "myvlm_desktop.cli", *map(str, args)], capture_output=True,
                          text=True, check=False)


def test_cli_export_then_import_and_a_bad_pack_exits_2(rex, tmp_path):
    library, _ = rex
    out = _cli("--data-dir", library.root, "concept", "export", "Rex", "-o", tmp_path / "rex.myvlm")
    assert out.returncode == 0, out.stderr
    assert "head, smolvlm, 3 thumbnails" in out.stdout
    out = _cli("--data-dir", tmp_path / "fresh", "concept", "import", tmp_path / "rex.myvlm")
    assert out.returncode == 0 and out.stdout.startswith("installed Rex (person): head"), out.stderr
    (tmp_path / "bad.myvlm").write_bytes(b"nonsense")
    out = _cli("--data-dir", tmp_path / "fresh", "concept", "import", tmp_path / "bad.myvlm")
    assert out.returncode == 2 and "not a zip file" in out.stderr and out.stderr.count("\n") == 1


def test_export_takes_a_name_or_an_id_and_import_a_name_that_looks_like_an_id(rex, tmp_path):
    library, concept = rex
    out = pack.export_concept(library, str(concept["id"]), tmp_path / "by_id.myvlm")
    assert out["name"] == "Rex"
    result = pack.import_pack(library, tmp_path / "by_id.myvlm", name=str(concept["id"]))
    assert result["concept"] == str(concept["id"]) and result["id"] != concept["id"]

"""The command line of the built bundle, run as a user runs it: `make package` runs this file on dist/.

    python -m pytest -q packaging/test_frozen.py      (MYVLM_BUNDLE=folder to test another bundle)

It needs a built bundle, so it lives here rather than under tests/ (which `make test` collects): a missing
bundle is a failure, never a skip. The photos are the sample photos the bundle itself carries, and their
mirror images (the same faces twice, so clusters must form).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from PIL import Image, ImageOps

ROOT = Path(__file__).resolve().parents[1]
BUNDLE = Path(os.environ.get("MYVLM_BUNDLE", ROOT / "dist" / "myvlm-desktop"))
EXE = ".exe" if os.name == "nt" else ""
SAMPLES = BUNDLE / "_internal" / "myvlm_desktop_sample"


def myvlm(data_dir: Path, *args: str) -> subprocess.CompletedProcess:
    assert (BUNDLE / f"myvlm{EXE}").is_file(), f"no frozen myvlm in {BUNDLE}: build it with `make package`"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    env.pop("PYTHONPATH", None)  # the frozen app must find everything inside the bundle
    return subprocess.run([str(BUNDLE / f"myvlm{EXE}"), "--data-dir", str(data_dir), *args], check=False,
                          capture_output=True, text=True, env=env, timeout=600)


def ok(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 0, f"{result.args[3:]} exited {result.returncode}:\n{result.stderr[-2000:]}"
    return result.stdout


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("photos")
    samples = sorted(SAMPLES.iterdir()) if SAMPLES.is_dir() else []
    assert samples, f"the bundle carries no sample photos in {SAMPLES}"
    for photo in samples:
        image = Image.open(photo).convert("RGB")
        image.save(folder / f"{photo.stem}.jpg", quality=92)
        ImageOps.mirror(image).save(folder / f"{photo.stem}_mirrored.jpg", quality=92)
    return folder


@pytest.mark.slow
def test_frozen_cli_builds_a_library_and_answers_a_question_about_it(photos, tmp_path):
    data = tmp_path / "data"
    ok(myvlm(data, "add-folder", str(photos)))
    scanned = json.loads(ok(myvlm(data, "scan", "--json")))
    assert scanned["indexed"] == len(list(photos.iterdir())), scanned
    ok(myvlm(data, "index"))
    status = json.loads(ok(myvlm(data, "status", "--json")))
    assert status["faces"] >= 2, status
    clustered = json.loads(ok(myvlm(data, "cluster", "--json")))
    assert clustered["faces"]["new_clusters"] >= 1, clustered
    people = json.loads(ok(myvlm(data, "people", "--json")))
    pair = next((c for c in people if c["cluster_kind"] == "face" and c["size"] == 2), None)
    assert pair is not None, f"no face found with its mirrored twin: {people}"
    ok(myvlm(data, "name", str(pair["id"]), "Alice", "--kind", "person"))
    answer = json.loads(ok(myvlm(data, "ask", "--library", "How many photos of <Alice>?", "--json")))
    assert "2" in answer["answer"], answer
    assert any("2" in f["text"] for f in answer["facts"]), answer


@pytest.mark.slow
def test_frozen_cli_rejects_bad_input_with_one_line(tmp_path):
    result = myvlm(tmp_path / "data", "add-folder", str(tmp_path / "no such folder"))
    assert result.returncode == 2 and "not a folder" in result.stderr and "Traceback" not in result.stderr
    result = myvlm(tmp_path / "data", "ask", "--library", "   ", "--json")
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr

"""The CLI contract other tools rely on: --data-dir, JSON shapes, exit codes."""

import json
import os
import subprocess
import sys

from tests.conftest import make_jpeg


def myvlm(*args, data_dir=None, env=None):
    command = [sys.executable, "-m", "myvlm_desktop.cli"] + (["--data-dir", str(data_dir)] if data_dir else [])
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(command + list(args), capture_output=True, text=True, env=full_env, timeout=120, check=False)


def test_add_scan_status_errors_search(tmp_path):
    photos, data = tmp_path / "photos", tmp_path / "data"
    make_jpeg(photos / "Paris 2019" / "eiffel.jpg", seed=1)
    make_jpeg(photos / "rome.jpg", seed=2)
    (photos / "broken.jpg").write_bytes(b"\xff\xd8\xff garbage")
    assert myvlm("add-folder", str(photos), data_dir=data).returncode == 0
    assert myvlm("scan", data_dir=data).returncode == 0
    status = json.loads(myvlm("status", "--json", data_dir=data).stdout)
    assert set(status) == {"photos", "errors", "missing", "offline", "faces", "clusters", "concepts", "captions"}
    assert (status["photos"], status["errors"], status["missing"]) == (2, 1, 0)
    errors = json.loads(myvlm("errors", "--json", data_dir=data).stdout)
    assert [os.path.basename(e["path"]) for e in errors] == ["broken.jpg"] and errors[0]["reason"]
    hits = json.loads(myvlm("search", "paris", "--json", data_dir=data).stdout)
    assert [os.path.basename(h["path"]) for h in hits] == ["eiffel.jpg"] and set(hits[0]) == {"path", "score"}


def test_data_dir_from_the_environment(tmp_path):
    photos = tmp_path / "photos"
    make_jpeg(photos / "a.jpg")
    env = {"MYVLM_DATA_DIR": str(tmp_path / "envdata")}
    assert myvlm("add-folder", str(photos), env=env).returncode == 0
    assert (tmp_path / "envdata" / "library.sqlite3").exists()


def test_malformed_query_exits_2_with_a_message_not_a_traceback(tmp_path):
    result = myvlm("search", "(beach AND", "--json", data_dir=tmp_path / "data")
    assert result.returncode == 2
    assert "bad query" in result.stderr and "Traceback" not in result.stderr


def test_missing_folder_and_empty_library_are_clear_errors(tmp_path):
    result = myvlm("add-folder", str(tmp_path / "nope"), data_dir=tmp_path / "data")
    assert result.returncode == 2 and "not a folder" in result.stderr and "Traceback" not in result.stderr
    result = myvlm("scan", data_dir=tmp_path / "data")
    assert result.returncode == 2 and "add-folder" in result.stderr

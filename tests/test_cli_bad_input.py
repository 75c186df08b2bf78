"""Bad input on the command line: one clear line and exit code 2, before any model is loaded; nothing lost."""

import json
import os
import subprocess
import sys

import pytest

from myvlm_desktop.cli import main
from myvlm_desktop.library.store import Library
from myvlm_desktop.people import ops
from myvlm_desktop.pipeline.questions import ask_library
from tests.conftest import make_jpeg


def cli(capsys, *args) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


@pytest.fixture
def scanned(tmp_path, capsys):
    """A library with two good photos and a corrupt one, scanned."""
    photos, data = tmp_path / "photos", tmp_path / "data"
    make_jpeg(photos / "good.jpg", seed=1)
    make_jpeg(photos / "other.jpg", seed=2)
    (photos / "corrupt.jpg").write_bytes(b"\xff\xd8\xff not a jpeg")
    assert main(["--data-dir", str(data), "add-folder", str(photos)]) == 0
    assert main(["--data-dir", str(data), "scan"]) == 0
    capsys.readouterr()
    return data, photos


@pytest.mark.parametrize("command", [["doctor", "--json"], ["errors", "--json"]])
def test_a_closed_pipe_ends_the_command_quietly(scanned, command):
    """`myvlm doctor --json | head -1`: the reader went away; no traceback."""
    data, _ = scanned
    process = subprocess.Popen([sys.executable, "-m", "myvlm_desktop.cli", "--data-dir", str(data), *command],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    process.stdout.close()  # before a byte is read: every write meets a closed pipe
    err = process.stderr.read().decode()
    process.stderr.close()
    assert process.wait(timeout=120) in (0, 141) and err == ""


def test_a_concept_from_an_unreadable_photo_is_refused(scanned, capsys):
    data, photos = scanned
    code, _, err = cli(capsys, "--data-dir", str(data), "concept", "create", "Rex", "--kind", "pet",
                       str(photos / "good.jpg"), str(photos / "corrupt.jpg"))
    line = one_line(err)
    assert code == 2 and "corrupt.jpg" in line and "cannot be used" in line
    reason = Library(data)
    try:
        assert reason.photo_by_path(photos / "corrupt.jpg")["error"] in line
        assert reason.db.scalar("SELECT count(*) FROM concepts") == 0  # nothing half-made
    finally:
        reason.close()


@pytest.mark.parametrize("args, message", [
    (["index", "--face-engine", "bogus"], "invalid choice: 'bogus'"),
    (["index", "--embedder", "resnet"], "invalid choice: 'resnet'"),
    (["index", "--workers", "-1"], "--workers: must be a whole number of at least 1, not -1"),
    (["index", "--workers", "0"], "--workers: must be a whole number of at least 1, not 0"),
    (["search", "x", "--limit", "-5"], "--limit: must be a whole number of at least 1, not -5"),
])
def test_bad_options_exit_2(tmp_path, capsys, args, message):
    with pytest.raises(SystemExit) as stop:
        main(["--data-dir", str(tmp_path / "data"), *args])
    assert stop.value.code == 2 and message in capsys.readouterr().err


def test_the_choices_offered_are_the_engines_there_are():
    from myvlm_desktop.cli import people, perception
    from myvlm_desktop.vision import embed, faces

    assert ("auto", *faces.ENGINES) == perception.FACE_ENGINES
    assert tuple(embed.EMBEDDERS) == perception.EMBEDDERS
    assert ops.KINDS == people.KINDS


def test_an_unknown_model_is_bad_input_and_the_known_names_are_listed(tmp_path, capsys):
    code, _, err = cli(capsys, "--data-dir", str(tmp_path / "data"), "models", "download", "nosuchmodel")
    line = one_line(err)
    assert code == 2 and "no model called 'nosuchmodel'" in line and "sscd" in line and "dlib" in line


def test_faces_of_a_missing_file(tmp_path, capsys):
    code, _, err = cli(capsys, "--data-dir", str(tmp_path / "data"), "faces", "/no/such/photo.jpg")
    assert code == 2 and one_line(err) == "myvlm: no such file: /no/such/photo.jpg"


def test_a_data_dir_that_is_a_file(tmp_path, capsys):
    path = tmp_path / "notes.txt"
    path.write_text("not a folder")
    for command in (["status"], ["models", "list"]):
        code, _, err = cli(capsys, "--data-dir", str(path), *command)
        assert code == 2 and one_line(err) == f"myvlm: --data-dir {path} is a file, not a folder"
    assert path.read_text() == "not a folder"


def test_a_new_library_is_announced(tmp_path, capsys):
    data = tmp_path / "mistyped"
    code, _, err = cli(capsys, "--data-dir", str(data), "status")
    assert code == 0 and one_line(err) == f"myvlm: no library at {data}: creating a new one"
    code, _, err = cli(capsys, "--data-dir", str(data), "status")
    assert code == 0 and err == ""  # it exists now


def test_a_negative_cluster_id(tmp_path, capsys):
    Library(tmp_path / "data").close()
    code, _, err = cli(capsys, "--data-dir", str(tmp_path / "data"), "merge", "-1", "2")
    line = one_line(err)
    assert code == 2 and "not a cluster id: -1" in line and "myvlm people" in line


def test_undo_and_redo_say_what_they_did(tmp_path, capsys):
    lib = Library(tmp_path / "data")
    photo = lib.db.write(lambda c: c.execute(
        "INSERT INTO photos(path, status, width, height, added_at, updated_at) VALUES ('/p/a.jpg', 'ok', 9, 9, 0, 0)"
    ).lastrowid)
    ops.create_concept_from_photos(lib.db, "Rex", "pet", [photo])
    lib.close()
    data = str(tmp_path / "data")
    assert cli(capsys, "--data-dir", data, "rename", "Rex", "Max")[0] == 0
    code, out, _ = cli(capsys, "--data-dir", data, "undo")
    assert code == 0 and out.startswith("undid: ") and "Max" in out
    code, out, _ = cli(capsys, "--data-dir", data, "redo")
    assert code == 0 and out.startswith("redid: ") and "Max" in out


def test_a_query_too_long(scanned, capsys):
    data, _ = scanned
    code, _, err = cli(capsys, "--data-dir", str(data), "search", " ".join(["word"] * 20000))
    line = one_line(err)
    assert code == 2 and "query too long: 20000 terms" in line
    code, out, _ = cli(capsys, "--data-dir", str(data), "search", " OR ".join(["good"] * 100), "--json")
    assert code == 0 and [os.path.basename(h["path"]) for h in json.loads(out)] == ["good.jpg"]


def test_concept_names_fold_unicode_case(scanned, capsys):
    data, photos = scanned
    assert cli(capsys, "--data-dir", str(data), "concept", "create", "Rëx 🐶", "--kind", "pet",
               str(photos / "good.jpg"))[0] == 0
    for query in ('@"RËX 🐶"', '@"rëx 🐶"', '@"Rëx 🐶"'):
        code, out, err = cli(capsys, "--data-dir", str(data), "search", query, "--json")
        assert code == 0, err
        assert [os.path.basename(h["path"]) for h in json.loads(out)] == ["good.jpg"]
    lib = Library(data)
    try:  # a question names it with a combining diaeresis, in capitals
        assert ask_library(lib, "How many photos of <RE\u0308X 🐶>?", use_model=False)["concepts"] == ["<Rëx 🐶>"]
    finally:
        lib.close()
    code, _, err = cli(capsys, "--data-dir", str(data), "concept", "create", "RËX 🐶", "--kind", "object",
                       str(photos / "other.jpg"))
    assert code == 2 and "is a pet" in err  # the same name, whatever its case: not a second concept

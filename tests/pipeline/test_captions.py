"""The caption job and per-photo captions / answers, with a tiny random SmolVLM (Idefics3) saved with
save_pretrained and loaded through the real loader: every photo captioned and searchable, re-running does no
work, a retrained concept re-captions only its photos, cancel / resume, and a kill loses nothing."""

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from myvlm_desktop.cli import main as cli
from myvlm_desktop.library.db import now
from myvlm_desktop.library.search import search
from myvlm_desktop.library.text import update_photo_text
from myvlm_desktop.pipeline.captions import caption_job, caption_library, vector_path
from myvlm_desktop.pipeline.jobs import JobQueue
from myvlm_desktop.vlm.concept import ConceptVector, save_concept_vector
from myvlm_desktop.vlm.generate import load_backend
from myvlm_desktop.vlm.testing import save_tiny_model
from tests.conftest import make_jpeg

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]
IN_PHOTO = {1: ["Alice"], 2: ["Alice", "Rex"], 3: ["Rex"], 4: []}
CONCEPTS = {"Alice": (1, "person"), "Rex": (2, "pet")}


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """A tiny model's steps are too small to share between threads; on a busy test machine they thrash."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tiny_vlm(tmp_path_factory) -> Path:
    return save_tiny_model("smolvlm", tmp_path_factory.mktemp("tiny-smolvlm"))


@pytest.fixture(scope="session")
def backend(tiny_vlm):
    return load_backend("smolvlm", str(tiny_vlm), "cpu")


@pytest.fixture
def lib(library, photo_dir, backend):
    """Four photos (Alice in 1 and 2, Rex in 2 and 3, no one in 4) with trained concept embeddings."""
    paths = {pid: make_jpeg(photo_dir / f"photo{pid}.jpg", seed=pid) for pid in IN_PHOTO}

    def fill(conn):
        for name, (cid, kind) in CONCEPTS.items():
            conn.execute("INSERT INTO concepts(id, name, kind, identifier, created_at) VALUES (?, ?, ?, ?, 0)",
                         (cid, name, kind, f"<{name}>"))
        for pid, names in IN_PHOTO.items():
            conn.execute("INSERT INTO photos(id, path, date, status, added_at, updated_at) "
                         "VALUES (?, ?, ?, 'ok', ?, ?)", (pid, str(paths[pid]), f"2024-0{pid}-01", now(), now()))
            for name in names:
                conn.execute("INSERT INTO occurrences(photo_id, concept_id, source, created_at) "
                             "VALUES (?, ?, 'head', 0)", (pid, CONCEPTS[name][0]))
            update_photo_text(conn, pid)

    library.db.write(fill)
    for name in CONCEPTS:
        train_vector(library, backend, name, seed=1)
    return library


def train_vector(library, backend, name, seed):
    """Stands in for training: a concept embedding file written the way training writes it."""
    cid, kind = CONCEPTS[name]
    torch.manual_seed(seed * 10 + cid)
    vector = ConceptVector(name, f"<{name}>", kind, torch.randn(backend.concept_dim), backend.name, backend.model_id)
    save_concept_vector(vector_path(library.root, cid, backend.name), vector)


def captions(library) -> dict[int, list]:
    found: dict[int, list] = {}
    for row in library.db.query("SELECT * FROM captions ORDER BY created_at, id"):
        found.setdefault(row["photo_id"], []).append(row)
    return found


def a_word(text: str) -> str | None:
    """A word the FTS tokenizer keeps whole (random models write odd characters around their words)."""
    words = re.findall(r"(?<![^\W_])[A-Za-z]{3,}(?![^\W_])", text)
    return words[0] if words else None


def test_caption_job_captions_every_photo_and_search_finds_them(lib, backend, capsys):
    assert caption_library(lib, backend) == {"captioned": 4, "up_to_date": 0, "errors": 0}
    rows = {pid: r[-1] for pid, r in captions(lib).items()}
    assert sorted(rows) == [1, 2, 3, 4]
    for pid, row in rows.items():
        assert row["backend"] == "smolvlm" and row["model"] == backend.model_id
        assert json.loads(row["concepts"]) == IN_PHOTO[pid]  # the concepts whose tokens the VLM saw
        assert sorted(json.loads(row["concept_versions"])) == sorted(str(CONCEPTS[n][0]) for n in IN_PHOTO[pid])
    searched = 0
    for pid, row in rows.items():
        word = a_word(row["text"])
        if word is None:
            continue
        assert pid in {h["photo_id"] for h in search(lib.db, word)}
        if IN_PHOTO[pid]:
            assert pid in {h["photo_id"] for h in search(lib.db, f"{word} @{IN_PHOTO[pid][0]}")}
        searched += 1
    assert searched >= 2, "the tiny model's captions should hold some plain words"
    assert {h["photo_id"] for h in search(lib.db, "Rex")} == {2, 3}  # concept names are words too
    word = next(w for w in (a_word(rows[pid]["text"]) for pid in (1, 2)) if w)
    assert cli(["--data-dir", str(lib.root), "search", f"{word} @Alice", "--json"]) == 0
    found = {r["path"] for r in json.loads(capsys.readouterr().out)}
    assert found and found <= {lib.photo(1)["path"], lib.photo(2)["path"]}
    assert caption_library(lib, backend) == {"captioned": 0, "up_to_date": 4, "errors": 0}  # nothing to do


def test_retraining_a_concept_recaptions_only_its_photos(lib, backend):
    caption_library(lib, backend)
    first = {pid: r[-1]["id"] for pid, r in captions(lib).items()}
    lib.db.write(lambda c: c.execute("UPDATE concepts SET version = version + 1 WHERE name = 'Rex'"))
    assert caption_library(lib, backend)["captioned"] == 2
    after = captions(lib)
    assert {pid for pid, r in after.items() if len(r) == 2} == {2, 3}  # old captions kept
    assert after[1][-1]["id"] == first[1] and after[4][-1]["id"] == first[4]
    assert json.loads(after[3][-1]["concept_versions"])["2"].startswith("v2:")

    train_vector(lib, backend, "Alice", seed=2)  # the embedding retrained, the version unchanged
    assert caption_library(lib, backend, concepts=[1]) == {"captioned": 2, "up_to_date": 0, "errors": 0}
    assert {pid: len(r) for pid, r in captions(lib).items()} == {1: 2, 2: 3, 3: 2, 4: 1}
    newest = lib.db.scalar("SELECT captions FROM photo_text WHERE rowid = 1")
    assert newest == captions(lib)[1][-1]["text"]  # the newest caption is the one searched and shown
    assert caption_library(lib, backend)["captioned"] == 0


def test_another_model_recaptions(lib, backend, tiny_vlm, tmp_path):
    caption_library(lib, backend, photo_ids=[1])
    copy = tmp_path / "other-model"
    copy.mkdir()
    for part in tiny_vlm.iterdir():
        (copy / part.name).write_bytes(part.read_bytes())
    other = load_backend("smolvlm", str(copy), "cpu")
    assert caption_library(lib, other, photo_ids=[1])["captioned"] == 1
    assert [r["model"] for r in captions(lib)[1]] == [backend.model_id, str(copy)]


def test_caption_job_cancels_and_resumes(lib, tiny_vlm):
    lib.db.write(lambda c: c.executemany("INSERT INTO settings(key, value) VALUES (?, ?)",
                                         [("vlm_model", json.dumps(str(tiny_vlm))), ("device", '"cpu"')]))
    queue = JobQueue(lib.db, kinds={"caption": caption_job(lib)})
    queue.subscribe(lambda s: s.done >= 2 and queue.jobs[s.id].cancel())
    first = queue.submit("caption")
    assert first.wait(120).state == "cancelled"
    assert len(captions(lib)) == 2
    second = JobQueue(lib.db, kinds={"caption": caption_job(lib)}).submit("caption")
    status = second.wait(120)
    assert status.state == "done" and status.result == {"captioned": 2, "up_to_date": 2, "errors": 0}
    assert {pid: len(r) for pid, r in captions(lib).items()} == {1: 1, 2: 1, 3: 1, 4: 1}


KILLED_RUN = textwrap.dedent("""
    import sys, time
    import torch
    from myvlm_desktop.library.store import Library
    from myvlm_desktop.pipeline.captions import caption_library
    from myvlm_desktop.vlm.generate import load_backend

    class Report:
        def progress(self, done, total, message=""):
            print(done, flush=True)  # `done` photos are committed
            time.sleep(0.5)  # slow enough that the kill lands in the middle

    torch.set_num_threads(1)
    caption_library(Library(sys.argv[1]), load_backend("smolvlm", sys.argv[2], "cpu"), Report())
""")


def test_a_kill_during_the_job_loses_nothing(lib, backend, tiny_vlm):
    child = subprocess.Popen([sys.executable, "-c", KILLED_RUN, str(lib.root), str(tiny_vlm)], cwd=REPO,
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        for line in child.stdout:
            if int(line) >= 2:
                break
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.wait(30)
    assert child.returncode == -signal.SIGKILL
    assert lib.db.scalar("PRAGMA integrity_check") == "ok"
    done = captions(lib)
    assert 2 <= len(done) < 4 and all(len(r) == 1 for r in done.values())
    for pid, rows in done.items():  # caption and search row were one transaction
        assert lib.db.scalar("SELECT captions FROM photo_text WHERE rowid = ?", (pid,)) == rows[0]["text"]
    result = caption_library(lib, backend)
    assert result == {"captioned": 4 - len(done), "up_to_date": len(done), "errors": 0}


def test_cli_caption_and_ask_a_photo(lib, tiny_vlm, capsys):
    path = lib.photo(2)["path"]
    base = ["--data-dir", str(lib.root)]
    model = ["--model", str(tiny_vlm), "--device", "cpu", "--json"]
    assert cli([*base, "caption", path, *model]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) == {"caption", "concepts", "backend"} and out["concepts"] == ["Alice", "Rex"]
    assert out["backend"] == "smolvlm" and captions(lib)[2][-1]["text"] == out["caption"]

    assert cli([*base, "ask", path, "What is <Rex> holding?", *model]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) == {"answer", "concepts", "backend"} and out["concepts"] == ["Alice", "Rex"]
    stored = lib.db.read().execute("SELECT * FROM answers WHERE photo_id = 2").fetchone()
    assert stored["question"] == "What is <Rex> holding?" and stored["answer"] == out["answer"]
    assert {h["photo_id"] for h in search(lib.db, "holding")} == {2}  # questions are searchable

    assert cli([*base, "caption", "--all", *model]) == 0
    assert json.loads(capsys.readouterr().out) == {"captioned": 3, "up_to_date": 1, "errors": 0}


def test_cli_without_vlm_weights_says_so_and_fails(lib, capsys):
    path = lib.photo(1)["path"]
    base = ["--data-dir", str(lib.root)]
    assert cli([*base, "caption", path, "--model", "nobody/no-such-vlm"]) == 1
    assert "nobody/no-such-vlm: weights not found" in capsys.readouterr().err
    assert cli([*base, "ask", path, "Who is this?", "--model", "nobody/no-such-vlm"]) == 1
    assert "weights not found" in capsys.readouterr().err
    assert not captions(lib)


def test_cli_checks_the_input_before_the_model(lib, capsys):
    """A missing file or an empty question is bad input (exit 2), even when no VLM is installed."""
    base = ["--data-dir", str(lib.root), "--model", "nobody/no-such-vlm"]
    for args in (["caption", "/no/such/photo.jpg"], ["ask", "/no/such/photo.jpg", "Who is this?"]):
        assert cli([base[0], base[1], *args, *base[2:]]) == 2
        assert capsys.readouterr().err.strip() == "myvlm: no such file: /no/such/photo.jpg"
    assert cli([base[0], base[1], "ask", lib.photo(1)["path"], " ", *base[2:]]) == 2
    assert "ask a question" in capsys.readouterr().err
    assert not captions(lib)


def test_the_caption_job_leaves_a_core_to_the_window_and_puts_the_threads_back(lib, tiny_vlm, monkeypatch):
    from myvlm_desktop.pipeline import captions as pipeline_captions

    lib.db.write(lambda c: c.executemany("INSERT INTO settings(key, value) VALUES (?, ?)",
                                         [("vlm_model", json.dumps(str(tiny_vlm))), ("device", '"cpu"')]))
    seen = []
    monkeypatch.setattr(pipeline_captions, "caption_library", lambda *a, **k: seen.append(torch.get_num_threads()) or {})
    torch.set_num_threads(4)
    try:
        caption_job(lib)(None)  # the control only reaches caption_library
        assert seen == [max(1, os.cpu_count() - 1)]
        assert torch.get_num_threads() == 4
    finally:
        torch.set_num_threads(1)

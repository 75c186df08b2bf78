"""The concept-embedding training job: from the library's concept and photos to a vector file; resumable."""

from __future__ import annotations

import json

import pytest
import torch

from myvlm_desktop import config
from myvlm_desktop.cli import main as cli
from myvlm_desktop.library.db import now
from myvlm_desktop.library.scan import scan_library
from myvlm_desktop.people import ops
from myvlm_desktop.pipeline import train
from myvlm_desktop.pipeline.jobs import JobQueue
from myvlm_desktop.vlm.concept import load_concept_vector
from tests.vlm.helpers import photo

STEPS = 30  # checkpoints at 0 and 25


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def tiny_smolvlm(tmp_path_factory):
    from myvlm_desktop.vlm.testing import save_tiny_model

    return save_tiny_model("smolvlm", tmp_path_factory.mktemp("tiny") / "smolvlm")


@pytest.fixture(scope="module")
def backend(tiny_smolvlm):
    from myvlm_desktop.vlm.generate import load_backend

    return load_backend("smolvlm", str(tiny_smolvlm), device="cpu", dtype=torch.float32)


@pytest.fixture
def eileen(library, photo_dir):
    """A library with three photos of Eileen Collins (skimage's astronaut) named as a concept, and two others."""
    astronaut = photo("astronaut")
    for name, image in {"eileen1.jpg": astronaut, "eileen2.jpg": astronaut.crop((50, 0, 512, 460)),
                        "eileen3.jpg": astronaut.crop((0, 30, 480, 512)), "coffee.jpg": photo("coffee"),
                        "cat.jpg": photo("chelsea")}.items():
        image.save(photo_dir / name, quality=90)
    library.add_folder(photo_dir)
    scan_library(library)
    ids = [r["id"] for r in library.db.query("SELECT id FROM photos WHERE path LIKE '%eileen%' ORDER BY path")]

    def cluster(conn):
        cid = conn.execute("INSERT INTO clusters(kind, created_at) VALUES ('image', ?)", (now(),)).lastrowid
        conn.executemany("INSERT INTO cluster_photos(cluster_id, photo_id) VALUES (?, ?)", [(cid, i) for i in ids])
        return cid

    ops.name_cluster(library, library.db.write(cluster), "Eileen", kind="person")
    return library, library.db.scalar("SELECT id FROM concepts WHERE name = 'Eileen'")


def run_job(library, backend, concept_id, force=False, on_update=None):
    queue = JobQueue(library.db)
    if on_update:
        queue.subscribe(on_update)
    job = queue.submit(train.KIND, {"concept": concept_id, "steps": STEPS, "force": force},
                       fn=train.train_job(library, loaded=backend))
    return job, job.wait(120)


@pytest.mark.slow
def test_the_job_trains_and_writes_the_vector_with_its_facts(eileen, backend):
    library, concept_id = eileen
    assert len(train.training_photo_ids(library, concept_id)) == 3
    steps_seen = []
    job, status = run_job(library, backend, concept_id, on_update=lambda s: steps_seen.append(s.done))
    assert status.state == "done", status.error
    path = train.vector_path(library, concept_id, "smolvlm")
    assert status.result["path"] == str(path)
    vector = load_concept_vector(path)
    assert (vector.name, vector.identifier, vector.backend) == ("Eileen", "<Eileen>", "smolvlm")
    assert vector.vector.shape == (backend.concept_dim,) and vector.model == backend.model_id
    meta = json.loads(path.with_suffix(".json").read_text())
    assert meta["steps"] == STEPS and len(meta["loss_history"]) == STEPS and meta["concept_version"] == 1
    captions = [t["text"] for t in meta["targets"] if t["kind"] == "caption"]
    assert len(meta["photos"]) == 3 and len(captions) == 3 and all("<Eileen>" in t for t in captions)
    assert steps_seen == sorted(steps_seen) and max(steps_seen) == STEPS
    assert not train.checkpoint_path(library, concept_id, "smolvlm").exists()
    _, again = run_job(library, backend, concept_id)
    assert again.result["skipped"] == "up to date"
    assert json.loads(library.db.scalar("SELECT params FROM jobs WHERE id = ?", (job.status.id,)))["concept"] == concept_id


@pytest.mark.slow
def test_a_cancelled_job_resumes_after_a_restart_and_ends_where_an_uninterrupted_one_does(eileen, backend):
    library, concept_id = eileen
    run_job(library, backend, concept_id)
    uninterrupted = load_concept_vector(train.vector_path(library, concept_id, "smolvlm")).vector

    queue = JobQueue(library.db)
    job = queue.submit(train.KIND, {"concept": concept_id, "steps": STEPS, "force": True},
                       fn=train.train_job(library, loaded=backend))
    queue.subscribe(lambda s: job.cancel() if s.done >= 27 and s.id == job.status.id else None)
    assert job.wait(120).state == "cancelled"
    checkpoint = train.checkpoint_path(library, concept_id, "smolvlm")
    assert checkpoint.exists()
    saved = json.loads(library.db.scalar("SELECT checkpoint FROM jobs WHERE id = ?", (job.status.id,)))
    assert saved["step"] == 25

    # the app quits while it runs: the job row is put back in the queue, and the next start resumes it
    library.db.write(lambda c: c.execute("UPDATE jobs SET state = 'queued' WHERE id = ?", (job.status.id,)))
    restarted = JobQueue(library.db, kinds={train.KIND: train.train_job(library, loaded=backend)})
    seen = []
    restarted.subscribe(lambda s: seen.append(s.done))
    (resumed,) = restarted.resume_unfinished()
    assert resumed.wait(120).state == "done", resumed.status.error
    assert min(d for d in seen if d) == 25  # it went on from the checkpoint, not from step 0
    final = load_concept_vector(train.vector_path(library, concept_id, "smolvlm"))
    assert torch.equal(final.vector, uninterrupted)
    assert len(final.meta["loss_history"]) == STEPS and not checkpoint.exists()


def test_cli_train_without_weights_fails_with_the_model_managers_message(eileen, monkeypatch, tmp_path, capsys):
    from huggingface_hub import constants

    library, _ = eileen
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    code = cli(["--data-dir", str(library.root), "train", "Eileen"])
    err = capsys.readouterr().err
    assert code == 1
    assert "HuggingFaceTB/SmolVLM-256M-Instruct" in err and "myvlm models download" in err
    assert "looked in" in err and "Traceback" not in err
    assert not (config.concepts_dir(library.root) / "1" / "smolvlm.safetensors").exists()


def test_cli_train_refuses_unknown_concepts_and_concepts_without_photos(eileen, capsys):
    library, _ = eileen
    assert cli(["--data-dir", str(library.root), "train", "Nobody"]) == 2
    assert "no concept named 'Nobody'" in capsys.readouterr().err
    library.db.write(lambda c: c.execute("INSERT INTO concepts(name, kind, identifier, created_at) "
                                         "VALUES ('Rex', 'pet', '<Rex>', ?)", (now(),)))
    assert cli(["--data-dir", str(library.root), "train", "<Rex>"]) == 2
    assert "Rex has no photos yet" in capsys.readouterr().err


@pytest.mark.slow
def test_cli_trains_with_a_local_model_folder(eileen, tiny_smolvlm, capsys):
    library, concept_id = eileen
    code = cli(["--data-dir", str(library.root), "train", "eileen", "--model", str(tiny_smolvlm), "--steps", "3",
                "--device", "cpu", "--json"])
    out = capsys.readouterr()
    assert code == 0, out.err
    assert json.loads(out.out)["path"] == str(train.vector_path(library, concept_id, "smolvlm"))
    assert "3/3" in out.err

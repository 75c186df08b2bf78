"""One VLM per process, found through the library's own data folder by every stage that needs it."""

from __future__ import annotations

import shutil
import threading
import time

import pytest
import torch

from myvlm_desktop import config
from myvlm_desktop.library.store import Library
from myvlm_desktop.models.errors import ModelUnavailable
from myvlm_desktop.pipeline import captions, shared_vlm, train
from myvlm_desktop.pipeline.jobs import JobQueue
from tests.pipeline.test_train_job import eileen  # noqa: F401 - the fixture
from tests.vlm.helpers import photo

SMOLVLM = "HuggingFaceTB/SmolVLM-256M-Instruct"


@pytest.fixture(autouse=True)
def fresh_process_vlm(monkeypatch, tmp_path):
    """No VLM loaded yet; the default data folder and the HF cache are empty places elsewhere."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    monkeypatch.setenv(config.ENV_DATA_DIR, str(tmp_path / "default-data"))
    monkeypatch.setattr(shared_vlm, "loads", 0)
    torch.set_num_threads(1)
    shared_vlm.release()
    yield
    shared_vlm.release()


@pytest.fixture(scope="module")
def tiny_smolvlm(tmp_path_factory):
    from myvlm_desktop.vlm.testing import save_tiny_model

    return save_tiny_model("smolvlm", tmp_path_factory.mktemp("tiny") / "smolvlm")


def install(tiny, library: Library):
    """The model as `Choose folder` or a copy from another computer leaves it: in the library's models folder."""
    target = config.models_dir(library.root) / SMOLVLM.replace("/", "--")
    shutil.copytree(tiny, target)
    return target


def test_every_stage_looks_in_the_librarys_models_folder(library, tiny_smolvlm):
    with pytest.raises(ModelUnavailable, match=str(config.models_dir(library.root))):
        captions.shared_backend(**captions.library_vlm_options(library))
    install(tiny_smolvlm, library)
    assert captions.library_vlm_options(library)["models_dir"] == config.models_dir(library.root)
    backend = captions.shared_backend(**captions.library_vlm_options(library))
    assert backend.name == "smolvlm" and backend.model_id == SMOLVLM
    other = Library(config.data_dir())  # the default data folder has no models: nothing found there
    try:
        with pytest.raises(ModelUnavailable):
            shared_vlm.backend("smolvlm", None, "cpu", config.models_dir(other.root))
    finally:
        other.close()


@pytest.mark.slow
def test_training_captions_and_questions_share_one_model(eileen, tiny_smolvlm):  # noqa: F811
    library, concept_id = eileen
    install(tiny_smolvlm, library)
    queue = JobQueue(library.db)
    status = queue.submit(train.KIND, {"concept": concept_id, "steps": 3, "device": "cpu"},
                          fn=train.train_job(library)).wait(300)
    assert status.state == "done", status.error
    trained = shared_vlm.backend("smolvlm", None, "cpu", config.models_dir(library.root))
    status = queue.submit("caption", {}, fn=captions.caption_job(library)).wait(300)
    assert status.state == "done", status.error
    photo_id = library.db.scalar("SELECT id FROM photos ORDER BY id LIMIT 1")
    captions.answer_photo(library, photo_id, "What is <Eileen> doing?",
                          captions.shared_backend(**captions.library_vlm_options(library)))
    assert shared_vlm.loads == 1
    assert captions.shared_backend(**captions.library_vlm_options(library)) is trained


def test_the_lane_lets_one_user_of_the_model_run_at_a_time():
    order = []

    def user(name):
        with shared_vlm.lane():
            order.append(f"{name} in")
            time.sleep(0.05)
            order.append(f"{name} out")

    threads = [threading.Thread(target=user, args=(n,)) for n in ("train", "caption", "chat")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(order[i].endswith("in") and order[i + 1].endswith("out") and order[i][:-3] == order[i + 1][:-4]
               for i in range(0, 6, 2))


def test_a_question_waits_one_training_step_not_the_whole_run(tiny_smolvlm):
    from myvlm_desktop.vlm.generate import load_backend
    from myvlm_desktop.vlm.train import ConceptTrainer, Sample, TrainSettings

    backend = load_backend("smolvlm", str(tiny_smolvlm), device="cpu", dtype=torch.float32)
    image = photo("astronaut")
    samples = [Sample(0, backend.caption_prompt(["<A>"]), "<A> on a beach")]
    trainer = ConceptTrainer(backend, [image], samples, TrainSettings(steps=6, views=1, batch_size=1,
                                                                      regularise=False))
    steps_before_answer = []

    def ask():
        time.sleep(0.01)
        with shared_vlm.lane():
            steps_before_answer.append(trainer.step)

    asker = threading.Thread(target=ask)
    asker.start()
    trainer.run(on_step=lambda step, loss: time.sleep(0.05), lane=shared_vlm.lane)
    asker.join()
    assert steps_before_answer and steps_before_answer[0] < 6

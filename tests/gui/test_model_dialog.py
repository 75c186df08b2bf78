"""The missing-model dialog: what, how big, from where, what for; Download / Choose folder / Not now."""

from __future__ import annotations

import shutil

import pytest
import skimage.data
from PIL import Image
from PySide6.QtCore import Qt

from myvlm_desktop.gui.model_dialog import MissingModelDialog
from myvlm_desktop.models import download, lookup, registry
from myvlm_desktop.pipeline.settings import save_settings
from tests.gui.conftest import make_photos, wait_jobs
from tests.models.conftest import hub, hub_repos  # noqa: F401 - the local Hub fixtures

SMOLVLM = "HuggingFaceTB/SmolVLM-256M-Instruct"


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    from myvlm_desktop.vlm.testing import save_tiny_model

    return save_tiny_model("smolvlm", tmp_path_factory.mktemp("saved") / "smolvlm", width=32)


def test_the_dialog_says_what_how_big_from_where_and_what_for(app, qtbot, tmp_path):
    dialog = MissingModelDialog(registry.spec(SMOLVLM), "Captions that name your people.", tmp_path)
    qtbot.addWidget(dialog)
    text = " ".join(label.text() for label in dialog.findChildren(type(dialog.message)))
    for expected in ("Captions that name your people.", "513.0 MB", "huggingface.co/HuggingFaceTB/SmolVLM-256M",
                     "Apache-2.0"):
        assert expected in text
    assert {b.text() for b in (dialog.download_button, dialog.folder_button, dialog.later_button)} == {
        "Download", "Choose folder…", "Not now"}


def test_offline_it_says_so_in_one_sentence_and_offers_a_folder(app, qtbot, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    dialog = MissingModelDialog(registry.spec(SMOLVLM), "Captions.", tmp_path)
    qtbot.addWidget(dialog)
    assert "cannot reach" in dialog.message.text() and "Choose folder" in dialog.message.text()
    assert dialog.message.text().count(". ") == 0  # one sentence


def test_choose_folder_checks_the_folder_then_installs_it(app, qtbot, tmp_path, saved):
    broken = shutil.copytree(saved, tmp_path / "broken")
    (broken / "model.safetensors").unlink()
    dialog = MissingModelDialog(registry.spec(SMOLVLM), "Captions.", tmp_path / "models")
    qtbot.addWidget(dialog)
    dialog.use_folder(str(broken))
    qtbot.waitUntil(lambda: "cannot be used" in dialog.message.text())
    assert "no weights" in dialog.message.text() and not (tmp_path / "models").exists()
    with qtbot.waitSignal(dialog.ready, timeout=30000):
        dialog.use_folder(str(saved))
    assert lookup.locate(registry.spec(SMOLVLM), tmp_path / "models").is_dir()


def test_a_cancelled_download_can_be_resumed(app, qtbot, hub, tmp_path, monkeypatch):  # noqa: F811
    monkeypatch.setattr(download, "CHUNK", 64 * 1024)  # progress every 64 KB of the 2 MB weights
    hub.state.pace["model.safetensors"] = 0.05  # a slow link (about 1.6 s for the weights): Cancel lands mid-file
    dialog = MissingModelDialog(registry.spec(SMOLVLM), "Captions.", tmp_path / "models")
    qtbot.addWidget(dialog)
    dialog.show()
    dialog.download()
    assert dialog.cancel_button.isVisible()
    qtbot.waitUntil(lambda: dialog.bar.maximum() == 1000 and dialog.bar.value() > 0, timeout=30000)
    qtbot.mouseClick(dialog.cancel_button, Qt.MouseButton.LeftButton)  # as the user does
    qtbot.waitUntil(lambda: dialog.download_button.text() == "Resume download", timeout=30000)
    hub.state.pace.clear()
    weights = hub.state.repos[SMOLVLM].files["model.safetensors"]
    (part,) = (tmp_path / "models" / download.PARTIAL_DIR).glob("*.part")  # the weights, cut by the cancel
    kept = part.stat().st_size
    assert 0 < kept < len(weights)
    with qtbot.waitSignal(dialog.ready, timeout=60000):
        qtbot.mouseClick(dialog.download_button, Qt.MouseButton.LeftButton)
    folder = lookup.locate(registry.spec(SMOLVLM))
    assert (folder / "model.safetensors").read_bytes() == weights
    gets = [(h.range, h.status) for h in hub.state.log if h.method == "GET" and h.path.endswith("model.safetensors")]
    assert (f"bytes={kept}-", 206) in gets  # resumed where the cancel left it


@pytest.mark.slow
def test_missing_model_then_download_then_training_then_the_caption_in_the_viewer(window, session, qtbot,
                                                                                   tmp_path, hub):  # noqa: F811
    folder = tmp_path / "photos"
    folder.mkdir()
    for name, image in {"astronaut.jpg": skimage.data.astronaut(), "coffee.jpg": skimage.data.coffee()}.items():
        Image.fromarray(image).resize((128, 128)).save(folder / name, quality=90)
    window.add_folders([str(folder)])
    wait_jobs(qtbot, session)
    photos = [row[0] for row in session.db.query("SELECT id FROM photos ORDER BY path")]  # astronaut, coffee
    session.people.op("create_concept_from_photos", "Eileen", "person", photos[:1])
    session.settings.update(save_settings(session.db, {"vlm_backend": "smolvlm", "device": "cpu"}))
    window.show_page("concepts")
    page = window.concept_page
    qtbot.waitUntil(lambda: page.concept is not None and page.concept["name"] == "Eileen")

    qtbot.mouseClick(page.train_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: page.findChild(MissingModelDialog) is not None, timeout=30000)
    dialog = page.findChild(MissingModelDialog)
    assert "Eileen" in " ".join(label.text() for label in dialog.findChildren(type(dialog.message)))
    assert not page.train_jobs  # training waits for the model
    qtbot.mouseClick(dialog.download_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: bool(page.train_jobs), timeout=60000)  # the download ends: training starts by itself
    job = session.jobs.jobs[next(iter(page.train_jobs))]
    qtbot.waitUntil(lambda: job.status.state == "done", timeout=300000)
    caption = lambda: session.db.scalar("SELECT text FROM captions WHERE photo_id = ?", (photos[0],))  # noqa: E731
    qtbot.waitUntil(lambda: caption() is not None, timeout=120000)  # its photos are captioned after training
    window.open_photo(photos[0])
    qtbot.waitUntil(lambda: window.viewer.caption.text() != "", timeout=30000)
    assert "<Eileen>" in caption(), caption()  # the trained vector makes the served model write her identifier
    assert "<Eileen>" in window.viewer.caption.text(), window.viewer.caption.text()


def test_process_without_a_vlm_offers_it_once_instead_of_a_log_line(window, session, qtbot, tmp_path):
    window.add_folders([str(make_photos(tmp_path / "photos", 2, size=(64, 64)))])
    qtbot.waitUntil(lambda: window.findChild(MissingModelDialog) is not None, timeout=60000)
    dialog = window.findChild(MissingModelDialog)
    assert "Captions for every photo" in " ".join(label.text() for label in dialog.findChildren(type(dialog.message)))
    qtbot.mouseClick(dialog.later_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.findChild(MissingModelDialog) is None)
    wait_jobs(qtbot, session)
    window.process_all()
    qtbot.wait(200)
    wait_jobs(qtbot, session)
    assert window.findChild(MissingModelDialog) is None  # Not now is not asked again


def test_the_first_run_recommends_models_for_this_computer_and_they_are_optional(app, qtbot, tmp_path):
    from myvlm_desktop.gui.dialogs import FirstRunDialog

    dialog = FirstRunDialog(str(tmp_path / "data"))
    qtbot.addWidget(dialog)
    step = dialog.models_step
    qtbot.waitUntil(lambda: bool(step.boxes), timeout=60000)
    assert "no NVIDIA GPU" in step.note.text()  # this machine: CPU only
    assert step.chosen() == [SMOLVLM]
    box = step.boxes[SMOLVLM]
    assert "513.0 MB" in box.text() and "Apache-2.0" in box.text()
    box.setChecked(False)
    assert step.chosen() == []


def test_a_big_gpu_is_offered_blip2_and_llava(app, qtbot):
    from myvlm_desktop.gui.model_dialog import ModelsStep

    step = ModelsStep()
    qtbot.addWidget(step)
    qtbot.waitUntil(lambda: bool(step.boxes), timeout=60000)
    for box in list(step.boxes.values()):
        box.setParent(None)
    step.boxes.clear()
    step.show_for(24 * registry.GB)
    assert set(step.chosen()) == {"HuggingFaceTB/SmolVLM-500M-Instruct", "Salesforce/blip2-flan-t5-xl",
                                  "llava-hf/llava-1.5-7b-hf"}
    assert "Llama 2 Community License" in step.boxes["llava-hf/llava-1.5-7b-hf"].text()


def test_choosing_insightface_without_its_model_offers_it(window, session, qtbot, tmp_path, monkeypatch):
    from myvlm_desktop.gui.dialogs import SettingsChange

    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.insightface here
    monkeypatch.delenv("INSIGHTFACE_HOME", raising=False)
    window.apply_settings(SettingsChange(settings={"face_engine": "insightface"}))
    qtbot.waitUntil(lambda: window.findChild(MissingModelDialog) is not None, timeout=30000)
    dialog = window.findChild(MissingModelDialog)
    text = " ".join(label.text() for label in dialog.findChildren(type(dialog.message)))
    assert "Finds and recognises faces" in text and "non-commercial" in text and "288.6 MB" in text
    qtbot.mouseClick(dialog.later_button, Qt.MouseButton.LeftButton)

"""Getting a missing model from where the user needed it: which model, its size, where it comes from and what
it is for, with Download (progress, cancel, resume), Choose folder (checked, then copied) and Not now.

`offer_model(parent, error, purpose, models_dir, then)` shows the dialog for the model a ModelUnavailable names;
when the model is in place, `then()` runs: the action that was waiting goes on by itself.
"""

from __future__ import annotations

import html
import os
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from ..models import install, registry
from ..models.download import Cancelled, hub_offline
from ..models.errors import ModelUnavailable
from .widgets import heading, muted
from .workers import run_task

OFFLINE_WORDS = ("offline", "connect", "network", "resolve", "unreachable", "did not answer")


def size_text(value: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return str(value)


def source_text(model: registry.ModelSpec) -> str:
    if model.source == "huggingface":
        return f"the Hugging Face Hub (huggingface.co/{model.repo_id})"
    if model.source == "url":
        return model.urls[0].split("/releases/")[0].replace("https://", "") + " (release download)"
    return f"the pip package {model.package}"


class _Progress(QObject):
    """Download progress from the worker thread; raises Cancelled there once the user cancels."""

    progressed = Signal(float, float)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.cancelled = False

    def __call__(self, done, total=0, *rest) -> None:
        if self.cancelled:
            raise Cancelled
        try:
            self.progressed.emit(float(done or 0), float(total or 0))
        except RuntimeError:  # the dialog closed during the download
            pass


class MissingModelDialog(QDialog):
    """One model the user needs now. `ready(path)` when it is in place."""

    ready = Signal(str)

    def __init__(self, model: registry.ModelSpec, purpose: str, models_dir: Path, parent=None):
        super().__init__(parent)
        self.setObjectName("missingModel")
        self.setWindowTitle("A model is needed")
        self.setMinimumWidth(560)
        self.model, self.models_dir = model, Path(models_dir)
        # no parent: the download's thread may still report after the dialog is gone; the connection then
        # ends with the dialog, and the next report stops the download
        self.progress = _Progress()
        self.progress.progressed.connect(self._progressed)
        self.finished.connect(self._closing)
        self.downloading = False
        facts = QLabel(
            f"<table cellspacing=4>"
            f"<tr><td><b>What for</b></td><td>{html.escape(purpose)}</td></tr>"
            f"<tr><td><b>Model</b></td><td>{html.escape(model.description or model.name)}</td></tr>"
            f"<tr><td><b>Size</b></td><td>{size_text(model.size_bytes)} to download</td></tr>"
            f"<tr><td><b>From</b></td><td>{html.escape(source_text(model))}</td></tr>"
            f"<tr><td><b>Licence</b></td><td>{html.escape(model.licence)}</td></tr></table>")
        facts.setWordWrap(True)
        facts.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.bar = QProgressBar()
        self.bar.setRange(0, 1000)
        self.bar.hide()
        self.message = muted()
        self.message.setWordWrap(True)
        self.download_button = QPushButton("Download")
        self.download_button.setObjectName("primary")
        self.download_button.clicked.connect(self.download)
        self.folder_button = QPushButton("Choose folder…")
        self.folder_button.clicked.connect(self.choose_folder)
        self.cancel_button = QPushButton("Cancel download")
        self.cancel_button.clicked.connect(self.cancel)
        self.cancel_button.hide()
        self.later_button = QPushButton("Not now")
        self.later_button.clicked.connect(self.reject)
        buttons = QHBoxLayout()
        buttons.addWidget(self.folder_button)
        buttons.addStretch(1)
        for button in (self.later_button, self.cancel_button, self.download_button):
            buttons.addWidget(button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(24, 18, 24, 16)
        title = heading(f"{model.name} is not on this computer yet", "sectionTitle")
        title.setWordWrap(True)
        layout.addWidget(title)
        layout.addWidget(facts)
        layout.addWidget(self.bar)
        layout.addWidget(self.message)
        layout.addLayout(buttons)
        if hub_offline():
            self._offline()

    # -- download ----------------------------------------------------------------------------------------
    def download(self) -> None:
        self.downloading = True
        self.progress.cancelled = False
        self.bar.setRange(0, 0)
        self.bar.show()
        self.message.setText(f"Downloading {self.model.name}…")
        self._buttons(busy=True)
        run_task(registry.download_model, self.model.name, self.progress, self.models_dir, owner=self,
                 on_done=self._installed, on_error=self._failed)

    def cancel(self) -> None:
        self.progress.cancelled = True
        self.message.setText("Stopping…")

    def _closing(self, _result: int) -> None:
        if self.downloading:  # closed mid-download: stop it (the files fetched stay for the next time)
            self.progress.cancelled = True

    def _progressed(self, done: float, total: float) -> None:
        if total:
            self.bar.setRange(0, 1000)
            self.bar.setValue(int(min(done / total, 1.0) * 1000))
            self.message.setText(f"Downloading {self.model.name}… {size_text(done)} of {size_text(total)}")

    def _failed(self, error: BaseException) -> None:
        self.downloading = False
        self.bar.hide()
        self._buttons(busy=False)
        if isinstance(error, Cancelled):
            self.download_button.setText("Resume download")
            self.message.setText("Download stopped. The files already fetched are kept: Resume goes on from there.")
        elif any(word in str(error).lower() for word in OFFLINE_WORDS):
            self._offline()
        else:
            self.message.setText(f"<b>Download failed.</b> {html.escape(str(error))}")

    def _offline(self) -> None:
        self.message.setText("This computer cannot reach the model's server: copy the model folder from another "
                             "computer or a USB stick and use <b>Choose folder</b>.")

    # -- a folder ------------------------------------------------------------------------------------------
    def choose_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, f"The folder of {self.model.name}", os.path.expanduser("~"))
        if folder:
            self.use_folder(folder)

    def use_folder(self, folder: str) -> None:
        self.message.setText(f"Checking {folder}…")
        self._buttons(busy=True)
        run_task(install.install_folder, Path(folder), self.model, self.models_dir, owner=self,
                 on_done=self._installed, on_error=self._folder_failed)

    def _folder_failed(self, error: BaseException) -> None:
        self._buttons(busy=False)
        self.message.setText(f"<b>That folder cannot be used.</b> {html.escape(str(error))}")

    # -- done ------------------------------------------------------------------------------------------------
    def _installed(self, path) -> None:
        self.downloading = False
        self.bar.hide()
        self.message.setText(f"{self.model.name} is installed.")
        self.ready.emit(str(path))
        self.accept()

    def _buttons(self, busy: bool) -> None:
        self.download_button.setVisible(not busy)
        self.folder_button.setEnabled(not busy)
        self.later_button.setEnabled(not busy)
        self.cancel_button.setVisible(busy and self.downloading)


def spec_for(error: ModelUnavailable) -> registry.ModelSpec | None:
    """The downloadable model a ModelUnavailable is about, or None (a pip package, a device, a local folder)."""
    try:
        model = registry.spec(error.model)
    except ModelUnavailable:
        return None
    return model if model.source in ("huggingface", "url") else None


def offer_model(parent, error: BaseException, purpose: str, models_dir: Path, then: Callable[[], None],
                modal: bool = True) -> bool:
    """Show the dialog for the model `error` names; `then()` once it is installed. False: nothing to offer.

    `modal` False: for what the app noticed by itself (a skipped stage), a window beside the main one that
    neither blocks it nor takes the keyboard."""
    model = spec_for(error) if isinstance(error, ModelUnavailable) else None
    if model is None:
        return False
    dialog = MissingModelDialog(model, purpose, models_dir, parent)
    dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
    dialog.ready.connect(lambda _path: then())
    if modal:
        dialog.open()
    else:
        dialog.setAttribute(Qt.WidgetAttribute.WA_ShowWithoutActivating)
        dialog.show()
    return True


def require_vlm(parent, session, purpose: str, then: Callable[[], None],
                on_missing: Callable[[BaseException], None] | None = None,
                on_offered: Callable[[], None] | None = None, modal: bool = True) -> None:
    """Run `then()` when the configured VLM is on disk; else offer it, and run `then()` once it is installed.

    `on_missing(error)` is told when nothing can be offered (the caller shows the error where the user looks)."""
    from .. import config
    from ..pipeline.process import vlm_weights
    from ..pipeline.settings import vlm_options

    models_dir = config.models_dir(session.library.root)

    def missing(error: BaseException) -> None:
        if offer_model(parent, error, purpose, models_dir, then, modal):
            if on_offered is not None:
                on_offered()
        elif on_missing is not None:
            on_missing(error)

    run_task(vlm_weights, vlm_options(session.settings), models_dir, owner=parent, on_done=lambda _: then(),
             on_error=missing)


def after_process(window, session, job_id: int) -> None:
    """The caption stage skipped for want of the VLM: offer it once per window; captions run once it is in."""
    job = session.jobs.jobs.get(job_id)
    results = (job.status.result if job is not None else None) or []
    skipped = next((r.get("skipped") for r in results if isinstance(r, dict) and r.get("stage") == "caption"), None)
    if not skipped or getattr(window, "_offered_caption_model", False):
        return
    window._offered_caption_model = True  # "Not now" is not asked again at every Process
    require_vlm(window, session, "Captions for every photo that name your people and pets.",
                lambda: run_task(session.submit, "caption", {}, owner=window), modal=False)


# -- the first run's optional "Models" step -----------------------------------------------------------------------
class ModelsStep(QWidget):
    """The models recommended for this computer, with sizes and licences; all optional (untick to skip)."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setObjectName("modelsStep")
        self.boxes: dict[str, QCheckBox] = {}
        self.note = muted("Checking this computer…")
        self.note.setWordWrap(True)
        self.list = QVBoxLayout()
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(heading("Models (optional)", "sectionTitle"))
        layout.addWidget(self.note)
        layout.addLayout(self.list)
        run_task(install.cuda_memory, owner=self, on_done=self.show_for, on_error=lambda _e: self.show_for(None))

    def show_for(self, cuda_memory: int | None) -> None:
        where = (f"an NVIDIA GPU with {size_text(cuda_memory)}" if cuda_memory else "no NVIDIA GPU (the CPU runs "
                 "the models)")
        self.note.setText(f"This computer has {where}. These models suit it; they download in the background "
                          f"after you start, or later when a feature first needs one.")
        for name in install.recommended(cuda_memory):
            model = registry.spec(name)
            box = QCheckBox(f"{model.description} — {size_text(model.size_bytes)}, {model.licence}")
            box.setChecked(True)
            self.boxes[name] = box
            self.list.addWidget(box)

    def chosen(self) -> list[str]:
        return [name for name, box in self.boxes.items() if box.isChecked()]


def download_in_turn(window, names: list[str], models_dir: Path) -> None:
    """The first run's chosen models, one dialog (downloading, with progress and cancel) after the other."""
    if not names:
        return
    model = registry.spec(names[0])
    dialog = MissingModelDialog(model, "Chosen at the first start.", models_dir, window)
    dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
    dialog.finished.connect(lambda _result: download_in_turn(window, names[1:], models_dir))
    dialog.open()
    dialog.download()


ENGINE_MODELS = {("face_engine", "insightface"): ("insightface-buffalo_l", "Finds and recognises faces (InsightFace)."),
                 ("embedder", "clip"): ("clip-vit-b-32", "Recognises pets and things in whole photos (CLIP).")}


def after_settings(window, session, changed: dict) -> None:
    """A face engine or embedder just chosen whose model is not on disk: offer it; Process runs once it is in."""
    from .. import config

    models_dir = config.models_dir(session.library.root)
    for (key, value), (name, purpose) in ENGINE_MODELS.items():
        if changed.get(key) != value:
            continue
        if key == "embedder" and any(registry.is_available(m.name, models_dir) for m in registry.MODELS
                                     if m.name.startswith("clip")):
            continue
        try:
            registry.find_model(name, models_dir)
        except ModelUnavailable as error:
            offer_model(window, error, purpose, models_dir, window.process_all)

"""Concepts: each named person, pet or thing with its photos, its head, its concept embedding (train with a
progress bar and ETA, cancel, retrain) and sample personalized captions."""

from __future__ import annotations

import html

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QFileDialog,
    QFrame,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QProgressBar,
    QPushButton,
    QSplitter,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from ..library.names import name_key
from ..sizes import human_size
from . import theme
from .models import PhotoListModel, PhotoSource
from .widgets import EmptyState, PhotoGrid, format_eta, heading, muted
from .workers import JobView, run_task

KIND_NOUNS = {"person": "Person", "pet": "Pet", "object": "Thing"}


class ConceptPage(QWidget):
    photoActivated = Signal(int)
    status = Signal(str)

    def __init__(self, session, photo_model: PhotoListModel, bridge, parent=None):
        super().__init__(parent)
        self.session = session
        self.model = photo_model
        self.concept: dict | None = None
        self.train_jobs: dict[int, int] = {}  # job id -> concept id
        self.finished_jobs: set[int] = set()
        self.list = QListWidget()
        self.list.setObjectName("conceptList")
        self.list.currentItemChanged.connect(self._picked)
        self.empty = EmptyState("No concepts yet", "Name a group in People & Pets and it becomes a concept: "
                                "the app learns to find it and to say its name in captions.", icon_name="concepts")
        self.detail = self._detail()
        self.right = QStackedWidget()
        self.right.addWidget(self.empty)
        self.right.addWidget(self.detail)
        splitter = QSplitter()
        splitter.addWidget(self.list)
        splitter.addWidget(self.right)
        splitter.setStretchFactor(1, 1)
        splitter.setSizes([220, 800])
        layout = QVBoxLayout(self)
        layout.setContentsMargins(20, 14, 20, 10)
        self.import_button = QPushButton("Import pack…")
        self.import_button.setObjectName("flat")
        self.import_button.setToolTip("Install a concept pack (.myvlm) made on another computer")
        self.import_button.clicked.connect(self._ask_import)
        title = QHBoxLayout()
        title.addWidget(heading("Concepts"))
        title.addStretch(1)
        title.addWidget(self.import_button)
        layout.addLayout(title)
        layout.addWidget(splitter, 1)
        bridge.updated.connect(self._job_updated)

    def _detail(self) -> QWidget:
        page = QWidget()
        self.title = heading("", "conceptTitle")
        self.kind = muted()
        self.head = muted()
        self.embedding = muted()
        self.train_button = QPushButton("Train")
        self.train_button.setObjectName("primary")
        self.train_button.clicked.connect(lambda: self.train(force=False))
        self.retrain_button = QPushButton(theme.icon("refresh"), "Retrain")
        self.retrain_button.setObjectName("flat")
        self.retrain_button.clicked.connect(lambda: self.train(force=True))
        self.cancel_button = QPushButton(theme.icon("cancel"), "Cancel")
        self.cancel_button.setObjectName("flat")
        self.cancel_button.clicked.connect(self.cancel_training)
        self.bar = QProgressBar()
        self.bar.setRange(0, 1000)
        self.bar.setTextVisible(False)
        self.bar.setFixedHeight(6)
        self.eta = muted()
        self.captions = QLabel()
        self.captions.setObjectName("sampleCaptions")
        self.captions.setWordWrap(True)
        self.captions.setTextFormat(Qt.TextFormat.RichText)
        self.grid = PhotoGrid(side=self.model.side)
        self.grid.setModel(self.model)
        self.grid.photoActivated.connect(self.photoActivated)
        card = QFrame()
        card.setObjectName("card")
        info = QVBoxLayout(card)
        info.addWidget(self.head)
        info.addWidget(self.embedding)
        buttons = QHBoxLayout()
        buttons.addWidget(self.train_button)
        buttons.addWidget(self.retrain_button)
        buttons.addWidget(self.cancel_button)
        buttons.addStretch(1)
        buttons.addWidget(self.eta)
        info.addLayout(buttons)
        info.addWidget(self.bar)
        info.addWidget(heading("Sample captions", "sectionTitle"))
        info.addWidget(self.captions)
        self.export_button = QPushButton("Export pack…")
        self.export_button.setObjectName("flat")
        self.export_button.setToolTip("Save this concept's head, embeddings and a few thumbnails as a .myvlm file")
        self.export_button.clicked.connect(self._ask_export)
        top = QHBoxLayout()
        top.addWidget(self.title)
        top.addWidget(self.kind, 1)
        top.addWidget(self.export_button)
        layout = QVBoxLayout(page)
        layout.setContentsMargins(12, 0, 0, 0)
        layout.addLayout(top)
        layout.addWidget(card)
        layout.addWidget(heading("Photos", "sectionTitle"))
        layout.addWidget(self.grid, 1)
        return page

    # -- contents ---------------------------------------------------------------------------------------
    def refresh(self) -> None:
        run_task(self.session.views.concepts, on_done=self._show_list)

    def _show_list(self, concepts: list[dict]) -> None:
        current = self.concept["id"] if self.concept else None
        self.list.blockSignals(True)
        self.list.clear()
        for c in concepts:
            item = QListWidgetItem(theme.icon("people" if c["kind"] == "person" else "concepts"),
                                   f"{c['name']}   ·  {c['photos']}")
            item.setData(Qt.ItemDataRole.UserRole, c)
            self.list.addItem(item)
            if c["id"] == current:
                self.list.setCurrentItem(item)
        self.list.blockSignals(False)
        if concepts and self.list.currentItem() is None:
            self.list.setCurrentRow(0)
        elif self.list.currentItem() is not None:
            self._picked(self.list.currentItem())
        self.right.setCurrentWidget(self.detail if concepts else self.empty)

    def show_concept(self, name: str) -> None:
        for row in range(self.list.count()):
            if name_key(self.list.item(row).data(Qt.ItemDataRole.UserRole)["name"]) == name_key(name):
                self.list.setCurrentRow(row)

    def _picked(self, item: QListWidgetItem | None, previous=None) -> None:
        if item is None:
            return
        concept = item.data(Qt.ItemDataRole.UserRole)
        changed = self.concept is None or self.concept["id"] != concept["id"]
        self.concept = concept
        self.title.setText(concept["name"])
        count = concept["photos"]
        self.kind.setText(f"{KIND_NOUNS.get(concept['kind'], concept['kind'])} · {concept['identifier']} · "
                          f"{count} photo{'s' if count != 1 else ''}")
        self.head.setText(f"<b>Recognition head:</b> {concept['head']}")
        if changed:
            self.model.set_source(None)
        run_task(self._load, concept["id"], owner=self,
                 on_done=lambda loaded, cid=concept["id"]: self._loaded(cid, loaded))
        self._show_training(None)

    def _load(self, concept_id: int) -> tuple[list[int], list[dict], list[dict]]:
        return (self.session.views.concept_photo_ids(concept_id), self.session.views.concept_embeddings(concept_id),
                self.session.views.concept_captions(concept_id))

    def _loaded(self, concept_id: int, loaded) -> None:
        if self.concept is None or self.concept["id"] != concept_id:
            return
        ids, embeddings, captions = loaded
        if ids != self.model.photo_ids()[:len(ids)] or self.model.total() != len(ids):
            self.model.set_source(PhotoSource.of_ids(ids, self.session.views.photo_thumbnails))
        if embeddings:
            text = ", ".join(f"{e['backend']}" + (f" ({e.get('steps')} steps)" if e.get("steps") else "")
                             for e in embeddings)
            self.embedding.setText(f"<b>Concept embedding:</b> trained for {text}")
        else:
            self.embedding.setText("<b>Concept embedding:</b> not trained yet. Training teaches the "
                                   "vision-language model to say its name.")
        self.train_button.setText("Train" if not embeddings else "Train again")
        self.trained = bool(embeddings)
        self.retrain_button.setEnabled(self.trained and not self.cancel_button.isVisible())
        if captions:
            self.captions.setText("".join(f"<p>“{html.escape(c['text'])}”</p>" for c in captions))
        else:
            self.captions.setText(f"<span style='color:{theme.MUTED.name()}'>No personalized captions yet.</span>")

    # -- concept packs ----------------------------------------------------------------------------------------
    def ask_save_path(self, suggested: str) -> str:
        return QFileDialog.getSaveFileName(self, "Export concept pack", suggested, "Concept packs (*.myvlm)")[0]

    def ask_open_path(self) -> str:
        return QFileDialog.getOpenFileName(self, "Import concept pack", "", "Concept packs (*.myvlm)")[0]

    def _ask_export(self) -> None:
        if self.concept is None:
            return
        path = self.ask_save_path(f"{self.concept['name']}.myvlm")
        if path:
            self.export_pack(self.concept["name"], path)

    def _ask_import(self) -> None:
        path = self.ask_open_path()
        if path:
            self.import_pack(path)

    def export_pack(self, name: str, path: str) -> None:
        from ..interop import pack

        run_task(pack.export_concept, self.session.library, name, path, owner=self,
                 on_done=lambda r: self.status.emit(f"Exported {r['name']} to {r['path']} ({human_size(r['bytes'])})"),
                 on_error=lambda exc: self.status.emit(f"Could not export {name}: {exc}"))

    def import_pack(self, path: str) -> None:
        """Install a pack (from the button or a file dropped on the window); the status line says how it went."""
        from ..interop import pack

        run_task(pack.import_pack, self.session.library, path, owner=self, on_done=self._imported,
                 on_error=lambda exc: self.status.emit(f"Could not import {path}: {exc}"))

    def _imported(self, result: dict) -> None:
        skipped = f"; not installed: {'; '.join(result['not_installed'])}" if result["not_installed"] else ""
        self.status.emit(f"Imported {result['concept']} ({', '.join(result['installed']) or 'the name only'})"
                         f"{skipped}")
        self.refresh()

    # -- training -------------------------------------------------------------------------------------------
    def train(self, force: bool) -> None:
        """Train once the VLM is on disk: a missing model is offered first, and training starts when it is in."""
        if self.concept is None:
            return
        from .model_dialog import require_vlm

        concept_id = self.concept["id"]
        self._show_training(JobView(0, "train", "queued", 0, 0, "waiting for its turn", 0.0, None, None))
        require_vlm(self, self.session, f"Training teaches the vision-language model to name {self.concept['name']}.",
                    lambda: self._start_training(concept_id, force), on_missing=self._cannot_train,
                    on_offered=self._waiting_for_model)

    def _cannot_train(self, error: BaseException) -> None:
        self._show_training(None)
        self.eta.setText(f"cannot train: {error}")

    def _waiting_for_model(self) -> None:
        self._show_training(None)
        self.eta.setText("waiting for the model…")

    def _start_training(self, concept_id: int, force: bool) -> None:
        params = {"concept": concept_id, "heads_first": True, **({"force": True} if force else {})}
        self._show_training(JobView(0, "train", "queued", 0, 0, "waiting for its turn", 0.0, None, None))
        run_task(self.session.submit, "train", params, owner=self,  # recording the job is a database write
                 on_done=lambda job: self._submitted(job, concept_id))

    def _submitted(self, job, concept_id: int) -> None:
        self.train_jobs[job.status.id] = concept_id
        status = job.status  # it may have moved on (or finished: "already trained") before we knew its id
        self._job_updated(JobView(status.id, status.kind, status.state, status.done, status.total, status.message,
                                  status.fraction, status.eta_seconds, status.error))

    def cancel_training(self) -> None:
        for job_id, concept_id in self.train_jobs.items():
            job = self.session.jobs.jobs.get(job_id)
            if job is not None and self.concept and concept_id == self.concept["id"]:
                job.cancel()

    def _job_updated(self, view: JobView) -> None:
        if view.kind == "detect" and self.concept is not None:  # heads follow the user's naming
            if view.state in ("queued", "running"):
                self.head.setText("<b>Recognition head:</b> retraining with your changes…")
            elif view.state == "done":
                self.refresh()
        concept_id = self.train_jobs.get(view.id)
        if concept_id is None or view.id in self.finished_jobs:
            return
        if view.state in ("done", "failed", "cancelled"):
            self.finished_jobs.add(view.id)
        if view.state == "done":  # its photos get personalized captions
            run_task(self.session.submit, "caption", {"concepts": [concept_id]}, owner=self)
        if self.concept and concept_id == self.concept["id"]:
            self._show_training(view)
            if view.state == "done":
                self.refresh()

    def _show_training(self, view: JobView | None) -> None:
        running = view is not None and view.state in ("queued", "running", "paused")
        self.bar.setVisible(running)
        self.cancel_button.setVisible(running)
        self.train_button.setEnabled(not running)
        self.retrain_button.setEnabled(not running and getattr(self, "trained", False))
        if view is None:
            self.eta.setText("")
            return
        self.bar.setValue(int(view.fraction * 1000))
        if running:
            self.eta.setText(format_eta(view.eta_seconds) or view.message or "training…")
        elif view.state == "failed":
            self.eta.setText(f"failed: {view.error or view.message}")
        else:
            self.eta.setText(view.state)

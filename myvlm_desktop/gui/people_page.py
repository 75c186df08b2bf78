"""People & Pets: cluster cards, naming with a kind, merge, split and move faces, reject, hide, cover,
suggestions ("Is this Alice?"). Every change is a people.ops operation run off the GUI thread; undo and
redo go through the same operation log."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QMessageBox,
    QPushButton,
    QScrollArea,
    QStackedWidget,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from ..concepts.review import ReviewSession, retrain
from ..library.search import concept_names
from . import theme
from .dialogs import ChoiceDialog, MergeDialog, NameDialog
from .images import ImageCache, read_face
from .models import FaceListModel
from .review import ReviewDialog
from .widgets import CardGrid, EmptyState, heading, muted
from .workers import run_task

KIND_LABELS = {"person": "Person", "pet": "Pet", "object": "Thing"}


def card_title(cluster: dict) -> str:
    return cluster["concept"] or ("Unnamed" if cluster["cluster_kind"] == "face" else "Unnamed group")


def card_rows(clusters: list[dict]) -> list[dict]:
    rows = []
    for c in clusters:
        cover = c.get("cover") or {}
        noun = "face" if c["cluster_kind"] == "face" else "photo"
        kind = KIND_LABELS.get(c.get("kind") or "", "")
        rows.append({"id": c["id"], "path": cover.get("path"), "box": cover.get("box"), "size": cover.get("size"),
                     "hash": cover.get("hash"), "whole": cover.get("whole", False),
                     "title": card_title(c), "named": bool(c["concept"]),
                     "subtitle": f"{c['size']} {noun}{'s' if c['size'] != 1 else ''}" + (f" · {kind}" if kind else ""),
                     "cluster": c})
    return rows


class SuggestionStrip(QFrame):
    """"Is this Alice?" cards with yes / no, for unnamed clusters near a named concept."""

    answered = Signal(dict, bool)

    def __init__(self, cache: ImageCache, parent=None):
        super().__init__(parent)
        self.setObjectName("suggestions")
        self.cache = cache
        self.row = QHBoxLayout()
        self.row.setSpacing(10)
        title = heading("Suggestions", "sectionTitle")
        inner = QWidget()
        inner.setLayout(self.row)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setWidget(inner)
        scroll.setFixedHeight(92)
        scroll.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(title)
        layout.addWidget(scroll)
        self.cards: list[QFrame] = []
        self.waiting: dict = {}  # cache key -> the label waiting for that face
        cache.loaded.connect(self._arrived)
        self.hide()

    def set_suggestions(self, suggestions: list[dict]) -> None:
        for card in self.cards:
            card.setParent(None)
            card.deleteLater()
        self.cards = []
        self.waiting.clear()
        while self.row.count():
            self.row.takeAt(0)
        for s in suggestions[:12]:
            card = self._card(s)
            self.cards.append(card)
            self.row.addWidget(card)
        self.row.addStretch(1)
        self.setVisible(bool(self.cards))

    def _card(self, s: dict) -> QFrame:
        card = QFrame()
        card.setObjectName("suggestionCard")
        face = QLabel()
        face.setFixedSize(56, 56)
        cover = s.get("cover") or {}
        if cover.get("path") and all(cover.get("size") or (0,)):
            key = ("face", cover["path"], tuple(cover["box"]), 56)
            pixmap = self.cache.get(key, lambda c=cover: read_face(c["path"], tuple(c["box"]), tuple(c["size"]), 56))
            if pixmap is not None:
                face.setPixmap(pixmap)
            else:
                self.waiting[key] = face
        text = QLabel(f"Is this <b>{s.get('name', '?')}</b>?")
        yes, no = QToolButton(), QToolButton()
        yes.setIcon(theme.icon("yes"))
        yes.setToolTip("Yes")
        no.setIcon(theme.icon("no"))
        no.setToolTip("No")
        yes.clicked.connect(lambda: self.answered.emit(s, True))
        no.clicked.connect(lambda: self.answered.emit(s, False))
        layout = QHBoxLayout(card)
        layout.setContentsMargins(8, 6, 8, 6)
        layout.addWidget(face)
        layout.addWidget(text)
        layout.addWidget(yes)
        layout.addWidget(no)
        card.text, card.yes, card.no = text, yes, no
        return card

    def _arrived(self, key) -> None:
        label = self.waiting.pop(key, None)
        pixmap = self.cache.cached(key)
        if label is not None and pixmap is not None:
            label.setPixmap(pixmap)


class PeoplePage(QWidget):
    """The overview of clusters and, on opening one, its faces."""

    status = Signal(str)  # a short message for the status bar
    changed = Signal()

    def __init__(self, session, cache: ImageCache, parent=None):
        super().__init__(parent)
        self.session, self.cache = session, cache
        thumbs = session.library.thumbnail_path
        self.clusters_model = FaceListModel(cache, side=132, thumbnail_path=thumbs, parent=self)
        self.faces_model = FaceListModel(cache, side=112, thumbnail_path=thumbs, parent=self)
        self.open_cluster: dict | None = None
        self.pending_rename: dict | None = None
        self.stack = QStackedWidget()
        self.stack.addWidget(self._overview())
        self.stack.addWidget(self._detail())
        layout = QVBoxLayout(self)
        layout.setContentsMargins(20, 14, 20, 10)
        layout.addWidget(self.stack)

    # -- overview --------------------------------------------------------------------------------------------
    def _overview(self) -> QWidget:
        page = QWidget()
        self.title = heading("People & Pets")
        self.count = muted()
        self.suggestions = SuggestionStrip(self.cache)
        self.suggestions.answered.connect(self.answer_suggestion)
        self.grid = CardGrid(side=132)
        self.grid.setModel(self.clusters_model)
        self.grid.doubleClicked.connect(lambda index: self.show_cluster(self.clusters_model.row_data(index.row())))
        self.empty = EmptyState("No faces yet", "Faces appear here as the library is indexed. Name a group to "
                                "make it a concept the app can talk about.", icon_name="people")
        self.body = QStackedWidget()
        self.body.addWidget(self.empty)
        self.body.addWidget(self.grid)
        bar = QHBoxLayout()
        self.name_button = self._button("name", "Name…", self.name_selected)
        self.merge_button = self._button("merge", "Merge…", self.merge_selected)
        self.hide_button = self._button("hide", "Hide", self.hide_selected)
        self.open_button = self._button("people", "Open", self._open_selected)
        for b in (self.name_button, self.merge_button, self.hide_button, self.open_button):
            bar.addWidget(b)
        bar.addStretch(1)
        header = QHBoxLayout()
        header.addWidget(self.title)
        header.addWidget(self.count, 1)
        layout = QVBoxLayout(page)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(header)
        layout.addWidget(self.suggestions)
        layout.addLayout(bar)
        layout.addWidget(self.body, 1)
        self.grid.selectionModel().selectionChanged.connect(self._selection_changed)
        self._selection_changed()
        return page

    def _button(self, icon_name: str, text: str, slot) -> QPushButton:
        button = QPushButton(theme.icon(icon_name), text)
        button.setObjectName("flat")
        button.clicked.connect(slot)
        return button

    def _selection_changed(self, *args) -> None:
        n = len(self.grid.selected_rows())
        self.name_button.setEnabled(n == 1)
        self.merge_button.setEnabled(n >= 2)
        self.hide_button.setEnabled(n >= 1)
        self.open_button.setEnabled(n == 1)

    def refresh(self) -> None:
        run_task(self._load, on_done=self._show)

    def _load(self) -> tuple[list[dict], list[dict], list[dict] | None]:
        members = self.session.people.members(self.open_cluster["id"]) if self.open_cluster else None
        return self.session.people.clusters(), self.session.people.suggestions(), members

    def _show(self, loaded) -> None:
        clusters, suggestions, members = loaded
        selected = {self.clusters_model.row_data(r)["id"] for r in self.grid.selected_rows()}
        self.clusters_model.set_rows(card_rows(clusters))
        for row, item in enumerate(self.clusters_model.rows()):
            if item["id"] in selected:
                self.grid.selectionModel().select(self.clusters_model.index(row),
                                                  self.grid.selectionModel().SelectionFlag.Select)
        named = sum(1 for c in clusters if c["concept"])
        self.count.setText(f"{len(clusters)} groups · {named} named" if clusters else "")
        self.body.setCurrentWidget(self.grid if clusters else self.empty)
        self.suggestions.set_suggestions(suggestions)
        if self.open_cluster is not None:
            fresh = next((c for c in clusters if c["id"] == self.open_cluster["id"]), None)
            if fresh is None:  # merged away or emptied
                self.show_overview()
            else:
                self._show_members(fresh, members or [])
        self._selection_changed()

    def selected_clusters(self) -> list[dict]:
        return [self.clusters_model.row_data(r)["cluster"] for r in self.grid.selected_rows()]

    # -- operations -------------------------------------------------------------------------------------------
    def op(self, name: str, *args, done_message: str = "", **kwargs) -> None:
        """Run a people operation off the GUI thread, then refresh."""
        self.run(self.session.people.op, name, *args, done_message=done_message, **kwargs)

    def run(self, fn, *args, done_message: str = "", **kwargs) -> None:
        run_task(fn, *args, **kwargs, on_done=lambda _: self._after(done_message), on_error=self._op_failed,
                 owner=self)

    def _after(self, message: str) -> None:
        if message:
            self.status.emit(message)
        self.changed.emit()
        self.refresh()

    def _op_failed(self, error: BaseException) -> None:
        taken = getattr(error, "concept_id", None)
        if taken is not None and self._offer_merge(error):
            return
        self.status.emit(f"Could not do that: {error}")

    def _offer_merge(self, error) -> bool:
        """Renaming to a name another concept has: offer to merge the two (the user's intent, usually)."""
        cluster = self.pending_rename
        self.pending_rename = None
        if cluster is None or not cluster.get("concept_id"):
            return False
        answer = QMessageBox.question(self, "Merge?", f"{error.name} already exists. Merge {cluster['concept']} into "
                                      f"{error.name}?")
        if answer == QMessageBox.StandardButton.Yes:
            # "@Name": a concept by name, even one called "2024" (digits alone may mean a cluster)
            self.op("merge", f"@{error.name}", f"@{cluster['concept']}", keep=f"@{error.name}",
                    done_message=f"Merged into {error.name}")
        return True

    def name_selected(self) -> None:
        clusters = self.selected_clusters()
        if len(clusters) == 1:
            self.name_cluster(clusters[0])

    def name_cluster(self, cluster: dict) -> None:
        dialog = NameDialog(concept_names(self.session.db), cluster["concept"] or "", cluster.get("kind") or
                            ("person" if cluster["cluster_kind"] == "face" else "pet"),
                            "Rename" if cluster["concept"] else "Who is this?", self)
        if dialog.exec() != NameDialog.DialogCode.Accepted:
            return
        name, kind = dialog.value()
        self.pending_rename = cluster
        if cluster["concept"] and cluster.get("concept_id"):
            self.op("rename_concept", cluster["concept_id"], name, done_message=f"Renamed to {name}")
        else:
            self.op("name_cluster", cluster["id"], name, kind=kind, done_message=f"Named {name}")

    def merge_selected(self) -> None:
        clusters = self.selected_clusters()
        if len(clusters) < 2:
            return
        dialog = MergeDialog([(c["id"], f"{card_title(c)} ({c['size']})") for c in clusters], self)
        if dialog.exec() != MergeDialog.DialogCode.Accepted:
            return
        survivor = dialog.survivor()
        others = [c["id"] for c in clusters if c["id"] != survivor]
        self.run(self.session.people.merge, survivor, others, done_message=f"Merged {len(others) + 1} groups")

    def hide_selected(self) -> None:
        for cluster in self.selected_clusters():
            self.op("hide_cluster", cluster["id"], done_message="Hidden")

    def answer_suggestion(self, suggestion: dict, yes: bool) -> None:
        if yes:
            self.op("name_cluster", suggestion["cluster_id"], suggestion["name"], kind=suggestion["kind"],
                    done_message=f"Named {suggestion['name']}")
        else:
            self.run(self.session.people.decline, suggestion, done_message=f"Noted: not {suggestion['name']}")

    # -- one cluster --------------------------------------------------------------------------------------------
    def _detail(self) -> QWidget:
        page = QWidget()
        back = self._button("back", "All groups", self.show_overview)
        self.detail_title = heading("")
        self.detail_count = muted()
        self.faces_grid = CardGrid(side=112, text_lines=0)
        self.faces_grid.setModel(self.faces_model)
        self.split_button = self._button("split", "Split into a new group", self.split_selected)
        self.move_button = self._button("move", "Move to…", self.move_selected)
        self.reject_button = self._button("no", "Not this one", self.reject_selected)
        self.cover_button = self._button("cover", "Use as cover", self.cover_selected)
        self.rename_button = self._button("name", "Name…", lambda: self.open_cluster and self.name_cluster(self.open_cluster))
        self.review_button = self._button("yes", "Review…", self.review_open)
        bar = QHBoxLayout()
        for b in (self.rename_button, self.split_button, self.move_button, self.reject_button, self.cover_button,
                  self.review_button):
            bar.addWidget(b)
        bar.addStretch(1)
        header = QHBoxLayout()
        header.addWidget(back)
        header.addSpacing(8)
        header.addWidget(self.detail_title)
        header.addWidget(self.detail_count, 1)
        layout = QVBoxLayout(page)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(header)
        layout.addLayout(bar)
        layout.addWidget(self.faces_grid, 1)
        self.faces_grid.selectionModel().selectionChanged.connect(self._face_selection_changed)
        return page

    def _open_selected(self) -> None:
        clusters = self.selected_clusters()
        if clusters:
            self.show_cluster(clusters[0])

    def show_cluster(self, row_or_cluster: dict) -> None:
        cluster = row_or_cluster.get("cluster", row_or_cluster)
        self.open_cluster = cluster
        self.stack.setCurrentIndex(1)
        self._show_members(cluster, [])
        run_task(self.session.people.members, cluster["id"], owner=self,
                 on_done=lambda members, c=cluster: self._members_loaded(c, members))

    def _members_loaded(self, cluster: dict, members: list[dict]) -> None:
        if self.open_cluster is not None and self.open_cluster["id"] == cluster["id"]:
            self._show_members(cluster, members)

    def _show_members(self, cluster: dict, members: list[dict]) -> None:
        self.open_cluster = cluster
        self.detail_title.setText(card_title(cluster))
        noun = "faces" if cluster["cluster_kind"] == "face" else "photos"
        self.detail_count.setText(f"{cluster['size']} {noun}")
        self.faces_model.set_rows(members)
        self.rename_button.setText("Rename…" if cluster["concept"] else "Name…")
        self.review_button.setText(f"Review {cluster['concept']}…" if cluster["concept"] else "Review…")
        self._face_selection_changed()

    def review_open(self) -> None:
        """"Review <Rex>": the queue is built off the GUI thread (it may train the head first)."""
        concept_id = self.open_cluster and self.open_cluster.get("concept_id")
        if concept_id:
            run_task(ReviewSession, self.session.library, concept_id, owner=self, on_done=self.show_review,
                     on_error=self._op_failed)

    def show_review(self, review: ReviewSession) -> None:
        ReviewDialog(review, self).exec()
        if review.changed:  # the answers changed the examples: retrain and find again, in the background
            self.run(retrain, self.session.library, [review.concept["id"]],
                     done_message=f"{review.concept['name']} learnt from your answers")

    def show_overview(self) -> None:
        self.open_cluster = None
        self.stack.setCurrentIndex(0)

    def _face_selection_changed(self, *args) -> None:
        n = len(self.faces_grid.selected_rows())
        is_face = bool(self.open_cluster and self.open_cluster["cluster_kind"] == "face")
        self.split_button.setEnabled(n >= 1 and is_face)
        self.move_button.setEnabled(n >= 1 and is_face)
        self.reject_button.setEnabled(n >= 1 and bool(self.open_cluster and self.open_cluster.get("concept_id")))
        self.cover_button.setEnabled(n == 1)
        self.review_button.setEnabled(bool(self.open_cluster and self.open_cluster.get("concept_id")))

    def selected_faces(self) -> list[int]:
        return [self.faces_model.row_data(r)["id"] for r in self.faces_grid.selected_rows()]

    def split_selected(self) -> None:
        faces = self.selected_faces()
        if faces and self.open_cluster is not None:
            self.op("split", self.open_cluster["id"], faces, done_message=f"{len(faces)} faces moved to a new group")

    def move_selected(self) -> None:
        faces = self.selected_faces()
        if not faces or self.open_cluster is None:
            return
        others = [(c["id"], f"{card_title(c)} ({c['size']})") for c in self.session.people.clusters()
                  if c["id"] != self.open_cluster["id"] and c["cluster_kind"] == "face"]
        if not others:
            return
        dialog = ChoiceDialog("Move faces", f"Move {len(faces)} face(s) to:", others, self)
        if dialog.exec() == ChoiceDialog.DialogCode.Accepted and dialog.value() is not None:
            for face in faces:
                self.op("move_face", face, dialog.value(), done_message="Moved")

    def reject_selected(self) -> None:
        faces = self.selected_faces()
        concept = self.open_cluster.get("concept_id") if self.open_cluster else None
        if faces and concept:
            for face in faces:
                self.op("reject_face", face, concept, done_message=f"Marked as not {self.open_cluster['concept']}")

    def cover_selected(self) -> None:
        faces = self.selected_faces()
        if len(faces) == 1 and self.open_cluster is not None:
            self.op("set_cover", self.open_cluster["id"], faces[0], done_message="Cover changed")

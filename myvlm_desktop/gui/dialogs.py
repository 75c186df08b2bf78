"""Dialogs: first run (photo folders and data folder), settings, the model manager, naming and merging."""

from __future__ import annotations

import html
import os
from dataclasses import dataclass, field
from pathlib import Path

from PySide6.QtCore import QObject, QStringListModel, Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QButtonGroup,
    QCheckBox,
    QComboBox,
    QCompleter,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QProgressBar,
    QPushButton,
    QRadioButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from ..library.names import name_key
from ..models import registry
from ..pipeline.settings import CHOICES
from ..sizes import human_size
from . import theme
from .widgets import heading, muted
from .workers import run_task

LABELS = {
    "face_engine": {"auto": "Automatic (InsightFace when installed and calibrated, else dlib with MTCNN)",
                    "dlib": "dlib (offline, CPU)",
                    "dlib+mtcnn": "dlib, MTCNN where HOG finds no face (finds more)", "dlib+cnn": "dlib, CNN where HOG finds no face (finds more, slower)",
                    "insightface": "InsightFace buffalo_l (best; downloads once)"},
    "embedder": {"sscd": "SSCD (offline)", "clip": "CLIP (downloads once)"},
    "vlm_backend": {"smolvlm": "SmolVLM (laptops, CPU)", "blip2": "BLIP-2", "llava": "LLaVA"},
    "device": {"auto": "Automatic", "cuda": "NVIDIA GPU (CUDA)", "mps": "Apple GPU (MPS)", "cpu": "CPU"},
    "caption_detail": {"auto": "By device (detailed on a GPU)", "fast": "Fast (one view of the photo)",
                       "detailed": "Detailed (the photo in tiles; slow on a CPU)"},
}


class FolderList(QWidget):
    """A list of folders with Add… and Remove."""

    changed = Signal()

    def __init__(self, folders: list[str] | None = None, parent=None):
        super().__init__(parent)
        self.list = QListWidget()
        self.list.setObjectName("folderList")
        self.list.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        for folder in folders or []:
            self.list.addItem(folder)
        add = QPushButton(theme.icon("folder-add"), "Add folder…")
        remove = QPushButton("Remove")
        remove.setObjectName("flat")
        add.clicked.connect(self.browse)
        remove.clicked.connect(self.remove_selected)
        buttons = QHBoxLayout()
        buttons.addWidget(add)
        buttons.addWidget(remove)
        buttons.addStretch(1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.list)
        layout.addLayout(buttons)

    def folders(self) -> list[str]:
        return [self.list.item(i).text() for i in range(self.list.count())]

    def add(self, folder: str) -> None:
        folder = os.path.abspath(os.path.expanduser(folder))
        if folder not in self.folders():
            self.list.addItem(folder)
            self.changed.emit()

    def browse(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Add a photo folder", os.path.expanduser("~"))
        if folder:
            self.add(folder)

    def remove_selected(self) -> None:
        for item in self.list.selectedItems():
            self.list.takeItem(self.list.row(item))
        self.changed.emit()


class FirstRunDialog(QDialog):
    """Welcome: which folders hold the photos, and where the app keeps its own files."""

    def __init__(self, data_dir: str, parent=None):
        super().__init__(parent)
        self.setObjectName("firstRun")
        self.setWindowTitle("Welcome to MyVLM Desktop")
        self.setMinimumWidth(560)
        title = heading("Welcome")
        intro = muted("MyVLM Desktop learns the people, pets and things in your photos and talks about them "
                      "by name. Everything stays on this computer. Choose the folders that hold your photos; "
                      "the app indexes them in the background and keeps following them.")
        self.folders = FolderList()
        self.data_dir = QLineEdit(data_dir)
        browse = QPushButton("Choose…")
        browse.setObjectName("flat")
        browse.clicked.connect(self._choose_data_dir)
        data_row = QHBoxLayout()
        data_row.addWidget(self.data_dir, 1)
        data_row.addWidget(browse)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        self.buttons.button(QDialogButtonBox.StandardButton.Ok).setText("Start")
        self.buttons.button(QDialogButtonBox.StandardButton.Ok).setObjectName("primary")
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(24, 20, 24, 16)
        layout.addWidget(title)
        layout.addWidget(intro)
        layout.addSpacing(8)
        layout.addWidget(heading("Photo folders", "sectionTitle"))
        layout.addWidget(self.folders)
        layout.addWidget(heading("Data folder", "sectionTitle"))
        layout.addWidget(muted("The library database, thumbnails and trained concepts live here."))
        layout.addLayout(data_row)
        from .model_dialog import ModelsStep

        self.models_step = ModelsStep()
        layout.addWidget(self.models_step)
        layout.addSpacing(8)
        layout.addWidget(self.buttons)

    def _choose_data_dir(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Data folder", self.data_dir.text())
        if folder:
            self.data_dir.setText(folder)

    def chosen(self) -> tuple[list[str], str]:
        return self.folders.folders(), self.data_dir.text().strip()


@dataclass
class SettingsChange:
    settings: dict = field(default_factory=dict)
    add_folders: list[str] = field(default_factory=list)
    remove_folders: list[str] = field(default_factory=list)
    data_dir: str | None = None  # a new data folder, used at the next start


class SettingsDialog(QDialog):
    """Folders, engines, VLM, device and data folder. The caller applies the change off the GUI thread."""

    open_models = Signal()
    restore_backup = Signal(str)  # Settings > Library > Restore: the backup file chosen

    def __init__(self, settings: dict, folders: list[str], data_dir: str, parent=None):
        super().__init__(parent)
        self.setObjectName("settingsDialog")
        self.setWindowTitle("Settings")
        self.setMinimumWidth(600)
        self.original, self.original_folders, self.original_data_dir = dict(settings), list(folders), data_dir
        self.folders = FolderList(folders)
        self.combos: dict[str, QComboBox] = {}
        form = QFormLayout()
        form.setLabelAlignment(Qt.AlignmentFlag.AlignRight)
        for key, label in (("face_engine", "Face engine"), ("embedder", "Image embedder"),
                           ("vlm_backend", "Vision-language model"), ("device", "Device"),
                           ("caption_detail", "Caption detail")):
            combo = QComboBox()
            for value in CHOICES[key]:
                combo.addItem(LABELS[key][value], value)
            combo.setCurrentIndex(max(0, combo.findData(settings.get(key))))
            self.combos[key] = combo
            form.addRow(label, combo)
        self.vlm_model = QLineEdit(settings.get("vlm_model") or "")
        self.vlm_model.setPlaceholderText("the backend's default model, or a model folder")
        form.addRow("Model", self.vlm_model)
        self.watch = QCheckBox("Follow the folders for new, changed and deleted photos")
        self.watch.setChecked(bool(settings.get("watch", True)))
        form.addRow("", self.watch)
        self.data_dir = QLineEdit(data_dir)
        form.addRow("Data folder", self.data_dir)
        models = QPushButton(theme.icon("models"), "Models…")
        models.clicked.connect(self.open_models)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        bottom = QHBoxLayout()
        bottom.addWidget(models)
        bottom.addStretch(1)
        bottom.addWidget(buttons)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(24, 18, 24, 16)
        layout.addWidget(heading("Settings"))
        layout.addWidget(heading("Photo folders", "sectionTitle"))
        layout.addWidget(self.folders)
        layout.addWidget(heading("Engines", "sectionTitle"))
        layout.addLayout(form)
        layout.addWidget(muted("A new data folder is used from the next start."))
        layout.addWidget(heading("Library", "sectionTitle"))
        restore = QPushButton("Restore from a backup…")
        restore.setObjectName("restoreBackup")
        restore.clicked.connect(self.choose_backup)
        layout.addWidget(restore)
        layout.addLayout(bottom)

    def choose_backup(self) -> None:
        """Pick a backup (the backups folder first); the window restores it and this dialog closes."""
        start = str(Path(self.original_data_dir) / "backups")
        path, _ = QFileDialog.getOpenFileName(self, "Restore the library from a backup", start,
                                              "Library backups (*.sqlite3)")
        if path:
            self.restore_backup.emit(path)
            self.reject()

    def change(self) -> SettingsChange:
        values = {key: combo.currentData() for key, combo in self.combos.items()}
        values["vlm_model"] = self.vlm_model.text().strip()
        values["watch"] = self.watch.isChecked()
        now = self.folders.folders()
        data_dir = self.data_dir.text().strip()
        return SettingsChange(
            settings={k: v for k, v in values.items() if self.original.get(k) != v},
            add_folders=[f for f in now if f not in self.original_folders],
            remove_folders=[f for f in self.original_folders if f not in now],
            data_dir=data_dir if data_dir and data_dir != self.original_data_dir else None)


# -- model manager ------------------------------------------------------------------------------------------
KIND_NAMES = {"face": "Faces", "embedder": "Image features", "vlm": "Vision-language", "llm": "Text"}


def _field(model, name: str, default=None):
    return model.get(name, default) if isinstance(model, dict) else getattr(model, name, default)


class _DownloadProgress(QObject):
    progressed = Signal(str, float, float)

    def callback(self, name: str):
        def report(done, total=0, *rest):
            try:
                self.progressed.emit(name, float(done or 0), float(total or 0))
            except RuntimeError:  # the dialog closed during the download
                pass

        return report


class ModelManagerDialog(QDialog):
    """Every model the app can use: which are on disk, their size, and a download with progress."""

    def __init__(self, models_dir: str | None = None, parent=None):
        super().__init__(parent)
        self.setObjectName("modelManager")
        self.setWindowTitle("Models")
        self.setMinimumSize(760, 420)
        self.models_dir = models_dir
        self.table = QTableWidget(0, 5)
        self.table.setHorizontalHeaderLabels(["Model", "Kind", "Size", "Status", ""])
        self.table.verticalHeader().hide()
        self.table.setShowGrid(False)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setWordWrap(False)
        self.table.currentCellChanged.connect(self._picked)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(3, QHeaderView.ResizeMode.Stretch)
        for column in (1, 2, 4):
            header.setSectionResizeMode(column, QHeaderView.ResizeMode.ResizeToContents)
        self.bar = QProgressBar()
        self.bar.setRange(0, 1000)
        self.bar.hide()
        self.message = muted()
        self.message.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.message.setMinimumHeight(60)
        self.progress = _DownloadProgress(self)
        self.progress.progressed.connect(self._progressed)
        self.downloading: str | None = None
        close = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        close.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(24, 18, 24, 16)
        layout.addWidget(heading("Models"))
        layout.addWidget(muted("Models run on this computer. Those marked offline ship with the app; the others "
                               "download once, when you ask for them here, and are kept in the data folder or "
                               "the Hugging Face cache."))
        layout.addWidget(self.table, 1)
        layout.addWidget(self.bar)
        layout.addWidget(self.message)
        layout.addWidget(close)
        self.reload()

    def reload(self) -> None:
        run_task(registry.list_models, *self._where(), on_done=self._show, on_error=self._failed)

    def _where(self) -> tuple:
        return (Path(self.models_dir),) if self.models_dir else ()

    def _show(self, models) -> None:
        self.models = list(models)
        self.table.setRowCount(0)
        for model in self.models:
            row = self.table.rowCount()
            self.table.insertRow(row)
            name = str(_field(model, "name", "?"))
            available = bool(_field(model, "available", False))
            size = human_size(_field(model, "size") or _field(model, "size_bytes"))
            cells = [name, KIND_NAMES.get(_field(model, "kind", ""), _field(model, "kind", "")),
                     size if available or not size else f"{size} download",
                     "Installed" if available else "Not installed"]
            for column, text in enumerate(cells):
                item = QTableWidgetItem(text)
                item.setToolTip(_field(model, "description") or "")
                if column == 3:
                    item.setForeground(theme.ACCENT if available else theme.MUTED)
                self.table.setItem(row, column, item)
            if not available and _field(model, "source") != "package":
                button = QPushButton(theme.icon("download"), "Download")
                button.setObjectName("flat")
                button.clicked.connect(lambda _=False, n=name: self.download(n))
                self.table.setCellWidget(row, 4, button)
        self.table.resizeRowsToContents()

    def _picked(self, row: int, *rest) -> None:
        """The details of a model: what it is, its licence, where it is or why it is missing."""
        if not 0 <= row < len(getattr(self, "models", [])) or self.downloading:
            return
        model = self.models[row]
        where = _field(model, "path") or _field(model, "reason") or ""
        self.message.setText(f"<b>{html.escape(str(_field(model, 'name')))}</b>: "
                             f"{html.escape(str(_field(model, 'description') or ''))}<br>"
                             f"Licence: {html.escape(str(_field(model, 'licence') or 'unknown'))}<br>"
                             f"{html.escape(str(where))}")

    def download(self, name: str) -> None:
        if self.downloading:
            return
        self.downloading = name
        self.bar.setValue(0)
        self.bar.show()
        self.message.setText(f"Downloading {name}…")
        run_task(registry.download_model, name, self.progress.callback(name), *self._where(), owner=self,
                 on_done=lambda _: self._downloaded(name), on_error=self._failed)

    def _progressed(self, name: str, done: float, total: float) -> None:
        if total:
            self.bar.setRange(0, 1000)
            self.bar.setValue(int(done / total * 1000))
            self.message.setText(f"Downloading {name}… {human_size(done)} of {human_size(total)}")
        else:
            self.bar.setRange(0, 0)  # size unknown: a busy bar

    def _downloaded(self, name: str) -> None:
        self.downloading = None
        self.bar.hide()
        self.message.setText(f"{name} is installed.")
        self.reload()

    def _failed(self, error: BaseException) -> None:
        self.downloading = None
        self.bar.hide()
        text = f"<b>Download failed.</b> {html.escape(str(error))}"
        if any(w in text.lower() for w in ("offline", "connect", "network", "resolve", "unreachable")):
            where = html.escape(f" into {self.models_dir}" if self.models_dir else " into the app's models folder")
            text += ("<br><br>This computer seems to be offline or cannot reach the model's server. Connect to the "
                     f"internet and try again, or copy the model's files{where}.")
        self.message.setText(text)


# -- naming and merging ------------------------------------------------------------------------------------
KINDS = (("person", "Person"), ("pet", "Pet"), ("object", "Thing"))


class NameDialog(QDialog):
    """A name (completing the existing ones) and a kind: person, pet or thing."""

    def __init__(self, names: list[str], current: str = "", kind: str = "person", title: str = "Name", parent=None):
        super().__init__(parent)
        self.setObjectName("nameDialog")
        self.setWindowTitle(title)
        self.name = QLineEdit(current)
        self.name.setPlaceholderText("Alice, Rex, Grandma's teapot…")
        completer = QCompleter(QStringListModel(names, self), self)
        completer.setCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        self.name.setCompleter(completer)
        self.kinds = QButtonGroup(self)
        row = QHBoxLayout()
        for value, label in KINDS:
            button = QRadioButton(label)
            button.setProperty("kind", value)
            button.setChecked(value == kind)
            self.kinds.addButton(button)
            row.addWidget(button)
        row.addStretch(1)
        self.existing = {name_key(n): n for n in names}
        self.hint = muted()
        self.name.textChanged.connect(self._hint)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self._accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(20, 16, 20, 14)
        layout.addWidget(heading(title, "sectionTitle"))
        layout.addWidget(self.name)
        layout.addLayout(row)
        layout.addWidget(self.hint)
        layout.addWidget(buttons)

    def _hint(self, text: str) -> None:
        known = self.existing.get(name_key(text.strip()))
        self.hint.setText(f"{known} already exists: these faces join {known}." if known else "")

    def _accept(self) -> None:
        if self.name.text().strip():
            self.accept()

    def value(self) -> tuple[str, str]:
        checked = self.kinds.checkedButton()
        return self.name.text().strip(), checked.property("kind") if checked else "person"


class ChoiceDialog(QDialog):
    """Pick one of several labelled values (move faces to which cluster)."""

    def __init__(self, title: str, text: str, choices: list[tuple[object, str]], parent=None,
                 heading_text: str | None = None, ok_text: str | None = None):
        super().__init__(parent)
        self.setWindowTitle(title)
        self.list = QListWidget()
        for value, label in choices:
            item = QListWidgetItem(label)
            item.setData(Qt.ItemDataRole.UserRole, value)
            self.list.addItem(item)
        self.list.setCurrentRow(0)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        if ok_text:
            buttons.button(QDialogButtonBox.StandardButton.Ok).setText(ok_text)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        if heading_text:
            layout.addWidget(heading(heading_text, "sectionTitle"))
        layout.addWidget(QLabel(text))
        layout.addWidget(self.list)
        layout.addWidget(buttons)

    def value(self):
        item = self.list.currentItem()
        return None if item is None else item.data(Qt.ItemDataRole.UserRole)


class MergeDialog(ChoiceDialog):
    """Merge several clusters: the user picks the one that survives (its name and cover)."""

    def __init__(self, choices: list[tuple[int, str]], parent=None):
        super().__init__("Merge", "The others join the one you pick; it keeps its name and cover.", choices,
                         parent, heading_text="Merge into…", ok_text="Merge")

    def survivor(self) -> int:
        return int(self.value())

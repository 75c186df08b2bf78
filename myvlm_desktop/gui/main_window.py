"""The main window: sidebar (Library, People & Pets, Concepts, Search), the pages, the photo viewer, the chat
dock, the jobs dock and the status bar. It owns no data: the AppSession does; views refresh when the
database announces a change or a job finishes."""

from __future__ import annotations

import os

from PySide6.QtCore import QSize, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QCloseEvent, QDragEnterEvent, QDropEvent, QKeySequence
from PySide6.QtWidgets import (
    QDockWidget,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QMainWindow,
    QPushButton,
    QSizePolicy,
    QStackedWidget,
    QToolBar,
    QVBoxLayout,
    QWidget,
)

from ..library.ranking import keep_index
from ..library.search import QueryError, concept_names, search
from . import theme
from .chat import ChatPanel
from .concept_page import ConceptPage
from .dialogs import ModelManagerDialog, SettingsChange, SettingsDialog
from .images import ImageCache
from .jobs_panel import FINISHED, JobIndicator, JobsPanel
from .models import PhotoListModel, PhotoSource
from .people_page import PeoplePage
from .viewer import PhotoViewer
from .widgets import EmptyState, PhotoGrid, SearchBar, heading, muted
from .workers import DbBridge, JobBridge, JobView, run_task, wait_for_tasks

PAGES = (("library", "Library", "library"), ("people", "People & Pets", "people"),
         ("concepts", "Concepts", "concepts"), ("search", "Search", "search"))
SEARCH_LIMIT = 5000
REFRESH_MS = 400  # change notices arrive in bursts during a scan: refresh at most this often


class MainWindow(QMainWindow):
    closed = Signal()

    def __init__(self, session, owns_session: bool = True, parent=None):
        super().__init__(parent)
        self.session, self.owns_session = session, owns_session
        self.setObjectName("mainWindow")
        self.setWindowTitle("MyVLM Desktop")
        self.setWindowIcon(theme.app_icon())
        self.resize(1280, 820)
        self.jobs_bridge = JobBridge(session.jobs, parent=self)
        self.db_bridge = DbBridge(session.db, parent=self)
        self.thumbs = ImageCache(capacity=3000, parent=self)
        self.faces = ImageCache(capacity=1500, parent=self)
        thumb_path = session.library.thumbnail_path
        self.library_model = PhotoListModel(thumb_path, self.thumbs, parent=self)
        self.search_model = PhotoListModel(thumb_path, self.thumbs, parent=self)
        self.concept_model = PhotoListModel(thumb_path, self.thumbs, parent=self)
        self.viewer_model: PhotoListModel | None = None
        self.last_query = ""
        self._dirty: set[str] = set()
        self._refresh_timer = QTimer(self)
        self._refresh_timer.setSingleShot(True)
        self._refresh_timer.setInterval(REFRESH_MS)
        self._refresh_timer.timeout.connect(self._refresh_dirty)
        self._build()
        self.db_bridge.changed.connect(self._db_changed)
        self.jobs_bridge.updated.connect(self._job_updated)
        self.library_model.set_source(PhotoSource(session.views.photo_count, session.views.photo_page))
        self._update_library_header()
        self.refresh_all()
        self.show_page("library")
        self.setAcceptDrops(True)  # a .myvlm concept pack dropped on the window is imported

    # -- concept packs dropped on the window -------------------------------------------------------------
    def _dropped_packs(self, event) -> list[str]:
        urls = event.mimeData().urls() if event.mimeData().hasUrls() else []
        return [u.toLocalFile() for u in urls if u.isLocalFile() and u.toLocalFile().lower().endswith(".myvlm")]

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if self._dropped_packs(event):
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:
        packs = self._dropped_packs(event)
        if packs:
            event.acceptProposedAction()
            self.show_page("concepts")
            for path in packs:
                self.concept_page.import_pack(path)

    # -- layout ---------------------------------------------------------------------------------------
    def _build(self) -> None:
        self.sidebar = QListWidget()
        self.sidebar.setObjectName("sidebar")
        self.sidebar.setIconSize(QSize(20, 20))
        for key, label, icon_name in PAGES:
            item = QListWidgetItem(theme.icon(icon_name), label)
            item.setData(Qt.ItemDataRole.UserRole, key)
            self.sidebar.addItem(item)
        self.sidebar.currentItemChanged.connect(
            lambda item, _: item is not None and self.show_page(item.data(Qt.ItemDataRole.UserRole)))
        self.library_stats = QLabel()
        self.library_stats.setObjectName("sidebarStats")
        self.library_stats.setWordWrap(True)
        side = QWidget()
        side.setObjectName("side")
        side.setFixedWidth(208)
        side_layout = QVBoxLayout(side)
        side_layout.setContentsMargins(0, 0, 0, 0)
        side_layout.setSpacing(0)
        side_layout.addWidget(self.sidebar, 1)
        side_layout.addWidget(self.library_stats)
        self.pages = QStackedWidget()
        self.pages.setObjectName("pages")
        self.library_page = self._library_page()
        self.people_page = PeoplePage(self.session, self.faces)
        self.people_page.status.connect(self.flash)
        self.people_page.changed.connect(self.refresh_all)
        self.concept_page = ConceptPage(self.session, self.concept_model, self.jobs_bridge)
        self.concept_page.photoActivated.connect(lambda pid: self.open_photo(pid, self.concept_model))
        self.concept_page.status.connect(self.flash)
        self.search_page = self._search_page()
        self.viewer = PhotoViewer(self.session)
        self.viewer.back.connect(self.close_viewer)
        self.viewer.step.connect(self.step_photo)
        self.page_widgets = {"library": self.library_page, "people": self.people_page, "concepts": self.concept_page,
                             "search": self.search_page, "viewer": self.viewer}
        for widget in self.page_widgets.values():
            self.pages.addWidget(widget)
        central = QWidget()
        central.setObjectName("central")
        layout = QHBoxLayout(central)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addWidget(side)
        layout.addWidget(self.pages, 1)
        self.setCentralWidget(central)
        self._toolbar()
        self._docks()
        self._menus()
        self.job_indicator = JobIndicator(self.jobs_bridge)
        self.job_indicator.clicked.connect(lambda: self.jobs_dock.setVisible(not self.jobs_dock.isVisible()))
        self.statusBar().addPermanentWidget(self.job_indicator)
        self.statusBar().setSizeGripEnabled(False)

    def _library_page(self) -> QWidget:
        page = QWidget()
        self.library_title = heading("Library")
        self.library_count = muted()
        self.library_grid = PhotoGrid(side=self.library_model.side)
        self.library_grid.setModel(self.library_model)
        self.library_grid.photoActivated.connect(lambda pid: self.open_photo(pid, self.library_model))
        self.library_empty = EmptyState("Your photos will appear here",
                                        "Add a folder of photos. The app indexes it in the background, finds the "
                                        "faces and keeps following the folder for new photos.",
                                        action="Add a folder…", icon_name="library")
        self.library_empty.button.clicked.connect(self.add_folder)
        self.library_body = QStackedWidget()
        self.library_body.addWidget(self.library_empty)
        self.library_body.addWidget(self.library_grid)
        header = QHBoxLayout()
        header.addWidget(self.library_title)
        header.addWidget(self.library_count, 1)
        layout = QVBoxLayout(page)
        layout.setContentsMargins(20, 14, 20, 10)
        layout.addLayout(header)
        layout.addWidget(self.library_body, 1)
        return page

    def _search_page(self) -> QWidget:
        page = QWidget()
        self.search_title = heading("Search")
        self.search_count = muted()
        self.search_error = QLabel()
        self.search_error.setObjectName("errorText")
        self.search_error.setWordWrap(True)
        self.search_error.hide()
        self.search_help = muted('Find photos by who and what is in them, by caption words and by date: '
                                 '@Alice AND @Rex beach 2023,  @"Uncle Bob" OR @Rex,  NOT @Alice,  2023-06..2023-08')
        self.search_grid = PhotoGrid(side=self.search_model.side)
        self.search_grid.setModel(self.search_model)
        self.search_grid.photoActivated.connect(lambda pid: self.open_photo(pid, self.search_model))
        header = QHBoxLayout()
        header.addWidget(self.search_title)
        header.addWidget(self.search_count, 1)
        layout = QVBoxLayout(page)
        layout.setContentsMargins(20, 14, 20, 10)
        layout.addLayout(header)
        layout.addWidget(self.search_error)
        layout.addWidget(self.search_help)
        layout.addWidget(self.search_grid, 1)
        return page

    def _toolbar(self) -> None:
        bar = QToolBar("Main")
        bar.setObjectName("mainToolbar")
        bar.setMovable(False)
        bar.setIconSize(QSize(18, 18))
        self.search_bar = SearchBar()
        self.search_bar.setMinimumWidth(420)
        self.search_bar.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.search_bar.searched.connect(self.run_search)
        bar.addWidget(self.search_bar)
        spacer = QWidget()
        spacer.setFixedWidth(12)
        bar.addWidget(spacer)
        self.add_button = QPushButton(theme.icon("folder-add"), "Add folder")
        self.add_button.setObjectName("flat")
        self.add_button.clicked.connect(self.add_folder)
        self.process_button = QPushButton(theme.icon("refresh"), "Process")
        self.process_button.setObjectName("flat")
        self.process_button.setToolTip("Scan the folders, find faces, group them, find your concepts and caption")
        self.process_button.clicked.connect(self.process_all)
        self.chat_button = QPushButton(theme.icon("chat"), "Ask")
        self.chat_button.setObjectName("flat")
        self.chat_button.setCheckable(True)
        self.chat_button.setChecked(True)
        for button in (self.add_button, self.process_button, self.chat_button):
            bar.addWidget(button)
        self.addToolBar(bar)

    def _docks(self) -> None:
        self.chat = ChatPanel(self.session)
        self.chat.open_models.connect(self.open_models)
        self.chat.answered.connect(lambda _: self._mark_dirty("answers"))
        self.chat_dock = QDockWidget("Ask", self)
        self.chat_dock.setObjectName("chatDock")
        self.chat_dock.setWidget(self.chat)
        self.chat_dock.setTitleBarWidget(QWidget())
        self.chat_dock.setFeatures(QDockWidget.DockWidgetFeature.DockWidgetClosable)
        self.chat_dock.setMinimumWidth(320)
        self.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, self.chat_dock)
        self.chat_button.toggled.connect(self.chat_dock.setVisible)
        self.chat_dock.visibilityChanged.connect(self.chat_button.setChecked)
        self.jobs_panel = JobsPanel(self.session.jobs, self.jobs_bridge)
        self.jobs_dock = QDockWidget("Jobs", self)
        self.jobs_dock.setObjectName("jobsDock")
        self.jobs_dock.setWidget(self.jobs_panel)
        self.addDockWidget(Qt.DockWidgetArea.BottomDockWidgetArea, self.jobs_dock)
        self.jobs_dock.hide()

    def _menus(self) -> None:
        menu = self.menuBar()
        file_menu = menu.addMenu("&File")
        self._action(file_menu, "Add folder…", self.add_folder, QKeySequence.StandardKey.Open, "folder-add")
        self._action(file_menu, "Process library", self.process_all, "F5", "refresh")
        file_menu.addSeparator()
        self._action(file_menu, "Settings…", self.open_settings, QKeySequence.StandardKey.Preferences, "settings")
        self._action(file_menu, "Models…", self.open_models, None, "models")
        file_menu.addSeparator()
        self._action(file_menu, "Quit", self.close, QKeySequence.StandardKey.Quit)
        edit = menu.addMenu("&Edit")
        self.undo_action = self._action(edit, "Undo", lambda: self.people_op("undo"), "Ctrl+Z", "undo")
        self.redo_action = self._action(edit, "Redo", lambda: self.people_op("redo"), "Ctrl+Shift+Z", "redo")
        edit.addSeparator()
        self._action(edit, "Find…", self.search_bar.setFocus, QKeySequence.StandardKey.Find, "search")
        view = menu.addMenu("&View")
        for key, label, icon_name in PAGES:
            self._action(view, label, lambda k=key: self.show_page(k), None, icon_name)
        view.addSeparator()
        view.addAction(self.chat_dock.toggleViewAction())
        jobs = self.jobs_dock.toggleViewAction()
        jobs.setShortcut("Ctrl+J")
        view.addAction(jobs)

    def _action(self, menu, text: str, slot, shortcut=None, icon_name: str | None = None) -> QAction:
        action = QAction(theme.icon(icon_name) if icon_name else theme.icon(""), text, self)
        if shortcut is not None:
            action.setShortcut(QKeySequence(shortcut) if isinstance(shortcut, str) else shortcut)
        action.triggered.connect(lambda _=False: slot())
        menu.addAction(action)
        return action

    # -- navigation --------------------------------------------------------------------------------------
    def show_page(self, key: str) -> None:
        self.pages.setCurrentWidget(self.page_widgets[key])
        for row in range(self.sidebar.count()):
            if self.sidebar.item(row).data(Qt.ItemDataRole.UserRole) == key and self.sidebar.currentRow() != row:
                self.sidebar.blockSignals(True)
                self.sidebar.setCurrentRow(row)
                self.sidebar.blockSignals(False)
        if key == "concepts":
            self.concept_page.refresh()
        elif key == "people":
            self.people_page.refresh()
        if key != "viewer":
            self.chat.set_photo(None)

    def current_page(self) -> str:
        current = self.pages.currentWidget()
        return next(k for k, w in self.page_widgets.items() if w is current)

    def open_photo(self, photo_id: int, model: PhotoListModel | None = None) -> None:
        if self.current_page() != "viewer":
            self._return_to = self.current_page()
        self.viewer_model = model
        self.viewer.show_photo(photo_id)
        self.pages.setCurrentWidget(self.viewer)
        self.viewer.setFocus()
        name = os.path.basename(self.viewer.detail["path"]) if self.viewer.detail else ""
        self.chat.set_photo(photo_id, name)

    def close_viewer(self) -> None:
        self.show_page(getattr(self, "_return_to", "library"))

    def step_photo(self, delta: int) -> None:
        model = self.viewer_model
        if model is None or self.viewer.detail is None:
            return
        row = model.row_of(self.viewer.detail["id"])
        if row is None:
            return
        target = row + delta
        if target >= model.rowCount() and model.canFetchMore():
            model.fetchMore()
        if 0 <= target < model.rowCount():
            self.open_photo(model.photo_id(target), model)

    # -- actions -------------------------------------------------------------------------------------------
    def flash(self, message: str) -> None:
        self.statusBar().showMessage(message, 6000)

    def add_folder(self, path: str | None = None) -> None:
        if not path:
            path = QFileDialog.getExistingDirectory(self, "Add a photo folder", os.path.expanduser("~"))
        if path:
            self.add_folders([path])

    def add_folders(self, paths: list[str]) -> None:
        """Add folders off the GUI thread, then index them."""
        def add() -> None:
            for path in paths:
                self.session.library.add_folder(path)

        run_task(add, on_done=lambda _: self._folders_added(paths), on_error=lambda e: self.flash(str(e)), owner=self)

    def _folders_added(self, paths: list[str]) -> None:
        self.flash(f"Added {', '.join(os.path.basename(p.rstrip(os.sep)) or p for p in paths)}; indexing…")
        self.process_all()
        if self.session.settings.get("watch", True):
            run_task(self.session.start_watching)

    def process_all(self) -> None:
        if any(j.status.kind == "process" for j in self.session.jobs.active()):
            self.flash("The library is already being processed.")
            return
        run_task(self.session.process_all, owner=self)  # recording the job is a database write

    def run_search(self, query: str) -> None:
        self.last_query = query
        if not query:
            self.search_bar.set_error(None)
            self.search_error.hide()
            self.show_page("library")
            return
        keep_index(self.session.db)  # searching as one types: rank from arrays once the index is built
        run_task(search, self.session.db, query, limit=SEARCH_LIMIT, owner=self,
                 on_done=lambda hits, q=query: self._searched(q, hits), on_error=lambda e, q=query: self._search_failed(q, e))

    def _searched(self, query: str, hits: list[dict]) -> None:
        if query != self.last_query:
            return  # an older search finished after a newer one started
        self.search_bar.set_error(None)
        self.search_error.hide()
        self.search_help.hide()
        ids = [h["photo_id"] for h in hits]
        self.search_model.set_source(PhotoSource.of_ids(ids, self.session.views.photo_thumbnails))
        self.search_title.setText(f"“{query}”")
        more = "+" if len(ids) >= SEARCH_LIMIT else ""
        self.search_count.setText(f"{len(ids):,}{more} photo{'s' if len(ids) != 1 else ''}")
        self.show_page("search")

    def _search_failed(self, query: str, error: BaseException) -> None:
        if query != self.last_query:
            return
        message = str(error) if isinstance(error, QueryError) else f"search failed: {error}"
        self.search_bar.set_error(message)
        self.search_error.setText(message)
        self.search_error.show()
        self.search_help.show()
        self.search_title.setText("Search")
        self.search_count.setText("")
        self.search_model.set_source(None)
        self.show_page("search")

    def people_op(self, name: str) -> None:
        run_task(self.session.people.op, name, owner=self, on_done=lambda result, n=name: self._undone(n, result),
                 on_error=lambda e: self.flash(str(e)))

    def _undone(self, name: str, result) -> None:
        summary = result.get("summary") if isinstance(result, dict) else (result if isinstance(result, str) else "")
        if result is None:
            self.flash("Nothing to undo." if name == "undo" else "Nothing to redo.")
        else:
            self.flash(f"{name.capitalize()}: {summary}" if summary else name.capitalize())
        self.refresh_all()

    def open_settings(self) -> None:
        dialog = SettingsDialog(self.session.settings, self.session.library.folders(), str(self.session.library.root),
                                self)
        dialog.open_models.connect(self.open_models)
        dialog.restore_backup.connect(self.restore_backup)
        if dialog.exec() == SettingsDialog.DialogCode.Accepted:
            self.apply_settings(dialog.change())

    def apply_settings(self, change: SettingsChange) -> None:
        from ..pipeline.settings import save_settings

        def apply() -> dict:
            for path in change.remove_folders:
                self.session.library.remove_folder(path)
            for path in change.add_folders:
                self.session.library.add_folder(path)
            return save_settings(self.session.db, change.settings) if change.settings else self.session.settings

        def applied(settings: dict) -> None:
            self.session.settings.update(settings)
            if "watch" in change.settings:  # follow the folders from now on, or stop
                run_task(self.session.start_watching if settings["watch"] else self.session.stop_watching,
                         owner=self)
            if change.data_dir:
                from .app import remember_data_dir

                remember_data_dir(change.data_dir)
                self.flash("The new data folder is used from the next start.")
            if change.add_folders:
                self._folders_added(change.add_folders)
            self.refresh_all()
            from .model_dialog import after_settings

            after_settings(self, self.session, change.settings)  # a chosen engine's model may need fetching

        run_task(apply, on_done=applied, on_error=lambda e: self.flash(f"Settings not saved: {e}"), owner=self)

    def restore_backup(self, path: str) -> None:
        """Put a backup in place of the library while the app runs; stale heads and embeddings retrain."""
        from ..pipeline.restore import reconcile_derived

        def restore() -> dict:
            self.session.db.restore(path)
            return reconcile_derived(self.session.library)

        def restored(result: dict) -> None:
            self.flash(f"Library restored from {os.path.basename(path)}.")
            self.refresh_all()

        run_task(restore, on_done=restored, on_error=lambda e: self.flash(f"Not restored: {e}"), owner=self)

    def open_models(self) -> ModelManagerDialog:
        """The model manager, window-modal (the window keeps painting job progress behind it)."""
        from .. import config

        dialog = ModelManagerDialog(str(config.models_dir(self.session.library.root)), self)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.open()
        return dialog

    # -- refreshing -----------------------------------------------------------------------------------------
    def _db_changed(self, what: str, detail) -> None:
        self._mark_dirty(what)

    def _job_updated(self, view: JobView) -> None:
        if view.state in FINISHED:
            self._mark_dirty("photos")
            self._mark_dirty("people")
            if view.state == "failed":
                self.flash(f"{view.kind} failed: {view.error or view.message}")
            if view.kind == "process" and view.state == "done":  # captions skipped: offer the model
                from .model_dialog import after_process

                after_process(self, self.session, view.id)

    def _mark_dirty(self, what: str) -> None:
        self._dirty.add(what)
        if not self._refresh_timer.isActive():
            self._refresh_timer.start()

    def _refresh_dirty(self) -> None:
        dirty, self._dirty = self._dirty, set()
        if dirty & {"photos", "folders"}:
            self.library_model.refresh()
            self._update_library_header()
        if dirty - {"photos", "folders", "answers", "settings"}:
            self.refresh_all()
        elif "answers" in dirty and self.current_page() == "viewer":
            self.viewer.refresh()

    def refresh_all(self) -> None:
        self.search_bar.set_names(concept_names(self.session.db))
        self._update_library_header()
        page = self.current_page() if self.pages.currentWidget() is not None else "library"
        if page == "people":
            self.people_page.refresh()
        elif page == "concepts":
            self.concept_page.refresh()
        elif page == "viewer":
            self.viewer.refresh()
        elif page == "search" and self.last_query:
            self.run_search(self.last_query)

    def _update_stats(self) -> None:
        run_task(self.session.library.status, on_done=self._show_stats)

    def _show_stats(self, status: dict) -> None:
        folders = len(self.session.library.folders())
        lines = [f"{status['photos']:,} photos in {folders} folder{'s' if folders != 1 else ''}"]
        if status["faces"]:
            lines.append(f"{status['faces']:,} faces · {status['concepts']} named")
        if status["errors"]:
            lines.append(f"{status['errors']} files could not be read")
        self.library_stats.setText("\n".join(lines) if status["photos"] or folders else "")

    def _update_library_header(self) -> None:
        self._update_stats()
        total = self.library_model.total()
        self.library_count.setText(f"{total:,} photo{'s' if total != 1 else ''}" if total else "")
        has_folders = bool(self.session.library.folders())
        self.library_body.setCurrentWidget(self.library_grid if total or has_folders else self.library_empty)

    # -- closing ---------------------------------------------------------------------------------------------
    def closeEvent(self, event: QCloseEvent) -> None:
        self.shutdown()
        super().closeEvent(event)
        self.closed.emit()

    def shutdown(self) -> None:
        """Stop loading images, wait for tasks in flight, stop the jobs (they resume at the next start)."""
        if getattr(self, "_shut", False):
            return
        self._shut = True
        self.jobs_bridge.close()
        self.db_bridge.close()
        self._refresh_timer.stop()
        self.thumbs.shutdown()
        self.faces.shutdown()
        wait_for_tasks(10000)
        if self.owns_session:
            self.session.close()

"""The chat side panel: questions about the open photo (the VLM, with concept names) or about the library.

Answers stream in token by token (the VLM's on_token callback becomes a Qt signal); the history of each
photo is the answers stored in the library, so it is there again after a restart. With no VLM installed
the panel says so plainly and offers the model manager; library questions still work.
"""

from __future__ import annotations

import html
import logging
import os

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QButtonGroup,
    QFrame,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QTextBrowser,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from ..models.errors import ModelUnavailable
from ..pipeline.questions import ask_library, ask_photo, preload_phraser
from ..pipeline.settings import vlm_options
from . import theme
from .widgets import heading, muted
from .workers import TokenStream, run_task

log = logging.getLogger(__name__)

PHOTO, LIBRARY = "photo", "library"


class ChatPanel(QWidget):
    open_models = Signal()
    answered = Signal(dict)  # {"question", "answer", "photo_id", ...} once an answer is complete

    def __init__(self, session, parent=None):
        super().__init__(parent)
        self.setObjectName("chatPanel")
        self.setAttribute(Qt.WidgetAttribute.WA_StyledBackground)
        self.session = session
        self.photo_id: int | None = None
        self.photo_name = ""
        self.scope = PHOTO
        self.messages: list[dict] = []
        self.busy = False
        self._stream: TokenStream | None = None
        self._preloading = False  # SmolLM2 is being (or was) loaded for library questions
        self.history = QTextBrowser()
        self.history.setObjectName("chatHistory")
        self.history.setOpenLinks(False)
        self.context = muted()
        self.banner = QFrame()
        self.banner.setObjectName("banner")
        self.banner_text = QLabel()
        self.banner_text.setWordWrap(True)
        self.banner_text.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.models_button = QPushButton(theme.icon("models"), "Open the model manager")
        self.models_button.clicked.connect(self.open_models)
        banner_layout = QVBoxLayout(self.banner)
        banner_layout.addWidget(self.banner_text)
        banner_layout.addWidget(self.models_button, 0, Qt.AlignmentFlag.AlignLeft)
        self.banner.hide()
        self.input = QLineEdit()
        self.input.setObjectName("chatInput")
        self.input.returnPressed.connect(self.send)
        self.send_button = QToolButton()
        self.send_button.setObjectName("sendButton")
        self.send_button.setIcon(theme.icon("send"))
        self.send_button.setToolTip("Ask")
        self.send_button.clicked.connect(self.send)
        self.scope_buttons = QButtonGroup(self)
        scope_row = QHBoxLayout()
        scope_row.setSpacing(0)
        for value, label in ((PHOTO, "This photo"), (LIBRARY, "Whole library")):
            button = QPushButton(label)
            button.setObjectName("segment")
            button.setCheckable(True)
            button.setChecked(value == PHOTO)
            button.clicked.connect(lambda _=False, v=value: self.set_scope(v))
            self.scope_buttons.addButton(button)
            scope_row.addWidget(button)
        scope_row.addStretch(1)
        row = QHBoxLayout()
        row.addWidget(self.input, 1)
        row.addWidget(self.send_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(12, 10, 12, 12)
        layout.addWidget(heading("Ask", "sectionTitle"))
        layout.addLayout(scope_row)
        layout.addWidget(self.context)
        layout.addWidget(self.history, 1)
        layout.addWidget(self.banner)
        layout.addLayout(row)
        self._update_context()

    # -- what the panel is about ------------------------------------------------------------------------
    def set_photo(self, photo_id: int | None, name: str = "") -> None:
        self.photo_id, self.photo_name = photo_id, name
        if self.scope == PHOTO:
            self.load_history()
        self._update_context()

    def set_scope(self, scope: str) -> None:
        self.scope = scope
        for button in self.scope_buttons.buttons():
            button.setChecked((button.text() == "This photo") == (scope == PHOTO))
        self.banner.hide()
        self.load_history()
        self._update_context()
        if scope == LIBRARY:
            self.preload()

    def preload(self) -> None:
        """Load the phrasing model in the background once, while the user types the first library question."""
        if self._preloading:
            return
        self._preloading = True
        run_task(preload_phraser, self.session.library, owner=self, on_done=lambda _: None,
                 on_error=lambda e: log.info("SmolLM2 not preloaded: %s", e))

    def load_history(self) -> None:
        if self.scope == PHOTO and self.photo_id is None:
            self.messages = []
        else:
            photo = self.photo_id if self.scope == PHOTO else None
            self.messages = [{"question": r["question"], "answer": r["answer"], "backend": r["backend"]}
                             for r in self.session.views.chat_history(photo)]
        self.render()

    def _update_context(self) -> None:
        if self.scope == LIBRARY:
            self.context.setText("Questions about all your photos, answered from the library: "
                                 "“When did I last see <Rex>?”")
            self.input.setPlaceholderText("Ask about your library…")
            self.input.setEnabled(not self.busy)
        elif self.photo_id is None:
            self.context.setText("Open a photo to ask about it.")
            self.input.setPlaceholderText("Open a photo first")
            self.input.setEnabled(False)
        else:
            self.context.setText(f"About {self.photo_name}" if self.photo_name else "About this photo")
            self.input.setPlaceholderText("What is <Alice> holding?")
            self.input.setEnabled(not self.busy)
        self.send_button.setEnabled(self.input.isEnabled())

    # -- asking ------------------------------------------------------------------------------------------
    def send(self) -> None:
        question = self.input.text().strip()
        if not question or self.busy or (self.scope == PHOTO and self.photo_id is None):
            return
        self.input.clear()
        self.banner.hide()
        self.busy = True
        self._update_context()
        message = {"question": question, "answer": "", "streaming": True}
        self.messages.append(message)
        self.render()
        stream = TokenStream(self)
        stream.token.connect(lambda text, m=message: self._token(m, text))
        self._stream = stream
        photo_id = self.photo_id if self.scope == PHOTO else None
        if photo_id is None:
            run_task(ask_library, self.session.library, question, on_token=stream, owner=self,
                     on_done=lambda r, m=message: self._done(m, r, None),
                     on_error=lambda e, m=message: self._failed(m, e))
        else:
            run_task(ask_photo, self.session.library, photo_id, question, on_token=stream, owner=self,
                     **vlm_options(self.session.settings),
                     on_done=lambda r, m=message, p=photo_id: self._done(m, r, p),
                     on_error=lambda e, m=message: self._failed(m, e))

    def _token(self, message: dict, text: str) -> None:
        message["answer"] += text
        self.render()

    def _done(self, message: dict, result: dict, photo_id: int | None) -> None:
        message["answer"] = (result or {}).get("answer") or message["answer"]
        message["backend"] = (result or {}).get("backend", "")
        message["facts"] = (result or {}).get("facts")
        message.pop("streaming", None)
        self._finish()
        self.answered.emit({**message, "photo_id": photo_id})

    def _failed(self, message: dict, error: BaseException) -> None:
        self.messages.remove(message)
        if isinstance(error, ModelUnavailable):
            self.banner_text.setText(f"<b>No vision-language model is installed.</b><br>{html.escape(str(error))}")
        else:
            self.banner_text.setText(f"<b>The question could not be answered.</b><br>"
                                     f"{html.escape(type(error).__name__)}: {html.escape(str(error))}")
        self.banner.show()
        self.input.setText(message["question"])
        self._finish()
        if isinstance(error, ModelUnavailable):  # offer the model; the question is asked again once it is in
            from .. import config
            from .model_dialog import offer_model

            offer_model(self, error, "Answers questions about a photo, naming the people and pets you taught it.",
                        config.models_dir(self.session.library.root), self.send)

    def _finish(self) -> None:
        self.busy = False
        if self._stream is not None:
            self._stream.deleteLater()
            self._stream = None
        self._update_context()
        self.render()

    # -- drawing -----------------------------------------------------------------------------------------
    def render(self) -> None:
        parts = []
        for m in self.messages:
            parts.append(_bubble(m["question"], mine=True))
            answer = m["answer"] or ("…" if m.get("streaming") else "")
            parts.append(_bubble(answer + (" ▍" if m.get("streaming") else ""), mine=False,
                                 note=m.get("backend") or ""))
        if not parts:
            parts.append(f"<p style='color:{theme.MUTED.name()}'>No questions yet.</p>")
        self.history.setHtml("".join(parts))
        bar = self.history.verticalScrollBar()
        bar.setValue(bar.maximum())

    def transcript(self) -> list[tuple[str, str]]:
        return [(m["question"], m["answer"]) for m in self.messages]


def _bubble(text: str, mine: bool, note: str = "") -> str:
    color = "#dcebea" if mine else "#ffffff"
    align = "right" if mine else "left"
    body = html.escape(text).replace("\n", "<br>")
    extra = f"<br><span style='color:#8a8f95; font-size:small'>{html.escape(note)}</span>" if note else ""
    return (f"<table width='100%' cellspacing='0' cellpadding='0' style='margin-bottom:6px'><tr>"
            f"<td align='{align}'><table cellpadding='8' style='background-color:{color}; "
            f"border:1px solid #e2dfd8'><tr><td>{body}{extra}</td></tr></table></td></tr></table>")


def base_name(path: str) -> str:
    return os.path.basename(path)

"""The app's settings, stored in the library's `settings` table as JSON values."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from .. import config
from ..library.db import Database, connect

DEFAULT_SETTINGS: dict[str, Any] = {
    "face_engine": "auto",      # auto | dlib | dlib+mtcnn | dlib+cnn | insightface
    "embedder": "sscd",         # sscd | clip
    "vlm_backend": "smolvlm",   # smolvlm | blip2 | llava
    "vlm_model": "",            # a model name or folder; empty: the backend's default
    "device": "auto",           # auto | cuda | mps | cpu
    "caption_detail": "auto",   # auto | fast | detailed (SmolVLM: one 512 px view, or the model card's tiles)
    "watch": True,              # follow the folders for new, changed and deleted files
}
CHOICES = {
    "face_engine": ("auto", "dlib", "dlib+mtcnn", "dlib+cnn", "insightface"),
    "embedder": ("sscd", "clip"),
    "vlm_backend": ("smolvlm", "blip2", "llava"),
    "device": ("auto", "cuda", "mps", "cpu"),
    "caption_detail": ("auto", "fast", "detailed"),
}


def load_settings(db: Database) -> dict[str, Any]:
    values = dict(DEFAULT_SETTINGS)
    for row in db.query("SELECT key, value FROM settings"):
        try:
            value = json.loads(row["value"])
        except ValueError:  # a hand-edited value that is not JSON: keep the default
            continue
        if valid_setting(row["key"], value):  # of the wrong type or not a choice: keep the default
            values[row["key"]] = value
    return values


def valid_setting(key: str, value: Any) -> bool:
    if key in CHOICES:
        return value in CHOICES[key]
    return key not in DEFAULT_SETTINGS or type(value) is type(DEFAULT_SETTINGS[key])


def save_settings(db: Database, changes: dict[str, Any]) -> dict[str, Any]:
    """Write the changed settings (checked against CHOICES) and return them all."""
    for key, value in changes.items():
        if key in CHOICES and value not in CHOICES[key]:
            raise ValueError(f"{key} must be one of {', '.join(CHOICES[key])}, not {value!r}")

    def write(conn):
        conn.executemany("INSERT INTO settings(key, value) VALUES (?, ?) "
                         "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                         [(k, json.dumps(v)) for k, v in changes.items()])

    db.write(write)
    db.notify("settings", sorted(changes))
    return load_settings(db)


def vlm_options(settings: dict[str, Any]) -> dict[str, Any]:
    """backend, model and device for the VLM (the CLI's --backend, --model and --device override them)."""
    return {"backend": settings.get("vlm_backend") or DEFAULT_SETTINGS["vlm_backend"],
            "model": settings.get("vlm_model") or None,
            "device": settings.get("device") or DEFAULT_SETTINGS["device"],
            "detail": settings.get("caption_detail") or DEFAULT_SETTINGS["caption_detail"]}


def library_has_folders(data_dir) -> bool:
    """Whether a library with at least one photo folder exists in `data_dir` (else: the first run)."""
    try:
        database = config.database_path(config.data_dir(data_dir))
    except OSError:  # gone or read-only: opening the library says so in one message
        return True
    if not database.exists():
        return False
    try:
        conn = connect(database)
        try:
            tables = conn.execute("SELECT count(*) FROM sqlite_master WHERE name = 'folders'").fetchone()[0]
            return bool(tables) and conn.execute("SELECT count(*) FROM folders").fetchone()[0] > 0
        finally:
            conn.close()
    except sqlite3.DatabaseError:  # damaged: opening it says so and names the newest backup
        return True

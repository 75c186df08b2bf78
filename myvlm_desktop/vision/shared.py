"""Loaded engines are shared: one instance per engine class and distinct options (weights load once)."""

from __future__ import annotations

import inspect
import threading

from ..models.registry import spec

_loaded: dict[tuple, object] = {}
_lock = threading.Lock()


def shared_instance(cls, options: dict):
    """`cls(**options)` made once; options `cls` does not take are dropped ("auto" passes the same to all)."""
    accepted = inspect.signature(cls).parameters
    options = {k: v for k, v in options.items() if k in accepted}
    key = (cls, _key(cls.model, options))
    with _lock:
        if key not in _loaded:
            _loaded[key] = cls(**options)
        return _loaded[key]


def _key(model: str, options: dict) -> tuple:
    if model and spec(model).source == "package":  # the models folder cannot change weights a package ships
        options = {k: v for k, v in options.items() if k != "models_dir"}
    return tuple(sorted((k, repr(v)) for k, v in options.items()))

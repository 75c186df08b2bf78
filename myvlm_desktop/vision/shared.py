"""Loaded engines are shared: one instance per engine class and distinct options (weights load once)."""

from __future__ import annotations

import inspect
import threading

from ..models.registry import spec

_loaded: dict[tuple, object] = {}
_lock = threading.Lock()


def shared_instance(cls, options: dict):
    """`cls(**options)` made once per distinct options; an option `cls` does not take is a TypeError."""
    unknown = sorted(set(options) - set(inspect.signature(cls).parameters))
    if unknown:
        raise TypeError(f"{cls.__name__} takes no option {', '.join(unknown)}")
    key = (cls, _key(cls.model, options))
    with _lock:
        if key not in _loaded:
            _loaded[key] = cls(**options)
        return _loaded[key]


def _key(model: str, options: dict) -> tuple:
    if model and spec(model).source == "package":  # the models folder cannot change weights a package ships
        options = {k: v for k, v in options.items() if k != "models_dir"}
    return tuple(sorted((k, repr(v)) for k, v in options.items()))

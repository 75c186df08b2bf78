"""Find the face engine or image embedder a head was trained with, from the id stored beside its vectors.

A head only makes sense with the model whose vectors it was trained on, so heads record the engine id
(faces.engine / image_embeddings.embedder) and this module loads the engine that produces exactly it.
The vision getters share loaded engines between callers, so asking again costs nothing.
"""

from __future__ import annotations

from ..models.errors import ModelUnavailable

FACE_ENGINES = ("insightface", "dlib-cnn", "dlib")
EMBEDDERS = ("clip", "sscd")


def face_engine_for(engine_id: str):
    """The face engine whose `engine_id` is `engine_id`; ModelUnavailable when it cannot be loaded."""
    from ..vision.faces import get_face_engine

    return _matching(engine_id, FACE_ENGINES, get_face_engine, "face engine")


def embedder_for(embedder_id: str):
    """The image embedder whose `engine_id` is `embedder_id`; ModelUnavailable when it cannot be loaded."""
    from ..vision.embed import get_image_embedder

    return _matching(embedder_id, EMBEDDERS, get_image_embedder, "image embedder")


def _matching(engine_id: str, names: tuple[str, ...], getter, what: str):
    # the engine the id is named after first (longest name first: dlib-cnn before dlib): loading the
    # others costs seconds for nothing
    ordered = sorted(names, key=lambda n: (not engine_id.startswith(n + "-"), -len(n)))
    problems = []
    for name in ordered:
        try:
            engine = getter(name)
        except ModelUnavailable as exc:
            problems.append(str(exc))
            continue
        if engine.engine_id == engine_id:
            return engine
    raise ModelUnavailable(f"{what} {engine_id}", "this version is not installed",
                           "Reinstall it, or index the library again and retrain the heads. " + " ".join(problems))

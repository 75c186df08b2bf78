"""Shared engines: one instance per options, and an option the engine does not take is an error."""

import pytest

from myvlm_desktop.vision.faces import get_face_engine


def test_an_unknown_option_is_refused_not_dropped():
    with pytest.raises(TypeError, match="DlibEngine takes no option det_size"):
        get_face_engine("dlib", det_size=320)  # an insightface option: dlib would silently ignore it
    assert get_face_engine("dlib", max_side=800) is get_face_engine("dlib", max_side=800)
    assert get_face_engine("dlib", max_side=800) is not get_face_engine("dlib")

"""Image embedders on scikit-image's photos."""

import numpy as np
import pytest
from skimage import data

from myvlm_desktop.models.errors import ModelUnavailable
from myvlm_desktop.vision.embed import ImageEmbedder, get_image_embedder


@pytest.fixture(scope="module")
def sscd():
    return get_image_embedder("sscd")


@pytest.mark.parametrize("name", ["astronaut", "coffee", "chelsea"])
def test_a_crop_and_a_mirror_are_closer_than_another_photo(sscd, name):
    photo = getattr(data, name)()
    h, w = photo.shape[:2]
    crop = photo[h // 10: h - h // 10, w // 8: w - w // 10]
    mirror = photo[:, ::-1]
    others = [getattr(data, n)() for n in ("astronaut", "coffee", "chelsea", "rocket") if n != name]
    vectors = sscd.embed([photo, crop, mirror, *others])
    similarity = vectors[0] @ vectors[1:].T
    copies, unrelated = similarity[:2], similarity[2:]
    assert copies.min() > unrelated.max()
    assert copies.min() > 0.75  # Immaculate's SSCD duplicate threshold


def test_vectors_are_normalised_float32(sscd):
    vectors = sscd.embed([data.astronaut(), data.camera(), data.coffee()[:, :, :3]])  # camera is grey
    assert vectors.shape == (3, sscd.dim) == (3, 512) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert sscd.embed([]).shape == (0, 512)


def test_one_photo_gives_the_same_vector_alone_or_in_a_batch(sscd):
    alone = sscd.embed([data.coffee()])
    batch = sscd.embed([data.astronaut(), data.coffee()])
    assert np.allclose(alone[0], batch[1], atol=1e-4)


def test_identity(sscd):
    assert isinstance(sscd, ImageEmbedder)
    assert sscd.engine_id == "sscd-distilled-320"
    assert get_image_embedder("sscd") is sscd


def test_clip_says_what_is_missing():
    try:
        import open_clip  # noqa: F401
    except ImportError:
        match = "open_clip_torch"
    else:
        from myvlm_desktop.models.registry import is_available

        if is_available("clip-vit-h-14-384") or is_available("clip-vit-b-32"):
            pytest.skip("CLIP is installed on this machine")
        match = "CLIP weights"
    with pytest.raises(ModelUnavailable, match=match):
        get_image_embedder("clip")


def test_unknown_embedder():
    with pytest.raises(ModelUnavailable, match="unknown embedder"):
        get_image_embedder("resnet")

"""Image embedders on scikit-image's photos."""

import numpy as np
import pytest
from PIL import Image
from skimage import data
from skimage.transform import resize

from myvlm_desktop.models.errors import ModelUnavailable
from myvlm_desktop.people.cluster import CLIP, params_for
from myvlm_desktop.vision.embed import ImageEmbedder, get_image_embedder, photo_vector, subject_crops
from tests.vision.tiny_clip import PROJECTION, install


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
    assert sscd.engine_id == "sscd-distilled-320-crops5"  # weights and how a photo's vector is made
    assert get_image_embedder("sscd") is sscd


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """The CLIP embedder loaded by the product's code from a tiny random CLIPModel in a models folder."""
    models = tmp_path_factory.mktemp("models")
    install(models)
    return get_image_embedder("clip", models_dir=models)


def test_clip_says_what_is_missing(tmp_path):
    with pytest.raises(ModelUnavailable, match="clip-vit-b-32: weights not found.*myvlm models download"):
        get_image_embedder("clip", models_dir=tmp_path)


def test_clip_with_its_weights_missing_says_so(tmp_path):
    (install(tmp_path) / "model.safetensors").unlink()
    with pytest.raises(ModelUnavailable, match="clip-vit-b-32: weights incomplete|weights not found"):
        get_image_embedder("clip", models_dir=tmp_path)


def test_clip_files_that_do_not_load_say_which_folder(tmp_path):
    folder = install(tmp_path)
    (folder / "config.json").write_text("{ not json")
    with pytest.raises(ModelUnavailable, match=f"clip-vit-b-32: its files do not load .*{folder.name}"):
        get_image_embedder("clip", models_dir=tmp_path)


def test_clip_gives_unit_vectors_of_its_projection_size(clip):
    photos = [data.astronaut(), data.camera(), data.coffee(), data.chelsea()]  # camera is grey
    vectors = clip.embed(photos)
    assert clip.dim == PROJECTION and vectors.shape == (4, PROJECTION) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert clip.embed([]).shape == (0, PROJECTION)
    similarity = vectors @ vectors.T
    assert similarity[np.triu_indices(4, 1)].max() < 0.999  # different photos, different vectors
    assert np.allclose(clip.embed(photos[2:3])[0], vectors[2], atol=1e-5)  # alone or in a batch, the same
    assert np.array_equal(clip.embed(photos), vectors)  # deterministic
    assert clip.describe(data.coffee()).shape == (PROJECTION,)


def test_clip_vectors_are_those_of_the_checkpoint(clip, tmp_path):
    """The embedder's vector is CLIPModel's image feature of the processed photo, whatever loaded it."""
    import torch
    from PIL import Image
    from transformers import CLIPImageProcessorPil, CLIPModel

    folder = install(tmp_path)
    model = CLIPModel.from_pretrained(folder).eval()
    pixels = CLIPImageProcessorPil.from_pretrained(folder)(Image.fromarray(data.astronaut()), return_tensors="pt")
    with torch.inference_mode():
        expected = model.get_image_features(**pixels).pooler_output[0].numpy()
    assert np.allclose(clip.embed([data.astronaut()])[0], expected / np.linalg.norm(expected), atol=1e-5)
    assert clip.engine_id == "clip-openai-clip-vit-base-patch32-crops5"
    assert params_for(clip.engine_id) is CLIP


@pytest.mark.parametrize("bad", [np.zeros((8, 8, 3), np.float32), np.zeros((8, 8, 2), np.uint8),
                                 np.zeros((0, 8, 3), np.uint8)])
def test_a_bad_image_array_gets_the_same_clear_error_from_each_embedder(sscd, clip, bad):
    messages = []
    for embedder in (sscd, clip):
        with pytest.raises(ValueError, match="expected an") as error:
            embedder.embed([data.astronaut(), bad])
        messages.append(str(error.value))
    assert messages[0] == messages[1]


@pytest.mark.slow
def test_a_library_indexed_with_clip_embeds_its_photos_and_marks_a_corrupt_one(library, tmp_path):
    from myvlm_desktop import config
    from myvlm_desktop.library.scan import scan_library
    from myvlm_desktop.pipeline.index import index_library

    install(config.models_dir(library.root))
    photos = tmp_path / "photos"
    photos.mkdir()
    Image.fromarray(data.coffee()).save(photos / "coffee.png")
    Image.fromarray(data.chelsea()).save(photos / "chelsea.jpg")
    (photos / "broken.jpg").write_bytes((photos / "chelsea.jpg").read_bytes()[:300])
    library.add_folder(photos)
    scan_library(library)
    result = index_library(library, face_engine="dlib", embedder="clip", workers=1)
    assert result["embeddings"] == 2
    rows = library.db.query("SELECT embedder, length(embedding) AS size FROM image_embeddings")
    assert [r["size"] for r in rows] == [PROJECTION * 4] * 2
    assert {r["embedder"] for r in rows} == {"clip-openai-clip-vit-base-patch32-crops5"}
    status = library.db.query("SELECT status, error FROM photos WHERE path LIKE '%broken.jpg'")[0]
    assert status["status"] == "error" and "truncated" in status["error"].lower()


def test_unknown_embedder():
    with pytest.raises(ModelUnavailable, match="unknown embedder"):
        get_image_embedder("resnet")


def _sized(image: np.ndarray, height: int, width: int) -> np.ndarray:
    return (resize(image[..., :3], (height, width), anti_aliasing=True) * 255).astype(np.uint8)


def _cat_on(background: np.ndarray) -> np.ndarray:
    """Chelsea the cat covering 40% of each side, in the middle of another photo."""
    scene = _sized(np.atleast_3d(background).repeat(3 // np.atleast_3d(background).shape[2], axis=2), 480, 640)
    scene[144:336, 192:448] = _sized(data.chelsea(), 192, 256)
    return scene


def test_subject_crops_are_the_centre_and_four_corners_at_70_percent():
    photo = np.arange(100 * 200 * 3, dtype=np.uint8).reshape(100, 200, 3)
    crops = subject_crops(photo)
    assert [c.shape for c in crops] == [(70, 140, 3)] * 5
    assert (crops[0] == photo[15:85, 30:170]).all() and (crops[4] == photo[30:, 60:]).all()
    assert subject_crops(np.zeros((1, 1, 3), np.uint8))[0].shape == (1, 1, 3)


def test_a_photo_is_described_by_the_mean_of_its_frame_and_subject_crops(sscd):
    photo = data.coffee()
    expected = photo_vector(sscd.embed([photo, *subject_crops(photo)]))
    assert np.allclose(sscd.describe(photo), expected, atol=1e-5)
    assert abs(np.linalg.norm(expected) - 1) < 1e-5 and expected.dtype == np.float32
    assert not np.allclose(sscd.describe(photo), sscd.embed([photo])[0], atol=1e-2)


def test_one_animal_on_different_backgrounds_is_within_the_cluster_distance_only_with_crops(sscd):
    scenes = [_cat_on(b) for b in (data.astronaut(), data.coffee(), data.rocket(), data.brick(), data.grass())]
    limit = params_for(sscd.engine_id).max_distance
    upper = np.triu_indices(len(scenes), 1)
    whole = sscd.embed(scenes)
    described = np.stack([sscd.describe(s) for s in scenes])
    assert (1 - whole @ whole.T)[upper].max() > limit  # the background pulls whole frames apart
    assert (1 - described @ described.T)[upper].max() < limit

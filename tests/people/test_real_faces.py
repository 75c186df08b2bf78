"""Real photos: the 6 people of insightface's t1.jpg and a mirrored copy of it form 6 clusters of 2; the
same people in other photos made from it are recognised within dlib's threshold, and nobody else is.

No pip package ships two photos of one person (insightface ships t1.jpg, a group of 6, and one crop of
Tom Hanks; skimage one astronaut), so the other photos are made here: each person cut out with head and
shoulders, rescaled, rotated, re-lit, some in grey, placed in a new order on another background, saved as
a low-quality JPEG. Weaker than two shots of a person, but not a mirror pair: the pixels differ everywhere.
"""

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageEnhance, ImageOps
from skimage import data

from myvlm_desktop.people import listing, ops
from myvlm_desktop.pipeline import index
from myvlm_desktop.vision.faces import DLIB_THRESHOLD, get_face_engine
from tests.conftest import insightface_image


@pytest.mark.slow
def test_group_photo_and_its_mirror_make_six_pairs(library, photo_dir):
    """The whole chain on real photos: scan, index (dlib + SSCD), cluster, name, @Name in search, re-cluster."""
    from myvlm_desktop.library.scan import scan_library
    from myvlm_desktop.library.search import search
    from myvlm_desktop.pipeline.cluster import cluster_library

    image = Image.open(insightface_image("t1.jpg")).convert("RGB")
    image.save(photo_dir / "t1.jpg")
    image.transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(photo_dir / "t1-mirrored.jpg")
    library.add_folder(photo_dir)
    scan_library(library)
    indexed = index.index_library(library, face_engine="dlib", embedder="sscd", workers=1)
    assert indexed["faces"] == 12
    result = cluster_library(library)
    assert result["faces"]["new_clusters"] == 6 and result["faces"]["waiting"] == 0
    clusters = listing.list_clusters(library.db, kind="face")
    assert [c["size"] for c in clusters] == [2] * 6
    for c in clusters:  # each pair: a face and its mirror image, boxes mirrored around the middle
        members = listing.cluster_members(library.db, c["id"])
        first, second = sorted(members, key=lambda m: Path(m["path"]).name)
        assert (Path(first["path"]).name, Path(second["path"]).name) == ("t1-mirrored.jpg", "t1.jpg")
        centre = (first["box"][0] + first["box"][2]) / 2
        assert abs(centre - (image.width - (second["box"][0] + second["box"][2]) / 2)) < 20
    ops.name_cluster(library, clusters[0]["id"], "Ann")
    assert len(search(library.db, "@Ann")) == 2
    again = cluster_library(library, full=True)  # a full re-cluster keeps the name and the pairs
    assert again["faces"]["waiting"] == 0
    after = listing.list_clusters(library.db, kind="face")
    assert (after[0]["concept"], after[0]["size"]) == ("Ann", 2) and [c["size"] for c in after] == [2] * 6


def recomposed(group: Image.Image, boxes, background: np.ndarray, layout: list[tuple]) -> tuple[np.ndarray, list]:
    """Another photo of the group's people: (pixels, where each person was put as (person, box))."""
    photo = Image.fromarray(background).convert("RGB").resize((1300, 900))
    placed = []
    for slot, (person, scale, degrees, light, grey) in enumerate(layout):
        x1, y1, x2, y2 = boxes[person]
        w, h = x2 - x1, y2 - y1
        cut = group.crop((int(x1 - 0.8 * w), int(y1 - 0.9 * h), int(x2 + 0.8 * w), int(y2 + 1.2 * h)))
        cut = cut.resize((int(cut.width * scale), int(cut.height * scale)), Image.Resampling.BILINEAR)
        cut = ImageEnhance.Brightness(cut).enhance(light)
        cut = ImageOps.grayscale(cut).convert("RGB") if grey else cut
        cut = cut.rotate(degrees, resample=Image.Resampling.BICUBIC, expand=True, fillcolor=(90, 60, 40))
        x, y = 60 + (slot % 3) * 420, 40 + (slot // 3) * 440
        photo.paste(cut, (x, y))
        placed.append((person, (x, y, x + cut.width, y + cut.height)))
    buffer = io.BytesIO()
    photo.save(buffer, "JPEG", quality=45)
    return np.asarray(Image.open(buffer).convert("RGB")), placed


def people_in(engine, rgb: np.ndarray, placed: list) -> tuple[np.ndarray, list[int]]:
    """The faces found, and for each the person placed where it is."""
    faces = engine.analyze(rgb)
    owners = []
    for f in faces:
        cx, cy = (f.box[0] + f.box[2]) / 2, (f.box[1] + f.box[3]) / 2
        owners.append(next(p for p, (x1, y1, x2, y2) in placed if x1 <= cx <= x2 and y1 <= cy <= y2))
    return np.stack([f.embedding for f in faces]), owners


@pytest.mark.slow
def test_the_same_people_in_other_photos_are_recognised_and_others_are_not():
    engine = get_face_engine("dlib")
    group = Image.open(insightface_image("t1.jpg")).convert("RGB")
    original = engine.analyze(np.asarray(group))
    assert len(original) == 6
    boxes = [f.box for f in original]
    photos = [(np.stack([f.embedding for f in original]), list(range(6)))]
    for background, layout in [
        (data.coffee(), [(3, 1.3, -5, 0.8, False), (0, 0.85, 4, 1.2, True), (5, 1.15, -3, 0.85, False),
                         (1, 1.25, 6, 1.15, False), (4, 0.9, -4, 0.8, True), (2, 1.1, 3, 1.2, False)]),
        (data.brick(), [(2, 0.9, 6, 1.2, True), (4, 1.2, -4, 0.8, False), (1, 1.1, 3, 1.25, False),
                        (5, 0.85, -6, 0.85, True), (0, 1.3, 5, 1.15, False), (3, 1.0, -3, 0.8, False)]),
    ]:
        vectors, owners = people_in(engine, *recomposed(group, boxes, background, layout))
        assert sorted(owners) == list(range(6))
        photos.append((vectors, owners))
    stranger = engine.analyze(np.asarray(Image.open(insightface_image("Tom_Hanks_54745.png")).convert("RGB")
                                         .resize((336, 336))))
    assert len(stranger) == 1
    photos.append((stranger[0].embedding[None, :], [6]))
    for i, (a, who_a) in enumerate(photos):
        for b, who_b in photos[i + 1:]:
            distance = engine.distance(a, b)
            same = np.equal.outer(who_a, who_b)
            assert distance[same].max(initial=0.0) < DLIB_THRESHOLD  # one person across two photos
            assert distance[~same].min() > DLIB_THRESHOLD            # two people, never

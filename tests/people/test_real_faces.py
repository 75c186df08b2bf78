"""Real photos: the 6 people of insightface's t1.jpg and a mirrored copy of it form 6 clusters of 2."""

from pathlib import Path

import pytest
from PIL import Image

from myvlm_desktop.people import ops
from tests.conftest import insightface_image


@pytest.mark.slow
def test_group_photo_and_its_mirror_make_six_pairs(library, photo_dir):
    """The whole chain on real photos: scan, index (dlib + SSCD), cluster, name, @Name in search, re-cluster."""
    index = pytest.importorskip("myvlm_desktop.pipeline.index")
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
    clusters = ops.list_clusters(library, kind="face", members=True)
    assert [c["size"] for c in clusters] == [2] * 6
    for c in clusters:  # each pair: a face and its mirror image, boxes mirrored around the middle
        first, second = sorted(c["members"], key=lambda m: Path(m["path"]).name)
        assert (Path(first["path"]).name, Path(second["path"]).name) == ("t1-mirrored.jpg", "t1.jpg")
        centre = (first["box"][0] + first["box"][2]) / 2
        assert abs(centre - (image.width - (second["box"][0] + second["box"][2]) / 2)) < 20
    ops.name_cluster(library, clusters[0]["id"], "Ann")
    assert len(search(library.db, "@Ann")) == 2
    again = cluster_library(library, full=True)  # a full re-cluster keeps the name and the pairs
    assert again["faces"]["waiting"] == 0
    after = ops.list_clusters(library, kind="face")
    assert (after[0]["concept"], after[0]["size"]) == ("Ann", 2) and [c["size"] for c in after] == [2] * 6

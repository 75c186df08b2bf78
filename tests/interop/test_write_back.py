"""Writing names and captions back to XMP: merge, atomic writes, pixels kept, and the round trip."""

import subprocess
import sys

import numpy as np
import pyexiv2
import pytest
from defusedxml import ElementTree as SafeET

from myvlm_desktop import imaging
from myvlm_desktop.interop import xmp_write
from myvlm_desktop.interop.xmp import NS
from myvlm_desktop.library.db import now
from myvlm_desktop.library.scan import scan_library
from myvlm_desktop.library.store import Library
from myvlm_desktop.people import ops
from myvlm_desktop.pipeline import names as import_step
from myvlm_desktop.pipeline import writeback
from tests.conftest import make_jpeg
from tests.interop.test_import_names import CropEngine, _add_face
from tests.interop.xmpdata import mwg

W, H = 400, 300
BOXES = {"p0.jpg": [(40, 60, 120, 160), (240, 60, 320, 170)], "p1.jpg": [(150, 80, 230, 190)]}
OTHER_APP = ('<?xpacket begin="" id="W5M0MpCehiHzreSzNTczkc9d"?><x:xmpmeta xmlns:x="adobe:ns:meta/">'
             '<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description rdf:about="" '
             'xmlns:xmp="http://ns.adobe.com/xap/1.0/" xmlns:foo="http://example.com/foo/1.0/" '
             'xmlns:dc="http://purl.org/dc/elements/1.1/" xmp:Rating="4" foo:Album="Summer">'
             '<dc:description><rdf:Alt><rdf:li xml:lang="x-default">Written by another app</rdf:li></rdf:Alt>'
             '</dc:description></rdf:Description><rdf:Description rdf:about="" '
             'xmlns:mwg-rs="http://www.metadataworkinggroup.com/schemas/regions/" '
             'xmlns:stArea="http://ns.adobe.com/xmp/sType/Area#">'
             + mwg([("Stranger", "Face", 0.9, 0.9, 0.1, 0.1), ("Old name", "Face", 0.2, 0.367, 0.2, 0.333)])
             + '</rdf:Description></rdf:RDF></x:xmpmeta><?xpacket end="w"?>')


def _library_with_names(library, photo_dir):
    """p0: Alice and Bob named, a caption; p1: Carol, with Rex (a pet) in the photo; p0 has another app's sidecar."""
    for i, name in enumerate(BOXES):
        make_jpeg(photo_dir / name, size=(W, H), seed=i)
    (photo_dir / "p0.jpg.xmp").write_text(OTHER_APP, encoding="utf-8")
    library.add_folder(photo_dir)
    scan_library(library)
    photos = {r["path"].rsplit("/", 1)[1]: r["id"] for r in library.db.query("SELECT id, path FROM photos")}
    faces = {name: [_add_face(library, photos[name], b, seed=n) for n, b in enumerate(boxes)]
             for name, boxes in BOXES.items()}
    for face, person in zip([*faces["p0.jpg"], *faces["p1.jpg"]], ["Alice", "Bob", "Carol"]):
        cluster = library.db.write(lambda c: c.execute("INSERT INTO clusters(kind, created_at) VALUES ('face', ?)",
                                                       (now(),)).lastrowid)
        ops.move_face(library, face, cluster)
        ops.name_cluster(library, cluster, person)
    ops.create_concept_from_photos(library, "Rex", "pet", [photos["p1.jpg"]])
    for pid, text in ((photos["p0.jpg"], "<Alice> and <Bob> at the beach"), (photos["p1.jpg"], "<Carol> with <Rex>")):
        library.db.write(lambda c, p=pid, t=text: c.execute(
            "INSERT INTO captions(photo_id, text, backend, model, created_at) VALUES (?, ?, 'test', 'test', ?)",
            (p, t, now())))
    return photos


def test_write_back_is_off_until_enabled(library, photo_dir):
    _library_with_names(library, photo_dir)
    with pytest.raises(PermissionError, match="off for this library"):
        writeback.write_back(library)
    assert not (photo_dir / "p1.jpg.xmp").exists()


def test_round_trip_through_sidecars(library, photo_dir, tmp_path):
    photos = _library_with_names(library, photo_dir)
    writeback.configure(library, enabled=True)
    result = writeback.write_back(library)
    assert (result["sidecars"], result["errors"]) == (2, [])
    sidecar = photo_dir / "p0.jpg.xmp"
    with pyexiv2.Image(str(sidecar)) as img:  # read back with the library
        data = img.read_xmp()
    assert data["Xmp.xmp.Rating"] == "4" and data["Xmp.dc.subject"] == ["Alice", "Bob"]
    assert data["Xmp.digiKam.TagsList"] == ["People/Alice", "People/Bob"]
    assert data["Xmp.dc.description"] == {'lang="x-default"': "Written by another app"}  # not ours: kept
    root = SafeET.parse(sidecar).getroot()  # and with an independent XML parse
    desc = root.find(f".//{{{NS['rdf']}}}Description[@{{http://example.com/foo/1.0/}}Album]")
    assert desc is not None and desc.get("{http://example.com/foo/1.0/}Album") == "Summer"
    region_names = [e.get(f"{{{NS['mwg-rs']}}}Name") for e in root.iter(f"{{{NS['rdf']}}}Description")
                    if e.get(f"{{{NS['mwg-rs']}}}Name")]
    assert region_names == ["Stranger", "Alice", "Bob"]  # "Old name" sat on Alice's face: replaced
    p1 = photo_dir / "p1.jpg.xmp"
    with pyexiv2.Image(str(p1)) as img:
        data = img.read_xmp()
    assert data["Xmp.dc.description"] == {'lang="x-default"': "<Carol> with <Rex>"}
    assert data["Xmp.lr.hierarchicalSubject"] == ["People|Carol", "Pets|Rex"]
    # a fresh library that reads the same folder finds the same names on the same faces
    fresh = Library(tmp_path / "fresh")
    try:
        fresh.add_folder(photo_dir)
        scan_library(fresh)
        new_ids = {r["path"].rsplit("/", 1)[1]: r["id"] for r in fresh.db.query("SELECT id, path FROM photos")}
        for name, boxes in BOXES.items():
            for n, box in enumerate(boxes):
                _add_face(fresh, new_ids[name], box, seed=n)
        result = import_step.import_names(fresh, engine=CropEngine())
        assert result["named"] == 5  # Alice, Bob, Carol on faces, Stranger on a new one; Rex on p1

        def named(lib, pid):
            return sorted((r["x1"], r["name"]) for r in lib.db.query(
                "SELECT f.x1, k.name FROM faces f JOIN clusters c ON c.id = f.cluster_id JOIN concepts k "
                "ON k.id = c.concept_id WHERE f.photo_id = ?", (pid,)))
        assert named(fresh, new_ids["p1.jpg"]) == named(library, photos["p1.jpg"])
        # p0 keeps the other app's region too: it becomes a face of its own at (340, 255)
        assert named(fresh, new_ids["p0.jpg"]) == [*named(library, photos["p0.jpg"]), (340.0, "Stranger")]
        assert fresh.db.scalar("SELECT kind FROM concepts WHERE name = 'Rex'") == "pet"
    finally:
        fresh.close()


def test_newer_caption_replaces_only_our_own(library, photo_dir):
    photos = _library_with_names(library, photo_dir)
    writeback.configure(library, enabled=True, style="photo.xmp")
    writeback.write_back(library)
    assert (photo_dir / "p1.xmp").exists() and not (photo_dir / "p1.jpg.xmp").exists()
    library.db.write(lambda c: c.execute(
        "INSERT INTO captions(photo_id, text, backend, model, created_at) VALUES (?, 'A newer caption', 't', 't', ?)",
        (photos["p1.jpg"], now() + 1)))
    writeback.write_back(library)
    with pyexiv2.Image(str(photo_dir / "p1.xmp")) as img:
        assert img.read_xmp()["Xmp.dc.description"] == {'lang="x-default"': "A newer caption"}


def test_a_failed_write_leaves_the_sidecar_as_it_was(library, photo_dir, monkeypatch):
    _library_with_names(library, photo_dir)
    before = (photo_dir / "p0.jpg.xmp").read_bytes()

    def broken(path, tags):
        path.write_text("half a packet")
        raise xmp_write.WriteError("disk full")

    monkeypatch.setattr(xmp_write, "_edit", broken)
    writeback.configure(library, enabled=True)
    result = writeback.write_back(library)
    assert result["errors"] and (photo_dir / "p0.jpg.xmp").read_bytes() == before
    assert sorted(p.name for p in photo_dir.iterdir()) == ["p0.jpg", "p0.jpg.xmp", "p1.jpg"]


def test_writing_into_the_photo_keeps_every_pixel(library, photo_dir):
    photos = _library_with_names(library, photo_dir)
    pixels = {n: imaging.load_array(photo_dir / n) for n in BOXES}
    writeback.configure(library, enabled=True, into_image=True)
    result = writeback.write_back(library)
    assert (result["embedded"], result["errors"]) == (2, [])
    for name in BOXES:
        assert np.array_equal(imaging.load_array(photo_dir / name), pixels[name])
    with pyexiv2.Image(str(photo_dir / "p1.jpg")) as img:
        assert img.read_xmp()["Xmp.dc.subject"] == ["Carol", "Rex"]
    assert scan_library(library)["indexed"] == 0  # same pixels: not taken for an edited photo
    assert library.db.scalar("SELECT count(*) FROM faces WHERE photo_id = ?", (photos["p0.jpg"],)) == 2


def test_a_write_that_would_change_pixels_is_refused(tmp_path, monkeypatch):
    photo = make_jpeg(tmp_path / "x.jpg")
    before = photo.read_bytes()
    real = imaging.load_array
    monkeypatch.setattr(imaging, "load_array", lambda p, *a: real(p) if str(p) == str(photo) else real(p) * 0)
    with pytest.raises(xmp_write.WriteError, match="change the pixels"):
        xmp_write.write_embedded(photo, xmp_write.Tags(320, 240, people=["Alice"]))
    assert photo.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["x.jpg"]


def test_cli_write_back_needs_enabling(library, photo_dir):
    _library_with_names(library, photo_dir)
    root = str(library.root)
    library.close()
    run = [sys.executable, "-m", "myvlm_desktop.cli", "--data-dir", root, "write-back"]
    out = subprocess.run(run, capture_output=True, text=True, check=False)
    assert out.returncode == 2 and "--enable" in out.stderr
    assert subprocess.run([*run, "--enable"], capture_output=True, text=True, check=False).returncode == 0
    out = subprocess.run(run, capture_output=True, text=True, check=False)
    assert out.returncode == 0 and out.stdout.startswith("2 sidecars"), out.stderr


def test_the_write_back_stage_does_nothing_until_enabled(library, photo_dir):
    from tests.interop.test_import_names import Control

    _library_with_names(library, photo_dir)
    assert "off" in writeback.write_back_job(library)(Control())["skipped"]
    writeback.configure(library, enabled=True)
    assert writeback.write_back_job(library)(Control())["sidecars"] == 2


def test_a_rename_takes_back_only_the_keywords_this_app_added(library, photo_dir):
    _library_with_names(library, photo_dir)
    (photo_dir / "p1.jpg.xmp").write_text(
        OTHER_APP.replace('foo:Album="Summer">', 'foo:Album="Summer"><digiKam:TagsList><rdf:Seq>'
                          '<rdf:li>Places/Paris</rdf:li><rdf:li>People/Carol</rdf:li></rdf:Seq></digiKam:TagsList>')
        .replace('xmlns:dc=', 'xmlns:digiKam="http://www.digikam.org/ns/1.0/" xmlns:dc='), encoding="utf-8")
    writeback.configure(library, enabled=True)
    writeback.write_back(library)
    ops.rename_concept(library, "Rex", "Rexie")
    ops.rename_concept(library, "Carol", "Caroline")
    writeback.write_back(library)
    with pyexiv2.Image(str(photo_dir / "p1.jpg.xmp")) as img:
        tags = img.read_xmp()["Xmp.digiKam.TagsList"]
    # Paris and the Carol another app wrote stay; the Pets/Rex this app added goes with the rename
    assert tags == ["Places/Paris", "People/Carol", "People/Caroline", "Pets/Rexie"]


def test_a_region_this_app_wrote_goes_when_the_face_is_no_longer_named(library, photo_dir):
    _library_with_names(library, photo_dir)
    writeback.configure(library, enabled=True)
    writeback.write_back(library)
    ops.delete_concept(library, "Bob")
    writeback.write_back(library)
    root = SafeET.parse(photo_dir / "p0.jpg.xmp").getroot()
    names = [e.get(f"{{{NS['mwg-rs']}}}Name") for e in root.iter(f"{{{NS['rdf']}}}Description")
             if e.get(f"{{{NS['mwg-rs']}}}Name")]
    assert names == ["Stranger", "Alice"]  # the other app's region stays, ours for Bob is gone

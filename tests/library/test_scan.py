import io
import os
import shutil

import numpy as np
import pytest
from PIL import ExifTags, Image

from myvlm_desktop.library.scan import scan_library
from tests.conftest import make_jpeg


def _exif():
    ex = Image.Exif()
    ex[ExifTags.Base.Orientation] = 6
    ex[ExifTags.Base.Make], ex[ExifTags.Base.Model] = "Canon", "Canon EOS 5D"
    ex.get_ifd(ExifTags.IFD.Exif)[ExifTags.Base.DateTimeOriginal] = "2023:06:14 10:30:00"
    gps = ex.get_ifd(ExifTags.IFD.GPSInfo)
    gps[ExifTags.GPS.GPSLatitudeRef], gps[ExifTags.GPS.GPSLatitude] = "S", (33.0, 51.0, 36.0)
    gps[ExifTags.GPS.GPSLongitudeRef], gps[ExifTags.GPS.GPSLongitude] = "E", (151.0, 12.0, 36.0)
    return ex


def _rows(library):
    return {os.path.basename(r["path"]): r for r in library.db.query("SELECT * FROM photos")}


def test_every_supported_format_is_indexed_with_a_thumbnail(library, photo_dir):
    pixels = np.random.default_rng(1).integers(0, 255, (90, 120, 3), dtype=np.uint8)
    img = Image.fromarray(pixels)
    for name, fmt in [("a.jpg", "JPEG"), ("b.png", "PNG"), ("c.webp", "WEBP"), ("d.tiff", "TIFF"),
                      ("e.bmp", "BMP"), ("f.gif", "GIF"), ("g.heic", "HEIF")]:
        img.save(photo_dir / name, fmt)
    (photo_dir / "notes.txt").write_text("not a photo, not listed")
    library.add_folder(photo_dir)
    counts = scan_library(library)
    assert counts["indexed"] == 7 and counts["errors"] == 0
    rows = _rows(library)
    assert set(rows) == {"a.jpg", "b.png", "c.webp", "d.tiff", "e.bmp", "f.gif", "g.heic"}
    for row in rows.values():
        assert (row["status"], row["width"], row["height"]) == ("ok", 120, 90)
        thumb = library.thumbnail_path(row["hash"])
        assert thumb.exists() and max(Image.open(thumb).size) <= 320


def test_exif_orientation_date_gps_and_camera(library, photo_dir):
    make_jpeg(photo_dir / "rotated.jpg", size=(600, 400), exif=_exif())
    library.add_folder(photo_dir)
    scan_library(library)
    row = _rows(library)["rotated.jpg"]
    assert (row["width"], row["height"], row["orientation"]) == (400, 600, 6)  # portrait after rotation
    assert row["taken_at"] == row["date"] == "2023-06-14T10:30:00"
    assert row["lat"] == pytest.approx(-33.86) and row["lon"] == pytest.approx(151.21)
    assert row["camera"] == "Canon EOS 5D"
    thumb = Image.open(library.thumbnail_path(row["hash"]))
    assert thumb.height > thumb.width


def test_rescan_is_incremental_and_notices_edits(library, photo_dir):
    for i in range(5):
        make_jpeg(photo_dir / f"p{i}.jpg", seed=i)
    library.add_folder(photo_dir)
    assert scan_library(library)["indexed"] == 5
    again = scan_library(library)
    assert again["indexed"] == 0 and again["unchanged"] == 5
    before = _rows(library)["p1.jpg"]
    make_jpeg(photo_dir / "p1.jpg", seed=99)
    os.utime(photo_dir / "p1.jpg", (1, before["mtime"] + 10))
    edited = scan_library(library)
    assert edited["indexed"] == 1
    after = _rows(library)["p1.jpg"]
    assert after["id"] == before["id"] and after["hash"] != before["hash"]


def test_moved_file_keeps_its_id_and_deleted_file_becomes_missing(library, photo_dir):
    make_jpeg(photo_dir / "keep.jpg", seed=1)
    make_jpeg(photo_dir / "gone.jpg", seed=2)
    library.add_folder(photo_dir)
    scan_library(library)
    ids = {name: row["id"] for name, row in _rows(library).items()}
    library.db.write(lambda c: c.execute("INSERT INTO settings(key, value) VALUES ('attached', ?)",
                                         (str(ids["keep.jpg"]),)))
    (photo_dir / "2024 trip").mkdir()
    shutil.move(photo_dir / "keep.jpg", photo_dir / "2024 trip" / "renamed.jpg")
    os.remove(photo_dir / "gone.jpg")
    counts = scan_library(library)
    assert counts["moved"] == 1 and counts["missing"] == 1
    rows = _rows(library)
    assert rows["renamed.jpg"]["id"] == ids["keep.jpg"] and rows["renamed.jpg"]["status"] == "ok"
    assert rows["gone.jpg"]["status"] == "missing"  # kept, never silently dropped
    assert library.status()["missing"] == 1
    # the file comes back: the same row is ok again
    make_jpeg(photo_dir / "gone.jpg", seed=2)
    scan_library(library)
    assert _rows(library)["gone.jpg"]["id"] == ids["gone.jpg"]
    assert _rows(library)["gone.jpg"]["status"] == "ok"


def test_cancel_through_progress_stops_the_scan_and_keeps_what_was_done(library, photo_dir):
    for i in range(200):
        make_jpeg(photo_dir / f"p{i:03d}.jpg", size=(64, 64), seed=i)
    library.add_folder(photo_dir)

    class Stop(Exception):
        pass

    def progress(done, total, message):
        if done >= 70:
            raise Stop()

    with pytest.raises(Stop):
        scan_library(library, progress=progress)
    kept = library.status()["photos"]
    assert 64 <= kept < 200
    assert scan_library(library)["indexed"] == 200 - kept
    assert library.status()["photos"] == 200


def test_search_finds_a_moved_photo_by_its_new_folder_name(library, photo_dir):
    from myvlm_desktop.library.search import search

    make_jpeg(photo_dir / "x.jpg")
    library.add_folder(photo_dir)
    scan_library(library)
    (photo_dir / "Lisbon").mkdir()
    shutil.move(photo_dir / "x.jpg", photo_dir / "Lisbon" / "x.jpg")
    scan_library(library)
    assert [os.path.basename(h["path"]) for h in search(library.db, "lisbon")] == ["x.jpg"]


def test_thumbnail_is_shared_by_identical_content(library, photo_dir):
    make_jpeg(photo_dir / "a.jpg", seed=5)
    shutil.copy(photo_dir / "a.jpg", photo_dir / "copy.jpg")
    library.add_folder(photo_dir)
    scan_library(library)
    rows = _rows(library)
    assert rows["a.jpg"]["id"] != rows["copy.jpg"]["id"]  # two files, two photos
    assert rows["a.jpg"]["hash"] == rows["copy.jpg"]["hash"]
    assert len(list(library.thumbs.rglob("*.jpg"))) == 1


def test_bytes_io_is_not_needed_for_paths(library, photo_dir):
    # read_photo accepts paths and file objects alike
    from myvlm_desktop.imaging import read_photo

    path = make_jpeg(photo_dir / "y.jpg")
    assert read_photo(path).width == read_photo(io.BytesIO(path.read_bytes())).width == 320

"""Every format a phone or camera writes: AVIF, HEIF (10-bit too), JPEG XL, motion photos, camera RAW."""

import io

import numpy as np
import pillow_heif
import pytest
import tifffile
from PIL import Image

from myvlm_desktop import imaging
from myvlm_desktop.library.scan import scan_library


def _gradient(w=96, h=64) -> np.ndarray:
    x = np.linspace(0, 255, w, dtype=np.float32)
    rgb = np.stack([np.tile(x, (h, 1)), np.tile(x[::-1], (h, 1)), np.full((h, w), 128, np.float32)], axis=-1)
    return rgb.astype(np.uint8)


DNG_TAGS = [(50706, "B", 4, (1, 4, 0, 0), True), (50708, "s", 0, "Test Cam", True),
            (50721, "2i", 9, (10000, 10000, 0, 10000, 0, 10000) * 3, True), (50778, "H", 1, 21, True)]
CFA_TAGS = [(33421, "H", 2, (2, 2), True), (33422, "B", 4, (0, 1, 1, 2), True), (50717, "H", 1, 4095, True)]


def make_dng(path, preview: np.ndarray | None = None, orientation: int = 1, size=(64, 96), camera=()):
    """A minimal DNG LibRaw reads: an optional RGB preview in IFD0 and a Bayer CFA in a SubIFD.

    `camera`: (make, model, date "YYYY:MM:DD HH:MM:SS") written as TIFF tags."""
    cfa = (np.random.default_rng(0).random(size) * 4000).astype(np.uint16)
    tags = [*DNG_TAGS, (274, "H", 1, orientation, True)]
    tags += [(tag, "s", 0, value, True) for tag, value in zip((271, 272, 306), camera)]
    with tifffile.TiffWriter(path) as tw:
        if preview is not None:
            tw.write(preview, photometric="rgb", subfiletype=1, subifds=1, extratags=tags)
            tw.write(cfa, photometric=32803, subfiletype=0, extratags=CFA_TAGS)
        else:
            tw.write(cfa, photometric=32803, subfiletype=0, extratags=[*tags, *CFA_TAGS])
    return path


def test_avif_jxl_and_heif_are_scanned_and_decoded(library, photo_dir):
    img = Image.fromarray(_gradient())
    img.save(photo_dir / "a.avif", "AVIF", quality=90)
    img.save(photo_dir / "b.jxl", "JXL", lossless=True)
    img.save(photo_dir / "c.heic", "HEIF", quality=90)
    library.add_folder(photo_dir)
    counts = scan_library(library)
    assert counts["indexed"] == 3 and counts["errors"] == 0
    rows = {r["path"].rsplit("/", 1)[1]: r for r in library.db.query("SELECT * FROM photos")}
    assert {n: (r["format"], r["width"], r["height"]) for n, r in rows.items()} == {
        "a.avif": ("AVIF", 96, 64), "b.jxl": ("JXL", 96, 64), "c.heic": ("HEIF", 96, 64)}
    decoded = imaging.load_array(photo_dir / "b.jxl")
    assert np.array_equal(decoded, _gradient())  # lossless JPEG XL comes back exactly


def test_ten_bit_heif_becomes_eight_bit_srgb(tmp_path):
    ramp = (np.linspace(0, 1023, 96)[None, :, None] * np.ones((64, 1, 3))).astype(np.uint16) << 6
    heif = pillow_heif.from_bytes(mode="RGB;16", size=(96, 64), data=ramp.tobytes())
    heif.save(tmp_path / "hdr.heic", quality=-1)
    assert pillow_heif.open_heif(tmp_path / "hdr.heic").info["bit_depth"] == 10
    rgb = imaging.load_array(tmp_path / "hdr.heic")
    assert rgb.dtype == np.uint8 and rgb.shape == (64, 96, 3)
    row = rgb[32, :, 1].astype(int)
    assert row[0] < 10 and row[-1] > 245 and np.all(np.diff(row) >= -3)  # the ramp survives, not clipped flat


def test_sixteen_bit_grey_is_scaled_not_clipped(tmp_path):
    ramp = np.tile(np.linspace(0, 65535, 64).astype(np.uint16), (8, 1))
    Image.fromarray(ramp).save(tmp_path / "deep.png")
    rgb = imaging.load_array(tmp_path / "deep.png")
    assert rgb.dtype == np.uint8 and rgb[0, 0, 0] == 0 and rgb[0, -1, 0] == 255 and 120 < rgb[0, 32, 0] < 135


def test_motion_photo_gives_its_still(library, photo_dir):
    buf = io.BytesIO()
    Image.fromarray(_gradient(120, 80)).save(buf, "JPEG", quality=90)
    video = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom" + bytes(4096)  # Google/Samsung append an MP4
    (photo_dir / "PXL_0001.MP.jpg").write_bytes(buf.getvalue() + video)
    library.add_folder(photo_dir)
    assert scan_library(library)["indexed"] == 1
    row = library.db.query("SELECT width, height, status FROM photos")[0]
    assert (row["status"], row["width"], row["height"]) == ("ok", 120, 80)
    assert imaging.load_array(photo_dir / "PXL_0001.MP.jpg").shape == (80, 120, 3)


def test_raw_without_a_large_preview_is_decoded_at_half_size(library, photo_dir):
    make_dng(photo_dir / "IMG_1.dng", preview=np.zeros((8, 12, 3), np.uint8), orientation=6,
             camera=("Canon", "Canon EOS R5", "2024:05:06 07:08:09"))
    library.add_folder(photo_dir)
    assert scan_library(library)["indexed"] == 1
    row = library.db.query("SELECT * FROM photos")[0]
    assert row["path"].endswith("IMG_1.dng") and row["format"] == "DNG"  # the RAW stays the photo
    assert (row["width"], row["height"]) == (32, 48)  # half of the 96x64 sensor, turned; not the 12x8 preview
    assert (row["camera"], row["taken_at"], row["orientation"]) == ("Canon EOS R5", "2024-05-06T07:08:09", 1)


def test_raw_with_a_large_preview_uses_it_upright(tmp_path, monkeypatch):
    monkeypatch.setattr(imaging, "RAW_PREVIEW_MIN_SIDE", 50)
    preview = np.zeros((40, 60, 3), np.uint8)
    preview[:, :30] = 255  # left half white
    make_dng(tmp_path / "p.dng", preview=preview, orientation=6)
    rgb = imaging.load_array(tmp_path / "p.dng")
    assert rgb.shape == (60, 40, 3)  # the preview, turned by the RAW's orientation 6
    assert rgb[:20].mean() > 200 and rgb[-20:].mean() < 50  # left edge went to the top


def test_raw_source_decision():
    assert imaging.raw_source(None) == "half"
    assert imaging.raw_source((160, 120)) == "half"
    assert imaging.raw_source((1620, 1080)) == "preview"
    assert imaging.raw_source((1620, 1080), min_side=2000) == "half"


def test_a_file_named_raw_that_is_not_is_an_error_with_a_reason(library, photo_dir):
    (photo_dir / "fake.nef").write_bytes(b"II*\x00" + bytes(200))
    (photo_dir / "text.cr2").write_bytes(b"hello, not a raw file at all")
    library.add_folder(photo_dir)
    assert scan_library(library)["errors"] == 2
    errors = {e["path"].rsplit("/", 1)[1]: e["reason"] for e in library.errors()}
    assert set(errors) == {"fake.nef", "text.cr2"}
    assert all("camera RAW" in reason for reason in errors.values())


@pytest.mark.parametrize("label, name", [("JPEG XL", "x.jxl"), ("camera RAW", "x.arw"), ("AVIF", "x.avif"),
                                         ("HEIF", "x.heic")])
def test_missing_decoder_is_listed_in_errors_and_retried_once_installed(library, photo_dir, monkeypatch, label,
                                                                        name):
    Image.fromarray(_gradient()).save(photo_dir / "plain.png")
    if name.endswith(".arw"):
        make_dng(photo_dir / name)
    else:
        Image.fromarray(_gradient()).save(photo_dir / name, {"x.jxl": "JXL", "x.avif": "AVIF", "x.heic": "HEIF"}[name])
    monkeypatch.setitem(imaging.AVAILABLE, label, False)
    library.add_folder(photo_dir)
    counts = scan_library(library)
    assert (counts["indexed"], counts["errors"]) == (1, 1)
    [error] = library.errors()
    assert error["path"].endswith(name) and error["reason"].startswith(f"{label} decoder not installed")
    monkeypatch.setitem(imaging.AVAILABLE, label, True)
    assert scan_library(library)["indexed"] == 1 and library.errors() == []


def test_a_broken_colour_profile_keeps_the_pixels(tmp_path):
    Image.fromarray(_gradient()).save(tmp_path / "icc.png", icc_profile=b"not a profile at all")
    assert np.array_equal(imaging.load_array(tmp_path / "icc.png"), _gradient())


def test_srgb_photos_skip_the_colour_conversion():
    from PIL import ImageCms

    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))
    srgb_bytes = srgb.tobytes()
    img = Image.fromarray(_gradient())
    assert imaging.to_srgb(img, srgb_bytes) is img  # sRGB already: untouched

"""Every kind of bad file is recorded with a reason and skipped; the scan goes on and the good photo is indexed."""

import os
import struct
import zlib

import numpy as np
import pillow_heif
from PIL import Image

from myvlm_desktop.library import scan as scanmod
from myvlm_desktop.library.scan import scan_library
from tests.conftest import make_jpeg


def _scan_one(library, photo_dir, name):
    make_jpeg(photo_dir / "good.jpg")
    library.add_folder(photo_dir)
    counts = scan_library(library)
    good = library.photo_by_path(photo_dir / "good.jpg")
    assert good is not None and good["status"] == "ok", "the good photo next to a bad one must be indexed"
    reasons = {os.path.basename(e["path"]): e["reason"] for e in library.errors()}
    return counts, reasons.get(name), reasons


def test_corrupt_jpeg(library, photo_dir):
    data = bytearray(make_jpeg(photo_dir / "bad.jpg", size=(200, 200)).read_bytes())
    data[400:1400] = os.urandom(1000)  # scrambled entropy-coded data
    data[2:4] = b"\xff\x00"  # and a broken marker right after SOI
    (photo_dir / "bad.jpg").write_bytes(bytes(data))
    _, reason, _ = _scan_one(library, photo_dir, "bad.jpg")
    assert reason


def test_truncated_file(library, photo_dir):
    data = make_jpeg(photo_dir / "cut.jpg", size=(400, 300)).read_bytes()
    (photo_dir / "cut.jpg").write_bytes(data[: len(data) // 3])
    _, reason, _ = _scan_one(library, photo_dir, "cut.jpg")
    assert "truncated" in reason or "corrupt" in reason


def test_zero_byte_file(library, photo_dir):
    (photo_dir / "empty.jpg").write_bytes(b"")
    _, reason, _ = _scan_one(library, photo_dir, "empty.jpg")
    assert reason == "empty file (0 bytes)"


def _png_with_size(width: int, height: int) -> bytes:
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def test_decompression_bomb(library, photo_dir):
    (photo_dir / "bomb.png").write_bytes(_png_with_size(60000, 60000))
    _, reason, _ = _scan_one(library, photo_dir, "bomb.png")
    assert "too large" in reason


def test_text_file_named_jpg(library, photo_dir):
    (photo_dir / "notes.jpg").write_text("shopping list: eggs, milk")
    _, reason, _ = _scan_one(library, photo_dir, "notes.jpg")
    assert reason == "not an image file (unrecognised format)"


def test_unreadable_file(library, photo_dir, monkeypatch):
    path = make_jpeg(photo_dir / "secret.jpg")
    path.chmod(0)
    if os.geteuid() == 0:  # root reads anything: make the kernel's answer for an unprivileged user explicit
        real = scanmod.read_file

        def read_file(p):
            if os.fsdecode(p).endswith("secret.jpg"):
                raise PermissionError(13, "Permission denied", p)
            return real(p)

        monkeypatch.setattr(scanmod, "read_file", read_file)
    try:
        _, reason, _ = _scan_one(library, photo_dir, "secret.jpg")
    finally:
        path.chmod(0o644)
    assert reason == "permission denied"


def test_file_deleted_between_listing_and_reading(library, photo_dir, monkeypatch):
    make_jpeg(photo_dir / "fleeting.jpg")
    real = scanmod.index_file

    def index_file(item, thumbs):
        if os.fsdecode(item.path).endswith("fleeting.jpg"):
            os.remove(item.path)  # gone after the walk listed it
        return real(item, thumbs)

    monkeypatch.setattr(scanmod, "index_file", index_file)
    _, reason, _ = _scan_one(library, photo_dir, "fleeting.jpg")
    assert reason == "file vanished before it could be read"
    monkeypatch.undo()
    scan_library(library)  # the next scan forgets the vanished bad file: nothing of the user's was attached
    assert "fleeting.jpg" not in {os.path.basename(e["path"]) for e in library.errors()}


def test_symlink_loop(library, photo_dir):
    (photo_dir / "album").mkdir()
    make_jpeg(photo_dir / "album" / "inside.jpg")
    os.symlink(photo_dir, photo_dir / "album" / "back-to-top")  # folder loop
    os.symlink(photo_dir / "b.jpg", photo_dir / "a.jpg")  # file loop
    os.symlink(photo_dir / "a.jpg", photo_dir / "b.jpg")
    _counts, reason, reasons = _scan_one(library, photo_dir, "a.jpg")
    assert reason == "symlink loop"
    assert any("symlink loop" in r for n, r in reasons.items() if n == "back-to-top")
    assert library.status()["photos"] == 2  # inside.jpg once, good.jpg once


def test_non_utf8_file_name_is_indexed_and_reopened(library, photo_dir):
    raw = os.path.join(os.fsencode(photo_dir), b"caf\xe9.jpg")
    make_jpeg(photo_dir / "tmp.jpg")
    os.rename(photo_dir / "tmp.jpg", raw)
    _scan_one(library, photo_dir, "caf\\xe9.jpg")
    row = library.db.read().execute("SELECT * FROM photos WHERE path LIKE '%caf%'").fetchone()
    assert row["status"] == "ok" and row["path"].endswith("caf\\xe9.jpg")
    from myvlm_desktop.library.store import open_path

    assert open_path(row) == raw and os.path.exists(open_path(row))
    assert scan_library(library)["indexed"] == 0  # and it is not re-read on the next scan


def test_cmyk_and_16_bit_images(library, photo_dir):
    Image.new("CMYK", (64, 48), (0, 128, 255, 0)).save(photo_dir / "print.jpg", "JPEG")
    ramp = (np.arange(64 * 48, dtype=np.uint16).reshape(48, 64) * 20).astype(np.uint16)
    Image.fromarray(ramp).save(photo_dir / "scan16.png")
    _, _, reasons = _scan_one(library, photo_dir, "none")
    assert reasons == {}
    for name in ("print.jpg", "scan16.png"):
        row = library.photo_by_path(photo_dir / name)
        assert row["status"] == "ok" and (row["width"], row["height"]) == (64, 48)
        assert Image.open(library.thumbnail_path(row["hash"])).mode == "RGB"


def test_animated_gif_uses_the_first_frame(library, photo_dir):
    frames = [Image.new("RGB", (50, 40), color) for color in ((255, 0, 0), (0, 255, 0), (0, 0, 255))]
    frames[0].save(photo_dir / "anim.gif", save_all=True, append_images=frames[1:], duration=100, loop=0)
    _scan_one(library, photo_dir, "anim.gif")
    row = library.photo_by_path(photo_dir / "anim.gif")
    thumb = Image.open(library.thumbnail_path(row["hash"])).convert("RGB")
    r, g, b = thumb.getpixel((25, 20))
    assert r > 200 and g < 60 and b < 60


def test_heic_file(library, photo_dir):
    pillow_heif.register_heif_opener()  # a required dependency: HEIC from phones is read, never skipped
    Image.new("RGB", (80, 60), (10, 200, 30)).save(photo_dir / "phone.heic", "HEIF")
    _, reason, _ = _scan_one(library, photo_dir, "phone.heic")
    assert reason is None
    row = library.photo_by_path(photo_dir / "phone.heic")
    assert (row["status"], row["format"], row["width"]) == ("ok", "HEIF", 80)


def test_unchanged_bad_file_is_not_read_again(library, photo_dir, monkeypatch):
    (photo_dir / "notes.jpg").write_text("not a photo")
    _scan_one(library, photo_dir, "notes.jpg")
    reads = []
    real = scanmod.read_file
    monkeypatch.setattr(scanmod, "read_file", lambda p: reads.append(p) or real(p))
    scan_library(library)
    assert reads == []

"""Safe image decoding shared by the library (metadata, thumbnails) and vision (pixels for models).

Every failure becomes an `ImageError` with a reason a user can read; nothing here raises anything else
for a bad file, so a scan can record the reason and go on.
"""

from __future__ import annotations

import datetime as dt
import io
import os
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import ExifTags, Image, ImageCms, ImageFile, ImageOps, UnidentifiedImageError, features

from .storage import atomic_write

try:  # HEIC/HEIF from phones; optional at import so a broken libheif never stops the app
    import pillow_heif

    pillow_heif.register_heif_opener()
    HEIF_SUPPORTED = True
except (ImportError, OSError):  # pragma: no cover - depends on the platform's wheel
    HEIF_SUPPORTED = False

try:  # JPEG XL: importing the plugin registers it with Pillow
    import pillow_jxl  # noqa: F401

    JXL_SUPPORTED = True
except (ImportError, OSError):  # pragma: no cover
    JXL_SUPPORTED = False

try:  # camera RAW through LibRaw
    import rawpy

    RAW_SUPPORTED = True
except (ImportError, OSError):  # pragma: no cover
    rawpy = None
    RAW_SUPPORTED = False

# 16k x 12k is larger than any camera; beyond that a declared size is a decompression bomb.
MAX_PIXELS = 200_000_000
Image.MAX_IMAGE_PIXELS = MAX_PIXELS
ImageFile.LOAD_TRUNCATED_IMAGES = False

# A RAW's embedded preview is what the models see when its long side is at least this (else half-size decode).
RAW_PREVIEW_MIN_SIDE = 1600

BASIC_SUFFIXES = frozenset({".jpg", ".jpeg", ".jpe", ".png", ".webp", ".tif", ".tiff", ".bmp", ".gif"})
RAW_SUFFIXES = frozenset({".cr2", ".cr3", ".nef", ".arw", ".raf", ".rw2", ".dng", ".orf"})
# Formats whose decoder is an optional package: listed always, so a missing decoder is an error the user
# sees in `myvlm errors`, never a file silently skipped.
DECODERS: dict[str, tuple[str, str]] = {
    **{s: ("AVIF", "Pillow built without libavif") for s in (".avif",)},
    **{s: ("HEIF", "pip install pillow-heif") for s in (".heic", ".heif", ".hif")},
    **{s: ("JPEG XL", "pip install pillow-jxl-plugin") for s in (".jxl",)},
    **{s: ("camera RAW", "pip install rawpy") for s in RAW_SUFFIXES},
}
AVAILABLE = {"AVIF": features.check("avif"), "HEIF": HEIF_SUPPORTED, "JPEG XL": JXL_SUPPORTED,
             "camera RAW": RAW_SUPPORTED}
IMAGE_SUFFIXES = BASIC_SUFFIXES | frozenset(DECODERS)


class ImageError(Exception):
    """A file that cannot be used as a photo; `reason` is short and meant for the user."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class PhotoInfo:
    width: int  # after EXIF orientation
    height: int
    format: str
    orientation: int
    taken_at: str | None  # ISO 8601, camera local time
    lat: float | None
    lon: float | None
    camera: str | None


def is_image_name(name: str | bytes) -> bool:
    return suffix_of(name) in IMAGE_SUFFIXES


def suffix_of(name) -> str:
    if isinstance(name, io.IOBase):
        return ""
    return os.path.splitext(os.fsdecode(name))[1].lower()


def missing_decoder(suffix: str) -> str | None:
    """Why a file with this suffix cannot be decoded here, or None when it can."""
    if suffix not in DECODERS:
        return None
    label, how = DECODERS[suffix]
    return None if AVAILABLE.get(label) else f"{label} decoder not installed ({how})"


def open_image(path: str | bytes | os.PathLike, suffix: str | None = None) -> Image.Image:
    """Open lazily (header only) with every decoding failure turned into an ImageError.

    `suffix` names the format when `path` is a file object (the scan reads bytes once and hashes them).
    """
    suffix = suffix if suffix is not None else suffix_of(path)
    reason = missing_decoder(suffix)
    if reason:
        raise ImageError(reason)
    if suffix in RAW_SUFFIXES:
        img = open_raw(path)
        img.format = suffix[1:].upper()  # the library lists the RAW's own format, not the preview's
        return img
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(path)
            img.size  # noqa: B018 - forces the header read under the bomb check
            if img.width * img.height > MAX_PIXELS:
                raise ImageError(f"image too large ({img.width}x{img.height} pixels)")
            return img
    except ImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageError(f"image too large (decompression bomb): {exc}") from None
    except UnidentifiedImageError:
        raise ImageError("not an image file (unrecognised format)") from None
    except FileNotFoundError:
        raise ImageError("file vanished before it could be read") from None
    except PermissionError:
        raise ImageError("permission denied") from None
    except IsADirectoryError:
        raise ImageError("is a directory") from None
    except OSError as exc:
        raise ImageError(f"cannot read file: {exc.strerror or exc}") from None
    except Exception as exc:  # noqa: BLE001 - codecs raise anything on hostile input
        raise ImageError(f"cannot decode image: {type(exc).__name__}: {exc}") from None


def _decode(img: Image.Image, max_side: int | None) -> Image.Image:
    """Fully decode (first frame), orient and convert to 8-bit RGB; errors become ImageError."""
    try:
        if max_side and img.format == "JPEG":
            img.draft("RGB", (max_side, max_side))  # JPEG DCT scaling: decodes big photos 2-8x faster
        img.seek(0)
        img.load()
        icc = img.info.get("icc_profile")
        oriented = ImageOps.exif_transpose(img) or img
        rgb = to_rgb(oriented)
        if max_side and max(rgb.size) > max_side:
            rgb.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
        return to_srgb(rgb, icc)
    except ImageError:
        raise
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ImageError(f"corrupt or truncated image: {exc}") from None
    except Exception as exc:  # noqa: BLE001
        raise ImageError(f"cannot decode image: {type(exc).__name__}: {exc}") from None


def to_rgb(img: Image.Image) -> Image.Image:
    """8-bit RGB from any mode: CMYK, palette, alpha, 16-bit and float images included."""
    if img.mode == "RGB":
        return img
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        hi = 65535.0 if img.mode.startswith("I;16") or arr.max() > 255 else 255.0
        arr8 = np.clip(arr / hi * 255.0, 0, 255).astype(np.uint8)
        return Image.fromarray(arr8, "L").convert("RGB")
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        background = Image.new("RGB", img.size, (255, 255, 255))
        rgba = img.convert("RGBA")
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    return img.convert("RGB")


_SRGB = ImageCms.createProfile("sRGB")


def to_srgb(rgb: Image.Image, icc: bytes | None) -> Image.Image:
    """Wide-gamut (Display P3, Adobe RGB) pixels converted to sRGB, out-of-gamut colours clipped.

    Models and thumbnails assume sRGB; a P3 photo shown as is looks washed out.
    """
    if not icc:
        return rgb
    try:
        source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        if "srgb" in (ImageCms.getProfileDescription(source) or "").lower():
            return rgb
        return ImageCms.profileToProfile(rgb, source, _SRGB, outputMode="RGB") or rgb
    except (ImageCms.PyCMSError, OSError, ValueError, TypeError):  # a broken profile: keep the pixels as they are
        return rgb


# -- camera RAW ---------------------------------------------------------------------------------------------
_FLIP_TO_EXIF = {3: 3, 5: 8, 6: 6}  # LibRaw's sizes.flip -> the EXIF orientation it means


def raw_source(preview_size: tuple[int, int] | None, min_side: int | None = None) -> str:
    """"preview" when the embedded preview is large enough for the models and thumbnails, else "half"."""
    if preview_size and max(preview_size) >= (min_side or RAW_PREVIEW_MIN_SIDE):
        return "preview"
    return "half"


def open_raw(path) -> Image.Image:
    """A RAW file as an RGB image: its embedded preview when large enough, else a half-size decode.

    The RAW stays the photo in the library; this image is what thumbnails and models see. Orientation is
    applied here, so the result carries none.
    """
    try:
        with rawpy.imread(path if isinstance(path, io.IOBase) else os.fsdecode(path)) as raw:
            preview = _raw_preview(raw)
            if raw_source(preview.size if preview is not None else None) == "preview":
                img = _oriented(preview, raw.sizes.flip)
            else:
                img = Image.fromarray(raw.postprocess(half_size=True, use_camera_wb=True, output_bps=8))
        return _with_raw_exif(img, path)
    except ImageError:
        raise
    except FileNotFoundError:
        raise ImageError("file vanished before it could be read") from None
    except (rawpy.LibRawError, rawpy.NotSupportedError) as exc:
        raise ImageError(f"cannot decode camera RAW: {type(exc).__name__}: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - LibRaw raises anything on hostile input
        raise ImageError(f"cannot decode camera RAW: {type(exc).__name__}: {exc}") from None


_EXIV2_LOCK = threading.Lock()  # Exiv2 is not safe to call from two scan threads at once


def _with_raw_exif(img: Image.Image, path) -> Image.Image:
    """Date, camera and GPS for the library: the preview's EXIF, else the RAW's own (read by Exiv2).
    The orientation is dropped: it has been applied already."""
    exif = img.getexif()
    if not (exif.get(ExifTags.Base.Make) or exif.get(ExifTags.Base.DateTime)):
        exif = _raw_exif(path)
    exif.pop(ExifTags.Base.Orientation, None)
    img.info["exif"] = exif.tobytes()
    img._exif = None  # Pillow caches getexif(): read it again from info
    return img


def _raw_exif(path) -> Image.Exif:
    exif = Image.Exif()
    try:
        import pyexiv2

        if isinstance(path, io.IOBase):
            path.seek(0)
            data = path.read()
        else:
            with open(path, "rb") as handle:
                data = handle.read()
        with _EXIV2_LOCK, pyexiv2.ImageData(data) as meta:
            tags = meta.read_exif()
    except Exception:  # noqa: BLE001 - metadata Exiv2 cannot read is simply no metadata
        return exif
    for key, tag in (("Exif.Image.Make", ExifTags.Base.Make), ("Exif.Image.Model", ExifTags.Base.Model),
                     ("Exif.Image.DateTime", ExifTags.Base.DateTime)):
        if tags.get(key):
            exif[tag] = str(tags[key])
    if tags.get("Exif.Photo.DateTimeOriginal"):
        exif.get_ifd(ExifTags.IFD.Exif)[ExifTags.Base.DateTimeOriginal] = str(tags["Exif.Photo.DateTimeOriginal"])
    gps = {}
    for key, tag in (("GPSLatitude", ExifTags.GPS.GPSLatitude), ("GPSLongitude", ExifTags.GPS.GPSLongitude)):
        try:
            gps[tag] = tuple(_ratio(v) for v in str(tags[f"Exif.GPSInfo.{key}"]).split())
            gps[tag - 1] = str(tags[f"Exif.GPSInfo.{key}Ref"])  # each Ref tag comes just before its value
        except (KeyError, ValueError, ZeroDivisionError):
            gps = {}
            break
    if gps:
        exif.get_ifd(ExifTags.IFD.GPSInfo).update(gps)
    return exif


def _ratio(text: str) -> float:
    top, _, bottom = text.partition("/")
    return float(top) / float(bottom or 1)


def _raw_preview(raw) -> Image.Image | None:
    try:
        thumb = raw.extract_thumb()
    except (rawpy.LibRawNoThumbnailError, rawpy.LibRawUnsupportedThumbnailError):
        return None
    if thumb.format == rawpy.ThumbFormat.JPEG:
        img = open_image(io.BytesIO(thumb.data), suffix=".jpg")
        img.load()
        return img
    return Image.fromarray(thumb.data).convert("RGB")


_EXIF_TRANSPOSE = {3: Image.Transpose.ROTATE_180, 6: Image.Transpose.ROTATE_270, 8: Image.Transpose.ROTATE_90}


def _oriented(img: Image.Image, flip: int) -> Image.Image:
    """The preview upright: by its own EXIF orientation when it has one, else by the RAW's."""
    if int(img.getexif().get(ExifTags.Base.Orientation, 1) or 1) != 1:
        return ImageOps.exif_transpose(img)
    method = _EXIF_TRANSPOSE.get(_FLIP_TO_EXIF.get(flip, 1))
    return img.transpose(method) if method is not None else img


def load_rgb(path: str | bytes | os.PathLike, max_side: int | None = None) -> Image.Image:
    """Decoded, oriented RGB image, optionally shrunk so its longest side is at most `max_side`."""
    img = open_image(path)
    try:
        return _decode(img, max_side)
    finally:
        img.close()


def load_array(path: str | bytes | os.PathLike, max_side: int | None = None) -> np.ndarray:
    """HxWx3 uint8 array, the form the vision engines take."""
    return np.asarray(load_rgb(path, max_side))


def read_photo(path: str | bytes | os.PathLike, thumbnail_to: Path | None = None, thumb_side: int = 320,
               suffix: str | None = None) -> PhotoInfo:
    """Check a photo decodes, read its metadata and (optionally) write its thumbnail as JPEG."""
    img = open_image(path, suffix)
    try:
        exif = _exif(img)
        fmt = img.format or "unknown"
        orientation = int(exif.get(ExifTags.Base.Orientation, 1) or 1)
        w, h = img.size
        if orientation in (5, 6, 7, 8):
            w, h = h, w
        small = _decode(img, thumb_side)  # decoding proves the pixels are readable, not just the header
        if thumbnail_to is not None:
            write_jpeg(small, thumbnail_to)
        lat, lon = _gps(exif)
        return PhotoInfo(w, h, fmt, orientation, _taken_at(exif), lat, lon, _camera(exif))
    finally:
        img.close()


def write_jpeg(img: Image.Image, target: Path, quality: int = 85) -> None:
    """Write atomically so a crash or a full disk never leaves half a thumbnail behind."""
    target.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(target, lambda handle: img.save(handle, "JPEG", quality=quality))


def _exif(img: Image.Image) -> Image.Exif:
    try:
        return img.getexif()
    except Exception:  # noqa: BLE001 - malformed EXIF must not make a good photo unreadable
        return Image.Exif()


def _taken_at(exif: Image.Exif) -> str | None:
    try:
        sub = exif.get_ifd(ExifTags.IFD.Exif)
    except Exception:  # noqa: BLE001
        sub = {}
    raw = sub.get(ExifTags.Base.DateTimeOriginal) or exif.get(ExifTags.Base.DateTime)
    if not raw:
        return None
    try:
        text = raw.decode() if isinstance(raw, bytes) else str(raw)
        return dt.datetime.strptime(text.strip().rstrip("\x00")[:19], "%Y:%m:%d %H:%M:%S").isoformat()
    except (ValueError, UnicodeDecodeError):
        return None


def _camera(exif: Image.Exif) -> str | None:
    make = str(exif.get(ExifTags.Base.Make, "") or "").strip("\x00 ")
    model = str(exif.get(ExifTags.Base.Model, "") or "").strip("\x00 ")
    if model.lower().startswith(make.lower()):
        make = ""
    return " ".join(p for p in (make, model) if p) or None


def _gps(exif: Image.Exif) -> tuple[float | None, float | None]:
    try:
        gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
        lat = _degrees(gps[ExifTags.GPS.GPSLatitude], gps.get(ExifTags.GPS.GPSLatitudeRef, "N"))
        lon = _degrees(gps[ExifTags.GPS.GPSLongitude], gps.get(ExifTags.GPS.GPSLongitudeRef, "E"))
    except Exception:  # noqa: BLE001 - absent or malformed GPS is simply no GPS
        return None, None
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        return None, None
    return lat, lon


def _degrees(dms, ref) -> float:
    d, m, s = (float(x) for x in dms)
    value = d + m / 60.0 + s / 3600.0
    ref = ref.decode() if isinstance(ref, bytes) else str(ref)
    return -value if ref.strip().upper() in ("S", "W") else value

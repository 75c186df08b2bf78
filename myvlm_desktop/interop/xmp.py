"""Read the names other photo apps store in XMP: MWG regions, Microsoft People Tags, person keywords.

Sources, for a photo `p.jpg`: the packet embedded in the file, and the sidecars `p.jpg.xmp` and `p.xmp`
(a sidecar's regions win over the embedded ones: apps that write sidecars leave the photo untouched).
Packets are parsed with defusedxml: a DTD or an entity is refused, so an entity bomb costs nothing.
Every region comes back as a normalised top-left box (x1, y1, x2, y2) in the frame its metadata names;
`Names.for_photo` turns it into the photo's displayed frame using AppliedToDimensions and the EXIF
orientation. A malformed packet or a bad region is a warning, never an exception.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path

from defusedxml import DefusedXmlException
from defusedxml import ElementTree as SafeET

from ..library.names import name_key

RDF = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
NS = {
    "rdf": RDF,
    "x": "adobe:ns:meta/",
    "dc": "http://purl.org/dc/elements/1.1/",
    "xmp": "http://ns.adobe.com/xap/1.0/",
    "mwg-rs": "http://www.metadataworkinggroup.com/schemas/regions/",
    "stArea": "http://ns.adobe.com/xmp/sType/Area#",
    "stDim": "http://ns.adobe.com/xap/1.0/sType/Dimensions#",
    "MP": "http://ns.microsoft.com/photo/1.2/",
    "MPRI": "http://ns.microsoft.com/photo/1.2/t/RegionInfo#",
    "MPReg": "http://ns.microsoft.com/photo/1.2/t/Region#",
    "digiKam": "http://www.digikam.org/ns/1.0/",
    "lr": "http://ns.adobe.com/lightroom/1.0/",
    "Iptc4xmpExt": "http://iptc.org/std/Iptc4xmpExt/2008-02-29/",
}
MAX_PACKET = 4 << 20      # a sidecar or packet larger than this is not a real one
MAX_REGIONS = 200         # more regions than any photo has faces: the rest are ignored, with a warning
EMBEDDED_SCAN = 16 << 20  # the packet sits in the first megabytes of every format we read
JPEG_SCAN = 1 << 20       # in a JPEG it is an APP1 segment, before the image data
PEOPLE_ROOTS = ("people", "persons", "person", "personen", "personnes")
PET_ROOTS = ("pets", "pet", "animals")


class XmpError(Exception):
    """A packet that cannot be read; the message is for the user."""


@dataclass(frozen=True)
class Region:
    name: str
    kind: str                                # "person" or "pet"
    box: tuple[float, float, float, float]   # normalised x1, y1, x2, y2
    source: str                              # "mwg" or "mp"
    applied_to: tuple[int, int] | None = None  # AppliedToDimensions (w, h) when given


@dataclass
class Names:
    regions: list[Region] = field(default_factory=list)
    keywords: list[str] = field(default_factory=list)   # person names given for the whole photo
    pets: list[str] = field(default_factory=list)       # pet names given for the whole photo (Pets/…)
    warnings: list[str] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)    # where the names came from

    def for_photo(self, width: int, height: int, orientation: int = 1) -> list[Region]:
        """Regions in the photo's displayed frame; regions whose dimensions do not fit are dropped."""
        out = []
        for region in self.regions:
            box = fit_box(region, width, height, orientation)
            if box is None:
                self.warnings.append(f"{region.source} region {region.name!r}: AppliedToDimensions "
                                     f"{region.applied_to[0]}x{region.applied_to[1]} does not fit the "
                                     f"{width}x{height} photo")
                continue
            out.append(Region(region.name, region.kind, box, region.source, region.applied_to))
        return out


def fit_box(region: Region, width: int, height: int, orientation: int):
    """The region's box in the displayed frame, or None when AppliedToDimensions contradicts the photo.

    Regions normally refer to the photo as displayed (MWG). A writer that used the stored, unrotated frame
    shows it by AppliedToDimensions matching the stored size: the box is then turned by the orientation.
    """
    if region.applied_to is None or not all(region.applied_to):
        return region.box
    aw, ah = region.applied_to
    if _same_shape(aw, ah, width, height):
        return region.box
    if orientation in (5, 6, 7, 8) and _same_shape(aw, ah, height, width):
        return orient_box(region.box, orientation)
    return None


def _same_shape(aw, ah, w, h) -> bool:
    return abs(aw / ah - w / h) < 0.02 * (w / h)


def orient_box(box, orientation: int):
    """A normalised box in the stored frame moved to the displayed frame of an EXIF orientation."""
    x1, y1, x2, y2 = box
    turns = {
        2: (1 - x2, y1, 1 - x1, y2), 3: (1 - x2, 1 - y2, 1 - x1, 1 - y1), 4: (x1, 1 - y2, x2, 1 - y1),
        5: (y1, x1, y2, x2), 6: (1 - y2, x1, 1 - y1, x2), 7: (1 - y2, 1 - x2, 1 - y1, 1 - x1),
        8: (y1, 1 - x2, y2, 1 - x1),
    }
    return turns.get(orientation, box)


def same_name(a: str, b: str) -> bool:
    return name_key(a) == name_key(b)


# -- sources --------------------------------------------------------------------------------------------
def sidecars(photo: str | os.PathLike) -> list[Path]:
    """Existing sidecars of a photo: `p.jpg.xmp` first, then `p.xmp` (either case of the suffix)."""
    photo = Path(photo)
    candidates = [photo.with_name(photo.name + s) for s in (".xmp", ".XMP")]
    candidates += [photo.with_suffix(s) for s in (".xmp", ".XMP")]
    seen, out = set(), []
    for c in candidates:
        if c.is_file() and c.resolve() not in seen:
            seen.add(c.resolve())
            out.append(c)
    return out


def embedded_packet(data: bytes) -> bytes | None:
    """The XMP packet inside a photo's bytes (JPEG APP1, HEIF, TIFF, PNG iTXt or WebP all hold it as text)."""
    start = data.find(b"<x:xmpmeta", 0, EMBEDDED_SCAN)
    if start < 0:
        return None
    end = data.find(b"</x:xmpmeta>", start, start + MAX_PACKET)
    if end < 0:
        return None
    return data[start:end + len(b"</x:xmpmeta>")]


def read_names(photo: str | os.PathLike, data: bytes | None = None) -> Names:
    """Every name the photo's metadata holds, from its sidecars and its own packet."""
    names = Names()
    packets: list[tuple[str, bytes]] = []
    for car in sidecars(photo):
        try:
            if car.stat().st_size > MAX_PACKET:
                names.warnings.append(f"{car.name}: sidecar larger than {MAX_PACKET >> 20} MiB, not read")
                continue
            packets.append((car.name, car.read_bytes()))
        except OSError as exc:
            names.warnings.append(f"{car.name}: {exc.strerror or exc}")
    if data is None:
        try:
            with open(photo, "rb") as handle:
                jpeg = Path(photo).suffix.lower() in (".jpg", ".jpeg", ".jpe")
                data = handle.read(JPEG_SCAN if jpeg else EMBEDDED_SCAN)
        except OSError as exc:
            names.warnings.append(f"{Path(photo).name}: {exc.strerror or exc}")
            data = b""
    packet = embedded_packet(data)
    if packet:
        packets.append(("embedded", packet))
    for label, packet in packets:
        try:
            found = parse(packet)
        except XmpError as exc:
            names.warnings.append(f"{label}: {exc}")
            continue
        names.warnings += [f"{label}: {w}" for w in found.warnings]
        if found.regions and not names.regions:  # the first source with regions wins
            names.regions = found.regions
            names.sources.append(label)
        for keyword in found.keywords:
            if not any(same_name(keyword, k) for k in names.keywords):
                names.keywords.append(keyword)
        for pet in found.pets:
            if not any(same_name(pet, k) for k in names.pets):
                names.pets.append(pet)
    return names


# -- parsing --------------------------------------------------------------------------------------------
def parse(packet: bytes | str) -> Names:
    """Names in one XMP packet; XmpError when it is not XML or is hostile (DTD, entities)."""
    if len(packet) > MAX_PACKET:
        raise XmpError(f"XMP packet larger than {MAX_PACKET >> 20} MiB")
    try:
        root = SafeET.fromstring(packet, forbid_dtd=True)
    except DefusedXmlException as exc:
        raise XmpError(f"XMP refused: {type(exc).__name__} (DTDs and entities are not allowed)") from None
    except SafeET.ParseError as exc:
        raise XmpError(f"malformed XMP: {exc}") from None
    names = Names()
    names.regions = _mwg_regions(root, names.warnings)
    if not names.regions:  # MP regions usually repeat the MWG ones; read them only when there are none
        names.regions = _mp_regions(root, names.warnings)
    names.keywords, names.pets = _keywords(root)
    return names


def _q(prefix_name: str) -> str:
    prefix, name = prefix_name.split(":")
    return f"{{{NS[prefix]}}}{name}"


def _prop(node, name: str) -> str | None:
    """An XMP simple property, written either as an attribute or as a child element."""
    key = _q(name)
    if key in node.attrib:
        return node.attrib[key]
    child = node.find(key)
    if child is not None:
        text = child.text or ""
        return text.strip() or None
    return None


def _items(container) -> list:
    """The rdf:li of a property's Bag/Seq/Alt, each as the node holding its fields."""
    out = []
    for li in container.iter(_q("rdf:li")):
        description = li.find(_q("rdf:Description"))
        out.append(description if description is not None else li)
    return out


def _number(text: str | None) -> float | None:
    try:
        value = float(text)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def _box(x, y, w, h, centred: bool):
    """A normalised box, or None when it is not one (NaN, negative or empty size, outside the photo)."""
    if None in (x, y, w, h) or w <= 0 or h <= 0 or w > 1.001 or h > 1.001:
        return None
    x1, y1 = (x - w / 2, y - h / 2) if centred else (x, y)
    x2, y2 = x1 + w, y1 + h
    if x1 < -0.01 or y1 < -0.01 or x2 > 1.01 or y2 > 1.01:
        return None
    return (max(0.0, x1), max(0.0, y1), min(1.0, x2), min(1.0, y2))


def _clean(name: str | None) -> str | None:
    name = " ".join((name or "").split())
    return name[:64] if name else None


def _mwg_regions(root, warnings: list[str]) -> list[Region]:
    regions: list[Region] = []
    for holder in root.iter(_q("mwg-rs:Regions")):
        dims = holder.find(_q("mwg-rs:AppliedToDimensions"))
        applied = None
        if dims is not None:
            w, h = _number(_prop(dims, "stDim:w")), _number(_prop(dims, "stDim:h"))
            applied = (int(w), int(h)) if w and h and w > 0 and h > 0 else None
        for node in (n for rl in holder.iter(_q("mwg-rs:RegionList")) for n in _items(rl)):
            if len(regions) >= MAX_REGIONS:
                warnings.append(f"more than {MAX_REGIONS} regions: the rest are ignored")
                return regions
            kind = (_prop(node, "mwg-rs:Type") or "Face").strip().lower()
            name = _clean(_prop(node, "mwg-rs:Name"))
            if kind not in ("face", "pet") or not name:
                continue  # focus, barcode and unnamed regions name nobody
            area = node.find(_q("mwg-rs:Area"))
            if area is None:
                warnings.append(f"MWG region {name!r} has no area")
                continue
            unit = (_prop(area, "stArea:unit") or "normalized").lower()
            box = _box(*(_number(_prop(area, f"stArea:{k}")) for k in "xywh"), centred=True)
            if box is None or unit != "normalized":
                warnings.append(f"MWG region {name!r}: not a usable normalised area")
                continue
            regions.append(Region(name, "pet" if kind == "pet" else "person", box, "mwg", applied))
    return regions


def _mp_regions(root, warnings: list[str]) -> list[Region]:
    regions: list[Region] = []
    for holder in root.iter(_q("MPRI:Regions")):
        for node in _items(holder):
            if len(regions) >= MAX_REGIONS:
                warnings.append(f"more than {MAX_REGIONS} regions: the rest are ignored")
                return regions
            name = _clean(_prop(node, "MPReg:PersonDisplayName"))
            rect = _prop(node, "MPReg:Rectangle")
            if not name or not rect:
                continue
            parts = [_number(p) for p in rect.split(",")]
            box = _box(*parts, centred=False) if len(parts) == 4 else None
            if box is None:
                warnings.append(f"MP region {name!r}: not a usable rectangle {rect!r}")
                continue
            regions.append(Region(name, "person", box, "mp"))
    return regions


def _keywords(root) -> tuple[list[str], list[str]]:
    """Person names from tag trees (People/…, People|…) and Iptc4xmpExt:PersonInImage; pets from Pets/…."""
    people: list[str] = []
    pets: list[str] = []

    def add(found: list[str], name: str | None) -> None:
        name = _clean(name)
        if name and not any(same_name(name, f) for f in found):
            found.append(name)

    for prop, sep in (("digiKam:TagsList", "/"), ("lr:hierarchicalSubject", "|")):
        for holder in root.iter(_q(prop)):
            for li in holder.iter(_q("rdf:li")):
                parts = [p.strip() for p in (li.text or "").split(sep)]
                if len(parts) >= 2 and parts[0].lower() in PEOPLE_ROOTS:
                    add(people, parts[-1])
                elif len(parts) >= 2 and parts[0].lower() in PET_ROOTS:
                    add(pets, parts[-1])
    for holder in root.iter(_q("Iptc4xmpExt:PersonInImage")):
        for li in holder.iter(_q("rdf:li")):
            add(people, li.text)
    return people, pets

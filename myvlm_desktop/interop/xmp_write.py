"""Write names and captions into XMP: a sidecar by default, the photo itself only when asked.

Through Exiv2 (pyexiv2, whose wheel ships libexiv2): it edits a packet in place, so every property this
module does not touch (other namespaces, ratings, other apps' regions, EXIF) stays as it was. Written:
MWG regions (Type Face or Pet, Name, centre-based normalised Area, AppliedToDimensions), person keywords
in digiKam:TagsList (People/…), lr:hierarchicalSubject (People|…) and dc:subject, and the caption in
dc:description where that is empty or holds a caption this app wrote. An existing region that names the
same face (IoU above 0.5, or the same name) is replaced; the others are kept. Keywords are added; one is
removed only when this app added it and the name no longer holds (a rename, "not Alice"): the keywords
it added are listed in `myvlm:Keywords`, and a region it wrote before is rewritten or dropped, never kept
as another app's (`myvlm:Regions`). Every write goes to a temporary file renamed over the target; a
write into a photo is kept only when the photo decodes to exactly the same pixels as before.
"""

from __future__ import annotations

import os
import re
import shutil
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .. import imaging
from ..vision.boxes import iou
from .xmp import same_name

EMPTY_PACKET = ('<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?><x:xmpmeta xmlns:x="adobe:ns:meta/">'
                '<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description rdf:about=""/>'
                '</rdf:RDF></x:xmpmeta><?xpacket end="w"?>')
OWN_NS = ("http://ns.myvlm.app/1.0/", "myvlm")
OWN = "Xmp.myvlm.Keywords"  # the keywords this app added, so a renamed or removed name can be taken back
OWN_REGIONS = "Xmp.myvlm.Regions"  # the names of the regions this app wrote: rewritten, never kept as others'
REGIONS = "Xmp.mwg-rs.Regions"
LIST = f"{REGIONS}/mwg-rs:RegionList"
_LOCK = threading.Lock()  # Exiv2's XMP toolkit is not safe to use from two threads at once


class WriteError(Exception):
    """A file that cannot be written; the message is for the user and nothing was changed."""


@dataclass
class Tags:
    """What the library knows about one photo, in its displayed frame."""

    width: int
    height: int
    regions: list[tuple[str, str, tuple[float, float, float, float]]] = field(default_factory=list)  # name, kind, box
    people: list[str] = field(default_factory=list)
    pets: list[str] = field(default_factory=list)
    caption: str | None = None
    own_captions: set[str] = field(default_factory=set)  # captions this app wrote for the photo


def sidecar_path(photo: str | os.PathLike, style: str = "photo.jpg.xmp") -> Path:
    photo = Path(photo)
    return photo.with_suffix(".xmp") if style == "photo.xmp" else photo.with_name(photo.name + ".xmp")


def write_sidecar(photo: str | os.PathLike, tags: Tags, style: str = "photo.jpg.xmp") -> Path:
    target = sidecar_path(photo, style)
    tmp = _tmp(target)
    try:
        if target.exists():
            shutil.copyfile(target, tmp)
        else:
            tmp.write_text(EMPTY_PACKET, encoding="utf-8")
        _edit(tmp, tags)
        os.replace(tmp, target)
    except OSError as exc:
        raise WriteError(f"cannot write {target}: {exc.strerror or exc}") from None
    finally:
        tmp.unlink(missing_ok=True)
    return target


def write_embedded(photo: str | os.PathLike, tags: Tags) -> Path:
    """Write into the photo itself, keeping its pixels: checked against a decode of the original."""
    photo = Path(photo)
    tmp = _tmp(photo)
    try:
        before = imaging.load_array(photo)
        shutil.copy2(photo, tmp)
        _edit(tmp, tags)
        if not np.array_equal(imaging.load_array(tmp), before):
            raise WriteError(f"{photo}: writing the metadata would change the pixels; left as it was")
        os.replace(tmp, photo)
    except imaging.ImageError as exc:
        raise WriteError(f"{photo}: {exc.reason}") from None
    except OSError as exc:
        raise WriteError(f"cannot write {photo}: {exc.strerror or exc}") from None
    finally:
        tmp.unlink(missing_ok=True)
    return photo


def _tmp(target: Path) -> Path:
    return target.with_name(f".{target.name}.{os.getpid()}-{threading.get_ident()}.tmp{target.suffix}")


def _edit(path: Path, tags: Tags) -> None:
    import pyexiv2

    with _LOCK:
        pyexiv2.set_log_level(4)  # Exiv2's warnings would go to stderr; failures still raise
        pyexiv2.registerNs(*OWN_NS)
        try:
            with pyexiv2.Image(str(path)) as img:
                current = img.read_xmp()
                _write_regions(img, current, tags)
                _write_array(img, current, OWN_REGIONS, sorted({name for name, _, _ in tags.regions}))
                for key, values in _keywords(current, tags).items():
                    _write_array(img, current, key, values)
                caption = _caption(current, tags)
                if caption is not None:
                    img.modify_xmp({"Xmp.dc.description": {'lang="x-default"': caption}})
        except RuntimeError as exc:  # pyexiv2 reports every Exiv2 failure as RuntimeError
            raise WriteError(f"{path.name}: Exiv2 cannot write it: {exc}") from None


def _write_regions(img, current: dict, tags: Tags) -> None:
    ours_before = set(_array(current, OWN_REGIONS))
    kept = [r for r in _existing_regions(current)
            if not _replaced(r, tags) and r.get("/mwg-rs:Name", "") not in ours_before]
    if not tags.regions and not kept and not any(k.startswith(REGIONS) for k in current):
        return
    img.modify_xmp({k: None for k in sorted(current, key=len, reverse=True) if k.startswith(REGIONS)})
    values = {REGIONS: 'type="Struct"', f"{REGIONS}/mwg-rs:AppliedToDimensions": 'type="Struct"',
              f"{REGIONS}/mwg-rs:AppliedToDimensions/stDim:w": str(tags.width),
              f"{REGIONS}/mwg-rs:AppliedToDimensions/stDim:h": str(tags.height),
              f"{REGIONS}/mwg-rs:AppliedToDimensions/stDim:unit": "pixel", LIST: 'type="Bag"'}
    img.modify_xmp(values)
    n = 0
    for fields in kept:  # other apps' regions, with every field they had
        n += 1
        img.modify_xmp({f"{LIST}[{n}]{suffix}": value for suffix, value in fields["raw"]})
    for name, kind, (x1, y1, x2, y2) in tags.regions:
        n += 1
        item = f"{LIST}[{n}]"
        img.modify_xmp({item: 'type="Struct"', f"{item}/mwg-rs:Name": name,
                        f"{item}/mwg-rs:Type": "Pet" if kind == "pet" else "Face",
                        f"{item}/mwg-rs:Area": 'type="Struct"',
                        f"{item}/mwg-rs:Area/stArea:x": f"{(x1 + x2) / 2:.6f}",
                        f"{item}/mwg-rs:Area/stArea:y": f"{(y1 + y2) / 2:.6f}",
                        f"{item}/mwg-rs:Area/stArea:w": f"{x2 - x1:.6f}",
                        f"{item}/mwg-rs:Area/stArea:h": f"{y2 - y1:.6f}",
                        f"{item}/mwg-rs:Area/stArea:unit": "normalized"})


_ITEM = re.compile(re.escape(LIST) + r"\[(\d+)\](.*)$")


def _existing_regions(current: dict) -> list[dict]:
    """The MWG regions already there: index -> name, type, box and every raw field (to write back as is)."""
    regions: dict[int, dict] = {}
    for key, value in current.items():
        m = _ITEM.match(key)
        if m:
            r = regions.setdefault(int(m.group(1)), {"raw": []})
            r["raw"].append((m.group(2), value))
            r[m.group(2)] = value
    out = []
    for index in sorted(regions):
        r = regions[index]
        r["raw"].sort(key=lambda kv: len(kv[0]))  # containers before their fields
        try:
            x, y, w, h = (float(r[f"/mwg-rs:Area/stArea:{k}"]) for k in "xywh")
            r["box"] = (x - w / 2, y - h / 2, x + w / 2, y + h / 2)
        except (KeyError, ValueError):
            r["box"] = None
        out.append(r)
    return out


def _replaced(region: dict, tags: Tags) -> bool:
    """An existing region is ours to replace when it names the same face or one of our names."""
    name, box = region.get("/mwg-rs:Name", ""), region.get("box")
    for our_name, _, our_box in tags.regions:
        if (name and same_name(name, our_name)) or (box is not None and iou(box, our_box) > 0.5):
            return True
    return False


def _array(current: dict, key: str) -> list[str]:
    """An XMP array's items, whether Exiv2 gives them as a list or as `key[n]` entries."""
    value = current.get(key)
    if isinstance(value, list):
        return [str(v) for v in value]
    if isinstance(value, str) and not value.startswith("type="):
        return [value]
    items = sorted(((int(k[len(key) + 1:-1]), v) for k, v in current.items()
                    if k.startswith(f"{key}[") and k.endswith("]") and k[len(key) + 1:-1].isdigit()))
    return [str(v) for _, v in items]


def _keywords(current: dict, tags: Tags) -> dict[str, list[str]]:
    """Each keyword array merged: ours added, ours from an earlier write that no longer hold taken back."""
    people, pets = tags.people, tags.pets
    ours = {"Xmp.digiKam.TagsList": [f"People/{n}" for n in people] + [f"Pets/{n}" for n in pets],
            "Xmp.lr.hierarchicalSubject": [f"People|{n}" for n in people] + [f"Pets|{n}" for n in pets],
            "Xmp.dc.subject": people + pets}
    before = set(_array(current, OWN))
    wanted = {v for values in ours.values() for v in values}
    stale = before - wanted
    added = set(before & wanted)
    out = {}
    for key, mine in ours.items():
        existing = [v for v in _array(current, key) if v not in stale]
        new = [v for v in mine if not any(same_name(v, e) for e in existing)]
        added.update(new)
        out[key] = existing + new
    out[OWN] = sorted(added)
    return out


def _write_array(img, current: dict, key: str, values: list[str]) -> None:
    """An unordered array (rdf:Bag), one item per call: Exiv2 keeps only the first of a batch."""
    if values == _array(current, key):
        return
    img.modify_xmp({k: None for k in current if k == key or k.startswith(f"{key}[")})
    if not values:
        return
    img.modify_xmp({key: 'type="Bag"'})
    for n, value in enumerate(values, start=1):
        img.modify_xmp({f"{key}[{n}]": value})


def _caption(current: dict, tags: Tags) -> str | None:
    """The caption to write, or None: only over an empty description or one this app wrote."""
    if not tags.caption:
        return None
    existing = current.get("Xmp.dc.description")
    text = ""
    if isinstance(existing, dict):
        text = existing.get('lang="x-default"') or next(iter(existing.values()), "")
    elif isinstance(existing, str):
        text = existing
    text = text.strip()
    if text == tags.caption:
        return None
    if text and text not in tags.own_captions:
        return None
    return tags.caption

"""Concept packs: one concept's head, concept embeddings and a few thumbnails in a `.myvlm` zip.

Layout: `manifest.json` (what the pack is and what each part was made with), `head.safetensors`,
`embedding-<backend>.safetensors` for each VLM backend, `thumbs/<n>.jpg` (at most 8). Nothing else.

A pack comes from someone else, so it is checked whole before anything is written: only the names above,
no paths out of the pack, no links, every member under its size limit (read with a cap, whatever the zip
header claims), safetensors headers that are small and agree with their data, float32 tensors of the
shapes the manifest says. A pack made for another face engine, image embedder or VLM backend installs
the parts this library can use and says which it cannot.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import os
import re
import stat
import struct
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image
from safetensors.numpy import load as load_tensors
from safetensors.numpy import save as save_tensors

from .. import __version__, config
from ..concepts.store import FORMAT as HEAD_FORMAT
from ..concepts.store import TENSORS_FILE as HEAD_TENSORS
from ..concepts.store import ConceptFileError, Head, load_head, save_head
from ..concepts.store import _model as head_model
from ..storage import atomic_write, atomic_write_bytes
from .xmp import name_key

FORMAT = "myvlm-concept-pack"
SCHEMA_VERSION = 1
SUFFIX = ".myvlm"
KNOWN_BACKENDS = ("smolvlm", "blip2", "llava")  # vlm/backends (a test keeps the two in step)
MAX_THUMBS = 8
THUMB_SIDE = 128
LIMITS = {"manifest.json": 64 << 10, "head": 64 << 20, "embedding": 16 << 20, "thumb": 256 << 10}
MAX_MEMBERS = 2 + len(KNOWN_BACKENDS) + MAX_THUMBS + 8
MAX_HEADER = 1 << 20  # a safetensors header is a few hundred bytes; one claiming more is not ours
MEMBER = re.compile(r"^(manifest\.json|head\.safetensors|embedding-[a-z0-9_-]{1,32}\.safetensors|thumbs/[0-7]\.jpg)$")


class PackError(Exception):
    """A pack that cannot be installed; the message says why, and nothing was changed."""


@dataclass
class Pack:
    manifest: dict
    head: Head | None = None
    embeddings: dict[str, np.ndarray] = field(default_factory=dict)   # backend -> vector
    thumbs: list[bytes] = field(default_factory=list)


# -- export ----------------------------------------------------------------------------------------------
def export_concept(library, concept_ref: str, target: str | os.PathLike) -> dict:
    """Write the concept's pack to `target` (atomically); returns the manifest and the size."""
    concept = _find(library, concept_ref, by_id=True)
    if concept is None:
        raise PackError(f"no concept {concept_ref!r}")
    folder = config.concepts_dir(library.root) / str(concept["id"])
    try:
        head = load_head(folder)
    except ConceptFileError as exc:
        raise PackError(f"{concept['name']}'s head cannot be read: {exc}") from None
    manifest = {"format": FORMAT, "schema_version": SCHEMA_VERSION, "name": concept["name"], "kind": concept["kind"],
                "identifier": concept["identifier"], "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                "app_version": __version__, "head": None, "embeddings": [], "thumbnails": []}
    files: dict[str, bytes] = {}
    if head is not None:
        files["head.safetensors"] = (folder / HEAD_TENSORS).read_bytes()
        manifest["head"] = {"file": "head.safetensors", "type": head.kind, "engine": head.meta.get("engine"),
                            "threshold": head.meta.get("threshold"), "shapes": _shapes(files["head.safetensors"])}
    for path in sorted(folder.glob("*.safetensors")):
        if path.name == HEAD_TENSORS or path.stem not in KNOWN_BACKENDS:
            continue
        info = _json(path.with_suffix(".json"))
        vector = load_tensors(path.read_bytes()).get("vector")
        if vector is None:
            continue
        name = f"embedding-{path.stem}.safetensors"
        files[name] = save_tensors({"vector": np.ascontiguousarray(vector, np.float32).reshape(-1)})
        manifest["embeddings"].append({"file": name, "backend": path.stem, "model": info.get("model", ""),
                                       "revision": info.get("revision", ""), "dim": int(vector.size)})
    for n, thumb in enumerate(_thumbnails(library, concept["id"])):
        files[f"thumbs/{n}.jpg"] = thumb
        manifest["thumbnails"].append(f"thumbs/{n}.jpg")
    target = Path(target)

    def write_zip(handle) -> None:
        with zipfile.ZipFile(handle, "w", zipfile.ZIP_DEFLATED) as zf:
            zf.writestr("manifest.json", json.dumps(manifest, indent=2, ensure_ascii=False))
            for name, data in files.items():
                zf.writestr(name, data)

    atomic_write(target, write_zip)
    return {**manifest, "bytes": target.stat().st_size, "path": str(target)}


def _thumbnails(library, concept_id: int) -> list[bytes]:
    rows = library.db.query("SELECT p.hash FROM concept_photos cp JOIN photos p ON p.id = cp.photo_id "
                            "WHERE cp.concept_id = ? AND p.status = 'ok' ORDER BY p.date DESC LIMIT ?",
                            (concept_id, MAX_THUMBS))
    out = []
    for row in rows:
        try:
            with Image.open(library.thumbnail_path(row["hash"])) as img:
                small = img.convert("RGB")
                small.thumbnail((THUMB_SIDE, THUMB_SIDE))
                buf = io.BytesIO()
                small.save(buf, "JPEG", quality=80)
                out.append(buf.getvalue())
        except (OSError, ValueError):
            continue  # a thumbnail not made yet: the pack simply has fewer
    return out


# -- reading and checking --------------------------------------------------------------------------------
def read_pack(path: str | os.PathLike) -> Pack:
    """Open and check a pack completely; PackError on anything unexpected."""
    try:
        size = os.path.getsize(path)
        zf = zipfile.ZipFile(path)
    except FileNotFoundError:
        raise PackError(f"no such file: {path}") from None
    except (zipfile.BadZipFile, OSError) as exc:
        raise PackError(f"not a concept pack (not a zip file: {exc})") from None
    with zf:
        members = _members(zf, size)
        manifest = _manifest(_read(zf, members["manifest.json"], LIMITS["manifest.json"]))
        expected = {"manifest.json"} | set(manifest["thumbnails"]) | {e["file"] for e in manifest["embeddings"]}
        if manifest["head"]:
            expected.add(manifest["head"]["file"])
        if set(members) != expected:
            extra, missing = sorted(set(members) - expected), sorted(expected - set(members))
            raise PackError("pack contents do not match its manifest: "
                            + "; ".join(p for p in (f"extra {', '.join(extra)}" if extra else "",
                                                    f"missing {', '.join(missing)}" if missing else "") if p))
        pack = Pack(manifest)
        if manifest["head"]:
            pack.head = _head(_read(zf, members["head.safetensors"], LIMITS["head"]), manifest)
        for entry in manifest["embeddings"]:
            tensors = _tensors(_read(zf, members[entry["file"]], LIMITS["embedding"]), entry["file"])
            vector = tensors.get("vector")
            if vector is None or set(tensors) != {"vector"} or vector.shape != (entry["dim"],):
                raise PackError(f"{entry['file']}: expected one float32 vector of {entry['dim']} values")
            pack.embeddings[entry["backend"]] = vector
        for name in manifest["thumbnails"]:
            data = _read(zf, members[name], LIMITS["thumb"])
            if not data.startswith(b"\xff\xd8"):
                raise PackError(f"{name}: not a JPEG thumbnail")
            pack.thumbs.append(data)
    return pack


def _members(zf: zipfile.ZipFile, archive_size: int) -> dict[str, zipfile.ZipInfo]:
    infos = zf.infolist()
    if len(infos) > MAX_MEMBERS:
        raise PackError(f"pack has {len(infos)} members; a concept pack has at most {MAX_MEMBERS}")
    out = {}
    for info in infos:
        name = info.filename
        if name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name):
            raise PackError(f"pack member with an absolute path: {name!r}")
        if ".." in name.replace("\\", "/").split("/") or "\\" in name:
            raise PackError(f"pack member pointing outside the pack: {name!r}")
        if stat.S_ISLNK(info.external_attr >> 16):
            raise PackError(f"pack member is a symbolic link: {name!r}")
        if not MEMBER.match(name):
            raise PackError(f"unexpected file in pack: {name!r}")
        if name in out:
            raise PackError(f"pack member twice: {name!r}")
        limit = _limit(name)
        if info.file_size > limit or (info.compress_size and info.file_size / info.compress_size > 200):
            raise PackError(f"pack member {name!r} is too large ({info.file_size} bytes, limit {limit})")
        out[name] = info
    if "manifest.json" not in out:
        raise PackError("not a concept pack: no manifest.json")
    return out


def _limit(name: str) -> int:
    if name == "manifest.json":
        return LIMITS["manifest.json"]
    if name == "head.safetensors":
        return LIMITS["head"]
    return LIMITS["embedding"] if name.startswith("embedding-") else LIMITS["thumb"]


def _read(zf: zipfile.ZipFile, info: zipfile.ZipInfo, limit: int) -> bytes:
    """The member's bytes, never more than `limit` whatever its header says (a zip bomb stops here)."""
    try:
        with zf.open(info) as member:
            data = member.read(limit + 1)
    except (zipfile.BadZipFile, OSError, EOFError, NotImplementedError) as exc:
        raise PackError(f"pack member {info.filename!r} is damaged: {exc}") from None
    if len(data) > limit:
        raise PackError(f"pack member {info.filename!r} is larger than {limit} bytes")
    return data


def _manifest(data: bytes) -> dict:
    try:
        manifest = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PackError(f"manifest.json is not valid JSON: {exc}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise PackError("not a concept pack (manifest.json has another format)")
    if not isinstance(manifest.get("schema_version"), int) or manifest["schema_version"] > SCHEMA_VERSION:
        raise PackError(f"pack schema {manifest.get('schema_version')!r} is newer than this app reads; update it")
    for key in ("name", "kind", "identifier"):
        if not isinstance(manifest.get(key), str) or not manifest[key].strip():
            raise PackError(f"manifest.json: {key} missing")
    if manifest["kind"] not in ("person", "pet", "object"):
        raise PackError(f"manifest.json: unknown kind {manifest['kind']!r}")
    head = manifest.get("head")
    if head is not None and (not isinstance(head, dict) or head.get("file") != "head.safetensors"
                             or head.get("type") not in ("person", "linear")):
        raise PackError("manifest.json: head entry malformed")
    embeddings = manifest.get("embeddings", [])
    thumbs = manifest.get("thumbnails", [])
    if not isinstance(embeddings, list) or not isinstance(thumbs, list) or len(thumbs) > MAX_THUMBS:
        raise PackError("manifest.json: embeddings or thumbnails malformed")
    for entry in embeddings:
        ok = (isinstance(entry, dict) and isinstance(entry.get("backend"), str) and isinstance(entry.get("dim"), int)
              and 0 < entry["dim"] <= 65536 and entry.get("file") == f"embedding-{entry['backend']}.safetensors")
        if not ok:
            raise PackError("manifest.json: embedding entry malformed")
    if not all(isinstance(t, str) and MEMBER.match(t) and t.startswith("thumbs/") for t in thumbs):
        raise PackError("manifest.json: thumbnail entry malformed")
    manifest.setdefault("embeddings", embeddings)
    manifest.setdefault("thumbnails", thumbs)
    return manifest


def _tensors(data: bytes, name: str) -> dict[str, np.ndarray]:
    """Tensors of a safetensors file, its header checked before safetensors parses it."""
    if len(data) < 8:
        raise PackError(f"{name}: not a safetensors file (too short)")
    (header_len,) = struct.unpack("<Q", data[:8])
    if header_len > MAX_HEADER or header_len > len(data) - 8:
        raise PackError(f"{name}: safetensors header claims {header_len} bytes; the file has {len(data)}")
    try:
        header = json.loads(data[8:8 + header_len])
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise PackError(f"{name}: safetensors header is not JSON") from None
    body = len(data) - 8 - header_len
    for key, spec in header.items():
        if key == "__metadata__":
            continue
        if not isinstance(spec, dict) or spec.get("dtype") != "F32":
            raise PackError(f"{name}: tensor {key!r} is {spec.get('dtype') if isinstance(spec, dict) else spec!r}, "
                            "not float32")
        shape, offsets = spec.get("shape"), spec.get("data_offsets")
        if (not isinstance(shape, list) or not all(isinstance(s, int) and 0 <= s <= 1 << 24 for s in shape)
                or not isinstance(offsets, list) or len(offsets) != 2 or not 0 <= offsets[0] <= offsets[1] <= body
                or offsets[1] - offsets[0] != 4 * int(np.prod(shape, dtype=np.int64))):
            raise PackError(f"{name}: tensor {key!r} shape {shape} does not match its data")
    try:
        tensors = load_tensors(data)
    except Exception as exc:  # noqa: BLE001 - safetensors raises its own types on bad bytes
        raise PackError(f"{name}: not a safetensors file ({exc})") from None
    if not all(np.all(np.isfinite(t)) for t in tensors.values()):
        raise PackError(f"{name}: tensors hold NaN or infinite values")
    return tensors


def _head(data: bytes, manifest: dict) -> Head:
    entry = manifest["head"]
    tensors = _tensors(data, "head.safetensors")
    meta = {"format": HEAD_FORMAT, "kind": entry["type"], "engine": entry.get("engine"),
            "threshold": entry.get("threshold")}
    if entry["type"] == "person":
        threshold = entry.get("threshold")
        if set(tensors) != {"keys", "negatives"} or not isinstance(threshold, (int, float)) or not 0 < threshold < 2:
            raise PackError("head.safetensors: a person head needs keys, negatives and a threshold in (0, 2)")
        keys, negatives = tensors["keys"], tensors["negatives"]
        if keys.ndim != 2 or keys.shape[0] == 0 or negatives.ndim != 2 or negatives.shape[1:] != keys.shape[1:]:
            raise PackError(f"head.safetensors: keys {keys.shape} / negatives {negatives.shape} do not fit together")
    elif set(tensors) != {"weight", "bias"}:
        raise PackError("head.safetensors: a linear head needs weight and bias")
    try:
        model = head_model(meta, tensors, Path("head.safetensors"))
    except ConceptFileError as exc:
        raise PackError(str(exc)) from None
    return Head(model, meta)


def _shapes(data: bytes) -> dict:
    return {k: list(v.shape) for k, v in load_tensors(data).items()}


def _json(path: Path) -> dict:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
        return value if isinstance(value, dict) else {}
    except (OSError, ValueError):
        return {}


# -- installing ------------------------------------------------------------------------------------------
def import_pack(library, path: str | os.PathLike, name: str | None = None, face_engines: set[str] | None = None,
                embedders: set[str] | None = None) -> dict:
    """Check and install a pack as a new concept; returns what was installed and what was not, and why.

    `face_engines` / `embedders`: the engines this library uses (default: those of its faces and photos).
    """
    from ..people import ops

    pack = read_pack(path)
    manifest = pack.manifest
    try:
        name = ops._clean_name(name or manifest["name"])
    except ops.PeopleError as exc:
        raise PackError(str(exc)) from None
    existing = _find(library, name)
    if existing is not None:
        raise PackError(f"a concept named {existing['name']!r} exists already; import under another name (--name)")
    face_engines = face_engines if face_engines is not None else _used(library, "SELECT DISTINCT engine FROM faces")
    embedders = embedders if embedders is not None else _used(
        library, "SELECT DISTINCT embedder FROM image_embeddings")
    installed, skipped = [], []
    head = pack.head
    if head is not None:
        engine = manifest["head"].get("engine")
        usable = face_engines if head.kind == "person" else embedders
        if usable and engine not in usable:
            skipped.append(f"head: made with {engine}; this library uses {', '.join(sorted(usable))} "
                           "(name a few photos and the head is trained here)")
            head = None
    vectors = {}
    for entry in manifest["embeddings"]:
        if entry["backend"] in KNOWN_BACKENDS:
            vectors[entry["backend"]] = entry
        else:
            skipped.append(f"embedding for VLM backend {entry['backend']!r}: not a backend this app has")
    concept = ops._operation(library, "import-pack", _create_concept, name, manifest["kind"])
    folder = config.concepts_dir(library.root) / str(concept["id"])
    if head is not None:
        meta = dict(head.meta, concept_version=concept["version"], imported_from=manifest.get("name"),
                    pack_created=manifest.get("created"))
        save_head(folder, Head(head.model, meta))
        installed.append(f"head ({head.kind}, {manifest['head'].get('engine')})")
    for backend, entry in vectors.items():
        _save_vector(folder / f"{backend}.safetensors", pack.embeddings[backend], name, concept, entry)
        installed.append(f"embedding ({backend}, {entry.get('model') or 'model unknown'})")
    if pack.thumbs:
        thumbs = folder / "pack-thumbnails"
        thumbs.mkdir(parents=True, exist_ok=True)
        for n, data in enumerate(pack.thumbs):
            (thumbs / f"{n}.jpg").write_bytes(data)
    return {"concept": name, "id": concept["id"], "kind": manifest["kind"], "installed": installed,
            "not_installed": skipped, "thumbnails": len(pack.thumbs)}


def _create_concept(conn, name: str, kind: str):
    from ..people import ops

    concept_id = ops._new_concept(conn, name, kind)
    row = conn.execute("SELECT * FROM concepts WHERE id = ?", (concept_id,)).fetchone()
    return dict(row), f"imported {name} ({kind}) from a concept pack"


def _save_vector(path: Path, vector: np.ndarray, name: str, concept: dict, entry: dict) -> None:
    """The format vlm/concept.py reads: a `vector` tensor and the JSON beside it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    info = {"name": name, "identifier": concept["identifier"], "kind": concept["kind"], "backend": entry["backend"],
            "model": entry.get("model", ""), "revision": entry.get("revision", ""), "dim": int(vector.size),
            "format": 1, "concept_version": concept["version"], "concept_id": concept["id"],
            "sha256": hashlib.sha256(vector.tobytes()).hexdigest()}
    for target, data in ((path, save_tensors({"vector": np.ascontiguousarray(vector, np.float32)})),
                         (path.with_suffix(".json"), json.dumps(info, indent=2, ensure_ascii=False).encode())):
        atomic_write_bytes(target, data)


def _used(library, sql: str) -> set[str]:
    return {r[0] for r in library.db.query(sql)}


def _find(library, ref: str, by_id: bool = False):
    """The concept named `ref` up to case and Unicode form (or, with `by_id`, whose id it is)."""
    key = name_key(str(ref).strip().strip("<>@"))
    for row in library.db.query("SELECT * FROM concepts ORDER BY id"):
        if name_key(row["name"]) == key or (by_id and str(row["id"]) == str(ref).strip()):
            return row
    return None

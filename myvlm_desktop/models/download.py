"""Downloads: hub models through huggingface_hub, the insightface zip by resumable HTTP with a checksum.

Large files of a hub model (the weights) are fetched here with HTTP Range requests into a partial file in the
models folder that survives a cancel, a dropped connection or a killed process, so the next try continues
where the last one stopped: huggingface_hub writes every try to a new temporary file and deletes it when the
try fails, so on its own a cancelled 500 MB file starts again from byte 0. The finished file is checked (size
and the Hub's LFS SHA-256) and put into the Hugging Face cache under the name huggingface_hub gives it, so
`snapshot_download` then links it instead of fetching it, and fetches only the small files. The endpoint,
token and headers are huggingface_hub's own (`hf_hub_url`, `get_hf_file_metadata`, `build_hf_headers`).

Every failure becomes `ModelUnavailable` with what to do; timeouts are short so an offline machine is
told at once instead of waiting.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlparse

from .. import storage
from .errors import ModelUnavailable
from .registry import ModelSpec

Progress = Callable[[int, int], None]
TIMEOUT = (10, 30)  # seconds to connect, seconds between bytes
CHUNK = 1 << 20
RANGED_MIN = 1 << 20  # hub files from this size up are fetched here, resumably (see the module's docstring)
RETRIES = 3  # dropped connections continued within one try, from the partial file
PARTIAL_DIR = ".partial"  # in the models folder: <LFS SHA-256>.part, one per large file being fetched
# What a transformers model needs; skips the duplicate PyTorch / TF / Flax weights hub repos also carry.
HUB_PATTERNS = ["*.json", "*.safetensors", "*.model", "*.txt", "*.jinja", "*.tiktoken"]


class DownloadError(Exception):
    pass


# -- the Hugging Face hub ---------------------------------------------------------------------------------
class Cancelled(Exception):
    """Raised by a progress callback to stop a download; the files already fetched stay for the next try."""


def from_hub(model: ModelSpec, progress: Progress | None = None, models_dir: Path | None = None) -> Path:
    """snapshot_download into the Hugging Face cache (large files first, resumably, into `models_dir`'s partial
    folder), then every file checked against the Hub's listing (size, and SHA-256 for large files): a truncated
    or corrupted file is deleted and fetched again, once. Cancelled (from `progress`) keeps what was fetched."""
    from huggingface_hub import constants

    from .lookup import app_models_dir

    if constants.HF_HUB_OFFLINE or hub_offline():
        raise ModelUnavailable(model.name, "downloads are switched off (HF_HUB_OFFLINE is set)",
                               f"Unset HF_HUB_OFFLINE and run `myvlm models download {model.name}` again.")
    partials = app_models_dir(models_dir) / PARTIAL_DIR
    try:
        folder = _snapshot(model, progress, partials)
        bad = damaged_files(folder, _listing(model, folder))
        if bad:
            for name in bad:
                _forget(folder / name)
            folder = _snapshot(model, progress, partials)
            bad = damaged_files(folder, _listing(model, folder))
    except (Cancelled, ModelUnavailable):
        raise
    except Exception as exc:  # noqa: BLE001 - hub, HTTP and disk errors all mean "not downloaded"
        raise ModelUnavailable(model.name, f"download from the Hugging Face hub failed ({_reason(exc)})",
                               "Check the internet connection and try again, or copy the model folder into the "
                               "app's models folder.") from None
    if bad:
        raise _damaged_twice(model, bad)
    drop_leftovers(folder)
    return folder


def _damaged_twice(model: ModelSpec, names: list[str]) -> ModelUnavailable:
    return ModelUnavailable(model.name, f"{', '.join(names)} arrived damaged twice (size or SHA-256 differs from "
                            "the Hub's)", f"Run `myvlm models download {model.name}` again later.")


def drop_leftovers(snapshot: Path) -> list[Path]:
    """Delete the partial files that killed or cancelled tries left in the repo's blob store.

    huggingface_hub gives every try its own `<blob>.<random>.incomplete` and never reuses it, so after a kill
    the partial file would stay on disk for good; once the snapshot is complete none of them is needed.
    """
    blobs = snapshot.parent.parent / "blobs"
    left = sorted(blobs.glob("*.incomplete")) if blobs.is_dir() else []
    for path in left:
        path.unlink(missing_ok=True)
    return left


def hub_offline() -> bool:
    """HF_HUB_OFFLINE as huggingface_hub reads it, but read now: it may be set after huggingface_hub was imported."""
    return os.environ.get("HF_HUB_OFFLINE", "").upper() in ("1", "ON", "YES", "TRUE")


def _endpoint() -> str | None:
    """HF_ENDPOINT read now, not when huggingface_hub was imported (a mirror chosen at run time)."""
    return os.environ.get("HF_ENDPOINT", "").rstrip("/") or None


def _snapshot(model: ModelSpec, progress: Progress | None, partials: Path) -> Path:
    from huggingface_hub import snapshot_download

    large = _fetch_large_files(model, progress, partials)
    rest = None if progress is None else (lambda done, total: progress(large + done, large + total))
    return Path(snapshot_download(model.repo_id, allow_patterns=HUB_PATTERNS, etag_timeout=TIMEOUT[0],
                                  tqdm_class=_byte_bar(rest), endpoint=_endpoint()))


def _fetch_large_files(model: ModelSpec, progress: Progress | None, partials: Path) -> int:
    """Put the model's large files into the Hugging Face cache, each continued from its partial file; their
    total size. Progress counts against the whole model's size, as the small files' download goes on to."""
    from huggingface_hub import HfApi, constants, get_hf_file_metadata, hf_hub_url
    from huggingface_hub.file_download import repo_folder_name
    from huggingface_hub.utils import build_hf_headers, filter_repo_objects

    info = HfApi(endpoint=_endpoint()).model_info(model.repo_id, files_metadata=True)
    wanted = set(filter_repo_objects([f.rfilename for f in info.siblings or []], allow_patterns=HUB_PATTERNS))
    large = [f for f in info.siblings or [] if f.rfilename in wanted and f.lfs and f.lfs.size >= RANGED_MIN]
    before = 0
    total = sum(f.size or 0 for f in info.siblings or [] if f.rfilename in wanted)  # one bar for the whole model
    blobs = Path(constants.HF_HUB_CACHE) / repo_folder_name(repo_id=model.repo_id, repo_type="model") / "blobs"
    for f in large:
        url = hf_hub_url(model.repo_id, f.rfilename, revision=info.sha, endpoint=_endpoint())
        meta = get_hf_file_metadata(url, timeout=TIMEOUT[0])
        blob = blobs / meta.etag  # the name huggingface_hub looks for; for LFS files the SHA-256
        if not (blob.is_file() and blob.stat().st_size == f.lfs.size):  # contents: damaged_files checks them
            # the resolve URL, not the CDN one it redirects to: requests drops the token when the host changes
            part = fetch_verified(url, partials / f"{f.lfs.sha256}.part", f.lfs.size,
                                  f.lfs.sha256, _shifted(progress, before, total), build_hf_headers())
            if part is None:
                raise _damaged_twice(model, [f.rfilename])
            _move_into(part, blob)
        before += f.lfs.size
    return before


def _shifted(progress: Progress | None, before: int, total: int) -> Progress | None:
    """One file's (done, size) as the bytes of all large files together."""
    return None if progress is None else (lambda done, _size: progress(before + done, total))


def fetch_verified(url: str, part: Path, size: int, sha256: str, progress: Progress | None = None,
                   headers: dict | None = None) -> Path | None:
    """`url` into `part`, continued from what `part` holds; the file once its size and SHA-256 are right, None
    if it arrived damaged twice. A dropped connection is continued at once (RETRIES times), a damaged file
    fetched again from its start."""
    damaged = drops = 0
    while damaged < 2:
        if part.exists() and part.stat().st_size > size:
            part.unlink()
        try:
            fetch(url, part, progress, size, headers)
            if part.stat().st_size < size:
                raise DownloadError(f"the connection ended after {part.stat().st_size} of {size} bytes")
        except DownloadError:
            drops += 1
            if drops > RETRIES:
                raise
            continue
        if storage.sha256_of(part) == sha256:
            return part
        part.unlink()  # all there, wrong bytes: nothing of it can be kept
        damaged += 1
    return None


def _move_into(part: Path, blob: Path) -> None:
    """The checked file into the cache, atomically (the models folder and the cache may be different disks)."""
    blob.parent.mkdir(parents=True, exist_ok=True)
    staged = blob.with_name(f"{blob.name}.{os.getpid()}.incomplete")  # drop_leftovers removes it if we die here
    shutil.move(part, staged)
    os.replace(staged, blob)


def _listing(model: ModelSpec, folder: Path) -> dict[str, tuple[int, str | None, str]]:
    """path -> (size, LFS SHA-256 or None, git blob id) for the snapshot's commit, from the Hub's tree listing."""
    from huggingface_hub import HfApi
    from huggingface_hub.hf_api import RepoFile

    entries = HfApi(endpoint=_endpoint()).list_repo_tree(model.repo_id, recursive=True, revision=folder.name)
    return {e.path: (e.lfs.size if e.lfs else e.size, e.lfs.sha256 if e.lfs else None, e.blob_id)
            for e in entries if isinstance(e, RepoFile)}


def damaged_files(folder: Path, listing: dict[str, tuple[int, str | None, str]]) -> list[str]:
    """Files in `folder` whose size or checksum differs from the listing (LFS: SHA-256; others: git blob id)."""
    bad = []
    for name, (size, sha256, blob_id) in sorted(listing.items()):
        path = folder / name
        if not path.is_file():
            continue  # not wanted (filtered by HUB_PATTERNS)
        if path.stat().st_size != size or _digest_differs(path, sha256, blob_id):
            bad.append(name)
    return bad


def _digest_differs(path: Path, sha256: str | None, blob_id: str | None) -> bool:
    if sha256 is not None:
        return storage.sha256_of(path) != sha256
    return bool(blob_id) and _git_blob_id(path) != blob_id


def _git_blob_id(path: Path) -> str:
    data = path.read_bytes()
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()  # git's object id, not security


def _forget(link: Path) -> None:
    """Remove a cached file: the blob it points to and the snapshot's link to it."""
    blob = link.resolve()
    link.unlink(missing_ok=True)
    if blob != link:
        blob.unlink(missing_ok=True)


def _byte_bar(progress: Progress | None):
    """A silent tqdm class that hands snapshot_download's byte counts to `progress`."""
    if progress is None:
        return None
    from tqdm.auto import tqdm

    class ByteBar(tqdm):
        def __init__(self, *args, **kwargs):
            kwargs.pop("name", None)
            # count the bytes written, not those on the wire (both bars exist in recent huggingface_hub)
            self._reports = kwargs.get("unit") == "B" and not str(kwargs.get("desc", "")).startswith("Downloading")
            super().__init__(*args, **{**kwargs, "disable": True})
            self._done = kwargs.get("initial") or 0

        def update(self, n=1):
            self._done += n or 0
            if self._reports:
                progress(int(self._done), int(self.total or 0))

    return ByteBar


# -- plain HTTP (the insightface zip) --------------------------------------------------------------------
def from_urls(model: ModelSpec, models_dir: Path, progress: Progress | None = None) -> Path:
    """Download the archive (resuming a partial one), check its SHA-256 and unpack it to models_dir/folder."""
    models_dir.mkdir(parents=True, exist_ok=True)
    part = models_dir / f"{model.folder}.zip.part"
    problems = []
    for url in model.urls:
        try:
            fetch(url, part, progress, expected_size=model.size_bytes)
            break
        except DownloadError as exc:
            problems.append(f"{url}: {exc}")
    else:
        raise ModelUnavailable(model.name, "download failed (" + "; ".join(problems) + ")",
                               f"Check the internet connection and run `myvlm models download {model.name}` again, "
                               f"or unpack {model.folder}.zip into {models_dir / model.folder}.")
    if model.sha256 and storage.sha256_of(part) != model.sha256:
        part.unlink()
        raise ModelUnavailable(model.name, "the downloaded archive is corrupt (SHA-256 mismatch)",
                               f"Run `myvlm models download {model.name}` again.")
    target = install_zip(part, models_dir / model.folder, model.files)
    part.unlink()
    return target


def fetch(url: str, part: Path, progress: Progress | None = None, expected_size: int = 0,
          headers: dict | None = None) -> Path:
    """Download `url` into `part`, continuing from its current length with an HTTP Range request."""
    import requests

    part.parent.mkdir(parents=True, exist_ok=True)
    done = part.stat().st_size if part.exists() else 0
    headers = {**(headers or {}), **({"Range": f"bytes={done}-"} if done else {})}
    try:
        with requests.get(url, headers=headers, stream=True, timeout=TIMEOUT) as reply:
            if reply.status_code == 416 and done:  # nothing left to fetch
                return part
            reply.raise_for_status()
            if reply.status_code != 206:  # the server ignored the range: start over
                done = 0
            total = done + int(reply.headers.get("Content-Length") or 0) or expected_size
            if progress and done:  # continuing: show where from before the first new byte
                progress(done, total)
            with storage.open_for_write(part, "ab" if done else "wb") as out:
                for chunk in reply.iter_content(CHUNK):
                    out.write(chunk)
                    done += len(chunk)
                    if progress:
                        progress(done, total)
            if reply.headers.get("Content-Length") and done < total:  # the connection closed early
                raise DownloadError(f"the connection dropped after {done} of {total} bytes; run the download "
                                    "again to continue from there")
    except requests.ConnectionError:
        raise DownloadError(f"cannot connect to {urlparse(url).hostname}") from None
    except requests.Timeout:
        raise DownloadError(f"{urlparse(url).hostname} did not answer in time") from None
    except requests.RequestException as exc:
        raise DownloadError(_reason(exc)) from None
    except OSError as exc:
        raise DownloadError(f"cannot write {part}: {exc.strerror or exc}") from None
    return part


def install_zip(archive: Path, target: Path, required: tuple[str, ...]) -> Path:
    """Unpack into a temporary folder beside `target`, then move the folder holding `required` into place."""
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=f".{target.name}-") as tmp:
        try:
            with zipfile.ZipFile(archive) as zf:
                for member in zf.namelist():  # refuse entries that would land outside the folder
                    if member.startswith(("/", "\\")) or ".." in Path(member).parts:
                        raise DownloadError(f"unsafe path in archive: {member}")
                zf.extractall(tmp)
        except (zipfile.BadZipFile, DownloadError) as exc:
            raise ModelUnavailable(target.name, f"cannot unpack {archive.name}: {exc}",
                                   "Delete it and download again.") from None
        source = next((p.parent for p in sorted(Path(tmp).rglob(required[0]))), None)
        if source is None or not all((source / name).is_file() for name in required):
            raise ModelUnavailable(target.name, f"{archive.name} does not hold {', '.join(required)}",
                                   "Download it again from the official release.")
        if target.exists():
            shutil.rmtree(target)
        shutil.move(str(source), str(target))
    return target


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text[:200]}" if text else type(exc).__name__

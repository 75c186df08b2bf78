"""A test-only stand-in for the Hugging Face Hub, on 127.0.0.1, that stops by itself.

It answers what `huggingface_hub.snapshot_download` / `hf_hub_download` ask (read from huggingface_hub 2.x):
  GET  /api/models/{repo}/revision/{rev}        repo_info: {"id", "sha", "siblings" (size, blobId, lfs)}
  GET  /api/models/{repo}/tree/{rev}?recursive  list_repo_tree: files with size, git blob id, LFS sha256
  HEAD /{repo}/resolve/{rev}/{file}             metadata: X-Repo-Commit, ETag (LFS: the sha256, as the Hub
                                                sends in X-Linked-Etag), Content-Length, X-Linked-Size
  GET  /{repo}/resolve/{rev}/{file}             the bytes, honouring `Range: bytes=N-` (206 + Content-Range)
and any other path registered with `add_url` (the insightface release zip). Pointed at with HF_ENDPOINT.

Faults for the tests: `drop_after[file] = n` sends n bytes of the next GET of `file`, then closes the
connection (the client resumes with a Range request); `corrupt[file] = data` serves other bytes once;
`pace[file] = seconds` sends `file` in 64 KB pieces with that pause after each (a slow link, to cancel on).
Every request is logged with the bytes sent, so a test can measure what a resume re-fetched.
"""

from __future__ import annotations

import hashlib
import http.server
import json
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Self
from urllib.parse import unquote, urlsplit

LFS_SUFFIXES = (".safetensors", ".bin", ".onnx", ".zip", ".gguf")
PIECE = 64 * 1024  # what a paced reply sends between pauses


@dataclass
class Repo:
    files: dict[str, bytes]
    sha: str = ""

    def __post_init__(self):
        digest = hashlib.sha1()  # a commit id, not security
        for name in sorted(self.files):
            digest.update(name.encode() + hashlib.sha256(self.files[name]).digest())
        self.sha = digest.hexdigest()


@dataclass
class Hit:
    method: str
    path: str
    range: str | None
    status: int
    sent: int


@dataclass
class HubState:
    repos: dict[str, Repo] = field(default_factory=dict)
    urls: dict[str, bytes] = field(default_factory=dict)
    drop_after: dict[str, int] = field(default_factory=dict)
    pace: dict[str, float] = field(default_factory=dict)
    corrupt: dict[str, bytes] = field(default_factory=dict)
    log: list[Hit] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def sent(self, filename: str) -> int:
        """Bytes of `filename` sent by GET requests so far."""
        return sum(h.sent for h in self.log if h.method == "GET" and (h.path == filename or
                                                                       h.path.endswith("/" + filename)))


def is_lfs(name: str) -> bool:
    return name.endswith(LFS_SUFFIXES)


def git_blob_id(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()  # git's object id, not security


def tree_entry(name: str, data: bytes) -> dict:
    entry = {"type": "file", "path": name, "size": len(data), "oid": git_blob_id(data)}
    if is_lfs(name):
        entry["lfs"] = {"oid": hashlib.sha256(data).hexdigest(), "size": len(data), "pointerSize": 134}
    return entry


def sibling(name: str, data: bytes) -> dict:
    """A file of repo_info's `siblings`, with the sizes and LFS SHA-256 the Hub adds for `files_metadata=True`."""
    entry = {"rfilename": name, "size": len(data), "blobId": git_blob_id(data)}
    if is_lfs(name):
        entry["lfs"] = {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data), "pointerSize": 134}
    return entry


class Handler(http.server.BaseHTTPRequestHandler):
    state: HubState
    protocol_version = "HTTP/1.1"

    def do_HEAD(self):
        self._answer(head=True)

    def do_GET(self):
        self._answer(head=False)

    def log_message(self, *args):
        pass

    def _answer(self, head: bool) -> None:
        path = unquote(urlsplit(self.path).path)
        if path in self.state.urls:
            return self._send_bytes(path, self.state.urls[path], head, {})
        if path.startswith("/api/models/"):
            return self._api(path.removeprefix("/api/models/"))
        if "/resolve/" in path:
            repo_id, _, rest = path.lstrip("/").partition("/resolve/")
            revision, _, filename = rest.partition("/")
            repo = self.state.repos.get(repo_id)
            if repo is None or revision not in ("main", repo.sha) or filename not in repo.files:
                return self._json({"error": "Entry not found"}, 404, {"X-Error-Code": "EntryNotFound"})
            data = repo.files[filename]
            etag = hashlib.sha256(data).hexdigest() if is_lfs(filename) else git_blob_id(data)
            headers = {"X-Repo-Commit": repo.sha, "ETag": f'"{etag}"'}
            if is_lfs(filename):
                headers.update({"X-Linked-Etag": f'"{etag}"', "X-Linked-Size": str(len(data))})
            return self._send_bytes(filename, data, head, headers)
        return self._json({"error": "Not found"}, 404)

    def _api(self, rest: str) -> None:
        for marker in ("/revision/", "/tree/"):
            if marker in rest:
                repo_id, _, revision = rest.partition(marker)
                break
        else:
            repo_id, marker, revision = rest, "/revision/", "main"
        repo = self.state.repos.get(repo_id)
        if repo is None:
            return self._json({"error": "Repository not found"}, 404, {"X-Error-Code": "RepoNotFound"})
        if revision not in ("main", repo.sha):
            return self._json({"error": "Revision not found"}, 404, {"X-Error-Code": "RevisionNotFound"})
        if marker == "/tree/":
            return self._json([tree_entry(n, d) for n, d in sorted(repo.files.items())])
        return self._json({"id": repo_id, "modelId": repo_id, "sha": repo.sha, "private": False,
                           "siblings": [sibling(n, d) for n, d in sorted(repo.files.items())]})

    def _json(self, body, status: int = 200, headers: dict | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        for key, value in {"Content-Type": "application/json", "Content-Length": str(len(data)),
                           **(headers or {})}.items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)
        self._record("GET", status, 0)

    def _send_bytes(self, name: str, data: bytes, head: bool, headers: dict) -> None:
        wanted = self.headers.get("Range")
        start = int(wanted.removeprefix("bytes=").split("-")[0]) if wanted else 0
        state = self.state
        with state.lock:
            if not head and name in state.corrupt:
                data = state.corrupt.pop(name)
        if start > len(data):
            self.send_response(416)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return self._record("HEAD" if head else "GET", 416, 0)
        body = data[start:]
        status = 206 if wanted else 200
        self.send_response(status)
        headers = {**headers, "Content-Length": str(len(body)), "Accept-Ranges": "bytes"}
        if wanted:
            headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()
        if head:
            return self._record("HEAD", status, 0)
        with state.lock:
            cut = state.drop_after.pop(name, None)
        if cut is not None:  # a dropped connection mid-file
            self.wfile.write(body[:cut])
            self.wfile.flush()
            self.close_connection = True
            self._record("GET", status, min(cut, len(body)))
            return
        delay = state.pace.get(name)
        if delay is None:
            self.wfile.write(body)
            return self._record("GET", status, len(body))
        sent = 0
        try:  # a slow link: PIECE bytes, then a pause, until the client has it all or hangs up
            for start in range(0, len(body), PIECE):
                self.wfile.write(body[start:start + PIECE])
                sent += len(body[start:start + PIECE])
                time.sleep(delay)
        except ConnectionError:
            self.close_connection = True
        self._record("GET", status, sent)

    def _record(self, method: str, status: int, sent: int) -> None:
        with self.state.lock:
            self.state.log.append(Hit(method, unquote(urlsplit(self.path).path), self.headers.get("Range"), status,
                                      sent))


class _Server(http.server.ThreadingHTTPServer):
    def handle_error(self, request, client_address) -> None:
        """A client that cancels closes its connection mid-reply: expected here, not worth a traceback."""
        import sys

        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class HubServer:
    """Start with `with HubServer(repos) as hub:`; `hub.endpoint` goes into HF_ENDPOINT. Loopback only; it shuts
    itself down after `lifetime` seconds even if a test forgets to."""

    def __init__(self, repos: dict[str, dict[str, bytes]] | None = None, lifetime: float = 600.0):
        self.state = HubState({rid: Repo(files) for rid, files in (repos or {}).items()})
        handler = type("BoundHandler", (Handler,), {"state": self.state})
        self.httpd = _Server(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        self.endpoint = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
        self._deadline = threading.Timer(lifetime, self.stop)
        self._deadline.daemon = True
        self.started = time.monotonic()

    def add_repo(self, repo_id: str, files: dict[str, bytes]) -> Repo:
        self.state.repos[repo_id] = Repo(files)
        return self.state.repos[repo_id]

    def add_url(self, path: str, data: bytes) -> str:
        self.state.urls[path] = data
        return self.endpoint + path

    def start(self) -> HubServer:
        self._thread.start()
        self._deadline.start()
        return self

    def stop(self) -> None:
        self._deadline.cancel()
        if self._thread.is_alive():
            self.httpd.shutdown()
        self.httpd.server_close()

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def folder_files(folder: Path) -> dict[str, bytes]:
    """A save_pretrained folder as the Hub holds it: every file at its relative path."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# -- what the tests serve --------------------------------------------------------------------------------------
TINY_REPOS = {  # hub id -> (backend, language-model variant) of the tiny random model served under that id
    "HuggingFaceTB/SmolVLM-256M-Instruct": ("smolvlm", "t5"),
    "Salesforce/blip2-flan-t5-xl": ("blip2", "t5"),
    "Salesforce/blip2-opt-2.7b": ("blip2", "opt"),
    "llava-hf/llava-1.5-7b-hf": ("llava", "t5"),
}
BUFFALO_PATH = "/deepinsight/insightface/releases/download/v0.7/buffalo_l.zip"


def build_tiny_repos(root: Path) -> dict[str, dict[str, bytes]]:
    """Tiny checkpoints of the real classes, saved with save_pretrained, as hub repos (2-5 MB each).

    SmolVLM is the taught tiny model of tests/models/taught.py (it captions "A photo of a person." and can write
    the tests' names), so that the end-to-end tests can find a trained identifier in stored captions; the others
    are random. Built once per process: the GUI and the CLI tests share it."""
    if not _BUILT:
        from myvlm_desktop.vlm.testing import save_tiny_model
        from tests.models.taught import taught_smolvlm

        for repo_id, (backend, variant) in TINY_REPOS.items():
            folder = root / repo_id.replace("/", "--")
            if backend == "smolvlm":
                taught_smolvlm(folder)
            else:
                save_tiny_model(backend, folder, variant=variant)
            _BUILT[repo_id] = folder_files(folder)
    return {repo_id: dict(files) for repo_id, files in _BUILT.items()}


_BUILT: dict[str, dict[str, bytes]] = {}


def hub_environment(hub: HubServer, cache: Path) -> dict[str, str]:
    """Environment variables that send huggingface_hub (in a CLI subprocess too) to `hub`, caching in `cache`."""
    return {"HF_ENDPOINT": hub.endpoint, "HF_HUB_CACHE": str(cache), "HF_HUB_OFFLINE": "0",
            "TRANSFORMERS_OFFLINE": "0", "HF_HUB_DISABLE_XET": "1", "HF_HUB_DISABLE_TELEMETRY": "1",
            "HF_HUB_ETAG_TIMEOUT": "5", "HF_HUB_DOWNLOAD_TIMEOUT": "10"}

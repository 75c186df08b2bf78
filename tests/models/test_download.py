"""The insightface zip download: resumable HTTP with a checksum, against a server on this machine."""

import dataclasses
import hashlib
import http.server
import io
import threading
import zipfile
from typing import ClassVar

import pytest

from myvlm_desktop.models import download, registry
from myvlm_desktop.models.errors import ModelUnavailable
from myvlm_desktop.models.registry import find_model, spec


def _archive() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name in ("det_10g.onnx", "w600k_r50.onnx", "genderage.onnx"):
            zf.writestr(f"buffalo_l/{name}", name.encode() * 5000)
    return buffer.getvalue()


ARCHIVE = _archive()


class RangeHandler(http.server.BaseHTTPRequestHandler):
    """Serves ARCHIVE, honouring `Range: bytes=N-` like the real release host."""

    ranges: ClassVar[list] = []

    def do_GET(self):
        start = 0
        header = self.headers.get("Range")
        RangeHandler.ranges.append(header)
        if header:
            start = int(header.removeprefix("bytes=").rstrip("-"))
        body = ARCHIVE[start:]
        self.send_response(206 if header else 200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), RangeHandler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    RangeHandler.ranges = []
    yield f"http://127.0.0.1:{httpd.server_address[1]}/buffalo_l.zip"
    httpd.shutdown()
    httpd.server_close()


def _buffalo(url: str, sha256: str | None = None):
    return dataclasses.replace(spec("insightface-buffalo_l"), urls=(url,), size_bytes=len(ARCHIVE),
                               sha256=sha256 or hashlib.sha256(ARCHIVE).hexdigest())


def test_download_checks_and_unpacks_the_archive(server, tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    seen = []
    folder = download.from_urls(_buffalo(server), tmp_path / "models", lambda done, total: seen.append((done, total)))
    assert folder == tmp_path / "models" / "buffalo_l"
    assert (folder / "det_10g.onnx").read_bytes() == b"det_10g.onnx" * 5000
    assert not (tmp_path / "models" / "buffalo_l.zip.part").exists()
    assert seen[-1] == (len(ARCHIVE), len(ARCHIVE))
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)
    assert find_model("insightface", tmp_path / "models") == folder  # and the registry now finds it


def test_an_interrupted_download_resumes(server, tmp_path):
    part = tmp_path / "models" / "buffalo_l.zip.part"
    part.parent.mkdir()
    part.write_bytes(ARCHIVE[:1000])
    download.from_urls(_buffalo(server), tmp_path / "models")
    assert RangeHandler.ranges == ["bytes=1000-"]
    assert (tmp_path / "models" / "buffalo_l" / "w600k_r50.onnx").is_file()


def test_a_corrupt_download_is_refused_and_removed(server, tmp_path):
    with pytest.raises(ModelUnavailable, match="SHA-256 mismatch"):
        download.from_urls(_buffalo(server, sha256="0" * 64), tmp_path / "models")
    assert not (tmp_path / "models" / "buffalo_l.zip.part").exists()
    assert not (tmp_path / "models" / "buffalo_l").exists()


def test_an_unreachable_host_fails_fast_with_what_to_do(tmp_path, monkeypatch):
    model = _buffalo("http://127.0.0.1:9/buffalo_l.zip")  # nothing listens on the discard port
    monkeypatch.setattr(registry, "MODELS", tuple(model if m.name == model.name else m for m in registry.MODELS))
    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(ModelUnavailable) as caught:
        registry.download_model("insightface", models_dir=tmp_path / "models")
    message = str(caught.value)
    assert "cannot connect to 127.0.0.1" in message and "myvlm models download insightface-buffalo_l" in message


def test_archives_with_unsafe_paths_are_refused(tmp_path):
    evil = tmp_path / "evil.zip"
    with zipfile.ZipFile(evil, "w") as zf:
        zf.writestr("../outside.onnx", b"x")
    with pytest.raises(ModelUnavailable, match="unsafe path"):
        download.install_zip(evil, tmp_path / "buffalo_l", ("det_10g.onnx",))
    assert not (tmp_path.parent / "outside.onnx").exists()

"""Downloads through huggingface_hub's real code, from a local Hub (tests/models/hub_server.py)."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest
import torch
from PIL import Image
from tqdm import tqdm

from myvlm_desktop.models import download, lookup, registry
from myvlm_desktop.models.errors import ModelUnavailable
from tests.models.hub_server import BUFFALO_PATH, TINY_REPOS, HubServer

SMOLVLM = "HuggingFaceTB/SmolVLM-256M-Instruct"
WEIGHTS = "model.safetensors"
RESULTS = Path(__file__).resolve().parents[2] / "benchmarks" / "results"


def myvlm(env: dict, *argv: str, timeout: int = 300) -> subprocess.CompletedProcess:
    full = {**os.environ, **env, "PYTHONPATH": os.environ.get("PYTHONPATH", ""), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "myvlm_desktop.cli", *argv], env=full, capture_output=True,
                          text=True, timeout=timeout, check=False)


def record(name: str, figures: dict) -> None:
    """Measured figures for the closing note (benchmarks/results is not committed)."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"hub_{name}.json").write_text(json.dumps(figures, indent=2))
    print(name, figures)


def test_the_server_listens_on_loopback_only_and_stops_by_itself(hub_repos):
    server = HubServer(hub_repos, lifetime=0.5).start()
    assert server.httpd.server_address[0] == "127.0.0.1"
    deadline = time.monotonic() + 10
    while server.running and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not server.running


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_cli_download_shows_progress_and_the_model_is_then_found(hub, tmp_path, monkeypatch, capsys):
    from myvlm_desktop.cli import main

    data = tmp_path / "data"
    started = time.monotonic()
    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)  # a person watching: the byte progress bar is drawn
    assert main(["--data-dir", str(data), "models", "download", SMOLVLM]) == 0
    size = sum(len(b) for n, b in hub.state.repos[SMOLVLM].files.items())
    drawn = terminal.getvalue()
    shown = tqdm.format_sizeof(size)
    assert "100%" in drawn and f"{shown}/{shown}" in drawn, drawn[-500:]
    path = Path(capsys.readouterr().out.strip().split(": ", 1)[1])
    assert (path / WEIGHTS).is_file() and "snapshots" in path.parts
    listed = myvlm(hub.env, "--data-dir", str(data), "models", "list", "--json")  # another process finds it
    row = next(r for r in json.loads(listed.stdout) if r["name"] == SMOLVLM)
    assert row["available"] and Path(row["path"]) == path
    record("cli_download", {"bytes": size, "seconds": round(time.monotonic() - started, 2)})


def test_a_connection_dropped_mid_file_resumes_with_a_range_request(hub, monkeypatch):
    # the weights are written in CHUNK pieces; the tiny weights (2 MB) need smaller ones for a drop in the
    # middle to leave anything to resume from
    chunk = 64 * 1024
    monkeypatch.setattr(download, "CHUNK", chunk)
    size = len(hub.state.repos[SMOLVLM].files[WEIGHTS])
    assert size >= download.RANGED_MIN  # fetched by our ranged path, not huggingface_hub's
    hub.state.drop_after[WEIGHTS] = size // 2
    seen = []
    folder = download.from_hub(registry.spec(SMOLVLM), lambda done, total: seen.append((done, total)))
    gets = [h for h in hub.state.log if h.method == "GET" and h.path.endswith(WEIGHTS)]
    assert len(gets) == 2 and gets[0].range is None and gets[1].status == 206
    resumed_at = int(gets[1].range.removeprefix("bytes=").rstrip("-"))
    assert size // 2 - chunk < resumed_at <= size // 2
    sent = hub.state.sent(WEIGHTS)
    assert sent - size == size // 2 - resumed_at < chunk  # only the unfinished chunk is fetched twice
    assert (folder / WEIGHTS).read_bytes() == hub.state.repos[SMOLVLM].files[WEIGHTS]
    assert seen and seen[-1][0] == seen[-1][1] > 0
    record("resume", {"file_bytes": size, "dropped_at": size // 2, "resumed_at": resumed_at, "bytes_sent": sent,
                      "refetched": sent - size, "chunk": chunk})


def test_a_download_cancelled_mid_file_continues_from_its_partial_file(hub, monkeypatch):
    from myvlm_desktop.vlm.generate import load_backend

    chunk = 64 * 1024
    monkeypatch.setattr(download, "CHUNK", chunk)
    model = registry.spec(SMOLVLM)
    files = hub.state.repos[SMOLVLM].files
    size = len(files[WEIGHTS])

    hub.state.pace[WEIGHTS] = 0.01  # a slow link, so the server's count is what went out before the cancel
    def cancel_in_the_weights(done, total):  # what the dialog's Cancel and the CLI's progress raise
        if done > size // 3:
            raise download.Cancelled

    with pytest.raises(download.Cancelled):
        download.from_hub(model, cancel_in_the_weights)
    partials = lookup.app_models_dir() / download.PARTIAL_DIR
    kept = partials / f"{hashlib.sha256(files[WEIGHTS]).hexdigest()}.part"
    kept_bytes = kept.stat().st_size
    assert size // 3 < kept_bytes < size and kept.read_bytes() == files[WEIGHTS][:kept_bytes]
    hub.state.pace.clear()
    deadline = time.monotonic() + 10  # the server logs the cut reply once it notices the client hung up
    while not any(h.path.endswith(WEIGHTS) and h.method == "GET" for h in hub.state.log) and time.monotonic() < deadline:
        time.sleep(0.02)
    first = {n: hub.state.sent(n) for n in files}
    log_at = len(hub.state.log)
    seen = []
    folder = download.from_hub(model, lambda done, total: seen.append((done, total)))
    again = {n: hub.state.sent(n) - first[n] for n in files}
    gets = [h for h in hub.state.log[log_at:] if h.method == "GET" and h.path.endswith(WEIGHTS)]
    assert [(h.range, h.status) for h in gets] == [(f"bytes={kept_bytes}-", 206)]
    assert again[WEIGHTS] == size - kept_bytes < size  # the second try fetched only the rest
    assert seen[0][0] == kept_bytes and seen[-1][0] == seen[-1][1] == sum(map(len, files.values()))
    for name, data in files.items():
        assert hashlib.sha256((folder / name).read_bytes()).digest() == hashlib.sha256(data).digest(), name
    assert not any(partials.iterdir())  # the partial file became the cached file
    backend = load_backend("smolvlm", SMOLVLM, device="cpu", dtype=torch.float32)
    assert backend.caption(Image.new("RGB", (64, 64))).text == "A photo of a person."
    record("cancel_resume", {"file_bytes": size, "kept_after_cancel": kept_bytes,
                             "weights_served_first_try": first[WEIGHTS], "weights_sent_on_resume": again[WEIGHTS],
                             "kept_bytes_sent_again": again[WEIGHTS] - (size - kept_bytes),
                             "all_files_bytes": sum(map(len, files.values())),
                             "sent_on_resume": sum(again.values())})


def test_a_corrupted_or_truncated_file_is_detected_and_fetched_again(hub):
    model = registry.spec(SMOLVLM)
    files = hub.state.repos[SMOLVLM].files
    good = files[WEIGHTS]
    hub.state.corrupt[WEIGHTS] = bytes(b ^ 0xFF for b in good)  # right size, wrong bytes, once
    folder = download.from_hub(model)
    assert (folder / WEIGHTS).read_bytes() == good
    assert len([h for h in hub.state.log if h.method == "GET" and h.path.endswith(WEIGHTS)]) == 2
    # damage on disk afterwards: a truncated tokenizer and a flipped byte in the weights
    tokenizer = (folder / "tokenizer.json").resolve()
    tokenizer.write_bytes(tokenizer.read_bytes()[:100])
    weights = (folder / WEIGHTS).resolve()
    broken = bytearray(weights.read_bytes())
    broken[len(broken) // 2] ^= 1
    weights.write_bytes(bytes(broken))
    assert set(download.damaged_files(folder, download._listing(model, folder))) == {"tokenizer.json", WEIGHTS}
    folder = download.from_hub(model)
    assert (folder / WEIGHTS).read_bytes() == good
    assert (folder / "tokenizer.json").read_bytes() == files["tokenizer.json"]


def test_a_file_damaged_on_every_try_is_a_clear_error(hub):
    good = hub.state.repos[SMOLVLM].files[WEIGHTS]

    class Always(dict):
        def pop(self, key, default=None):
            return bytes(len(good)) if key == WEIGHTS else default

        def __contains__(self, key):
            return key == WEIGHTS

    hub.state.corrupt = Always()
    with pytest.raises(ModelUnavailable, match="damaged twice"):
        download.from_hub(registry.spec(SMOLVLM))


@pytest.mark.slow
@pytest.mark.parametrize("repo_id", list(TINY_REPOS))
def test_each_vlm_downloads_and_loads_from_the_hub_layout(hub, repo_id):
    from myvlm_desktop.vlm.generate import load_backend
    from tests.vlm.helpers import photo

    folder = registry.download_model(repo_id)
    assert folder.parent.name == "snapshots" and (folder / "config.json").is_symlink()
    backend = load_backend(TINY_REPOS[repo_id][0], repo_id, device="cpu", dtype=torch.float32)
    assert backend.model_id == repo_id
    assert isinstance(backend.caption(photo("coffee"), max_new_tokens=4).text, str)


def test_the_insightface_zip_url_is_served_and_unpacked(hub, tmp_path):
    import random

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:  # 5 MB: the download writes 1 MB chunks, so a drop leaves some
        for name in ("det_10g.onnx", "w600k_r50.onnx"):
            zf.writestr(f"buffalo_l/{name}", random.Random(name).randbytes(2_500_000))
    data = buffer.getvalue()
    url = hub.add_url(BUFFALO_PATH, data)
    model = dataclasses.replace(registry.spec("insightface-buffalo_l"), urls=(url,), size_bytes=len(data),
                                sha256=hashlib.sha256(data).hexdigest())
    hub.state.drop_after[BUFFALO_PATH] = len(data) // 3
    with pytest.raises(ModelUnavailable):  # the connection drops: the partial file stays for the next try
        download.from_urls(model, tmp_path / "models")
    folder = download.from_urls(model, tmp_path / "models")
    assert (folder / "det_10g.onnx").is_file()
    gets = [h for h in hub.state.log if h.path == BUFFALO_PATH]
    assert gets[1].range == f"bytes={download.CHUNK}-" and gets[1].status == 206
    assert hub.state.sent(BUFFALO_PATH) - len(data) < download.CHUNK  # the second try fetched only the rest
    record("zip_resume", {"zip_bytes": len(data), "dropped_at": len(data) // 3, "resumed_at": download.CHUNK,
                          "refetched": hub.state.sent(BUFFALO_PATH) - len(data)})


def test_partial_files_left_by_a_killed_try_are_removed_once_the_model_is_complete(hub):
    model = registry.spec(SMOLVLM)
    folder = download.from_hub(model)
    blobs = folder.parent.parent / "blobs"
    kept = sorted(p.name for p in blobs.iterdir())
    leftover = blobs / "0123abcd.5f3e.incomplete"  # what a SIGKILL mid-file leaves: huggingface_hub never reuses it
    leftover.write_bytes(b"\0" * 4096)
    assert download.from_hub(model) == folder
    assert not leftover.exists()
    assert sorted(p.name for p in blobs.iterdir()) == kept
    assert lookup.locate(model) is not None

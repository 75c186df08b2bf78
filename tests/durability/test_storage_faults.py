"""Storage faults: a folder that goes away is offline (not missing), a data folder that cannot be used is
said once at start, and a full disk gives one clear message, leaves no half file and the job runs again."""

import http.server
import os
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from PIL import Image

from myvlm_desktop import storage
from myvlm_desktop.library import scan as scanmod
from myvlm_desktop.library.scan import scan_library
from myvlm_desktop.library.store import DataFolderError, Library
from myvlm_desktop.library.watch import Watcher
from tests.conftest import make_jpeg


def _cli(data, *args):
    return subprocess.run([sys.executable, "-m", "myvlm_desktop.cli", "--data-dir", str(data), *args],
                          check=False, capture_output=True, text=True, timeout=120)


def _library_with_decisions(tmp_path, count=4):
    """A scanned folder on a 'drive', with a face named Alice and a caption on its first photo."""
    drive = tmp_path / "drive" / "photos"
    for i in range(count):
        make_jpeg(drive / f"{i}.jpg", size=(64, 48), seed=i)
    lib = Library(tmp_path / "data")
    lib.add_folder(drive)
    scan_library(lib)
    photo_id = lib.db.scalar("SELECT min(id) FROM photos")

    def decide(conn):
        concept = conn.execute("INSERT INTO concepts(name, kind, identifier, created_at) "
                               "VALUES ('Alice', 'person', '<Alice>', 0)").lastrowid
        cluster = conn.execute("INSERT INTO clusters(kind, concept_id, created_at) VALUES ('face', ?, 0)",
                               (concept,)).lastrowid
        conn.execute("INSERT INTO faces(photo_id, x1, y1, x2, y2, embedding, engine, cluster_id, assigned_by, "
                     "created_at) VALUES (?, 0, 0, 9, 9, ?, 'test', ?, 'user', 0)",
                     (photo_id, np.ones(4, np.float32).tobytes(), cluster))
        conn.execute("INSERT INTO captions(photo_id, text, backend, model, created_at) "
                     "VALUES (?, 'Alice at the beach', 'test', 'test', 0)", (photo_id,))

    lib.db.write(decide)
    return lib, drive, photo_id


def _decisions(lib, photo_id):
    return (lib.db.scalar("SELECT c.name FROM faces f JOIN clusters k ON k.id = f.cluster_id "
                          "JOIN concepts c ON c.id = k.concept_id WHERE f.photo_id = ?", (photo_id,)),
            lib.db.scalar("SELECT text FROM captions WHERE photo_id = ?", (photo_id,)))


def test_an_unplugged_folder_is_offline_and_comes_back_whole(tmp_path):
    lib, drive, photo_id = _library_with_decisions(tmp_path)
    ids = sorted(r["id"] for r in lib.db.query("SELECT id FROM photos"))
    unplugged = tmp_path / "elsewhere"
    os.rename(drive.parent, unplugged)  # the drive (and its mount point) went away
    scan_library(lib)
    status = lib.status()
    assert (status["offline"], status["missing"], status["photos"]) == (4, 0, 4)
    assert lib.offline_folders() == [str(drive)]
    assert _decisions(lib, photo_id) == ("Alice", "Alice at the beach")
    os.rename(unplugged, drive.parent)
    counts = scan_library(lib)
    assert counts["unchanged"] == 4 and lib.status()["offline"] == 0 and lib.offline_folders() == []
    assert sorted(r["id"] for r in lib.db.query("SELECT id FROM photos WHERE status = 'ok'")) == ids
    assert _decisions(lib, photo_id) == ("Alice", "Alice at the beach")
    lib.close()


def test_a_folder_present_but_without_the_files_marks_them_missing(tmp_path):
    lib, drive, photo_id = _library_with_decisions(tmp_path)
    for photo in drive.iterdir():
        photo.unlink()
    scan_library(lib)
    assert (lib.status()["missing"], lib.status()["offline"]) == (4, 0)
    assert _decisions(lib, photo_id) == ("Alice", "Alice at the beach")  # missing keeps them too
    lib.close()


def test_a_folder_that_goes_away_during_the_scan_is_offline_not_missing(tmp_path, monkeypatch):
    lib, drive, _ = _library_with_decisions(tmp_path)
    make_jpeg(drive / "new.jpg", size=(64, 48), seed=9)  # so the scan has work to do
    os.rename(drive.parent, tmp_path / "elsewhere")
    answers = iter([True])  # there when checked at the start, gone by the time it was listed
    monkeypatch.setattr(scanmod, "folder_online", lambda path: next(answers, os.path.isdir(path)))
    scan_library(lib)
    assert (lib.status()["missing"], lib.status()["offline"]) == (0, 4)
    lib.close()


def test_the_watcher_sees_a_folder_leave_and_return(tmp_path):
    lib, drive, photo_id = _library_with_decisions(tmp_path)
    watcher = Watcher(lib, debounce=0.1, presence=0.1)
    watcher.start()
    try:
        os.rename(drive.parent, tmp_path / "elsewhere")
        deadline = time.monotonic() + 20
        while lib.status()["offline"] != 4 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert lib.status()["offline"] == 4 and lib.status()["missing"] == 0
        os.rename(tmp_path / "elsewhere", drive.parent)
        while lib.status()["offline"] and time.monotonic() < deadline:
            time.sleep(0.05)
        assert lib.status()["offline"] == 0
        make_jpeg(drive / "after.jpg", size=(64, 48), seed=11)  # followed again once back
        while lib.status()["photos"] != 5 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert lib.status()["photos"] == 5
    finally:
        watcher.stop()
    assert _decisions(lib, photo_id) == ("Alice", "Alice at the beach")
    lib.close()


def test_a_data_folder_that_is_gone_is_said_once_at_start(tmp_path):
    blocker = tmp_path / "unplugged"
    blocker.write_text("a file where the data folder's drive was mounted")
    with pytest.raises(DataFolderError, match="is gone"):
        Library(blocker / "data")
    result = _cli(blocker / "data", "status")
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and "cannot be used" in result.stderr


def test_a_read_only_data_folder_is_said_once_and_nothing_is_written(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    if os.geteuid() == 0:  # root writes through permissions: a read-only mount is the real thing
        mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(data)],
                                 capture_output=True, check=False).returncode == 0
        assert mounted, "cannot mount a read-only tmpfs as root"
    else:
        data.chmod(0o555)
    try:
        with pytest.raises(DataFolderError, match="read-only"):
            Library(data)
        result = _cli(data, "status")
        assert result.returncode == 2 and result.stderr.count("\n") == 1 and "read-only" in result.stderr
        assert list(data.iterdir()) == []
    finally:
        if os.geteuid() == 0:
            subprocess.run(["umount", "-l", str(data)], check=False)
        else:
            data.chmod(0o755)


def test_a_full_disk_while_writing_thumbnails_stops_the_scan_cleanly_and_it_resumes(tmp_path, small_disk):
    photos = tmp_path / "photos"
    for i in range(30):
        make_jpeg(photos / f"{i:02d}.jpg", size=(400, 300), seed=i)
    lib = Library(tmp_path / "data")
    lib.add_folder(photos)
    lib.thumbs.symlink_to(small_disk.path, target_is_directory=True)  # thumbnails on the small disk
    small_disk.fill()
    with pytest.raises(storage.DiskFull, match="is full: free some space"):
        scan_library(lib)
    assert list(small_disk.path.rglob("*.tmp")) == []
    for thumb in small_disk.path.rglob("*.jpg"):
        Image.open(thumb).verify()  # every thumbnail there is whole
    assert lib.db.scalar("PRAGMA integrity_check") == "ok"
    small_disk.free()
    scan_library(lib)
    assert lib.status()["photos"] == 30 and lib.status()["errors"] == 0
    assert len(list(small_disk.path.rglob("*.jpg"))) == 30
    lib.close()


def test_a_full_database_rolls_back_with_a_clear_message_and_writes_again_once_there_is_room(tmp_path):
    lib = Library(tmp_path / "data")
    lib.db.write(lambda c: c.execute("INSERT INTO settings(key, value) VALUES ('kept', '1')"))
    pages = lib.db.scalar("PRAGMA page_count")
    lib.db.maintain(lambda c: c.execute(f"PRAGMA max_page_count = {pages + 2}"))  # SQLite's own SQLITE_FULL

    def big(conn):
        for i in range(50):
            conn.execute("INSERT INTO settings(key, value) VALUES (?, ?)", (f"big{i}", "x" * 4000))

    with pytest.raises(storage.DiskFull, match="is full"):
        lib.db.write(big)
    assert lib.db.scalar("SELECT count(*) FROM settings") == 1  # all of it or none of it
    assert lib.db.scalar("PRAGMA integrity_check") == "ok"
    lib.db.maintain(lambda c: c.execute("PRAGMA max_page_count = 1073741823"))
    lib.db.write(big)
    assert lib.db.scalar("SELECT count(*) FROM settings") == 51
    lib.close()


def test_a_full_disk_while_saving_a_head_keeps_the_previous_head(small_disk):
    from myvlm_desktop.concepts.person import PersonHead
    from myvlm_desktop.concepts.store import Head, load_head, save_head

    folder = small_disk.path / "7"
    first = save_head(folder, Head(PersonHead(np.eye(4, dtype=np.float32)[:2], 0.5), {"concept_version": 1}))
    small_disk.fill()
    with pytest.raises(storage.DiskFull):
        save_head(folder, Head(PersonHead(np.eye(4, dtype=np.float32)[2:], 0.5), {"concept_version": 2}))
    assert load_head(folder).version == first.version
    assert [p.name for p in folder.iterdir() if p.name.startswith(".")] == []
    small_disk.free()
    assert save_head(folder, Head(PersonHead(np.eye(4, dtype=np.float32)[2:], 0.5), {"concept_version": 2}))
    assert load_head(folder).meta["concept_version"] == 2


def test_a_full_disk_while_saving_a_checkpoint_keeps_the_last_one(small_disk):
    import torch

    from myvlm_desktop.pipeline.train import _read_checkpoint, _write_checkpoint

    path = small_disk.path / "training" / "blip2.safetensors"
    key = {"concept_id": 1}
    _write_checkpoint(path, {"vector": torch.ones(8)}, {"key": key, "step": 3, "samples": []})
    small_disk.fill()
    with pytest.raises(storage.DiskFull):
        _write_checkpoint(path, {"vector": torch.zeros(8)}, {"key": key, "step": 6, "samples": []})
    tensors, info = _read_checkpoint(path, key)
    assert info["step"] == 3 and torch.equal(tensors["vector"], torch.ones(8))
    small_disk.free()
    _write_checkpoint(path, {"vector": torch.zeros(8)}, {"key": key, "step": 6, "samples": []})
    assert _read_checkpoint(path, key)[1]["step"] == 6


def test_a_full_disk_during_a_download_is_said_and_the_download_resumes(small_disk, tmp_path):
    from myvlm_desktop.models import download
    from myvlm_desktop.models.errors import ModelUnavailable
    from tests.models.test_download import RangeHandler, _buffalo

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), RangeHandler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{httpd.server_address[1]}/buffalo_l.zip"
    models = small_disk.path / "models"
    try:
        small_disk.fill()
        with pytest.raises(ModelUnavailable, match="No space left on device"):
            download.from_urls(_buffalo(url), models)
        assert not (models / "buffalo_l").exists()
        small_disk.free()
        folder = download.from_urls(_buffalo(url), models)
        assert (folder / "det_10g.onnx").read_bytes() == b"det_10g.onnx" * 5000
    finally:
        httpd.shutdown()
        httpd.server_close()

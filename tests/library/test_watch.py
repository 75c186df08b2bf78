import os
import shutil
import time

from PIL import Image

from myvlm_desktop.library.scan import scan_library
from myvlm_desktop.library.watch import Watcher
from tests.conftest import make_jpeg


def _wait(predicate, timeout=60.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def test_create_modify_move_delete_reach_the_library(library, photo_dir):
    make_jpeg(photo_dir / "old.jpg", seed=1)
    library.add_folder(photo_dir)
    scan_library(library)
    watcher = Watcher(library, debounce=0.3)
    watcher.start()
    try:
        make_jpeg(photo_dir / "new.jpg", seed=2)
        (photo_dir / "sub").mkdir()
        make_jpeg(photo_dir / "sub" / "deep.jpg", seed=3)
        assert _wait(lambda: library.status()["photos"] == 3)
        moved_id = library.photo_by_path(photo_dir / "old.jpg")["id"]
        shutil.move(photo_dir / "old.jpg", photo_dir / "sub" / "moved.jpg")
        assert _wait(lambda: (r := library.photo_by_path(photo_dir / "sub" / "moved.jpg")) is not None
                     and r["id"] == moved_id)
        os.remove(photo_dir / "new.jpg")
        assert _wait(lambda: library.status()["missing"] == 1)
        before = library.photo_by_path(photo_dir / "sub" / "deep.jpg")["hash"]
        make_jpeg(photo_dir / "sub" / "deep.jpg", seed=4)
        assert _wait(lambda: library.photo_by_path(photo_dir / "sub" / "deep.jpg")["hash"] != before)
    finally:
        watcher.stop()


def test_a_burst_of_10000_new_files_loses_none(library, photo_dir):
    library.add_folder(photo_dir)
    watcher = Watcher(library, debounce=0.5)
    watcher.start()
    try:
        for d in range(10):
            folder = photo_dir / f"burst{d}"
            folder.mkdir()
            for i in range(1000):
                Image.new("RGB", (4, 4), (d, i // 256, i % 256)).save(folder / f"{i}.png")
        assert _wait(lambda: library.status()["photos"] == 10_000 and watcher.idle(), timeout=240)
    finally:
        watcher.stop()
    assert library.db.scalar("SELECT count(DISTINCT path) FROM photos WHERE status = 'ok'") == 10_000

"""A scan killed with SIGKILL at random moments leaves a sound database, and the next scan finishes the job."""

import random
import signal
import sqlite3
import subprocess
import sys
import time

from PIL import Image


def _make_photos(folder, count):
    for i in range(count):
        sub = folder / f"roll{i // 250}"
        sub.mkdir(exist_ok=True)
        Image.new("RGB", (48, 32), (i % 256, (i // 256) % 256, 77)).save(sub / f"{i:05d}.jpg", quality=70)


def _scan(data_dir):
    return subprocess.Popen([sys.executable, "-m", "myvlm_desktop.cli", "--data-dir", str(data_dir), "scan"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _count(db_file) -> int:
    if not db_file.exists():
        return 0
    try:
        conn = sqlite3.connect(f"file:{db_file}?mode=ro", uri=True, timeout=1)
        try:
            return conn.execute("SELECT count(*) FROM photos").fetchone()[0]
        finally:
            conn.close()
    except sqlite3.OperationalError:  # schema not created yet
        return 0


def test_sigkill_during_scan_loses_nothing(tmp_path):
    photos, data = tmp_path / "photos", tmp_path / "data"
    photos.mkdir()
    _make_photos(photos, 2000)
    subprocess.run([sys.executable, "-m", "myvlm_desktop.cli", "--data-dir", str(data), "add-folder", str(photos)],
                   check=True, capture_output=True)
    rng = random.Random(7)
    db_file = data / "library.sqlite3"
    for round_ in range(5):
        done = _count(db_file)
        target = rng.randint(done + 1, done + (2000 - done) // 3)  # a random moment, well inside the scan
        proc = _scan(data)
        while proc.poll() is None and _count(db_file) < target:
            time.sleep(0.005)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        conn = sqlite3.connect(db_file)
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok", f"round {round_}"
        count, distinct = conn.execute("SELECT count(*), count(DISTINCT path) FROM photos").fetchone()
        conn.close()
        assert count == distinct and done <= count < 2000, f"round {round_}: {count} rows"
    finished = subprocess.run([sys.executable, "-m", "myvlm_desktop.cli", "--data-dir", str(data), "status", "--json"],
                              capture_output=True, text=True, check=True)
    assert '"photos"' in finished.stdout
    assert _scan(data).wait(timeout=300) == 0
    conn = sqlite3.connect(db_file)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert conn.execute("SELECT count(*) FROM photos WHERE status = 'ok'").fetchone()[0] == 2000
    assert conn.execute("SELECT count(DISTINCT path) FROM photos").fetchone()[0] == 2000
    assert conn.execute("SELECT count(*) FROM photos").fetchone()[0] == 2000
    assert conn.execute("SELECT count(*) FROM photo_text").fetchone()[0] == 2000
    thumbs = {p.stem for p in (data / "thumbnails").rglob("*.jpg")}
    hashes = {r[0] for r in conn.execute("SELECT hash FROM photos")}
    assert hashes <= thumbs

"""A scan killed with SIGKILL at random moments leaves a sound database, and the next scan finishes the job."""

import os
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


def test_sigkill_during_scan_loses_nothing(tmp_path):
    photos, data = tmp_path / "photos", tmp_path / "data"
    photos.mkdir()
    _make_photos(photos, 2000)
    subprocess.run([sys.executable, "-m", "myvlm_desktop.cli", "--data-dir", str(data), "add-folder", str(photos)],
                   check=True, capture_output=True)
    rng = random.Random(7)
    db_file = data / "library.sqlite3"
    seen_counts = []
    for round_ in range(5):
        proc = _scan(data)
        time.sleep(rng.uniform(0.6, 2.5))  # start-up takes ~0.5 s; the scan itself a few seconds
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        conn = sqlite3.connect(db_file)
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok", f"round {round_}"
        seen_counts.append(conn.execute("SELECT count(*) FROM photos").fetchone()[0])
        assert conn.execute("SELECT count(*) FROM photos").fetchone()[0] == \
            conn.execute("SELECT count(DISTINCT path) FROM photos").fetchone()[0]
        conn.close()
    assert any(0 < n < 2000 for n in seen_counts), f"no kill landed mid-scan: {seen_counts}"
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

"""Soak: `myvlm scan --watch` follows two library folders for N minutes while bursts of changes hit them.

A first batch of photos is added and indexed; a hundred of them get a user's mark ("Alice is in this photo").
Then, in bursts, files are added, edited in place, renamed, moved across the two folders and deleted, until
`--ops` operations were made. At the end, once the watcher has caught up, the library must equal the disk
(the same photos, the rest missing) and every moved or renamed photo must keep its id and its marks. The
watcher's RSS and open file descriptors are sampled all along: their growth must flatten.

    python benchmarks/soak_watch.py                  # 10 minutes, 5,000 operations
    python benchmarks/soak_watch.py --minutes 1 --ops 600

Writes benchmarks/results/soak_watch.json.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


def _photo(path: Path, seed: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")  # written aside and renamed, as cameras and sync tools do
    pixels = np.random.default_rng(seed).integers(0, 256, (24, 32, 3), dtype=np.uint8)  # every content unique
    Image.fromarray(pixels).save(tmp, "JPEG", quality=70)
    os.replace(tmp, path)


def _rows(db: Path, sql: str, params=()) -> list:
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
        try:
            return conn.execute(sql, params).fetchall()
        finally:
            conn.close()
    except sqlite3.OperationalError:
        return []


def _sample(pid: int) -> tuple[float, int]:
    """(RSS in MiB, open file descriptors) of the watcher."""
    with open(f"/proc/{pid}/status") as f:
        rss = next(int(line.split()[1]) for line in f if line.startswith("VmRSS"))
    return rss / 1024, len(os.listdir(f"/proc/{pid}/fd"))


class Disk:
    """The files as the driver left them: path -> content seed; moved files are never edited (their ids are
    checked) and edited files never moved."""

    def __init__(self, roots: list[Path], rng: random.Random):
        self.roots, self.rng = roots, rng
        self.files: dict[Path, int] = {}
        self.movable: set[Path] = set()
        self.moved: set[Path] = set()
        self.origin: dict[Path, Path] = {}  # current path -> path when first indexed
        self.next_seed = 1

    def add(self) -> None:
        root = self.rng.choice(self.roots)
        path = root / f"sub{self.rng.randrange(8)}" / f"p{self.next_seed:06d}.jpg"
        _photo(path, self.next_seed)
        self.files[path] = self.next_seed
        if self.rng.random() < 0.5:
            self.movable.add(path)
        self.next_seed += 1

    def op(self) -> str:
        kind = self.rng.choices(["add", "edit", "rename", "move", "delete"], [3, 2, 2, 2, 1])[0]
        if kind == "add" or not self.files:
            self.add()
            return "add"
        if kind == "edit":
            fixed = [p for p in self.files if p not in self.movable]
            if fixed:
                path = self.rng.choice(fixed)
                _photo(path, self.next_seed)
                self.files[path] = self.next_seed
                self.next_seed += 1
                return "edit"
        if kind in ("rename", "move") and self.movable:
            path = self.rng.choice(sorted(self.movable))
            root = self.rng.choice(self.roots) if kind == "move" else path.parent
            target = (root / f"sub{self.rng.randrange(8)}" if kind == "move" else root) / f"m{self.next_seed:06d}.jpg"
            self.next_seed += 1
            target.parent.mkdir(parents=True, exist_ok=True)
            os.rename(path, target)
            self.files[target] = self.files.pop(path)
            self.movable.discard(path)
            self.movable.add(target)
            self.moved.discard(path)
            self.moved.add(target)
            if path in self.origin:
                self.origin[target] = self.origin.pop(path)
            return kind
        path = self.rng.choice(sorted(self.files))
        path.unlink()
        self.files.pop(path)
        self.movable.discard(path)
        self.moved.discard(path)
        self.origin.pop(path, None)
        return "delete"


def run(minutes: float, ops: int, first: int, seed: int, work: Path) -> dict:
    rng = random.Random(seed)
    roots = [work / "photos-a", work / "photos-b"]
    for root in roots:
        root.mkdir(parents=True)
    data = work / "data"
    db = data / "library.sqlite3"
    for root in roots:
        subprocess.run([sys.executable, "-m", "myvlm_desktop.cli", "--data-dir", str(data), "add-folder", str(root)],
                       env=ENV, check=True, capture_output=True)
    disk = Disk(roots, rng)
    for _ in range(first):
        disk.add()
    watcher = subprocess.Popen([sys.executable, "-m", "myvlm_desktop.cli", "--data-dir", str(data), "scan", "--watch"],
                               env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    samples: list[dict] = []
    started = time.monotonic()

    def sample(phase: str) -> None:
        rss, fds = _sample(watcher.pid)
        samples.append({"t": round(time.monotonic() - started, 1), "rss_mib": round(rss, 1), "fds": fds,
                        "phase": phase})

    try:
        caught = _wait_equal(db, disk, 600, sample, "first scan")
        ids = {Path(p): i for i, p in _rows(db, "SELECT id, path FROM photos WHERE status = 'ok'")}
        disk.origin = {p: p for p in disk.files}
        marked = rng.sample(sorted(disk.movable), min(100, len(disk.movable)))
        _mark(data, [ids[p] for p in marked])
        original_ids = {p: ids[p] for p in disk.files}
        counts = {"add": first, "edit": 0, "rename": 0, "move": 0, "delete": 0}
        soak_start = time.monotonic()
        bursts = max(1, int(minutes * 6))  # a burst every ~10 s
        per_burst = max(1, (ops - first) // bursts)
        for burst in range(bursts):
            for _ in range(per_burst):
                counts[disk.op()] += 1
            sample(f"burst {burst + 1}")
            pause_until = soak_start + (burst + 1) * minutes * 60 / bursts
            while time.monotonic() < pause_until:
                time.sleep(min(2.0, max(0.0, pause_until - time.monotonic())))
                sample("between bursts")
        converged = _wait_equal(db, disk, 900, sample, "catching up")
        result = _compare(db, disk, original_ids, marked)
    finally:
        watcher.send_signal(signal.SIGTERM)
        try:
            watcher.wait(timeout=60)
        except subprocess.TimeoutExpired:
            watcher.kill()
    watching = [s for s in samples if s["phase"] != "first scan"] or samples  # from the first scan on
    return {"minutes": minutes, "operations": counts, "total_operations": sum(counts.values()),
            "first_scan_seconds": caught, "catch_up_seconds": converged, **result, "samples": samples,
            "rss_mib": _trend([s["rss_mib"] for s in watching]), "fds": _trend([s["fds"] for s in watching])}


def _mark(data: Path, photo_ids: list[int]) -> None:
    sys.path.insert(0, str(ROOT))
    from myvlm_desktop.library.store import Library

    with Library(data) as lib:
        def write(conn):
            concept = conn.execute("INSERT INTO concepts(name, kind, identifier, created_at) "
                                   "VALUES ('Alice', 'person', '<Alice>', 0)").lastrowid
            conn.executemany("INSERT INTO occurrences(photo_id, concept_id, source, created_at) "
                             "VALUES (?, ?, 'user', 0)", [(pid, concept) for pid in photo_ids])
        lib.db.write(write)


def _library_paths(db: Path) -> set[Path]:
    return {Path(p) for (p,) in _rows(db, "SELECT path FROM photos WHERE status = 'ok'")}


def _wait_equal(db: Path, disk: Disk, timeout: float, sample, phase: str) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if _library_paths(db) == set(disk.files):
            return round(time.monotonic() - start, 1)
        sample(phase)
        time.sleep(1.0)
    return -1.0


def _compare(db: Path, disk: Disk, original_ids: dict[Path, int], marked: list[Path]) -> dict:
    now = {Path(p): i for i, p in _rows(db, "SELECT id, path FROM photos WHERE status = 'ok'")}
    moved = [p for p in disk.moved if p in disk.origin]
    kept_ids = sum(now.get(p) == original_ids[disk.origin[p]] for p in moved)
    alice = {i for (i,) in _rows(db, "SELECT photo_id FROM occurrences WHERE source = 'user'")}
    marked_ids = {original_ids[p] for p in marked}
    return {"library_equals_disk": set(now) == set(disk.files), "photos_on_disk": len(disk.files),
            "photos_in_library": len(now), "extra_in_library": len(set(now) - set(disk.files)),
            "missing_from_library": len(set(disk.files) - set(now)),
            "moved_photos": len(moved), "moved_kept_id": kept_ids, "marks_kept": len(alice & marked_ids),
            "marks_made": len(marked_ids)}


def _trend(values: list[float]) -> dict:
    if not values:
        return {}
    half = len(values) // 2
    first, second = values[:half] or values, values[half:]
    return {"start": values[0], "end": values[-1], "max": max(values),
            "growth_first_half": round(max(first) - first[0], 1), "growth_second_half": round(max(second) - second[0], 1)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--ops", type=int, default=5000, help="file operations in all, the first batch included")
    parser.add_argument("--first", type=int, default=1000, help="photos there before the watching starts")
    parser.add_argument("--seed", type=int, default=4)
    parser.add_argument("--out", default=str(RESULTS / "soak_watch.json"))
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="soak-"))
    load = os.getloadavg()
    try:
        result = run(args.minutes, args.ops, args.first, args.seed, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    result.update(load_before=load, load_after=os.getloadavg())
    print(f"{result['total_operations']} operations over {args.minutes} min: {result['operations']}")
    print(f"library equals disk: {result['library_equals_disk']} ({result['photos_in_library']} / "
          f"{result['photos_on_disk']}); caught up in {result['catch_up_seconds']} s")
    print(f"moved photos that kept their id: {result['moved_kept_id']} / {result['moved_photos']}; "
          f"marks kept {result['marks_kept']} / {result['marks_made']}")
    print(f"RSS MiB {result['rss_mib']}; fds {result['fds']}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, default=str))
    print(f"wrote {out}")
    ok = result["library_equals_disk"] and result["moved_kept_id"] == result["moved_photos"] \
        and result["marks_kept"] == result["marks_made"]
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

"""Crash matrix: every long job is killed with SIGKILL at random moments chosen by its progress, and must lose
nothing, resume, and (where it is deterministic) end exactly where an uninterrupted run ends.

For each job a base library is built once (photos scanned, faces indexed and clustered, and user decisions
made: names, a merge, a split, a move, a rejection, a hidden cluster, a chosen cover). An uninterrupted run on
a copy gives the reference: its final state and its progress trajectory. Then, on fresh copies, chains of
runs are started and killed: each kill waits until the job's progress (rows committed, steps done, heads
written) reaches a random target, then (for jobs with few commits) a random part of the time the reference
spent at that level, and sends SIGKILL. After every kill: `PRAGMA integrity_check` is ok, `foreign_key_check`
is empty, every decision made before the kill is still there. After a chain, the job runs to completion
(resumes from what was committed) and its final state is compared with the reference.

    python benchmarks/crash_matrix.py                       # every job, 20 kills each
    python benchmarks/crash_matrix.py --jobs scan,ops --kills 4 --chain 2   # a quick look

Jobs: scan, index (dlib worker processes + SSCD), cluster --full, naming operations with undo/redo (a
driver at a user's pace), heads train + detect, concept-embedding training and caption --all (a tiny
random-initialised SmolVLM of the real class), and import-names (names from XMP face regions in sidecars,
some placed on detected faces, some making faces of their own), and `models download` of a tiny SmolVLM
from a Hub served on 127.0.0.1 (tests/models/hub_server.py, slowed to ~2 MB/s). Writes benchmarks/results/crash_matrix.json.
"""

from __future__ import annotations

import argparse
import hashlib
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
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
FACES = Path("/work/shared/data/faces_jurassic")
RESULTS = ROOT / "benchmarks" / "results"
POLL = 0.005
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
       "OMP_NUM_THREADS": "1"}


# -- reading a library without disturbing it -----------------------------------------------------------------
def _ro(data: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{data / 'library.sqlite3'}?mode=ro", uri=True, timeout=5)


def _query(data: Path, sql: str, params=()) -> list[tuple]:
    try:
        conn = _ro(data)
        try:
            return conn.execute(sql, params).fetchall()
        finally:
            conn.close()
    except sqlite3.OperationalError:  # not created yet, or locked for a moment
        return []


def _count(data: Path, sql: str) -> int:
    rows = _query(data, sql)
    return int(rows[0][0] or 0) if rows else 0


def soundness(data: Path) -> list[str]:
    """Problems SQLite finds: integrity_check not ok, or rows whose foreign keys point nowhere."""
    conn = sqlite3.connect(data / "library.sqlite3")
    try:
        integrity = [r[0] for r in conn.execute("PRAGMA integrity_check")]
        dangling = conn.execute("PRAGMA foreign_key_check").fetchall()
    finally:
        conn.close()
    problems = [] if integrity == ["ok"] else [f"integrity: {integrity[:3]}"]
    return problems + [f"foreign key: {tuple(r)}" for r in dangling[:3]]


DECISION_QUERIES = {
    "concepts": "SELECT id, name, kind FROM concepts",
    "named_clusters": "SELECT id, concept_id FROM clusters WHERE concept_id IS NOT NULL",
    "hidden": "SELECT id FROM clusters WHERE hidden = 1",
    "user_faces": "SELECT id, cluster_id FROM faces WHERE assigned_by = 'user'",
    "hidden_faces": "SELECT id FROM faces WHERE hidden = 1",
    "rejections": "SELECT concept_id, face_id, photo_id FROM rejections",
    "user_marks": "SELECT photo_id, concept_id, present FROM occurrences WHERE source = 'user'",
    "user_photos": "SELECT cluster_id, photo_id FROM cluster_photos WHERE assigned_by = 'user'",
    "covers": "SELECT id, cover_face_id FROM clusters WHERE concept_id IS NOT NULL",
    "operations": "SELECT id, kind, state FROM operations",
}


def decisions(data: Path) -> dict[str, set]:
    """Every decision table, read in one transaction (a commit between two reads would mix two states)."""
    for _ in range(40):  # a reader can meet a lock for a moment (WAL recovery after a kill): read again
        try:
            conn = _ro(data)
            try:
                conn.execute("BEGIN")
                return {k: {tuple(r) for r in conn.execute(sql)} for k, sql in DECISION_QUERIES.items()}
            finally:
                conn.close()
        except sqlite3.OperationalError as exc:
            if "no such table" in str(exc) or "unable to open" in str(exc):  # not created yet
                break
            time.sleep(0.05)
    return {k: set() for k in DECISION_QUERIES}


def lost(before: dict[str, set], after: dict[str, set]) -> list[str]:
    return [f"{k}: {sorted(before[k] - after[k])[:3]}" for k in before if before[k] - after[k]]


def _digest(value) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _file_hash(path: Path) -> str | None:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16] if path.exists() else None


# -- the jobs ------------------------------------------------------------------------------------------------
@dataclass
class Job:
    name: str
    command: Callable[[Path], list[str]]
    progress: Callable[[Path], int]
    final: Callable[[Path], object]          # what an uninterrupted run must end with
    base: str = "faces"                      # which prepared library it starts from
    fine: bool = True                        # many commits: kill right at the target; else a random delay too
    deterministic: bool = True
    note: str = ""
    extra: dict = field(default_factory=dict)
    env: Callable[[Path], dict] = lambda data: {}  # more environment for its runs
    leftovers: Callable[[Path], list] | None = None  # files a killed run leaves behind (reported, not a mismatch)


def cli(*args: str) -> Callable[[Path], list[str]]:
    return lambda data: [sys.executable, "-m", "myvlm_desktop.cli", "--data-dir", str(data), *args]


def faces_state(data: Path):
    return sorted(_query(data, "SELECT photo_id, round(x1), round(y1), round(x2), round(y2), engine, "
                               "hex(substr(embedding, 1, 16)) FROM faces"))


def cluster_state(data: Path):
    groups: dict = {}
    for face_id, cluster_id in _query(data, "SELECT id, cluster_id FROM faces WHERE hidden = 0"):
        groups.setdefault(cluster_id, []).append(face_id)
    names = dict(_query(data, "SELECT c.id, k.name FROM clusters c JOIN concepts k ON k.id = c.concept_id"))
    return sorted((names.get(cid) or "", sorted(ids)) for cid, ids in groups.items() if cid is not None)


def heads_state(data: Path):
    heads = sorted((p.parent.name, _file_hash(p)) for p in (data / "concepts").glob("*/head.safetensors"))
    marks = sorted(_query(data, "SELECT photo_id, concept_id, round(score, 4) FROM occurrences WHERE source = 'head'"))
    return {"heads": heads, "marks": _digest(marks)}


def jobs(tiny_model: Path | None) -> dict[str, Job]:
    model = ["--backend", "smolvlm", "--model", str(tiny_model), "--device", "cpu"] if tiny_model else []
    return {j.name: j for j in [
        Job("scan", cli("scan"), lambda d: _count(d, "SELECT count(*) FROM photos"),
            lambda d: sorted(_query(d, "SELECT path, hash, status FROM photos")), base="photos"),
        Job("index", cli("index", "--face-engine", "dlib", "--embedder", "sscd", "--workers", "2"),
            lambda d: _count(d, "SELECT count(*) FROM index_state"), faces_state, base="scanned"),
        Job("cluster --full", cli("cluster", "--full"),
            lambda d: _count(d, "SELECT count(*) FROM settings WHERE key LIKE 'cluster%'")
            + _count(d, "SELECT count(*) FROM clusters"), cluster_state, fine=False),
        Job("naming ops + undo/redo", lambda d: [sys.executable, __file__, "--ops-driver", str(d)],
            _ops_progress, _ops_snapshot),
        Job("heads train + detect", cli("heads", "train", "--force"),
            lambda d: len(list((d / "concepts").glob("*/head.json")))
            + _count(d, "SELECT count(DISTINCT concept_id) FROM occurrences WHERE source = 'head'"),
            heads_state, fine=False),
        Job("concept embedding (tiny VLM)", cli("train", "Alan", *model, "--steps", "100"),
            _train_progress, lambda d: _file_hash(_vector(d)), fine=False),
        Job("caption --all (tiny VLM)", cli("caption", "--all", *model),
            lambda d: _count(d, "SELECT count(DISTINCT photo_id) FROM captions"),
            lambda d: sorted(_query(d, "SELECT photo_id, text FROM captions"))),
        Job("model download (local Hub)", cli("models", "download", HUB_REPO), _download_progress, download_state,
            env=_hub_env, leftovers=_incomplete),
        Job("import-names (XMP regions)", cli("import-names", "--engine", "dlib"), _names_progress, names_state,
            base="names", fine=False),
    ]}


# -- the model download: a tiny SmolVLM of the real class served by a Hub on 127.0.0.1, slowed to a trickle ---
HUB_REPO = "HuggingFaceTB/SmolVLM-256M-Instruct"
HUB: dict = {}
TRICKLE = (1 << 16, 0.03)  # bytes, then a pause: ~2 MB/s, so that a kill can land inside a file


def _hub_env(data: Path) -> dict:
    from tests.models.hub_server import hub_environment

    return hub_environment(HUB["server"], data / "hf-cache") if HUB else {}


def start_hub(work: Path) -> None:
    from tests.models.hub_server import HubServer, folder_files

    server = HubServer({HUB_REPO: folder_files(tiny_vlm(work / "hub"))}, lifetime=6 * 3600)
    plain = server.httpd.RequestHandlerClass

    class Trickle(plain):
        def setup(self):
            super().setup()
            raw = self.wfile

            class Slow:
                def write(self, data):
                    view = memoryview(data)
                    try:
                        for i in range(0, len(view), TRICKLE[0]):
                            raw.write(view[i:i + TRICKLE[0]])
                            if len(view) > TRICKLE[0]:
                                HUB["sending"] = i + TRICKLE[0]
                                time.sleep(TRICKLE[1])
                    finally:
                        HUB["sending"] = 0
                    return len(view)

                def __getattr__(self, name):
                    return getattr(raw, name)

            self.wfile = Slow()

    server.httpd.RequestHandlerClass = Trickle
    HUB["server"] = server.start()
    HUB["files"] = {name: hashlib.sha256(data).hexdigest()[:16] for name, data in server.state.repos[HUB_REPO]
                    .files.items()}


def _download_progress(data: Path) -> int:
    """KiB written into the cache (finished blobs, .incomplete parts) and of the file being sent: huggingface_hub
    writes a file in 10 MB chunks, so a small file reaches the disk at once, when it is all there."""
    total = HUB.get("sending", 0)
    for path in (data / "hf-cache").rglob("*"):
        try:
            if path.is_file() and not path.is_symlink():
                total += path.stat().st_size
        except OSError:  # renamed under us
            continue
    return total >> 10


def download_state(data: Path):
    """Every file of the snapshot with its SHA-256, the Hub's files, and what is left half-done."""
    repo = data / "hf-cache" / ("models--" + HUB_REPO.replace("/", "--"))
    files = {str(p.relative_to(snap)): _file_hash(p) for snap in (repo / "snapshots").glob("*")
             for p in snap.rglob("*") if p.is_file()}
    return {"files": sorted(files.items()), "served": sorted(HUB.get("files", {}).items())}


def _incomplete(data: Path) -> list[str]:
    """Parts of killed downloads: huggingface_hub writes each try to its own `<etag>.<random>.incomplete`."""
    return sorted(f"{p.name} ({p.stat().st_size} B)" for p in (data / "hf-cache").rglob("*.incomplete"))


def _names_progress(data: Path) -> int:
    """Faces made from regions (one commit each while reading), then 1 once the one operation is committed: a
    target at the last face waits a random part of the time before that commit (the operation's transaction)."""
    return _count(data, "SELECT count(*) FROM faces WHERE source = 'metadata'") \
        + min(_count(data, "SELECT count(*) FROM metadata_imports"), 1)


def names_state(data: Path):
    faces = _query(data, "SELECT f.id, f.photo_id, round(f.x1), round(f.y1), round(f.x2), round(f.y2), f.source, "
                         "f.assigned_by, k.name, hex(substr(f.embedding, 1, 16)) FROM faces f LEFT JOIN clusters c "
                         "ON c.id = f.cluster_id LEFT JOIN concepts k ON k.id = c.concept_id")
    return {"faces": sorted(faces, key=str),
            "concepts": sorted(_query(data, "SELECT id, name, kind FROM concepts")),
            "pets": sorted(_query(data, "SELECT k.name, p.photo_id, p.assigned_by FROM cluster_photos p JOIN "
                                        "clusters c ON c.id = p.cluster_id JOIN concepts k ON k.id = c.concept_id")),
            "metadata_names": sorted(_query(data, "SELECT photo_id, name, kind, origin, face_id, concept_id, outcome, "
                                                  "detail FROM metadata_names"), key=str),
            "imported": sorted(_query(data, "SELECT photo_id, signature FROM metadata_imports")),
            "operations": sorted(_query(data, "SELECT kind, state FROM operations"))}


def _vector(data: Path) -> Path:
    return next(iter((data / "concepts").glob("*/smolvlm.safetensors")), data / "concepts" / "none")


def _train_progress(data: Path) -> int:
    """Steps saved: the checkpoint's step (its metadata), 100 once the embedding is written."""
    if _vector(data).exists():
        return 100
    for ckpt in (data / "concepts").glob("*/training/smolvlm.safetensors"):
        try:
            return int(json.loads(json.loads(_header(ckpt))["__metadata__"]["info"])["step"]) + 1
        except (OSError, ValueError, KeyError):
            return 0
    return 0


def _header(path: Path) -> bytes:
    with open(path, "rb") as f:
        size = int.from_bytes(f.read(8), "little")
        return f.read(size)


# -- the naming driver: a user naming, merging, splitting... at a user's pace -------------------------------
def _ops_plan(data: Path) -> list[tuple]:
    clusters = [r[0] for r in _query(data, "SELECT cluster_id FROM faces WHERE cluster_id IS NOT NULL "
                                           "GROUP BY cluster_id ORDER BY count(*) DESC, cluster_id")]
    c = [clusters[i % len(clusters)] for i in range(8)]
    faces = {cid: [r[0] for r in _query(data, "SELECT id FROM faces WHERE cluster_id = ? ORDER BY id", (cid,))]
             for cid in clusters[:8]}
    f = lambda cid, i: faces[cid][i % len(faces[cid])]  # noqa: E731
    return [
        ("name", c[0], "Dana"), ("name", c[1], "Eve"), ("name", c[2], "Finn"), ("merge", "Dana", c[3]),
        ("undo",), ("redo",), ("split", c[1], [f(c[1], 0)]), ("move", f(c[2], 1), c[1]),
        ("reject", f(c[0], 1), "Dana"), ("hide", c[4]), ("cover", c[0], f(c[0], 2)), ("undo",), ("undo",),
        ("redo",), ("rename", "Eve", "Evelyn"), ("name", c[5], "Gus"), ("merge", "Gus", "Finn"), ("undo",),
        ("name", c[6], "Hal"), ("reject", f(c[2], 0), "Finn"), ("hide", c[7]), ("undo",), ("redo",),
        ("rename", "Hal", "Hank"), ("cover", c[1], f(c[1], 1)),
    ]


def _ops_snapshot(data: Path):
    return {k: sorted(v) for k, v in decisions(data).items()}


def _ops_positions(data: Path) -> list[int]:
    """The steps of the uninterrupted run whose state the library is in now. An undo followed by a redo comes
    back to an earlier state, so one state can stand for several steps (e.g. 21 and 23, with 22 between)."""
    if not (data / "ops-reference.json").exists():
        return [0]
    reference = json.loads((data / "ops-reference.json").read_text())
    now = json.loads(json.dumps(_ops_snapshot(data), default=list))
    return [k for k, state in enumerate(reference) if state == now]


def _ops_progress(data: Path) -> int:
    """The latest step the library's state stands for (-1: none): resuming from any of them ends the same."""
    return max(_ops_positions(data), default=-1)


def naming_lost(at_kill: list[int], now: list[int]) -> list[str]:
    """The naming driver's check after a kill, from the steps the state stood for before it and stands for now.
    A state can stand for several steps (undo then redo); the earliest of them is where the user surely was, so
    the state after the kill must stand for that step or a later one."""
    reached = min(at_kill, default=-1)
    return [] if reached >= 0 and max(now, default=-1) >= reached else [f"state before step {reached} (now {now})"]


def ops_driver(data: Path, record: bool) -> None:
    from myvlm_desktop.library.store import Library
    from myvlm_desktop.people import ops

    plan_file, reference_file = data / "ops-plan.json", data / "ops-reference.json"
    if record:
        plan_file.write_text(json.dumps(_ops_plan(data)))
    plan = [tuple(step) for step in json.loads(plan_file.read_text())]
    start = 0 if record else max(_ops_progress(data), 0)
    states = [_ops_snapshot(data)] if record else []
    with Library(data) as lib:
        for step in plan[start:]:
            try:
                _apply(ops, lib, step)
            except ops.PeopleError:  # refused (a small library may give one cluster twice): a step all the same
                pass
            if record:
                states.append(_ops_snapshot(data))
            time.sleep(0.08)  # a user's pace: the harness kills between and inside operations
    if record:
        reference_file.write_text(json.dumps(states, default=list))


def _apply(ops, lib, step: tuple) -> None:
    kind, args = step[0], step[1:]
    if kind == "name":
        ops.name_cluster(lib, args[0], args[1])
    elif kind == "merge":
        ops.merge(lib, args[0], args[1])
    elif kind == "split":
        ops.split(lib, args[0], args[1])
    elif kind == "move":
        ops.move_face(lib, args[0], args[1])
    elif kind == "reject":
        ops.reject_face(lib, args[0], args[1])
    elif kind == "hide":
        ops.hide_cluster(lib, args[0])
    elif kind == "cover":
        ops.set_cover(lib, args[0], args[1])
    elif kind == "rename":
        ops.rename_concept(lib, args[0], args[1])
    else:
        getattr(ops, kind)(lib)


# -- building the libraries ---------------------------------------------------------------------------------
def _run(argv: list[str], timeout: float = 1800, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(argv, env={**ENV, **(env or {})}, capture_output=True, text=True, timeout=timeout,
                          check=False)


def _must(argv: list[str]) -> None:
    done = _run(argv)
    if done.returncode != 0:
        raise SystemExit(f"setup failed: {' '.join(argv[3:])}: {done.stderr[-800:]}")


def prepare(work: Path, photos_per_person: int, scan_photos: int, tiny_model: Path | None) -> dict[str, Path]:
    """photos: a folder of small photos, added, not scanned. scanned: face photos scanned, not indexed.
    faces: indexed (dlib), clustered, with the user's decisions made."""
    bases = {}
    small = work / "small-photos"
    if not small.exists():
        from PIL import Image

        for i in range(scan_photos):
            sub = small / f"roll{i // 250}"
            sub.mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (48, 32), (i % 256, (i // 256) % 256, 77)).save(sub / f"{i:05d}.jpg", quality=70)
    bases["photos"] = work / "base-photos"
    if not bases["photos"].exists():
        _must(cli("add-folder", str(small))(bases["photos"]))
    people = work / "faces"
    if not people.exists():
        for person in sorted(p for p in FACES.iterdir() if p.is_dir() and p.name != "unlabeled_examples"):
            (people / person.name).mkdir(parents=True)
            for photo in sorted(person.glob("*.jpg"))[:photos_per_person]:
                shutil.copy(photo, people / person.name / photo.name)
    bases["scanned"] = work / "base-scanned"
    if not bases["scanned"].exists():
        _must(cli("add-folder", str(people))(bases["scanned"]))
        _must(cli("scan")(bases["scanned"]))
    bases["faces"] = work / "base-faces"
    if not bases["faces"].exists():
        shutil.copytree(bases["scanned"], bases["faces"])
        _must(cli("index", "--face-engine", "dlib", "--embedder", "sscd")(bases["faces"]))
        _must(cli("cluster")(bases["faces"]))
        _make_decisions(bases["faces"])
    bases["names"] = work / "base-names"
    if not bases["names"].exists():
        shutil.copytree(bases["faces"], bases["names"])
        write_sidecars(bases["names"])
    return bases


def write_sidecars(data: Path) -> int:
    """XMP sidecars (MWG regions, as digiKam writes them) beside the library's photos: each detected face named
    after its person's folder (some agree with the user's names, most are new, some conflict), one region where
    no face was detected (a face made from the region, as for a face the detector missed), a pet on every sixth
    photo. The folder is shared with the other jobs; only import-names reads sidecars."""
    from tests.interop.xmpdata import mwg, packet

    photos = _query(data, "SELECT id, path, width, height FROM photos WHERE status = 'ok' ORDER BY id")
    for n, (photo_id, path, w, h) in enumerate(photos):
        person = Path(path).parent.name.replace("_", " ").title()
        boxes = _query(data, "SELECT x1, y1, x2, y2 FROM faces WHERE photo_id = ? ORDER BY id", (photo_id,))
        regions = [(person, "Face", (x1 + x2) / 2 / w, (y1 + y2) / 2 / h, (x2 - x1) / w, (y2 - y1) / h)
                   for x1, y1, x2, y2 in boxes]
        corner = 0.14 if all(x1 > 0.3 * w or y1 > 0.3 * h for x1, y1, _, _ in boxes) else 0.86
        regions.append((f"Visitor {n % 4}", "Face", corner, corner, 0.16, 0.16))
        if n % 6 == 0:
            regions.append(("Rexy", "Pet", 0.5, 0.5, 0.9, 0.9))
        Path(path + ".xmp").write_text(packet(mwg(regions, applied=(w, h))))
    return len(photos)


def _make_decisions(data: Path) -> None:
    """The decisions every kill must keep: names, a merge, a split, a move, a rejection, a hide, a cover."""
    from myvlm_desktop.library.store import Library
    from myvlm_desktop.people import ops

    clusters = [r[0] for r in _query(data, "SELECT cluster_id FROM faces WHERE cluster_id IS NOT NULL "
                                           "GROUP BY cluster_id ORDER BY count(*) DESC, cluster_id")]
    with Library(data) as lib:
        faces = lambda cid: [r["id"] for r in lib.db.query("SELECT id FROM faces WHERE cluster_id = ? ORDER BY id",  # noqa: E731
                                                             (cid,))]
        ops.name_cluster(lib, clusters[0], "Alan")
        ops.name_cluster(lib, clusters[1], "Ellie")
        ops.name_cluster(lib, clusters[2], "Ian")
        ops.merge(lib, "Alan", clusters[3])
        ops.split(lib, clusters[1], faces(clusters[1])[:1])
        ops.move_face(lib, faces(clusters[2])[0], clusters[1])
        ops.reject_face(lib, faces(clusters[0])[-1], "Alan")
        ops.hide_cluster(lib, clusters[4])
        ops.set_cover(lib, clusters[0], faces(clusters[0])[1])


# -- killing -------------------------------------------------------------------------------------------------
def _fresh(base: Path, into: Path) -> Path:
    shutil.rmtree(into, ignore_errors=True)
    shutil.copytree(base, into, symlinks=True)
    return into


def reference_run(job: Job, base: Path, work: Path) -> dict:
    data = _fresh(base, work / f"ref-{_slug(job.name)}")
    if job.name.startswith("naming"):
        ops_driver(data, record=True)
        for name in ("ops-reference.json", "ops-plan.json"):
            shutil.copy(data / name, base / name)
        return {"final": job.final(data), "levels": {}, "top": len(json.loads((data / "ops-plan.json").read_text())),
                "seconds": 0}
    before = decisions(data)
    started = time.monotonic()
    proc = subprocess.Popen(job.command(data), env={**ENV, **job.env(data)}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    levels: dict[int, float] = {}
    while proc.poll() is None:
        level = job.progress(data)
        levels.setdefault(level, time.monotonic())
        time.sleep(POLL)
    err = proc.stderr.read().decode(errors="replace")
    if proc.returncode != 0:
        raise SystemExit(f"{job.name}: the uninterrupted run failed: {err[-600:]}")
    end = time.monotonic()
    marks = sorted(levels.items())
    spans = {lvl: (marks[i + 1][1] if i + 1 < len(marks) else end) - t for i, (lvl, t) in enumerate(marks)}
    # What the job itself changes on purpose (import-names names a face the user split off but left unnamed):
    # the kills are checked against everything else, the final state against the uninterrupted run.
    after = decisions(data)
    changed = {k: sorted(before[k] - after[k], key=str) for k in before if before[k] - after[k]}
    return {"final": job.final(data), "levels": spans, "top": job.progress(data), "seconds": end - started,
            "changes_by_job": changed}


def kill_chain(job: Job, base: Path, data: Path, ref: dict, kills: int, rng: random.Random) -> dict:
    """`kills` runs killed at rising random progress targets, then one run to the end."""
    _fresh(base, data)
    before = decisions(data)
    for k, rows in ref.get("changes_by_job", {}).items():
        before[k] = before[k] - {tuple(r) for r in rows}
    top = max(ref["top"], 1)
    targets = sorted(rng.randint(0, top - 1) for _ in range(kills))
    out = {"kills": 0, "resumed": 0, "lost": 0, "unsound": 0, "finished_early": 0, "problems": [], "at": []}
    last_level = job.progress(data)
    for target in targets:
        proc = subprocess.Popen(job.command(data), env={**ENV, **job.env(data)}, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        while proc.poll() is None and job.progress(data) < target:
            time.sleep(POLL)
        if proc.poll() is None and not job.fine:  # few commits: a random moment inside that stage
            span = ref["levels"].get(job.progress(data)) or ref["levels"].get(target) or 0.0
            deadline = time.monotonic() + rng.random() * min(span, 30.0)
            while proc.poll() is None and time.monotonic() < deadline:
                time.sleep(POLL)
        if proc.poll() is not None:
            out["finished_early"] += 1
            break
        level_at_kill = job.progress(data)
        naming_at_kill = _ops_positions(data) if job.name.startswith("naming") else []
        snapshot = decisions(data)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        out["kills"] += 1
        out["at"].append(level_at_kill)
        problems = soundness(data)
        after = decisions(data)
        gone = lost(before, after)
        if job.name.startswith("naming"):  # its own decisions: the state must be one the user reached, not earlier
            gone = naming_lost(naming_at_kill, _ops_positions(data))
            level_at_kill = min(naming_at_kill, default=-1)
            before = after
        else:
            gone += lost({k: v & before[k] for k, v in snapshot.items()}, after)
        if problems:
            out["unsound"] += 1
            out["problems"] += problems[:2]
        if gone:
            out["lost"] += 1
            out["problems"] += gone[:2]
        out["resumed"] += int(job.progress(data) >= min(last_level, level_at_kill))
        last_level = job.progress(data)
    done = _run(job.command(data), env=job.env(data))
    out["completed"] = done.returncode == 0
    if not out["completed"]:
        out["problems"].append(f"final run failed: {done.stderr.strip()[-300:]}")
        out["resumed"] = 0
    out["mismatch"] = bool(job.deterministic and job.final(data) != ref["final"])
    if out["mismatch"]:
        out["problems"].append("final state differs from the uninterrupted run")
    out["leftovers"] = job.leftovers(data) if job.leftovers else []
    still = lost(before, decisions(data)) if not job.name.startswith("naming") else []
    if still:
        out["lost"] += 1
        out["problems"] += still[:2]
    return out


def _slug(name: str) -> str:
    return "".join(ch if ch.isalnum() else "-" for ch in name)[:30]


def tiny_vlm(work: Path) -> Path:
    folder = work / "tiny-smolvlm"
    if not (folder / "config.json").exists():
        from myvlm_desktop.vlm.testing import save_tiny_model

        save_tiny_model("smolvlm", folder)
    return folder


def _write(out: Path, rows: list[dict], load, args, partial: bool) -> Path:
    total = {k: sum(r[k] for r in rows) for k in ("kills", "resumed", "decisions_lost", "mismatches", "unsound",
                                                   "failed_resumes")}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"jobs": rows, "total": total, "partial": partial, "load_before": load,
                               "load_after": os.getloadavg(),
                               "args": {k: v for k, v in vars(args).items() if k != "ops_driver"}}, indent=2))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", default="all", help="comma-separated job names (prefixes) or all")
    parser.add_argument("--kills", type=int, default=20, help="kills per job")
    parser.add_argument("--chain", type=int, default=5, help="kills before a run is let finish")
    parser.add_argument("--photos-per-person", type=int, default=12)
    parser.add_argument("--scan-photos", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=17)
    parser.add_argument("--work", help="keep the libraries here (default: a temporary folder)")
    parser.add_argument("--out", default=str(RESULTS / "crash_matrix.json"))
    parser.add_argument("--ops-driver", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.ops_driver:
        ops_driver(Path(args.ops_driver), record=False)
        return 0
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="crash-matrix-"))
    work.mkdir(parents=True, exist_ok=True)
    rng = random.Random(args.seed)
    wanted = lambda name: args.jobs == "all" or any(name.startswith(p.strip()) for p in args.jobs.split(","))  # noqa: E731
    needs_vlm = any(wanted(name) for name in ("concept", "caption"))
    chosen = [j for j in jobs(tiny_vlm(work) if needs_vlm else None).values() if wanted(j.name)]
    bases = prepare(work, args.photos_per_person, args.scan_photos, None)
    if any(j.name.startswith("model download") for j in chosen):
        start_hub(work)
    load = os.getloadavg()
    rows = []
    for job in chosen:
        t0 = time.monotonic()
        ref = reference_run(job, bases[job.base], work)
        totals = {"job": job.name, "kills": 0, "resumed": 0, "decisions_lost": 0, "unsound": 0, "mismatches": 0,
                  "failed_resumes": 0, "finished_early": 0, "problems": [], "reference_seconds": round(ref["seconds"], 1),
                  "changes_by_job": ref.get("changes_by_job", {})}
        left = args.kills
        chain = 0
        while left > 0 and chain < args.kills * 2:
            n = min(args.chain, left)
            result = kill_chain(job, bases[job.base], work / f"run-{_slug(job.name)}", ref, n, rng)
            chain += 1
            left -= result["kills"]
            totals["kills"] += result["kills"]
            totals["resumed"] += result["resumed"]
            totals["decisions_lost"] += result["lost"]
            totals["unsound"] += result["unsound"]
            totals["mismatches"] += int(result["mismatch"])
            totals["failed_resumes"] += int(not result["completed"])
            totals["finished_early"] += result["finished_early"]
            totals["progress_at_kills"] = totals.get("progress_at_kills", []) + result["at"]
            totals["leftover_files"] = totals.get("leftover_files", []) + result["leftovers"]
            totals["problems"] += result["problems"]
        totals["seconds"] = round(time.monotonic() - t0, 1)
        rows.append(totals)
        _write(Path(args.out), rows, load, args, partial=True)  # what is done so far survives an interruption
        print(f"{job.name:<30} kills {totals['kills']:>3}  resumed {totals['resumed']:>3}  "
              f"lost {totals['decisions_lost']}  unsound {totals['unsound']}  mismatches {totals['mismatches']}  "
              f"failed resumes {totals['failed_resumes']}  ({totals['seconds']} s)", flush=True)
    print()
    print(f"{'job':<30} {'kills':>5} {'resumed':>7} {'decisions lost':>14} {'mismatches':>10}")
    for r in rows:
        print(f"{r['job']:<30} {r['kills']:>5} {r['resumed']:>7} {r['decisions_lost']:>14} {r['mismatches']:>10}")
    total = {k: sum(r[k] for r in rows) for k in ("kills", "resumed", "decisions_lost", "mismatches", "unsound",
                                                   "failed_resumes")}
    print(f"{'total':<30} {total['kills']:>5} {total['resumed']:>7} {total['decisions_lost']:>14} "
          f"{total['mismatches']:>10}")
    if HUB:
        HUB["server"].stop()
    out = _write(Path(args.out), rows, load, args, partial=False)
    print(f"wrote {out}")
    if not args.work:
        shutil.rmtree(work, ignore_errors=True)
    return 0 if total["decisions_lost"] == 0 and total["failed_resumes"] == 0 and total["unsound"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())

"""Face clustering speed and memory: ours (FAISS k-NN graph) against sklearn's DBSCAN, on synthetic faces.

Synthetic faces: unit vectors in well-separated groups (identities), 128-D with dlib-like spread and the
dlib thresholds, 512-D with ArcFace-like spread and the ArcFace thresholds; group sizes are skewed like a
photo library's (a few people with many photos, many with a few) and 10% are strangers seen once. Each
run is a fresh process, so its peak memory (max RSS) is its own; "extra" is the peak minus the memory
the data itself takes. DBSCAN runs with the same eps / min_samples (metric cosine), under a time cap.
Each run also records its CPU seconds and the load average: on a shared machine wall time is inflated by
the other processes, CPU time much less so.

    python benchmarks/bench_cluster.py                    # 10k, 100k, 1M at 128-D and 512-D
    python benchmarks/bench_cluster.py --sizes 10000 --dims 128 --dbscan-cap 60
    python benchmarks/bench_cluster.py --sizes 1000000 --dims 128 512 --dbscan-cap 1   # ours only, 1M, both
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SPREAD = {128: 0.0156, 512: 0.029}  # pair distance ~0.03 (dlib, bound 0.065) / ~0.3 (ArcFace, bound 0.5)


def synthetic(n: int, dim: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """n unit vectors: 90% in identities of skewed sizes, 10% strangers (label -1)."""
    rng = np.random.default_rng(seed)
    sizes = []
    grouped = int(n * 0.9)
    while sum(sizes) < grouped:
        sizes.append(int(min(2 + rng.zipf(1.8), 2000)))
    sizes[-1] -= sum(sizes) - grouped
    if sizes[-1] < 2:
        sizes.pop()
    labels = np.concatenate([np.repeat(np.arange(len(sizes)), sizes), -np.ones(n - sum(sizes), np.int64)])
    centers = rng.standard_normal((len(sizes), dim), dtype=np.float32)
    centers /= np.linalg.norm(centers, axis=1, keepdims=True)
    vectors = np.empty((n, dim), np.float32)
    for start in range(0, n, 65536):
        part = slice(start, min(n, start + 65536))
        noise = rng.standard_normal((part.stop - start, dim), dtype=np.float32)
        lab = labels[part]
        base = np.where(lab[:, None] >= 0, centers[np.maximum(lab, 0)], 0)
        chunk = np.where(lab[:, None] >= 0, base + SPREAD[dim] * noise, noise)
        vectors[part] = chunk / np.linalg.norm(chunk, axis=1, keepdims=True)
    order = rng.permutation(n)
    return vectors[order], labels[order]


def pair_f1(truth: np.ndarray, pred: np.ndarray) -> float:
    """Pairwise F1 from the contingency table (noise / strangers count as clusters of one)."""
    def pairs(counts):
        return float((counts * (counts - 1) // 2).sum())

    t = np.where(truth < 0, truth.max() + 1 + np.arange(len(truth)), truth)
    p = np.where(pred < 0, pred.max() + 1 + np.arange(len(pred)), pred)
    _, joint = np.unique(np.stack([t, p]), axis=1, return_counts=True)
    tp = pairs(joint)
    precision = tp / max(pairs(np.unique(p, return_counts=True)[1]), 1)
    recall = tp / max(pairs(np.unique(t, return_counts=True)[1]), 1)
    return 2 * precision * recall / (precision + recall) if precision + recall else 0.0


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def current_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def one(method: str, n: int, dim: int) -> dict:
    """Run one method on one data set in this process; timings exclude making the data."""
    from myvlm_desktop.people.cluster import ARCFACE, DLIB

    params = DLIB if dim == 128 else ARCFACE
    vectors, truth = synthetic(n, dim)
    data_mb = current_mb()
    start, cpu_start = time.perf_counter(), time.process_time()
    if method == "ours":
        from myvlm_desktop.people.cluster import cluster_all
        from myvlm_desktop.people.index import EXACT_LIMIT, REDUCED_DIM

        pred = cluster_all(vectors, params)  # what a full re-cluster runs: a FAISS index, then the graph
        extra = {"search": "exact" if n <= EXACT_LIMIT else
                 f"ivf pca{REDUCED_DIM} + exact re-rank" if dim > REDUCED_DIM else "ivf"}
    else:
        from sklearn.cluster import DBSCAN

        pred = DBSCAN(eps=params.max_distance, min_samples=params.min_faces, metric="cosine",
                      n_jobs=2).fit_predict(vectors)
        extra = {}
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    return {"method": method, "n": n, "dim": dim, "seconds": round(seconds, 2), "cpu_seconds": round(cpu, 2),
            "load": round(os.getloadavg()[0], 1), "f1": round(pair_f1(truth, pred), 4),
            "clusters": int(pred.max() + 1), "peak_mb": round(rss_mb()), "extra_mb": round(rss_mb() - data_mb),
            **extra}


def spawn(method: str, n: int, dim: int, cap: float) -> dict:
    command = [sys.executable, __file__, "--one", method, str(n), str(dim)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=cap, check=False)
    except subprocess.TimeoutExpired:
        return {"method": method, "n": n, "dim": dim, "seconds": None, "note": f"stopped after {cap:.0f} s"}
    if done.returncode != 0:
        tail = (done.stderr or "").strip().splitlines()[-1:] or ["failed"]
        return {"method": method, "n": n, "dim": dim, "seconds": None, "note": tail[0][:200]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--dims", type=int, nargs="+", default=[128, 512], choices=[128, 512])
    parser.add_argument("--dbscan-cap", type=float, default=120.0, help="seconds before DBSCAN is stopped")
    parser.add_argument("--ours-cap", type=float, default=600.0)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "bench_cluster.json"))
    parser.add_argument("--one", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one(args.one[0], int(args.one[1]), int(args.one[2]))))
        return 0
    rows = []
    print(f"{'dim':>4} {'n':>9}  {'ours s':>8} {'CPU s':>7} {'load':>5} {'F1':>6} {'peak MB':>8}  "
          f"{'DBSCAN s':>9} {'F1':>6} {'peak MB':>8}  speed-up")
    for dim in args.dims:
        last = None  # the largest DBSCAN run that finished: (n, seconds)
        for n in args.sizes:
            ours = spawn("ours", n, dim, args.ours_cap)
            guess = last[1] * (n / last[0]) ** 2 if last else 0.0  # brute-force DBSCAN grows as n^2
            if guess > args.dbscan_cap or (last is None and n != args.sizes[0] and rows and
                                           rows[-1]["seconds"] is None):
                theirs = {"method": "dbscan", "n": n, "dim": dim, "seconds": None, "extrapolated_s": round(guess),
                          "note": f"skipped: about {guess:.0f} s by n^2 from {last[0] if last else '-'}"}
            else:
                theirs = spawn("dbscan", n, dim, args.dbscan_cap)
            if theirs["seconds"] is not None:
                last = (n, theirs["seconds"])
            rows += [ours, theirs]
            ratio = (f"{theirs['seconds'] / ours['seconds']:.0f}x" if ours.get("seconds") and theirs.get("seconds")
                     else f"~{guess / ours['seconds']:.0f}x by n^2" if ours.get("seconds") and guess
                     else f">{args.dbscan_cap / ours['seconds']:.0f}x" if ours.get("seconds") else "-")
            print(f"{dim:>4} {n:>9}  {_s(ours)} {ours.get('cpu_seconds', '-'):>7} {ours.get('load', '-'):>5} "
                  f"{ours.get('f1', '-'):>6} {ours.get('peak_mb', '-'):>8}  "
                  f"{_s(theirs, 9)} {theirs.get('f1', '-'):>6} {theirs.get('peak_mb', '-'):>8}  {ratio}", flush=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"cpus": os.cpu_count(), "dbscan_cap_s": args.dbscan_cap, "runs": rows}, indent=2))
    print(f"wrote {out}")
    return 0


def _s(row: dict, width: int = 8) -> str:
    return f"{row['seconds']:>{width}}" if row.get("seconds") is not None else f"{'>cap':>{width}}"


if __name__ == "__main__":
    sys.exit(main())

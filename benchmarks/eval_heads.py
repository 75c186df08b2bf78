"""Evaluate concept heads as MyVLM does: 1, 2 and 4 training photos, 5 random splits, per concept P/R/F1.

    pets   ../shared/data/pets_dreambooth  each animal a concept; the other animals' photos are negatives
           (half of them train the head as the user's other photos, the other half are test negatives)
    people ../shared/data/faces_jurassic   each character a concept (clean subset: no quality_flag);
           training photos come from single-person shots, test photos are every other clean photo

The heads, training and thresholds are the app's own (myvlm_desktop.concepts). Besides precision / recall /
F1 it reports weighted accuracy, (recall on positives + accuracy on negatives) / 2, the measure of the
Yo'LLaVA recognition benchmark where MyVLM's heads reach 0.919 and RAP 0.980.

    python benchmarks/eval_heads.py [--only pets|people] [--splits 5] [--steps 500] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
import zlib
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from myvlm_desktop.concepts.linear import TrainConfig, fit_concept_head
from myvlm_desktop.concepts.person import PersonHead
from myvlm_desktop.concepts.review import BAND
from myvlm_desktop.concepts.train import HEAD_VIEWS, LOAD_SIDE, select_negatives, training_views
from myvlm_desktop.imaging import ImageError, load_array
from myvlm_desktop.models.errors import ModelUnavailable
from myvlm_desktop.vision.embed import photo_vector

DATA = Path("/work/shared/data")
SHOTS = (1, 2, 4)
TARGETS = {"MyVLM heads (Yo'LLaVA benchmark)": 0.919, "RAP": 0.980}
THRESHOLD_SWEEP = (0.06, 0.07, 0.085, 0.1, 0.12, 0.15, 0.2)
FACE_SIDE = 1024  # as the indexer sees photos: big enough for dlib's HOG to find film-still faces


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--only", choices=("pets", "people"))
    parser.add_argument("--splits", type=int, default=5)
    parser.add_argument("--steps", type=int, default=500, help="linear head training steps (MyVLM: 500)")
    parser.add_argument("--review", type=int, default=5, help="simulated review answers per concept (0: none)")
    parser.add_argument("--face-engine", default="dlib")
    parser.add_argument("--detector", default="hog", help="dlib's detector: hog | mtcnn | hog+mtcnn | cnn | hog+cnn (cached faces)")
    parser.add_argument("--test-vector", choices=("stored", "whole", "max"), default="stored",
                        help="pets: a photo as the library stores it (whole frame + subject crops, "
                             "vision.embed.photo_vector), its whole frame only (the rule before), or "
                             "present when any of its frame and crops is")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "eval_heads.json")
    args = parser.parse_args()
    report: dict = {"machine": platform.platform(), "splits": args.splits, "shots": list(SHOTS),
                    "targets_weighted_accuracy": TARGETS}
    if args.only in (None, "pets"):
        report["pets"] = {name: _guard(eval_pets, args, name) for name in ("sscd", "clip")}
    if args.only in (None, "people"):
        report["people"] = {args.face_engine: _guard(eval_people, args, args.face_engine)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    _print(report)
    print(f"\nwrote {args.out}")
    return 0


def _guard(fn, args, engine: str) -> dict:
    """One engine's evaluation, or why it could not run (model or data missing): never a traceback."""
    try:
        return fn(args, engine)
    except ModelUnavailable as exc:
        return {"skipped": f"model unavailable: {exc}"}
    except FileNotFoundError as exc:
        return {"skipped": f"data not found: {exc}"}


# -- pets: linear heads on image embeddings ----------------------------------------------------------
def eval_pets(args, embedder_name: str) -> dict:
    from myvlm_desktop.vision.embed import get_image_embedder

    photos = _manifest(args.data / "pets_dreambooth")
    embedder = get_image_embedder(embedder_name)
    views, embed_s = _pet_views(args, photos, embedder)
    labels = np.array([p["label"] for p in photos])
    species = np.array([p.get("species", "") for p in photos])
    paths = [p["path"] for p in photos]
    stored = np.stack([photo_vector(np.vstack([views[p][:1], views[p][HEAD_VIEWS:]])) for p in paths])
    originals = np.stack([views[p][0] for p in paths]) if args.test_vector == "whole" else stored
    present = _present_any_crop(views, paths) if args.test_vector == "max" else (lambda head, ids: head.present(originals[ids]))
    per_concept, started = {}, time.perf_counter()
    for concept in sorted(set(labels)):
        per_concept[concept] = {}
        for shots in SHOTS:
            counts = []
            for split in range(args.splits):
                rng = np.random.default_rng([split, shots, _stable(concept)])
                own = rng.permutation(np.flatnonzero(labels == concept))
                others = rng.permutation(np.flatnonzero(labels != concept))
                train_pos, test_pos = own[:shots], own[shots:]
                train_neg, test_neg = others[: len(others) // 2], others[len(others) // 2:]
                pos = np.concatenate([views[paths[i]] for i in train_pos])
                groups = np.repeat(train_pos, [len(views[paths[i]]) for i in train_pos])
                chosen = np.array(select_negatives(originals[train_neg], originals[train_pos]))
                head = fit_concept_head(pos, originals[train_neg[chosen]], groups,
                                        TrainConfig(steps=args.steps, seed=split))
                on_neg = present(head, test_neg)
                same_species = species[test_neg] == species[own[0]]
                counts.append(_counts(present(head, test_pos), on_neg)
                              | {"fp_same_species": int(on_neg[same_species].sum())})
            per_concept[concept][shots] = _scores(counts)
    result = {"embedder": embedder.engine_id, "test_vector": args.test_vector, "photos": len(photos),
              "views_per_photo": len(views[paths[0]]),
              "embed_seconds": round(embed_s, 1), "train_seconds": round(time.perf_counter() - started, 1),
              "per_concept": per_concept, "mean": _means(per_concept)}
    if args.review:
        result["review_gain"] = _pet_review_gain(args, views, labels, paths, originals)
    return result


def _present_any_crop(views: dict, paths: list):
    """Test-time crops: a photo shows the concept when its whole frame or any subject crop does."""
    crops = np.stack([np.vstack([views[p][:1], views[p][HEAD_VIEWS:]]) for p in paths])

    def present(head, ids):
        chosen = crops[ids]
        return head.present(chosen.reshape(-1, chosen.shape[-1])).reshape(len(ids), -1).any(axis=1)
    return present


def _pet_review_gain(args, views: dict, labels: np.ndarray, paths: list, originals: np.ndarray) -> dict:
    """The same heads before and after `args.review` answers from the review queue (concepts.review's
    rule: scores within BAND of the cut-off, closest first). The concept's photos not used to train are
    split in two: half sit unconfirmed in the library (the queue may ask about them), half are the test."""
    before, after, asked = {}, {}, []
    for concept in sorted(set(labels)):
        before[concept], after[concept] = {}, {}
        for shots in SHOTS:
            counts_before, counts_after = [], []
            for split in range(args.splits):
                rng = np.random.default_rng([split, shots, _stable(concept), 1])
                own = rng.permutation(np.flatnonzero(labels == concept))
                others = rng.permutation(np.flatnonzero(labels != concept))
                train_pos, rest = own[:shots], own[shots:]
                pool_pos, test_pos = rest[: len(rest) // 2], rest[len(rest) // 2:]
                train_neg, test_neg = others[: len(others) // 2], others[len(others) // 2:]
                cfg = TrainConfig(steps=args.steps, seed=split)
                library = (views, paths, originals, train_neg, cfg)
                head = _fit_pet(library, train_pos, np.zeros(0, int))
                counts_before.append(_counts(head.present(originals[test_pos]), head.present(originals[test_neg])))
                pool = np.concatenate([pool_pos, train_neg])
                doubt = np.abs(head.scores(originals[pool]) - 0.5)
                queue = [pool[i] for i in np.argsort(doubt, kind="stable") if doubt[i] <= BAND][: args.review]
                yes = np.array([i for i in queue if labels[i] == concept], int)
                no = np.array([i for i in queue if labels[i] != concept], int)
                asked.append(len(queue))
                head = _fit_pet(library, np.concatenate([train_pos, yes]), no)
                counts_after.append(_counts(head.present(originals[test_pos]), head.present(originals[test_neg])))
            before[concept][shots], after[concept][shots] = _scores(counts_before), _scores(counts_after)
    return {"answers_per_concept": args.review, "mean_answers_given": round(float(np.mean(asked)), 2),
            "before": _means(before), "after": _means(after)}


def _fit_pet(library: tuple, positive_ids: np.ndarray, rejected: np.ndarray):
    """A pet head as the app trains it: the positives' views, hard negatives, the photos answered "no"."""
    views, paths, originals, train_neg, cfg = library
    pos = np.concatenate([views[paths[i]] for i in positive_ids])
    groups = np.repeat(positive_ids, [len(views[paths[i]]) for i in positive_ids])
    chosen = train_neg[select_negatives(originals[train_neg], originals[positive_ids])]
    return fit_concept_head(pos, originals[np.union1d(chosen, rejected).astype(int)], groups, cfg)


def _pet_views(args, photos: list[dict], embedder) -> tuple[dict, float]:
    """{path: (views, dim)} the app's training views of each photo (augmented views, then subject crops),
    embedded once per embedder and cached under benchmarks/results/ (the original view is row 0)."""
    cache = args.out.parent / f"pet_views_{embedder.engine_id}_{HEAD_VIEWS}+5.npz"
    if cache.exists():
        stored = np.load(cache)
        if sorted(stored.files) == sorted(p["path"].replace("/", "__") for p in photos):
            return {p["path"]: stored[p["path"].replace("/", "__")] for p in photos}, 0.0
    started = time.perf_counter()
    views = {}
    for item in photos:  # every view embedded once, as the app does before training
        views[item["path"]] = np.asarray(embedder.embed(training_views(_load(args.data / "pets_dreambooth", item))))
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.savez(cache, **{k.replace("/", "__"): v for k, v in views.items()})
    return views, time.perf_counter() - started


# -- people: distance heads on face embeddings -------------------------------------------------------
def eval_people(args, engine_name: str) -> dict:
    from myvlm_desktop.vision.faces import get_face_engine

    folder = args.data / "faces_jurassic"
    photos = [p for p in _manifest(folder) if not p.get("quality_flag")]
    engine = get_face_engine(engine_name)
    started = time.perf_counter()
    if engine.name == "dlib":  # the faces bench_detectors.py found (and cached) with the chosen detector
        found = _cached_faces(args, folder, photos)
    else:
        found = {}
        for item in photos:
            try:
                faces = engine.analyze(_load(folder, item, FACE_SIDE))
            except ImageError:
                faces = []
            found[item["path"]] = np.stack([f.embedding for f in faces]) if faces else None
    detect_s = time.perf_counter() - started
    labels = np.array([p["label"] for p in photos])
    vectors = [found[p["path"]] for p in photos]
    solo = np.array([not p.get("multi_face_note") and v is not None and len(v) == 1 for p, v in zip(photos, vectors)])
    crowded = np.array([bool(p.get("multi_face_note")) for p in photos])
    per_concept = _people_scores(vectors, labels, solo, crowded, engine.threshold, args.splits)
    keys_only = _means(_people_scores(vectors, labels, solo, crowded, engine.threshold, args.splits, named_negatives=False))
    # how the cut-off trades precision for recall (4 training photos): informs the engine's calibration
    sweep = {t: _means(_people_scores(vectors, labels, solo, crowded, t, args.splits))[4] for t in THRESHOLD_SWEEP}
    return {"engine": engine.engine_id, "detector": args.detector if engine.name == "dlib" else engine.name,
            "threshold": engine.threshold, "photos": len(photos),
            "photos_with_a_face": sum(v is not None for v in vectors), "detect_seconds": round(detect_s, 1),
            "per_concept": per_concept, "mean": _means(per_concept), "mean_without_named_negatives": keys_only,
            "threshold_sweep_4_shots": sweep,
            **({"review_gain": _people_review_gain(args, vectors, labels, solo, crowded, engine.threshold)}
               if args.review else {})}


def _people_review_gain(args, vectors: list, labels: np.ndarray, solo: np.ndarray, crowded: np.ndarray,
                        threshold: float) -> dict:
    """Person heads before and after `args.review` answers: the queue (concepts.review's rule) looks at
    the faces of half the photos not used to train; the other half is the test. A face in a group photo
    is skipped (the label does not say which face is whom), the others answered by their photo's label."""
    concepts = sorted(set(labels))
    before, after, asked = {c: {} for c in concepts}, {c: {} for c in concepts}, []
    for shots in SHOTS:
        counts = {c: ([], []) for c in concepts}
        for split in range(args.splits):
            train = {c: np.random.default_rng([split, shots, _stable(c)]).permutation(
                np.flatnonzero((labels == c) & solo))[:shots] for c in concepts}
            rest = np.random.default_rng([split, shots, 1]).permutation(
                np.setdiff1d(np.arange(len(labels)), np.concatenate(list(train.values()))))
            pool, test = rest[: len(rest) // 2], rest[len(rest) // 2:]
            for concept in concepts:
                keys = [vectors[i][0] for i in train[concept]]
                negatives = [vectors[i][0] for c in concepts if c != concept for i in train[c]]
                head = PersonHead(np.stack(keys), threshold, np.stack(negatives))
                counts[concept][0].append(_photo_counts(head, vectors, labels, crowded, test, concept))
                faces = [(i, face) for i in pool if vectors[i] is not None for face in vectors[i]]
                scores = head.verdicts(np.stack([f for _, f in faces]))[1]
                order = [j for j in np.argsort(np.abs(scores - 0.5), kind="stable") if abs(scores[j] - 0.5) <= BAND]
                queue = order[: args.review]
                asked.append(len(queue))
                for j in queue:
                    photo, face = faces[j]
                    if crowded[photo]:
                        continue  # skip
                    (keys if labels[photo] == concept else negatives).append(face)
                head = PersonHead(np.stack(keys), threshold, np.stack(negatives))
                counts[concept][1].append(_photo_counts(head, vectors, labels, crowded, test, concept))
        for concept in concepts:
            before[concept][shots], after[concept][shots] = _scores(counts[concept][0]), _scores(counts[concept][1])
    return {"answers_per_concept": args.review, "mean_answers_given": round(float(np.mean(asked)), 2),
            "before": _means(before), "after": _means(after)}


def _photo_counts(head: PersonHead, vectors: list, labels: np.ndarray, crowded: np.ndarray, photos: np.ndarray,
                  concept: str) -> dict:
    hits = np.array([vectors[i] is not None and head.best(vectors[i]) is not None for i in photos])
    truth = labels[photos] == concept
    no_face = np.array([vectors[i] is None for i in photos])
    return _counts(hits[truth], hits[~truth & ~crowded[photos]]) | {"no_face": int(no_face[truth].sum())}


def _cached_faces(args, folder: Path, photos: list[dict]) -> dict:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from bench_detectors import detect_all
    from bench_detectors import photos as detector_photos

    items = detector_photos(args.data)
    found = detect_all(args.detector, items)
    by_file = {item["file"]: v for item, v in zip(items, found["vectors"])}
    return {p["path"]: (v if len(v := by_file[str(folder / p["path"])]) else None) for p in photos}


def _people_scores(vectors: list, labels: np.ndarray, solo: np.ndarray, crowded: np.ndarray, threshold: float,
                   splits: int, named_negatives: bool = True) -> dict:
    """Per concept and shot count: keys from `shots` single-person photos; a test photo is the concept's
    when any of its faces matches (a photo where no face was found counts as a miss). As in the app, the
    other people's training faces are the head's negative keys (every character is named), unless
    `named_negatives` is False (the head as it was: positive keys only)."""
    concepts = sorted(set(labels))
    per_concept = {c: {} for c in concepts}
    for shots in SHOTS:
        counts = {c: [] for c in concepts}
        for split in range(splits):
            train = {c: np.random.default_rng([split, shots, _stable(c)]).permutation(
                np.flatnonzero((labels == c) & solo))[:shots] for c in concepts}
            for concept in concepts:
                negatives = (np.stack([vectors[i][0] for c in concepts if c != concept for i in train[c]])
                             if named_negatives else np.zeros((0, 0), np.float32))
                head = PersonHead(np.stack([vectors[i][0] for i in train[concept]]), threshold, negatives)
                rest = np.setdiff1d(np.arange(len(labels)), np.concatenate(list(train.values())))
                hits = np.array([vectors[i] is not None and head.best(vectors[i]) is not None for i in rest])
                truth = labels[rest] == concept
                # a group photo labelled with someone else may well show this person too: not a negative
                negative = ~truth & ~crowded[rest]
                no_face = np.array([vectors[i] is None for i in rest])
                counts[concept].append(_counts(hits[truth], hits[negative]) | {"no_face": int(no_face[truth].sum())})
        for concept in concepts:
            per_concept[concept][shots] = _scores(counts[concept])
    return per_concept


# -- scoring --------------------------------------------------------------------------------------------
def _counts(on_positives: np.ndarray, on_negatives: np.ndarray) -> dict:
    return {"tp": int(on_positives.sum()), "fn": int((~on_positives).sum()),
            "fp": int(on_negatives.sum()), "tn": int((~on_negatives).sum())}


def _scores(splits: list[dict]) -> dict:
    """Per-split precision / recall / F1 / weighted accuracy, averaged over the splits."""
    rows = []
    for c in splits:
        precision = c["tp"] / (c["tp"] + c["fp"]) if c["tp"] + c["fp"] else 1.0
        recall = c["tp"] / (c["tp"] + c["fn"]) if c["tp"] + c["fn"] else 1.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        specificity = c["tn"] / (c["tn"] + c["fp"]) if c["tn"] + c["fp"] else 1.0
        seen = c["tp"] + c["fn"] - c.get("no_face", 0)  # positives whose face the detector found
        same = c["tp"] + c.get("fp_same_species", c["fp"])  # pets: against the other dogs (cats) only
        rows.append((precision, recall, f1, (recall + specificity) / 2, c["tp"] / seen if seen else 1.0,
                     c["tp"] / same if same else 1.0))
    mean = np.mean(rows, axis=0)
    names = ("precision", "recall", "f1", "weighted_accuracy", "recall_of_found_faces", "precision_same_species")
    return dict(zip(names, (round(float(v), 3) for v in mean)))


def _means(per_concept: dict) -> dict:
    keys = next(iter(per_concept.values()))[SHOTS[0]].keys()
    return {shots: {k: round(float(np.mean([c[shots][k] for c in per_concept.values()])), 3) for k in keys}
            for shots in SHOTS}


def _print(report: dict) -> None:
    for task in ("pets", "people"):
        for engine, result in report.get(task, {}).items():
            print(f"\n== {task} / {engine}")
            if "skipped" in result:
                print("  skipped:", result["skipped"])
                continue
            print(f"  {'concept':<18}" + "".join(f"  {s}-shot P/R/F1/WA      " for s in SHOTS))
            for concept, by_shots in {**result["per_concept"], "MEAN": result["mean"]}.items():
                cells = ["  {precision:.2f}/{recall:.2f}/{f1:.2f}/{weighted_accuracy:.2f}     ".format(**by_shots[s])
                         for s in SHOTS]
                print(f"  {concept:<18}" + "".join(cells))
            if "review_gain" in result:
                gain = result["review_gain"]
                print(f"  review gain ({gain['answers_per_concept']} answers asked per concept, "
                      f"{gain['mean_answers_given']} given on average), WA before -> after: " + ", ".join(
                          f"{s}-shot {gain['before'][s]['weighted_accuracy']:.2f} -> {gain['after'][s]['weighted_accuracy']:.2f}"
                          for s in SHOTS))
            if task == "people":
                print("  recall among photos whose face was found (4 shots):", result["mean"][4]["recall_of_found_faces"])
                print("  without the other people as negatives, WA at 1/2/4 shots:",
                      " / ".join(f"{result['mean_without_named_negatives'][s]['weighted_accuracy']:.2f}" for s in SHOTS))
                for t, m in result["threshold_sweep_4_shots"].items():
                    print(f"  threshold {t:<6} 4-shot P {m['precision']:.2f} R {m['recall']:.2f} "
                          f"F1 {m['f1']:.2f} WA {m['weighted_accuracy']:.2f}")
    print("\ntargets (weighted accuracy):", ", ".join(f"{k} {v}" for k, v in TARGETS.items()))


# -- data -----------------------------------------------------------------------------------------------
def _manifest(folder: Path) -> list[dict]:
    manifest = folder / "manifest.json"
    if not manifest.exists():
        raise FileNotFoundError(str(manifest))
    images = json.loads(manifest.read_text())["images"]
    return [i for i in images if (folder / i["path"]).exists()]


def _load(folder: Path, item: dict, side: int = LOAD_SIDE) -> np.ndarray:
    return load_array(folder / item["path"], max_side=side)


def _stable(text: str) -> int:
    return zlib.crc32(text.encode())  # the same seed on every run (hash() changes per process)


if __name__ == "__main__":
    sys.exit(main())

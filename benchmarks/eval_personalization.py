"""Personalized captioning quality with real VLM weights: recall, precision and F1 of the concept identifier.

MyVLM measured recall: the share of captions of a concept's photos that name its identifier (BLIP-2 87.1 %,
LLaVA 96.0 % with 4 training photos). RAP (CVPR 2025) added precision: of the captions that name the
identifier, the share that show the concept (MyVLM 86.4 %). This script trains each concept's embedding the
way the app does (targets from the frozen VLM, the paper's recipe), captions held-out photos, and reports
both, plus "kept": the share of captions without the concept that stay exactly the unmodified model's.

It needs real weights (none can be downloaded on the machines this project is built on, so it does not
run there). To run it:

    myvlm models download HuggingFaceTB/SmolVLM-256M-Instruct      # or Salesforce/blip2-flan-t5-xl, llava-hf/...
    python benchmarks/eval_personalization.py --backend smolvlm --data DATA --out results.json

DATA is either
  - a folder DATA/<concept>/train/*.jpg and DATA/<concept>/test/*.jpg, with optional DATA/negatives/*.jpg, or
  - a manifest.json of the shared data's form {"images": [{"path", "label", "split"?, "species"?}]} (each
    label a concept; without a split, --train photos per label train, chosen with --seed, the rest test).
    ../shared/data/pets_dreambooth/manifest.json (9 pets) is one.
Every concept's test photos are negatives for the others.

Which concepts' tokens a photo gets (--gate):
  oracle  the concept's own photos (a perfect head): recall of the embedding; precision then only checks that
          the model never says an identifier unprompted
  always  every photo gets the concept's token (as if its head fired everywhere): how specific the embedding
          is on its own
  FILE    a JSON {"image path": ["concept", ...]} of the heads' decisions (e.g. from `myvlm detect PATH --json`):
          the app's real precision
Use --splits 5 for the paper's five random splits (each retrains every concept).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from myvlm_desktop.imaging import ImageError, load_rgb

PET_SPECIES = {"cat", "dog", "pet", "bird", "rabbit", "horse"}


@dataclass
class Concept:
    name: str
    kind: str = "object"
    noun: str | None = None
    train: list[Path] = field(default_factory=list)
    test: list[Path] = field(default_factory=list)

    @property
    def identifier(self) -> str:
        return f"<{self.name}>"


def read_folder(data: Path, n_train: int, rng: random.Random, kind: str) -> tuple[list[Concept], list[Path]]:
    concepts = []
    for folder in sorted(p for p in data.iterdir() if p.is_dir() and p.name != "negatives"):
        train, test = sorted((folder / "train").glob("*.*")), sorted((folder / "test").glob("*.*"))
        if not train:  # no split given: choose one
            photos = sorted(p for p in folder.glob("*.*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
            rng.shuffle(photos)
            train, test = photos[:n_train], photos[n_train:]
        concepts.append(Concept(folder.name, kind, None, train[:n_train], test))
    negatives = sorted((data / "negatives").glob("*.*")) if (data / "negatives").is_dir() else []
    return concepts, negatives


def read_manifest(path: Path, n_train: int, rng: random.Random, kind: str) -> tuple[list[Concept], list[Path]]:
    images = json.loads(path.read_text())["images"]
    by_label: dict[str, Concept] = {}
    for item in images:
        species = item.get("species")
        concept = by_label.setdefault(item["label"], Concept(
            item["label"], "pet" if species in PET_SPECIES else kind, species))
        split = item.get("split")
        target = concept.train if split == "train" else concept.test if split == "test" else None
        (target if target is not None else concept.test).append(path.parent / item["path"])
    for concept in by_label.values():
        if not concept.train:
            rng.shuffle(concept.test)
            concept.train, concept.test = concept.test[:n_train], concept.test[n_train:]
    return sorted(by_label.values(), key=lambda c: c.name), []


def train_concept(backend, concept: Concept, steps: int, seed: int):
    from myvlm_desktop.vlm.concept import ConceptVector
    from myvlm_desktop.vlm.train import ConceptTrainer, TrainSettings, build_bank, make_targets

    images = [load_rgb(p, max_side=1024) for p in concept.train]
    settings = TrainSettings(steps=steps, seed=seed)
    bank = build_bank(backend, images, settings.views, settings.seed)
    samples = make_targets(backend, images, concept.identifier, concept.kind, concept.noun, settings,
                           features=bank[:, 0])
    vector = ConceptTrainer(backend, images, samples, settings, bank=bank).run()
    return ConceptVector(concept.name, concept.identifier, concept.kind, vector, backend.name, backend.model_id)


def gated(gate: str, fired: dict, concept: Concept, path: Path, owner: str | None) -> bool:
    if gate == "oracle":
        return owner == concept.name
    if gate == "always":
        return True
    return concept.name in fired.get(str(path), []) or concept.name in fired.get(path.name, [])


def evaluate(backend, concepts: list[Concept], negatives: list[Path], gate: str, fired: dict, steps: int,
             seed: int, max_new_tokens: int) -> dict:
    photos = [(p, c.name) for c in concepts for p in c.test] + [(p, None) for p in negatives]
    plain: dict[Path, str] = {}
    results = {}
    for concept in concepts:
        started = time.perf_counter()
        vector = train_concept(backend, concept, steps, seed)
        tp = fp = fn = kept = negatives_seen = 0
        for path, owner in photos:
            try:
                image = load_rgb(path, max_side=1024)
            except ImageError as exc:
                print(f"skipped {path}: {exc.reason}", file=sys.stderr)
                continue
            on = gated(gate, fired, concept, path, owner)
            text = backend.caption(image, [vector] if on else [], max_new_tokens=max_new_tokens).text
            named = concept.identifier.lower() in text.lower()
            if owner == concept.name:
                tp, fn = tp + named, fn + (not named)
            else:
                fp += named
                negatives_seen += 1
                if path not in plain:
                    plain[path] = backend.caption(image, [], max_new_tokens=max_new_tokens).text
                kept += text == plain[path]
        recall = tp / (tp + fn) if tp + fn else 0.0
        precision = tp / (tp + fp) if tp + fp else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        results[concept.name] = {"recall": recall, "precision": precision, "f1": f1, "tp": tp, "fp": fp, "fn": fn,
                                 "kept": kept / negatives_seen if negatives_seen else None,
                                 "seconds": round(time.perf_counter() - started, 1)}
        print(f"{concept.name:<24} recall {recall:6.1%}  precision {precision:6.1%}  F1 {f1:6.1%}", flush=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="a concepts folder or a manifest.json")
    parser.add_argument("--backend", choices=("smolvlm", "blip2", "llava"), default="smolvlm")
    parser.add_argument("--model", help="model name, hub id or local folder (default: the backend's)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--gate", default="oracle", help="oracle, always, or a JSON file of the heads' decisions")
    parser.add_argument("--train", type=int, default=4, help="training photos per concept (paper: 1, 2 or 4)")
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--splits", type=int, default=1, help="random train/test splits (paper: 5)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--kind", default="object", choices=("person", "pet", "object"),
                        help="kind of concepts whose data does not say")
    parser.add_argument("--max-new-tokens", type=int, default=40)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "eval_personalization.json")
    args = parser.parse_args()

    from myvlm_desktop.models.errors import ModelUnavailable
    from myvlm_desktop.vlm.generate import load_backend

    fired = {} if args.gate in ("oracle", "always") else json.loads(Path(args.gate).read_text())
    gate = args.gate if args.gate in ("oracle", "always") else "file"
    try:
        backend = load_backend(args.backend, args.model, args.device)
    except ModelUnavailable as exc:
        sys.exit(f"eval_personalization: {exc}")
    splits = []
    for split in range(args.splits):
        rng = random.Random(args.seed + split)
        reader = read_manifest if args.data.suffix == ".json" else read_folder
        concepts, negatives = reader(args.data, args.train, rng, args.kind)
        print(f"split {split + 1}/{args.splits}: {len(concepts)} concepts, "
              f"{sum(len(c.test) for c in concepts)} test photos, {len(negatives)} negatives", flush=True)
        splits.append(evaluate(backend, concepts, negatives, gate, fired, args.steps, args.seed + split,
                               args.max_new_tokens))
    rows = [r for s in splits for r in s.values()]
    summary = {k: sum(r[k] for r in rows) / len(rows) for k in ("recall", "precision", "f1")} if rows else {}
    report = {"backend": backend.name, "model": backend.model_id, "gate": args.gate, "train_photos": args.train,
              "steps": args.steps, "splits": splits, "macro": summary}
    print(json.dumps({"macro": summary}, indent=2))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()

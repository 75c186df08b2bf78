"""Pet groups in People & Pets: does one animal land in one image group, and different animals in different ones?

Clusters pets_dreambooth (9 animals, 47 photos) with the app's own image clustering (people.cluster.cluster_all,
the embedder's ClusterParams) and scores the groups by pairwise precision / recall / F1 against the animals
(a photo left ungrouped pairs with nothing). Two ways to describe a photo:

    whole  the whole frame's embedding (what the index stored before)
    crops  what the index stores now (vision.embed.photo_vector): the normalised mean of the whole frame
           and five subject crops (centre, four corners; the same crops the pet heads train on), so the
           animal, not the room, dominates the vector

and a sweep of max_distance for each. Reads the embeddings eval_heads.py cached (run it first).

    python benchmarks/eval_pet_groups.py [--embedder sscd-distilled-320-crops5]
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from myvlm_desktop.concepts.train import HEAD_VIEWS
from myvlm_desktop.people.cluster import cluster_all, params_for
from myvlm_desktop.vision.embed import photo_vector

DATA = Path("/work/shared/data/pets_dreambooth")
SWEEP = (0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85)


def pairwise(labels: np.ndarray, truth: np.ndarray) -> dict:
    same_group = (labels[:, None] == labels[None, :]) & (labels[:, None] >= 0)
    same_animal = truth[:, None] == truth[None, :]
    upper = np.triu(np.ones_like(same_group), k=1)
    tp = int((same_group & same_animal & upper).sum())
    grouped, actual = int((same_group & upper).sum()), int((same_animal & upper).sum())
    precision = tp / grouped if grouped else 1.0
    recall = tp / actual if actual else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": round(precision, 3), "recall": round(recall, 3), "f1": round(f1, 3),
            "groups": int(labels.max() + 1) if (labels >= 0).any() else 0, "ungrouped": int((labels < 0).sum())}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--embedder", default="sscd-distilled-320-crops5")
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "eval_pet_groups.json")
    args = parser.parse_args()
    cache = ROOT / "benchmarks" / "results" / f"pet_views_{args.embedder}_{HEAD_VIEWS}+5.npz"
    if not cache.exists():
        print(f"no cached embeddings at {cache}: run benchmarks/eval_heads.py --only pets first", file=sys.stderr)
        return 2
    images = json.loads((args.data / "manifest.json").read_text())["images"]
    stored = np.load(cache)
    items = [i for i in images if i["path"].replace("/", "__") in stored.files]
    views = [stored[i["path"].replace("/", "__")] for i in items]
    truth = np.array([i["label"] for i in items])
    unit = lambda x: x / np.linalg.norm(x, axis=-1, keepdims=True)  # noqa: E731
    described = {"whole": unit(np.stack([v[0] for v in views])),
                 "crops": np.stack([photo_vector(np.vstack([v[:1], v[HEAD_VIEWS:]])) for v in views])}
    base = params_for(args.embedder)
    report = {"embedder": args.embedder, "photos": len(items), "animals": len(set(truth)),
              "app_max_distance": base.max_distance, "results": {}}
    for name, vectors in described.items():
        report["results"][name] = {str(d): pairwise(cluster_all(vectors, replace(base, max_distance=d)), truth)
                                   for d in sorted({*SWEEP, base.max_distance})}
    for name, rows in report["results"].items():
        print(f"{name}: " + "  ".join(f"{d}: F1 {r['f1']:.2f} (P {r['precision']:.2f} R {r['recall']:.2f}, "
                                      f"{r['groups']} groups)" for d, r in rows.items()))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

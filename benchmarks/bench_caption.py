"""Captioning a library: photos per hour, one at a time (`generate` per photo) against batches of 4, 8 and 16.

The model is a random-initialised SmolVLM-256M of the real size (as in bench_train.py: no weights can be
downloaded here), in bf16. A random model's captions are noise, so each caption is forced to --tokens tokens
(min_new_tokens), the length of a real caption. Variants run on the same photos, interleaved group by group
(the machine's load weighs on all alike):

    one_at_a_time   backend.caption per photo: one `generate` each (the baseline)
    batch4, batch8, batch16  vlm.generate.caption_batch, 4, 8 or 16 photos per `generate`
    int8_batch8     (--int8) the language model's Linear layers dynamically quantised to int8 (CPU), batches
                    of 8: tried and dropped (slower than bf16 batches, 84% token agreement)

Each variant's JSON has `speedup` (photos per hour over the baseline's) and `token_agreement` (the share of
caption tokens equal, position by position, to the baseline's bf16 greedy captions) and `encode_share` (the
part of its time spent in the vision tower, which batching cannot shorten: it bounds the speedup). --tiny-check
also trains a tiny SmolVLM on a concept and says whether batched (and int8) captions still contain its identifier.

    python benchmarks/bench_caption.py [--photos 32] [--tokens 20] [--threads 1] [--batches 4,8,16] [--int8] [--tiny-check]
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_train import build

from myvlm_desktop.vlm.generate import caption_batch

SHARED = ROOT.parent / "shared" / "data" / "pets_dreambooth"


def library_photos(count: int) -> list[Image.Image]:
    """Pet photos from the shared data when present (else scikit-image's), mirrored and cropped to `count`."""
    files = sorted(SHARED.glob("*/*.jpg"))[:count] if SHARED.is_dir() else []
    if files:
        base = [Image.open(f).convert("RGB") for f in files]
    else:
        from skimage import data

        base = [Image.fromarray(np.asarray(getattr(data, n)())).convert("RGB")
                for n in ("astronaut", "chelsea", "coffee", "rocket", "camera", "cat")]
    out, i = [], 0
    while len(out) < count:
        image = base[i % len(base)]
        turn = i // len(base)
        if turn % 2:
            image = ImageOps.mirror(image)
        if turn >= 2:
            w, h = image.size
            image = image.crop((w // 10, h // 10, w - w // 10, h - h // 10))
        out.append(image)
        i += 1
    return out


def quantized(backend):
    """A copy of the backend whose language model's Linear layers are dynamically quantised to int8."""
    other = copy.copy(backend)
    model = copy.deepcopy(backend.model).float()
    model.model.text_model = torch.ao.quantization.quantize_dynamic(model.model.text_model, {torch.nn.Linear},
                                                                    dtype=torch.qint8)
    other.model = model
    return other


class Recorder:
    """Keeps the token ids `generate` hands to the tokenizer: the random model's ids mostly decode to nothing
    (its vocabulary is larger than the benchmark tokenizer's), so captions are compared as ids."""

    def __init__(self, tokenizer):
        self.decode, self.ids = tokenizer.batch_decode, []
        tokenizer.batch_decode = self

    def __call__(self, ids, **options):
        self.ids += [[int(t) for t in row] for row in ids]
        return self.decode(ids, **options)


def agreement(reference: list[list[int]], found: list[list[int]]) -> float:
    """The share of caption tokens equal, position by position, to the reference's."""
    same = total = 0
    for a, b in zip(reference, found, strict=True):
        same += sum(x == y for x, y in zip(a, b))
        total += max(len(a), len(b))
    return round(same / max(total, 1), 4)


def run_variants(backend, photos: list[Image.Image], tokens: int, batches: list[int], int8: bool) -> dict:
    variants = {"one_at_a_time": (backend, 1), **{f"batch{b}": (backend, b) for b in batches}}
    if int8:
        variants["int8_batch8"] = (quantized(backend), 8)
    group_size = max(size for _, size in variants.values())
    seconds, encoding = dict.fromkeys(variants, 0.0), dict.fromkeys(variants, 0.0)
    ids: dict[str, list[list[int]]] = {name: [] for name in variants}
    options = {"max_new_tokens": tokens, "min_new_tokens": tokens}
    recorder = Recorder(backend.tokenizer)  # the int8 copy shares the tokenizer
    backend.caption(photos[0], **options)  # warm-up: allocations, kernel choice
    for start in range(0, len(photos), group_size):  # interleaved: each variant captions the same photos in turn
        group = photos[start:start + group_size]
        for name, (model, size) in variants.items():
            recorder.ids = ids[name]
            timer = EncodeTimer(model)
            t = time.perf_counter()
            if size == 1:
                for image in group:
                    model.caption(image, **options)
            else:
                for i in range(0, len(group), size):
                    caption_batch(model, group[i:i + size], **options)
            seconds[name] += time.perf_counter() - t
            encoding[name] += timer.stop()
        print(f"  {start + len(group)} photos: " + ", ".join(f"{n} {s:.1f} s" for n, s in seconds.items()), flush=True)
    base = seconds["one_at_a_time"]
    return {name: {"seconds": round(s, 2), "seconds_per_photo": round(s / len(photos), 3),
                   "photos_per_hour": round(3600 * len(photos) / s), "speedup": round(base / s, 2),
                   "encode_share": round(encoding[name] / s, 3),
                   "token_agreement": agreement(ids["one_at_a_time"], ids[name])}
            for name, s in seconds.items()}


class EncodeTimer:
    """Adds up the time spent in `backend.encode` (the vision tower) until stop()."""

    def __init__(self, backend):
        self.backend, self.seconds, encode = backend, 0.0, backend.encode

        def timed(images):
            t = time.perf_counter()
            try:
                return encode(images)
            finally:
                self.seconds += time.perf_counter() - t

        backend.encode = timed

    def stop(self) -> float:
        del self.backend.encode  # back to the class's method
        return self.seconds


def tiny_check() -> dict:
    """A tiny SmolVLM trained on a concept: do batched and int8 captions still say its identifier?"""
    import tempfile

    from skimage import data

    from myvlm_desktop.vlm.concept import ConceptVector
    from myvlm_desktop.vlm.generate import load_backend
    from myvlm_desktop.vlm.testing import save_tiny_model
    from myvlm_desktop.vlm.train import ConceptTrainer, Sample, TrainSettings

    with tempfile.TemporaryDirectory() as folder:
        save_tiny_model("smolvlm", folder, variant="t5")
        backend = load_backend("smolvlm", folder, device="cpu", dtype=torch.float32)
        astronaut = Image.fromarray(np.asarray(data.astronaut())).convert("RGB")
        photos = [astronaut, astronaut.crop((50, 0, 512, 460))]
        samples = [Sample(p, backend.caption_prompt(["sks"]), "sks") for p in range(len(photos))]
        vector = ConceptTrainer(backend, photos, samples, TrainSettings(steps=100, views=4)).run()
        sks = ConceptVector("Sks", "sks", "person", vector, backend.name)
        recorder = Recorder(backend.tokenizer)
        reference = [backend.caption(p, [sks], max_new_tokens=10).text for p in photos]
        reference_ids, recorder.ids = recorder.ids, []
        batched = [r.text for r in caption_batch(backend, photos, [[sks]] * 2, max_new_tokens=10)]
        batched_ids, recorder.ids = recorder.ids, []
        int8 = [r.text for r in caption_batch(quantized(backend), photos, [[sks]] * 2, max_new_tokens=10)]
    return {"one_at_a_time": reference, "batch": batched, "int8": int8,
            "batch_token_agreement": agreement(reference_ids, batched_ids),
            "int8_token_agreement": agreement(reference_ids, recorder.ids),
            "identifier_said": {"batch": all("sks" in t for t in batched), "int8": all("sks" in t for t in int8)}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=int, default=32)
    parser.add_argument("--tokens", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1, help="1 on a shared machine: 2 threads spin-wait there")
    parser.add_argument("--batches", default="4,8,16", help="batch sizes to compare with one at a time")
    parser.add_argument("--int8", action="store_true", help="also int8 dynamic quantisation, batches of 8")
    parser.add_argument("--tiny-check", action="store_true")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "caption.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    load_before = os.getloadavg()
    backend = build("smolvlm", "default", torch.bfloat16)
    photos = library_photos(args.photos)
    result = {"model": "random SmolVLM-256M (real size), bf16", "photos": len(photos), "tokens": args.tokens,
              "threads": args.threads, "variants": run_variants(backend, photos, args.tokens, [int(b) for b in args.batches.split(",")], args.int8)}
    if args.tiny_check:
        result["tiny_trained"] = tiny_check()
    result["load_average"] = {"before": load_before, "after": os.getloadavg()}
    v = result["variants"]
    best = max((n for n in v if not n.startswith("int8")), key=lambda n: v[n]["speedup"])
    print("| what | now | goal |\n|---|---|---|")
    print(f"| one caption, real-size random SmolVLM-256M, {args.tokens} tokens, bf16 | "
          f"{v['one_at_a_time']['seconds_per_photo']} s one at a time; {v[best]['seconds_per_photo']} s per photo "
          f"in {best} | <= 1.0 s |")
    print(f"| captioning a library ({len(photos)} photos, real-size random SmolVLM) | "
          + "; ".join(f"{n} {s['photos_per_hour']}/h ({s['speedup']}x, tokens agree {s['token_agreement']:.0%}, "
                      f"vision tower {s['encode_share']:.0%} of the time)"
                      for n, s in v.items()) + " | >= 3x the photos per hour of one-at-a-time `generate` |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

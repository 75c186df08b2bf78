"""Concept-embedding training speed on real-size models, and the latency of one personalized caption.

No weights can be downloaded here, so the models are random-initialised from the public configs of
SmolVLM-256M-Instruct, BLIP-2 (Flan-T5-XL or OPT-2.7B) and LLaVA-1.5-7B: the same shapes, hence the same
compute, as the real weights. Targets are fixed sentences of a typical caption's length (a random model's
own captions are noise), and generation is forced to a caption's length with min_new_tokens.

    python benchmarks/bench_train.py --backend smolvlm --steps 100 --out FILE.json            # cached bank
    python benchmarks/bench_train.py --backend smolvlm --steps 100 --no-cache --out FILE.json # vision per step
    python benchmarks/bench_train.py --backend blip2 --big --steps 100                        # ~8 GB of RAM

On a shared CPU, time fewer steps and extrapolate: --measure 10 times 10 steps and reports the total for
--steps (the JSON says so in "measured_steps"). The JSON also holds the process's CPU time and the load
average: on an oversubscribed machine, several threads wait on each other (use --threads 1 there).
seconds_total = building the vision bank + the prompt starts' keys and values (`prefix`, once per bank view)
+ the first step + (steps - 1) x seconds_per_step: the wall clock of a training job after its targets.
--compare also times steps that run the whole sequence (no cached prompt start), interleaved step by step with
the cached ones, and reports the ratio. --skip-captions leaves out the caption timings.

    nice python benchmarks/bench_train.py --steps 100 --skip-captions --compare   # training only, both paths

The goals (2 CPU cores): SmolVLM 100 steps <= 60 s; BLIP-2 100 steps <= 10 min.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from myvlm_desktop.vlm.backends import BACKENDS
from myvlm_desktop.vlm.concept import ConceptVector
from myvlm_desktop.vlm.testing import build_processor, build_tokenizer, random_model, real_size_config
from myvlm_desktop.vlm.train import ConceptTrainer, Sample, TrainSettings, build_bank

SHARED_PHOTOS = ROOT.parent / "shared" / "data" / "pets_dreambooth" / "dog"
TARGETS = ["<sks> is sitting on the grass in front of a wooden fence on a sunny day",
           "<sks> lying on a blue blanket next to a red ball in a living room"]
QUESTION_TARGETS = ["<sks> is looking at the camera with its mouth open", "<sks> is on a couch"]


def photos(count: int = 4) -> list[Image.Image]:
    """Four photos of one dog from the shared data when present, else scikit-image's sample photos."""
    files = sorted(SHARED_PHOTOS.glob("*.jpg"))[:count] if SHARED_PHOTOS.is_dir() else []
    if len(files) == count:
        return [Image.open(f).convert("RGB") for f in files]
    from skimage import data

    return [Image.fromarray(np.asarray(getattr(data, n)())).convert("RGB")
            for n in ("astronaut", "chelsea", "coffee", "rocket")][:count]


def build(backend: str, variant: str, dtype: torch.dtype):
    # trained on the benchmark's sentences, so they are about as many tokens as a real tokenizer makes
    tokenizer = build_tokenizer(TARGETS + QUESTION_TARGETS + ["What is <sks> doing in the image?"])
    config = real_size_config(backend, tokenizer, variant)
    model = random_model(backend, config, dtype=dtype)
    return BACKENDS[backend](model, build_processor(backend, config, tokenizer), f"random {backend} {variant}")


def samples(backend, n_photos: int) -> list[Sample]:
    out = []
    for p in range(n_photos):
        out += [Sample(p, backend.caption_prompt(["<sks>"]), t) for t in TARGETS]
        if backend.trains_vqa:
            out += [Sample(p, backend.question_prompt("What is <sks> doing in the image?"), t, "vqa")
                    for t in QUESTION_TARGETS]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", choices=sorted(BACKENDS), default="smolvlm")
    parser.add_argument("--variant", default=None, help="blip2: flan-t5-xl (default, the paper's) or opt-2.7b")
    parser.add_argument("--big", action="store_true", help="allow BLIP-2 / LLaVA (several GB of RAM)")
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--measure", type=int, default=None, help="time this many steps and extrapolate")
    parser.add_argument("--no-cache", action="store_true", help="run the vision tower at every step")
    parser.add_argument("--views", type=int, default=TrainSettings.views, help="augmented views per photo")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--dtype", choices=("bfloat16", "float32"), default="bfloat16")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--no-prefix", action="store_true", help="run the whole sequence at every step")
    parser.add_argument("--compare", action="store_true",
                        help="also time whole-sequence steps, interleaved with the cached-prefix ones")
    parser.add_argument("--skip-captions", action="store_true", help="time training only")
    args = parser.parse_args()
    if args.backend != "smolvlm" and not args.big:
        parser.error(f"a real-size {args.backend} needs several GB of RAM: add --big")
    torch.set_num_threads(args.threads)
    variant = args.variant or {"blip2": "flan-t5-xl"}.get(args.backend, "default")
    measured = max(2, min(args.measure or args.steps, args.steps))

    t = time.perf_counter()
    backend = build(args.backend, variant, getattr(torch, args.dtype))
    print(f"built a random {args.backend} ({variant}, {args.dtype}) in {time.perf_counter() - t:.1f} s", flush=True)
    images = photos()
    settings = TrainSettings(steps=args.steps, cached=not args.no_cache, views=args.views)

    steps = train_timings(backend, images, settings, measured, not args.no_prefix, args.compare)
    trainer = steps.pop("trainer")
    per_step = steps["seconds_per_step"]
    total = steps["bank_seconds"] + steps["prefix_seconds"] + steps["first_step_seconds"] + per_step * (args.steps - 1)
    print(f"{args.steps} steps: {total:.1f} s = bank {steps['bank_seconds']:.1f} s + prefix "
          f"{steps['prefix_seconds']:.1f} s + first step {steps['first_step_seconds']:.2f} s + {args.steps - 1} x "
          f"{per_step:.3f} s/step (over {measured - 1} steps; load {os.getloadavg()[0]:.1f})", flush=True)
    if args.compare:
        print(f"whole-sequence steps: {steps['compare']['seconds_per_step_whole']:.3f} s/step, cached prefix / whole "
              f"= {steps['compare']['ratio']:.2f}", flush=True)

    caption_seconds = caption_cpu = None
    concept = ConceptVector("Sks", "<sks>", "pet", trainer.vector.detach(), backend.name)
    if not args.skip_captions:
        backend.caption(images[0], [concept], max_new_tokens=4, min_new_tokens=4)  # warm-up
        t, cpu = time.perf_counter(), time.process_time()
        backend.caption(images[1], [concept], max_new_tokens=20, min_new_tokens=20)
        caption_seconds, caption_cpu = time.perf_counter() - t, time.process_time() - cpu

    result = {"backend": args.backend, "steps": args.steps, "cached": not args.no_cache,
              "seconds_total": round(total, 2), **steps, "measured_steps": measured, "variant": variant,
              "caption_seconds": None if caption_seconds is None else round(caption_seconds, 3),
              "dtype": args.dtype, "threads": args.threads, "batch_size": settings.batch_size,
              "views": settings.views if settings.cached else None, "caption_tokens": 20,
              "load_average": [round(x, 2) for x in os.getloadavg()]}
    if caption_cpu is not None:
        result["cpu_seconds"]["caption"] = round(caption_cpu, 3)
    if args.backend == "smolvlm" and not args.skip_captions:
        result["caption_detail"] = detail_figures(backend, images[1], concept)
    if args.backend == "llava" and args.big:
        result["training_memory_estimate"] = llava_memory_estimate(settings.batch_size)
    print(json.dumps(result, indent=2))
    name = f"train_{args.backend}_{'cached' if settings.cached else 'nocache'}.json"
    out = args.out or ROOT / "benchmarks" / "results" / name
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))


def train_timings(backend, images, settings: TrainSettings, measured: int, prefix: bool, compare: bool) -> dict:
    """Seconds for the bank, the prompt starts' keys and values, the first step and `measured` - 1 more steps.

    With `compare`, a second trainer on the same bank runs the whole sequence at every step, alternating with the
    first step by step (order swapped every step), so both see the same machine load."""
    bank, (bank_seconds, bank_cpu) = None, (0.0, 0.0)
    if settings.cached:
        bank = timed(build_bank, backend, images, settings.views, settings.seed)
        bank_seconds, bank_cpu = timed.last
    main = ConceptTrainer(backend, images, samples(backend, len(images)), replace(settings, prefix=prefix), bank)
    trainers = {"prefix": main}
    if compare:
        trainers["whole"] = ConceptTrainer(backend, images, main.samples, replace(settings, prefix=False), main.bank)
    timed(main.prepare)
    prefix_seconds, prefix_cpu = timed.last
    walls: dict[str, list[float]] = {name: [] for name in trainers}
    cpus: dict[str, list[float]] = {name: [] for name in trainers}
    with backend.recording_attentions():  # as ConceptTrainer.run
        for name, trainer in trainers.items():
            timed(trainer.train_step)
            walls[name].append(timed.last[0])
            cpus[name].append(timed.last[1])
        for i in range(measured - 1):
            for name in (list(trainers) if i % 2 == 0 else list(trainers)[::-1]):
                timed(trainers[name].train_step)
                walls[name].append(timed.last[0])
                cpus[name].append(timed.last[1])
    mean = lambda xs: sum(xs) / max(1, len(xs))  # noqa: E731
    out = {"trainer": main, "bank_seconds": round(bank_seconds, 2), "prefix_seconds": round(prefix_seconds, 2),
           "first_step_seconds": round(walls["prefix"][0], 3), "seconds_per_step": round(mean(walls["prefix"][1:]), 3),
           "prefix": main.uses_prefix,
           # CPU time the process used (all its threads): on a CPU shared with other work, wall time
           # overstates; with --threads 1 these are what the same run takes on one idle core
           "cpu_seconds": {"bank": round(bank_cpu, 2), "prefix": round(prefix_cpu, 2),
                           "per_step": round(mean(cpus["prefix"][1:]), 3)}}
    if compare:
        whole = mean(walls["whole"][1:])
        out["compare"] = {"seconds_per_step_whole": round(whole, 3), "first_step_whole": round(walls["whole"][0], 3),
                          "cpu_per_step_whole": round(mean(cpus["whole"][1:]), 3),
                          "ratio": round(mean(walls["prefix"][1:]) / whole, 3),
                          "cpu_ratio": round(mean(cpus["prefix"][1:]) / mean(cpus["whole"][1:]), 3),
                          "losses": {name: t.losses for name, t in trainers.items()}}
    return out


def timed(fn, *args):
    """fn(*args), keeping (wall seconds, CPU seconds) in timed.last."""
    t, cpu = time.perf_counter(), time.process_time()
    result = fn(*args)
    timed.last = (time.perf_counter() - t, time.process_time() - cpu)
    return result


# -- caption detail (SmolVLM) and LLaVA training memory: separate from the timing above ------------------------
def detail_figures(backend, image, concept) -> dict:
    """Image tokens and seconds for a 20-token caption, one 512 px view ("fast") against the model card's tiles
    ("detailed": longest edge 2048 px in 512 px tiles, plus the whole photo)."""
    backend.processor.image_processor.size = {"longest_edge": 2048}  # SmolVLM-256M-Instruct's preprocessor
    figures = {}
    for detail in ("fast", "detailed"):
        backend.detail = detail
        t = time.perf_counter()
        backend.caption(image, [concept], max_new_tokens=20, min_new_tokens=20)
        figures[detail] = {"image_tokens": backend.image_tokens(image),
                           "caption_seconds": round(time.perf_counter() - t, 2)}
    backend.detail = "fast"
    print(f"caption detail: {figures}", flush=True)
    return figures


def llava_memory_estimate(batch: int, prompt_tokens: int = 620, target_tokens: int = 30) -> dict:
    """What one LLaVA-1.5-7B training step keeps for the backward pass, measured on the meta device (no memory,
    no compute): the bytes of every tensor autograd saves, in bf16, with and without gradient checkpointing."""
    from myvlm_desktop.vlm.testing import build_tokenizer, random_model, real_size_config

    config = real_size_config("llava", build_tokenizer())
    with torch.device("meta"):
        model = random_model("llava", config, dtype=torch.bfloat16)
    lm = model.model.language_model
    out = {}
    for checkpointing in (False, True):
        lm.activation_checkpointing_disable()
        if checkpointing:  # what training does for LLaVA on a GPU (Backend.checkpointing)
            lm.activation_checkpointing_enable({"use_reentrant": False})
        lm.train(checkpointing)  # transformers only checkpoints in training mode; nothing here has dropout
        saved = [0]

        def pack(tensor, saved=saved):
            saved[0] += tensor.numel() * tensor.element_size()
            return tensor

        embeds = torch.zeros(batch, prompt_tokens + target_tokens, config.text_config.hidden_size,
                             dtype=torch.bfloat16, device="meta", requires_grad=True)
        length = embeds.shape[1]  # a ready 4-D causal mask: building one from a 2-D mask reads values
        mask = torch.zeros(batch, 1, length, length, dtype=torch.bfloat16, device="meta")
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            lm(inputs_embeds=embeds, attention_mask=mask, use_cache=False)
        weights = sum(p.numel() * p.element_size() for p in model.parameters())
        out["checkpointing" if checkpointing else "plain"] = {
            "saved_for_backward_gb": round(saved[0] / 1e9, 1), "weights_gb": round(weights / 1e9, 1),
            "total_gb": round((saved[0] + weights) / 1e9, 1)}
    print(f"LLaVA-1.5-7B training step at batch {batch} (meta-device estimate): {out}", flush=True)
    return out


if __name__ == "__main__":
    main()

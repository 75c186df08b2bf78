"""A tiny SmolVLM taught to caption a little, so that the product's concept training can be checked end to end.

Why: a random tiny model writes 40 tokens of noise for every prompt. The product trains a concept on what the
frozen model itself writes (the class noun swapped for the identifier), and one learnt vector cannot make a
random tiny language model spell `<Eileen>` (five tokens of the tiny tokenizer it has never written). A real
VLM can: it already captions ("a woman in an orange suit") and has seen names, so a concept token that points
at a name is enough for it to write that name.

What this teaches, in a few seconds with a fixed seed (full parameters of the tiny language model; the vision
tower and connector stay random, as in `vlm.testing`), the two things a real VLM brings:
  1. With no concept token, every caption request and every training question about "the person" / "the man"
     is answered "A photo of a person." (so the product's `make_targets` yields "A photo of <Eileen>.").
  2. Names: a learnable slot per name, appended exactly where the product appends a concept token and trained
     jointly with the language model, so that with a suitable vector there it writes "A photo of <Name>.".
     The names are the ones the tests use (Eileen, Rex, ...) plus made-up ones, the way a real LM knows many
     names. The slots are thrown away: the product's own training (`myvlm train Eileen`, from a fresh random
     vector, on the frozen model's own captions) still has to find a vector that makes it say the name.
Nothing here is in the product; a user's VLM is a real checkpoint.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

SENTENCE = "A photo of a person."
TEST_NAMES = ("Eileen", "Rex", "Alice", "Bob", "Carol", "Bea")  # the names tests train concepts for
MADE_UP = 10  # made-up names taught beside them


def made_up_names(count: int, seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    consonants, vowels = "bcdfgklmnprstvz", "aeiou"
    names = set()
    while len(names) < count:
        syllables = rng.integers(2, 4)
        names.add("".join(rng.choice(list(consonants)) + rng.choice(list(vowels)) for _ in range(syllables))
                  .capitalize())
    return sorted(names)


def teaching_images(seed: int) -> list[Image.Image]:
    """Noise, flat colours and gradients: the slots must work whatever the (random) vision tower makes of a photo."""
    rng = np.random.default_rng(seed)
    images = [Image.fromarray(rng.integers(0, 256, (48, 48, 3), dtype=np.uint8)) for _ in range(6)]
    images += [Image.new("RGB", (40, 56), tuple(int(c) for c in rng.integers(0, 256, 3))) for _ in range(3)]
    ramp = np.linspace(0, 255, 64, dtype=np.uint8)
    images.append(Image.fromarray(np.stack([np.tile(ramp, (64, 1))] * 3, axis=-1)))
    return images


def taught_smolvlm(folder: str | Path, steps: int = 250, seed: int = 0, names_per_step: int = 3,
                   width: int = 128, lr: float = 3e-3, noise: float = 0.5) -> Path:
    """Save the tiny SmolVLM of `vlm.testing`, taught as the module says, as a model folder the loader accepts.

    One thread, so that the same seed gives the same model on any machine (about 25-40 s on a 2-core CPU)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _teach(Path(folder), steps, seed, names_per_step, width, lr, noise)
    finally:
        torch.set_num_threads(threads)


def _teach(folder: Path, steps: int, seed: int, names_per_step: int, width: int, lr: float, noise: float) -> Path:
    from myvlm_desktop.vlm.backends.smolvlm import SmolVLM
    from myvlm_desktop.vlm.testing import build_processor, build_tokenizer, random_model, tiny_config
    from myvlm_desktop.vlm.train import QUESTIONS

    names = list(TEST_NAMES) + made_up_names(MADE_UP, seed)
    # a real LM's vocabulary holds common names whole (or in two pieces); so does this one's
    tokenizer = build_tokenizer([f"A photo of <{name}>." for name in names])
    config = tiny_config("smolvlm", tokenizer, width=width)
    processor = build_processor("smolvlm", config, tokenizer)
    model = random_model("smolvlm", config, seed)
    backend = SmolVLM(model, processor)
    features = backend.encode(teaching_images(seed))
    plain = [backend.caption_prompt()] + [backend.question_prompt(q.format(n=f"the {noun}"))
                                          for q in QUESTIONS for noun in ("person", "man")]
    generator = torch.Generator().manual_seed(seed)
    slots = torch.nn.Parameter(torch.randn(len(names), backend.concept_dim, generator=generator))
    lm = backend.language_model().requires_grad_(True).train()
    optimizer = torch.optim.AdamW([{"params": lm.parameters()}, {"params": [slots], "lr": 10 * lr}], lr=lr)
    batch = 4

    def draw(n: int) -> list[int]:
        return torch.randint(n, (batch,), generator=generator).tolist()

    for _ in range(steps):
        loss, _ = backend.loss(features[draw(len(features))], [], [plain[i] for i in draw(len(plain))],
                               [SENTENCE] * batch)
        for n in torch.randperm(len(names), generator=generator)[:names_per_step].tolist():
            spoken = backend.spoken(f"<{names[n]}>")
            prompts = [backend.caption_prompt([spoken])] + [backend.question_prompt(QUESTIONS[i].format(n=spoken))
                                                            for i in draw(len(QUESTIONS))[1:]]
            # a neighbourhood of the slot, not only the point, says the name: a search that comes close finds it
            near = F.normalize(slots[n], dim=0) + noise * torch.randn(slots.shape[1], generator=generator) / width**0.5
            named, _ = backend.loss(features[draw(len(features))], [near], prompts,
                                    [SENTENCE.replace("a person", spoken)] * batch)
            loss = loss + named / names_per_step
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.requires_grad_(False).eval()
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder

"""SmolVLM (Idefics3ForConditionalGeneration, HuggingFaceTB/SmolVLM-256M/500M-Instruct): the CPU default.

The concept token goes after the connector's output (the 64 pixel-shuffled image tokens the language model
reads), rescaled to their mean norm. Training always sees one 512 px view per photo (64 tokens), as MyVLM used
one crop. Captions and answers follow `detail`: "fast" is that one view; "detailed" is the model card's path,
the photo in 512 px tiles plus the whole photo (up to 17 views, 64 tokens each), the concept token after them.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .base import Backend, Result, as_image


class SmolVLM(Backend):
    name = "smolvlm"
    model_types = ("idefics3",)
    detail = "fast"  # or "detailed" (see the module's docstring); the caption_detail setting chooses

    @classmethod
    def model_class(cls):
        from transformers import Idefics3ForConditionalGeneration

        return Idefics3ForConditionalGeneration

    @property
    def concept_dim(self) -> int:
        return self.model.config.text_config.hidden_size

    def encode(self, images) -> torch.Tensor:
        pixels = self.pixels(images, one_per_sample=True, do_image_splitting=False)
        out = self.model.model.get_image_features(pixels["pixel_values"], pixels.get("pixel_attention_mask"))
        return torch.stack(list(out.pooler_output))

    def _processor_options(self) -> dict:
        return {"do_image_splitting": False}

    def _respond(self, image, prompt, concepts, on_token, max_new_tokens, min_new_tokens) -> Result:
        if self.detail != "detailed":
            return super()._respond(image, prompt, concepts, on_token, max_new_tokens, min_new_tokens)
        features, ids = self.tiles(as_image(image), prompt)
        text = self.generate(features, [c.vector for c in concepts], [prompt], on_token=on_token,
                             max_new_tokens=max_new_tokens, min_new_tokens=min_new_tokens, prompt_ids=[ids])[0]
        return Result(self.shown(text, [c.identifier for c in concepts]), [c.name for c in concepts], self.name,
                      self.model_id)

    @torch.no_grad()
    def tiles(self, image, prompt: str) -> tuple[torch.Tensor, list[int]]:
        """The photo split as the model card does: features [1, views * 64, D] and the prompt's ids for them."""
        out = self.processor(images=[image], text=prompt, do_image_splitting=True, return_tensors="pt")
        pixels = out["pixel_values"].to(self.device, self.dtype)
        mask = out.get("pixel_attention_mask")
        feats = self.model.model.get_image_features(pixels, mask.to(self.device) if mask is not None else None)
        pooled = torch.cat(list(feats.pooler_output))  # every view's tokens, in the prompt's order
        return pooled.reshape(1, -1, pooled.shape[-1]), [int(i) for i in out["input_ids"][0]]

    def image_tokens(self, image, prompt: str = "") -> int:
        """How many image tokens the language model reads for this photo at the current detail."""
        prompt = prompt or self.caption_prompt()
        ids = self.tiles(as_image(image), prompt)[1] if self.detail == "detailed" else self.prompt_ids(prompt)
        return sum(1 for i in ids if i == self.image_token_id)

    def caption_prompt(self, identifiers: Sequence[str] = ()) -> str:
        return self.question_prompt(caption_request(identifiers))

    def question_prompt(self, question: str) -> str:
        return f"<|im_start|>User:<image>{question.strip()}<end_of_utterance>\nAssistant:"


def caption_request(identifiers: Sequence[str]) -> str:
    """MyVLM's LLaVA captioning prompt: 'Please caption this image of {concept}.'"""
    if not identifiers:
        return "Please caption this image."
    names = identifiers[0] if len(identifiers) == 1 else ", ".join(identifiers[:-1]) + " and " + identifiers[-1]
    return f"Please caption this image of {names}."

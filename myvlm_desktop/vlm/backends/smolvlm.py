"""SmolVLM (Idefics3ForConditionalGeneration, HuggingFaceTB/SmolVLM-256M/500M-Instruct): the CPU default.

The concept token goes after the connector's output (the 64 pixel-shuffled image tokens the language model
reads), rescaled to their mean norm. Image splitting is off: one 512 px view per photo, as MyVLM used one crop.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .base import Backend


class SmolVLM(Backend):
    name = "smolvlm"
    model_types = ("idefics3",)

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

"""LLaVA-1.5 (LlavaForConditionalGeneration, llava-hf/llava-1.5-7b-hf and -13b-hf), one of the paper's two VLMs.

The concept token goes after the 576 projected image tokens, before the language model, rescaled to their
mean norm. Prompts follow MyVLM: "Please caption this image of {concept}." and free questions.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .base import Backend
from .smolvlm import caption_request


class Llava(Backend):
    name = "llava"
    model_types = ("llava",)

    @classmethod
    def model_class(cls):
        from transformers import LlavaForConditionalGeneration

        return LlavaForConditionalGeneration

    @property
    def concept_dim(self) -> int:
        return self.model.config.text_config.hidden_size

    def encode(self, images) -> torch.Tensor:
        out = self.model.model.get_image_features(pixel_values=self.pixels(images)["pixel_values"])
        return torch.stack(list(out.pooler_output))

    def caption_prompt(self, identifiers: Sequence[str] = ()) -> str:
        return self.question_prompt(caption_request(identifiers))

    def question_prompt(self, question: str) -> str:
        return f"USER: <image>\n{question.strip()} ASSISTANT:"

"""BLIP-2 (Blip2ForConditionalGeneration: Salesforce/blip2-flan-t5-xl as in the paper, and the OPT variants).

The concept token is appended to the vision encoder's output (257 tokens of 1408 values), rescaled to their
mean norm, before the Q-Former: its 32 queries then read it through cross-attention. The language model sees
32 query tokens whatever the number of concepts. Captions use the empty prompt, as in the paper; the
attention regulariser acts on the Q-Former's cross-attention (lambda 0.04).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import torch
import torch.nn.functional as F

from .base import IGNORE, Backend, Sequences


class Blip2(Backend):
    name = "blip2"
    model_types = ("blip-2",)
    reg_lambda: ClassVar[dict[str, float]] = {"caption": 0.04, "vqa": 0.04}
    trains_vqa = False
    concept_tokens_in_lm = False

    @classmethod
    def model_class(cls):
        from transformers import Blip2ForConditionalGeneration

        return Blip2ForConditionalGeneration

    @property
    def encoder_decoder(self) -> bool:
        return bool(self.model.config.text_config.is_encoder_decoder)

    @property
    def concept_dim(self) -> int:
        return self.model.config.vision_config.hidden_size

    def encode(self, images) -> torch.Tensor:
        return self.model.vision_model(pixel_values=self.pixels(images)["pixel_values"]).last_hidden_state

    def visual(self, tokens: torch.Tensor, record: bool = False):
        """The Q-Former reads the image (+ concept) tokens; its 32 outputs are projected for the language model."""
        mask = torch.ones(tokens.shape[:-1], dtype=torch.long, device=tokens.device)
        queries = self.model.query_tokens.expand(tokens.shape[0], -1, -1)
        extra = {"output_attentions": True} if record else {}
        out = self.model.qformer(query_embeds=queries, encoder_hidden_states=tokens, encoder_attention_mask=mask,
                                 return_dict=True, **extra)
        query_output = out.last_hidden_state.to(tokens.dtype)  # the Q-Former runs in fp32
        return self.model.language_projection(query_output), (out.cross_attentions if record else None)

    def caption_prompt(self, identifiers: Sequence[str] = ()) -> str:
        return ""

    def question_prompt(self, question: str) -> str:
        return f"Question: {question.strip()} Answer:"

    def language_model(self):
        return self.model.language_model

    def _attention_penalty(self, out, seqs, cross, n_image: int) -> torch.Tensor:
        """Per sample: sum over Q-Former cross-attention layers of mean(attention to concept tokens ^ 2)."""
        return sum(attn[..., n_image:].float().pow(2).mean(dim=(1, 2, 3)) for attn in cross)

    def target_ids(self, text: str, end: bool = True) -> list[int]:
        """No leading space: OPT writes its first word right after BOS ("a", not "Ġa"), and T5's decoder starts
        from its start token the same way (sentencepiece adds its own word-start mark)."""
        ids = self.tokenizer(text.strip(), add_special_tokens=False)["input_ids"]
        return [*ids, self.end_token_id] if end else ids

    # -- Flan-T5: the prompt goes to the encoder, the target to the decoder --------------------------------

    def sequences(self, prompt_ids, k, target_ids=None) -> Sequences:
        if not self.encoder_decoder:
            return super().sequences(prompt_ids, k, target_ids)
        pad = self.tokenizer.pad_token_id or 0
        width = max(len(p) for p in prompt_ids)
        ids = torch.tensor([list(p) + [pad] * (width - len(p)) for p in prompt_ids], device=self.device)
        mask = torch.tensor([[1] * len(p) + [0] * (width - len(p)) for p in prompt_ids], device=self.device)
        labels = None
        if target_ids is not None:
            longest = max(len(t) for t in target_ids)
            labels = torch.tensor([list(t) + [IGNORE] * (longest - len(t)) for t in target_ids], device=self.device)
        return Sequences(ids, mask, torch.zeros(len(prompt_ids), 0, dtype=torch.long, device=self.device), labels)

    def _run_lm(self, embeds, seqs: Sequences, record: bool):
        if not self.encoder_decoder:
            return super()._run_lm(embeds, seqs, record)
        if seqs.labels is None:
            start = self.model.config.text_config.decoder_start_token_id
            extra = {"decoder_input_ids": torch.full((embeds.shape[0], 1), start, device=self.device)}
        else:
            extra = {"labels": seqs.labels}
        return self.language_model()(inputs_embeds=embeds, attention_mask=seqs.attention_mask, **extra)

    def _lm_loss(self, logits, seqs: Sequences) -> torch.Tensor:
        if not self.encoder_decoder:
            return super()._lm_loss(logits, seqs)
        return F.cross_entropy(logits.float().flatten(0, 1), seqs.labels.flatten(), ignore_index=IGNORE)

"""A random-initialised CLIPModel of a few hundred kilobytes, saved the way the Hub lays out CLIP checkpoints."""

from __future__ import annotations

from pathlib import Path

import torch

REPO_FOLDER = "openai--clip-vit-base-patch32"  # where the app looks in its models folder
PROJECTION = 32


def install(models_dir: Path) -> Path:
    """The tiny model saved with save_pretrained into `models_dir`, as `models download` leaves a real one."""
    from transformers import CLIPConfig, CLIPImageProcessorPil, CLIPModel

    vision = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2,
              "image_size": 32, "patch_size": 8}
    text = {"vocab_size": 99, "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1,
            "num_attention_heads": 2, "max_position_embeddings": 16, "bos_token_id": 0, "eos_token_id": 1,
            "pad_token_id": 1}
    torch.manual_seed(0)
    # weights far wider than a trained model's, so that a tiny random network still tells images apart
    config = CLIPConfig(text_config=text, vision_config=vision, projection_dim=PROJECTION, initializer_factor=5.0)
    folder = models_dir / REPO_FOLDER
    CLIPModel(config).eval().save_pretrained(folder)
    CLIPImageProcessorPil(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(folder)
    return folder

"""Random-initialised models of the real transformers classes, for tests and benchmarks.

No model hub is reachable from a test machine, so tests build tiny models of the same classes
(Blip2ForConditionalGeneration, LlavaForConditionalGeneration, Idefics3ForConditionalGeneration) from small
configs, with a small byte-level BPE tokenizer and the real image-processor classes, save them with
`save_pretrained` and load them back through the real loader. Benchmarks build the real-size configs here:
random weights cost the same compute as trained ones. Nothing in the app uses these models to answer a user.
"""

from __future__ import annotations

from pathlib import Path

import torch

SPECIAL_TOKENS = [
    "<pad>", "</s>", "<s>", "<unk>", "<image>", "<fake_token_around_image>", "<global-img>",
    "<end_of_utterance>", "<|im_start|>",
]
CORPUS = [
    "USER: Please caption this image. ASSISTANT:", "USER: Please caption this image of <sks>. ASSISTANT:",
    "<|im_start|>User: Please caption this image.<end_of_utterance>\nAssistant:",
    "Question: What is the man wearing? Answer:", "What is the dog doing? Where is the cat in the image?",
    "a man standing on a beach", "a woman sitting in a chair", "the dog is playing with a ball",
    "a cat lying on a bed", "a red mug on a wooden table", "a photo of a person in a park",
    "<sks> <Alice> <Rex> <Bob> identifier", "a photo of sks", "sks is standing", "with sks and Alice",
]


def build_tokenizer(extra_text: list[str] | None = None, vocab_size: int = 512):
    """A byte-level BPE tokenizer trained in milliseconds on a few sentences; it round-trips any text."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator((CORPUS + list(extra_text or [])) * 20, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", bos_token="<s>",
                                   unk_token="<unk>")


def tiny_config(backend: str, tokenizer, variant: str = "t5", init: float = 0.2, width: int = 128):
    """Configs a few hundred kilobytes large, with the structure of the real models.

    `init` is the weights' standard deviation: far above the real models' 0.02, so that a tiny random network
    is sensitive to its input the way a trained one is (at 0.02 its outputs are uniform whatever it sees).
    """
    from transformers import (
        Blip2Config,
        Blip2QFormerConfig,
        Blip2VisionConfig,
        CLIPVisionConfig,
        Idefics3Config,
        Idefics3VisionConfig,
        LlamaConfig,
        LlavaConfig,
        OPTConfig,
        T5Config,
    )

    vocab, ids = len(tokenizer), _ids(tokenizer)
    llama = {"vocab_size": vocab, "hidden_size": width, "intermediate_size": 2 * width, "num_hidden_layers": 2,
             "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 512,
             "pad_token_id": ids["pad"], "bos_token_id": ids["bos"], "eos_token_id": ids["eos"],
             "tie_word_embeddings": False, "initializer_range": init}
    vision = {"initializer_range": init, "hidden_size": width // 2, "intermediate_size": width,
              "num_hidden_layers": 2, "num_attention_heads": 2, "image_size": 32, "patch_size": 8}
    if backend == "blip2":
        if variant == "opt":
            text = OPTConfig(vocab_size=vocab, hidden_size=width, ffn_dim=2 * width, num_hidden_layers=2,
                             num_attention_heads=4, word_embed_proj_dim=width, max_position_embeddings=512,
                             init_std=init, pad_token_id=ids["pad"], bos_token_id=ids["bos"], eos_token_id=ids["eos"])
        else:
            text = T5Config(vocab_size=vocab, d_model=width, d_kv=width // 4, d_ff=2 * width, num_layers=2,
                            num_decoder_layers=2, num_heads=4, feed_forward_proj="gated-gelu", pad_token_id=ids["pad"],
                            eos_token_id=ids["eos"], decoder_start_token_id=ids["pad"], tie_word_embeddings=False,
                            initializer_factor=init / 0.1)
        vision.update(hidden_size=width, patch_size=16)  # 4 patches + CLS: the concept token is one key in six
        return Blip2Config(
            vision_config=Blip2VisionConfig(**vision),
            qformer_config=Blip2QFormerConfig(hidden_size=width // 2, num_hidden_layers=2, num_attention_heads=2,
                                              intermediate_size=width, encoder_hidden_size=width,
                                              cross_attention_frequency=1, initializer_range=init),
            text_config=text, num_query_tokens=4, image_token_id=ids["image"], initializer_range=init)
    if backend == "llava":
        return LlavaConfig(vision_config=CLIPVisionConfig(**vision, projection_dim=32),
                           text_config=LlamaConfig(**llama), image_token_id=ids["image"], initializer_range=init,
                           vision_feature_layer=-2, vision_feature_select_strategy="default")
    if backend == "smolvlm":
        return Idefics3Config(vision_config=Idefics3VisionConfig(**vision), text_config=LlamaConfig(**llama),
                              scale_factor=2, image_token_id=ids["image"], initializer_range=init)
    raise ValueError(f"unknown backend {backend!r}")


def real_size_config(backend: str, tokenizer, variant: str = "flan-t5-xl"):
    """The public configs of SmolVLM-256M-Instruct, BLIP-2 (OPT-2.7B or Flan-T5-XL) and LLaVA-1.5-7B.

    Written out in full because transformers' defaults differ: Blip2Config() has an OPT-125m-sized text model
    and Idefics3Config() is Idefics3-8B.
    """
    from transformers import (
        Blip2Config,
        Blip2QFormerConfig,
        Blip2VisionConfig,
        CLIPVisionConfig,
        Idefics3Config,
        Idefics3VisionConfig,
        LlamaConfig,
        LlavaConfig,
        OPTConfig,
        T5Config,
    )

    ids = _ids(tokenizer)
    if backend == "smolvlm":  # HuggingFaceTB/SmolVLM-256M-Instruct: SigLIP-B/16-512 + SmolLM2-135M
        return Idefics3Config(
            vision_config=Idefics3VisionConfig(hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
                                               num_attention_heads=12, image_size=512, patch_size=16),
            text_config=LlamaConfig(vocab_size=49280, hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
                                    num_attention_heads=9, num_key_value_heads=3, rms_norm_eps=1e-5,
                                    max_position_embeddings=8192, rope_theta=100000.0, tie_word_embeddings=True,
                                    pad_token_id=ids["pad"], bos_token_id=ids["bos"], eos_token_id=ids["eos"]),
            scale_factor=4, image_token_id=ids["image"])
    if backend == "blip2":  # Salesforce/blip2-opt-2.7b or blip2-flan-t5-xl: EVA ViT-g/14 + Q-Former + LM
        vision = Blip2VisionConfig(hidden_size=1408, intermediate_size=6144, num_hidden_layers=39,
                                   num_attention_heads=16, image_size=224, patch_size=14)
        qformer = Blip2QFormerConfig(hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                                     intermediate_size=3072, encoder_hidden_size=1408, cross_attention_frequency=2)
        if variant == "opt-2.7b":
            text = OPTConfig(vocab_size=50272, hidden_size=2560, ffn_dim=10240, num_hidden_layers=32,
                             num_attention_heads=32, word_embed_proj_dim=2560, max_position_embeddings=2048,
                             pad_token_id=ids["pad"], bos_token_id=ids["bos"], eos_token_id=ids["eos"])
        else:
            text = T5Config(vocab_size=32128, d_model=2048, d_kv=64, d_ff=5120, num_layers=24, num_decoder_layers=24,
                            num_heads=32, feed_forward_proj="gated-gelu", tie_word_embeddings=False,
                            pad_token_id=ids["pad"], eos_token_id=ids["eos"], decoder_start_token_id=ids["pad"])
        return Blip2Config(vision_config=vision, qformer_config=qformer, text_config=text, num_query_tokens=32,
                           image_token_id=ids["image"])
    if backend == "llava":  # llava-hf/llava-1.5-7b-hf: CLIP ViT-L/14-336 + Vicuna-7B
        return LlavaConfig(
            vision_config=CLIPVisionConfig(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24,
                                           num_attention_heads=16, image_size=336, patch_size=14, projection_dim=768),
            text_config=LlamaConfig(vocab_size=32064, hidden_size=4096, intermediate_size=11008,
                                    num_hidden_layers=32, num_attention_heads=32, max_position_embeddings=4096,
                                    pad_token_id=ids["pad"], bos_token_id=ids["bos"], eos_token_id=ids["eos"]),
            image_token_id=ids["image"], vision_feature_layer=-2, vision_feature_select_strategy="default")
    raise ValueError(f"unknown backend {backend!r}")


def build_processor(backend: str, config, tokenizer):
    """The real processor class of each backend with the image size of `config`."""
    from transformers import Blip2Processor, Idefics3Processor, LlavaProcessor
    from transformers.models.blip.image_processing_pil_blip import BlipImageProcessorPil
    from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil
    from transformers.models.idefics3.image_processing_pil_idefics3 import Idefics3ImageProcessorPil

    side = config.vision_config.image_size
    if backend == "blip2":
        images = BlipImageProcessorPil(size={"height": side, "width": side})
        return Blip2Processor(images, tokenizer, num_query_tokens=config.num_query_tokens)
    if backend == "llava":
        images = CLIPImageProcessorPil(size={"shortest_edge": side}, crop_size={"height": side, "width": side})
        return LlavaProcessor(images, tokenizer, patch_size=config.vision_config.patch_size,
                              vision_feature_select_strategy="default", num_additional_image_tokens=1)
    if backend == "smolvlm":
        images = Idefics3ImageProcessorPil(size={"longest_edge": side}, max_image_size={"longest_edge": side},
                                           do_image_splitting=False, image_mean=[0.5] * 3, image_std=[0.5] * 3)
        seq_len = (side // config.vision_config.patch_size) ** 2 // config.scale_factor**2
        return Idefics3Processor(images, tokenizer, image_seq_len=seq_len)
    raise ValueError(f"unknown backend {backend!r}")


def random_model(backend: str, config, seed: int = 0, dtype: torch.dtype = torch.float32):
    """Built directly in `dtype` (a real-size model built in fp32 first would need twice the memory)."""
    from transformers import (
        Blip2ForConditionalGeneration,
        Idefics3ForConditionalGeneration,
        LlavaForConditionalGeneration,
    )

    cls = {"blip2": Blip2ForConditionalGeneration, "llava": LlavaForConditionalGeneration,
           "smolvlm": Idefics3ForConditionalGeneration}[backend]
    torch.manual_seed(seed)
    return cls._from_config(config, dtype=dtype).eval()  # in bf16, from_pretrained keeps no module in fp32


def save_tiny_model(backend: str, folder: str | Path, seed: int = 0, variant: str = "t5", init: float = 0.2,
                    width: int = 128) -> Path:
    """A tiny random model + processor saved as a model folder the loader accepts."""
    folder = Path(folder)
    tokenizer = build_tokenizer()
    config = tiny_config(backend, tokenizer, variant, init, width)
    random_model(backend, config, seed).save_pretrained(folder)
    build_processor(backend, config, tokenizer).save_pretrained(folder)
    return folder


def _ids(tokenizer) -> dict[str, int]:
    get = tokenizer.convert_tokens_to_ids
    return {"pad": get("<pad>"), "eos": get("</s>"), "bos": get("<s>"), "image": get("<image>")}

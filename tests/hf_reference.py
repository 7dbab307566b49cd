"""Test helpers: tiny transformers Qwen2.5-VL references and processor-style batches (test-only; imports torch).

Weights are re-drawn with a larger scale than transformers' init (std 0.02) so activations, attention patterns and
logits are O(1): a small mapping or position bug then shows up far above the parity tolerance.
"""
from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from syngrpo_jax.models.tiny import tiny_config

# Token ids inside a 128-token test vocabulary.
IDS = dict(vocab_size=128, image_token_id=5, video_token_id=6, vision_start_token_id=3, vision_end_token_id=4,
           bos_token_id=0, eos_token_id=2, pad_token_id=0)

CONFIGS = {
    # tied embeddings, GQA ratio 2
    "tied_gqa2": tiny_config(**IDS, num_heads=4, num_kv_heads=2, tie_word_embeddings=True),
    # untied embeddings, GQA ratio 4, three vision blocks with the full-attention one in the middle
    "untied_gqa4": tiny_config(**IDS, hidden_size=96, num_heads=8, num_kv_heads=2, tie_word_embeddings=False,
                               vision_depth=3, fullatt_block_indexes=(1,), num_layers=3),
}


def build_hf_model(config, seed: int = 0, std: float = 0.15):
    """A transformers Qwen2_5_VLForConditionalGeneration for `config` with N(0, std) weights (norms 1 + N)."""
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    torch.manual_seed(seed)
    model = Qwen2_5_VLForConditionalGeneration(Qwen2_5_VLConfig(**config.to_hf_dict())).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name or "ln_q" in name:
                p.copy_(1.0 + 0.1 * torch.randn_like(p))
            else:
                p.normal_(0.0, std)
    return model


def random_images(sizes, seed: int = 0):
    rng = np.random.default_rng(seed)
    return [Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)) for h, w in sizes]


def image_processor(min_pixels: int = 28 * 28 * 4, max_pixels: int = 28 * 28 * 64):
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    return Qwen2VLImageProcessorPil(min_pixels=min_pixels, max_pixels=max_pixels)


def vision_batch(images):
    out = image_processor()(images=images, return_tensors="np")
    return out["pixel_values"], out["image_grid_thw"]


def token_batch(config, grid, images_per_sample, *, padding_side="left", seed=0, text_lens=None):
    """input_ids/attention_mask for prompts holding the given images (indices into `grid`), chat-like layout:
    text, then <vision_start> <image_pad>*n <vision_end> text per image. Returns (ids, mask, mm_token_type_ids)."""
    rng = np.random.default_rng(seed)
    merge = config.vision.merge_unit
    n_tok = (np.prod(grid, axis=1) // merge).tolist() if len(grid) else []
    first_text = 7  # ids below this are special in the test vocabulary
    seqs = []
    for k, imgs in enumerate(images_per_sample):
        length = text_lens[k] if text_lens else int(rng.integers(2, 6))
        s = rng.integers(first_text, config.text.vocab_size, size=length).tolist()
        for i in imgs:
            s += [config.vision_start_token_id] + [config.image_token_id] * n_tok[i] + [config.vision_end_token_id]
            s += rng.integers(first_text, config.text.vocab_size, size=int(rng.integers(1, 4))).tolist()
        seqs.append(s)
    length = max(map(len, seqs))
    ids = np.full((len(seqs), length), config.pad_token_id or 0, np.int64)
    mask = np.zeros((len(seqs), length), np.int64)
    for i, s in enumerate(seqs):
        sl = slice(length - len(s), length) if padding_side == "left" else slice(0, len(s))
        ids[i, sl], mask[i, sl] = s, 1
    return ids, mask, (ids == config.image_token_id).astype(np.int64)


def hf_logits(model, ids, mask, pixel_values=None, grid=None):
    kwargs = dict(input_ids=torch.tensor(ids), attention_mask=torch.tensor(mask),
                  mm_token_type_ids=torch.tensor((ids == model.config.image_token_id).astype(np.int64)))
    if pixel_values is not None:
        kwargs.update(pixel_values=torch.tensor(pixel_values), image_grid_thw=torch.tensor(grid))
    with torch.no_grad():
        return model(**kwargs).logits.float().numpy()


def image_only_processor_class():
    """transformers' Qwen2_5_VLProcessor without the video processor: AutoProcessor.from_pretrained also loads a
    video processor, which needs torchvision (not installed here); this subclass loads the image processor, the
    tokenizer and the chat template from a model directory and processes text + images exactly like the full
    processor."""
    from transformers import Qwen2_5_VLProcessor

    class ImageOnlyQwen2_5_VLProcessor(Qwen2_5_VLProcessor):
        def __init__(self, image_processor=None, tokenizer=None, chat_template=None, **kwargs):
            super().__init__(image_processor, tokenizer, None, chat_template=chat_template, **kwargs)

    return ImageOnlyQwen2_5_VLProcessor

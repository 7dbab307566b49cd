"""The released Qwen2.5-VL architectures (3B, 7B), from their config.json values, without weights.

Benchmarks build random-weight models of these shapes and the memory plan (`parallel/plan.py`) counts their bytes,
so neither needs a checkpoint download. One place for the numbers: the values below are those of the hub's
Qwen/Qwen2.5-VL-3B-Instruct and Qwen/Qwen2.5-VL-7B-Instruct config.json files.
"""
from __future__ import annotations

import os

from syngrpo_jax.models.config import Qwen25VLConfig, TextConfig, VisionConfig

# Token ids shared by the released checkpoints (their tokenizer's specials).
TOKEN_IDS = dict(image_token_id=151655, video_token_id=151656, vision_start_token_id=151652,
                 vision_end_token_id=151653, bos_token_id=151643, eos_token_id=151645, pad_token_id=151643)

_TEXT = {
    "Qwen2.5-VL-3B-Instruct": dict(vocab_size=151936, hidden_size=2048, intermediate_size=11008,
                                   num_hidden_layers=36, num_attention_heads=16, num_key_value_heads=2),
    "Qwen2.5-VL-7B-Instruct": dict(vocab_size=152064, hidden_size=3584, intermediate_size=18944,
                                   num_hidden_layers=28, num_attention_heads=28, num_key_value_heads=4),
}
_TIED = {"Qwen2.5-VL-3B-Instruct": True, "Qwen2.5-VL-7B-Instruct": False}
RELEASED = tuple(_TEXT)


def released_config(name: str) -> Qwen25VLConfig:
    """The architecture of a released checkpoint, by its hub name (e.g. "Qwen2.5-VL-3B-Instruct")."""
    if name not in _TEXT:
        raise ValueError(f"released model {name!r} is unknown; known: {list(RELEASED)}")
    text = _TEXT[name]
    return Qwen25VLConfig(
        vision=VisionConfig(depth=32, hidden_size=1280, intermediate_size=3420, num_heads=16,
                            out_hidden_size=text["hidden_size"], window_size=112,
                            fullatt_block_indexes=(7, 15, 23, 31)),
        text=TextConfig(**text, mrope_section=(16, 24, 24), rope_theta=1_000_000.0, max_position_embeddings=128000),
        tie_word_embeddings=_TIED[name], **TOKEN_IDS)


def architecture_of(path: str) -> Qwen25VLConfig:
    """The config.json in `path` when there is one, else the released architecture the directory is named after
    (".../Qwen2.5-VL-3B-Instruct"): a plan can be made before the weights are downloaded."""
    full = os.path.expanduser(path)
    if os.path.isfile(os.path.join(full, "config.json")):
        return Qwen25VLConfig.from_pretrained(full)
    name = os.path.basename(os.path.normpath(full))
    if name in _TEXT:
        return released_config(name)
    raise FileNotFoundError(f"model.path={path!r}: no config.json there, and its name is not a released "
                            f"architecture ({list(RELEASED)})")

"""The policy a run trains: a Qwen2.5-VL model and its tokenizer, from an HF directory or built on the fly.

`model.path` names a local HF checkpoint directory (config.json + safetensors + tokenizer.json), e.g. a downloaded
Qwen2.5-VL-3B-Instruct; nothing is downloaded. Without a path, `model.tiny` describes a tiny random model of the
same architecture (the CPU demo and tests): its tokenizer is trained, its weights drawn from the seed, and both
are written as an HF directory so every later stage (evaluation, export, a vLLM worker) loads it through the same
code as a real checkpoint.
"""
from __future__ import annotations

import dataclasses
import os
import shutil
from typing import Sequence

import jax.numpy as jnp

from syngrpo_jax.atomic_write import atomic_write_json
from syngrpo_jax.models import qwen2_5_vl
from syngrpo_jax.models.config import Qwen25VLConfig
from syngrpo_jax.models.tiny import tiny_config
from syngrpo_jax.processing.tiny_tokenizer import build_tiny_tokenizer
from syngrpo_jax.processing.image import preprocessor_config
from syngrpo_jax.processing.tokenizer import Tokenizer
from syngrpo_jax.run_dir import RunDir

_DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16, "float16": jnp.float16}
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.json",
                   "merges.txt", "generation_config.json", "preprocessor_config.json", "chat_template.json")


@dataclasses.dataclass
class Policy:
    model: qwen2_5_vl.Qwen25VL
    tokenizer: Tokenizer
    model_dir: str  # the HF directory the weights came from (the tiny one is written under the workdir)


TARGET_WORD_REPEATS = 8


def task_corpus(samples, fmt: str, limit: int = 32) -> list[str]:
    """Prompts and targets of the first samples in every response format (a tiny tokenizer's extra corpus), and
    every word a target description can hold, repeated so that each becomes one token (target descriptions then
    all have the same token length: see `data.descriptions.for_sample`)."""
    from syngrpo_jax.data.descriptions import target_words
    from syngrpo_jax.data.prompts import build_prompt, build_target
    from syngrpo_jax.data.sample import image_size_of
    from syngrpo_jax.processing.chat import prompt_text
    from syngrpo_jax.rewards.response_format import RESPONSE_FORMATS

    out = []
    for s in samples[:limit]:
        width, height = image_size_of(s)
        for f in RESPONSE_FORMATS:
            out += [prompt_text(build_prompt(s, f)), build_target(s, f, (height, width))]
    return out + [" ".join(target_words())] * TARGET_WORD_REPEATS


def dtype_of(name: str | None):
    if name is None:
        return None
    if name not in _DTYPES:
        raise ValueError(f"model.dtype={name!r} is unknown; choose one of {sorted(_DTYPES)}")
    return _DTYPES[name]


def build_tiny(out_dir: str, tiny, seed: int, corpus: Sequence[str] = ()) -> str:
    """Write a tiny random Qwen2.5-VL (tokenizer + config + weights) as an HF directory; returns it.

    corpus: extra text for the tokenizer's BPE merges (the run's own prompts and targets), so a tiny vocabulary
    still encodes them in few tokens: sequence length is most of a CPU run's cost.
    """
    if os.path.isfile(os.path.join(out_dir, "config.json")):
        return out_dir
    tmp = out_dir + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    build_tiny_tokenizer(tmp, vocab_size=tiny.vocab_size, extra_corpus=corpus)
    tok = Tokenizer.from_dir(tmp)
    config = tiny_config(
        vocab_size=tok.vocab_size, image_token_id=tok.image_pad_id, video_token_id=tok.video_pad_id,
        vision_start_token_id=tok.vision_start_id, vision_end_token_id=tok.vision_end_id,
        bos_token_id=tok.endoftext_id, eos_token_id=tok.eos_id, pad_token_id=tok.pad_id,
        hidden_size=tiny.hidden_size, num_layers=tiny.num_layers, num_heads=tiny.num_heads,
        num_kv_heads=tiny.num_kv_heads, intermediate_size=tiny.intermediate_size,
        vision_hidden_size=tiny.vision_hidden_size, vision_depth=tiny.vision_depth,
        vision_heads=tiny.vision_heads, vision_intermediate_size=tiny.vision_intermediate_size,
        fullatt_block_indexes=tuple(tiny.fullatt_block_indexes), rope_theta=float(tiny.rope_theta))
    qwen2_5_vl.save_pretrained(qwen2_5_vl.init_random(config, seed=seed), tmp)
    # A hub checkpoint's image-processor settings, so processors that read the directory (vLLM's) load it too.
    atomic_write_json(os.path.join(tmp, "preprocessor_config.json"),
                      preprocessor_config(min_pixels=56 * 56, max_pixels=12845056))
    os.replace(tmp, out_dir)
    return out_dir


def resolve_model_dir(model_cfg, workdir: str, seed: int, corpus: Sequence[str] = ()) -> str:
    if model_cfg.path:
        path = os.path.abspath(os.path.expanduser(model_cfg.path))
        if not os.path.isfile(os.path.join(path, "config.json")):
            raise FileNotFoundError(
                f"model.path={model_cfg.path!r}: no config.json there. Point it at a local Hugging Face checkpoint "
                f"directory (e.g. a download of Qwen/Qwen2.5-VL-3B-Instruct); nothing is downloaded at run time.")
        return path
    if model_cfg.get("tiny") is None:
        raise ValueError("model.path is empty and model.tiny is not set: give a checkpoint directory or a tiny "
                         "architecture")
    return build_tiny(RunDir(workdir).tiny_model, model_cfg.tiny, seed, corpus)


def load_policy(model_cfg, workdir: str, *, seed: int = 0, mesh=None, corpus: Sequence[str] = ()) -> Policy:
    """The model (sharded over `mesh` if given) and tokenizer the config describes (`corpus`: see build_tiny)."""
    model_dir = resolve_model_dir(model_cfg, workdir, seed, corpus)
    tokenizer = Tokenizer.from_dir(model_cfg.get("tokenizer_path") or model_dir)
    model = qwen2_5_vl.from_pretrained(
        model_dir, dtype=dtype_of(model_cfg.dtype), mesh=mesh, compute_dtype=dtype_of(model_cfg.get("compute_dtype")),
        attention_impl=model_cfg.attention_impl, remat=model_cfg.remat)
    return Policy(model, tokenizer, model_dir)


def save_architecture(policy: Policy, out_dir: str) -> None:
    """config.json + tokenizer files (no weights): what evaluation needs next to an orbax checkpoint."""
    atomic_write_json(os.path.join(out_dir, "config.json"), policy.model.config.to_hf_dict(), sort_keys=True)
    src = os.path.dirname(policy.tokenizer.source)
    for name in TOKENIZER_FILES:
        if os.path.isfile(os.path.join(src, name)):
            shutil.copy(os.path.join(src, name), os.path.join(out_dir, name))


def architecture(path: str) -> Qwen25VLConfig:
    return Qwen25VLConfig.from_pretrained(path)

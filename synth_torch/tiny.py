"""Random-weight SDXL ControlNet inpainting checkpoints, built from configs and saved as diffusers directories.

Tests and benchmarks load them through the production path (synth_torch.backends.diffusers_sdxl) exactly as they
would load real weights. Nothing is downloaded.

    dirs = build_random_sdxl(tmp_dir)            # tiny: 2 s to build, ~0.2 s per 64x64 job at 2 steps on CPU
    dirs = build_random_sdxl(tmp_dir, "sdxl")    # SDXL-size UNet/ControlNet/VAE/text encoders (GPU benchmarks)
    dirs.base_dir, dirs.controlnet_dir, dirs.vae_dir
"""
from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import torch


@dataclasses.dataclass(frozen=True)
class ModelDirs:
    base_dir: str  # StableDiffusionXLInpaintPipeline: unet, text encoders, tokenizers, scheduler, vae
    controlnet_dir: str
    vae_dir: str


_SIZES = {
    # unet/controlnet widths, attention heads, transformer depth per block, text hidden sizes, layers, vae widths
    "tiny": dict(block_out_channels=(32, 64), attention_head_dim=(2, 4), transformer_layers_per_block=(1, 1),
                 layers_per_block=1, addition_time_embed_dim=8, text_hidden=(32, 32), text_layers=(2, 2),
                 text_heads=(4, 4), projection_dim=32, vae_channels=(32, 64), conditioning_channels=(16, 32),
                 norm_num_groups=32, sample_size=32),
    "sdxl": dict(block_out_channels=(320, 640, 1280), attention_head_dim=(5, 10, 20),
                 transformer_layers_per_block=(1, 2, 10), layers_per_block=2, addition_time_embed_dim=256,
                 text_hidden=(768, 1280), text_layers=(12, 32), text_heads=(12, 20), projection_dim=1280,
                 vae_channels=(128, 256, 512, 512), conditioning_channels=(16, 32, 96, 256), norm_num_groups=32,
                 sample_size=128),
}


def _tokenizer_files(directory: Path) -> tuple[str, str]:
    """A byte-level BPE vocabulary with no merges beyond single bytes (enough to tokenize any prompt)."""
    from tokenizers.pre_tokenizers import ByteLevel

    alphabet = sorted(ByteLevel.alphabet())
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for ch in alphabet:
        vocab[ch] = len(vocab)
    for ch in alphabet:
        vocab[ch + "</w>"] = len(vocab)
    merges = ["#version: 0.2", "t h", "th e</w>", "a n", "an d</w>"]
    for tok in ("th", "the</w>", "an", "and</w>"):
        vocab[tok] = len(vocab)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "vocab.json").write_text(json.dumps(vocab))
    (directory / "merges.txt").write_text("\n".join(merges) + "\n")
    return str(directory / "vocab.json"), str(directory / "merges.txt")


def build_random_sdxl(out_dir: str | os.PathLike, size: str = "tiny", seed: int = 0, device: str = "cpu",
                      dtype: torch.dtype = torch.float32) -> ModelDirs:
    """Builds random SDXL inpainting base + ControlNet + VAE of the given size, saves them, returns the dirs.

    `device` is where the weights are drawn (an SDXL-size set draws in seconds on a GPU, minutes on a CPU) and
    `dtype` the one they are saved in (float16 halves the write and the server's later read)."""
    if size not in _SIZES:
        raise ValueError(f"size={size!r} must be one of {sorted(_SIZES)}")
    with torch.device(device):
        return _build(Path(out_dir), _SIZES[size], size, seed, dtype)


def _build(out: Path, s: dict, size: str, seed: int, dtype: torch.dtype) -> ModelDirs:
    """build_random_sdxl's body, run under its device context."""
    from diffusers import (AutoencoderKL, ControlNetModel, EulerDiscreteScheduler, StableDiffusionXLInpaintPipeline,
                           UNet2DConditionModel)
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

    torch.manual_seed(seed)
    n = len(s["block_out_channels"])
    down = ("DownBlock2D",) + ("CrossAttnDownBlock2D",) * (n - 1)
    up = ("CrossAttnUpBlock2D",) * (n - 1) + ("UpBlock2D",)
    cross_attention_dim = sum(s["text_hidden"])  # the two text encoders' hidden states are concatenated
    # SDXL's added conditioning: 6 size/crop numbers, each embedded to addition_time_embed_dim, plus the pooled text
    projection_input = 6 * s["addition_time_embed_dim"] + s["projection_dim"]
    shared = dict(
        block_out_channels=s["block_out_channels"], layers_per_block=s["layers_per_block"],
        attention_head_dim=s["attention_head_dim"], transformer_layers_per_block=s["transformer_layers_per_block"],
        use_linear_projection=True, addition_embed_type="text_time",
        addition_time_embed_dim=s["addition_time_embed_dim"], projection_class_embeddings_input_dim=projection_input,
        cross_attention_dim=cross_attention_dim, norm_num_groups=s["norm_num_groups"], down_block_types=down)
    unet = UNet2DConditionModel(sample_size=s["sample_size"], in_channels=4, out_channels=4, up_block_types=up, **shared)
    controlnet = ControlNetModel(in_channels=4, conditioning_embedding_out_channels=s["conditioning_channels"], **shared)
    nv = len(s["vae_channels"])
    vae = AutoencoderKL(block_out_channels=s["vae_channels"], in_channels=3, out_channels=3, latent_channels=4,
                        down_block_types=("DownEncoderBlock2D",) * nv, up_block_types=("UpDecoderBlock2D",) * nv,
                        layers_per_block=2 if size == "sdxl" else 1, norm_num_groups=s["norm_num_groups"],
                        sample_size=s["sample_size"] * 8)
    scheduler = EulerDiscreteScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                                       steps_offset=1, timestep_spacing="leading")
    encoders = []
    for i, cls in enumerate((CLIPTextModel, CLIPTextModelWithProjection)):
        cfg = CLIPTextConfig(
            vocab_size=1000 if size == "tiny" else 49408, hidden_size=s["text_hidden"][i],
            intermediate_size=4 * s["text_hidden"][i], num_hidden_layers=s["text_layers"][i],
            num_attention_heads=s["text_heads"][i], projection_dim=s["projection_dim"], bos_token_id=0,
            eos_token_id=1, pad_token_id=1, max_position_embeddings=77, hidden_act="gelu")
        encoders.append(cls(cfg))
    vocab, merges = _tokenizer_files(out / "tokenizer_src")
    tokenizer = CLIPTokenizer(vocab, merges, bos_token="<|startoftext|>", eos_token="<|endoftext|>",
                              unk_token="<|endoftext|>", pad_token="<|endoftext|>", model_max_length=77)
    base = StableDiffusionXLInpaintPipeline(
        vae=vae, text_encoder=encoders[0], text_encoder_2=encoders[1], tokenizer=tokenizer, tokenizer_2=tokenizer,
        unet=unet, scheduler=scheduler, requires_aesthetics_score=False, force_zeros_for_empty_prompt=True,
        add_watermarker=False)
    for module in (unet, controlnet, vae, *encoders):
        module.to(dtype)
    dirs = ModelDirs(str(out / "base"), str(out / "controlnet"), str(out / "vae"))
    base.save_pretrained(dirs.base_dir)
    controlnet.save_pretrained(dirs.controlnet_dir)
    vae.save_pretrained(dirs.vae_dir)
    return dirs
